"""Training control of the dock widget: start, pause, stop, train while you paint.

:class:`TrainingMixin` is mixed into
:class:`~napari_unet_studio._widget.UNetStudioWidget`; it expects the attributes the
widget creates (``viewer``, ``data_panel``, ``model_panel``, ``train_panel``, ``state``,
``model``, ``use_model``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._widget_common import (
    UserProblem,
    friendly_message,
    layer_array,
    notify_error,
    notify_info,
    notify_warning,
)
from ._widget_live import PaintWatcher, live_layer, visible_plane, write_preview
from ._widget_train import DONE, ERROR, PREVIEW, PROGRESS, TrainJob, train_worker

PAINT_CHECK_SECONDS = 2.0


class TrainingMixin:
    """Start/stop/pause training and keep the live prediction up to date."""

    viewer: Any
    state: Any
    model: Any

    # ------------------------------------------------------------- start
    def start_training(self) -> None:
        """Check the inputs, then train in a worker thread (the Train button)."""
        if self.state.train_worker is not None:
            return
        try:
            job = self._make_train_job()
        except (UserProblem, ValueError) as exc:
            notify_error(friendly_message(exc, "Training"))
            return
        from napari.qt.threading import create_worker

        self.state.train_job = job
        pairs = self.state.train_layers
        image_layer, labels_layer = pairs[0]
        self.state.live_layer = None
        if job.live:
            dtype = np.uint8 if job_classes(job) < 256 else np.uint16
            self.state.live_layer = live_layer(self.viewer, image_layer, labels_layer, dtype)
            self._update_preview_source()
            self.viewer.dims.events.current_step.connect(self._update_preview_source)
        worker = create_worker(train_worker, job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_train_yield)
        worker.finished.connect(self._on_train_finished)
        self.state.train_worker = worker
        self.state.watcher = PaintWatcher(
            [labels for _, labels in pairs], self._push_labels, PAINT_CHECK_SECONDS
        )
        self._lock_for_training(True)
        self.train_panel.loss_plot.clear()
        self.train_panel.progress.setValue(0)
        self.train_panel.progress.setFormat("starting...")
        self.train_panel.status.setText("Preparing the data and the network...")
        worker.start()

    def _make_train_job(self) -> TrainJob:
        pairs, in_channels, k = self.data_panel.collect_pairs()
        names = self.data_panel.class_names()[:k]
        train_config = self.model_panel.train_config()
        init, reinit, model_config = None, False, None
        if self.train_panel.continue_box.isChecked() and self.model is not None:
            init = self.model
            if init.config.in_channels != in_channels:
                raise UserProblem(
                    f"The current model was made for images with {init.config.in_channels} "
                    f"channel(s), these have {in_channels}. Untick 'Continue training' to "
                    "start a new model."
                )
            reinit = k > init.config.num_classes
        else:
            model_config = self.model_panel.model_config(in_channels, k)
        self.state.train_layers = [(p.image_layer, p.labels_layer) for p in pairs]
        return TrainJob(
            pairs=[p.as_tuple() for p in pairs],
            model_config=model_config,
            train_config=train_config,
            init=init,
            reinit_head=reinit,
            class_names=names,
            live=self.train_panel.live_box.isChecked(),
            preview_interval=float(self.model_panel.preview_interval.value()),
        )

    def _lock_for_training(self, locked: bool) -> None:
        self.model_panel.set_locked(locked)
        self.data_panel.set_locked(locked)
        self.models_panel.load_button.setEnabled(not locked)
        self.train_panel.set_running(locked)

    # ----------------------------------------------------------- controls
    def stop_training(self) -> None:
        """End training after the current step; the best model so far is kept."""
        job = self.state.train_job
        if job is not None:
            job.stop()
            self.train_panel.status.setText("Stopping... (the best model so far is kept)")
            self.train_panel.stop_button.setEnabled(False)
            self.train_panel.pause_button.setEnabled(False)

    def toggle_pause(self) -> None:
        """Pause or resume training (Pause/Resume button)."""
        job = self.state.train_job
        trainer = job.trainer if job is not None else None
        if trainer is None:
            return
        if trainer.paused:
            trainer.resume()
            self.train_panel.set_running(True, paused=False)
        else:
            trainer.pause()
            self.train_panel.set_running(True, paused=True)
            self.train_panel.status.setText("Paused. Keep painting; press Resume to continue.")

    # ------------------------------------------------------ while running
    def _update_preview_source(self, *_: Any) -> None:
        """Tell the worker which plane the user looks at (GUI thread)."""
        job = self.state.train_job
        if job is None or not job.live or not self.state.train_layers:
            return
        image_layer, labels_layer = self.state.train_layers[0]
        try:
            job.preview_source = visible_plane(
                self.viewer, image_layer, tuple(labels_layer.data.shape)
            )
        except Exception:  # noqa: BLE001 - a preview must never break painting
            job.preview_source = None

    def _push_labels(self) -> None:
        """Hand fresh copies of the painted labels to the running trainer."""
        job = self.state.train_job
        if job is None or job.trainer is None:
            return
        pairs = [
            (layer_array(image), np.array(labels.data, copy=True))
            for image, labels in self.state.train_layers
        ]
        try:
            job.trainer.update_data(pairs)
        except Exception as exc:  # noqa: BLE001 - painting must never stop training
            notify_warning(friendly_message(exc, "Using the new labels"))
            return
        self.state.labels_pushes += 1

    def _on_train_yield(self, record: tuple[str, Any]) -> None:
        kind, payload = record
        if kind == PROGRESS:
            self.train_panel.show_progress(payload)
            self.model_panel.show_device_used(payload.device)
            if payload.message and ("not used" in payload.message or "memory" in payload.message):
                notify_warning(payload.message)
        elif kind == PREVIEW:
            key, prediction = payload
            layer = self.state.live_layer
            if layer is not None and layer in self.viewer.layers:
                if write_preview(layer, key, prediction):
                    self.state.previews += 1
        elif kind == DONE:
            self._training_done(payload)
        elif kind == ERROR:
            exc, best = payload
            message = friendly_message(exc, "Training")
            if best is not None:
                self.use_model(best, source=_model_source(best))
                message += " The best model so far is kept."
            notify_error(message)

    def _training_done(self, model: Any) -> None:
        self.train_panel.loss_plot.redraw(force=True)
        job = self.state.train_job
        stopped = job is not None and job.stop_requested
        if not model.record.get("steps"):  # stopped before the first step: nothing learnt
            text = "Training stopped before the first step; the current model is unchanged."
            self.train_panel.status.setText(text)
            notify_info(text)
            return
        self.use_model(model, source=_model_source(model))
        steps = model.record.get("steps", "?")
        seconds = float(model.record.get("seconds") or 0.0)
        device = model.record.get("device", "?")
        if stopped:
            text = f"Training stopped after {steps} steps; the best model so far is kept."
        else:
            text = f"Training finished: {steps} steps in {seconds:.1f} s on {device}."
        self.train_panel.status.setText(text + " Press Predict to segment whole images.")
        notify_info(text)

    def _on_train_finished(self) -> None:
        """Worker ended (normally, stopped, failed or quit): re-enable everything."""
        self._disconnect_training()
        self._lock_for_training(False)
        self.train_panel.set_has_model(self.model is not None)

    def _disconnect_training(self) -> None:
        state = self.state
        if state.watcher is not None:
            state.watcher.close()
            state.watcher = None
        try:
            self.viewer.dims.events.current_step.disconnect(self._update_preview_source)
        except (RuntimeError, TypeError, ValueError):
            pass
        state.train_worker = None
        state.train_job = None

    def _training_layer_removed(self, layer: Any) -> None:
        """Stop training if one of its layers was deleted; drop a deleted live layer."""
        if layer is self.state.live_layer:
            self.state.live_layer = None
        job = self.state.train_job
        if job is None or job.stop_requested:
            return
        if any(layer is img or layer is lab for img, lab in self.state.train_layers):
            job.stop()
            notify_warning(
                f"The layer '{layer.name}' was deleted while training, so training stopped. "
                "The best model so far is kept."
            )


def job_classes(job: TrainJob) -> int:
    """Number of classes the job will train."""
    if job.model_config is not None:
        return int(job.model_config.num_classes)
    return max(len(job.class_names), int(job.init.config.num_classes))


def _model_source(model: Any) -> str:
    record = getattr(model, "record", {}) or {}
    decoder = getattr(getattr(model, "config", None), "decoder", "?")
    return f"trained here ({decoder}, {record.get('steps', '?')} steps)"
