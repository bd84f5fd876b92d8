#!/usr/bin/env bash
# Runs tests from a bundle (tests/gpu/bundle.sh) on a CUDA host without
# vistune's Debian runtime packages. Run from the root of the same source
# tree the bundle was built from; needs the host's CUDA driver and cuBLAS 13
# and the python3 named at configure time (VT_TORCH_PYTHON, with torch).
#   tests/gpu/run.sh BUNDLE.tar.gz [CTEST ARGS...]   (default: -L gpu)
#   tests/gpu/run.sh BUNDLE.tar.gz -- COMMAND...      (COMMAND in that environment,
#                                                      e.g. tests/bench/bench_trainer.sh)
# The bundle's build tree and this source tree are made reachable at the
# absolute paths CTest recorded (symlinks, only where nothing exists yet).
set -euo pipefail
bundle=$(readlink -f "$1"); shift
src=$(pwd)
dest=${VT_GPU_BUNDLE_DIR:-/opt/vistune-gpu}
mkdir -p "$dest"
tar -C "$dest" -xzf "$bundle"
R=$dest/root
mkdir -p "$dest/build" && tar -C "$dest/build" -xf "$dest/build.tar"
want_src=$(sed -n 's/^# Source directory: //p' "$dest/build/CTestTestfile.cmake")
want_build=$(sed -n 's/^# Build directory: //p' "$dest/build/CTestTestfile.cmake")
link() { # link TARGET PATH: PATH -> TARGET unless PATH already is TARGET
  [ "$(readlink -f "$2" 2>/dev/null)" = "$(readlink -f "$1")" ] && return
  [ -e "$2" ] && { echo "run.sh: $2 exists and is not $1" >&2; exit 1; }
  mkdir -p "$(dirname "$2")" && ln -s "$1" "$2"
}
link "$src" "$want_src"
link "$dest/build" "$want_build"
want_data=$(sed -n 's/^VT_DATA_DIR:[A-Z]*=//p' "$dest/build/CMakeCache.txt")
if [ -d "$dest/data" ] && [ ! -e "$want_data" ]; then link "$dest/data" "$want_data"; fi
# The MPI launcher CTest recorded, and each test's scratch directory.
mpiexec_path=$(grep -rhom1 'MPIEXEC=[^;"]*' "$dest/build" | head -1 | cut -d= -f2)
if [ -n "$mpiexec_path" ] && [ ! -e "$mpiexec_path" ]; then link "$R/usr/bin/mpiexec" "$mpiexec_path"; fi
grep -rho 'VT_TEST_TMP=[^;"]*' "$dest/build" | cut -d= -f2 | sort -u | xargs -r mkdir -p

cuda_dirs=$(find /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /opt /usr/lib -name 'libcublas.so.13' \
  -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH=$R/lib:$cuda_dirs${LD_LIBRARY_PATH:-}
export OPAL_PREFIX=$R/usr PATH=$R/usr/bin:$PATH
# Point PMIx at the bundled plugins. On the H100 host, whose own PMIx (another
# version) sits at Debian's path, PMIx still opened that one's zlib
# compressor, which fails against the bundled library and prints to stderr
# (the tests expect a quiet stderr): compression is left out.
export PMIX_INSTALL_PREFIX=$R/usr/lib/x86_64-linux-gnu/pmix2
export PMIX_MCA_mca_base_component_path=$PMIX_INSTALL_PREFIX/lib/pmix
export PMIX_MCA_pcompress=^zlib PMIX_MCA_pcompress_base_silence_warning=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export VT_BINARY_DIR=$want_build VT_TORCH_PYTHON=${VT_TORCH_PYTHON:-$(sed -n 's/^VT_TORCH_PYTHON:[A-Z]*=//p' "$dest/build/CMakeCache.txt")}
if [ "${1:-}" = -- ]; then shift; exec "$@"; fi
[ $# -gt 0 ] || set -- -L gpu
cd "$want_build" && ctest --output-on-failure "$@"
