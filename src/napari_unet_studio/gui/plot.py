"""A cheap loss curve: a small ``QWidget`` painted with ``QPainter``.

Adding a point only appends to two lists and schedules a repaint (Qt merges repaints
that pile up); a repaint draws at most about two points per pixel column (older points
are thinned), two axis labels and the curve. ``scripts/loss_plot_cost.py`` measures the
GUI-thread time per update.
"""

from __future__ import annotations

import math
import time

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossPlot"]

BACKGROUND = QColor("#262930")
AXIS = QColor("#666666")
TEXT = QColor("#bbbbbb")
CURVE = QColor("#ff9f1c")


class LossPlot(QWidget):
    """Loss against step, repainted at most ``max_fps`` times a second.

    Attributes
    ----------
    steps, losses : list
        The points shown.
    draw_count : int
        Number of repaints so far (tests and the cost script read it).
    """

    def __init__(self, parent: QWidget | None = None, max_fps: float = 10.0) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(120)
        self.setMinimumWidth(160)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.draw_count = 0
        self._min_interval = 1.0 / max_fps
        self._last_request = -math.inf

    def clear(self) -> None:
        """Start a new curve."""
        self.steps.clear()
        self.losses.clear()
        self.update()

    def add(self, step: int, loss: float | None) -> None:
        """Append a point (ignored if the loss is not a finite number)."""
        if loss is None or not math.isfinite(loss):
            return
        self.steps.append(int(step))
        self.losses.append(float(loss))
        now = time.monotonic()
        if now - self._last_request >= self._min_interval:
            self._last_request = now
            self.update()

    def redraw(self) -> None:
        """Schedule a repaint now (end of training)."""
        self._last_request = time.monotonic()
        self.update()

    def _points(self, width: int) -> tuple[list[int], list[float]]:
        """The points to draw, thinned to about two per pixel column."""
        n = len(self.steps)
        stride = max(1, n // max(1, 2 * width))
        if stride == 1:
            return self.steps, self.losses
        idx = list(range(0, n, stride))
        if idx[-1] != n - 1:
            idx.append(n - 1)
        return [self.steps[i] for i in idx], [self.losses[i] for i in idx]

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt API
        """Draw the axes and the curve."""
        self.draw_count += 1
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), BACKGROUND)
            font = painter.font()
            font.setPointSize(7)
            painter.setFont(font)
            left, right, top, bottom = 38.0, 6.0, 6.0, 16.0
            w, h = float(self.width()), float(self.height())
            area = QRectF(left, top, max(1.0, w - left - right), max(1.0, h - top - bottom))
            painter.setPen(QPen(AXIS, 1))
            painter.drawLine(area.bottomLeft(), area.bottomRight())
            painter.drawLine(area.bottomLeft(), area.topLeft())
            painter.setPen(TEXT)
            if not self.steps:
                painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "the loss curve appears here")
                return
            steps, losses = self._points(int(area.width()))
            low, high = min(losses), max(losses)
            pad = 0.05 * (high - low or 1.0)
            y0, y1 = max(0.0, low - pad), high + pad
            x1 = float(max(steps[-1], 1))
            text_flags = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            painter.drawText(QRectF(0, top - 6, left - 3, 12), text_flags, f"{y1:.3g}")
            painter.drawText(QRectF(0, area.bottom() - 6, left - 3, 12), text_flags, f"{y0:.3g}")
            painter.drawText(
                QRectF(left, area.bottom() + 2, area.width(), 12),
                Qt.AlignmentFlag.AlignRight,
                f"step {steps[-1]}  loss {losses[-1]:.4f}",
            )
            sx = area.width() / x1
            sy = area.height() / (y1 - y0 or 1.0)
            polygon = QPolygonF(
                [
                    QPointF(area.left() + s * sx, area.bottom() - (v - y0) * sy)
                    for s, v in zip(steps, losses)
                ]
            )
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setPen(QPen(CURVE, 1.3))
            painter.drawPolyline(polygon)
        finally:
            painter.end()
