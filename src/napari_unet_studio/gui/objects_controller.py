"""Objects and big images in the dock: instances + table, block-wise OME-Zarr prediction.

*Find objects* labels the instances of a class map layer (e.g. the prediction) in a
napari ``thread_worker`` (scipy/scikit-image, no torch) and adds an instance Labels
layer ``"<class map> objects"`` (updated in place on the next run; the user's own
layers are never written) and the measurements table. *Predict file to OME-Zarr* sends
the paths of the image's file, the model and the output store to the worker process
(job kind ``predict_store``), follows the blocks with a :class:`JobDrain`, then opens
the stored class ids (and instances) lazily as Labels layers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .jobs import JobController
from .layers import layer_array, unique_layer_name
from .notify import friendly_message
from .objects import TABLE_COLUMNS, ObjectsPanel

__all__ = ["ObjectsController", "OBJECTS_KEY"]

OBJECTS_KEY = "unet_studio_objects"  # metadata marking the instance layers we made


def _settings(panel: ObjectsPanel) -> dict:
    text = panel.classes.text().strip()
    classes = [int(c) for c in text.replace(" ", ",").split(",") if c] if text else None
    return {"classes": classes, "split": panel.split.isChecked(),
            "min_size": int(panel.min_size.value())}


def source_path(layer: Any) -> str | None:
    """The file or store a layer was opened from (``None`` for data made in napari)."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else None


class ObjectsController(JobController):
    """Find objects, show and save their table; predict a big image file block by block."""

    failed_text = "Prediction failed."
    # Cancel stops after the blocks in progress (they stay; pressing again resumes)
    cancelling_text = "Cancelling after the blocks in progress..."

    def __init__(self, viewer: Any, client: Any, panel: ObjectsPanel, slot: Any,
                 settings: Any, notifier: Any) -> None:
        super().__init__(client, panel, notifier, viewer=viewer, settings=settings,
                         slot=slot)
        self.rows: list[dict] = []
        self.worker: Any = None  # Find objects (a thread of this process)
        self.target: Any = None

    @property
    def running(self) -> bool:
        """True while Find objects or a block-wise prediction runs."""
        return self.worker is not None or self.job is not None

    # ------------------------------------------------------------ objects
    def find(self) -> None:
        """Label the objects of the chosen class map (Find objects button)."""
        if self.running:
            return
        layer = self.panel.classes_layer.layer()
        if layer is None:
            self.notifier.error("Choose a class map (e.g. a prediction layer) first.")
            return
        image = self.panel.image.layer()
        labels = layer_array(layer)
        intensity = None
        if image is not None:
            data = layer_array(image)
            if data.shape[:labels.ndim] == labels.shape:
                intensity = data
        try:
            spec = _settings(self.panel)
        except ValueError:
            self.notifier.error("Object classes: give class numbers such as 2 or 2,3.")
            return
        names = (self.slot.ref.class_names if self.slot.ref is not None else None)
        from napari.qt.threading import thread_worker

        @thread_worker
        def work() -> tuple:
            from ..objects import ObjectSettings, find_instances, measure_objects

            s = ObjectSettings(classes=tuple(spec["classes"]) if spec["classes"] else None,
                               split=spec["split"], min_size=spec["min_size"])
            inst, classes = find_instances(labels, s)
            return inst, measure_objects(inst, classes, intensity, names)

        self.worker = work()
        self.worker.returned.connect(lambda res: self._objects_done(layer, *res))
        self.worker.errored.connect(self._objects_failed)
        self.worker.finished.connect(self._worker_finished)
        self.panel.set_running(True)
        self.panel.status.setText(f"Finding objects in '{layer.name}'...")
        self.worker.start()

    def _worker_finished(self) -> None:
        self.worker = None
        self.panel.set_running(False)

    def _objects_failed(self, exc: BaseException) -> None:
        self.panel.status.setText("Finding objects failed.")
        self.notifier.error(friendly_message(exc, "Finding objects"))

    def _objects_done(self, source: Any, inst: np.ndarray, rows: list[dict]) -> None:
        self._show_instances(source, inst)
        self.show_table(rows)
        self.panel.status.setText(f"{len(rows)} objects in '{source.name}'.")

    def _show_instances(self, source: Any, inst: Any, name: str | None = None) -> Any:
        base = name or f"{source.name} objects"
        for layer in self.viewer.layers:  # update our own layer of this source
            if (layer.metadata or {}).get(OBJECTS_KEY) == base:
                layer.data = inst
                return layer
        return self.viewer.add_labels(
            inst, name=unique_layer_name(self.viewer, base), scale=source.scale,
            translate=source.translate, metadata={OBJECTS_KEY: base})

    def show_table(self, rows: list[dict]) -> None:
        """Fill the table (first 5000 rows; the CSV has all) and enable Save."""
        from qtpy.QtWidgets import QTableWidgetItem

        self.rows = list(rows)
        table = self.panel.table
        shown = self.rows[:5000]
        table.setRowCount(len(shown))
        for i, row in enumerate(shown):
            for j, col in enumerate(TABLE_COLUMNS):
                v = row.get(col, row.get("volume") if col == "area" else "")
                text = f"{v:.2f}" if isinstance(v, float) else str(v)
                table.setItem(i, j, QTableWidgetItem(text))
        self.panel.save_button.setEnabled(bool(self.rows))

    def save_csv(self, path: str | None = None) -> str | None:
        """Save the table as CSV (asks for a file name when ``path`` is None)."""
        if not self.rows:
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(self.panel, "Save objects table",
                                                  "objects.csv", "CSV (*.csv)")
            if not path:
                return None
        from ..objects import write_csv

        try:
            write_csv(self.rows, path)
        except OSError as exc:
            self.notifier.error(friendly_message(exc, "Saving the table"))
            return None
        self.panel.status.setText(f"Saved {len(self.rows)} objects to {path}.")
        return path

    # -------------------------------------------------------- big images
    def predict_file(self) -> None:
        """Predict the image's file block by block into OME-Zarr (worker job)."""
        if self.running:
            return
        ref = self._current_model()
        if ref is None:
            return
        image = self.panel.image.layer()
        path = source_path(image) if image is not None else None
        if not path:
            self.notifier.error("Choose an image opened from a file (OME-Zarr, zarr or TIFF): "
                                "its file is predicted block by block.")
            return
        out = self.panel.out.text().strip() or (
            str(Path(path.rstrip("/")).with_suffix("")) + "_prediction.zarr")
        level = int(self.panel.level.value())
        spec = {"model": ref, "image": path, "level": level, "out": os.path.abspath(out),
                "tile": dict(self.settings.tile_config()),
                "device": self.settings.device_name(),
                "objects": _settings(self.panel) if self.panel.big_objects.isChecked()
                else None}
        job = self._submit(lambda: self.client.submit("predict_store", spec), "Prediction")
        if job is None:
            return
        self.target = (image, level)
        self.panel.set_running(True)
        self.panel.progress.setValue(0)
        self.panel.status.setText(f"Predicting '{image.name}' into {out}...")
        self._follow(job, {"progress": self._on_progress, "done": self._on_done,
                           "error": self._on_error}, latest_only=("progress",))

    def _on_progress(self, p: dict) -> None:
        self.panel.progress.setFormat(("object block" if p.get("phase") == "objects"
                                       else "block") + " %v / %m")
        self.panel.progress.setMaximum(max(1, int(p.get("total_blocks") or 1)))
        self.panel.progress.setValue(int(p.get("done_blocks") or 0))

    def _on_done(self, result: dict) -> None:
        if result.get("cancelled"):
            self.panel.status.setText("Cancelled: the finished blocks are kept; press the "
                                      "button again to resume.")
            return
        image, level = self.target
        import dask.array as da

        out = result["out"]
        scale = np.asarray(image.scale, float)
        if getattr(image, "multiscale", False) and level < len(image.data):
            full, low = image.data[0].shape, image.data[level].shape
            k = len(scale)
            scale = scale * np.asarray(full[-k:], float) / np.asarray(low[-k:], float)
        classes = da.from_zarr(out, component="labels/classes/0")
        classes = classes.squeeze() if classes.ndim > len(scale) else classes
        self.viewer.add_labels(classes, name=unique_layer_name(self.viewer,
                                                               f"{image.name} prediction (zarr)"),
                               scale=scale, translate=image.translate)
        if result.get("objects") is not None:
            inst = da.from_zarr(out, component="labels/instances/0")
            inst = inst.squeeze() if inst.ndim > len(scale) else inst
            layer = self.viewer.add_labels(
                inst, name=unique_layer_name(self.viewer, f"{image.name} objects (zarr)"),
                scale=scale, translate=image.translate)
            layer.metadata[OBJECTS_KEY] = layer.name
            self.show_table(result.get("rows") or [])
        self.panel.status.setText(
            f"Saved {out}: {result['blocks']} blocks ({result['skipped']} already written) in "
            f"{result['seconds']:.1f} s" + (f", {result['objects']} objects"
                                            if result.get("objects") is not None else "") + ".")

    def _finished(self) -> None:
        super()._finished()
        self.panel.set_running(False)

    def shutdown(self) -> bool:
        """Cancel the job (closing the dock); True if one was running."""
        running = super().shutdown()
        if self.worker is not None:
            try:
                self.worker.quit()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass
        return running
