"""The decoders' math in 3D, by hand on tiny volumes, with per-axis factors (anisotropy).

The 2D proofs are in test_decoders.py; here every decoder upsamples by 2 on all axes
and by ``(1, 2, 2)`` (y/x only, the first levels of an anisotropic volume).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_unet_studio.core.anisotropy import (
    describe_pools,
    is_isotropic,
    patch_shape,
    pool_factors,
    total_factors,
)
from napari_unet_studio.core.config import ModelConfig
from napari_unet_studio.core.decoders import (
    BilinearUp,
    NearestUp,
    PixelShuffleUp,
    TransposedUp,
    UnpoolUp,
    axis_factors,
    get_decoder,
    list_decoders,
    nearest_reverse_map,
    pixel_shuffle_nd,
    split_levels,
)
from napari_unet_studio.core.model import build_model, min_input_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _identity(conv: torch.nn.Module) -> None:
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()


def _vol(*shape: int) -> torch.Tensor:
    return torch.arange(float(np.prod(shape))).reshape(1, 1, *shape)


# ----------------------------------------------------------------- anisotropy rules
def test_pool_factors_follow_the_spacing_like_nnunet():
    assert pool_factors(None, 3) == [(2, 2, 2)] * 3
    assert pool_factors((1.0, 1.0, 1.0), 2) == [(2, 2, 2)] * 2
    # z 3x coarser: y/x only until their spacing catches up (3 <= 2 * 2)
    assert pool_factors((3.0, 1.0, 1.0), 3) == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    # z 5x coarser: two levels in y/x only
    assert pool_factors((5.0, 1.0, 1.0), 4) == [(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert total_factors(pool_factors((5.0, 1.0, 1.0), 4), 3) == (4, 16, 16)
    assert describe_pools(pool_factors((3.0, 1.0, 1.0), 2)) == "1x2x2, 2x2x2"
    assert is_isotropic((0.29, 0.26, 0.26)) and not is_isotropic((0.87, 0.26, 0.26))


def test_patch_shape_is_about_a_physical_cube_and_fits_the_poolings():
    pools = pool_factors((3.0, 1.0, 1.0), 3)
    pz, py, px = patch_shape(48, (3.0, 1.0, 1.0), pools)
    assert (py, px) == (48, 48) and pz % 4 == 0 and pz == 16  # 48 / 3 = 16, multiple of 4
    assert patch_shape(48, None, pool_factors(None, 3)) == (48, 48, 48)
    assert patch_shape(16, (10.0, 1.0, 1.0), pool_factors((10.0, 1.0, 1.0), 3))[0] >= 2


def test_split_levels_puts_the_coarse_axis_in_the_deepest_levels():
    assert split_levels((2, 8, 8), 3) == [(2, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert axis_factors(2, 3) == (2, 2, 2)
    with pytest.raises(ValueError):
        axis_factors((1, 3, 2), 3)


def test_anisotropic_unet_pools_only_in_yx_first():
    net = build_model(ModelConfig(dims=3, depth=3, width=2, spacing=(3.0, 1.0, 1.0)))
    assert net.pools == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert min_input_size(net.config) == (4, 8, 8)
    shapes = []
    hooks = [b.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[2:])))
             for b in net.encoder]
    out = net(torch.randn(1, 1, 8, 32, 32))
    for h in hooks:
        h.remove()
    assert shapes == [(8, 32, 32), (8, 16, 16), (4, 8, 8), (2, 4, 4)]
    assert out.shape == (1, 2, 8, 32, 32)
    iso = build_model(ModelConfig(dims=3, depth=3, width=2))
    with pytest.raises(ValueError):  # 4 slices cannot be pooled by 2 three times
        iso(torch.randn(1, 1, 4, 32, 32))


@pytest.mark.parametrize("name", list_decoders())
@pytest.mark.parametrize("progressive", [True, False])
@pytest.mark.parametrize("spacing", [None, (3.0, 1.0, 1.0)])
def test_every_decoder_3d_unet_output_size_and_gradients(name, progressive, spacing):
    torch.manual_seed(0)
    net = build_model(ModelConfig(decoder=name, dims=3, depth=2, width=2, spacing=spacing,
                                  progressive=progressive, num_classes=3))
    x = torch.randn(2, 1, 7, 13, 11, requires_grad=True)  # odd sizes on every axis
    out = net(x)
    assert out.shape == (2, 3, 7, 13, 11)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("factor", [2, (1, 2, 2)])
@pytest.mark.parametrize("name", list_decoders())
def test_every_decoder_3d_exact_size(name, factor):
    info = get_decoder(name)
    up = info.cls(3, 2, dims=3, factor=factor)
    x = torch.randn(1, 3, 3, 4, 5)
    f = axis_factors(factor, 3)
    size = (3 * f[0] + (1 if f[0] == 2 else 0), 4 * f[1] + 1, 5 * f[2])  # odd skips too
    idx = None
    if info.needs_indices:
        _, i = F.max_pool3d(torch.randn(1, 2, *size), f, f, return_indices=True)
        idx = [i]
    assert up(x, size, idx).shape == (1, 2, *size)


# ----------------------------------------------------------------- nearest (reverse map)
def test_nearest_3d_anisotropic_reverse_mapping_copies_yx_blocks_only():
    x = _vol(2, 2, 2)
    up = NearestUp(1, 1, dims=3, factor=(1, 2, 2))
    _identity(up.proj)
    out = up(x, (2, 4, 4))[0, 0]
    # every output voxel (z, y, x) takes input (z, floor((y + 0.5) / 2), floor((x + 0.5) / 2))
    for z in range(2):
        for y in range(4):
            for xx in range(4):
                assert out[z, y, xx] == x[0, 0, z, y // 2, xx // 2]
    assert torch.equal(nearest_reverse_map(x, (4, 4, 4))[0, 0],
                       x[0, 0].repeat_interleave(2, 0).repeat_interleave(2, 1)
                       .repeat_interleave(2, 2))


# ----------------------------------------------------------------- trilinear
def _linear_1d(v: np.ndarray, n_out: int) -> np.ndarray:
    """The lecture's linear interpolation on one axis, pixel centres aligned."""
    n_in = len(v)
    out = np.empty(n_out)
    for o in range(n_out):
        u = min(max((o + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        i = int(np.floor(u))
        j = min(i + 1, n_in - 1)
        out[o] = (1 - (u - i)) * v[i] + (u - i) * v[j]
    return out


@pytest.mark.parametrize("factor", [2, (1, 2, 2)])
def test_trilinear_is_separable_linear_interpolation_by_hand(factor):
    x = torch.tensor([[[1.0, 2.0], [3.0, 5.0]], [[0.0, 4.0], [8.0, 2.0]]])[None, None]
    f = axis_factors(factor, 3)
    size = tuple(2 * a for a in f)
    up = BilinearUp(1, 1, dims=3, factor=factor)
    _identity(up.proj)
    got = up(x, size)[0, 0].detach().numpy()
    ref = x[0, 0].numpy().astype(np.float64)
    for axis, n in enumerate(size):
        ref = np.apply_along_axis(_linear_1d, axis, ref, n)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    if f[0] == 1:  # no mixing between slices: each slice is upsampled bilinearly alone
        for z in range(2):
            alone = F.interpolate(x[:, :, z], size=size[1:], mode="bilinear",
                                  align_corners=False)[0, 0].numpy()
            np.testing.assert_allclose(got[z], alone, rtol=0, atol=1e-6)
    # between 1 and 2 along x, at a quarter and three quarters: 1.25 and 1.75
    assert got[0, 0, 1] == pytest.approx(1.25) and got[0, 0, 2] == pytest.approx(1.75)


# ----------------------------------------------------------------- max-unpooling
@pytest.mark.parametrize("factor", [2, (1, 2, 2)])
def test_unpool_3d_puts_values_back_at_the_stored_positions(factor):
    f = axis_factors(factor, 3)
    torch.manual_seed(1)
    before = torch.randn(1, 1, 2 * f[0], 4, 4)
    pooled, idx = F.max_pool3d(before, f, f, return_indices=True)
    up = UnpoolUp(1, 1, dims=3, factor=factor)
    _identity(up.projs[0])
    out = up(pooled, before.shape[2:], [idx])[0, 0]
    mask = out != 0
    assert int(mask.sum()) == pooled.numel()  # one value per pooling window
    assert torch.equal(out[mask].sort().values, pooled.flatten().sort().values)
    assert torch.equal(out[mask], before[0, 0][mask])  # each is the max at its own place
    if f[0] == 1:  # windows never cross slices: every slice keeps its own maxima
        assert (mask.sum(dim=(1, 2)) == 4).all()


def test_unpool_one_shot_with_mixed_level_factors():
    before = torch.randn(1, 1, 4, 8, 8)
    p1, i1 = F.max_pool3d(before, (1, 2, 2), (1, 2, 2), return_indices=True)
    p2, i2 = F.max_pool3d(p1, 2, 2, return_indices=True)
    up = UnpoolUp(1, 1, dims=3, factor=(2, 4, 4), level_channels=[1, 1],
                  level_factors=[(2, 2, 2), (1, 2, 2)])
    for c in up.projs:
        _identity(c)
    out = up(p2, (4, 8, 8), [i2, i1])[0, 0]
    assert int((out != 0).sum()) == p2.numel()
    assert torch.equal(out[out != 0].sort().values, p2.flatten().sort().values)


# ----------------------------------------------------------------- transposed convolution
@pytest.mark.parametrize("factor", [2, (1, 2, 2)])
def test_transposed_3d_is_the_transpose_of_the_strided_conv(factor):
    """<conv(u), v> == <u, conv_T(v)> with the same weights: the matrix transpose."""
    f = axis_factors(factor, 3)
    up = TransposedUp(2, 3, dims=3, factor=factor, bias=False)
    w = up.up.weight  # (in=2, out=3, *f)
    u = torch.randn(1, 3, 2 * f[0], 6, 8)
    v = torch.randn(1, 2, 2, 3, 4)
    conv_u = F.conv3d(u, w, stride=f)  # the convolution whose transpose the decoder is
    lhs = (conv_u * v).sum()
    rhs = (u * up(v, u.shape[2:])).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=1e-5)


def test_transposed_3d_anisotropic_places_one_kernel_copy_per_input_voxel():
    up = TransposedUp(1, 1, dims=3, factor=(1, 2, 2))
    with torch.no_grad():
        up.up.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 1, 2, 2))
        up.up.bias.fill_(0.5)
    x = torch.tensor([[[1.0, 10.0]], [[100.0, 0.0]]])[None, None]  # (z=2, y=1, x=2)
    out = up(x, (2, 2, 4))[0, 0]
    expected = torch.tensor([
        [[1, 2, 10, 20], [3, 4, 30, 40]],
        [[100, 200, 0, 0], [300, 400, 0, 0]],
    ], dtype=torch.float32) + 0.5
    torch.testing.assert_close(out, expected)


# ----------------------------------------------------------------- pixel shuffle
def test_pixel_shuffle_nd_per_axis_layout_by_hand():
    # 4 channels -> 1 channel, factors (1, 2, 2): channel k goes to sub-position (ky, kx)
    x = torch.arange(4.0).reshape(1, 4, 1, 1, 1) + torch.zeros(1, 4, 2, 1, 1)
    out = pixel_shuffle_nd(x, (1, 2, 2))[0, 0]
    assert out.shape == (2, 2, 2)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    torch.testing.assert_close(out[1], out[0])
    x8 = torch.randn(1, 8, 2, 3, 4)
    torch.testing.assert_close(pixel_shuffle_nd(x8, 2), pixel_shuffle_nd(x8, (2, 2, 2)))


@pytest.mark.parametrize("factor", [2, (1, 2, 2)])
def test_pixelshuffle_3d_icnr_starts_as_nearest_upsampling(factor):
    torch.manual_seed(0)
    f = axis_factors(factor, 3)
    up = PixelShuffleUp(2, 3, dims=3, factor=factor)
    x = torch.randn(1, 2, 3, 4, 5)
    size = tuple(s * a for s, a in zip((3, 4, 5), f))
    out = up(x, size)
    low = out[:, :, :: f[0], :: f[1], :: f[2]]
    expect = low
    for axis, a in enumerate(f):
        expect = expect.repeat_interleave(a, dim=2 + axis)
    torch.testing.assert_close(out, expect)  # constant inside every f-block: no checkerboard
