"""The U-Net: every decoder in 2D/3D, progressive and one-shot; config round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_unet_studio.core.config import ModelConfig
from napari_unet_studio.core.decoders import list_decoders
from napari_unet_studio.core.model import UNet, build_model, count_parameters, pad_to_multiple

DECODERS = list_decoders()


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("progressive", [True, False])
def test_forward_backward_every_variant(decoder, dims, progressive):
    torch.manual_seed(0)
    cfg = ModelConfig(
        decoder=decoder,
        dims=dims,
        progressive=progressive,
        width=4,
        depth=2,
        in_channels=2,
        num_classes=3,
        norm="group",
    )
    model = build_model(cfg)
    size = (13, 22) if dims == 2 else (9, 10, 7)
    x = torch.randn(2, 2, *size)
    out = model(x)
    assert out.shape == (2, 3, *size)
    out.logsumexp(1).mean().backward()
    # the filter stem's per-pixel MLP ends in a zero-initialised layer (core/stem.py), so
    # its first layer gets gradients from the second step on (tests/core/test_stem.py)
    missing = [n for n, p in model.named_parameters() if (p.grad is None or not p.grad.any())
               and not n.startswith("stem.pixel.0.")]
    assert not missing, missing


@pytest.mark.parametrize("norm", ["batch", "instance", "group", "none"])
def test_norms(norm):
    model = build_model(ModelConfig(norm=norm, width=8, depth=2))
    model.eval()
    assert model(torch.randn(1, 1, 20, 20)).shape == (1, 2, 20, 20)


def test_config_round_trips_through_json_and_rebuilds_identical_model():
    cfg = ModelConfig(
        decoder="unpool",
        depth=3,
        width=6,
        norm="instance",
        dims=3,
        in_channels=3,
        num_classes=4,
        progressive=False,
    )
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    a, b = build_model(cfg), build_model(again.to_dict())
    assert {k: v.shape for k, v in a.state_dict().items()} == {
        k: v.shape for k, v in b.state_dict().items()
    }
    b.load_state_dict(a.state_dict())
    a.eval()
    b.eval()
    x = torch.randn(1, 3, 16, 16, 16)
    torch.testing.assert_close(a(x), b(x))


def test_config_rejects_bad_values_and_unknown_keys():
    with pytest.raises(ValueError, match="unknown settings"):
        ModelConfig.from_dict({"decoder": "nearest", "colour": "red"})
    with pytest.raises(ValueError, match="dims"):
        ModelConfig(dims=4)
    with pytest.raises(ValueError, match="norm"):
        ModelConfig(norm="layer")
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig(num_classes=1)
    with pytest.raises(ValueError, match="unknown decoder"):
        build_model(ModelConfig(decoder="magic"))


def test_progressive_uses_skips_and_one_shot_does_not():
    prog = UNet(ModelConfig(width=4, depth=3))
    one = UNet(ModelConfig(width=4, depth=3, progressive=False))
    assert len(prog.decoder) == 3 and prog.oneshot is None
    assert len(one.decoder) == 0 and one.oneshot.factor == 8
    # the first progressive step fuses 2x-upsampled bottleneck features with the skip
    assert prog.decoder[0].conv[0].in_channels == 16 + 16
    assert count_parameters(prog) > count_parameters(one)

    # a one-pixel change at full resolution reaches the output at that pixel only
    # through the skips; the one-shot model sees it only via the bottleneck
    def response(model: UNet) -> float:
        model.eval()
        x = torch.zeros(1, 1, 32, 32)
        y = x.clone()
        y[0, 0, 5, 5] = 1.0
        with torch.no_grad():
            d = (model(y) - model(x)).abs()[0].sum(0)
        return float(d[5, 5] / (d.sum() + 1e-12))

    assert response(prog) > response(one)


def test_unpool_decoder_uses_the_encoders_pooling_positions():
    torch.manual_seed(0)
    model = UNet(ModelConfig(decoder="unpool", width=4, depth=1, norm="none"))
    model.eval()
    captured = {}
    model.encoder[0].register_forward_hook(lambda m, i, o: captured.__setitem__("skip", o))
    model.decoder[0].up.register_forward_hook(lambda m, i, o: captured.__setitem__("up", o))
    with torch.no_grad():
        model(torch.randn(1, 1, 8, 8))
    skip, up = captured["skip"], captured["up"]
    # in every 2x2 window, the only non-zero of the unpooled map sits at the argmax of
    # the skip features that the encoder pooled
    _, idx = F.max_pool2d(skip, 2, 2, return_indices=True)
    expected = torch.zeros_like(skip).flatten(2).scatter_(2, idx.flatten(2), 1.0).view_as(skip)
    assert torch.equal(up != 0, expected.bool() & (up != 0))
    assert int((up != 0).sum()) > 0.9 * idx.numel()  # nearly all positions carry a value
    assert int((up != 0).sum()) <= idx.numel()


@pytest.mark.parametrize("decoder", DECODERS)
def test_short_training_run_lowers_the_loss(decoder):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    target = ((yy - 16) ** 2 + (xx - 12) ** 2 < 64).astype(np.int64)
    image = target + 0.3 * rng.normal(size=target.shape)
    x = torch.tensor(image, dtype=torch.float32)[None, None]
    t = torch.tensor(target)[None]
    model = build_model(ModelConfig(decoder=decoder, width=4, depth=2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


def test_too_small_input_is_a_clear_error_and_padding_helper_fixes_it():
    model = build_model(ModelConfig(depth=3, width=4))
    with pytest.raises(ValueError, match="at least 8 pixels"):
        model(torch.randn(1, 1, 3, 40))
    x, size = pad_to_multiple(torch.randn(1, 1, 3, 13), 8)
    assert x.shape[2:] == (8, 16) and size == (3, 13)
    assert model(x).shape == (1, 2, 8, 16)


def test_wrong_tensor_rank_is_a_clear_error():
    with pytest.raises(ValueError, match="4D tensor"):
        build_model(ModelConfig(width=4))(torch.randn(1, 1, 8, 8, 8))


def test_recalibrated_batch_norm_holds_the_average_statistics_of_the_batches():
    from napari_unet_studio.core.model import has_batch_norm, recalibrate_batch_norm

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4, depth=1))
    assert has_batch_norm(model) and not has_batch_norm(build_model(ModelConfig(norm="group")))
    batches = [torch.randn(2, 1, 16, 16) * 3 + 1 for _ in range(3)]
    weights_before = model.encoder[0][0].weight.clone()
    recalibrate_batch_norm(model, iter(batches))
    assert not model.training
    with torch.no_grad():
        feats = torch.cat([model.encoder[0][0](x) for x in batches])
    torch.testing.assert_close(
        model.encoder[0][1].running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5
    )
    assert torch.equal(model.encoder[0][0].weight, weights_before)
