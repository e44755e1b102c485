"""Saving, loading and exporting model files through the worker (the torch side reads
and writes).

:class:`ModelFilesController` receives the client, the current-model slot, the panels
it reads (class names, the image for an export) and the notifier. Loading a file that
fails keeps the model the user had. Export sends the current model, a crop of the
first image of the Data panel and the chosen path/format to the worker's ``export`` job
(:mod:`napari_unet_studio.worker.export_task`); missing export packages are reported
in plain words before anything is sent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .drain import JobDrain
from .models import ask_export_path, ask_open_path, ask_save_path
from .notify import Notifier, friendly_message

__all__ = ["ModelFilesController"]


class ModelFilesController:
    """Save / Load buttons and model files handed over by the napari reader.

    Parameters
    ----------
    client : WorkerClient
    slot : ModelSlot
    data : DataPanel
        Its class names are saved with the model.
    panel : ModelsPanel
    notifier : Notifier
    dialog_parent : QWidget
        Parent of the file dialogs.
    """

    def __init__(self, client: Any, slot: Any, data: Any, panel: Any, notifier: Notifier,
                 dialog_parent: Any) -> None:
        self.client = client
        self.slot = slot
        self.data = data
        self.panel = panel
        self.notifier = notifier
        self.parent = dialog_parent
        self.drains: list[JobDrain] = []
        export_button = getattr(panel, "export_button", None)
        if export_button is not None:
            export_button.clicked.connect(self.export)

    @property
    def running(self) -> bool:
        """True while a load or save job runs."""
        return any(not d.done for d in self.drains)

    def _watch(self, job: Any, on_done: Any, on_error: Any) -> None:
        drain = JobDrain(job, {"done": on_done, "error": on_error},
                         on_finished=lambda: self._forget(drain), interval_ms=30,
                         parent=self.panel, on_bug=self.notifier.bug)
        self.drains.append(drain)

    def _forget(self, drain: JobDrain) -> None:
        if drain in self.drains:
            self.drains.remove(drain)

    # -------------------------------------------------------------------- save
    def save(self) -> None:
        """Save the current model (Save button)."""
        ref = self.slot.ref
        if ref is None:
            self.notifier.error("There is no model to save yet; train or load one first.")
            return
        num_classes = int((ref.config or {}).get("num_classes", len(ref.class_names)))
        names = self.data.class_names()[:num_classes]
        ref = _with_class_names(ref, names)
        decoder = (ref.config or {}).get("decoder", "model")
        path = ask_save_path(self.parent, f"unet_{decoder}.pt")
        if not path:
            return
        try:
            job = self.client.save_model(ref, path)
        except Exception as exc:  # noqa: BLE001 - the client could not send the job
            self.notifier.error(friendly_message(exc, "Saving the model"))
            return

        def done(saved: Any) -> None:
            where = str(saved or path)
            self.slot.set(ref, where)
            self.notifier.info(f"Model saved to {where}")

        self._watch(job, done, self.notifier.worker_error)

    # -------------------------------------------------------------------- load
    def load(self) -> None:
        """Ask for a model file and load it (Load button)."""
        path = ask_open_path(self.parent)
        if path:
            self.load_file(path)

    def load_file(self, path: str) -> None:
        """Load ``path`` on the worker and make it the current model; notify on failure."""
        try:
            job = self.client.load_model(str(path))
        except Exception as exc:  # noqa: BLE001 - the client could not send the job
            self.notifier.error(friendly_message(exc, f"Opening '{path}'"))
            return

        def done(ref: Any) -> None:
            self.slot.set(ref, str(path))
            decoder = (ref.config or {}).get("decoder", "?")
            self.notifier.info(f"Loaded model '{Path(path).name}' ({decoder} decoder).")

        self._watch(job, done, self.notifier.worker_error)

    # ------------------------------------------------------------------ export
    def export(self) -> None:
        """Export the current model (Export button): ask for the path and format, check
        that the packages are installed, then run the export on the worker."""
        from ..export.needs import missing_message

        ref = self.slot.ref
        if ref is None:
            self.notifier.error("There is no model to export yet; train or load one first.")
            return
        num_classes = int((ref.config or {}).get("num_classes", len(ref.class_names)))
        ref = _with_class_names(ref, self.data.class_names()[:num_classes])
        image = export_image(self.data, int((ref.config or {}).get("in_channels", 1)))
        decoder = (ref.config or {}).get("decoder", "model")
        path, fmt = ask_export_path(self.parent, f"unet_{decoder}")
        if not path:
            return
        problem = missing_message(fmt)
        if problem:
            self.notifier.error(problem)
            return
        if fmt == "bioimageio" and image is None:
            self.notifier.error("Choose one of your images in the Data panel first: the "
                                "package's test image and cover are made from it.")
            return
        spec = {"model": ref, "out": str(path), "format": fmt, "validate": True}
        try:
            job = self.client.submit("export", spec,
                                     {"image": image} if image is not None else None)
        except Exception as exc:  # noqa: BLE001 - the client could not send the job
            self.notifier.error(friendly_message(exc, "Exporting the model"))
            return
        self.notifier.info(f"Exporting the model to {Path(path).name}...")

        def done(result: Any) -> None:
            result = result or {}
            missing = result.get("not_exported") or {}
            text = f"Model exported to {result.get('path', path)}."
            if result.get("validation"):
                text += f" bioimage.io check: {result['validation']}."
            if missing:
                text += " Not included: " + "; ".join(f"{k} ({v})" for k, v in missing.items())
            if result.get("validation") not in (None, "passed") or missing:
                self.notifier.warning(text)
            else:
                self.notifier.info(text)

        self._watch(job, done, self.notifier.worker_error)

    def shutdown(self) -> None:
        """Stop polling (closing the dock)."""
        for drain in self.drains:
            drain.cancel()
        self.drains = []


def export_image(data: Any, in_channels: int, edge: int = 512) -> Any:
    """A centre crop (at most ``edge`` pixels per axis; the middle slice of a stack) of
    the first image chosen in the Data panel, as a numpy array; ``None`` without one."""
    import numpy as np

    layer = next((r.image.layer() for r in getattr(data, "rows", [])
                  if r.image.layer() is not None), None)
    if layer is None:
        return None
    arr = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    spatial_ndim = arr.ndim - (1 if in_channels > 1 or getattr(layer, "rgb", False) else 0)
    if spatial_ndim >= 3:  # a stack: its middle slice
        arr = arr[arr.shape[0] // 2]
    index = []
    for axis, n in enumerate(arr.shape):
        if axis < 2 and n > edge:
            start = (n - edge) // 2
            index.append(slice(start, start + edge))
        else:
            index.append(slice(None))
    return np.ascontiguousarray(np.asarray(arr[tuple(index)]))


def _with_class_names(ref: Any, names: list[str]) -> Any:
    """``ref`` with the class names shown in the Data panel (a new frozen object)."""
    if not names or list(names) == list(ref.class_names):
        return ref
    try:
        record = {**(ref.record or {}), "class_names": list(names)}
        return dataclasses.replace(ref, class_names=list(names), record=record)
    except (TypeError, ValueError):
        return ref
