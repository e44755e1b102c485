"""Data panel: (image, labels) pairs, one-click scribble layers and class names.

It reads layers and checks them; it never writes the user's labels (a scribble layer it
makes is new and empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .layers import (
    image_channels,
    is_user_image,
    is_user_labels,
    layer_array,
    spatial_shape,
    unique_layer_name,
)
from .notify import UserProblem, notify_warning
from .widgets import LayerCombo, panel_layout

DEFAULT_CLASS_NAMES = ("background", "foreground")


@dataclass
class TrainingPair:
    """One image with its labels, as arrays ready for the trainer."""

    image: np.ndarray
    labels: np.ndarray  # a private copy: the user may keep painting the layer
    image_layer: Image
    labels_layer: Labels

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray]:
        """``(image, labels)`` as the worker's ``train`` takes them."""
        return self.image, self.labels


class PairRow(QWidget):
    """One row: image combo, labels combo, 'New scribble layer' and remove buttons."""

    remove_requested = Signal(object)
    new_scribbles_requested = Signal(object)

    def __init__(self, viewer: Any, removable: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = panel_layout(self)
        top, middle, bottom = QHBoxLayout(), QHBoxLayout(), QHBoxLayout()
        layout.addLayout(top)
        layout.addLayout(middle)
        layout.addLayout(bottom)
        self.image = LayerCombo(viewer, Image, accept=is_user_image)
        self.labels = LayerCombo(viewer, Labels, accept=is_user_labels)
        self.image.setToolTip("The image to learn from.")
        self.labels.setToolTip("Your painted labels: 0 = unlabeled, 1, 2, ... = classes.")
        top.addWidget(_fixed_label("Image"))
        top.addWidget(self.image, 1)
        middle.addWidget(_fixed_label("Labels"))
        middle.addWidget(self.labels, 1)
        bottom.addStretch(1)
        self.new_button = QPushButton("New scribble layer")
        self.new_button.setToolTip(
            "Add an empty labels layer matching the image, ready to paint (class 1)."
        )
        self.new_button.clicked.connect(lambda: self.new_scribbles_requested.emit(self))
        bottom.addWidget(self.new_button)
        self.remove_button = QPushButton("x")
        self.remove_button.setFixedWidth(24)
        self.remove_button.setToolTip("Remove this pair from training (the layers stay).")
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))
        self.remove_button.setVisible(removable)
        top.addWidget(self.remove_button)
        self.image.layer_changed.connect(self._match_labels)
        self._match_labels(self.image.layer())

    def refresh(self) -> None:
        """Re-list the viewer's layers."""
        self.image.refresh()
        self.labels.refresh()

    def _match_labels(self, image: Image | None) -> None:
        """Prefer a labels layer whose shape fits the chosen image."""
        current = self.labels.layer()
        if image is None or (current is not None and _fits(image, current)):
            return
        for candidate in reversed(self.labels.layers()):
            if _fits(image, candidate):
                self.labels.set_layer(candidate)
                return


def _fixed_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setFixedWidth(48)
    return label


def _fits(image: Image, labels: Labels) -> bool:
    try:
        image_channels(tuple(layer_array(image).shape), tuple(labels.data.shape))
    except UserProblem:
        return False
    return True


def check_aligned(image: Image, labels: Labels) -> None:
    """Refuse an image and labels drawn at different places (scale or translate differ).

    Training pairs image pixel ``[i, j]`` with labels pixel ``[i, j]``; if napari draws the
    two layers with different scale/translate, the strokes the user sees over an object
    would teach the network with other pixels (silent misalignment).

    Raises
    ------
    UserProblem
        Naming both layers, what differs, and how to fix it.
    """
    nd = len(labels.data.shape)
    image_scale = np.asarray(image.scale, dtype=float)[:nd]
    atol = 1e-6 * float(np.max(np.abs(image_scale))) if image_scale.size else 1e-9
    for what, a, b in (
        ("scale", image.scale, labels.scale),
        ("translate", image.translate, labels.translate),
    ):
        mine, theirs = np.asarray(a, dtype=float)[:nd], np.asarray(b, dtype=float)[:nd]
        if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=1e-6, atol=atol):
            raise UserProblem(
                f"The labels '{labels.name}' are not drawn on the pixels of the image "
                f"'{image.name}': their {what} differs ({tuple(float(v) for v in theirs)} vs "
                f"{tuple(float(v) for v in mine)}), so your strokes would train on other "
                f"pixels than the ones you painted over. Give both layers the same {what} "
                "(layer properties), or paint on a layer made with 'New scribble layer'."
            )


class DataPanel(QWidget):
    """Choose what to train on and name the classes."""

    pairs_changed = Signal()

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewer = viewer
        layout = panel_layout(self)
        self._rows_box = QVBoxLayout()
        layout.addLayout(self._rows_box)
        self.rows: list[PairRow] = []
        self.add_pair_button = QPushButton("Add another image/labels pair")
        self.add_pair_button.clicked.connect(self.add_row)
        layout.addWidget(self.add_pair_button)

        self.class_table = QTableWidget(0, 2)
        self.class_table.setHorizontalHeaderLabels(["label", "class name (double-click to rename)"])
        self.class_table.verticalHeader().setVisible(False)
        header = self.class_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.class_table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.class_table.setMaximumHeight(140)
        layout.addWidget(self.class_table)
        buttons = QHBoxLayout()
        self.add_class_button = QPushButton("Add class")
        self.add_class_button.setToolTip("Add a class and select its label for painting.")
        self.add_class_button.clicked.connect(self._add_class_clicked)
        buttons.addWidget(self.add_class_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.set_class_names(list(DEFAULT_CLASS_NAMES))
        self.add_row()

    # ----------------------------------------------------------------- pairs
    def add_row(self) -> PairRow:
        """Add an (image, labels) row."""
        row = PairRow(self._viewer, removable=bool(self.rows))
        row.remove_requested.connect(self._remove_row)
        row.new_scribbles_requested.connect(self.new_scribble_layer)
        row.labels.layer_changed.connect(self._labels_chosen)
        row.image.layer_changed.connect(lambda *_: self.pairs_changed.emit())
        self.rows.append(row)
        self._rows_box.addWidget(row)
        self._labels_chosen(row.labels.layer())
        self.pairs_changed.emit()
        return row

    def _remove_row(self, row: PairRow) -> None:
        if row in self.rows and len(self.rows) > 1:
            self.rows.remove(row)
            row.setParent(None)
            row.deleteLater()
            self.pairs_changed.emit()

    def refresh_layers(self) -> None:
        """Follow the viewer's layer list (called on inserted/removed/renamed)."""
        for row in self.rows:
            row.refresh()

    def set_locked(self, locked: bool) -> None:
        """Freeze the pair choice while training runs (painting stays possible)."""
        for row in self.rows:
            row.setEnabled(not locked)
        self.add_pair_button.setEnabled(not locked)
        self.add_class_button.setEnabled(not locked)

    def chosen_layers(self) -> list[tuple[Image, Labels]]:
        """``(image layer, labels layer)`` of every complete row."""
        out = []
        for row in self.rows:
            image, labels = row.image.layer(), row.labels.layer()
            if image is not None and labels is not None:
                out.append((image, labels))
        return out

    def collect_pairs(self) -> tuple[list[TrainingPair], int, int]:
        """Arrays to train on, checked, with copies of the labels.

        Returns
        -------
        pairs : list of TrainingPair
        in_channels : int
        num_classes : int
            The largest label painted (at least 2).

        Raises
        ------
        UserProblem
            No layers chosen, nothing painted, shapes that do not fit, one class only.
        """
        chosen = self.chosen_layers()
        if not chosen:
            raise UserProblem(
                "Choose an image and a labels layer first (or click 'New scribble layer' "
                "and paint a few strokes of each class)."
            )
        pairs: list[TrainingPair] = []
        channels: set[int] = set()
        present: set[int] = set()
        for image_layer, labels_layer in chosen:
            labels = np.array(layer_array(labels_layer), copy=True)
            image = layer_array(image_layer)
            channels.add(image_channels(tuple(image.shape), tuple(labels.shape)))
            check_aligned(image_layer, labels_layer)
            if labels.min() < 0:
                raise UserProblem(
                    f"The labels layer '{labels_layer.name}' holds negative values; use "
                    "0 for unlabeled and 1, 2, ... for classes."
                )
            values = np.unique(labels)
            present.update(int(v) for v in values if v > 0)
            pairs.append(TrainingPair(image, labels, image_layer, labels_layer))
        if not present:
            names = ", ".join(f"'{lab.name}'" for _, lab in chosen)
            raise UserProblem(
                f"No labels painted yet on {names}. Paint a few strokes of each class "
                "(label 1, label 2, ...) and press Train again."
            )
        if len(channels) > 1:
            raise UserProblem(
                "The images have different numbers of channels; train on images of one kind."
            )
        if len(present) < 2:
            (only,) = present
            raise UserProblem(
                f"Only class {only} ({self.class_name(only)}) is painted. Paint at least two "
                "classes (for example background and the objects) so the network can learn "
                "to tell them apart."
            )
        num_classes = max(2, max(present))
        self.ensure_classes(num_classes)
        return pairs, channels.pop(), num_classes

    # ------------------------------------------------------ scribble layers
    def new_scribble_layer(self, row: PairRow | None = None) -> Labels | None:
        """Add an empty Labels layer matching the row's image, ready to paint."""
        row = row or self.rows[0]
        image = row.image.layer()
        if image is None:
            notify_warning("Open or choose an image first; the scribble layer is made to match it.")
            return None
        shape = spatial_shape(image)
        nd = len(shape)
        layer = Labels(
            np.zeros(shape, dtype=np.uint8),
            name=unique_layer_name(self._viewer, f"{image.name} scribbles"),
            scale=tuple(image.scale)[-nd:],
            translate=tuple(image.translate)[-nd:],
            metadata={"class_names": self.class_names()},
        )
        self._viewer.add_layer(layer)
        row.labels.refresh()
        row.labels.set_layer(layer)
        self._viewer.layers.selection.active = layer
        layer.selected_label = 1
        layer.brush_size = int(max(3, min(40, min(shape[-2:]) // 60)))
        layer.mode = "paint"
        return layer

    # ---------------------------------------------------------- class names
    def class_names(self) -> list[str]:
        """Names of classes 1..K as shown in the table."""
        names = []
        for r in range(self.class_table.rowCount()):
            item = self.class_table.item(r, 1)
            text = item.text().strip() if item is not None else ""
            names.append(text or f"class {r + 1}")
        return names

    def class_name(self, label: int) -> str:
        """Name of class ``label`` (1-based)."""
        names = self.class_names()
        return names[label - 1] if 0 < label <= len(names) else f"class {label}"

    def set_class_names(self, names: list[str]) -> None:
        """Show ``names`` for labels 1..len(names)."""
        self.class_table.setRowCount(0)
        for name in names:
            self._append_class(str(name))

    def ensure_classes(self, k: int) -> None:
        """Make sure the table lists at least ``k`` classes."""
        while self.class_table.rowCount() < k:
            self._append_class(f"class {self.class_table.rowCount() + 1}")

    def _append_class(self, name: str) -> None:
        r = self.class_table.rowCount()
        self.class_table.insertRow(r)
        label_item = QTableWidgetItem(str(r + 1))
        label_item.setFlags(label_item.flags() & ~Qt.ItemFlag.ItemIsEditable)
        self.class_table.setItem(r, 0, label_item)
        self.class_table.setItem(r, 1, QTableWidgetItem(name))
        self._colour_rows()

    def _add_class_clicked(self) -> None:
        self._append_class(f"class {self.class_table.rowCount() + 1}")
        labels = self.rows[0].labels.layer() if self.rows else None
        if labels is not None:
            labels.selected_label = self.class_table.rowCount()

    def _colour_rows(self) -> None:
        labels = self.rows[0].labels.layer() if getattr(self, "rows", None) else None
        for r in range(self.class_table.rowCount()):
            item = self.class_table.item(r, 0)
            if item is None or labels is None:
                continue
            rgba = np.asarray(labels.get_color(r + 1), dtype=float)
            item.setBackground(QColor.fromRgbF(*[float(c) for c in rgba[:3]], 1.0))

    def _labels_chosen(self, labels: Labels | None) -> None:
        """Adopt the class names stored with a labels layer (e.g. the samples)."""
        if labels is not None:
            names = (labels.metadata or {}).get("class_names")
            if names and self.rows and labels is self.rows[0].labels.layer():
                self.set_class_names([str(n) for n in names])
        self._colour_rows()
        self.pairs_changed.emit()
