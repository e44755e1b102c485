"""The U-Net Studio dock widget: paint, train, predict, save.

Opened from Plugins > U-Net Studio (``napari.yaml`` points here). The widget is thin: it
reads layers into numpy arrays and configs, runs the torch work of
:mod:`napari_unet_studio.core` in napari ``thread_worker`` generators, and turns what
they yield into layers and notifications. Torch is imported when the widget is built
(decoder and device lists), never when the package or napari starts.

Sections (each in its own module): data (``_widget_data``), model (``_widget_model``),
training (``_widget_train``, ``_widget_training``, ``_widget_live``), prediction
(``_widget_predict``), model files (``_widget_models``).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QComboBox, QGroupBox, QScrollArea, QVBoxLayout, QWidget

from . import _widget_models as models_io
from ._widget_common import friendly_message, notify_error, notify_info, notify_warning
from ._widget_data import DataPanel
from ._widget_model import ModelPanel
from ._widget_models import ModelsPanel
from ._widget_predict import PredictionMixin, PredictPanel
from ._widget_train import TrainPanel
from ._widget_training import TrainingMixin

__all__ = ["UNetStudioWidget"]


@dataclass
class StudioState:
    """Running jobs and bookkeeping, kept apart from Qt so cleanup works after deletion."""

    train_job: Any = None
    train_worker: Any = None
    train_layers: list = field(default_factory=list)
    live_layer: Any = None
    watcher: Any = None
    predict_job: Any = None
    predict_worker: Any = None
    predict_target: Any = None
    snapshots: dict = field(default_factory=dict)  # prediction layer id -> data as produced
    previews: int = 0
    labels_pushes: int = 0


def stop_jobs(state: StudioState, wait: float = 5.0) -> None:
    """Stop training and prediction and wait (at most ``wait`` s) for their threads.

    Safe to call more than once and after the widget's Qt object is gone.
    """
    if state.watcher is not None:
        try:
            state.watcher.close()
        except RuntimeError:  # Qt object already deleted
            pass
        state.watcher = None
    workers = []
    if state.train_job is not None:
        state.train_job.stop()
    if state.predict_job is not None:
        state.predict_job.stop.set()
    for worker in (state.train_worker, state.predict_worker):
        if worker is not None:
            try:
                worker.quit()
            except RuntimeError:
                continue
            workers.append(worker)
    deadline = time.monotonic() + wait
    for worker in workers:
        while time.monotonic() < deadline:
            try:
                if not worker.is_running:
                    break
            except RuntimeError:
                break
            time.sleep(0.02)


class UNetStudioWidget(PredictionMixin, TrainingMixin, QWidget):
    """Dock widget: paint a few labels, pick a decoder, train, predict.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer the widget works on (napari passes it in).
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = StudioState()
        self.model: Any = None
        self.model_source = ""
        self.closed = False

        self.data_panel = DataPanel(napari_viewer)
        self.model_panel = ModelPanel()
        self.train_panel = TrainPanel()
        self.predict_panel = PredictPanel(napari_viewer)
        self.models_panel = ModelsPanel()

        content = QWidget()
        column = QVBoxLayout(content)
        for title, panel in (
            ("1. Data: image + your painted labels", self.data_panel),
            ("2. Model", self.model_panel),
            ("3. Train (keep painting while it runs)", self.train_panel),
            ("4. Predict", self.predict_panel),
            ("5. Model file", self.models_panel),
        ):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            inner.addWidget(panel)
            column.addWidget(box)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for combo in content.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(8)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        scrollbar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(max(380, content.minimumSizeHint().width() + scrollbar + 4))

        tp, pp, mp = self.train_panel, self.predict_panel, self.models_panel
        tp.train_button.clicked.connect(self.start_training)
        tp.stop_button.clicked.connect(self.stop_training)
        tp.pause_button.clicked.connect(self.toggle_pause)
        pp.predict_button.clicked.connect(self.start_prediction)
        pp.cancel_button.clicked.connect(self.cancel_prediction)
        pp.corrections_button.clicked.connect(self.use_corrections)
        mp.save_button.clicked.connect(self.save_model)
        mp.load_button.clicked.connect(self.load_model)
        self.data_panel.pairs_changed.connect(self._follow_first_image)

        events = napari_viewer.layers.events
        events.inserted.connect(self._on_layer_inserted)
        events.removed.connect(self._on_layer_removed)
        events.reordered.connect(self._refresh_layers)
        for layer in napari_viewer.layers:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()

        self.destroyed.connect(functools.partial(_on_destroyed, self.state))
        self._watched_window: QObject | None = None
        models_io.register_widget(self)

    # ------------------------------------------------------------ layers
    def _refresh_layers(self, *_: Any) -> None:
        self.data_panel.refresh_layers()
        self.predict_panel.image.refresh()

    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layers)
        self._refresh_layers()

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        try:
            layer.events.name.disconnect(self._refresh_layers)
        except (RuntimeError, TypeError, ValueError):
            pass
        self.state.snapshots.pop(getattr(layer, "unique_id", None), None)
        self._training_layer_removed(layer)
        self._refresh_layers()

    def _follow_first_image(self) -> None:
        """Predict the training image by default."""
        rows = self.data_panel.rows
        image = rows[0].image.layer() if rows else None
        if image is not None and self.predict_panel.image.layer() is None:
            self.predict_panel.image.set_layer(image)

    # ------------------------------------------------------------- models
    def use_model(self, model: Any, source: str = "") -> None:
        """Make ``model`` (a ``TrainedModel``) the current model of the widget."""
        self.model = model
        self.model_source = source
        if model is None:
            self.models_panel.show_model(None, "")
            self.train_panel.set_has_model(False)
            return
        if self.state.train_job is None:
            self.model_panel.show_config(model.config)
        names = list(model.record.get("class_names") or [])
        if names and self.state.train_job is None:
            self.data_panel.set_class_names(names)
        self.models_panel.show_model(model, source)
        self.train_panel.set_has_model(True)

    def save_model(self) -> None:
        """Save the current model (Save button)."""
        if self.model is None:
            notify_error("There is no model to save yet; train or load one first.")
            return
        names = self.data_panel.class_names()[: self.model.config.num_classes]
        self.model.record["class_names"] = names
        path = models_io.ask_save_path(self, f"unet_{self.model.config.decoder}.pt")
        if not path:
            return
        try:
            self.model.save(path)
        except Exception as exc:  # noqa: BLE001 - disk full, no permission...
            notify_error(f"Could not save the model to '{path}': {exc}")
            return
        self.model_source = path
        self.models_panel.show_model(self.model, path)
        notify_info(f"Model saved to {path}")

    def load_model(self) -> None:
        """Load a model file (Load button)."""
        path = models_io.ask_open_path(self)
        if path:
            self.load_model_file(path)

    def load_model_file(self, path: str) -> bool:
        """Load ``path`` and make it the current model; notify on failure."""
        try:
            from .core.checkpoint import load_model

            model = load_model(path)
        except Exception as exc:  # noqa: BLE001 - shown to the user in plain words
            notify_error(friendly_message(exc, "Opening the model file"))
            return False
        self.use_model(model, source=str(path))
        notify_info(f"Loaded model '{path}' ({model.config.decoder} decoder).")
        return True

    # -------------------------------------------------------------- close
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        """Stop running jobs when the napari window closes."""
        if event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def _watch_window(self) -> None:
        """Follow the main window's close event once the widget is docked in it."""
        window = self.window()
        if window is not self and window is not self._watched_window:
            if self._watched_window is not None:
                self._watched_window.removeEventFilter(self)
            window.installEventFilter(self)
            self._watched_window = window

    def shutdown(self) -> None:
        """Stop training/prediction cleanly (closing the widget or the viewer)."""
        if self.closed:
            return
        self.closed = True
        models_io.unregister_widget(self)
        running = self.state.train_worker is not None or self.state.predict_worker is not None
        stop_jobs(self.state)
        if running:
            notify_warning("U-Net Studio closed: running training/prediction was stopped.")

    def event(self, event: QEvent) -> bool:
        """Closing the dock ('x' un-parents the widget) stops the workers."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
                self._watch_window()
            elif getattr(self, "_docked", False):
                self.shutdown()
        return super().event(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Closing the dock widget stops the workers."""
        self.shutdown()
        super().closeEvent(event)


def _on_destroyed(state: StudioState, *_: Any) -> None:
    """Last-resort cleanup when Qt deletes the widget (holds no widget reference)."""
    stop_jobs(state, wait=2.0)
