"""The ``upsample`` job: what each decoder's upsampling makes of a crop
(:func:`~napari_unet_studio.core.upsample_demo.upsampling_gallery`).

Spec: ``crop`` (an array key), ``factor`` (2 or 4), ``model`` (a ``ModelRef`` or
``None``: its learned kernels are used where its decoder has them). Done payload:
``{"panels": [{"name", "image", "about", "source"}, ...]}`` (small float32 arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .server import WARMUP_WAIT_S, Server, Task
from .shm import attach, detach


class UpsampleTask(Task):
    doing = "Showing the upsampling"

    def __init__(self, server: Server, job_id: int, spec: dict) -> None:
        super().__init__(server, job_id)
        self.spec = spec
        self.blocks: list[Any] = []

    def work(self) -> dict[str, Any]:
        self.server.warm.wait(WARMUP_WAIT_S)
        from ..core.upsample_demo import upsampling_gallery

        shm, view = attach(self.spec["crop"])
        self.blocks.append(shm)
        crop = np.array(view, dtype=np.float32, copy=True)
        del view
        ref = self.spec.get("model")
        model = self.server.load(ref.path) if ref is not None else None
        panels = upsampling_gallery(crop, int(self.spec.get("factor", 2)), model)
        return {"panels": [{"name": str(p["name"]), "image": np.asarray(p["image"], np.float32),
                            "about": str(p["about"]), "source": str(p["source"])}
                           for p in panels]}

    def cleanup(self) -> None:
        for shm in self.blocks:
            detach(shm)
