"""Models panel (save, load, info) and the hand-over of models opened by the reader.

A model file dropped on napari is read by :mod:`napari_unet_studio._reader`; it gives the
model to every open U-Net Studio widget, or keeps it until a widget opens.
"""

from __future__ import annotations

import weakref
from typing import Any

from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

MODEL_FILTER = "U-Net Studio model (*.pt);;All files (*)"

_open_widgets: weakref.WeakSet = weakref.WeakSet()
_pending: list[tuple[Any, str]] = []


def register_widget(widget: Any) -> None:
    """Remember an open widget (weakly) and give it models read before it opened."""
    _open_widgets.add(widget)
    while _pending:
        model, source = _pending.pop(0)
        widget.use_model(model, source=source)


def unregister_widget(widget: Any) -> None:
    """Forget a closed widget."""
    _open_widgets.discard(widget)


def deliver_model(model: Any, source: str) -> bool:
    """Give ``model`` to the open widgets; keep it for later if none is open.

    Returns
    -------
    bool
        True if a widget took it now.
    """
    widgets = [w for w in list(_open_widgets) if not getattr(w, "closed", False)]
    if not widgets:
        _pending.append((model, source))
        return False
    for widget in widgets:
        widget.use_model(model, source=source)
    return True


def pending_models() -> list[tuple[Any, str]]:
    """Models read while no widget was open (for tests and the widget)."""
    return list(_pending)


def ask_save_path(parent: QWidget, suggestion: str) -> str:
    """Ask where to save (tests monkeypatch ``QFileDialog.getSaveFileName``)."""
    path, _ = QFileDialog.getSaveFileName(
        parent, "Save U-Net Studio model", suggestion, MODEL_FILTER
    )
    if path and not path.lower().endswith(".pt"):
        path += ".pt"
    return path


def ask_open_path(parent: QWidget) -> str:
    """Ask which model to open (tests monkeypatch ``QFileDialog.getOpenFileName``)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open U-Net Studio model", "", MODEL_FILTER)
    return path


class ModelsPanel(QWidget):
    """Save/Load buttons and a read-only summary of the current model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.save_button = QPushButton("Save model...")
        self.load_button = QPushButton("Load model...")
        self.save_button.setEnabled(False)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.load_button)
        layout.addLayout(buttons)
        self.current = QLabel("No model yet: train one or load a saved model (.pt).")
        self.current.setWordWrap(True)
        layout.addWidget(self.current)
        self.info = QPlainTextEdit()
        self.info.setReadOnly(True)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        font.setPointSize(8)
        self.info.setFont(font)
        self.info.setMaximumHeight(150)
        self.info.setPlaceholderText("Model information appears here.")
        layout.addWidget(self.info)

    def show_model(self, model: Any, source: str) -> None:
        """Show the summary of ``model`` (``model.describe()``)."""
        self.save_button.setEnabled(model is not None)
        if model is None:
            self.current.setText("No model yet: train one or load a saved model (.pt).")
            self.info.setPlainText("")
            return
        self.current.setText(f"Current model: {source}")
        try:
            self.info.setPlainText(model.describe())
        except Exception as exc:  # noqa: BLE001 - a summary must never break the GUI
            self.info.setPlainText(f"(no summary: {exc})")
