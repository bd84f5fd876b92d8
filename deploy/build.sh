#!/usr/bin/env bash
# Configures and builds vistune into ${VT_BUILD_DIR:-build}. Extra arguments go
# to cmake's configure step, e.g. deploy/build.sh -DVT_SANITIZE=ON
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VT_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${VT_BUILD_TYPE:-RelWithDebInfo}" "$@"
cmake --build "$build" -j "$(nproc)"
