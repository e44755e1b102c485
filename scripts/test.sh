#!/usr/bin/env bash
# Run the whole test suite (sets the project up first on a fresh machine).
# pytest-xvfb starts a virtual X server for the napari tests by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && .venv/bin/python -c "import napari_unet_studio, torch, napari, pytestqt" 2>/dev/null \
  || bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
