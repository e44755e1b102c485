"""CLI contract for volumes: --dims 3, --spacing, TIFF voxel size, the printed recommendation."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet_studio.cli import main
from napari_unet_studio.cli._io import tiff_spacing

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def volume_files(tmp_path):
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:16, :32, :32]
    ball = ((zz - 8) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2) < 8**2
    image = (rng.normal(100, 8, ball.shape) + 60 * ball).astype(np.uint16)
    labels = np.zeros(ball.shape, np.uint8)
    for z in (6, 9):
        labels[z] = np.where(ball[z], 2, 1) * (rng.random(ball[z].shape) < 0.2)
    img, lab = tmp_path / "vol.tif", tmp_path / "vol_labels.tif"
    tifffile.imwrite(img, image, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 1.5, "axes": "ZYX"})
    tifffile.imwrite(lab, labels)
    return {"img": img, "lab": lab, "dir": tmp_path}


def test_voxel_size_from_imagej_metadata(volume_files):
    assert tiff_spacing(str(volume_files["img"])) == (1.5, 0.5, 0.5)
    assert tiff_spacing(str(volume_files["lab"])) is None


def test_train_dims_3_with_spacing_then_predict_a_volume(volume_files, capsys):
    d = volume_files["dir"]
    code = main(["train", "--image", str(volume_files["img"]), "--labels",
                 str(volume_files["lab"]), "--out", str(d / "m.pt"), "--dims", "3",
                 "--spacing", "3", "1", "1", "--steps", "4", "--patch-size", "16",
                 "--decoder", "unpool", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert "Training a 3D model (--dims 3)" in err and "1x2x2, 2x2x2, 2x2x2" in err
    from napari_unet_studio import load_model

    model = load_model(d / "m.pt")
    assert model.config.dims == 3 and model.config.spacing == (3.0, 1.0, 1.0)
    assert model.config.decoder == "unpool" and model.record["train_config"]["patch_size"] == 16
    assert "voxel size:  3 x 1 x 1 (Z x Y x X); pooling 1x2x2, 2x2x2, 2x2x2" in model.describe()
    code = main(["predict", "--model", str(d / "m.pt"), "--image", str(volume_files["img"]),
                 "--out", str(d / "pred.tif"), "--quiet"])
    assert code == 0
    pred = tifffile.imread(d / "pred.tif")
    assert pred.shape == (16, 32, 32) and pred.min() >= 1 and pred.max() <= 2


def test_stack_default_follows_the_printed_recommendation(volume_files, capsys):
    d = volume_files["dir"]
    code = main(["train", "--image", str(volume_files["img"]), "--labels",
                 str(volume_files["lab"]), "--out", str(d / "r.pt"), "--steps", "2",
                 "--patch-size", "16", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert "Training a 3D model: a volume of 16 slices" in err and "--dims" in err
    assert "Voxel size (Z, Y, X): (1.5, 0.5, 0.5)" in err  # from the TIFF
    from napari_unet_studio import load_model

    assert load_model(d / "r.pt").config.dims == 3
    code = main(["train", "--image", str(volume_files["img"]), "--labels",
                 str(volume_files["lab"]), "--out", str(d / "s.pt"), "--steps", "2",
                 "--patch-size", "16", "--dims", "2", "--quiet"])
    assert code == 0 and load_model(d / "s.pt").config.dims == 2
    assert "the recommendation was 3D" in capsys.readouterr().err


def test_dims_3_on_a_2d_image_is_a_plain_error(volume_files, capsys):
    d = volume_files["dir"]
    tifffile.imwrite(d / "flat.tif", np.zeros((32, 32), np.uint8))
    tifffile.imwrite(d / "flat_lab.tif", np.ones((32, 32), np.uint8))
    code = main(["train", "--image", str(d / "flat.tif"), "--labels", str(d / "flat_lab.tif"),
                 "--out", str(d / "x.pt"), "--dims", "3", "--steps", "1", "--quiet"])
    assert code == 2
    assert "3D model needs volumes" in capsys.readouterr().err
