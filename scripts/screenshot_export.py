"""Screenshot of the Export button for the user guide (docs/images/09_export.png).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_export.py

Opens the nuclei sample, trains a small model for a few steps in the dock, presses
Export... (the file dialog answered with a path in a temporary folder: a bioimage.io
package) and saves the whole window once the export has finished and its notification
is shown. Reuses the helpers of ``make_screenshots.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import napari
from qtpy.QtWidgets import QFileDialog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_screenshots import pump, shot, show_section, wait_for  # noqa: E402


def main() -> int:
    """Drive the dock and write the PNG."""
    out = Path(tempfile.mkdtemp(prefix="unet-studio-export-shot-")) / "nuclei_unet.zip"
    viewer = napari.Viewer(show=True, title="napari - U-Net Studio")
    viewer.window._qt_window.resize(1600, 1000)
    viewer.window._qt_window.move(0, 0)
    viewer.open_sample("napari-unet-studio", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
    viewer.reset_view()
    mp = widget.model_panel
    wait_for(lambda: len(mp.decoders()) > 1, timeout=300)
    mp["decoder"].value = "unpool"
    mp["steps"].value = 20
    widget.train_panel.train_button.click()
    wait_for(lambda: widget.model is not None and not widget.train.running, timeout=1800)
    QFileDialog.getSaveFileName = staticmethod(
        lambda *a, **k: (str(out), "bioimage.io model package (*.zip)"))
    widget.models_panel.export_button.click()
    wait_for(lambda: out.exists() and not widget.files.running, timeout=1800)
    pump(1.0)
    show_section(widget, widget.models_panel)
    shot(viewer, "09_export.png")
    sys.stdout.write(f"exported {out}\n")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
