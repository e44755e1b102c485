"""Headless API: train -> save -> load -> predict, and the lazy package exports."""

from __future__ import annotations

import numpy as np
import pytest

import napari_unet_studio as nus
from napari_unet_studio.core.config import ModelConfig, TileConfig, TrainConfig
from napari_unet_studio.core.errors import DataError, ModelFileError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _task():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    disk = (yy - 20) ** 2 + (xx - 20) ** 2 < 100
    image = (rng.normal(0, 0.3, (40, 40)) + disk).astype(np.float32)
    labels = np.zeros((40, 40), np.uint8)
    labels[::6, ::4] = np.where(disk[::6, ::4], 2, 1)
    return image, labels


SMALL = ModelConfig(depth=1, width=4)
FAST = TrainConfig(steps=4, patch_size=16, batch_size=2, device="cpu")


def test_lazy_exports():
    assert nus.train is nus._api.train and nus.predict is nus._api.predict
    assert nus.load_model is nus._api.load_model and nus.save_model is nus._api.save_model
    assert nus.TrainedModel.__name__ == "TrainedModel"


def test_train_save_load_predict_round_trip(tmp_path):
    image, labels = _task()
    model = nus.train(image, labels, model_config=SMALL, train_config=FAST, steps=5, seed=3,
                      class_names=["background", "cell"])
    assert model.record["steps"] == 5 and model.record["seed"] == 3
    assert model.config.num_classes == 2
    path = tmp_path / "model.pt"
    nus.save_model(model, path)
    tile = TileConfig(tile=16, overlap=0.25)
    direct = nus.predict(model, image, tile=tile, device="cpu")
    from_file = nus.predict(str(path), image, tile=tile, device="cpu")
    np.testing.assert_array_equal(direct, from_file)
    assert direct.shape == (40, 40) and direct.dtype == np.uint8
    assert set(np.unique(direct)) <= {1, 2}
    labels_out, probs = nus.predict(path, image, tile=tile, probabilities=True)
    np.testing.assert_array_equal(labels_out, direct)
    assert probs.shape == (2, 40, 40) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert nus.load_model(path).class_names == ["background", "cell"]
    _, probs_tta = nus.predict(model, image, tile=tile, probabilities=True, tta=8)
    np.testing.assert_allclose(probs_tta.sum(0), 1.0, atol=1e-5)
    assert not np.allclose(probs_tta, probs, atol=1e-4)  # averaging changed something


def test_pairs_decoder_time_limit_and_continue(tmp_path):
    image, labels = _task()
    decoder = nus.list_decoders()[-1]
    model = nus.train([(image, labels), (image.T.copy(), labels.T.copy())],
                      train_config=FAST, decoder=decoder, time_limit=0.3, progress=True)
    assert model.config.decoder == decoder and model.record["steps"] >= 1
    assert model.record["train_config"]["steps"] is None
    nus.save_model(model, tmp_path / "m.pt")
    more = nus.train(image, labels, train_config=FAST, init=tmp_path / "m.pt")
    assert more.config == model.config and "init_from" in more.record


def test_api_errors_are_clear(tmp_path):
    image, labels = _task()
    with pytest.raises(DataError, match="No labels"):
        nus.train(image, np.zeros_like(labels), train_config=FAST)
    with pytest.raises(ModelFileError, match="No model file"):
        nus.predict(tmp_path / "missing.pt", image)


def test_train_config_from_is_the_one_place_for_overrides():
    tc = nus._api.train_config_from(FAST, steps=None, lr=1e-3, start="scratch", seed=2.0)
    assert (tc.steps, tc.lr, tc.start, tc.seed) == (4, 1e-3, "scratch", 2)
    only_time = nus._api.train_config_from(FAST, time_limit=2.0)
    assert only_time.steps is None and only_time.time_limit == 2.0
    with pytest.raises(ValueError, match="unknown training settings"):
        nus._api.train_config_from(FAST, lrate=1)
    with pytest.raises(ValueError, match="start_lr"):
        nus._api.train_config_from(FAST, start_lr=-1.0)


def test_start_and_settings_reach_the_trainer(tmp_path):
    image, labels = _task()
    scratch = nus.train(image, labels, model_config=SMALL, train_config=FAST, start="scratch",
                        lr=2e-3, cutmix=0.0)
    assert scratch.record["start"] == "scratch"
    assert scratch.record["train_config"]["lr"] == 2e-3
    nus.save_model(scratch, tmp_path / "s.pt")
    again = nus.train(image, labels, train_config=FAST, start=tmp_path / "s.pt")
    assert again.record["start"] == f"model file {tmp_path / 's.pt'}"
    assert again.config.width == SMALL.width
    with pytest.raises(ModelFileError):
        nus.train(image, labels, train_config=FAST, start=tmp_path / "missing.pt")


def test_pretrained_info_describes_the_shipped_weights():
    text = nus._api.pretrained_info()
    assert "Pretrained starting weights" in text and "bilinear" in text and "sha256" in text
