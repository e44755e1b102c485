"""Screenshots of the Assistant panel for the user guide (docs/images/09-11_assistant_*.png).

Run under a virtual display (a few minutes; the comparison trains five decoders)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/assistant_screenshots.py

It opens the nuclei sample, trains briefly with the live preview, shows the uncertainty
layer and the region the Next button picks, compares the five decoders with a small
budget, keeps the best, and shows the upsampling gallery. Uses the helpers of
``screenshot_support.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot_support import nuclei_studio, pump, shot, show_section, wait_for  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps")
    parser.add_argument("--compare-steps", type=int, default=6,
                        help="steps per decoder and fold in the comparison")
    parser.add_argument("--only-upsampling", action="store_true",
                        help="only the gallery screenshot (no training, no comparison)")
    args = parser.parse_args(argv)
    viewer, widget = nuclei_studio()
    mp = widget.model_panel
    wait_for(lambda: len(mp.decoders()) > 1, timeout=300)
    mp["steps"].value = args.steps
    mp["preview_interval"].value = 3.0

    ap = widget.assistant_panel
    if args.only_upsampling:
        return _gallery(viewer, widget, ap, crop_index=0)

    # 1. train with the live preview: the uncertainty layer follows it
    widget.train_panel.train_button.click()
    wait_for(lambda: not widget.train.running, timeout=1800)
    wait_for(lambda: widget.assistant.uncertainty_updates > 0, timeout=60)
    ap.uncertainty_box.setChecked(True)
    viewer.layers["nuclei prediction"].visible = False
    ap.next_button.click()
    pump(1.0)
    show_section(widget, widget.assistant_panel)
    shot(viewer, "09_assistant_uncertainty.png")
    ap.uncertainty_box.setChecked(False)
    viewer.layers["nuclei prediction"].visible = True
    viewer.reset_view()

    # 2. compare the five decoders on the strokes, keep the best
    ap.steps.setValue(args.compare_steps)
    ap.compare_button.click()
    wait_for(lambda: not widget.assistant.running, timeout=3000)
    pump(1.0)
    viewer.layers["nuclei prediction"].visible = False
    show_section(widget, ap.table)
    shot(viewer, "10_assistant_compare.png")
    ap.keep_button.click()

    return _gallery(viewer, widget, ap, crop_index=1)


def _gallery(viewer, widget, ap, crop_index: int) -> int:
    """3. What each upsampling makes of a crop around the view centre (a nucleus)."""
    for name in ("where to paint next",):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    camera = getattr(viewer, "scene", viewer).camera
    camera.center = (300, 200)
    camera.zoom = 4.0
    ap.crop_size.setCurrentIndex(crop_index)
    ap.show_button.click()
    wait_for(lambda: bool(widget.upsampling.panels), timeout=600)
    pump(1.0)
    cells = [ap.gallery_grid.itemAt(i).widget() for i in range(ap.gallery_grid.count())]
    show_section(widget, cells[-1] if cells else ap.gallery)
    shot(viewer, "11_assistant_upsampling.png")
    widget.shutdown()
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
