"""Assistant panel: where to paint next, which decoder suits the image, what upsampling
does. Widgets only; the logic is in :mod:`.assistant_controller` and :mod:`.upsampling`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .widgets import add_row, cancel_button, panel_layout, wrapped_label

__all__ = ["AssistantPanel", "DOCS_URL", "COLUMNS"]

DOCS_URL = ("https://github.com/napari-unet-studio/napari-unet-studio/blob/main/docs/"
            "decoders.md")
DEFAULT_DECODERS = ("nearest", "bilinear", "unpool", "transposed", "pixelshuffle")
COLUMNS = ("decoder", "held-out", "cross-entropy", "boundary", "s/step", "parameters")


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{100 * float(value):.1f} %"
    return str(value)


class AssistantPanel(QWidget):
    """Widgets of the Assistant section (three groups, one after another)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = panel_layout(self)

        # -- where to paint next
        layout.addWidget(_title("Where to paint next"))
        self.uncertainty_box = QCheckBox("Show uncertainty layer")
        self.uncertainty_box.setToolTip(
            "An image layer '<image> uncertainty' (0-255: how unsure the live prediction "
            "is; the entropy of its class probabilities) refreshed with every preview. "
            "Hidden unless this is ticked.")
        layout.addWidget(self.uncertainty_box)
        self.next_button = QPushButton("Next uncertain region")
        self.next_button.setToolTip(
            "Move the view (and the slice) to the most uncertain region you have not "
            "painted yet; press again for the next one.")
        self.map_button = QPushButton("Map whole image")
        self.map_button.setToolTip(
            "Predict the whole image (all slices) with the current model and fill the "
            "uncertainty layer everywhere (the live preview fills only the slice you see).")
        add_row(layout, self.next_button, self.map_button)
        form = QFormLayout()
        self.region_size = QSpinBox()
        self.region_size.setRange(8, 512)
        self.region_size.setValue(48)
        self.region_size.setSuffix(" px")
        self.region_size.setToolTip("Side of the regions the button looks for.")
        form.addRow("Region size", self.region_size)
        layout.addLayout(form)

        # -- compare decoders
        layout.addWidget(_title("Compare decoders on my image"))
        grid = QGridLayout()
        self.decoder_boxes: dict[str, QCheckBox] = {}
        self._grid = grid
        self.set_decoders(list(DEFAULT_DECODERS))
        layout.addLayout(grid)
        self.oneshot_box = QCheckBox("Also one-shot (no progressive upsampling)")
        layout.addWidget(self.oneshot_box)
        form2 = QFormLayout()
        self.steps = QSpinBox()
        self.steps.setRange(1, 100000)
        self.steps.setValue(100)
        self.steps.setToolTip("Training steps per decoder and fold (the same for all).")
        form2.addRow("Steps each", self.steps)
        self.folds = QSpinBox()
        self.folds.setRange(2, 5)
        self.folds.setValue(2)
        self.folds.setToolTip(
            "Your strokes are split into this many folds (whole strokes, never half a "
            "stroke on each side); each fold is held out once and scored.")
        form2.addRow("Folds", self.folds)
        layout.addLayout(form2)
        self.compare_button = QPushButton("Compare decoders")
        self.cancel_button = cancel_button()
        add_row(layout, self.compare_button, self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(150)
        self.table.setToolTip(
            "held-out: share of the held-out stroke pixels predicted as painted (mean over "
            "classes); cross-entropy: mean -log probability of the painted class on those "
            "pixels (lower is better; it still ranks decoders that all get 100 %, and the "
            "best is picked by it); boundary: the share right near a stroke of another "
            "class; s/step: training step time; parameters: weights of the network.")
        layout.addWidget(self.table)
        self.keep_button = QPushButton("Keep selected as current model")
        self.keep_button.setEnabled(False)
        layout.addWidget(self.keep_button)
        self.compare_status = wrapped_label(layout)

        # -- what upsampling does
        layout.addWidget(_title("See what each upsampling does"))
        form3 = QFormLayout()
        self.crop_size = QComboBox()
        for n in (32, 64, 96, 128):
            self.crop_size.addItem(f"{n} px", n)
        self.crop_size.setCurrentIndex(1)
        form3.addRow("Crop (view centre)", self.crop_size)
        self.factor = QComboBox()
        self.factor.addItem("2x", 2)
        self.factor.addItem("4x", 4)
        form3.addRow("Downsample", self.factor)
        layout.addLayout(form3)
        self.show_button = QPushButton("Show upsampling")
        layout.addWidget(self.show_button)
        self.gallery = QWidget()
        self.gallery_grid = QGridLayout(self.gallery)
        self.gallery_grid.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.gallery)
        link = QLabel(f'<a href="{DOCS_URL}">How each decoder works: docs/decoders.md</a>')
        link.setOpenExternalLinks(True)
        layout.addWidget(link)
        self.docs_link = link
        self.status = wrapped_label(layout)

    # ---------------------------------------------------------------- decoders
    def set_decoders(self, names: list[str]) -> None:
        """One tick box per decoder (all ticked), from the worker's list."""
        for box in self.decoder_boxes.values():
            self._grid.removeWidget(box)
            box.deleteLater()
        self.decoder_boxes = {}
        for i, name in enumerate(names):
            box = QCheckBox(name)
            box.setChecked(True)
            self._grid.addWidget(box, i // 3, i % 3)
            self.decoder_boxes[name] = box

    def chosen_decoders(self) -> list[str]:
        """Ticked decoders, plus their one-shot forms if asked."""
        names = [n for n, b in self.decoder_boxes.items() if b.isChecked()]
        if self.oneshot_box.isChecked():
            names += [f"{n}/one-shot" for n in list(names)]
        return names

    def set_comparing(self, running: bool) -> None:
        self.compare_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.keep_button.setEnabled(False)

    # ---------------------------------------------------------------- table
    def clear_rows(self) -> None:
        self.table.setRowCount(0)

    def add_row(self, row: dict) -> None:
        """Append one result row of the comparison."""
        r = self.table.rowCount()
        self.table.insertRow(r)
        nll = row.get("heldout_nll")
        cells = (row["decoder"], _fmt(row.get("heldout"), True),
                 "-" if nll is None else f"{float(nll):.3f}", _fmt(row.get("boundary"), True),
                 "-" if row.get("step_seconds") is None else f"{row['step_seconds']:.3f}",
                 "-" if row.get("parameters") is None else f"{int(row['parameters']):,}")
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if c:
                right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                item.setTextAlignment(int(right.value if hasattr(right, "value") else right))
            self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def mark_best(self, decoder: str | None) -> int | None:
        """Bold the best row, add a star to its name and select it; its index."""
        found = None
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            name = item.text().removeprefix("\u2605 ")
            best = name == decoder
            item.setText(("\u2605 " if best else "") + name)
            for c in range(self.table.columnCount()):
                cell = self.table.item(r, c)
                font = cell.font()
                font.setBold(best)
                cell.setFont(font)
            if best:
                found = r
        if found is not None:
            self.table.selectRow(found)
        self.table.resizeColumnsToContents()
        return found

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    # ---------------------------------------------------------------- gallery
    def show_gallery(self, panels: list[dict], scale: int = 2) -> None:
        """Small images side by side (3 per row), each with its name and explanation."""
        while self.gallery_grid.count():
            item = self.gallery_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._images = []  # QImage does not own the numpy buffers
        for i, panel in enumerate(panels):
            cell = QWidget()
            col = QVBoxLayout(cell)
            col.setContentsMargins(2, 2, 2, 2)
            pic = QLabel()
            pic.setPixmap(_pixmap(np.asarray(panel["image"]), scale, self._images))
            col.addWidget(pic)
            name = QLabel(f"<b>{panel['name']}</b>")
            col.addWidget(name)
            about = panel["about"] + (f" (kernel: {panel['source']})" if panel.get("source")
                                      else "")
            text = QLabel(about)
            text.setWordWrap(True)
            text.setMaximumWidth(max(120, np.asarray(panel["image"]).shape[1] * scale))
            font = text.font()
            font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
            text.setFont(font)
            col.addWidget(text)
            col.addStretch(1)
            cell.setToolTip(about)
            self.gallery_grid.addWidget(cell, i // 3, i % 3)


def _title(text: str) -> QLabel:
    label = QLabel(f"<b>{text}</b>")
    return label


def _pixmap(image: np.ndarray, scale: int, keep: list) -> QPixmap:
    """Grey-scale pixmap of a float image, stretched to its own min..max, enlarged
    ``scale`` times without smoothing (pixels stay visible)."""
    a = np.nan_to_num(np.asarray(image, np.float32))
    lo, hi = float(a.min()), float(a.max())
    u8 = np.ascontiguousarray(np.round(255 * (a - lo) / (hi - lo if hi > lo else 1.0))
                              .astype(np.uint8))
    if scale > 1:
        u8 = np.ascontiguousarray(np.repeat(np.repeat(u8, scale, 0), scale, 1))
    keep.append(u8)
    h, w = u8.shape
    qimg = QImage(u8.data, w, h, w, QImage.Format.Format_Grayscale8)
    return QPixmap.fromImage(qimg)
