#!/usr/bin/env bash
# Installs the dependencies, builds vistune and runs the whole test suite.
#   deploy/test.sh                  everything
#   deploy/test.sh -L parity        ctest arguments pass through
#   VT_SANITIZE=ON deploy/test.sh   the same under ASan + UBSan (build-asan/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/install-deps.sh"
"$root/deploy/fetch-data.sh"

source "$root/deploy/mpi-env.sh"

if [ "${VT_SANITIZE:-OFF}" = ON ]; then
  export VT_BUILD_DIR=${VT_BUILD_DIR:-$root/build-asan}
  "$root/deploy/build.sh" -DVT_SANITIZE=ON
else
  "$root/deploy/build.sh"
fi
build=${VT_BUILD_DIR:-$root/build}
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
