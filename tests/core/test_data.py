"""Training data: validation messages, layouts, normalisation, patch sampling, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet_studio.core.data import (
    PatchSampler,
    TrainingData,
    apply_stats,
    class_weights,
    cut_mix,
    normalize_plane,
    plane_stats,
)
from napari_unet_studio.core.errors import DataError

NORM = {"method": "percentile", "low": 1.0, "high": 99.8}


def _labels(shape=(40, 40)) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[5, 5:20] = 1
    lab[30, 10:30] = 2
    return lab


def _data(pairs, patch=16, norm=NORM) -> TrainingData:
    return TrainingData(pairs, norm, patch, np.random.default_rng(0))


@pytest.mark.parametrize(
    "image, labels, match",
    [
        (np.zeros((40, 40)), np.zeros((40, 40), np.uint8), "No labels are painted"),
        (np.zeros((40, 40)), np.ones((40, 40), np.uint8), "Only one class"),
        (np.zeros((40, 41)), _labels(), r"shape \(40, 41\).*\(40, 40\)"),
        (np.zeros((3, 40, 40)), _labels(), "last axis"),
        (np.zeros((9, 40, 40)), _labels(), "labels must be a stack"),
        (np.zeros((40, 40, 7)), _labels(), "up to 4 channels"),
        (np.zeros((40, 40)), _labels().astype(np.float32) + 0.5, "non-integer"),
        (np.zeros((40, 40)), _labels().astype(np.int16) - 1, "negative"),
        (np.zeros((40, 40)), _labels().astype(complex), "integers"),
        (np.zeros((40,)), np.zeros((40,), np.uint8), "dimension"),
        (np.zeros((40, 40)), _labels().astype(np.uint16) * 150, "values up to 300"),
        (np.zeros((40, 40)), np.arange(1600).reshape(40, 40) % 200, "199 different values"),
    ],
)
def test_invalid_data_gives_clear_errors(image, labels, match):
    with pytest.raises(DataError, match=match) as info:
        _data([(image, labels)])
    assert isinstance(info.value, ValueError)


def test_nan_and_inf_are_reported():
    img = np.zeros((40, 40), np.float32)
    img[3, 3] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        _data([(img, _labels())])


def test_no_pairs_and_mixed_channels():
    with pytest.raises(DataError, match="No images"):
        _data([])
    rgb = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(DataError, match="same channels"):
        _data([(rgb, _labels()), (np.zeros((40, 40)), _labels())])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float64, bool])
def test_any_numeric_dtype_is_accepted(dtype):
    img = (np.random.default_rng(0).random((40, 40)) * 200).astype(dtype)
    data = _data([(img, _labels())])
    assert data.samples[0].image.dtype == np.float32
    assert np.isfinite(data.samples[0].image).all()


def test_single_pair_tuple_float_labels_and_bool_labels():
    data = _data((np.zeros((40, 40)), _labels().astype(np.float64)))
    assert data.num_classes == 2 and data.in_channels == 1
    lab = np.zeros((40, 40), bool)
    lab[:5] = True
    with pytest.raises(DataError, match="Only one class"):
        _data([(np.zeros((40, 40)), lab)])


def test_rgb_channels_and_class_count():
    rgb = np.random.default_rng(0).integers(0, 255, (40, 40, 3)).astype(np.uint8)
    lab = _labels()
    lab[20, 20:25] = 4  # class 3 never painted: allowed, K = highest label
    data = _data([(rgb, lab)])
    assert data.in_channels == 3 and data.num_classes == 4
    assert data.samples[0].image.shape == (3, 40, 40)
    assert list(data.class_counts) == [15, 20, 0, 5]


def test_stack_uses_only_labeled_slices():
    stack = np.random.default_rng(0).random((5, 40, 40))
    lab = np.zeros((5, 40, 40), np.uint8)
    lab[1] = _labels()
    lab[3, 0, :3] = 1
    data = _data([(stack, lab)])
    assert len(data.samples) == 2
    np.testing.assert_array_equal(data.samples[0].labels, _labels())
    assert data.shapes == [(5, 40, 40)]


def test_small_images_are_padded_with_unlabeled_pixels():
    img = np.arange(6 * 9, dtype=np.float32).reshape(6, 9)
    lab = np.zeros((6, 9), np.uint8)
    lab[0, 0], lab[5, 8] = 1, 2
    data = _data([(img, lab)], patch=16)
    s = data.samples[0]
    assert s.image.shape == (1, 16, 16) and s.labels.shape == (16, 16)
    assert s.labels.sum() == 3 and np.count_nonzero(s.labels) == 2
    tiny = _data([(np.ones((1, 3)), np.array([[1, 0, 2]], np.uint8))], patch=8)
    assert tiny.samples[0].image.shape == (1, 8, 8)


def test_percentile_normalisation_and_constant_images():
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 50, (200, 200))
    out = normalize_plane(img, NORM, 1)
    assert out.shape == (1, 200, 200) and out.dtype == np.float32
    assert abs(np.percentile(out, 1.0)) < 0.02 and abs(np.percentile(out, 99.8) - 1) < 0.02
    const = normalize_plane(np.full((30, 30), 7, np.uint16), NORM, 1)
    assert np.all(const == 0)
    spots = np.zeros((100, 100), np.uint16)
    spots[::40, ::40] = 60000  # percentiles are equal: min/max is used instead
    norm = normalize_plane(spots, NORM, 1)
    assert norm.max() == 1.0 and norm.min() == 0.0


def test_stats_on_subsample_and_per_channel():
    img = np.zeros((2000, 1000, 2), np.float32)
    img[..., 1] = np.linspace(0, 10, 1000)[None, :]
    lo, scale = plane_stats(img, NORM, 2)
    assert lo[0] == 0 and scale[0] == 1
    assert abs(lo[1] - 0.1) < 0.05 and abs(scale[1] - 9.88) < 0.1
    out = apply_stats(img[:3], lo, scale)
    assert out.shape == (2, 3, 1000)
    with pytest.raises(DataError, match="channel"):
        plane_stats(img, NORM, 3)


def test_class_weights_favour_rare_classes_and_are_clipped():
    w = class_weights(np.array([10000, 100, 0, 1]))
    assert w[1] > w[0] and w[3] >= w[1] and w[2] == 1.0
    assert w[3] / w[0] <= 25.0 + 1e-6
    np.testing.assert_allclose(w[[0, 1, 3]].mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(class_weights(np.array([5, 5])), [1.0, 1.0])
    # the clip (default data.WEIGHT_CLIP, a bench ablation hook) at (1, 1): all weights 1
    np.testing.assert_allclose(class_weights(np.array([10000, 100, 0, 1]), clip=(1, 1)), 1.0)


def test_class_weight_exponent_is_a_module_constant(monkeypatch):
    import napari_unet_studio.core.data as data_mod

    square_root = class_weights(np.array([400, 100]))
    monkeypatch.setattr(data_mod, "WEIGHT_POWER", 0.25)  # a bench ablation hook
    w = class_weights(np.array([400, 100]))
    assert w[1] / w[0] == pytest.approx(2 ** 0.5) and square_root[1] / square_root[0] == 2.0
    monkeypatch.setattr(data_mod, "WEIGHT_POWER", 0.0)
    np.testing.assert_allclose(class_weights(np.array([400, 100])), 1.0)


def test_sampler_favours_labeled_patches():
    img = np.random.default_rng(0).random((256, 256))
    lab = np.zeros((256, 256), np.uint8)
    lab[200:203, 30:40] = 1  # 0.09 % of the pixels
    lab[10:12, 220:230] = 2
    data = _data([(img, lab)], patch=32)
    sampler = PatchSampler(data, 32, augment=True)
    x, y = sampler.draw(64, np.random.default_rng(1))
    assert x.shape == (64, 1, 32, 32) and y.shape == (64, 32, 32)
    assert x.dtype == np.float32 and y.dtype == np.int64
    with_labels = np.mean([(yi > 0).any() for yi in y])
    assert with_labels > 0.75  # uniform sampling would give ~3 %
    classes = {int(c) for c in np.unique(y) if c}
    assert classes == {1, 2}


def test_sampling_is_reproducible_with_a_seed():
    img = np.random.default_rng(0).random((64, 64))
    data = _data([(img, _labels((64, 64)))], patch=16)
    sampler = PatchSampler(data, 16)
    a = sampler.draw(8, np.random.default_rng(5))
    b = sampler.draw(8, np.random.default_rng(5))
    c = sampler.draw(8, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_augmentation_keeps_image_and_labels_aligned():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 4, (48, 48)).astype(np.uint8)
    img = lab.astype(np.float32) * 10  # the image "is" the label map
    data = _data([(img, lab)], patch=16, norm={"method": "none"})
    x, y = PatchSampler(data, 16, augment=True).draw(32, np.random.default_rng(3))
    for xi, yi in zip(x[:, 0], y):
        for k in np.unique(yi):  # gain/offset are per patch: one value per label
            assert np.ptp(xi[yi == k]) < 1e-4
        order = [xi[yi == k].mean() for k in np.unique(yi)]
        assert np.all(np.diff(order) > 0)
    y_plain = PatchSampler(data, 16, augment=False).draw(32, np.random.default_rng(3))[1]
    assert any(not np.array_equal(a, b) for a, b in zip(y, y_plain))  # augmentation happened


def test_dense_masks_work_and_coordinates_are_capped(monkeypatch):
    import napari_unet_studio.core.data as data_mod

    monkeypatch.setattr(data_mod, "_MAX_COORDS", 1000)
    lab = np.ones((100, 100), np.uint8)
    lab[30:70, 30:70] = 2  # every pixel labeled
    data = _data([(np.random.default_rng(0).random((100, 100)), lab)], patch=32)
    s = data.samples[0]
    assert s.coords[1].size == 1000 and s.coords[2].size == 1000
    assert np.all(s.labels.ravel()[s.coords[2]] == 2)
    x, y = PatchSampler(data, 32).draw(4, np.random.default_rng(0))
    assert (y > 0).all()


def test_cut_mix_pastes_a_square_of_another_patch_with_its_labels():
    b, p = 6, 20
    x = np.stack([np.full((2, p, p), float(i), np.float32) for i in range(b)])
    y = np.stack([np.full((p, p), i + 1, np.int64) for i in range(b)])
    xm, ym = cut_mix(x, y, np.random.default_rng(0), probability=1.0, area=(0.2, 0.6))
    assert xm.shape == x.shape and ym.shape == y.shape
    assert (x[:, 0] == np.arange(b)[:, None, None]).all()  # the inputs are not changed
    for i in range(b):
        np.testing.assert_array_equal(xm[i, 0] + 1, ym[i])  # image and labels move together
        np.testing.assert_array_equal(xm[i, 0], xm[i, 1])
        pasted = ym[i] != i + 1
        donors = np.unique(ym[i][pasted])
        assert donors.size == 1 and donors[0] != i + 1  # one other patch of the batch
        rows, cols = np.nonzero(pasted)
        h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert h == w and pasted.sum() == h * w  # a filled square
        assert 0.2 * p * p - 2 * p <= h * w <= 0.6 * p * p


def test_cut_mix_keeps_painted_pixels_next_to_other_texture():
    """What it is for: painted pixels of one class end up beside another class's image."""
    x = np.zeros((2, 1, 16, 16), np.float32)
    x[1] = 5.0
    y = np.zeros((2, 16, 16), np.int64)
    y[0, ::2, ::2] = 1  # a grid of painted background pixels
    y[1, 1::2, 1::2] = 2
    xm, ym = cut_mix(x, y, np.random.default_rng(1), probability=1.0)
    for xi, yi in zip(xm[:, 0], ym):
        assert set(np.unique(xi)) == {0.0, 5.0}
        for k, value in ((1, 0.0), (2, 5.0)):  # labels still sit on their own image
            assert np.all(xi[yi == k] == value)
        assert set(np.unique(yi)) >= {1, 2}


def test_cut_mix_off_or_batch_of_one_changes_nothing():
    rng = np.random.default_rng(0)
    x = rng.random((3, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, (3, 8, 8))
    xm, ym = cut_mix(x, y, np.random.default_rng(0), probability=0.0)
    assert xm is x and ym is y
    xm, ym = cut_mix(x[:1], y[:1], np.random.default_rng(0), probability=1.0)
    np.testing.assert_array_equal(xm, x[:1])
    np.testing.assert_array_equal(ym, y[:1])


def test_sampler_mixes_only_with_augmentation():
    ones, twos = np.ones((32, 32), np.uint8), np.full((32, 32), 2, np.uint8)
    data = _data([(ones.astype(np.float32), ones), (twos.astype(np.float32), twos)],
                 patch=16, norm={"method": "none"})  # each image holds one class only
    with pytest.raises(ValueError, match="mix"):
        PatchSampler(data, 16, mix=1.5)

    def two_class_patches(sampler: PatchSampler) -> int:
        y = sampler.draw(16, np.random.default_rng(2))[1]
        return sum(len(np.unique(yi)) == 2 for yi in y)

    assert two_class_patches(PatchSampler(data, 16, augment=True, mix=0.0)) == 0
    assert two_class_patches(PatchSampler(data, 16, augment=False, mix=1.0)) == 0
    assert two_class_patches(PatchSampler(data, 16, augment=True, mix=1.0)) >= 4
