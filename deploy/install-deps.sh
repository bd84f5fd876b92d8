#!/usr/bin/env bash
# Installs every system dependency of vistune from Debian's registry.
# Idempotent; runs as root (or through sudo) on a fresh Debian 12.
#   deploy/install-deps.sh            build + test dependencies
#   VT_WITH_DATA=0 deploy/install-deps.sh   skip the real-data packages
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates
  libopenmpi-dev openmpi-bin
  libzmq3-dev
  libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev lmdb-utils
  libwebp-dev webp
  libopenblas-dev
  libyaml-dev libcjson-dev
  libpng-dev libjpeg-dev
  libcmocka-dev
  python3 python3-torch python3-numpy python3-scipy python3-pil
  chromium
  unicode-data
  slurm-wlm munge
)
if [ "${VT_WITH_DATA:-1}" = 1 ]; then
  packages+=(tuxpaint-stamps-default wordnet-base)
fi
# Node.js runs the reference tokenizers and npm fetches data. A machine may
# already have them from elsewhere (e.g. NodeSource, whose nodejs bundles
# npm and conflicts with Debian's npm package): only install Debian's when
# the commands are missing.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
