"""Bad inputs through the engine and the headless API: a clear error or a good result.

Every case either trains/predicts correctly or raises a :class:`UNetStudioError` whose
message names the problem; no case modifies the caller's arrays.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rel_helpers import (
    ARCH,
    TINY_TRAIN,
    digest,
    drain,
    scribbles,
    textured,
    tiny_model_config,
    tiny_trained_model,
)

import napari_unet_studio as nus
from napari_unet_studio.core.config import TileConfig
from napari_unet_studio.core.errors import DataError, ModelFileError, UNetStudioError
from napari_unet_studio.core.train import Trainer

TILE = TileConfig(tile=32, batch_size=2)


def _float_labels(values):
    lab = scribbles((16, 16)).astype(np.float32)
    lab[lab == 1] = values
    return lab


def _nan_image():
    img = textured((16, 16))
    img[4, 4] = np.nan
    return img


def _inf_image():
    img = textured((16, 16))
    img[0, 0] = np.inf
    return img


def _neg_inf_image():
    img = textured((16, 16), dtype=np.float64)
    img[5, 2] = -np.inf
    return img


def _stack_labels(nz):
    lab = np.zeros((nz, 16, 16), np.uint8)
    lab[nz // 2] = scribbles((16, 16))
    return lab


# (id, image, labels, None for success or words the error must contain)
TRAIN_CASES = [
    ("empty_labels", lambda: textured((16, 16)), lambda: np.zeros((16, 16), np.uint8),
     "No labels are painted"),
    ("only_one_class", lambda: textured((16, 16)), lambda: scribbles((16, 16), 1),
     "Only one class"),
    ("one_class_on_every_pixel", lambda: textured((16, 16)), lambda: np.ones((16, 16), np.uint16),
     "Only one class"),
    ("float_labels_fractional", lambda: textured((16, 16)), lambda: _float_labels(1.5),
     "non-integer"),
    ("float_labels_nan", lambda: textured((16, 16)), lambda: _float_labels(np.nan),
     "non-integer"),
    ("float_labels_whole_numbers", lambda: textured((16, 16)), lambda: _float_labels(1.0), None),
    ("negative_labels", lambda: textured((16, 16)),
     lambda: scribbles((16, 16)).astype(np.int32) - 1, "negative"),
    ("string_labels", lambda: textured((16, 16)),
     lambda: scribbles((16, 16)).astype(str), "must be integers"),
    ("instance_ids_as_labels", lambda: textured((16, 16)),
     lambda: np.arange(256, dtype=np.int32).reshape(16, 16) + 1, "instance segmentation"),
    ("labels_1d", lambda: textured((16,)), lambda: np.array([1, 2] * 8, np.uint8),
     "dimension"),
    ("labels_4d", lambda: textured((2, 2, 16, 16)), lambda: scribbles((2, 2, 16, 16)),
     "dimension"),
    ("shape_mismatch", lambda: textured((16, 17)), lambda: scribbles((16, 16)), "shape"),
    ("shape_mismatch_stack", lambda: textured((3, 16, 16)), lambda: _stack_labels(4), "shape"),
    ("channels_first", lambda: textured((3, 16, 16)), lambda: scribbles((16, 16)),
     "Channels must be the last axis"),
    ("five_channels", lambda: textured((16, 16, 5)), lambda: scribbles((16, 16)), "channels"),
    ("rgb", lambda: textured((16, 16, 3), dtype=np.uint8), lambda: scribbles((16, 16)), None),
    ("rgba", lambda: textured((16, 16, 4)), lambda: scribbles((16, 16), 3), None),
    ("two_channels", lambda: textured((16, 16, 2), dtype=np.uint16), lambda: scribbles((16, 16)),
     None),
    ("grayscale_with_channel_axis", lambda: textured((16, 16, 1)), lambda: scribbles((16, 16)),
     None),
    ("one_by_one", lambda: textured((1, 1)), lambda: np.array([[1]], np.uint8), "Only one class"),
    ("one_by_two", lambda: textured((1, 2)), lambda: np.array([[1, 2]], np.uint8), None),
    ("seven_by_thirteen", lambda: textured((7, 13)), lambda: scribbles((7, 13)), None),
    ("one_slice_stack", lambda: textured((1, 16, 16)), lambda: scribbles((1, 16, 16)), None),
    ("stack_200_slices", lambda: textured((200, 16, 16), dtype=np.uint8),
     lambda: _stack_labels(200), None),
    ("constant_image", lambda: np.full((16, 16), 7.0), lambda: scribbles((16, 16)), None),
    ("zero_image_uint8", lambda: np.zeros((16, 16), np.uint8), lambda: scribbles((16, 16)), None),
    ("nan_pixel", _nan_image, lambda: scribbles((16, 16)), "NaN"),
    ("inf_pixel", _inf_image, lambda: scribbles((16, 16)), "infinite"),
    ("minus_inf_pixel", _neg_inf_image, lambda: scribbles((16, 16)), "infinite"),
    ("huge_values", lambda: textured((16, 16), dtype=np.float64) * 1e300,
     lambda: scribbles((16, 16)), None),
    ("complex_image", lambda: textured((16, 16)).astype(np.complex64),
     lambda: scribbles((16, 16)), "numeric"),
    ("no_pairs", None, None, "No images"),
] + [
    (f"dtype_{np.dtype(dt).name}", (lambda dt=dt: textured((16, 16), dtype=dt)),
     lambda: scribbles((16, 16)), None)
    for dt in (np.uint8, np.uint16, np.int32, np.float32, np.float64, bool, np.int8, np.float16)
]


def _pairs(image_fn, labels_fn):
    if image_fn is None:
        return [], []
    image, labels = image_fn(), labels_fn()
    return [(image, labels)], [digest(image), digest(labels)]


@pytest.mark.parametrize(("image_fn", "labels_fn", "expected"),
                         [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_training_bad_inputs_core(image_fn, labels_fn, expected):
    pairs, hashes = _pairs(image_fn, labels_fn)
    if expected is not None:
        with pytest.raises(UNetStudioError, match=expected):
            Trainer(pairs, None, TINY_TRAIN, arch=ARCH)
    else:
        model = drain(Trainer(pairs, None, TINY_TRAIN, arch=ARCH).run())
        image, labels = pairs[0]
        out = nus.predict(model, image, tile=TILE, device="cpu")
        assert out.shape == np.shape(labels)
        assert out.min() >= 1 and out.max() <= model.config.num_classes
    assert [digest(a) for pair in pairs for a in pair] == hashes  # caller's arrays untouched


@pytest.mark.parametrize(
    "case", [c for c in TRAIN_CASES if c[0] in (
        "empty_labels", "only_one_class", "float_labels_fractional", "shape_mismatch",
        "nan_pixel", "five_channels", "rgb", "stack_200_slices", "dtype_bool")],
    ids=lambda c: c[0])
def test_training_bad_inputs_api(case):
    """The same through ``napari_unet_studio.train`` (the headless API)."""
    _, image_fn, labels_fn, expected = case
    image, labels = image_fn(), labels_fn()
    before = digest(image), digest(labels)
    tc = dataclasses.replace(TINY_TRAIN, steps=1)
    if expected is not None:
        with pytest.raises(UNetStudioError, match=expected):
            nus.train(image, labels, train_config=tc)
    else:
        model = nus.train(image, labels, train_config=tc)
        assert model.record["steps"] == 1
    assert (digest(image), digest(labels)) == before


# ---------------------------------------------------------------------- settings
@pytest.mark.parametrize(("depth", "patch", "batch", "norm"), [
    (3, 8, 1, "batch"), (3, 8, 4, "instance"), (6, 64, 2, "batch"), (4, 16, 1, "group")])
def test_patch_too_small_for_the_depth(depth, patch, batch, norm):
    tc = dataclasses.replace(TINY_TRAIN, patch_size=patch, batch_size=batch)
    with pytest.raises(DataError, match=rf"patch size \({patch} px\) is too small .* depth"):
        Trainer([(textured((16, 16)), scribbles((16, 16)))], None, tc,
                arch={"width": 2, "depth": depth, "norm": norm})
    # the smallest patch the message asks for trains
    tc = dataclasses.replace(tc, patch_size=2 ** (depth + 1), steps=1)
    drain(Trainer([(textured((16, 16)), scribbles((16, 16)))], None, tc,
                  arch={"width": 2, "depth": depth, "norm": norm}).run())


@pytest.mark.parametrize("decoder", ["unpool", "bilinear"])
def test_prediction_tile_smaller_than_the_network_needs(decoder):
    model = tiny_trained_model()  # depth 2
    deep = dataclasses.replace(model.config, depth=5, decoder=decoder)
    from napari_unet_studio.core.checkpoint import TrainedModel
    from napari_unet_studio.core.model import build_model

    net = TrainedModel(deep, build_model(deep).state_dict())
    out = nus.predict(net, textured((40, 24)), tile=TileConfig(tile=8), device="cpu")
    assert out.shape == (40, 24) and out.min() >= 1


# ----------------------------------------------------------------------- fine-tuning
def test_labels_above_the_models_classes_when_continuing():
    init = tiny_trained_model(1, 2)
    image, labels = textured((16, 16)), scribbles((16, 16), 3)
    with pytest.raises(DataError, match=r"knows 2 classes but the labels use class 3"):
        Trainer([(image, labels)], None, TINY_TRAIN, init=init)
    # the way out the message offers works: a new output layer for 3 classes
    model = drain(Trainer([(image, labels)], None, TINY_TRAIN, init=init, reinit_head=True).run())
    assert model.config.num_classes == 3
    assert nus.predict(model, image, tile=TILE, device="cpu").max() <= 3


def test_labels_above_the_chosen_class_count():
    with pytest.raises(DataError, match="Increase the number of classes"):
        Trainer([(textured((16, 16)), scribbles((16, 16), 3))], tiny_model_config(1, 2),
                TINY_TRAIN)


@pytest.mark.parametrize(("model_channels", "image_shape"), [(3, (16, 16)), (1, (16, 16, 3))])
def test_continuing_with_images_of_other_channels(model_channels, image_shape):
    init = tiny_trained_model(model_channels, 2)
    with pytest.raises(DataError, match=r"expects \d image channel\(s\) but the training"):
        Trainer([(textured(image_shape), scribbles((16, 16)))], None, TINY_TRAIN, init=init)


def test_continuing_from_a_bad_model_file(model_files):
    with pytest.raises(ModelFileError, match="damaged or incomplete"):
        nus.train(textured((16, 16)), scribbles((16, 16)), train_config=TINY_TRAIN,
                  init=model_files["truncated"])


# ------------------------------------------------------------------------ prediction
GRAY, RGB = "gray", "rgb"
PREDICT_CASES = [
    (GRAY, "uint8_2d", lambda: textured((16, 16), dtype=np.uint8), None),
    (GRAY, "one_by_one", lambda: textured((1, 1)), None),
    (GRAY, "one_by_two", lambda: textured((1, 2)), None),
    (GRAY, "seven_by_thirteen", lambda: textured((7, 13)), None),
    (GRAY, "one_slice_stack", lambda: textured((1, 16, 16)), None),
    (GRAY, "stack_200_slices", lambda: textured((200, 16, 16), dtype=np.uint16), None),
    (GRAY, "constant", lambda: np.full((16, 16), 3, np.int32), None),
    (GRAY, "bool", lambda: textured((16, 16), dtype=bool), None),
    (GRAY, "float64", lambda: textured((16, 16), dtype=np.float64), None),
    (GRAY, "single_channel_axis", lambda: textured((16, 16, 1)), None),
    (GRAY, "larger_than_tile", lambda: textured((40, 70), dtype=np.int32), None),
    (GRAY, "nan_pixel", _nan_image, "NaN"),
    (GRAY, "inf_pixel", _inf_image, "infinite"),
    (GRAY, "all_nan", lambda: np.full((16, 16), np.nan, np.float32), "NaN"),
    (GRAY, "rgb_into_gray_model", lambda: textured((16, 16, 3)), "single-channel"),
    (GRAY, "four_d", lambda: textured((2, 2, 16, 16)), "Cannot predict"),
    (GRAY, "one_d", lambda: textured((16,)), "Cannot predict"),
    (GRAY, "complex", lambda: textured((16, 16)).astype(np.complex64), "numeric"),
    (GRAY, "no_rows", lambda: np.zeros((0, 16), np.float32), "empty"),
    (GRAY, "no_columns_in_a_stack", lambda: np.zeros((3, 16, 0), np.uint8), "empty"),
    (GRAY, "zero_slices", lambda: np.zeros((0, 16, 16), np.uint8), None),
    (RGB, "rgb_no_pixels", lambda: np.zeros((0, 0, 3), np.uint8), "empty"),
    (RGB, "rgb_uint8", lambda: textured((16, 16, 3), dtype=np.uint8), None),
    (RGB, "rgb_stack", lambda: textured((3, 16, 16, 3), dtype=np.uint8), None),
    (RGB, "gray_into_rgb_model", lambda: textured((16, 16)), "3 channels"),
    (RGB, "rgba_into_rgb_model", lambda: textured((16, 16, 4)), "3 channels"),
    (RGB, "rgb_nan", lambda: np.where(textured((16, 16, 3)) > 0.99, np.nan, 0.5), "NaN"),
]


@pytest.fixture(scope="module")
def models():
    return {GRAY: tiny_trained_model(1, 2), RGB: tiny_trained_model(3, 3)}


@pytest.mark.parametrize(("kind", "image_fn", "expected"), [(c[0], c[2], c[3]) for c in
                         PREDICT_CASES], ids=[c[1] for c in PREDICT_CASES])
def test_prediction_bad_inputs(models, kind, image_fn, expected):
    model = models[kind]
    image = image_fn()
    before = digest(image)
    if expected is not None:
        with pytest.raises(UNetStudioError, match=expected):
            nus.predict(model, image, tile=TILE, device="cpu")
    else:
        out = nus.predict(model, image, tile=TILE, device="cpu")
        spatial = np.shape(image)[:-1] if (model.config.in_channels > 1 or (
            image.ndim == 3 and image.shape[-1] == 1)) else np.shape(image)
        assert out.shape == tuple(spatial)
        assert out.size == 0 or (out.min() >= 1 and out.max() <= model.config.num_classes)
    assert digest(image) == before


@pytest.mark.parametrize("kind", ["truncated", "empty", "random_bytes", "foreign_state_dict",
                                  "wrong_weights", "bad_normalisation", "missing"])
def test_prediction_with_bad_model_files(model_files, kind):
    image = textured((16, 16))
    with pytest.raises(ModelFileError) as info:
        nus.predict(model_files[kind], image, tile=TILE, device="cpu")
    assert model_files[kind].name in str(info.value)


# ------------------------------------------------------- new data while training runs
def _first_message_after_update(new_pairs):
    image, labels = textured((16, 16)), scribbles((16, 16))
    trainer = Trainer([(image, labels)], None,
                      dataclasses.replace(TINY_TRAIN, steps=3), arch=ARCH)
    run = trainer.run()
    next(run)
    trainer.update_data(new_pairs)
    progress = next(run)
    drain(run)
    return progress.message


@pytest.mark.parametrize(("new_pairs", "expected"), [
    (lambda: [(textured((20, 20)), scribbles((16, 16)))], "New labels not used: The image"),
    (lambda: [(textured((16, 16)), np.zeros((16, 16), np.uint8))], "No labels are painted"),
    (lambda: [(_nan_image(), scribbles((16, 16)))], "NaN"),
    (lambda: [(textured((16, 16, 3)), scribbles((16, 16)))], "channel"),
    (lambda: [(textured((16, 16)), scribbles((16, 16), 3))], "Restart training"),
    (lambda: [], "No images"),
    (lambda: [(textured((24, 24)), scribbles((24, 24)))], "Using updated labels"),
], ids=["image_replaced_other_shape", "labels_erased", "nan_image", "image_replaced_rgb",
        "new_class", "image_deleted", "good_update"])
def test_replaced_data_during_training_is_skipped_with_a_message(new_pairs, expected):
    assert expected in _first_message_after_update(new_pairs())
