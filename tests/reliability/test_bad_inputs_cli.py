"""Bad inputs through the ``unet-studio`` command line.

Every case ends with exit status 2, exactly one line on stderr that names the problem,
no traceback, the input files unchanged and no output file written (or an existing one
left as it was).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from rel_helpers import scribbles, textured

from napari_unet_studio import cli


def _file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, words):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == cli.EXIT_USER_ERROR, err
    assert len(lines) == 1, err
    assert lines[0].startswith("unet-studio: error: "), lines[0]
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def _nan(shape=(16, 16)):
    a = textured(shape)
    a[2, 3] = np.nan
    return a


TRAIN_CASES = [
    ("empty_labels", lambda: textured((16, 16)), lambda: np.zeros((16, 16), np.uint8),
     ["No labels are painted"]),
    ("one_class", lambda: textured((16, 16)), lambda: scribbles((16, 16), 1), ["Only one class"]),
    ("float_labels", lambda: textured((16, 16)),
     lambda: scribbles((16, 16)).astype(np.float32) * 0.5, ["non-integer"]),
    ("shape_mismatch", lambda: textured((16, 20)), lambda: scribbles((16, 16)),
     ["(16, 20)", "(16, 16)"]),
    ("five_channels", lambda: textured((16, 16, 5)), lambda: scribbles((16, 16)), ["channels"]),
    ("nan_pixel", lambda: _nan(), lambda: scribbles((16, 16)), ["NaN"]),
    ("image_as_labels", lambda: textured((16, 16)),
     lambda: np.arange(1, 257, dtype=np.uint16).reshape(16, 16), ["instance segmentation"]),
]


@pytest.mark.parametrize(("image_fn", "labels_fn", "words"), [c[1:] for c in TRAIN_CASES],
                         ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_data(tmp_path, capsys, image_fn, labels_fn, words):
    img, lab, out = tmp_path / "img.tif", tmp_path / "lab.tif", tmp_path / "model.pt"
    tifffile.imwrite(img, image_fn())
    tifffile.imwrite(lab, labels_fn())
    before = _file_hash(img), _file_hash(lab)
    code, _, err = _run(["train", "--image", img, "--labels", lab, "--out", out, "--steps", 1,
                         "--patch-size", 32, "--width", 4, "--depth", 2, "--quiet"], capsys)
    _assert_one_line_error(code, err, words)
    assert not out.exists()
    assert (_file_hash(img), _file_hash(lab)) == before


@pytest.fixture
def pair(tmp_path):
    img, lab = tmp_path / "img.tif", tmp_path / "lab.tif"
    tifffile.imwrite(img, textured((16, 16), dtype=np.uint8))
    tifffile.imwrite(lab, scribbles((16, 16), 3))
    return img, lab


MODEL_KINDS = [
    ("empty", ["empty"]),
    ("truncated", ["damaged or incomplete"]),
    ("truncated_tail", ["damaged or incomplete"]),
    ("random_bytes", ["not a U-Net Studio model"]),
    ("random_zip_header", ["damaged or incomplete"]),
    ("foreign_state_dict", ["not a U-Net Studio model"]),
    ("foreign_tensor", ["not a U-Net Studio model"]),
    ("wrong_weights", ["do not match"]),
    ("newer_format", ["newer"]),
    ("unknown_setting", ["colour"]),
    ("bad_normalisation", ["percentiles"]),
    ("not_zip_text", ["not a U-Net Studio model"]),
    ("folder", ["folder"]),
    ("missing", ["No model file"]),
]


@pytest.mark.parametrize(("kind", "words"), MODEL_KINDS, ids=[k for k, _ in MODEL_KINDS])
def test_predict_with_bad_model_files(tmp_path, capsys, model_files, pair, kind, words):
    img, _ = pair
    out = tmp_path / "pred.tif"
    out.write_bytes(b"previous result")
    code, _, err = _run(["predict", "--model", model_files[kind], "--image", img, "--out", out,
                         "--quiet"], capsys)
    _assert_one_line_error(code, err, words)
    assert out.read_bytes() == b"previous result"


@pytest.mark.parametrize(("kind", "words"), MODEL_KINDS, ids=[k for k, _ in MODEL_KINDS])
def test_info_with_bad_model_files(capsys, model_files, kind, words):
    code, _, err = _run(["info", model_files[kind]], capsys)
    _assert_one_line_error(code, err, words)


@pytest.mark.parametrize("kind", ["truncated", "random_bytes", "foreign_state_dict"])
def test_continue_from_bad_model_files(tmp_path, capsys, model_files, pair, kind):
    img, lab = pair
    out = tmp_path / "m.pt"
    code, _, err = _run(["train", "--image", img, "--labels", lab, "--out", out, "--from",
                         model_files[kind], "--steps", 1, "--quiet"], capsys)
    _assert_one_line_error(code, err, [model_files[kind].name])
    assert not out.exists()


def test_continue_with_more_classes_than_the_model(tmp_path, capsys, model_files, pair):
    img, lab = pair  # labels use class 3, the model knows 2
    out = tmp_path / "m.pt"
    code, _, err = _run(["train", "--image", img, "--labels", lab, "--out", out, "--from",
                         model_files["good"], "--steps", 1, "--patch-size", 32, "--quiet"], capsys)
    _assert_one_line_error(code, err, ["knows 2 classes", "class 3", "reinit"])
    code, _, err = _run(["train", "--image", img, "--labels", lab, "--out", out, "--from",
                         model_files["good"], "--reinit-head", "--steps", 1, "--patch-size", 32,
                         "--quiet"], capsys)
    assert code == 0, err
    assert out.is_file()


@pytest.mark.parametrize(("model", "image_fn", "words"), [
    ("good", lambda: textured((16, 16, 3), dtype=np.uint8), ["single-channel"]),
    ("rgb_3_classes", lambda: textured((16, 16), dtype=np.uint8), ["3 channels"]),
    ("good", lambda: _nan(), ["NaN"]),
    ("good", lambda: textured((2, 2, 16, 16)), ["Cannot predict"]),
], ids=["rgb_into_gray_model", "gray_into_rgb_model", "nan_pixel", "four_d"])
def test_predict_images_that_do_not_fit_the_model(tmp_path, capsys, model_files, model,
                                                  image_fn, words):
    img, out = tmp_path / "img.tif", tmp_path / "pred.tif"
    tifffile.imwrite(img, image_fn())
    code, _, err = _run(["predict", "--model", model_files[model], "--image", img, "--out", out,
                         "--quiet", "--tile", 32], capsys)
    _assert_one_line_error(code, err, words)
    assert not out.exists()


@pytest.mark.parametrize("shape_dtype", [((1, 1), np.float32), ((7, 13), np.uint16),
                                         ((1, 16, 16), np.uint8), ((200, 16, 16), np.int32),
                                         ((16, 16), np.float64)],
                         ids=["1x1", "7x13", "one_slice", "200_slices", "float64"])
def test_predict_odd_but_valid_images(tmp_path, capsys, model_files, shape_dtype):
    shape, dtype = shape_dtype
    img, out = tmp_path / "img.tif", tmp_path / "pred.tif"
    tifffile.imwrite(img, textured(shape, dtype=dtype))
    code, _, err = _run(["predict", "--model", model_files["good"], "--image", img, "--out",
                         out, "--quiet", "--tile", 32], capsys)
    assert code == 0, err
    pred = tifffile.imread(out)
    assert pred.shape == shape and pred.min() >= 1 and pred.max() <= 2


def test_missing_and_unreadable_inputs(tmp_path, capsys, model_files):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(np.random.default_rng(0).bytes(500))
    lab = tmp_path / "lab.tif"
    tifffile.imwrite(lab, scribbles((16, 16)))
    out = tmp_path / "m.pt"
    cases = [
        (["train", "--image", tmp_path / "nope.tif", "--labels", lab, "--out", out], ["nope.tif"]),
        (["train", "--image", junk, "--labels", lab, "--out", out], []),
        (["train", "--image", lab, "--image", lab, "--labels", lab, "--out", out], ["--labels"]),
        (["train", "--image", lab, "--labels", lab, "--out", tmp_path / "no" / "m.pt"],
         ["does not exist"]),
        (["predict", "--model", model_files["good"], "--image", junk, "--out", out], []),
        (["predict", "--model", model_files["good"], "--image", lab, "--out",
          tmp_path / "no" / "p.tif"], ["does not exist"]),
        (["train", "--image", lab, "--labels", lab, "--out", tmp_path], ["is a folder"]),
        (["predict", "--model", model_files["good"], "--image", lab, "--out", tmp_path],
         ["is a folder"]),
        (["train", "--image", lab, "--labels", lab, "--out", out, "--steps", 0], ["steps"]),
        (["train", "--image", lab, "--labels", lab, "--out", out, "--patch-size", 8],
         ["patch size (8 px) is too small", "at least 16"]),
        (["predict", "--model", model_files["good"], "--image", lab, "--out", out,
          "--overlap", 0.9], ["overlap"]),
    ]
    for argv, words in cases:
        code, _, err = _run(argv + ["--quiet"], capsys)
        _assert_one_line_error(code, err, words)
    assert not out.exists()
