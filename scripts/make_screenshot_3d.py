"""Make the 3D screenshot of the user guide (docs/images/3d_volume.png).

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/make_screenshot_3d.py

It opens the benchmark nuclei volume (bench/data/nuclei3d, 60 x 256 x 256) with strokes
on 5 slices (bench/volume3d.py's), docks U-Net Studio, picks "3D (volumes)" and trains
briefly on the worker, then saves the whole window showing the live 3D prediction of the
slice looked at. Reuses the helpers of scripts/make_screenshots.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import napari

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

from make_screenshots import pump, shot, show_section, wait_for  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Drive the GUI on a volume and write the PNG."""
    import volume3d

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps")
    args = parser.parse_args(argv)
    vol, truth, spacing, slices = volume3d.load(False)
    strokes = volume3d.make_strokes(truth, slices, 0)
    viewer = napari.Viewer(show=True, title="napari - U-Net Studio (3D)")
    viewer.window._qt_window.resize(1600, 1000)
    viewer.window._qt_window.move(0, 0)
    viewer.add_image(vol, name="nuclei volume", scale=spacing, colormap="gray")
    lab = viewer.add_labels(strokes, name="strokes", scale=spacing)
    lab.opacity = 0.9
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
    mp = widget.model_panel
    wait_for(lambda: len(mp.decoders()) > 1, timeout=120)  # the worker's hello
    wait_for(lambda: "Recommended" in mp.dims_help.text(), timeout=30)
    mp["dims"].value = 3
    mp["steps"].value = args.steps
    mp["start"].value = "scratch"
    viewer.dims.set_current_step(0, slices[2])
    viewer.reset_view()
    tp = widget.train_panel
    tp.train_button.click()
    wait_for(lambda: widget.train.previews >= 2 or not widget.train.running, timeout=1500)
    wait_for(lambda: not widget.train.running, timeout=1500)
    pump(2.0)
    show_section(widget, mp)
    shot(viewer, "3d_volume.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
