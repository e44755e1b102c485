"""Make the user-guide screenshots in docs/images/ by driving napari like a user.

Run under a virtual display (about two minutes on a laptop CPU)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/make_screenshots.py

It opens the nuclei sample, docks U-Net Studio, trains briefly, predicts, corrects and
shows the model information, saving a screenshot of the whole window at each step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot_support import (  # noqa: E402 - helpers shared with the other scripts
    nuclei_studio,
    pump,
    shot,
    show_section,
    wait_for,
)

from napari_unet_studio._sample_data import load_nuclei  # noqa: E402

__all__ = ["pump", "shot", "show_section", "wait_for"]  # imported by the other scripts


def main(argv: list[str] | None = None) -> int:
    """Drive the GUI and write the PNG files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps")
    args = parser.parse_args(argv)
    viewer, widget = nuclei_studio()
    shot(viewer, "01_sample_and_widget.png")

    # model choice: show the decoder list's tooltip-free state and the advanced settings
    mp = widget.model_panel
    wait_for(lambda: len(mp.decoders()) > 1, timeout=120)  # the worker's hello
    mp["decoder"].value = "bilinear"
    mp["steps"].value = args.steps
    mp.advanced.expand(animate=False)
    mp["patch_size"].value = 96
    show_section(widget, mp)
    shot(viewer, "02_model_settings.png")
    mp.advanced.collapse(animate=False)

    # train: screenshot while it runs (live prediction, progress, loss curve)
    tp = widget.train_panel
    viewer.layers.selection.active = viewer.layers["scribbles"]
    viewer.layers["scribbles"].mode = "paint"
    tp.train_button.click()
    half = args.steps // 2
    wait_for(
        lambda: (
            widget.train.previews >= 1
            and tp.progress.value() >= half
            or not widget.train.running
        ),
        timeout=1200,
    )
    show_section(widget, tp)
    shot(viewer, "03_training_live.png")
    wait_for(lambda: not widget.train.running, timeout=1800)
    pump(1.0)
    show_section(widget, tp)
    shot(viewer, "04_training_done.png")

    # predict into a new layer, with the confidence map
    pp = widget.predict_panel
    pp.confidence_box.setChecked(True)
    pp.predict_button.click()
    wait_for(lambda: not widget.predict.running, timeout=300)
    viewer.layers["nuclei prediction"].visible = False
    viewer.layers["scribbles"].visible = False
    show_section(widget, pp)
    shot(viewer, "05_prediction.png")

    # correct a few pixels on the prediction and use them as labels
    # (as if painted by hand: the ground truth inside one box replaces the prediction)
    pred = next(ly for ly in viewer.layers if ly.name.startswith("nuclei prediction ("))
    viewer.layers.selection.active = pred
    pred.mode = "paint"
    pred.selected_label = 1
    _, _, truth = load_nuclei()
    box = np.s_[140:260, 30:190]
    fixed = np.array(pred.data)
    fixed[box] = truth[box]
    pred.data = fixed
    pp.corrections_button.click()
    # show the merged training labels: the scribbles plus the corrected pixels
    pred.visible = False
    merged = viewer.layers["scribbles + corrections"]
    merged.opacity = 1.0
    camera = getattr(viewer, "scene", viewer).camera  # napari >= 0.9: viewer.scene.camera
    camera.center = (200, 160)
    camera.zoom = 3.0
    show_section(widget, pp)
    shot(viewer, "06_corrections.png")
    pred.visible = True
    viewer.reset_view()

    # model information
    show_section(widget, widget.models_panel)
    shot(viewer, "07_model_info.png")

    # the multi-class RGB sample with a fresh scribble layer in paint mode
    viewer.layers.clear()
    viewer.open_sample("napari-unet-studio", "multiclass")
    widget.data_panel.rows[0].new_button.click()
    viewer.reset_view()
    show_section(widget, widget.data_panel)
    shot(viewer, "08_multiclass_new_scribbles.png")

    widget.shutdown()
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
