"""Training: start, pause, stop, live previews and painting while the worker trains.

:class:`TrainController` receives everything it works with (viewer, worker client,
panels, current-model slot, notifier); it starts a ``train`` job on the worker process
and a :class:`~napari_unet_studio.gui.drain.JobDrain` turns the job's events into panel
updates. Painting sends only the changed region of the labels to the worker
(``job.update_labels``); the live preview layer is updated in place, one plane.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .jobs import JobController
from .layers import layer_array, live_layer, visible_plane, write_preview
from .notify import Notifier, UserProblem, friendly_message
from .painting import PaintWatcher
from .volume import pick_preview_plane, preview_source_3d, with_volume_settings

__all__ = ["TrainController"]

PAINT_CHECK_SECONDS = 1.0


def model_source(ref: Any) -> str:
    """``"trained here (bilinear, 120 steps)"`` for the models panel."""
    record = getattr(ref, "record", {}) or {}
    decoder = (getattr(ref, "config", {}) or {}).get("decoder", "?")
    return f"trained here ({decoder}, {record.get('steps', '?')} steps)"


class TrainController(JobController):
    """Start/stop/pause training on the worker and keep the live prediction up to date.

    Parameters
    ----------
    viewer : napari.Viewer
    client : WorkerClient
        The worker process client (``train`` returns a ``Job``).
    data : DataPanel
        Pairs and class names.
    settings : SettingsPanel
        Model and training settings.
    panel : TrainPanel
        Buttons, progress, loss curve.
    slot : ModelSlot
        The current model; a finished (or crashed, with a best model) run replaces it.
    notifier : Notifier
    lock : callable, optional
        ``lock(bool)``: disable what must not change while training (other panels).
    """

    def __init__(self, viewer: Any, client: Any, data: Any, settings: Any, panel: Any,
                 slot: Any, notifier: Notifier, lock: Any = None) -> None:
        super().__init__(client, panel, notifier, viewer=viewer, data=data,
                         settings=settings, slot=slot)
        self._lock_others = lock
        self.watcher: PaintWatcher | None = None
        self.layers: list[tuple[Any, Any]] = []  # (image layer, labels layer) per pair
        self.shapes: list[tuple[int, ...]] = []
        self.live: Any = None
        self.paused = False
        self.stop_requested = False
        self.previews = 0
        self.labels_pushes = 0
        self._preview_key: Any = ("unset",)
        self._warned_shape: set[int] = set()
        #: ``callback(key, uncertainty_uint8, image_layer, labels_layer)`` after each
        #: preview (the Assistant panel's uncertainty layer; wired by the dock)
        self.uncertainty_listeners: list[Any] = []

    # ---------------------------------------------------------------- start
    def start(self) -> None:
        """Check the inputs, then start a training job (the Train button)."""
        if self.running:
            return
        sent = self._submit(self._send_job, "Training", "Starting the training")
        if sent is None:
            return
        job, kwargs = sent
        self.job = job  # before the preview source is sent
        self.paused = self.stop_requested = False
        self._preview_key = ("unset",)
        self._warned_shape.clear()
        image_layer, labels_layer = self.layers[0]
        self.live = None
        if kwargs["live"]:
            dtype = np.uint8 if len(kwargs["class_names"]) < 255 else np.uint16
            self.live = live_layer(self.viewer, image_layer, labels_layer, dtype)
            self.update_preview_source()
            self.viewer.dims.events.current_step.connect(self.update_preview_source)
        self.watcher = PaintWatcher([lab for _, lab in self.layers], self.push_labels,
                                    PAINT_CHECK_SECONDS)
        for image, _ in self.layers:
            image.events.data.connect(self._image_replaced)
        self._lock(True)
        self.panel.starting()
        self._follow(job, {"progress": self._on_progress, "preview": self._on_preview,
                           "uncertainty": self._on_uncertainty,
                           "done": self._on_done, "error": self._on_error},
                     latest_only=("preview", "uncertainty"))

    def _send_job(self) -> tuple[Any, dict[str, Any]]:
        kwargs = self._job_arguments()
        return self.client.train(**kwargs), kwargs

    def _job_arguments(self) -> dict[str, Any]:
        pairs, in_channels, k = self.data.collect_pairs()
        names = self.data.class_names()[:k]
        train_config = self.settings.train_config()
        init, reinit = None, False
        ref = self.slot.ref
        if self.panel.continue_box.isChecked() and ref is not None:
            config = dict(ref.config)
            if int(config.get("in_channels", 1)) != in_channels:
                raise UserProblem(
                    f"The current model was made for images with {config.get('in_channels')} "
                    f"channel(s), these have {in_channels}. Untick 'Continue training' to "
                    "start a new model."
                )
            init = ref
            reinit = k > int(config.get("num_classes", 2))
            model_config = None  # the architecture of ``init``
            total = max(k, int(config.get("num_classes", 2)))
            names = (names + list(ref.class_names)[len(names):])[:total]
        else:
            model_config = self.settings.model_config(in_channels, k)
            model_config, train_config = with_volume_settings(  # 3D: spacing from the scale
                model_config, train_config, pairs[0].image_layer)
        arch = model_config or dict(ref.config)  # a 3D model previews a slab (gui/volume.py)
        self._volume = (arch.get("spacing"),) if int(arch.get("dims", 2)) == 3 else None
        self.layers = [(p.image_layer, p.labels_layer) for p in pairs]
        self.shapes = [tuple(p.labels.shape) for p in pairs]
        return {
            "pairs": [p.as_tuple() for p in pairs],
            "model_config": model_config,
            "train_config": train_config,
            "init": init,
            "reinit_head": reinit,
            "class_names": names,
            "live": self.panel.live_box.isChecked(),
            "preview_interval": self.settings.preview_interval(),
        }

    def _lock(self, locked: bool) -> None:
        self.settings.set_locked(locked)
        self.data.set_locked(locked)
        self.panel.set_running(locked, paused=False)
        if self._lock_others is not None:
            self._lock_others(locked)

    # ------------------------------------------------------------- controls
    def stop(self) -> None:
        """End training after the current step; the best model so far is kept."""
        if self.job is None or self.stop_requested:
            return
        self.stop_requested = True
        self.job.stop()
        self.panel.status.setText("Stopping... (the best model so far is kept)")
        self.panel.stop_button.setEnabled(False)
        self.panel.pause_button.setEnabled(False)

    def toggle_pause(self) -> None:
        """Pause or resume training (Pause/Resume button)."""
        if self.job is None or self.stop_requested:
            return
        if self.paused:
            self.job.resume()
            self.paused = False
            self.panel.set_running(True, paused=False)
        else:
            self.job.pause()
            self.paused = True
            self.panel.set_running(True, paused=True)
            self.panel.status.setText("Paused. Keep painting; press Resume to continue.")

    # -------------------------------------------------------- while running
    def update_preview_source(self, *_: Any) -> None:
        """Send the plane the user looks at to the worker (only when it changed)."""
        if self.job is None or self.live is None or not self.layers:
            return
        image_layer, labels_layer = self.layers[0]
        try:
            key, plane = visible_plane(self.viewer, image_layer, tuple(labels_layer.data.shape))
            if getattr(self, "_volume", None) is not None and key is not None:
                key, plane = preview_source_3d(layer_array(image_layer), key, self._volume[0])
            if key == self._preview_key:
                return
            self._preview_key = key
            self.job.set_preview_source(key, np.asarray(plane))
        except Exception:  # noqa: BLE001 - a preview must never break painting
            self._preview_key = ("unset",)

    def push_labels(self, index: int, layer: Any, region: Any) -> None:
        """Send the changed region of pair ``index``'s labels to the worker."""
        if self.job is None:
            return
        labels = layer_array(layer)
        if tuple(labels.shape) != self.shapes[index]:
            if index not in self._warned_shape:
                self._warned_shape.add(index)
                self.notifier.warning(
                    f"The labels '{layer.name}' changed shape while training "
                    f"({tuple(labels.shape)} instead of {self.shapes[index]}); training goes "
                    "on with the labels as they were. Press Stop and Train again to use them."
                )
            return
        try:
            self.job.update_labels(index, labels, region)
        except Exception as exc:  # noqa: BLE001 - painting must never stop training
            self.notifier.warning(friendly_message(exc, "Using the new labels"))
            return
        self.labels_pushes += 1

    def _image_replaced(self, event: Any) -> None:
        layer = getattr(event, "source", None)
        name = getattr(layer, "name", "the image")
        self.notifier.warning(
            f"The image '{name}' was changed while training; training goes on with the "
            "image as it was when you pressed Train. Press Stop and Train again to use "
            "the new image."
        )

    def _on_progress(self, p: dict) -> None:
        self.panel.show_progress(p)
        self.settings.show_device_used(p.get("device"))
        message = p.get("message") or ""
        if message and ("not used" in message or "memory" in message):
            self.notifier.warning(message)

    def _on_preview(self, payload: Any) -> None:
        key, prediction = pick_preview_plane(*payload)
        layer = self.live
        if layer is None or layer not in self.viewer.layers:
            return
        if write_preview(layer, key, prediction):
            self.previews += 1

    def _on_uncertainty(self, payload: Any) -> None:
        key, uncertainty = pick_preview_plane(*payload)  # a 3D model's slab -> its plane
        if not self.layers or uncertainty is None:
            return
        image_layer, labels_layer = self.layers[0]
        for callback in list(self.uncertainty_listeners):
            callback(key, uncertainty, image_layer, labels_layer)

    def _on_done(self, ref: Any) -> None:
        self.panel.loss_plot.redraw()
        steps = int((getattr(ref, "record", None) or {}).get("steps") or 0)
        if ref is None or steps == 0:
            text = "Training stopped before the first step; the current model is unchanged."
            self.panel.status.setText(text)
            self.notifier.info(text)
            return
        self.slot.set(ref, model_source(ref))
        record = ref.record
        seconds = float(record.get("seconds") or 0.0)
        device = record.get("device", "?")
        if self.stop_requested:
            text = f"Training stopped after {steps} steps; the best model so far is kept."
        else:
            text = f"Training finished: {steps} steps in {seconds:.1f} s on {device}."
        self.panel.status.setText(text + " Press Predict to segment whole images.")
        self.notifier.info(text)

    def _on_error(self, error: Any) -> None:
        best = getattr(error, "best", None)
        suffix = ""
        if best is not None and (best.record or {}).get("steps"):
            self.slot.set(best, model_source(best))
            if "best model" not in str(getattr(error, "message", "")).lower():
                suffix = "The best model so far is kept."
        self.panel.status.setText("Training did not finish; see the message.")
        self.notifier.worker_error(error, suffix)

    def _finished(self) -> None:
        """The job's last event was handled: disconnect and unlock."""
        self._disconnect()
        super()._finished()
        self._lock(False)
        self.panel.set_has_model(self.slot.ref is not None)

    def _disconnect(self) -> None:
        if self.watcher is not None:
            try:
                self.watcher.close()
            except RuntimeError:  # Qt already deleted its timer
                pass
            self.watcher = None
        for image, _ in self.layers:
            try:
                image.events.data.disconnect(self._image_replaced)
            except (RuntimeError, TypeError, ValueError):
                pass
        try:
            self.viewer.dims.events.current_step.disconnect(self.update_preview_source)
        except (RuntimeError, TypeError, ValueError):
            pass

    def layer_removed(self, layer: Any) -> None:
        """Stop training if one of its layers was deleted; forget a deleted live layer."""
        if layer is self.live:
            self.live = None
        if self.job is None or self.stop_requested:
            return
        if any(layer is img or layer is lab for img, lab in self.layers):
            self.stop()
            self.notifier.warning(
                f"The layer '{layer.name}' was deleted while training, so training stopped. "
                "The best model so far is kept."
            )

    def shutdown(self) -> bool:
        """Stop the job (closing the dock); True if one was running."""
        running = super().shutdown()
        self._disconnect()
        return running
