#!/usr/bin/env bash
# Submission as an ordinary user (nobody): the job runs as that user, srun
# --mpi=pmix starts the MPI program without any root settings, and
# `vistune submit --check` works for that user.
. "$(dirname "$0")/lib.sh"
need_cluster
# In sanitizer builds: OpenMPI's dlopen'd components leak at MPI_Finalize from
# frames LeakSanitizer cannot name (so no suppression can match them).
export LSAN_OPTIONS=${LSAN_OPTIONS:-detect_leaks=0}
id nobody >/dev/null 2>&1 || { echo "SKIP: no user nobody"; exit 77; }
dir=$(mktemp -d /tmp/vt-nonroot.XXXXXX)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
cp "$VISTUNE" "$dir/vistune"              # the build tree may not be readable by nobody
mkdir "$dir/work" && chown nobody "$dir/work"
printf 'slurm:\n  time: "1"\n' > "$dir/work/run.yaml"
as_nobody() {
  runuser -u nobody -- env -i PATH="$PATH" SLURM_CONF="$SLURM_CONF" LSAN_OPTIONS="$LSAN_OPTIONS" HOME="$dir/work" bash -c "cd '$dir/work' && $1"
}
as_nobody "sbatch --wait -J vt-nonroot -n 2 -t 1 -o out.txt --wrap 'id -un; srun --mpi=pmix $dir/vistune mpi-check --expect-ranks 2'" ||
  fail "job as nobody failed: $(cat "$dir/work/out.txt" 2>/dev/null)"
cat "$dir/work/out.txt"
[ "$(head -n1 "$dir/work/out.txt")" = nobody ] || fail "job did not run as nobody"
grep -q "^mpi-check: 2 ranks" "$dir/work/out.txt" || fail "mpi-check as nobody"
[ "$(stat -c %U "$dir/work/out.txt")" = nobody ] || fail "log not owned by nobody"
as_nobody "$dir/vistune submit eval run.yaml --check" || fail "vistune submit --check as nobody"
