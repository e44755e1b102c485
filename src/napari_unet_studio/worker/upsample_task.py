"""The ``upsample`` job: what each decoder's upsampling makes of a crop
(:func:`~napari_unet_studio.core.upsample_demo.upsampling_gallery`).

Spec: ``crop`` (an array key), ``factor`` (2 or 4), ``model`` (a ``ModelRef`` or
``None``: its learned kernels are used where its decoder has them). Done payload:
``{"panels": [{"name", "image", "about", "source"}, ...]}`` (small float32 arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .server import WARMUP_WAIT_S, SpecTask


class UpsampleTask(SpecTask):
    doing = "Showing the upsampling"

    def work(self) -> dict[str, Any]:
        self.server.warm.wait(WARMUP_WAIT_S)
        from ..core.upsample_demo import upsampling_gallery

        view = self.array("crop")
        crop = np.array(view, dtype=np.float32, copy=True)
        del view
        ref = self.spec.get("model")
        model = self.server.load(ref.path) if ref is not None else None
        panels = upsampling_gallery(crop, int(self.spec.get("factor", 2)), model)
        return {"panels": [{"name": str(p["name"]), "image": np.asarray(p["image"], np.float32),
                            "about": str(p["about"]), "source": str(p["source"])}
                           for p in panels]}
