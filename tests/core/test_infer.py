"""Tiled prediction: seamless blending, equality with whole-image prediction, bounded memory."""

from __future__ import annotations

import threading
import tracemalloc

import dask.array as da
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from napari_unet_studio.core.checkpoint import TrainedModel
from napari_unet_studio.core.config import ModelConfig, TileConfig
from napari_unet_studio.core.errors import DataError
from napari_unet_studio.core.infer import (
    blend_window,
    iter_predict,
    iter_predict_module,
    predict_image,
    tile_positions,
)
from napari_unet_studio.core.model import build_model

NORM = {"method": "percentile", "low": 1.0, "high": 99.8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ConstantLogits(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32))

    def forward(self, x):
        n, _, h, w = x.shape
        return self.logits.view(1, -1, 1, 1).expand(n, -1, h, w).clone()


def _run(net, cfg, image, **kw):
    gen = iter_predict_module(net.eval(), cfg, NORM, image, device=torch.device("cpu"), **kw)
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as fin:
            return fin.value, progress


def test_positions_cover_the_axis_with_overlap():
    for size, tile, ov in [(100, 32, 8), (32, 32, 8), (33, 32, 8), (5, 32, 8), (1000, 256, 64)]:
        pos = tile_positions(size, tile, ov)
        covered = np.zeros(max(size, tile), bool)
        for p in pos:
            covered[p:p + tile] = True
        assert covered[:size].all() and pos[0] == 0
        assert pos[-1] + tile == max(size, tile)
        assert all(b - a <= tile - ov for a, b in zip(pos, pos[1:]))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 600), tile=st.integers(8, 128), frac=st.floats(0, 0.49))
def test_positions_property(size, tile, frac):
    ov = int(round(frac * tile))
    pos = tile_positions(size, tile, ov)
    assert pos[0] == 0 and pos[-1] + tile == max(size, tile)
    assert pos == sorted(set(pos))
    assert all(b - a <= max(1, tile - ov) for a, b in zip(pos, pos[1:]))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.sampled_from([8, 16, 24]),
       frac=st.sampled_from([0.0, 0.125, 0.25, 0.4]))
def test_uniform_output_for_any_shape_property(h, w, tile, frac):
    logits = [0.5, -1.0, 2.0]
    res, _ = _run(ConstantLogits(logits), ModelConfig(num_classes=3),
                  np.random.default_rng(0).random((h, w)), probabilities=True,
                  tile=TileConfig(tile=tile, overlap=frac, batch_size=5))
    expected = torch.softmax(torch.tensor(logits), 0).numpy()
    assert res.probabilities.shape == (3, h, w) and (res.labels == 3).all()
    assert np.abs(res.probabilities - expected[:, None, None]).max() < 1e-6


def test_window_is_positive_symmetric_and_ramps():
    w = blend_window(32, 8)
    assert (w > 0).all() and np.allclose(w, w[::-1])
    assert w[0] < 0.05 and w[16] == 1.0
    assert np.all(np.diff(w[:8]) > 0)
    assert np.all(blend_window(16, 0) == 1.0)


def test_constant_logits_give_exactly_uniform_output_no_seams():
    cfg = ModelConfig(num_classes=3)
    logits = [0.3, 1.2, -0.5]
    image = np.random.default_rng(0).random((101, 77)).astype(np.float32)
    res, progress = _run(ConstantLogits(logits), cfg, image, probabilities=True,
                         tile=TileConfig(tile=32, overlap=0.3, batch_size=3))
    expected = torch.softmax(torch.tensor(logits), 0).numpy()
    assert res.probabilities.shape == (3, 101, 77)
    np.testing.assert_allclose(res.probabilities, expected[:, None, None] * np.ones((101, 77)),
                               rtol=0, atol=2e-7)
    assert (res.labels == 2).all() and res.labels.dtype == np.uint8
    n_tiles = len(tile_positions(101, 32, 10)) * len(tile_positions(77, 32, 10))
    assert progress[-1].done == progress[-1].total == n_tiles == 20


def test_tiled_equals_whole_image_for_a_small_receptive_field():
    torch.manual_seed(0)
    net = nn.Conv2d(1, 3, 3, padding=1)
    cfg = ModelConfig(num_classes=3)
    image = np.random.default_rng(1).normal(size=(96, 96)).astype(np.float32)
    whole, _ = _run(net, cfg, image, probabilities=True, tile=TileConfig(tile=96, overlap=0))
    tiled, _ = _run(net, cfg, image, probabilities=True,
                    tile=TileConfig(tile=32, overlap=0.25, batch_size=2))
    assert np.abs(whole.probabilities - tiled.probabilities).max() < 0.02
    assert (whole.labels == tiled.labels).mean() > 0.995


def test_real_unet_tiled_close_to_whole_and_values_in_range():
    cfg = ModelConfig(depth=2, width=4, num_classes=4)
    torch.manual_seed(0)
    tm = TrainedModel(cfg, build_model(cfg).state_dict())
    image = np.random.default_rng(2).integers(0, 4000, (70, 50)).astype(np.uint16)
    res = predict_image(tm, image, tile=TileConfig(tile=32, overlap=0.25), device="cpu")
    assert res.labels.shape == (70, 50)
    assert res.labels.min() >= 1 and res.labels.max() <= 4
    assert res.probabilities is None and not res.cancelled


def test_small_image_is_padded_to_one_tile_and_cropped():
    cfg = ModelConfig(depth=3, width=4, num_classes=2)
    tm = TrainedModel(cfg, build_model(cfg).state_dict())
    for shape in [(5, 3), (1, 40), (20, 13)]:
        res = predict_image(tm, np.ones(shape, np.float32), tile=TileConfig(tile=32))
        assert res.labels.shape == shape


def test_dask_equals_numpy_and_stacks_and_slices():
    torch.manual_seed(0)
    net = nn.Conv2d(1, 2, 3, padding=1)
    cfg = ModelConfig(num_classes=2)
    stack = np.random.default_rng(3).random((4, 40, 36)).astype(np.float32)
    tile = TileConfig(tile=16, overlap=0.25)
    full, _ = _run(net, cfg, stack, tile=tile, probabilities=True)
    assert full.labels.shape == (4, 40, 36) and full.probabilities.shape == (2, 4, 40, 36)
    lazy, _ = _run(net, cfg, da.from_array(stack, chunks=(1, 20, 20)), tile=tile)
    np.testing.assert_array_equal(lazy.labels, full.labels)
    one, _ = _run(net, cfg, stack, tile=tile, slices=2)
    np.testing.assert_array_equal(one.labels, full.labels[2])
    some, _ = _run(net, cfg, stack, tile=tile, slices=range(1, 3))
    np.testing.assert_array_equal(some.labels, full.labels[1:3])
    last, _ = _run(net, cfg, stack, tile=tile, slices=slice(-1, None))
    np.testing.assert_array_equal(last.labels, full.labels[3:])
    with pytest.raises(DataError, match="does not exist"):
        _run(net, cfg, stack, tile=tile, slices=9)


def test_given_stats_normalise_like_the_plane_and_index_the_stack_by_slice():
    from napari_unet_studio.core.normalize import plane_stats

    torch.manual_seed(0)
    net = nn.Conv2d(1, 2, 3, padding=1)
    cfg = ModelConfig(num_classes=2)
    rng = np.random.default_rng(4)
    # slices with very different ranges: a wrong row of statistics changes the result
    stack = (rng.random((3, 40, 36)) * [[[1.0]], [[50.0]], [[900.0]]] + [[[0]], [[7]], [[300]]])
    stack = stack.astype(np.uint16)
    tile = TileConfig(tile=16, overlap=0.25)
    ref, _ = _run(net, cfg, stack, tile=tile, probabilities=True)
    rows = [plane_stats(stack[i], NORM, 1) for i in range(3)]
    lo = np.stack([r[0] for r in rows])
    sc = np.stack([r[1] for r in rows])
    given, _ = _run(net, cfg, stack, tile=tile, probabilities=True, stats=(lo, sc))
    np.testing.assert_array_equal(given.probabilities, ref.probabilities)
    picked, _ = _run(net, cfg, stack, tile=tile, slices=[2, 0], probabilities=True,
                     stats=(lo, sc))
    np.testing.assert_array_equal(picked.probabilities, ref.probabilities[:, [2, 0]])
    plane, _ = _run(net, cfg, stack[1], tile=tile, probabilities=True, stats=(lo[1], sc[1]))
    np.testing.assert_array_equal(plane.probabilities, ref.probabilities[:, 1])
    wrong, _ = _run(net, cfg, stack[1], tile=tile, probabilities=True, stats=(lo[2], sc[2]))
    assert not np.allclose(wrong.probabilities, ref.probabilities[:, 1])


def test_rgb_layout_and_channel_mismatch():
    torch.manual_seed(0)
    cfg3 = ModelConfig(in_channels=3, num_classes=2)
    rgb = np.random.default_rng(4).integers(0, 255, (30, 20, 3)).astype(np.uint8)
    res, _ = _run(nn.Conv2d(3, 2, 1), cfg3, rgb, tile=TileConfig(tile=16))
    assert res.labels.shape == (30, 20)
    with pytest.raises(DataError, match="3 channels"):
        _run(nn.Conv2d(3, 2, 1), cfg3, rgb[..., 0], tile=TileConfig(tile=16))
    with pytest.raises(DataError, match="single-channel"):
        _run(nn.Conv2d(1, 2, 1), ModelConfig(num_classes=2), rgb, tile=TileConfig(tile=16))
    bad = rgb[..., 0].astype(np.float32)
    bad[3, 3] = np.nan
    for tile in (16, 64):  # several tiles, and an image smaller than one tile
        with pytest.raises(DataError, match="NaN"):
            _run(nn.Conv2d(1, 2, 1), ModelConfig(num_classes=2), bad, tile=TileConfig(tile=tile))


def test_complex_images_are_refused_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="numeric"):
            _run(nn.Conv2d(1, 2, 1), ModelConfig(num_classes=2), np.ones((20, 20), complex),
                 tile=TileConfig(tile=16))


def test_many_classes_give_uint16():
    res, _ = _run(ConstantLogits([0.0] * 299 + [1.0]), ModelConfig(num_classes=300),
                  np.zeros((10, 10), np.float32), tile=TileConfig(tile=16))
    assert res.labels.dtype == np.uint16 and (res.labels == 300).all()


def test_stop_event_cancels():
    stop = threading.Event()
    cfg = ModelConfig(num_classes=2)
    gen = iter_predict_module(ConstantLogits([0.0, 1.0]), cfg, NORM, np.zeros((64, 64)),
                              tile=TileConfig(tile=16, overlap=0, batch_size=1),
                              device=torch.device("cpu"), stop=stop)
    first = next(gen)
    stop.set()
    with pytest.raises(StopIteration) as fin:
        next(gen)
    assert first.total == 16 and fin.value.value.cancelled


def test_memory_is_bounded_by_the_tile_not_the_image():
    """A 4096 x 1024, 4-class prediction must not allocate a K x H x W float volume."""
    cfg = ModelConfig(num_classes=4)
    net = nn.Conv2d(1, 4, 1)
    image = np.zeros((4096, 1024), np.uint8)
    image[::7, ::3] = 200
    tracemalloc.start()
    try:
        res, _ = _run(net, cfg, image, tile=TileConfig(tile=256, overlap=0.125, batch_size=8))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    volume = 4 * 4096 * 1024 * 4  # 64 MiB
    assert res.labels.shape == (4096, 1024)
    assert peak < volume / 4, f"peak {peak / 2**20:.1f} MiB"


def test_iter_predict_from_trained_model_yields_progress():
    cfg = ModelConfig(depth=1, width=4, num_classes=2)
    tm = TrainedModel(cfg, build_model(cfg).state_dict())
    gen = iter_predict(tm, np.zeros((40, 40)), tile=TileConfig(tile=16, overlap=0.25))
    steps = list(gen)
    assert steps and steps[-1].done == steps[-1].total


def _asymmetric_net() -> nn.Module:
    """A 2-class network whose output depends on direction (a one-sided kernel)."""
    net = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        net.weight.zero_()
        net.weight[0, 0, 0, 2] = 3.0  # class 1 follows the upper-right neighbour
        net.weight[1, 0, 2, 0] = 1.0  # class 2 the lower-left one
    return net.eval()


def test_tta_softmax_averages_the_back_transformed_predictions():
    from napari_unet_studio.core.infer import tta_softmax
    from napari_unet_studio.core.refine import tta_probabilities

    net = _asymmetric_net()
    img = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    x = torch.from_numpy(img)[None, None]

    def probs(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(torch.from_numpy(a.copy())[None, None]), 1)[0].numpy()

    with torch.no_grad():
        torch.testing.assert_close(tta_softmax(net, x, 1), torch.softmax(net(x), 1))
        for n in (2, 4, 8):
            ours = tta_softmax(net, x, n)[0].numpy()
            np.testing.assert_allclose(ours, tta_probabilities(probs, img, n), atol=1e-6)
        # 8 transforms: the prediction of a flipped image is the flipped prediction
        flipped = tta_softmax(net, x.flip(3), 8)
        torch.testing.assert_close(flipped, tta_softmax(net, x, 8).flip(3))
        plain_flipped = torch.softmax(net(x.flip(3)), 1)
        assert not torch.allclose(plain_flipped, torch.softmax(net(x), 1).flip(3))


def test_tiled_prediction_with_tta_is_flip_equivariant():
    cfg = ModelConfig(depth=1, width=2, num_classes=2)
    img = np.random.default_rng(1).random((40, 40)).astype(np.float32)
    tile = TileConfig(tile=40, overlap=0.0, tta=8)
    res, _ = _run(_asymmetric_net(), cfg, img, tile=tile, probabilities=True)
    res_flip, _ = _run(_asymmetric_net(), cfg, img[:, ::-1].copy(), tile=tile, probabilities=True)
    np.testing.assert_allclose(res_flip.probabilities, res.probabilities[:, :, ::-1], atol=1e-5)
    plain, _ = _run(_asymmetric_net(), cfg, img, tile=TileConfig(tile=40, overlap=0.0),
                    probabilities=True)
    assert not np.allclose(plain.probabilities, res.probabilities, atol=1e-3)
    with pytest.raises(ValueError, match="tta"):
        TileConfig(tta=3)
