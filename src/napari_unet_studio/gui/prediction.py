"""Prediction panel: image, scope, confidence/update options, Predict / Cancel, corrections.

Widgets only; :class:`~napari_unet_studio.gui.predict_controller.PredictController`
holds the logic.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QProgressBar, QPushButton, QWidget

from .layers import is_user_image
from .widgets import LayerCombo, add_row, cancel_button, panel_layout, wrapped_label

__all__ = ["CURRENT", "WHOLE", "PredictPanel"]

WHOLE, CURRENT = "whole", "current"


class PredictPanel(QWidget):
    """Widgets of the Predict section."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = panel_layout(self)
        form = QFormLayout()
        layout.addLayout(form)
        self.image = LayerCombo(viewer, Image, accept=is_user_image)
        form.addRow("Image", self.image)
        self.scope = QComboBox()
        self.scope.addItem("Whole image / all slices", WHOLE)
        self.scope.addItem("Current slice only", CURRENT)
        form.addRow("Predict", self.scope)
        self.confidence_box = QCheckBox("Add a confidence layer")
        self.confidence_box.setToolTip(
            "Also add an image layer with the probability of the predicted class (0-1): "
            "low values show where the model hesitates and more labels help most."
        )
        self.update_box = QCheckBox("Update my last prediction layer")
        self.update_box.setToolTip(
            "Write into the newest prediction layer made by U-Net Studio for this image "
            "instead of adding a new one. Your own layers are never overwritten."
        )
        layout.addWidget(self.confidence_box)
        layout.addWidget(self.update_box)
        self.predict_button = QPushButton("Predict")
        self.cancel_button = cancel_button()
        add_row(layout, self.predict_button, self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setFormat("tile %v / %m")
        layout.addWidget(self.progress)
        self.corrections_button = QPushButton("Use corrections as labels")
        self.corrections_button.setToolTip(
            "Paint the right class over mistakes on a prediction layer, then press this: "
            "the corrected pixels join your labels in a separate '<labels> + corrections' "
            "layer used for the next training. Your own labels layer is not changed."
        )
        layout.addWidget(self.corrections_button)
        self.status = wrapped_label(layout)

    def set_running(self, running: bool) -> None:
        """Enable Predict or Cancel."""
        self.predict_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
