#!/usr/bin/env bash
# Packs a configured and built tree (BUILD_DIR) into one tarball that runs the
# GPU tests on a CUDA host that has none of vistune's Debian runtime packages
# (a bare CUDA container image, say): the test binaries and CTest files of
# BUILD_DIR, every shared library they need except the C runtime and CUDA's
# own (taken from the host), and a relocatable copy of OpenMPI (its plugins,
# help files, mpirun and orted) under an OPAL_PREFIX.
#   tests/gpu/bundle.sh BUILD_DIR OUT.tar.gz
# Unpack and run with tests/gpu/run.sh on the GPU host.
set -euo pipefail
build=$(cd "$1" && pwd) out=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root            # becomes OPAL_PREFIX/.. on the host
mkdir -p "$root/lib" "$root/usr/bin" "$root/usr/lib/x86_64-linux-gnu" "$root/usr/share"

# OpenMPI's plugins and PMIx's, at the layout OPAL_PREFIX relocation expects.
ompi=/usr/lib/x86_64-linux-gnu/openmpi pmix=/usr/lib/x86_64-linux-gnu/pmix2
cp -a "$ompi" "$pmix" "$root/usr/lib/x86_64-linux-gnu/"
cp -a /usr/share/openmpi "$root/usr/share/"
cp -a "$(readlink -f /usr/bin/orterun)" "$root/usr/bin/orterun"
cp -a /usr/bin/orted "$root/usr/bin/"
ln -s orterun "$root/usr/bin/mpirun"
ln -s orterun "$root/usr/bin/mpiexec"

# Executables of the build tree (no objects), with their CTest files.
(cd "$build" && find . -path ./test-tmp -prune -o -path '*/CMakeFiles' -prune -o -type f \
   \( -perm -u+x -o -name 'CTestTestfile.cmake' -o -name '*.yaml' -o -name CMakeCache.txt \) -print) > "$stage/files"
tar -C "$build" -cf "$stage/build.tar" -T "$stage/files"

# The real MNIST digits the model parity test feeds (deploy/fetch-data.sh).
data=$(sed -n 's/^VT_DATA_DIR:[A-Z]*=//p' "$build/CMakeCache.txt")
digits=mnist/package/src/digits
if [ -d "$data/$digits" ]; then
  mkdir -p "$stage/data/$(dirname $digits)" && cp -a "$data/$digits" "$stage/data/$digits"
fi

# Shared libraries: the closure of every executable and plugin, minus the C
# runtime (the host's is newer) and CUDA (must match the host's driver).
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libresolv\.|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libnvidia)'
{
  while read -r f; do echo "$build/$f"; done < "$stage/files"
  find "$root/usr" -name '*.so' -o -path '*/bin/*' -type f
} | while read -r f; do
  ldd "$f" 2>/dev/null | awk '/=> \//{print $1, $3}' || true  # not every file is ELF
done | sort -u | while read -r name path; do
  [[ $name =~ $skip ]] && continue
  cp -Ln "$path" "$root/lib/$name"
done
tar -C "$stage" -czf "$out" root build.tar $([ -d "$stage/data" ] && echo data)
echo "bundle: $out ($(du -h "$out" | cut -f1)), $(ls "$root/lib" | wc -l) libraries"
