"""Training panel: Train / Pause / Stop, progress, status line and the loss curve.

Widgets only; :class:`~napari_unet_studio.gui.train_controller.TrainController` holds
the logic.
"""

from __future__ import annotations

import math
from typing import Any

from qtpy.QtWidgets import QCheckBox, QProgressBar, QPushButton, QWidget

from .plot import LossPlot
from .widgets import add_row, format_seconds, panel_layout, wrapped_label

__all__ = ["TrainPanel", "progress_text"]


def progress_text(p: dict) -> str:
    """One status line for a ``("progress", dict)`` event of a training job."""
    loss = p.get("loss")
    loss_text = f"{loss:.4f}" if isinstance(loss, (int, float)) and math.isfinite(loss) else "-"
    parts = [f"step {p.get('step', 0)}/{p.get('total_steps') or '?'}", f"loss {loss_text}"]
    rate = p.get("samples_per_s")
    if isinstance(rate, (int, float)) and rate > 0:
        parts.append(f"{rate:.1f} samples/s")
    parts.append(f"{format_seconds(p.get('eta'))} left")
    if p.get("device"):
        parts.append(str(p["device"]))
    text = " | ".join(parts)
    if p.get("paused"):
        text += " | paused"
    if p.get("message"):
        text += f"\n{p['message']}"
    return text


class TrainPanel(QWidget):
    """Buttons, progress bar, status line and loss curve of training."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = panel_layout(self)
        self.continue_box = QCheckBox("Continue training the current model")
        self.continue_box.setToolTip(
            "Fine-tune the model trained or loaded last instead of starting a new one."
        )
        self.continue_box.setEnabled(False)
        layout.addWidget(self.continue_box)
        self.live_box = QCheckBox("Live prediction while training")
        self.live_box.setToolTip(
            "Every few seconds, predict the slice you are looking at with the current "
            "weights into the '<image> prediction' layer."
        )
        self.live_box.setChecked(True)
        layout.addWidget(self.live_box)
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Train on the chosen image/labels pairs (keep painting!).")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End training now and keep the best model so far.")
        add_row(layout, self.train_button, self.pause_button, self.stop_button)
        self.progress = QProgressBar()
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        layout.addWidget(self.progress)
        self.status = wrapped_label(layout, "Paint a few strokes of each class, then press Train.")
        self.loss_plot = LossPlot()
        layout.addWidget(self.loss_plot)
        self._has_model = False
        self.set_running(False)

    def set_running(self, running: bool, paused: bool = False) -> None:
        """Enable the buttons that make sense in this state."""
        self.train_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.continue_box.setEnabled(not running and self._has_model)
        self.live_box.setEnabled(not running)

    def set_has_model(self, has_model: bool) -> None:
        """Offer 'continue training' once a model exists."""
        self._has_model = bool(has_model)
        self.continue_box.setEnabled(self._has_model and self.train_button.isEnabled())
        if not self._has_model:
            self.continue_box.setChecked(False)

    def starting(self) -> None:
        """Reset the progress display for a new run."""
        self.loss_plot.clear()
        self.progress.setMaximum(100)
        self.progress.setValue(0)
        self.progress.setFormat("starting...")
        self.status.setText("Preparing the data and the network...")

    def show_progress(self, p: dict[str, Any]) -> None:
        """Show one training progress event."""
        step = int(p.get("step") or 0)
        total = int(p.get("total_steps") or max(step, 1))
        self.progress.setFormat("step %v / %m")
        self.progress.setMaximum(total)
        self.progress.setValue(min(step, total))
        self.status.setText(progress_text(p))
        self.loss_plot.add(step, p.get("loss"))
