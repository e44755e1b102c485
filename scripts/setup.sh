#!/usr/bin/env bash
# Set up napari-unet-studio on a fresh Debian/Ubuntu machine (run as root or with sudo):
# Debian packages for Qt/Xvfb, a virtual environment in .venv, the CPU build of torch,
# then the project with its test extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 \
    libxkbcommon-x11-0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-image0 \
    libgl1 libegl1 libfontconfig1 libdbus-1-3 >/dev/null
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
# the pin keeps pip on the CPU wheel of torch (an unpinned torch pulls a CUDA build)
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[testing]"
echo "napari-unet-studio is installed in .venv"
