#!/usr/bin/env bash
# Set up (if needed) and run the main job: open napari with U-Net Studio docked and the
# nuclei sample loaded. Without a display (a server, CI) it runs the headless demo instead:
# train briefly on the sample scribbles and write a predicted mask.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/napari ] || bash scripts/setup.sh
exec .venv/bin/python -m napari_unet_studio.demo "$@"
