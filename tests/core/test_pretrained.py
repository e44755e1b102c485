"""Training starts: scratch, the shipped pretrained weights (safe, checksummed), a model file."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet_studio.core.checkpoint import save_model
from napari_unet_studio.core.config import ModelConfig, TrainConfig
from napari_unet_studio.core.train import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ModelConfig(depth=1, width=4)


def _task(size: int = 32, classes: int = 2, channels: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    image = rng.normal(0, 1, shape).astype(np.float32)
    labels = np.zeros((size, size), np.uint8)
    labels[::5, ::3] = rng.integers(1, classes + 1, labels[::5, ::3].shape)
    return image, labels


def _tc(**kw) -> TrainConfig:
    base = {"steps": 2, "patch_size": 16, "batch_size": 2, "device": "cpu", "seed": 0}
    base.update(kw)
    return TrainConfig(**base)


def _drain(gen):
    reports = []
    while True:
        try:
            reports.append(next(gen))
        except StopIteration as fin:
            return reports, fin.value


def test_start_defaults_to_pretrained_and_is_validated():
    assert TrainConfig().start == "pretrained"
    assert TrainConfig.from_dict(TrainConfig(start="scratch").to_dict()).start == "scratch"
    with pytest.raises(ValueError, match="start"):
        TrainConfig(start=" ")


def test_pretrained_without_fitting_weights_falls_back_to_scratch_and_says_so():
    image, labels = _task()
    trainer = Trainer([(image, labels)], TINY, _tc())
    reports, model = _drain(trainer.run())
    assert model.record["start"].startswith("scratch (")
    assert "random weights" in reports[0].message
    assert "pretrained" not in model.record


def test_scratch_start_is_plain_random_init():
    image, labels = _task()
    a = Trainer([(image, labels)], TINY, _tc(start="scratch"))
    b = Trainer([(image, labels)], TINY, _tc(start="pretrained"))  # no weights for TINY
    for k, v in a.model.state_dict().items():
        assert np.array_equal(v.numpy(), b.model.state_dict()[k].numpy()), k
    _, model = _drain(a.run())
    assert model.record["start"] == "scratch"


def test_start_from_a_model_file_keeps_weights_and_renews_the_head(tmp_path):
    image, labels = _task()
    _, first = _drain(Trainer([(image, labels)], TINY, _tc(start="scratch")).run())
    save_model(first, tmp_path / "m.pt")
    image3, labels3 = _task(classes=3)
    trainer = Trainer([(image3, labels3)], None, _tc(start=str(tmp_path / "m.pt"), steps=1))
    assert trainer.model_config.num_classes == 3 and trainer.model_config.width == 4
    enc = "encoder.0.0.weight"
    assert np.array_equal(trainer.model.state_dict()[enc].numpy(), first.state_dict[enc].numpy())
    _, model = _drain(trainer.run())
    assert model.record["start"] == f"model file {tmp_path / 'm.pt'}"
