"""Helpers of the export tests (a plain module: ``conftest`` names collide across folders)."""

from __future__ import annotations

import numpy as np


def blob_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """uint16 image with bright blobs on a dark background (and some noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 200.0)
    for _ in range(6):
        cy, cx, r = rng.uniform(8, size - 8), rng.uniform(8, size - 8), rng.uniform(4, 9)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = 3000.0
    img += rng.normal(0, 60, img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16)


def tiny_model(decoder: str, num_classes: int = 3, seed: int = 0, with_stem: bool = False,
               **arch):
    """A random-weight TrainedModel (width 4, depth 2) with a small record; without the
    engine's fixed-filter stem unless ``with_stem`` (where the engine has one)."""
    import dataclasses

    import torch

    from napari_unet_studio.core.checkpoint import TrainedModel
    from napari_unet_studio.core.config import ModelConfig
    from napari_unet_studio.core.model import build_model

    torch.manual_seed(seed)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    if "stem" in fields and not with_stem:  # the fixed-filter stem costs ONNX export time
        arch = {"stem": "none", **arch}
    cfg = ModelConfig(decoder=decoder, depth=2, width=4, num_classes=num_classes,
                      **{"norm": "batch", **arch})
    net = build_model(cfg)
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    names = ["background", "cell", "edge"][:num_classes]
    record = {"steps": 0, "decoder": decoder, "class_names": names, "seed": seed,
              "labeled_pixels": [100 + i for i in range(num_classes)], "start": "scratch"}
    return TrainedModel(cfg, {k: v.clone() for k, v in net.state_dict().items()},
                        record=record)
