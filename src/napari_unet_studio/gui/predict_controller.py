"""Prediction and corrections: the Predict/Cancel buttons and "Use corrections as labels".

:class:`PredictController` receives its collaborators explicitly; it starts a
``predict`` job on the worker with the current ``ModelRef`` and puts the result into
layers of our own. The user's painted labels are never written: corrections painted on
a prediction layer are merged into a separate ``"<labels> + corrections"`` layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .jobs import JobController
from .layers import (
    choose_prediction_layer,
    layer_array,
    merge_corrections,
    place_confidence,
    place_result,
    visible_plane,
)
from .notify import Notifier
from .prediction import CURRENT

__all__ = ["PredictController"]


class PredictController(JobController):
    """Predict the chosen image with the current model; merge corrections.

    Parameters
    ----------
    viewer : napari.Viewer
    client : WorkerClient
    data : DataPanel
        Where the corrections' labels layer is chosen.
    settings : SettingsPanel
        Tile and device settings.
    panel : PredictPanel
    slot : ModelSlot
        The current model.
    notifier : Notifier
    """

    failed_text = "Prediction failed."

    def __init__(self, viewer: Any, client: Any, data: Any, settings: Any, panel: Any,
                 slot: Any, notifier: Notifier) -> None:
        super().__init__(client, panel, notifier, viewer=viewer, data=data,
                         settings=settings, slot=slot)
        self.target: tuple[Any, tuple[int, ...], Any] | None = None
        self.model: Any = None
        self.snapshots: dict[Any, np.ndarray] = {}  # prediction layer id -> data as made

    def start(self) -> None:
        """Predict the chosen image with the current model (Predict button)."""
        if self.running:
            return
        ref = self._current_model()
        if ref is None:
            return
        image = self.panel.image.layer()
        if image is None:
            self.notifier.error("Choose the image to predict.")
            return
        data = layer_array(image)
        in_channels = int((ref.config or {}).get("in_channels", 1))
        spatial_nd = data.ndim - (1 if in_channels > 1 or image.rgb else 0)
        slices = None
        if self.panel.scope.currentData() == CURRENT and spatial_nd == 3:
            slices, _ = visible_plane(self.viewer, image, tuple(data.shape[:spatial_nd]))
        job = self._submit(lambda: self.client.predict(
            ref, data, tile=self.settings.tile_config(),
            probabilities=self.panel.confidence_box.isChecked(),
            device=self.settings.device_name(), slices=slices,
        ), "Prediction")
        if job is None:
            return
        self.model = ref
        self.target = (image, tuple(data.shape[:spatial_nd]), slices)
        self.panel.set_running(True)
        self.panel.progress.setValue(0)
        self.panel.status.setText(f"Predicting '{image.name}'...")
        self._follow(job, {"progress": self._on_progress, "done": self._on_done,
                           "error": self._on_error}, latest_only=("progress",))

    def _on_progress(self, p: dict) -> None:
        self.panel.progress.setMaximum(max(1, int(p.get("total_tiles") or 1)))
        self.panel.progress.setValue(int(p.get("done_tiles") or 0))

    def _on_done(self, result: dict) -> None:
        if result.get("cancelled"):
            self.panel.status.setText("Prediction cancelled; no layer was added.")
            self.notifier.info("Prediction cancelled; no layer was added.")
            return
        self.settings.show_device_used(result.get("device"))
        image, shape, slices = self.target
        if image not in self.viewer.layers:
            self.notifier.error(f"The image '{image.name}' was deleted during prediction.")
            return
        labels = np.asarray(result["labels"])
        probabilities = result.get("probabilities")
        if slices is not None and labels.ndim == len(shape) - 1:
            full = np.zeros(shape, dtype=labels.dtype)
            full[slices] = labels
            labels = full
            if probabilities is not None:
                full_p = np.zeros((probabilities.shape[0], *shape), dtype=probabilities.dtype)
                full_p[:, slices] = probabilities
                probabilities = full_p
        ref = self.model
        decoder = str((ref.config or {}).get("decoder", "?"))
        names = list(ref.class_names)
        layer = place_result(self.viewer, image, labels, decoder, names,
                             self.panel.update_box.isChecked())
        self.snapshots[layer.unique_id] = np.array(layer.data, copy=True)
        if probabilities is not None:
            place_confidence(self.viewer, image, probabilities, decoder)
        counts = np.bincount(labels.ravel(), minlength=len(names) + 1)[1:]
        summary = ", ".join(
            f"{name} {100.0 * c / max(1, labels.size):.0f}%" for name, c in zip(names, counts)
        )
        text = f"Added '{layer.name}': {summary}."
        self.panel.status.setText(text + " Paint fixes on it, then 'Use corrections as labels'.")
        self.notifier.info(text)

    def _finished(self) -> None:
        super()._finished()
        self.panel.set_running(False)

    def layer_removed(self, layer: Any) -> None:
        """Forget the snapshot of a deleted prediction layer."""
        self.snapshots.pop(getattr(layer, "unique_id", None), None)

    # ------------------------------------------------------------ corrections
    def use_corrections(self) -> None:
        """Merge fixes painted on a prediction layer into a corrections labels layer."""
        prediction = choose_prediction_layer(self.viewer)
        if prediction is None:
            self.notifier.warning(
                "Predict first, paint the right class over mistakes on the prediction "
                "layer, then press 'Use corrections as labels'."
            )
            return
        snapshot = self.snapshots.get(prediction.unique_id)
        if snapshot is None or snapshot.shape != prediction.data.shape:
            self.notifier.warning(
                f"'{prediction.name}' was not made in this session, so its corrections "
                "cannot be told apart; predict again and correct the new layer."
            )
            return
        source = prediction.metadata.get("source_image")
        row = next(
            (
                r
                for r in self.data.rows
                if r.image.layer() is not None
                and r.image.layer().name == source
                and r.labels.layer() is not None
                and r.labels.layer().data.shape == prediction.data.shape
            ),
            None,
        )
        if row is None:
            self.notifier.warning(
                f"Choose '{source}' with its labels layer in the Data section first; the "
                "corrections are added to those labels (in a separate layer)."
            )
            return
        if not bool(np.any((np.asarray(prediction.data) != snapshot) & (prediction.data > 0))):
            self.notifier.info(
                f"No corrections found on '{prediction.name}': paint the right class over "
                "wrong pixels there first."
            )
            return
        user_labels = row.labels.layer()
        target, n_changed = merge_corrections(self.viewer, prediction, snapshot, user_labels)
        self.snapshots[prediction.unique_id] = np.array(prediction.data, copy=True)
        row.labels.refresh()
        row.labels.set_layer(target)
        text = (
            f"{n_changed} corrected pixels added to '{target.name}', which is now the "
            f"training labels for '{source}'. Your layer '{user_labels.name}' is unchanged."
        )
        self.panel.status.setText(text + " Train again to learn from them.")
        self.notifier.info(text)
