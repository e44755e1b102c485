"""Model files: the current model (a ``ModelRef``), the panel, the reader hand-over.

Models in the napari process are ``ModelRef`` objects from the worker (a path on disk
plus its config and record), never torch objects. A model file dropped on napari is
recognised by :mod:`napari_unet_studio._reader` without torch; its path is handed to
every open dock, which asks its worker to load it (or kept until a dock opens).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtGui import QFont
from qtpy.QtWidgets import QFileDialog, QPlainTextEdit, QPushButton, QWidget

from .widgets import add_row, panel_layout, wrapped_label

__all__ = [
    "ModelSlot",
    "ModelsPanel",
    "ask_export_path",
    "ask_open_path",
    "ask_save_path",
    "deliver_model_path",
    "pending_paths",
    "register_dock",
    "unregister_dock",
]

MODEL_FILTER = "U-Net Studio model (*.pt *.zip);;All files (*)"
#: file-dialog filter -> (export format, file ending)
EXPORT_FILTERS = {
    "bioimage.io model package (*.zip)": ("bioimageio", ".zip"),
    "TorchScript (*.pt)": ("torchscript", ".pt"),
    "ONNX (*.onnx)": ("onnx", ".onnx"),
}

_open_docks: weakref.WeakSet = weakref.WeakSet()
_pending: list[str] = []


# ---------------------------------------------------------------- reader hand-over
def register_dock(dock: Any) -> None:
    """Remember an open dock (weakly) and give it the model files read before it opened."""
    _open_docks.add(dock)
    while _pending:
        dock.load_model_file(_pending.pop(0))


def unregister_dock(dock: Any) -> None:
    """Forget a closed dock."""
    _open_docks.discard(dock)


def open_docks() -> list[Any]:
    """The docks that are open now."""
    return [d for d in list(_open_docks) if not getattr(d, "closed", False)]


def deliver_model_path(path: str) -> bool:
    """Give a model file to the open docks; keep it for later if none is open.

    Returns
    -------
    bool
        True if a dock took it now.
    """
    docks = open_docks()
    if not docks:
        _pending.append(str(path))
        return False
    for dock in docks:
        dock.load_model_file(str(path))
    return True


def pending_paths() -> list[str]:
    """Model files read while no dock was open."""
    return list(_pending)


# -------------------------------------------------------------------- file dialogs
def ask_save_path(parent: QWidget, suggestion: str) -> str:
    """Ask where to save (tests monkeypatch ``QFileDialog.getSaveFileName``)."""
    path, _ = QFileDialog.getSaveFileName(
        parent, "Save U-Net Studio model", suggestion, MODEL_FILTER
    )
    if path and not path.lower().endswith(".pt"):
        path += ".pt"
    return path


def ask_export_path(parent: QWidget, stem: str) -> tuple[str, str]:
    """Ask where to export and in which format (the dialog's file type decides).

    Returns ``(path, format)``; ``("", "")`` when cancelled. Tests monkeypatch
    ``QFileDialog.getSaveFileName``.
    """
    path, chosen = QFileDialog.getSaveFileName(
        parent, "Export U-Net Studio model", f"{stem}.zip", ";;".join(EXPORT_FILTERS))
    if not path:
        return "", ""
    fmt, ending = EXPORT_FILTERS.get(chosen, ("", ""))
    if not fmt:  # no filter reported: the file name decides
        low = path.lower()
        fmt, ending = next(((f, e) for f, e in EXPORT_FILTERS.values() if low.endswith(e)),
                           ("bioimageio", ".zip"))
    if not path.lower().endswith(ending):
        path += ending
    return path, fmt


def ask_open_path(parent: QWidget) -> str:
    """Ask which model to open (tests monkeypatch ``QFileDialog.getOpenFileName``)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open U-Net Studio model", "", MODEL_FILTER)
    return path


# ------------------------------------------------------------------- current model
class ModelSlot:
    """The current model of a dock and who wants to know when it changes.

    Attributes
    ----------
    ref : ModelRef or None
        The model (path + config + record), or None.
    source : str
        Where it came from, for the panel ("trained here ...", a file path).
    """

    def __init__(self) -> None:
        self.ref: Any = None
        self.source = ""
        self._listeners: list[Callable[[Any, str], None]] = []

    def subscribe(self, callback: Callable[[Any, str], None]) -> None:
        """Call ``callback(ref, source)`` on every change."""
        self._listeners.append(callback)

    def set(self, ref: Any, source: str = "") -> None:
        """Make ``ref`` the current model."""
        self.ref = ref
        self.source = source if ref is not None else ""
        for callback in list(self._listeners):
            callback(ref, self.source)

    @property
    def decoder(self) -> str:
        """Decoder of the current model (``"?"`` without one)."""
        return str((getattr(self.ref, "config", None) or {}).get("decoder", "?"))


def describe(ref: Any) -> str:
    """The summary text of a ``ModelRef`` (never raises)."""
    try:
        return str(ref.describe())
    except Exception as exc:  # noqa: BLE001 - a summary must never break the GUI
        return f"(no summary: {exc})"


class ModelsPanel(QWidget):
    """Save/Load buttons and a read-only summary of the current model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = panel_layout(self)
        self.save_button = QPushButton("Save model...")
        self.load_button = QPushButton("Load model...")
        self.export_button = QPushButton("Export...")
        self.export_button.setToolTip(
            "Share the model: a bioimage.io package (.zip: for deepImageJ, ilastik, "
            "QuPath, bioimage.io), TorchScript or ONNX. Made from the current model and "
            "the first image of the Data panel.")
        self.save_button.setEnabled(False)
        self.export_button.setEnabled(False)
        add_row(layout, self.save_button, self.load_button, self.export_button)
        self.current = wrapped_label(layout, "No model yet: train one or load a saved model (.pt).")
        self.info = QPlainTextEdit()
        self.info.setReadOnly(True)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        font.setPointSize(8)
        self.info.setFont(font)
        self.info.setMaximumHeight(150)
        self.info.setPlaceholderText("Model information appears here.")
        layout.addWidget(self.info)

    def show_model(self, ref: Any, source: str) -> None:
        """Show the summary of ``ref``."""
        self.save_button.setEnabled(ref is not None)
        self.export_button.setEnabled(ref is not None)
        if ref is None:
            self.current.setText("No model yet: train one or load a saved model (.pt).")
            self.info.setPlainText("")
            return
        self.current.setText(f"Current model: {source}")
        self.info.setPlainText(describe(ref))
