"""Assistant: the uncertainty layer, "Next uncertain region", and the decoder comparison.

:class:`AssistantController` receives what it works with (viewer, worker client, data
and settings panels, its :class:`~.assistant.AssistantPanel`, the current-model slot, the
notifier, and ``busy()``: whether training runs). The uncertainty maps come from the
training job's previews (``TrainController.uncertainty_listeners``, wired by the dock)
or from a ``predict`` job with probabilities; the comparison is a ``compare`` job on the
worker (``worker/compare_task.py``) followed with a :class:`~.drain.JobDrain`. The
user's painted labels are only read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels, Shapes

from ..core.uncertainty import to_uint8, uncertain_regions, uncertainty_map
from .drain import JobDrain, abandon
from .jobs import JobController
from .layers import (
    ROLE_COMPARE,
    ROLE_KEY,
    ROLE_MARKER,
    ROLE_UNCERTAINTY,
    keep_selection,
    layer_array,
    role,
    unique_layer_name,
    visible_plane,
    write_preview,
)
from .notify import Notifier, UserProblem

__all__ = ["AssistantController"]


def _camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9 on)."""
    return getattr(viewer, "scene", viewer).camera


class AssistantController(JobController):
    """The logic of the Assistant panel (see the module docstring).

    ``job`` and ``drain`` are the comparison's; ``map_job`` and ``map_drain`` those of
    'Map whole image'.
    """

    def __init__(self, viewer: Any, client: Any, data: Any, settings: Any, panel: Any,
                 slot: Any, notifier: Notifier, busy: Any = None) -> None:
        super().__init__(client, panel, notifier, viewer=viewer, data=data,
                         settings=settings, slot=slot)
        self._busy = busy or (lambda: False)
        self.layer: Image | None = None        # "<image> uncertainty"
        self.marker: Shapes | None = None      # the box around the region shown
        self.labels_layer: Labels | None = None
        self.known: set[Any] = set()           # planes (keys) whose map is filled
        self.visited: list[tuple[int, ...]] = []
        self.current: Any = None               # the Region shown last
        self.map_job: Any = None
        self.map_drain: JobDrain | None = None
        self.rows: list[dict] = []
        self.best: str | None = None
        self.compare_layers: dict[str, Labels] = {}
        self.compare_pairs: list[tuple[Any, Any]] = []
        self.uncertainty_updates = 0
        panel.uncertainty_box.toggled.connect(self._show_layer)

    @property
    def running(self) -> bool:
        """True while a comparison or a whole-image map runs."""
        return self.job is not None or self.map_job is not None

    # ------------------------------------------------------------ uncertainty
    def on_uncertainty(self, key: Any, uncertainty: np.ndarray, image: Image,
                       labels: Labels) -> None:
        """A preview's uncertainty plane (uint8): write it into the uncertainty layer."""
        layer = self._layer_for(image, labels)
        if write_preview(layer, key, np.asarray(uncertainty, np.uint8)):
            self.known.add(key)
            self.uncertainty_updates += 1

    def _layer_for(self, image: Image, labels: Labels) -> Image:
        """Find or create ``"<image> uncertainty"`` (hidden unless the box is ticked)."""
        shape = tuple(labels.data.shape)
        name = f"{image.name} uncertainty"
        layer = self.layer
        if layer is None or layer not in self.viewer.layers or layer.name != name:
            layer = next((ly for ly in self.viewer.layers if ly.name == name
                          and role(ly) == ROLE_UNCERTAINTY), None)
        if layer is not None and tuple(layer.data.shape) != shape:
            self.viewer.layers.remove(layer)
            layer = None
        if layer is None:
            layer = Image(
                np.zeros(shape, np.uint8), name=unique_layer_name(self.viewer, name),
                colormap="magma", contrast_limits=(0, 255), opacity=0.6,
                blending="additive", scale=tuple(labels.scale),
                translate=tuple(labels.translate),
                visible=bool(self.panel.uncertainty_box.isChecked()),
                metadata={ROLE_KEY: ROLE_UNCERTAINTY, "source_image": image.name})
            restore = keep_selection(self.viewer)
            index = (self.viewer.layers.index(labels) if labels in self.viewer.layers
                     else len(self.viewer.layers))
            self.viewer.layers.insert(index, layer)
            restore()
            self.known = set()
            self.visited = []
        self.layer, self.labels_layer = layer, labels
        return layer

    def _show_layer(self, on: bool) -> None:
        if self.layer is not None and self.layer in self.viewer.layers:
            self.layer.visible = bool(on)

    def map_whole_image(self) -> None:
        """Predict the first training image with probabilities and fill the layer."""
        if self.running:
            return
        ref = self.slot.ref
        chosen = self.data.chosen_layers()
        if ref is None or not chosen:
            self.notifier.info("Train a model first (or load one), with an image and its "
                               "labels chosen in the Data panel.")
            return
        image, labels = chosen[0]
        job = self._submit(lambda: self.client.predict(
            ref, layer_array(image), tile=self.settings.tile_config(), probabilities=True,
            device=self.settings.device_name()), "Mapping the uncertainty")
        if job is None:
            return
        self.map_job = job
        self.panel.map_button.setEnabled(False)
        self.panel.status.setText("Mapping the uncertainty of the whole image...")

        def done(result: dict) -> None:
            probs = result.get("probabilities")
            if result.get("cancelled") or probs is None:
                return
            layer = self._layer_for(image, labels)
            unc = to_uint8(uncertainty_map(np.asarray(probs), "entropy"))
            if unc.shape != tuple(layer.data.shape):
                self.notifier.warning("The uncertainty map does not fit the labels' shape.")
                return
            layer.data[...] = unc
            layer.refresh()
            self.known = {None} if unc.ndim == 2 else set(range(unc.shape[0]))
            self.uncertainty_updates += 1
            self.panel.status.setText("Uncertainty mapped for the whole image.")

        def finished() -> None:
            self.map_job, self.map_drain = None, None
            self.panel.map_button.setEnabled(True)

        self.map_drain = JobDrain(job, {"done": done, "error": self.notifier.worker_error},
                                  on_finished=finished, parent=self.panel,
                                  on_bug=self.notifier.bug)

    def next_region(self) -> Any:
        """Move the view to the most uncertain unpainted region not shown yet (cycling).

        Returns the :class:`~napari_unet_studio.core.uncertainty.Region` shown, or None.
        """
        layer, labels = self.layer, self.labels_layer
        if layer is None or layer not in self.viewer.layers or not self.known:
            self.notifier.info("No uncertainty map yet: train with the live preview on, or "
                               "press 'Map whole image' with a trained model.")
            return None
        data = np.asarray(layer.data)
        painted = None
        if labels is not None and labels in self.viewer.layers:
            painted = layer_array(labels)  # read only
            if painted.shape != data.shape:
                painted = None
        valid = None
        if data.ndim == 3:
            valid = np.zeros(data.shape[0], bool)
            valid[[k for k in self.known if isinstance(k, int) and 0 <= k < data.shape[0]]] = True
        size = int(self.panel.region_size.value())
        found = uncertain_regions(data, painted, size=size, count=1, valid=valid,
                                  avoid=self.visited)
        if not found and self.visited:  # every region was shown: start the cycle again
            self.visited = []
            found = uncertain_regions(data, painted, size=size, count=1, valid=valid)
        if not found:
            self.notifier.info("No uncertain region left that you have not painted.")
            return None
        region = found[0]
        self.visited.append(region.center)
        self.current = region
        self._go_to(layer, region)
        self.panel.status.setText(
            f"Region {len(self.visited)}: uncertainty {region.score:.2f} at "
            f"{', '.join(str(c) for c in region.center)} (px). Paint here, then press Next.")
        return region

    def _go_to(self, layer: Image, region: Any) -> None:
        world = np.asarray(layer.data_to_world(np.asarray(region.center, float)), float)
        viewer = self.viewer
        lead = viewer.dims.ndim - layer.ndim
        if len(region.center) == 3:
            viewer.dims.set_point(lead, float(world[0]))
        camera = _camera(viewer)
        camera.center = (float(world[-2]), float(world[-1]))
        half = region.size / 2.0
        y, x = region.center[-2:]
        corners = np.array([[y - half, x - half], [y + half, x + half]], float)
        scale = np.asarray(layer.scale)[-2:]
        trans = np.asarray(layer.translate)[-2:]
        box = corners * scale + trans
        rect = np.array([box[0], [box[0][0], box[1][1]], box[1], [box[1][0], box[0][1]]])
        if self.marker is None or self.marker not in viewer.layers:
            restore = keep_selection(viewer)
            self.marker = viewer.add_shapes(
                [rect], shape_type="rectangle", edge_color="cyan", face_color="transparent",
                edge_width=max(1.0, region.size / 24), name="where to paint next",
                metadata={ROLE_KEY: ROLE_MARKER})
            restore()
        else:
            self.marker.data = [rect]
        size = getattr(getattr(viewer, "canvas", None), "size", None) or (600, 600)
        canvas = float(min(size))
        extent = region.size * float(np.max(scale))
        if extent * camera.zoom > canvas:  # zoomed in too far to see the region
            camera.zoom = canvas / (2.0 * extent)

    # ------------------------------------------------------------- compare
    def start_compare(self) -> None:
        """Train every ticked decoder on the strokes, in the background (the button)."""
        if self.running:
            return
        if self._busy():
            self.notifier.info("Training is running; stop it before comparing decoders.")
            return
        sent = self._submit(self._send_compare, "Comparing decoders",
                            "Starting the comparison")
        if sent is None:
            return
        job, decoders, pair = sent
        self.rows, self.best = [], None
        self.compare_pairs = [pair]
        self._n = len(decoders)
        self.panel.clear_rows()
        self.panel.set_comparing(True)
        self.panel.progress.setRange(0, max(1, len(decoders)))
        self.panel.progress.setValue(0)
        self.panel.compare_status.setText(f"Comparing {len(decoders)} decoders...")
        self._follow(job, {"progress": self._on_progress, "preview": self._on_preview,
                           "row": self._on_row, "done": self._on_done,
                           "error": self._on_error}, latest_only=())

    def _send_compare(self) -> tuple[Any, list[str], tuple[Any, Any]]:
        """Send the ``compare`` job: (job, decoders, (image layer, labels layer) shown)."""
        decoders = self.panel.chosen_decoders()
        if not decoders:
            raise UserProblem("Tick at least one decoder to compare.")
        pairs, in_channels, k = self.data.collect_pairs()
        model_config = self.settings.model_config(in_channels, k)
        train_config = dict(self.settings.train_config())
        train_config["steps"] = int(self.panel.steps.value())
        train_config["time_limit"] = None
        arrays: dict[str, np.ndarray] = {}
        spec_pairs = []
        for i, p in enumerate(pairs):
            arrays[f"image{i}"], arrays[f"labels{i}"] = p.image, p.labels
            spec_pairs.append([f"image{i}", f"labels{i}"])
        image_layer, labels_layer = pairs[0].image_layer, pairs[0].labels_layer
        key, plane = visible_plane(self.viewer, image_layer, tuple(labels_layer.data.shape))
        arrays["plane"] = np.asarray(plane)
        spec = {"pairs": spec_pairs, "decoders": decoders, "model_config": model_config,
                "train_config": train_config, "folds": int(self.panel.folds.value()),
                "seed": int(train_config.get("seed", 0)),
                "class_names": self.data.class_names()[:k], "plane_key": key}
        return self.client.submit("compare", spec, arrays), decoders, (image_layer, labels_layer)

    def cancel_compare(self) -> None:
        """Stop the comparison after the current step (finished rows are kept)."""
        if self.job is not None:
            self.job.stop()
            self.panel.compare_status.setText("Cancelling...")
            self.panel.cancel_button.setEnabled(False)

    def _on_progress(self, p: dict) -> None:
        total = p.get("total_steps") or 0
        self.panel.compare_status.setText(
            f"{p.get('decoder')} ({int(p.get('index', 0)) + 1} of {p.get('of')}): "
            f"{p.get('phase')}, step {p.get('step')}" + (f" / {total}" if total else ""))

    def _on_preview(self, payload: Any) -> None:
        key, labels = payload
        if not (isinstance(key, tuple) and len(key) == 3 and key[0] == "compare"):
            return
        _, decoder, plane_key = key
        image, user_labels = self.compare_pairs[0]
        shape = tuple(user_labels.data.shape)
        name = f"compare: {image.name} ({decoder})"
        layer = self.compare_layers.get(decoder)
        if layer is None or layer not in self.viewer.layers:
            layer = Labels(np.zeros(shape, np.asarray(labels).dtype),
                           name=unique_layer_name(self.viewer, name), opacity=0.6,
                           scale=tuple(user_labels.scale), translate=tuple(user_labels.translate),
                           visible=not self.compare_layers,
                           metadata={ROLE_KEY: ROLE_COMPARE, "source_image": image.name,
                                     "decoder": decoder})
            restore = keep_selection(self.viewer)
            # the comparison's layers sit together, above the user's labels
            others = [ly for ly in self.viewer.layers if role(ly) == ROLE_COMPARE]
            index = (self.viewer.layers.index(others[-1]) + 1 if others
                     else len(self.viewer.layers))
            self.viewer.layers.insert(index, layer)
            restore()
            self.compare_layers[decoder] = layer
        write_preview(layer, plane_key, np.asarray(labels))

    def _on_row(self, row: dict) -> None:
        self.rows.append(row)
        self.panel.add_row(row)
        self.panel.progress.setValue(len(self.rows))

    def _on_done(self, result: dict) -> None:
        self.best = result.get("best")
        shown = self.panel.mark_best(self.best)
        for decoder, layer in self.compare_layers.items():
            if layer in self.viewer.layers:
                layer.visible = decoder == self.best
        n = len(self.rows)
        if result.get("cancelled"):
            text = f"Comparison cancelled after {n} of {self._n} decoders."
        else:
            text = f"Compared {n} decoders."
        if self.best is not None:
            text += (f" Best on your held-out strokes (lowest cross-entropy): "
                     f"{self.best}.")
        if result.get("undecided"):
            text += " " + str(result["undecided"])
        self.panel.compare_status.setText(text)
        self.panel.keep_button.setEnabled(shown is not None or bool(self.rows))

    def _on_error(self, error: Any) -> None:
        self.panel.compare_status.setText("The comparison did not finish; see the message.")
        self.notifier.worker_error(error)

    def _finished(self) -> None:
        super()._finished()
        self.panel.set_comparing(False)
        self.panel.keep_button.setEnabled(bool(self.rows))

    def keep_selected(self) -> Any:
        """Make the selected row's model (default: the best) the current model."""
        r = self.panel.selected_row()
        if r is None and self.best is not None:
            r = next((i for i, row in enumerate(self.rows) if row["decoder"] == self.best), None)
        if r is None or r >= len(self.rows):
            self.notifier.info("Select a row of the comparison table first.")
            return None
        row = self.rows[r]
        ref = row["model"]
        self.slot.set(ref, f"compared here ({row['decoder']}, {row.get('steps')} steps)")
        self.panel.compare_status.setText(f"{row['decoder']} is now the current model.")
        return ref

    # ------------------------------------------------------------- helpers
    def crop_around_view(self, size: int) -> np.ndarray:
        """A ``size`` px crop of the first training image (or the predict image) around
        the view centre, in the plane shown."""
        chosen = self.data.chosen_layers()
        if not chosen:
            raise UserProblem("Choose an image in the Data panel first.")
        image, labels = chosen[0]
        spatial = tuple(labels.data.shape)
        _, plane = visible_plane(self.viewer, image, spatial)
        plane = np.asarray(plane, np.float32)
        h, w = plane.shape[:2]
        point = list(self.viewer.dims.point)
        point[-2:] = list(_camera(self.viewer).center)[-2:]
        try:
            center = np.asarray(image.world_to_data(point), float)
            cy, cx = int(round(center[-2])), int(round(center[-1]))
        except (IndexError, ValueError, TypeError):
            cy, cx = h // 2, w // 2
        s = min(int(size), h, w)
        y0 = int(np.clip(cy - s // 2, 0, h - s))
        x0 = int(np.clip(cx - s // 2, 0, w - s))
        return plane[y0:y0 + s, x0:x0 + s]

    def layer_removed(self, layer: Any) -> None:
        """Forget our layers when the user deletes them."""
        if layer is self.layer:
            self.layer, self.known, self.visited = None, set(), []
        if layer is self.marker:
            self.marker = None
        for name, ly in list(self.compare_layers.items()):
            if ly is layer:
                del self.compare_layers[name]

    def shutdown(self) -> bool:
        """Stop the jobs (closing the dock); True if one was running."""
        running = super().shutdown()
        running = abandon(self.map_job, self.map_drain) or running
        self.map_job, self.map_drain = None, None
        return running
