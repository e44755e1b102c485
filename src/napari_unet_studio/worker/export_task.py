"""The export job of the worker: a model as a bioimage.io package, TorchScript or ONNX.

The GUI sends the current model (a :class:`~.protocol.ModelRef`), the target path and
format, and one of the user's images (shared memory) for the package's test tensors
and cover; the job reports each stage as progress and ends with a plain summary.
"""

from __future__ import annotations

from typing import Any

from .protocol import PROGRESS
from .server import WARMUP_WAIT_S, SpecTask, model_with_names


class ExportTask(SpecTask):
    """Spec: ``model`` (ModelRef), ``out`` (path), ``format``, optional ``image`` (an
    array sent through shared memory), ``name``, ``authors``, ``weight_formats``
    (default TorchScript and ONNX), ``validate``."""

    doing = "Exporting the model"

    def work(self) -> dict[str, Any]:
        self.server.warm.wait(WARMUP_WAIT_S)
        from ..core.device import prepare_runtime
        from ..export.exporter import export_model

        spec = self.spec
        model = model_with_names(self.server.load(spec["model"].path), spec["model"])
        image = self.array("image") if spec.get("image") is not None else None
        prepare_runtime(self.server.threads or self.server.preferred_threads)

        def progress(text: str) -> None:
            self.event(PROGRESS, {"stage": str(text)})

        report = export_model(
            model, spec["out"], format=spec.get("format", "bioimageio"), image=image,
            name=spec.get("name"), authors=spec.get("authors"),
            weight_formats=tuple(spec.get("weight_formats") or ("torchscript", "onnx")),
            validate=bool(spec.get("validate", True)), progress=progress)
        del image
        return {"path": str(report.path), "format": report.format,
                "summary": report.summary(), "not_exported": dict(report.not_exported),
                "validation": None if report.validation is None
                else str(report.validation["status"])}
