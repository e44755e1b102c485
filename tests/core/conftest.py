"""Shared data for the core tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def two_halves_task():
    """An easy 2-class image (dark left, bright right) with 4 strokes, and small configs.

    Returns ``(image, labels, model_config, train_config)``.
    """
    from napari_unet_studio.core.config import ModelConfig, TrainConfig

    rng = np.random.default_rng(0)
    image = rng.normal(0, 0.1, (48, 48)).astype(np.float32)
    image[:, 24:] += 1.0
    lab = np.zeros((48, 48), np.uint8)
    lab[4:20, 4], lab[28:44, 8] = 1, 1
    lab[4:20, 40], lab[28:44, 44] = 2, 2
    tc = TrainConfig(steps=20, patch_size=32, batch_size=2, start="scratch", device="cpu")
    return image, lab, ModelConfig(width=4, depth=2), tc
