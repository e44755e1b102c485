"""Small Qt widgets, layout and formatting helpers shared by the panels."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from napari.layers import Layer
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QBoxLayout,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["LayerCombo", "add_row", "cancel_button", "format_seconds", "hint_label",
           "panel_layout", "wrapped_label"]


def format_seconds(seconds: float | None) -> str:
    """``75.2`` -> ``"1 min 15 s"``; ``None`` -> ``"?"``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def hint_label(text: str = "") -> QLabel:
    """A small grey, word-wrapped label for explanations under a field."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: gray; font-size: 11px;")
    return label


def panel_layout(panel: QWidget) -> QVBoxLayout:
    """``panel``'s vertical layout, without margins (the dock's sections frame it)."""
    layout = QVBoxLayout(panel)
    layout.setContentsMargins(0, 0, 0, 0)
    return layout


def add_row(layout: QBoxLayout, *widgets: QWidget) -> QHBoxLayout:
    """Put ``widgets`` side by side in a new row at the end of ``layout``."""
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    layout.addLayout(row)
    return row


def cancel_button() -> QPushButton:
    """A Cancel button, disabled until its job runs."""
    button = QPushButton("Cancel")
    button.setEnabled(False)
    return button


def wrapped_label(layout: QBoxLayout, text: str = "") -> QLabel:
    """A word-wrapped label (a status line) at the end of ``layout``."""
    label = QLabel(text)
    label.setWordWrap(True)
    layout.addWidget(label)
    return label


class LayerCombo(QComboBox):
    """Combo box of the viewer's layers of one type that follows ``viewer.layers``.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are listed.
    layer_type : type
        :class:`napari.layers.Image` or :class:`napari.layers.Labels`.
    accept : callable, optional
        Extra filter; layers for which it returns False are not listed.
    """

    layer_changed = Signal(object)

    def __init__(
        self,
        viewer: Any,
        layer_type: type,
        accept: Callable[[Layer], bool] | None = None,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._type = layer_type
        self._accept = accept
        self._layers: list[Layer] = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(10)
        self.currentIndexChanged.connect(self._emit_changed)
        self.refresh()

    def _emit_changed(self, _index: int) -> None:
        self.layer_changed.emit(self.layer())

    def layers(self) -> list[Layer]:
        """The layers listed, in viewer order."""
        return list(self._layers)

    def layer(self) -> Layer | None:
        """The chosen layer, or None."""
        index = self.currentIndex()
        if 0 <= index < len(self._layers):
            return self._layers[index]
        return None

    def set_layer(self, layer: Layer | None) -> None:
        """Choose ``layer`` (ignored if it is not listed)."""
        for i, candidate in enumerate(self._layers):
            if candidate is layer:
                self.setCurrentIndex(i)
                return

    def refresh(self) -> None:
        """Re-list the layers, keeping the current choice when it still exists."""
        current = self.layer()
        layers = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, self._type) and (self._accept is None or self._accept(layer))
        ]
        self.blockSignals(True)
        try:
            self.clear()
            self._layers = layers
            for layer in layers:
                self.addItem(layer.name)
            if current is not None and any(current is x for x in layers):
                self.setCurrentIndex([i for i, x in enumerate(layers) if x is current][0])
            elif layers:
                self.setCurrentIndex(len(layers) - 1 if current is None else 0)
        finally:
            self.blockSignals(False)
        if self.layer() is not current:
            self.layer_changed.emit(self.layer())
