"""Shared fixtures: a small trained model that finds bright discs, and disc images."""

from __future__ import annotations

import numpy as np
import pytest
from bd_helpers import disc_image


@pytest.fixture(scope="session")
def disc_model(tmp_path_factory):
    """A tiny 2-class model file (depth 2, width 4) trained on discs (60 steps of two
    64-pixel patches, one thread: it finds the discs as well as with the default 4 x 128
    pixels, in a third of the time)."""
    import torch

    import napari_unet_studio as nus

    img = disc_image((128, 128), 8, 0)
    lab = np.zeros(img.shape, np.uint8)
    lab[::5, ::5] = np.where(img[::5, ::5] > 140, 2, 1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # already for the stem's per-pixel fit, done before threads=1 acts
    try:
        model = nus.train(img, lab, steps=60, seed=0, arch={"depth": 2, "width": 4},
                          patch_size=64, batch_size=2, start="scratch", threads=1,
                          class_names=["background", "disc"])
    finally:
        torch.set_num_threads(before)
    path = tmp_path_factory.mktemp("model") / "discs.pt"
    nus.save_model(model, path)
    return path
