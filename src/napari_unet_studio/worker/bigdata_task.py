"""Worker job ``predict_store``: block-wise prediction of an image file into OME-Zarr.

The GUI sends paths only (the image the user opened from a file, the model, the output
store); this task runs :func:`napari_unet_studio.bigdata.iter_predict_store` in the
worker process and reports blocks done as progress events. Cancel stops after the
blocks in progress; a later run with the same settings resumes.
"""

from __future__ import annotations

from typing import Any

from .protocol import PROGRESS
from .server import SpecTask

__all__ = ["PredictStoreTask"]


class PredictStoreTask(SpecTask):
    """spec: ``model`` (ModelRef), ``image`` (path), ``level``, ``out``, ``tile`` (dict),
    ``objects`` (ObjectSettings fields or None), ``block``, ``device``, ``probabilities``."""

    doing = "Predicting the big image"

    def work(self) -> dict[str, Any]:
        from ..bigdata import iter_predict_store
        from ..core.config import TileConfig
        from ..objects import ObjectSettings

        spec = self.spec
        objects = spec.get("objects")
        if objects is not None:
            objects = ObjectSettings(**{k: (tuple(v) if k == "classes" and v else v)
                                        for k, v in objects.items()})
        gen = iter_predict_store(
            spec["model"].path, spec["image"], spec["out"], level=int(spec.get("level", 0)),
            tile=TileConfig.from_dict(spec["tile"]) if spec.get("tile") else None,
            probabilities=bool(spec.get("probabilities")), objects=objects,
            block=int(spec.get("block", 4096)), device=spec.get("device") or "auto",
            threads=spec.get("threads"), stop=self.cancel)
        while True:
            try:
                p = next(gen)
            except StopIteration as fin:
                res = fin.value
                break
            self.event(PROGRESS, {"phase": p.phase, "done_blocks": p.done,
                                  "total_blocks": p.total, "skipped": p.skipped,
                                  "elapsed": p.elapsed})
        return {"out": res.out, "blocks": res.blocks, "skipped": res.skipped,
                "seconds": res.seconds, "objects": res.objects, "rows": res.rows,
                "cancelled": res.cancelled}
