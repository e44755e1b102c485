"""Training: the worker generator, the loss curve and the Train/Pause/Stop panel.

The worker never touches Qt or napari objects: it receives arrays and configs in a
:class:`TrainJob`, yields ``(kind, payload)`` records, and catches *every* exception
itself (superqt drops a ``RuntimeError`` raised inside a generator worker without
emitting ``errored`` or ``finished``, which would leave the GUI waiting forever).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ._widget_common import Throttle, format_seconds

# kinds of records the worker yields
PROGRESS, PREVIEW, DONE, ERROR = "progress", "preview", "done", "error"


@dataclass
class TrainJob:
    """Everything one training run needs, shared between the GUI and the worker.

    The GUI thread writes ``preview_source`` and ``stop_requested``; the worker writes
    ``trainer`` once. Single attribute assignments are atomic in CPython.
    """

    pairs: list[tuple[np.ndarray, np.ndarray]]
    model_config: Any
    train_config: Any
    init: Any = None
    reinit_head: bool = False
    class_names: list[str] = field(default_factory=list)
    live: bool = True
    preview_interval: float = 4.0
    preview_source: tuple[int | None, Any] | None = None
    stop_requested: bool = False
    trainer: Any = None
    created: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)  # abandons previews

    def stop(self) -> None:
        """Ask training to end after the current step (keeps the best model)."""
        self.stop_requested = True
        self.cancel.set()  # a preview of a large plane must not delay Stop or closing
        if self.trainer is not None:
            self.trainer.stop()


def train_worker(job: TrainJob) -> Generator[tuple[str, Any], None, None]:
    """Run training, yielding progress, previews, then ``("done", model)``.

    Every failure is yielded as ``("error", (exception, best model or None))``.
    """
    trainer = None
    try:
        from .core.train import Trainer

        trainer = Trainer(
            job.pairs,
            job.model_config,
            job.train_config,
            init=job.init,
            reinit_head=job.reinit_head,
            class_names=job.class_names or None,
        )
        job.trainer = trainer
        job.created.set()
        if job.stop_requested:
            trainer.stop()
        run = trainer.run()
        throttle = Throttle(job.preview_interval)
        throttle.ready()
        model = None
        while True:
            try:
                progress = next(run)
            except StopIteration as fin:
                model = fin.value
                break
            yield PROGRESS, progress
            source = job.preview_source
            if job.live and source is not None and not progress.done and throttle.ready():
                key, plane = source
                started = time.monotonic()
                prediction = trainer.preview(plane, stop=job.cancel)
                # previews may take at most about a quarter of the training time
                throttle.interval = max(job.preview_interval, 3.0 * (time.monotonic() - started))
                if prediction is not None:  # None: abandoned because Stop was pressed
                    yield PREVIEW, (key, np.asarray(prediction))
        if model is None:
            model = trainer.result()
        source = job.preview_source
        if job.live and source is not None and not job.cancel.is_set():
            final = _predict_plane(model, source[1], trainer.device, job.cancel)
            if final is not None:
                yield PREVIEW, (source[0], final)
        yield DONE, model
    except Exception as exc:  # noqa: BLE001 - every failure must reach the GUI
        best = None
        if trainer is not None:
            try:
                best = trainer.result()
                best = best if best.record.get("steps") else None
            except Exception:  # noqa: BLE001 - the model may be in a broken state
                best = None
        yield ERROR, (exc, best)
    finally:
        job.created.set()


def _predict_plane(
    model: Any, plane: Any, device: Any, stop: threading.Event | None = None
) -> np.ndarray | None:
    """Final preview with the model training returned (the best one, not the last).

    ``None`` if ``stop`` is set meanwhile (Stop or closing napari).
    """
    from .core.infer import iter_predict

    gen = iter_predict(model, plane, device=str(device), stop=stop)
    while True:
        try:
            next(gen)
        except StopIteration as fin:
            return None if fin.value.cancelled else np.asarray(fin.value.labels)


def _auto_locator() -> Any:
    from matplotlib.ticker import AutoLocator

    return AutoLocator()


class LossPlot(QWidget):
    """Small matplotlib loss curve, redrawn at most twice a second."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        # fixed margins: a constrained layout re-solves on every redraw, which doubled
        # the GUI-thread time of each redraw (bench/gui_latency.py, docs/benchmarks.md)
        self.figure = Figure(figsize=(3.2, 1.5), dpi=90)
        self.figure.subplots_adjust(left=0.17, right=0.97, top=0.94, bottom=0.28)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(140)
        self.axes = self.figure.add_subplot(111)
        self._style()
        (self.line,) = self.axes.plot([], [], lw=1.2, color="tab:orange", label="loss")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._throttle = Throttle(0.5)
        self.draw_count = 0
        self._empty = self.axes.text(
            0.5,
            0.5,
            "the loss curve appears here",
            ha="center",
            va="center",
            color="#888888",
            fontsize=8,
            transform=self.axes.transAxes,
        )
        self.axes.set_xticks([])
        self.axes.set_yticks([])

    def _style(self) -> None:
        self.figure.patch.set_facecolor("#262930")
        ax = self.axes
        ax.set_facecolor("#262930")
        ax.tick_params(colors="#bbbbbb", labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#666666")
        ax.set_xlabel("step", color="#bbbbbb", fontsize=7)
        ax.set_ylabel("loss", color="#bbbbbb", fontsize=7)

    def clear(self) -> None:
        """Start a new curve."""
        self.steps.clear()
        self.losses.clear()
        self.redraw(force=True)

    def add(self, step: int, loss: float) -> None:
        """Append a point; redraw if the last redraw is 0.5 s old."""
        if loss is None or not math.isfinite(loss):
            return
        self.steps.append(int(step))
        self.losses.append(float(loss))
        self.redraw()

    def redraw(self, force: bool = False) -> None:
        """Redraw now if ``force`` or at most every 0.5 s."""
        if not self._throttle.ready(force):
            return
        self.line.set_data(self.steps, self.losses)
        self._empty.set_visible(not self.steps)
        if self.steps:
            self.axes.xaxis.set_major_locator(_auto_locator())
            self.axes.yaxis.set_major_locator(_auto_locator())
            self.axes.set_xlim(0, max(self.steps[-1], 1))
            low, high = min(self.losses), max(self.losses)
            pad = 0.05 * (high - low or 1.0)
            self.axes.set_ylim(max(0.0, low - pad), high + pad)
        self.canvas.draw_idle()
        self.draw_count += 1


class TrainPanel(QWidget):
    """Buttons, progress bar, status line and loss curve of training."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.continue_box = QCheckBox("Continue training the current model")
        self.continue_box.setToolTip(
            "Fine-tune the model trained or loaded last instead of starting from scratch."
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
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Train on the chosen image/labels pairs (keep painting!).")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End training now and keep the best model so far.")
        for button in (self.train_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v / %m")
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        layout.addWidget(self.progress)
        self.status = QLabel("Paint a few strokes of each class, then press Train.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.loss_plot = LossPlot()
        layout.addWidget(self.loss_plot)
        self.set_running(False)

    def set_running(self, running: bool, paused: bool = False) -> None:
        """Enable the buttons that make sense in this state."""
        self.train_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.continue_box.setEnabled(
            not running and self.continue_box.property("has_model") is True
        )
        self.live_box.setEnabled(not running)

    def set_has_model(self, has_model: bool) -> None:
        """Offer 'continue training' once a model exists."""
        self.continue_box.setProperty("has_model", bool(has_model))
        self.continue_box.setEnabled(bool(has_model) and self.train_button.isEnabled())

    def show_progress(self, p: Any) -> None:
        """Show one :class:`~napari_unet_studio.core.train.TrainProgress`."""
        self.progress.setFormat("step %v / %m")
        total = int(p.total_steps or max(p.step, 1))
        self.progress.setMaximum(total)
        self.progress.setValue(min(int(p.step), total))
        loss = f"{p.loss:.4f}" if p.loss is not None and math.isfinite(p.loss) else "-"
        text = (
            f"step {p.step}/{p.total_steps or '?'} | loss {loss} | "
            f"{p.samples_per_s:.1f} samples/s | {format_seconds(p.eta)} left | {p.device}"
        )
        if p.message:
            text += f"\n{p.message}"
        self.status.setText(text)
        self.loss_plot.add(p.step, p.loss)
