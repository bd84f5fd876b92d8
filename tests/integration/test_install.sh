#!/usr/bin/env bash
# `cmake --install` into a fresh prefix gives a working vistune (run from
# another directory), the Slurm templates, module file, Spack recipe and docs.
. "$(dirname "$0")/lib.sh"
: "${VT_BINARY_DIR:?}"
prefix=$VT_TEST_TMP/prefix
rm -rf "$prefix"
cmake --install "$VT_BINARY_DIR" --prefix "$prefix" > "$VT_TEST_TMP/install.log" || fail "install: $(tail -3 "$VT_TEST_TMP/install.log")"
cd "$VT_TEST_TMP"
"$prefix/bin/vistune" --version | grep -Eq "^vistune [0-9]+\.[0-9]+\.[0-9]+$" || fail "installed --version"
for f in share/vistune/slurm/train.sbatch share/vistune/slurm/eval.sbatch share/vistune/slurm/nightly.sbatch \
         share/vistune/slurm/local-cluster.sh share/vistune/modules/vistune.lua share/vistune/spack/package.py \
         share/doc/vistune/cluster.md share/doc/vistune/README.md; do
  [ -f "$prefix/$f" ] || fail "missing $f"
done
[ -x "$prefix/share/vistune/slurm/local-cluster.sh" ] || fail "local-cluster.sh not executable"
# The installed binary renders with its built-in templates, equal to the installed copies.
printf 'slurm:\n  time: "10"\n' > run.yaml
"$prefix/bin/vistune" submit train run.yaml --dry-run > rendered.sh || fail "installed submit"
grep -q "^srun --mpi='pmix' '$prefix/bin/vistune' train " rendered.sh || fail "rendered binary path"
python3 -m py_compile "$prefix/share/vistune/spack/package.py" || fail "package.py syntax"
echo "install: $(find "$prefix" -type f | wc -l) files under the prefix"
