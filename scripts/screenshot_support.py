"""Helpers of the screenshot scripts (``make_screenshots.py``, ``assistant_screenshots.py``):
a napari window with the nuclei sample and the docked plugin, waiting on Qt, screenshots.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import napari
from qtpy.QtWidgets import QApplication, QScrollArea

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def pump(seconds: float) -> None:
    """Let Qt process events for ``seconds``."""
    end = time.monotonic() + seconds
    app = QApplication.instance()
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    """Process events until ``condition()`` or ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        pump(0.05)
    if not condition():
        raise SystemExit(f"timed out after {timeout} s")


def shot(viewer: napari.Viewer, name: str) -> None:
    """Save a screenshot of the whole window."""
    pump(0.5)
    path = OUT / name
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    compress(path)
    sys.stdout.write(f"wrote {path}\n")


def compress(path: Path) -> None:
    """Re-save as a 256-colour PNG (smaller files; screenshots need few colours)."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def show_section(widget: Any, panel: Any) -> None:
    """Scroll the dock so that ``panel`` is visible."""
    scroll = widget.findChild(QScrollArea)
    scroll.ensureWidgetVisible(panel, 0, 0)
    pump(0.2)


def nuclei_studio() -> tuple[napari.Viewer, Any]:
    """``(viewer, widget)``: a 1600 x 1000 napari window with the nuclei sample and the
    docked U-Net Studio (the worker may still be starting); creates :data:`OUT`."""
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="napari - U-Net Studio")
    viewer.window._qt_window.resize(1600, 1000)
    viewer.window._qt_window.move(0, 0)
    viewer.open_sample("napari-unet-studio", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
    viewer.layers["scribbles"].opacity = 0.9
    viewer.reset_view()
    return viewer, widget
