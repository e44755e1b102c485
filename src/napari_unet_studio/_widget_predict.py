"""Prediction: tiled worker, result layers, and "use corrections as labels".

Results always go to layers of our own (``"<image> prediction (<decoder>)"``, a unique
name when taken). The user's painted labels are never written: corrections made on a
prediction layer are merged into a separate ``"<labels> + corrections"`` layer.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ._widget_common import (
    ROLE_CONFIDENCE,
    ROLE_CORRECTIONS,
    ROLE_KEY,
    ROLE_PREDICTION,
    LayerCombo,
    is_user_image,
    role,
    unique_layer_name,
)

PROGRESS, DONE, ERROR = "progress", "done", "error"
WHOLE, CURRENT = "whole", "current"


@dataclass
class PredictJob:
    """Inputs of one prediction run (arrays and configs only, no layers)."""

    model: Any
    image: Any
    tile: Any = None
    probabilities: bool = False
    device: str = "auto"
    slices: Any = None
    stop: threading.Event = field(default_factory=threading.Event)


def predict_worker(job: PredictJob) -> Generator[tuple[str, Any], None, None]:
    """Yield ``("progress", PredictProgress)``, then ``("done", PredictResult)``.

    Every failure is yielded as ``("error", exception)`` (never raised: see
    :mod:`napari_unet_studio._widget_train`).
    """
    try:
        from .core.infer import iter_predict

        gen = iter_predict(
            job.model,
            job.image,
            tile=job.tile,
            probabilities=job.probabilities,
            device=job.device,
            slices=job.slices,
            stop=job.stop,
        )
        while True:
            try:
                progress = next(gen)
            except StopIteration as fin:
                result = fin.value
                break
            yield PROGRESS, progress
        yield DONE, result
    except Exception as exc:  # noqa: BLE001 - every failure must reach the GUI
        yield ERROR, exc


class PredictPanel(QWidget):
    """Widgets of the Predict section (the logic lives in :class:`PredictController`)."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        layout.addLayout(form)
        self.image = LayerCombo(viewer, Image, accept=is_user_image)
        form.addRow("Image", self.image)
        self.scope = QComboBox()
        self.scope.addItem("Whole image / all slices", WHOLE)
        self.scope.addItem("Current slice only", CURRENT)
        form.addRow("Predict", self.scope)
        self.confidence_box = QCheckBox("Add a confidence layer")
        self.confidence_box.setToolTip(
            "Also add an image layer with the probability of the predicted class (0-1): "
            "low values show where the model hesitates and more labels help most."
        )
        self.update_box = QCheckBox("Update my last prediction layer")
        self.update_box.setToolTip(
            "Write into the newest prediction layer made by U-Net Studio for this image "
            "instead of adding a new one. Your own layers are never overwritten."
        )
        layout.addWidget(self.confidence_box)
        layout.addWidget(self.update_box)
        buttons = QHBoxLayout()
        self.predict_button = QPushButton("Predict")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setFormat("tile %v / %m")
        layout.addWidget(self.progress)
        self.corrections_button = QPushButton("Use corrections as labels")
        self.corrections_button.setToolTip(
            "Paint the right class over mistakes on a prediction layer, then press this: "
            "the corrected pixels join your labels in a separate '<labels> + corrections' "
            "layer used for the next training. Your own labels layer is not changed."
        )
        layout.addWidget(self.corrections_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

    def set_running(self, running: bool) -> None:
        """Enable Predict or Cancel."""
        self.predict_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)


def prediction_layers(viewer: Any) -> list[Labels]:
    """Our prediction layers (from the Predict button), oldest first."""
    return [ly for ly in viewer.layers if isinstance(ly, Labels) and role(ly) == ROLE_PREDICTION]


def place_result(
    viewer: Any,
    image: Image,
    labels: np.ndarray,
    decoder: str,
    class_names: list[str],
    update_existing: bool,
) -> Labels:
    """Put a prediction into a new layer (or, if asked, our existing one for this image)."""
    base = f"{image.name} prediction ({decoder})"
    nd = labels.ndim
    meta = {
        ROLE_KEY: ROLE_PREDICTION,
        "source_image": image.name,
        "decoder": decoder,
        "class_names": list(class_names),
    }
    if update_existing:
        mine = [
            ly for ly in prediction_layers(viewer) if ly.metadata.get("source_image") == image.name
        ]
        if mine:
            layer = mine[-1]
            layer.data = labels
            layer.metadata.update(meta)
            return layer
    layer = Labels(
        labels,
        name=unique_layer_name(viewer, base),
        scale=tuple(image.scale)[-nd:],
        translate=tuple(image.translate)[-nd:],
        opacity=0.6,
        metadata=meta,
    )
    viewer.add_layer(layer)
    return layer


def place_confidence(viewer: Any, image: Image, probabilities: np.ndarray, decoder: str) -> Image:
    """Add the per-pixel probability of the predicted class as an Image layer."""
    confidence = probabilities.max(axis=0).astype(np.float32)
    nd = confidence.ndim
    layer = Image(
        confidence,
        name=unique_layer_name(viewer, f"{image.name} confidence ({decoder})"),
        colormap="viridis",
        contrast_limits=(0.0, 1.0),
        scale=tuple(image.scale)[-nd:],
        translate=tuple(image.translate)[-nd:],
        opacity=0.7,
        visible=False,
        metadata={ROLE_KEY: ROLE_CONFIDENCE, "source_image": image.name},
    )
    viewer.add_layer(layer)
    return layer


def merge_corrections(
    viewer: Any, prediction: Labels, snapshot: np.ndarray, user_labels: Labels
) -> tuple[Labels, int]:
    """Add the pixels changed on ``prediction`` since ``snapshot`` to a corrections layer.

    Parameters
    ----------
    viewer : napari.Viewer
    prediction : napari.layers.Labels
        Our prediction layer the user painted on.
    snapshot : numpy.ndarray
        Its data as we produced it.
    user_labels : napari.layers.Labels
        The labels layer training used for this image. It is read, never written; if
        it already is our corrections layer, that layer is updated.

    Returns
    -------
    layer : napari.layers.Labels
        The ``"<labels> + corrections"`` layer holding labels plus corrections.
    n_changed : int
        Number of corrected pixels taken over.
    """
    now = np.asarray(prediction.data)
    changed = (now != snapshot) & (now > 0)
    n_changed = int(changed.sum())
    if role(user_labels) == ROLE_CORRECTIONS:
        target: Labels | None = user_labels
    else:
        name = f"{user_labels.name} + corrections"
        target = next(
            (
                ly
                for ly in viewer.layers
                if ly.name == name
                and role(ly) == ROLE_CORRECTIONS
                and ly.data.shape == user_labels.data.shape
            ),
            None,
        )
    if target is not None:
        base = np.asarray(target.data)
        dtype = np.promote_types(base.dtype, now.dtype)
        target.data = np.where(changed, now, base).astype(dtype, copy=False)
        return target, n_changed
    base = np.array(user_labels.data, copy=True)
    dtype = np.promote_types(base.dtype, now.dtype)
    merged = np.where(changed, now, base).astype(dtype, copy=False)
    target = Labels(
        merged,
        name=unique_layer_name(viewer, f"{user_labels.name} + corrections"),
        scale=tuple(user_labels.scale),
        translate=tuple(user_labels.translate),
        metadata={
            ROLE_KEY: ROLE_CORRECTIONS,
            "source_labels": user_labels.name,
            "class_names": list((user_labels.metadata or {}).get("class_names") or []),
        },
    )
    index = viewer.layers.index(user_labels) + 1 if user_labels in viewer.layers else None
    if index is None:
        viewer.add_layer(target)
    else:
        viewer.layers.insert(index, target)
    return target, n_changed


def choose_prediction_layer(viewer: Any) -> Layer | None:
    """The selected prediction layer, else the newest one."""
    active = viewer.layers.selection.active
    if active is not None and role(active) == ROLE_PREDICTION:
        return active
    layers = prediction_layers(viewer)
    return layers[-1] if layers else None


class PredictionMixin:
    """Predict/Cancel and corrections; mixed into the dock widget.

    Expects ``viewer``, ``state``, ``model``, ``model_panel``, ``data_panel`` and
    ``predict_panel`` on the widget.
    """

    viewer: Any
    state: Any
    model: Any

    def start_prediction(self) -> None:
        """Predict the chosen image with the current model in a worker (Predict button)."""
        from ._widget_common import friendly_message, layer_array, notify_error

        if self.state.predict_worker is not None:
            return
        panel = self.predict_panel
        image = panel.image.layer()
        if self.model is None:
            notify_error("There is no model yet. Train one (or load a saved model) first.")
            return
        if image is None:
            notify_error("Choose the image to predict.")
            return
        data = layer_array(image)
        slices = None
        spatial_nd = data.ndim - (1 if self.model.config.in_channels > 1 or image.rgb else 0)
        if panel.scope.currentData() == CURRENT and spatial_nd == 3:
            from ._widget_live import visible_plane

            shape = data.shape[:spatial_nd]
            slices, _ = visible_plane(self.viewer, image, tuple(shape))
        try:
            job = PredictJob(
                model=self.model,
                image=data,
                tile=self.model_panel.tile_config(),
                probabilities=panel.confidence_box.isChecked(),
                device=self.model_panel.device_name(),
                slices=slices,
            )
        except ValueError as exc:
            notify_error(friendly_message(exc, "Prediction"))
            return
        from napari.qt.threading import create_worker

        worker = create_worker(predict_worker, job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_predict_yield)
        worker.finished.connect(self._on_predict_finished)
        self.state.predict_job = job
        self.state.predict_worker = worker
        self.state.predict_target = (image, data.shape[:spatial_nd], slices)
        panel.set_running(True)
        panel.progress.setValue(0)
        panel.status.setText(f"Predicting '{image.name}'...")
        worker.start()

    def cancel_prediction(self) -> None:
        """Ask the running prediction to stop (Cancel button)."""
        if self.state.predict_job is not None:
            self.state.predict_job.stop.set()
            self.predict_panel.status.setText("Cancelling...")

    def _on_predict_yield(self, record: tuple[str, Any]) -> None:
        from ._widget_common import friendly_message, notify_error, notify_info

        kind, payload = record
        panel = self.predict_panel
        if kind == PROGRESS:
            panel.progress.setMaximum(max(1, int(payload.total)))
            panel.progress.setValue(int(payload.done))
        elif kind == ERROR:
            notify_error(friendly_message(payload, "Prediction"))
            panel.status.setText("Prediction failed.")
        elif kind == DONE:
            if payload.cancelled:
                panel.status.setText("Prediction cancelled; no layer was added.")
                notify_info("Prediction cancelled; no layer was added.")
                return
            self._show_prediction(payload)

    def _show_prediction(self, result: Any) -> None:
        from ._widget_common import notify_error, notify_info

        image, shape, slices = self.state.predict_target
        if image not in self.viewer.layers:
            notify_error(f"The image '{image.name}' was deleted during prediction.")
            return
        labels = np.asarray(result.labels)
        probabilities = result.probabilities
        if slices is not None and labels.ndim == len(shape) - 1:
            full = np.zeros(shape, dtype=labels.dtype)
            full[slices] = labels
            labels = full
            if probabilities is not None:
                full_p = np.zeros((probabilities.shape[0], *shape), dtype=probabilities.dtype)
                full_p[:, slices] = probabilities
                probabilities = full_p
        decoder = self.model.config.decoder
        names = self.model.class_names
        layer = place_result(
            self.viewer, image, labels, decoder, names, self.predict_panel.update_box.isChecked()
        )
        self.state.snapshots[layer.unique_id] = np.array(layer.data, copy=True)
        if probabilities is not None:
            place_confidence(self.viewer, image, probabilities, decoder)
        counts = np.bincount(labels.ravel(), minlength=len(names) + 1)[1:]
        summary = ", ".join(
            f"{name} {100.0 * c / max(1, labels.size):.0f}%" for name, c in zip(names, counts)
        )
        text = f"Added '{layer.name}': {summary}."
        self.predict_panel.status.setText(
            text + " Paint fixes on it, then 'Use corrections as labels'."
        )
        notify_info(text)

    def _on_predict_finished(self) -> None:
        self.state.predict_worker = None
        self.state.predict_job = None
        self.predict_panel.set_running(False)

    def use_corrections(self) -> None:
        """Merge fixes painted on a prediction layer into a corrections labels layer."""
        from ._widget_common import notify_info, notify_warning

        prediction = choose_prediction_layer(self.viewer)
        if prediction is None:
            notify_warning(
                "Predict first, paint the right class over mistakes on the prediction "
                "layer, then press 'Use corrections as labels'."
            )
            return
        snapshot = self.state.snapshots.get(prediction.unique_id)
        if snapshot is None or snapshot.shape != prediction.data.shape:
            notify_warning(
                f"'{prediction.name}' was not made in this session, so its corrections "
                "cannot be told apart; predict again and correct the new layer."
            )
            return
        source = prediction.metadata.get("source_image")
        row = next(
            (
                r
                for r in self.data_panel.rows
                if r.image.layer() is not None
                and r.image.layer().name == source
                and r.labels.layer() is not None
                and r.labels.layer().data.shape == prediction.data.shape
            ),
            None,
        )
        if row is None:
            notify_warning(
                f"Choose '{source}' with its labels layer in the Data section first; the "
                "corrections are added to those labels (in a separate layer)."
            )
            return
        if not bool(np.any((np.asarray(prediction.data) != snapshot) & (prediction.data > 0))):
            notify_info(
                f"No corrections found on '{prediction.name}': paint the right class over "
                "wrong pixels there first."
            )
            return
        user_labels = row.labels.layer()
        target, n_changed = merge_corrections(self.viewer, prediction, snapshot, user_labels)
        self.state.snapshots[prediction.unique_id] = np.array(prediction.data, copy=True)
        row.labels.refresh()
        row.labels.set_layer(target)
        text = (
            f"{n_changed} corrected pixels added to '{target.name}', which is now the "
            f"training labels for '{source}'. Your layer '{user_labels.name}' is unchanged."
        )
        self.predict_panel.status.setText(text + " Train again to learn from them.")
        notify_info(text)
