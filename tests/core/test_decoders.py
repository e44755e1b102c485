"""The decoders' math, checked by hand on tiny arrays, as the upsampling lecture defines it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_unet_studio.core import decoders as dec
from napari_unet_studio.core.decoders import (
    BilinearUp,
    NearestUp,
    PixelShuffleUp,
    TransposedUp,
    UnpoolUp,
    describe_decoders,
    fit_to_size,
    get_decoder,
    list_decoders,
    nearest_reverse_map,
    pixel_shuffle_nd,
    register_decoder,
    reverse_map_indices,
)

X22 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])


def _identity_proj(module: torch.nn.Module) -> None:
    """Make a 1-channel 1x1 projection the identity (weight 1, bias 0)."""
    with torch.no_grad():
        module.weight.fill_(1.0)
        module.bias.zero_()


def _as_nchw(a: torch.Tensor) -> torch.Tensor:
    return a[None, None]


# --------------------------------------------------------------------------- nearest
def test_lecture_example_corner_convention_picks_input_1_1():
    # 2x2 input, 2x upsampling: output (1, 1) maps back to input (0.5, 0.5); the
    # lecture rounds half up and picks input (1, 1)
    idx = reverse_map_indices(4, 2, convention="corner")
    assert idx.tolist() == [0, 1, 1, 1]
    out = nearest_reverse_map(_as_nchw(X22), (4, 4), convention="corner")[0, 0]
    assert out[1, 1] == X22[1, 1] == 4.0
    # the price of that rule: the first input row fills one output row, the last three
    assert out[:, 0].tolist() == [1.0, 3.0, 3.0, 3.0]


def test_default_center_convention_copies_each_pixel_into_a_2x2_block():
    # pixel centres aligned: output o -> input (o + 0.5) / 2 - 0.5; output 1 -> 0.25,
    # nearest input 0. Output (1, 1) therefore takes input (0, 0): every input pixel
    # fills exactly one 2x2 block and the image is not shifted
    assert reverse_map_indices(4, 2).tolist() == [0, 0, 1, 1]
    up = NearestUp(1, 1)
    _identity_proj(up.proj)
    out = up(_as_nchw(X22), (4, 4))[0, 0]
    expected = torch.tensor(
        [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]
    )
    torch.testing.assert_close(out, expected)
    assert out[1, 1] == X22[0, 0]


def test_nearest_odd_size_reverse_mapping_by_hand():
    # 3 -> 7: source = floor((o + 0.5) * 3 / 7): 0.21, 0.64, 1.07, 1.5, 1.93, 2.36, 2.79
    assert reverse_map_indices(7, 3).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert reverse_map_indices(5, 2, convention="corner").tolist() == [0, 0, 1, 1, 1]


def test_reverse_mapping_fills_every_pixel_where_forward_mapping_leaves_holes():
    x = torch.arange(1.0, 4.0)  # three input pixels, all non-zero
    out_len = 7
    # forward mapping: push each input pixel to its nearest output position
    forward = torch.zeros(out_len)
    for i, v in enumerate(x):
        forward[round((i + 0.5) * out_len / 3 - 0.5)] = v
    assert (forward == 0).sum() == 4  # holes
    reverse = nearest_reverse_map(x[None, None, None, :], (1, out_len))[0, 0, 0]
    assert (reverse != 0).all()
    assert set(reverse.tolist()) == {1.0, 2.0, 3.0}


def test_nearest_3d_blocks():
    x = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    out = nearest_reverse_map(x, (4, 4, 4))[0, 0]
    for z, y, xx in np.ndindex(2, 2, 2):
        block = out[2 * z : 2 * z + 2, 2 * y : 2 * y + 2, 2 * xx : 2 * xx + 2]
        assert (block == x[0, 0, z, y, xx]).all()


def test_nearest_rejects_unknown_convention():
    with pytest.raises(ValueError, match="convention"):
        reverse_map_indices(4, 2, convention="diagonal")


# --------------------------------------------------------------------------- linear
def _linear_reference(a: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """Separable linear interpolation with pixel-centre alignment, written out in numpy."""
    res = a.astype(np.float64)
    for axis, n_out in enumerate(out_shape):
        n_in = res.shape[axis]
        coords = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(coords).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        w = coords - lo
        take_lo = np.take(res, lo, axis=axis)
        take_hi = np.take(res, hi, axis=axis)
        shape = [1] * res.ndim
        shape[axis] = n_out
        res = take_lo * (1 - w.reshape(shape)) + take_hi * w.reshape(shape)
    return res


def test_linear_interpolation_midpoint_of_1_and_2_is_1_5():
    # the lecture: the value halfway between samples 1 and 2 is 0.5 * (1 + 2) = 1.5;
    # with three outputs and the end points aligned, the middle output is that midpoint
    line = torch.tensor([[[1.0, 2.0]]])
    mid = F.interpolate(line, size=3, mode="linear", align_corners=True)
    assert mid[0, 0].tolist() == [1.0, 1.5, 2.0]


def test_bilinear_up_2x_by_hand():
    # pixel-centre alignment (align_corners=False): output o sits at input
    # (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped to [0, 1]); along a row of
    # [1, 2] that gives 1, 0.75*1 + 0.25*2, 0.25*1 + 0.75*2, 2
    up = BilinearUp(1, 1)
    _identity_proj(up.proj)
    out = up(_as_nchw(X22), (4, 4))[0, 0]
    assert out[0].tolist() == [1.0, 1.25, 1.75, 2.0]
    assert out[:, 0].tolist() == [1.0, 1.5, 2.5, 3.0]
    torch.testing.assert_close(
        out.double(), torch.from_numpy(_linear_reference(X22.numpy(), (4, 4)))
    )


def test_bilinear_odd_sizes_and_trilinear_match_reference():
    rng = np.random.default_rng(0)
    a2 = rng.normal(size=(3, 5)).astype(np.float32)
    up2 = BilinearUp(1, 1)
    _identity_proj(up2.proj)
    out2 = up2(_as_nchw(torch.from_numpy(a2)), (7, 11))[0, 0]
    np.testing.assert_allclose(out2.detach().numpy(), _linear_reference(a2, (7, 11)), atol=1e-5)

    a3 = rng.normal(size=(2, 3, 2)).astype(np.float32)
    up3 = BilinearUp(1, 1, dims=3)
    _identity_proj(up3.proj)
    out3 = up3(_as_nchw(torch.from_numpy(a3)), (4, 6, 5))[0, 0]
    np.testing.assert_allclose(out3.detach().numpy(), _linear_reference(a3, (4, 6, 5)), atol=1e-5)


# --------------------------------------------------------------------------- unpool
def test_max_unpool_puts_values_back_at_stored_positions_zeros_elsewhere():
    x = torch.tensor(
        [
            [1.0, 5.0, 2.0, 0.0],
            [3.0, 2.0, 8.0, 1.0],
            [9.0, 0.0, 1.0, 1.0],
            [4.0, 6.0, 7.0, 2.0],
        ]
    )
    pooled, idx = F.max_pool2d(_as_nchw(x), 2, 2, return_indices=True)
    assert pooled[0, 0].tolist() == [[5.0, 8.0], [9.0, 7.0]]
    up = UnpoolUp(1, 1)
    _identity_proj(up.projs[0])
    out = up(pooled, (4, 4), [idx])[0, 0]
    expected = torch.tensor(
        [
            [0.0, 5.0, 0.0, 0.0],
            [0.0, 0.0, 8.0, 0.0],
            [9.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 7.0, 0.0],
        ]
    )
    torch.testing.assert_close(out, expected)


def test_unpool_odd_size_restores_the_pre_pool_size():
    x = torch.arange(25.0).reshape(5, 5)
    pooled, idx = F.max_pool2d(_as_nchw(x), 2, 2, return_indices=True)  # floor: 2x2
    up = UnpoolUp(1, 1)
    _identity_proj(up.projs[0])
    out = up(pooled, (5, 5), [idx])[0, 0]
    assert out.shape == (5, 5)
    # the maxima of the four 2x2 windows are their bottom-right pixels: 6, 8, 16, 18
    nonzero = {(int(i), int(j)) for i, j in torch.nonzero(out)}
    assert nonzero == {(1, 1), (1, 3), (3, 1), (3, 3)}
    assert out[1, 1] == 6 and out[3, 3] == 18
    assert out[4].abs().sum() == 0 and out[:, 4].abs().sum() == 0


def test_unpool_needs_indices():
    with pytest.raises(ValueError, match="index"):
        UnpoolUp(2, 2)(torch.zeros(1, 2, 2, 2), (4, 4))


def test_unpool_one_shot_chains_levels():
    x = torch.rand(1, 1, 8, 8)
    p1, i1 = F.max_pool2d(x, 2, 2, return_indices=True)
    p2, i2 = F.max_pool2d(p1, 2, 2, return_indices=True)
    up = UnpoolUp(1, 1, factor=4, level_channels=[1, 1])
    for proj in up.projs:
        _identity_proj(proj)
    out = up(p2, (8, 8), [i2, i1])[0, 0]
    # only the global maximum of each 4x4 window survives, at its original position
    assert int((out != 0).sum()) == 4
    for by, bx in np.ndindex(2, 2):
        win = x[0, 0, 4 * by : 4 * by + 4, 4 * bx : 4 * bx + 4]
        got = out[4 * by : 4 * by + 4, 4 * bx : 4 * bx + 4]
        assert torch.equal(got != 0, win == win.max())


# --------------------------------------------------------------------------- transposed
def _conv_matrix(kernel: np.ndarray, in_size: int, stride: int = 1) -> np.ndarray:
    """The sparse matrix C of a valid convolution: y.flatten() = C @ x.flatten()."""
    k = kernel.shape[0]
    out_size = (in_size - k) // stride + 1
    c = np.zeros((out_size * out_size, in_size * in_size))
    for oy, ox in np.ndindex(out_size, out_size):
        for ky, kx in np.ndindex(k, k):
            iy, ix = oy * stride + ky, ox * stride + kx
            c[oy * out_size + ox, iy * in_size + ix] = kernel[ky, kx]
    return c


def test_transposed_convolution_is_the_transpose_of_the_conv_matrix():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3))
    c = _conv_matrix(kernel, 4)
    assert c.shape == (4, 16)
    # first row: the kernel at X0..X2, X4..X6, X8..X10; zeros at X3 and X12..X15
    assert np.all(c[0, [3, 7, 11, 12, 13, 14, 15]] == 0)
    np.testing.assert_allclose(c[0, [0, 1, 2, 4, 5, 6, 8, 9, 10]], kernel.ravel())

    x = rng.normal(size=(4, 4))
    conv = F.conv2d(torch.tensor(x)[None, None], torch.tensor(kernel)[None, None])
    np.testing.assert_allclose(conv[0, 0].numpy().ravel(), c @ x.ravel())

    y = rng.normal(size=(2, 2))
    up = TransposedUp(1, 1, kernel_size=3, stride=1, bias=False).double()
    with torch.no_grad():
        up.up.weight.copy_(torch.tensor(kernel)[None, None])
    out = up(torch.tensor(y)[None, None], (4, 4))[0, 0].detach().numpy()
    np.testing.assert_allclose(out, (c.T @ y.ravel()).reshape(4, 4))
    # the picture in the lecture: pad the 2x2 map to 6x6, convolve with the flipped kernel
    padded = F.pad(torch.tensor(y)[None, None], (2, 2, 2, 2))
    flipped = torch.tensor(kernel[::-1, ::-1].copy())[None, None]
    np.testing.assert_allclose(F.conv2d(padded, flipped)[0, 0].numpy(), out)


def test_default_transposed_up_is_transpose_of_strided_2x2_conv():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(2, 2))
    c = _conv_matrix(kernel, 4, stride=2)  # 4x16: a 2x2 stride-2 conv of a 4x4 input
    up = TransposedUp(1, 1, bias=False).double()
    with torch.no_grad():
        up.up.weight.copy_(torch.tensor(kernel)[None, None])
    y = rng.normal(size=(2, 2))
    out = up(torch.tensor(y)[None, None], (4, 4))[0, 0].detach().numpy()
    np.testing.assert_allclose(out, (c.T @ y.ravel()).reshape(4, 4))


# --------------------------------------------------------------------------- pixel shuffle
def test_pixel_shuffle_nd_matches_torch_in_2d_and_hand_layout_in_3d():
    x = torch.randn(2, 12, 3, 5)
    torch.testing.assert_close(pixel_shuffle_nd(x, 2), F.pixel_shuffle(x, 2))
    # 3D: channel k of 8 goes to sub-position (k // 4, (k // 2) % 2, k % 2)
    x3 = torch.arange(8.0).reshape(1, 8, 1, 1, 1)
    out = pixel_shuffle_nd(x3, 2)[0, 0]
    for k in range(8):
        assert out[k // 4, (k // 2) % 2, k % 2] == k


@pytest.mark.parametrize("dims", [2, 3])
def test_icnr_start_has_no_checkerboard(dims):
    torch.manual_seed(0)
    up = PixelShuffleUp(4, 3, dims=dims)
    size = (5,) * dims
    x = torch.randn(1, 4, *size)
    out = up(x, tuple(2 * s for s in size))
    # every 2x2(x2) block is constant: exactly a nearest upsampling of the low-res map
    low = out[(...,) + tuple(slice(0, None, 2) for _ in range(dims))]
    torch.testing.assert_close(out, nearest_reverse_map(low, out.shape[2:]))
    assert low.std() > 0  # not trivially zero


# --------------------------------------------------------------------------- all decoders
@pytest.mark.parametrize("name", list_decoders())
@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [((3, 5), (7, 11)), ((4, 4), (8, 8)), ((2, 3, 3), (5, 6, 7))],
)
def test_exact_output_size_and_gradients(name, in_size, out_size):
    dims = len(in_size)
    info = get_decoder(name)
    up = info.cls(6, 4, dims=dims)
    x = torch.randn(2, 6, *in_size, requires_grad=True)
    indices = None
    if info.needs_indices:
        big = torch.randn(2, 4, *out_size)
        pool = F.max_pool2d if dims == 2 else F.max_pool3d
        _, idx = pool(big, 2, 2, return_indices=True)
        indices = [idx]
        x = torch.randn(2, 6, *idx.shape[2:], requires_grad=True)
    out = up(x, out_size, indices)
    assert out.shape == (2, 4, *out_size)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in up.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_fit_to_size_crops_and_pads_at_the_far_end():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    out = fit_to_size(x, (4, 3))
    assert out.shape == (1, 1, 4, 3)
    torch.testing.assert_close(out[0, 0, :3], x[0, 0, :, :3])
    assert out[0, 0, 3].abs().sum() == 0


# --------------------------------------------------------------------------- registry
def test_registry_lists_all_five_with_descriptions():
    names = list_decoders()
    assert names[:5] == ["nearest", "bilinear", "unpool", "transposed", "pixelshuffle"]
    for name, text in describe_decoders():
        assert name in names and len(text) > 20 and "\n" not in text


def test_registering_a_decoder_is_one_class_and_one_decorator():
    try:

        @register_decoder("test-bicubic", "Bicubic interpolation (test only).")
        class BicubicUp(dec.Upsampler):
            def __init__(self, in_channels, out_channels, dims=2, factor=2, level_channels=None):
                super().__init__(in_channels, out_channels, dims, factor, level_channels)
                self.proj = dec.conv_nd(dims)(in_channels, out_channels, 1)

            def forward(self, x, size, indices=None):
                return F.interpolate(self.proj(x), size=tuple(size), mode="bicubic")

        assert "test-bicubic" in list_decoders()
        assert get_decoder("test-bicubic").cls is BicubicUp
        from napari_unet_studio.core.config import ModelConfig
        from napari_unet_studio.core.model import build_model

        model = build_model(ModelConfig(decoder="test-bicubic", width=4, depth=2))
        assert model(torch.randn(1, 1, 13, 9)).shape == (1, 2, 13, 9)
        with pytest.raises(ValueError, match="already registered"):
            register_decoder("test-bicubic", "again")(BicubicUp)
    finally:
        dec._REGISTRY.pop("test-bicubic", None)


def test_unknown_decoder_error_lists_the_choices():
    with pytest.raises(ValueError, match="nearest, bilinear"):
        get_decoder("cubic-spline")
