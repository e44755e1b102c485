"""Objects and big-image panel: instances + measurements table; block-wise OME-Zarr prediction.

Widgets only; :class:`~napari_unet_studio.gui.objects_controller.ObjectsController`
holds the logic.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QWidget,
)

from .layers import is_user_image
from .widgets import LayerCombo, add_row, cancel_button, panel_layout, wrapped_label

__all__ = ["ObjectsPanel", "TABLE_COLUMNS"]

TABLE_COLUMNS = ["id", "class_name", "area", "centroid_y", "centroid_x", "mean_intensity",
                 "bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x"]


class ObjectsPanel(QWidget):
    """Widgets of the Objects / big image section."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = panel_layout(self)
        form = QFormLayout()
        layout.addLayout(form)
        self.classes_layer = LayerCombo(viewer, Labels)
        self.classes_layer.setToolTip("A class map, e.g. the prediction layer.")
        form.addRow("Class map", self.classes_layer)
        self.image = LayerCombo(viewer, Image, accept=is_user_image)
        self.image.setToolTip("Image for the mean intensity of each object (and, below, "
                              "the image to predict block by block).")
        form.addRow("Image", self.image)
        self.classes = QLineEdit()
        self.classes.setPlaceholderText("all but class 1")
        self.classes.setToolTip("Class ids to make objects of, e.g. 2 or 2,3.")
        form.addRow("Object classes", self.classes)
        self.min_size = QSpinBox()
        self.min_size.setRange(1, 10_000_000)
        self.min_size.setValue(10)
        self.min_size.setToolTip("Objects with fewer pixels are removed.")
        form.addRow("Min. size (px)", self.min_size)
        self.split = QCheckBox("Split touching objects")
        self.split.setChecked(True)
        self.split.setToolTip("Watershed on the distance to the object border; off: "
                              "connected components.")
        layout.addWidget(self.split)
        self.find_button = QPushButton("Find objects")
        self.save_button = QPushButton("Save table (CSV)...")
        self.save_button.setEnabled(False)
        add_row(layout, self.find_button, self.save_button)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setMinimumHeight(140)
        layout.addWidget(self.table)

        big = QFormLayout()
        layout.addLayout(big)
        self.level = QSpinBox()
        self.level.setRange(0, 20)
        self.level.setToolTip("Multiscale level of the image file (0 = full resolution).")
        big.addRow("Level", self.level)
        self.out = QLineEdit()
        self.out.setPlaceholderText("<image>_prediction.zarr")
        big.addRow("Output", self.out)
        self.big_objects = QCheckBox("With objects")
        layout.addWidget(self.big_objects)
        self.big_button = QPushButton("Predict file to OME-Zarr")
        self.big_button.setToolTip(
            "Predict the image's file (OME-Zarr, zarr or TIFF) block by block into an "
            "OME-Zarr store, in the worker process; memory stays bounded, and pressing it "
            "again after Cancel resumes.")
        self.cancel_button = cancel_button()
        add_row(layout, self.big_button, self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setFormat("block %v / %m")
        layout.addWidget(self.progress)
        self.status = wrapped_label(layout)

    def refresh_layers(self) -> None:
        """Re-list the layers in the combo boxes (the dock calls it on layer changes)."""
        self.classes_layer.refresh()
        self.image.refresh()

    def set_running(self, running: bool) -> None:
        """Enable the start buttons or Cancel."""
        self.find_button.setEnabled(not running)
        self.big_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
