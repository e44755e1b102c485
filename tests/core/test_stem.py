"""The fixed multi-scale filter stem (core/stem.py) and held-out strokes (core/holdout.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_unet_studio.core.checkpoint import TrainedModel, load_model, save_model
from napari_unet_studio.core.config import ModelConfig, TrainConfig
from napari_unet_studio.core.data import TrainingData, class_weights
from napari_unet_studio.core.decoders import list_decoders
from napari_unet_studio.core.holdout import components, split_pairs, split_strokes
from napari_unet_studio.core.model import build_model
from napari_unet_studio.core.pretrained import available, start_state
from napari_unet_studio.core.stem import SIGMAS, FilterBank, fit_pixel_branch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(shape=(37, 41), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), 1.5).astype(np.float64)


def test_filters_match_scipy_and_skimage():
    from skimage.feature import hessian_matrix_eigvals

    img = _image()
    out = FilterBank(1, 2)(torch.from_numpy(img).float()[None, None])[0].double().numpy()
    assert out.shape == (len(SIGMAS) * 4, *img.shape)
    for i, s in enumerate(SIGMAS):
        g = ndi.gaussian_filter(img, s, mode="reflect", truncate=4.0)  # radius > image
        gy = ndi.correlate1d(g, [-0.5, 0, 0.5], axis=0, mode="reflect")
        gx = ndi.correlate1d(g, [-0.5, 0, 0.5], axis=1, mode="reflect")
        hyy = ndi.correlate1d(g, [1, -2, 1], axis=0, mode="reflect")
        hxx = ndi.correlate1d(g, [1, -2, 1], axis=1, mode="reflect")
        hxy = ndi.correlate1d(gy, [-0.5, 0, 0.5], axis=1, mode="reflect")
        eig = hessian_matrix_eigvals([hyy, hxy, hxx])  # largest first
        got = out[4 * i: 4 * i + 4]
        np.testing.assert_allclose(got[0], g, atol=2e-6)
        np.testing.assert_allclose(got[1], np.hypot(gy, gx) * s, atol=1e-4)
        np.testing.assert_allclose(got[2], eig[0] * s * s, atol=1e-3 * s * s)
        np.testing.assert_allclose(got[3], eig[1] * s * s, atol=1e-3 * s * s)


def test_rgb_and_3d_filter_shapes():
    fb = FilterBank(3, 2)
    assert fb(torch.rand(2, 3, 20, 24)).shape == (2, 3 * len(SIGMAS) * 4, 20, 24)
    fb3 = FilterBank(1, 3)
    vol = torch.from_numpy(_image((6, 10, 12))).float()[None, None]
    out = fb3(vol)
    assert out.shape == (1, len(SIGMAS) * 3, 6, 10, 12)
    g = ndi.gaussian_filter(vol[0, 0].double().numpy(), 2.0, mode="reflect")
    np.testing.assert_allclose(out[0, 3].double().numpy(), g, atol=2e-6)


@pytest.mark.parametrize("decoder", list_decoders())
def test_every_decoder_with_stem(decoder):
    for stem in ("pixel", "project", "both"):
        net = build_model(ModelConfig(decoder=decoder, depth=2, width=4, in_channels=2,
                                      num_classes=3, stem=stem))
        assert net(torch.rand(1, 2, 24, 20)).shape == (1, 3, 24, 20)


def test_every_stem_weight_trains():
    """The zero-initialised last layer gets a gradient at once, the layer before it from
    the second step on (so no weight is dead)."""
    torch.manual_seed(0)
    net = build_model(ModelConfig(depth=1, width=4, num_classes=3, stem="both"))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.rand(2, 1, 16, 16), torch.randint(0, 3, (2, 16, 16))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, dead


def test_3d_model_with_stem():
    net = build_model(ModelConfig(dims=3, depth=1, width=4, stem="both"))
    assert net(torch.rand(1, 1, 8, 12, 12)).shape == (1, 2, 8, 12, 12)


@pytest.mark.skipif(not available(), reason="no shipped pretrained weights installed")
@pytest.mark.parametrize("stem", ["pixel", "project", "both"])
def test_zero_init_keeps_the_pretrained_output(stem):
    torch.manual_seed(0)
    plain = build_model(ModelConfig(in_channels=3, num_classes=2))
    torch.manual_seed(0)
    with_stem = build_model(ModelConfig(in_channels=3, num_classes=2, stem=stem))
    for net, cfg in ((plain, plain.config), (with_stem, with_stem.config)):
        pre, why = start_state(net, cfg)
        assert pre is not None, why
        net.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(with_stem(x), plain(x))


def test_old_model_files_still_load(tmp_path):
    """A file saved before the stem existed (no ``stem`` key) loads as ``stem='none'``."""
    cfg = ModelConfig(depth=1, width=4, stem="none")
    net = build_model(cfg)
    old = cfg.to_dict()
    del old["stem"]
    model = TrainedModel(cfg, net.state_dict(), record={})
    path = tmp_path / "old.pt"
    save_model(model, path)
    raw = torch.load(path, weights_only=True)
    raw["config"] = old
    torch.save(raw, path)
    loaded = load_model(path)
    assert loaded.config.stem == "none"
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.build()(x), net.eval()(x))
    assert TrainConfig.from_dict({"steps": 3}).pixel_fit >= 0  # old train settings load


def _two_class_scene(size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = np.where((yy // 16 + xx // 16) % 2 == 0, 1, 2).astype(np.uint8)
    # class 2 is textured, class 1 smooth, same mean: the gradient filters separate them
    tex = ndi.gaussian_filter(rng.normal(size=(size, size)), 1.0) * 3
    image = (0.5 + np.where(truth == 2, tex, 0) + rng.normal(0, 0.02, (size, size)))
    strokes = np.zeros_like(truth)
    strokes[4:60:8, 2:62] = truth[4:60:8, 2:62]
    return image.astype(np.float32), strokes, truth


def test_pixel_fit_learns_the_painted_pixels():
    image, strokes, truth = _two_class_scene()
    data = TrainingData([(image, strokes)], {"method": "percentile", "low": 1.0,
                                             "high": 99.8}, 32)
    torch.manual_seed(0)
    net = build_model(ModelConfig(depth=1, width=4, stem="pixel"))
    w = torch.from_numpy(class_weights(data.class_counts))
    info = fit_pixel_branch(net, data, w, steps=150, seed=0)
    assert info["pixels"] == int((strokes > 0).sum())
    x = torch.from_numpy(data.samples[0].image)[None]
    with torch.no_grad():
        pixel = net.stem.pixel(net.stem(x))[0].argmax(0).numpy() + 1
    acc = float((pixel == truth).mean())
    assert acc > 0.85, acc
    for stem in ("none", "project"):  # no per-pixel branch: nothing to fit
        net = build_model(ModelConfig(depth=1, width=4, stem=stem))
        assert fit_pixel_branch(net, data, w, steps=5, seed=0) == {}


# ------------------------------------------------------------------------- holdout
def test_components_match_scipy():
    rng = np.random.default_rng(1)
    mask = rng.random((40, 50)) > 0.6
    ours, n = components(mask)
    ref, m = ndi.label(mask, structure=np.ones((3, 3)))
    assert n == m
    pairs = set(zip(ours[mask].tolist(), ref[mask].tolist(), strict=True))
    assert len(pairs) == n  # the same partition


def test_holdout_never_splits_a_stroke():
    labels = np.zeros((60, 60), np.uint8)
    for i, y in enumerate(range(2, 58, 6)):
        labels[y, 3:57] = 1 + i % 2  # 10 horizontal strokes, 2 classes
    labels[40:50, 40] = 2  # touches the stroke at y=44: one component with it
    train, held = split_strokes(labels, 0.3, np.random.default_rng(0))
    assert not np.any((train > 0) & (held > 0))
    np.testing.assert_array_equal(np.where(train > 0, train, held), labels)
    for k in (1, 2):
        comp, n = components(labels == k)
        for c in range(1, n + 1):
            assert not (train[comp == c].any() and held[comp == c].any())  # one side only
        assert (train == k).any() and (held == k).any()
    dense = np.ones((20, 20), np.uint8)
    dense[10:] = 2
    tr, hd = split_pairs([(np.zeros((20, 20)), dense)], 0.3, seed=0)
    assert not hd and np.array_equal(tr[0][1], dense)  # one region per class: all trained


def test_short_fine_tune_on_a_real_crop_beats_scratch():
    """30 steps (batches of two 64-pixel patches) on a crop of the shipped DSB2018
    nuclei: the defaults (pretrained start, filter stem) against random weights without
    the stem, nucleus IoU on the crop."""
    from napari_unet_studio._sample_data import load_nuclei
    from napari_unet_studio.core.infer import predict_image
    from napari_unet_studio.core.train import Trainer

    image, scribbles, truth = (np.asarray(a)[128:320, 128:320] for a in load_nuclei())
    scores = {}
    for name, arch, start in (("default", None, "pretrained"),
                              ("scratch", {"stem": "none"}, "scratch")):
        tc = TrainConfig(steps=30, patch_size=64, batch_size=2, device="cpu", seed=0,
                         start=start)
        tr = Trainer([(image, scribbles)], train_config=tc, arch=arch, threads=1)
        for _ in tr.run():
            pass
        pred = predict_image(tr.result(), image, device="cpu").labels
        inter = np.sum((pred == 2) & (truth == 2))
        scores[name] = inter / np.sum((pred == 2) | (truth == 2))
    assert scores["default"] > scores["scratch"], scores
