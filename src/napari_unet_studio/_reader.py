"""Reader contribution: open a U-Net Studio model file (``*.pt``) in napari.

Dropping a model file on napari (or File > Open) gives the model to the U-Net Studio
widget (or keeps it until the widget opens) and adds no layer: the reader returns the
null-layer sentinel ``[(None,)]``. Other ``.pt`` files are left to other readers
(``get_reader`` returns ``None``). Deciding that costs no torch import: a model file is a
zip archive whose pickled dict carries our format marker.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT_MARKER = b"napari-unet-studio-model"  # == core.checkpoint.FORMAT, kept torch-free

ReaderFunction = Callable[[Any], list[tuple]]


def is_model_file(path: str | os.PathLike) -> bool:
    """True if ``path`` looks like a model saved by napari-unet-studio.

    Reads only the small pickle record of the ``torch.save`` zip archive; never
    unpickles anything.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if not names:
                return False
            with archive.open(names[0]) as fh:
                head = fh.read(1 << 20)
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return FORMAT_MARKER in head


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """napari reader hook: a reader for U-Net Studio model files, else ``None``.

    Parameters
    ----------
    path : str or list of str
        What the user opened.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = str(path)
    if not path.lower().endswith(".pt") or not Path(path).is_file():
        return None
    if not is_model_file(path):
        return None
    return read_model


def read_model(path: str | list[str]) -> list[tuple]:
    """Load the model and give it to the U-Net Studio widget; adds no layer.

    A damaged file is reported as a napari error notification.
    """
    from napari.utils import notifications

    from ._widget_models import deliver_model

    if isinstance(path, (list, tuple)):
        path = path[0]
    try:
        from .core.checkpoint import load_model

        model = load_model(path)
    except Exception as exc:  # noqa: BLE001 - shown to the user in plain words
        notifications.show_error(str(exc))
        return [(None,)]
    if not deliver_model(model, source=str(path)) and not _open_widget():
        notifications.show_info(
            f"Model '{Path(path).name}' read; open Plugins > U-Net Studio to use it."
        )
        return [(None,)]
    notifications.show_info(f"Model '{Path(path).name}' loaded into U-Net Studio.")
    return [(None,)]


def _open_widget() -> bool:
    """Dock the U-Net Studio widget in the current viewer; it takes the pending model."""
    try:
        import napari

        viewer = napari.current_viewer()
        if viewer is None:
            return False
        viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
    except Exception:  # noqa: BLE001 - no window (headless) or plugin not registered
        return False
    from ._widget_models import pending_models

    return not pending_models()
