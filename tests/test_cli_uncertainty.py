"""``unet-studio predict --uncertainty`` and ``napari_unet_studio.uncertainty``."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import napari_unet_studio as nus
from napari_unet_studio.cli import main
from napari_unet_studio.core.uncertainty import entropy_map, margin_map


@pytest.fixture(scope="module")
def model_and_image(one_torch_thread):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    disk = (yy - 24) ** 2 + (xx - 24) ** 2 < 144
    image = (rng.normal(100, 20, (48, 48)) + 150 * disk).astype(np.float32)
    labels = np.zeros((48, 48), np.uint8)
    labels[::5, ::4] = np.where(disk[::5, ::4], 2, 1)
    model = nus.train(image, labels, steps=8, arch={"depth": 1, "width": 4}, start="scratch",
                      patch_size=16, batch_size=2, device="cpu", threads=1)
    return model, image


def test_api_uncertainty(model_and_image):
    model, image = model_and_image
    _, probs = nus.predict(model, image, probabilities=True, device="cpu", threads=1)
    unc = nus.uncertainty(model, image, device="cpu", threads=1)
    assert unc.shape == image.shape and np.allclose(unc, entropy_map(probs), atol=1e-6)
    margin = nus.uncertainty(model, image, method="margin", device="cpu", threads=1)
    assert np.allclose(margin, margin_map(probs), atol=1e-6)
    flips = nus.uncertainty(model, image, method="flips", device="cpu", threads=1)
    assert flips.shape == image.shape and 0 <= flips.min() and flips.max() <= 1
    with pytest.raises(ValueError, match="unknown uncertainty"):
        nus.uncertainty(model, image, method="nope")


def test_cli_writes_the_uncertainty(model_and_image, tmp_path):
    model, image = model_and_image
    nus.save_model(model, tmp_path / "m.pt")
    tifffile.imwrite(tmp_path / "img.tif", image)
    args = ["predict", "--model", str(tmp_path / "m.pt"), "--image", str(tmp_path / "img.tif"),
            "--out", str(tmp_path / "pred.tif"), "--device", "cpu", "--quiet",
            "--threads", "1"]
    assert main([*args, "--uncertainty", str(tmp_path / "unc.tif")]) == 0
    unc = tifffile.imread(tmp_path / "unc.tif")
    assert unc.dtype == np.float32 and unc.shape == image.shape
    expect = nus.uncertainty(model, image, device="cpu", threads=1)
    assert np.allclose(unc, expect, atol=1e-5)
    assert main([*args, "--uncertainty", str(tmp_path / "f.tif"),
                 "--uncertainty-method", "flips"]) == 0
    flips = tifffile.imread(tmp_path / "f.tif")
    assert np.allclose(flips, nus.uncertainty(model, image, method="flips", device="cpu",
                                              threads=1), atol=1e-5)
    assert main([*args, "--uncertainty", str(tmp_path / "no" / "u.tif")]) != 0
