"""The U-Net Studio dock widget: paint, train, predict, save.

Opened from Plugins > U-Net Studio (``napari.yaml`` points at :class:`UNetStudioWidget`).
The dock imports no torch: all torch work (training, live previews, prediction, model
files) runs in a worker process reached through a ``WorkerClient``, started as soon as
the dock opens so that Train starts at once. The dock builds the panels, hands each
controller its collaborators, follows the viewer's layer list, and ends the worker when
the dock or napari closes.
"""

from __future__ import annotations

import functools
from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QComboBox, QGroupBox, QScrollArea, QVBoxLayout, QWidget

from . import models as models_io
from .assistant import AssistantPanel
from .assistant_controller import AssistantController
from .data import DataPanel
from .model_controller import ModelFilesController
from .model_form import SettingsPanel
from .models import ModelSlot, ModelsPanel
from .notify import Notifier
from .objects import ObjectsPanel
from .objects_controller import ObjectsController
from .predict_controller import PredictController
from .prediction import PredictPanel
from .train_controller import TrainController
from .training import TrainPanel
from .upsampling import UpsamplingController
from .volume import update_dims_advice

__all__ = ["UNetStudioWidget", "make_client"]


def make_client() -> Any:
    """The worker process client the dock uses (tests replace this function)."""
    from ..worker import WorkerClient

    return WorkerClient()


class _StartFailure:
    """A ``WorkerError``-like failure for a worker client that could not be created."""

    kind = "start-failed"
    best = None

    def __init__(self, exc: BaseException) -> None:
        self.message = (
            "The U-Net Studio worker process could not be started "
            f"({type(exc).__name__}: {exc}). Training and prediction are not available; "
            "restart napari, and reinstall napari-unet-studio if this persists."
        )
        self.detail = repr(exc)


class _FailedJob:
    """A job that fails at once with the client's start failure."""

    def __init__(self, kind: str, failure: _StartFailure) -> None:
        self.kind = kind
        self._events = [("error", failure)]
        self.finished = False

    def poll(self) -> list[tuple[str, Any]]:
        events, self._events = self._events, []
        self.finished = True
        return events

    def stop(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def update_labels(self, *args: Any, **kwargs: Any) -> None: ...
    def set_preview_source(self, *args: Any, **kwargs: Any) -> None: ...


class UnavailableClient:
    """Stands in for the worker client when it cannot even be created.

    Every job fails with one plain-words message; the dock stays usable for painting.
    """

    alive = False

    def __init__(self, exc: BaseException) -> None:
        self.failure = _StartFailure(exc)

    def start(self) -> None: ...
    def info(self) -> None:
        return None

    def shutdown(self, timeout: float = 2.0) -> None: ...

    def train(self, *args: Any, **kwargs: Any) -> _FailedJob:
        return _FailedJob("train", self.failure)

    def predict(self, *args: Any, **kwargs: Any) -> _FailedJob:
        return _FailedJob("predict", self.failure)

    def load_model(self, *args: Any, **kwargs: Any) -> _FailedJob:
        return _FailedJob("load", self.failure)

    def save_model(self, *args: Any, **kwargs: Any) -> _FailedJob:
        return _FailedJob("save", self.failure)

    def submit(self, kind: str, *args: Any, **kwargs: Any) -> _FailedJob:
        return _FailedJob(kind, self.failure)


class _Holder:
    """The client and controllers, kept apart from the dock widget itself so that the
    last-resort cleanup works after Qt deleted it (it holds no reference to the dock)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.controllers: list[Any] = []

    def shutdown(self, *_: Any) -> None:
        controllers, self.controllers = self.controllers, []
        for controller in controllers:
            try:
                controller.shutdown()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass
        client, self.client = self.client, None
        if client is not None:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass


class UNetStudioWidget(QWidget):
    """Dock widget: paint a few labels, pick a decoder, train, predict.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer the widget works on (napari passes it in).
    client : WorkerClient, optional
        The worker process client; by default :func:`make_client` makes one. The dock
        starts it and shuts it down when it closes.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None, *,
                 client: Any = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.closed = False
        self.notifier = Notifier()
        if client is None:
            try:
                client = make_client()
            except Exception as exc:  # noqa: BLE001 - e.g. a broken installation
                client = UnavailableClient(exc)
        self.client = client
        self._holder = _Holder(client)
        self.slot = ModelSlot()

        self.data_panel = DataPanel(napari_viewer)
        self.model_panel = SettingsPanel()
        self.train_panel = TrainPanel()
        self.predict_panel = PredictPanel(napari_viewer)
        self.objects_panel = ObjectsPanel(napari_viewer)
        self.models_panel = ModelsPanel()
        self.assistant_panel = AssistantPanel()
        self._build_layout()

        self.train = TrainController(
            napari_viewer, client, self.data_panel, self.model_panel, self.train_panel,
            self.slot, self.notifier, lock=self._lock_while_training,
        )
        self.predict = PredictController(
            napari_viewer, client, self.data_panel, self.model_panel, self.predict_panel,
            self.slot, self.notifier,
        )
        self.files = ModelFilesController(
            client, self.slot, self.data_panel, self.models_panel, self.notifier, self
        )
        self.assistant = AssistantController(
            napari_viewer, client, self.data_panel, self.model_panel, self.assistant_panel,
            self.slot, self.notifier, busy=lambda: self.train.running,
        )
        self.upsampling = UpsamplingController(
            client, self.assistant_panel, self.slot, self.assistant.crop_around_view,
            self.notifier,
        )
        self.train.uncertainty_listeners.append(self.assistant.on_uncertainty)
        self._holder.controllers = [self.train, self.predict, self.files, self.assistant,
                                    self.upsampling]
        self.slot.subscribe(self._model_changed)
        self.objects = ObjectsController(napari_viewer, client, self.objects_panel,
                                         self.slot, self.model_panel, self.notifier)
        self._holder.controllers.append(self.objects)
        op = self.objects_panel
        op.find_button.clicked.connect(self.objects.find)
        op.save_button.clicked.connect(lambda: self.objects.save_csv())
        op.big_button.clicked.connect(self.objects.predict_file)
        op.cancel_button.clicked.connect(self.objects.cancel)

        tp, pp, mp = self.train_panel, self.predict_panel, self.models_panel
        tp.train_button.clicked.connect(self.train.start)
        tp.stop_button.clicked.connect(self.train.stop)
        tp.pause_button.clicked.connect(self.train.toggle_pause)
        pp.predict_button.clicked.connect(self.predict.start)
        pp.cancel_button.clicked.connect(self.predict.cancel)
        pp.corrections_button.clicked.connect(self.predict.use_corrections)
        mp.save_button.clicked.connect(self.files.save)
        mp.load_button.clicked.connect(self.files.load)
        ap = self.assistant_panel
        ap.next_button.clicked.connect(self.assistant.next_region)
        ap.map_button.clicked.connect(self.assistant.map_whole_image)
        ap.compare_button.clicked.connect(self.assistant.start_compare)
        ap.cancel_button.clicked.connect(self.assistant.cancel_compare)
        ap.keep_button.clicked.connect(self.assistant.keep_selected)
        ap.show_button.clicked.connect(self.upsampling.show)
        self.data_panel.pairs_changed.connect(self._follow_first_image)
        self.data_panel.pairs_changed.connect(functools.partial(  # the 2D/3D recommendation
            update_dims_advice, napari_viewer, self.data_panel, self.model_panel))

        events = napari_viewer.layers.events
        events.inserted.connect(self._on_layer_inserted)
        events.removed.connect(self._on_layer_removed)
        events.reordered.connect(self._refresh_layers)
        for layer in napari_viewer.layers:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()
        update_dims_advice(napari_viewer, self.data_panel, self.model_panel)  # layers already open

        self.destroyed.connect(functools.partial(_on_destroyed, self._holder))
        self._watched_window: QObject | None = None
        self._info_timer = QTimer(self)
        self._info_timer.setInterval(100)
        self._info_timer.timeout.connect(self._check_worker_info)
        try:
            client.start()
        except Exception as exc:  # noqa: BLE001 - every job then says so too
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001 - it never started
                pass
            self.client = client = UnavailableClient(exc)
            self._holder.client = client
            self.objects.client = client
            for controller in (self.train, self.predict, self.files, self.assistant,
                               self.upsampling):
                controller.client = client
        self._info_timer.start()
        self._check_worker_info()
        models_io.register_dock(self)

    def _build_layout(self) -> None:
        content = QWidget()
        column = QVBoxLayout(content)
        for title, panel in (
            ("1. Data: image + your painted labels", self.data_panel),
            ("2. Model", self.model_panel),
            ("3. Train (keep painting while it runs)", self.train_panel),
            ("4. Predict", self.predict_panel),
            ("5. Model file", self.models_panel),
            ("6. Assistant: where to paint next, which decoder", self.assistant_panel),
            ("7. Objects and big image files (OME-Zarr)", self.objects_panel),
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

    # ------------------------------------------------------------- worker
    def _check_worker_info(self) -> None:
        """Fill the decoder/device pickers once the worker said hello."""
        if isinstance(self.client, UnavailableClient):
            self._info_timer.stop()  # no hello will ever come
            return
        try:
            info = self.client.info()
        except Exception:  # noqa: BLE001 - asked again on the next tick
            info = None
        if info:
            self._info_timer.stop()
            self.model_panel.set_worker_info(info)
            names = [str(n) for n, _ in info.get("decoders") or []]
            if names:
                self.assistant_panel.set_decoders(names)

    # -------------------------------------------------------------- models
    @property
    def model(self) -> Any:
        """The current model (a ``ModelRef``) or None."""
        return self.slot.ref

    def use_model(self, ref: Any, source: str = "") -> None:
        """Make ``ref`` (a ``ModelRef``) the current model."""
        self.slot.set(ref, source)

    def load_model_file(self, path: str) -> None:
        """Ask the worker to load ``path`` (the reader and the Load button use this)."""
        self.files.load_file(path)

    def save_model(self) -> None:
        """Save the current model (Save button)."""
        self.files.save()

    def _model_changed(self, ref: Any, source: str) -> None:
        self.models_panel.show_model(ref, source)
        self.train_panel.set_has_model(ref is not None)
        if ref is None or self.train.running:
            return
        self.model_panel.show_config(dict(ref.config or {}))
        names = list(ref.class_names or [])
        if names:
            self.data_panel.set_class_names(names)

    def _lock_while_training(self, locked: bool) -> None:
        self.models_panel.load_button.setEnabled(not locked)

    # ------------------------------------------------------------ layers
    def _refresh_layers(self, *_: Any) -> None:
        self.data_panel.refresh_layers()
        self.predict_panel.image.refresh()
        self.objects_panel.refresh_layers()

    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layers)
        self._refresh_layers()

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        try:
            layer.events.name.disconnect(self._refresh_layers)
        except (RuntimeError, TypeError, ValueError):
            pass
        self.predict.layer_removed(layer)
        self.train.layer_removed(layer)
        self.assistant.layer_removed(layer)
        self._refresh_layers()

    def _follow_first_image(self) -> None:
        """Predict the training image by default."""
        rows = self.data_panel.rows
        image = rows[0].image.layer() if rows else None
        if image is not None and self.predict_panel.image.layer() is None:
            self.predict_panel.image.set_layer(image)

    # -------------------------------------------------------------- close
    def shutdown(self) -> None:
        """Stop jobs and end the worker process (closing the dock or the viewer)."""
        if self.closed:
            return
        self.closed = True
        models_io.unregister_dock(self)
        self._info_timer.stop()
        running = self.train.shutdown()
        running = self.predict.shutdown() or running
        running = self.assistant.shutdown() or running
        self.upsampling.shutdown()
        self.files.shutdown()
        self._holder.shutdown()
        if running:
            self.notifier.warning("U-Net Studio closed: running training/prediction was stopped.")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        """End the worker when the napari window closes."""
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

    def event(self, event: QEvent) -> bool:
        """Closing the dock ('x' un-parents the widget) ends the worker."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
                self._watch_window()
            elif getattr(self, "_docked", False):
                self.shutdown()
        return super().event(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Closing the dock widget ends the worker."""
        self.shutdown()
        super().closeEvent(event)


def _on_destroyed(holder: _Holder, *_: Any) -> None:
    """Last-resort cleanup when Qt deletes the widget (holds no widget reference)."""
    holder.shutdown()
