"""Tiled sliding-window prediction with smooth overlap blending.

Memory is bounded by the tile size: the image is read one band of tile rows at a time
(numpy or dask arrays alike), tiles are batched through the network, and blended
probabilities are kept only for the rows still being written, so an 8192 x 8192 image
never needs a ``K x H x W`` float volume unless probabilities are asked for.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .checkpoint import TrainedModel
from .config import ModelConfig, TileConfig
from .data import MAX_CHANNELS
from .device import amp_dtype, prepare_runtime, resolve_device
from .edges import MAX_PIXELS as EDGES_MAX_PIXELS
from .edges import applies as edges_apply
from .edges import snap_labels
from .errors import DataError
from .normalize import apply_stats, plane_stats
from .progress import run_to_end
from .superpixels import MAX_PIXELS as SUPERPIXEL_MAX_PIXELS
from .superpixels import applies as superpixels_apply
from .superpixels import vote_multiscale

__all__ = [
    "PredictProgress",
    "PredictResult",
    "iter_predict",
    "iter_predict_module",
    "predict_image",
    "blend_window",
    "tile_positions",
]


@dataclass
class PredictProgress:
    """Tiles done so far out of ``total``, and seconds since the start."""

    done: int
    total: int
    elapsed: float


@dataclass
class PredictResult:
    """Prediction output.

    Attributes
    ----------
    labels : numpy.ndarray
        Class ids 1..K (uint8 if K < 256, else uint16) with the spatial shape of the
        predicted region (for stacks: the selected slices; one int slice gives 2D).
    probabilities : numpy.ndarray or None
        float32 ``(K, *spatial)`` class probabilities, only if asked for.
    cancelled : bool
        True if the stop event ended prediction early (unfinished pixels are 0).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None = None
    cancelled: bool = False


def tile_positions(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)``.

    Consecutive tiles share at least ``overlap`` pixels; the last tile ends exactly at
    ``size``. A ``size <= tile`` gives one tile at 0 (the axis is padded).
    """
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    n = math.ceil((size - tile) / stride) + 1
    return [min(i * stride, size - tile) for i in range(n)]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """1D blending weights: a raised-cosine ramp over ``overlap`` pixels at each end.

    Weights are strictly positive, so a normalised weighted sum of identical tile
    values gives exactly that value (no seams), and neighbouring ramps cross-fade.
    """
    w = np.ones(tile, dtype=np.float64)
    ramp = min(overlap, tile // 2)
    if ramp > 0:
        r = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
        w[:ramp] = r
        w[tile - ramp:] = np.minimum(w[tile - ramp:], r[::-1])
    return w.astype(np.float32)


def _layout(shape: tuple[int, ...], in_channels: int) -> tuple[tuple[int, ...], bool]:
    """Spatial shape and whether the last axis holds channels."""
    if in_channels > 1:
        if len(shape) < 3 or shape[-1] != in_channels:
            raise DataError(
                f"This model expects images with {in_channels} channels in the last axis "
                f"(Y, X, {in_channels}); the image has shape {tuple(shape)}."
            )
        spatial, channel_last = shape[:-1], True
    elif len(shape) == 3 and shape[-1] == 1:
        spatial, channel_last = shape[:-1], True
    else:
        if len(shape) == 3 and 1 < shape[-1] <= MAX_CHANNELS:
            raise DataError(
                f"The image has shape {tuple(shape)} and looks like a colour/multichannel "
                "image, but this model was trained on single-channel images. Use a "
                "single channel (or retrain on colour images)."
            )
        spatial, channel_last = tuple(shape), False
    if len(spatial) not in (2, 3):
        raise DataError(
            f"Cannot predict an image of shape {tuple(shape)}: expected (Y, X) or a stack "
            "(Z, Y, X), optionally with a last channel axis."
        )
    if 0 in tuple(spatial)[-2:]:  # was a ValueError from deep inside normalisation
        raise DataError(f"The image of shape {tuple(shape)} is empty: it has no pixels.")
    return tuple(int(s) for s in spatial), channel_last


def _select_slices(nz: int, slices: Any) -> tuple[list[int], bool]:
    """Slice indices to predict and whether the result drops the stack axis."""
    if slices is None:
        return list(range(nz)), False
    if isinstance(slices, (int, np.integer)):
        z = int(slices) + (nz if int(slices) < 0 else 0)
        if not 0 <= z < nz:
            raise DataError(f"Slice {int(slices)} does not exist; the stack has {nz} slices.")
        return [z], True
    if isinstance(slices, slice):
        return list(range(nz))[slices], False
    if isinstance(slices, Iterable):
        chosen = [int(s) for s in slices]
        bad = [s for s in chosen if not 0 <= s < nz]
        if bad:
            raise DataError(f"Slices {bad} do not exist; the stack has {nz} slices.")
        return chosen, False
    raise DataError(f"Cannot understand slices={slices!r}; use an int, a range or a slice.")


def _net_device(net: torch.nn.Module) -> torch.device:
    """The device of a network's first parameter or buffer (the CPU if it has none)."""
    tensors = [*net.parameters(), *net.buffers()]
    return tensors[0].device if tensors else torch.device("cpu")


def _checked_block(block: Any) -> np.ndarray:
    """Read a block of the image; raise :class:`DataError` unless numeric and finite."""
    block = np.asarray(block)
    if block.dtype.kind == "f" and not np.all(np.isfinite(block)):
        raise DataError("The image contains NaN or infinite values; replace them first.")
    if block.dtype.kind not in "buif":
        raise DataError(f"The image has type {block.dtype}; it must be numeric.")
    return block


def _warn_whole_plane(what: str, h: int, w: int, limit: int) -> None:
    warnings.warn(f"{what} skipped: a {h} x {w} plane is above {limit} pixels (predict "
                  "it block-wise to use it).", stacklevel=3)


def _shift_band(acc: np.ndarray, wsum: np.ndarray, d: int) -> None:
    """Move the blending accumulators ``acc`` ``(K, T, ...)`` and ``wsum`` ``(T, ...)``
    ``d`` rows (2D) or slices (3D) towards the start, zeros after (in place)."""
    n = wsum.shape[0]
    acc[:, : n - d] = acc[:, d:]
    acc[:, n - d:] = 0
    wsum[: n - d] = wsum[d:]
    wsum[n - d:] = 0


def _pad_end(arr: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Pad the last two axes at their end up to ``target`` (reflect; edge if 1 px)."""
    pads = [(0, 0)] * (arr.ndim - 2) + [(0, max(0, t - s)) for s, t in zip(arr.shape[-2:], target)]
    if not any(p[1] for p in pads):
        return arr
    mode = "reflect" if min(arr.shape[-2:]) > 1 else "edge"
    return np.pad(arr, pads, mode=mode)


def iter_predict_module(
    net: torch.nn.Module,
    config: ModelConfig,
    normalization: dict,
    image: Any,
    *,
    tile: TileConfig | None = None,
    probabilities: bool = False,
    device: torch.device | None = None,
    slices: Any = None,
    stop: threading.Event | None = None,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> Generator[PredictProgress, None, PredictResult]:
    """Like :func:`iter_predict` but for an already built network (used for previews).

    ``net`` must already be on ``device`` and in eval mode. A 3D model (``config.dims
    == 3``) predicts the volume in 3D tiles (:mod:`~.volume_infer`).

    ``stats``: normalisation offsets and scales computed elsewhere, ``(C,)`` each for an
    image, ``(S, C)`` for a stack (one row per slice of ``image``), used instead of
    ``normalization`` (2D models). The block-wise runner passes the whole image's
    statistics with a raw region, so a block is normalised exactly as the whole image is.
    """
    if int(config.dims) == 3:
        from .volume_infer import iter_predict_volume

        return (yield from iter_predict_volume(
            net, config, normalization, image, tile=tile, probabilities=probabilities,
            device=device, slices=slices, stop=stop))
    tile = tile or TileConfig()
    device = device if device is not None else _net_device(net)
    k = int(config.num_classes)
    spatial, channel_last = _layout(tuple(np.shape(image)), int(config.in_channels))
    if len(spatial) == 3:
        zs, squeeze = _select_slices(spatial[0], slices)
        plane_shape = spatial[1:]
    else:
        if slices not in (None, 0):
            raise DataError("slices only applies to stacks; this image is 2D.")
        zs, squeeze = [None], True
        plane_shape = spatial
    h, w = plane_shape
    t = max(int(tile.tile), 2 ** int(config.depth))  # the network needs 2**depth pixels
    ov = int(round(float(tile.overlap) * t))
    ys, xs = tile_positions(h, t, ov), tile_positions(w, t, ov)
    hp, wp = max(h, t), max(w, t)
    win = blend_window(t, ov)
    win2d = torch.from_numpy(np.outer(win, win))
    out_shape = (h, w) if squeeze else (len(zs), h, w)
    labels = np.zeros(out_shape, dtype=np.uint8 if k < 256 else np.uint16)
    probs = np.zeros((k, *out_shape), dtype=np.float32) if probabilities else None
    total = len(zs) * len(ys) * len(xs)
    done = 0
    t0 = time.perf_counter()
    autocast = amp_dtype(device)
    cancelled = False

    def read_band(plane: Any, y0: int, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return _pad_end(apply_stats(_checked_block(plane[y0:y0 + t]), lo, scale), (t, wp))

    given = None if stats is None else tuple(np.asarray(v, np.float64) for v in stats)
    vote = superpixels_apply(tile.superpixels, int(config.in_channels))
    edges = edges_apply(tile.edges, int(config.in_channels), k)
    if vote and h * w > SUPERPIXEL_MAX_PIXELS:
        _warn_whole_plane("Superpixel vote", h, w, SUPERPIXEL_MAX_PIXELS)
        vote = False
    if edges and h * w > EDGES_MAX_PIXELS:
        _warn_whole_plane("Edge snapping", h, w, EDGES_MAX_PIXELS)
        edges = False

    def _write_rows(p: np.ndarray, base: int, zi: int) -> None:
        """Class ids (and probabilities) of plane ``zi``'s rows ``base:``."""
        for r0 in range(0, p.shape[1], 32):  # small chunks keep argmax temporaries small
            r1 = min(p.shape[1], r0 + 32)
            ids = np.argmax(p[:, r0:r1], axis=0)
            ids += 1
            rs = slice(base + r0, base + r1)
            labels[rs if squeeze else (zi, rs)] = ids
            if probs is not None:
                probs[(slice(None), rs) if squeeze else (slice(None), zi, rs)] = p[:, r0:r1]
    for zi, z in enumerate(zs):
        plane = image if z is None else image[z]
        if channel_last and int(config.in_channels) == 1 and len(np.shape(plane)) == 3:
            plane = plane[..., 0]
        if given is None:
            lo, scale = plane_stats(plane, normalization, int(config.in_channels))
        elif given[0].ndim == 2:  # one row per slice of a stack
            lo, scale = (v[0 if z is None else z] for v in given)
        else:
            lo, scale = given
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(scale))):
            raise DataError("The image contains NaN or infinite values; replace them first.")
        acc = np.zeros((k, t, wp), dtype=np.float32)
        wsum = np.zeros((t, wp), dtype=np.float32)
        base = 0

        # the superpixel vote and edge snapping need the whole plane's probabilities
        held = np.zeros((k, h, w), np.float32) if vote or edges else None

        def flush(n_rows: int, base: int = 0, acc=acc, wsum=wsum, zi=zi, held=held) -> None:
            rows = min(n_rows, h - base)
            if rows <= 0:
                return
            p = acc[:, :rows, :w]
            p /= wsum[None, :rows, :w]
            if held is not None:
                held[:, base:base + rows] = p
            else:
                _write_rows(p, base, zi)

        for y0 in ys:
            if y0 > base:  # rows above y0 get no more contributions: finish them
                flush(y0 - base, base)
                _shift_band(acc, wsum, y0 - base)
                base = y0
            # images smaller than a tile go through read_band too: it checks NaN/inf/dtype
            band = read_band(plane, y0, lo, scale)
            for b0 in range(0, len(xs), int(tile.batch_size)):
                if stop is not None and stop.is_set():
                    cancelled = True
                    break
                chunk = xs[b0:b0 + int(tile.batch_size)]
                batch = torch.from_numpy(np.stack([band[:, :, x0:x0 + t] for x0 in chunk]))
                with torch.inference_mode():
                    batch = batch.to(device)
                    with (torch.autocast(device_type=device.type, dtype=autocast)
                          if autocast is not None else contextlib.nullcontext()):
                        soft = tta_softmax(net, batch, int(tile.tta))
                    soft = (soft * win2d.to(device)).cpu()
                for i, x0 in enumerate(chunk):
                    acc[:, :, x0:x0 + t] += soft[i].numpy()
                    wsum[:, x0:x0 + t] += win2d.numpy()
                done += len(chunk)
                yield PredictProgress(done, total, time.perf_counter() - t0)
            if cancelled:
                break
        if cancelled:
            break
        flush(hp - base, base)
        if held is not None:
            whole = _checked_block(plane)
            if vote:
                held = vote_multiscale(held, whole)
            _write_rows(held, 0, zi)
            if edges:
                labels[slice(None) if squeeze else zi] = snap_labels(whole, held)
    return PredictResult(labels, probs, cancelled)


def tta_softmax(net: torch.nn.Module, batch: torch.Tensor, n: int = 1) -> torch.Tensor:
    """Class probabilities of tiles, averaged over ``n`` flips/rotations in y/x.

    Each transform of :func:`~napari_unet_studio.core.refine.dihedral_transforms` is
    applied to the last two axes of the tiles (2D ``(B, C, Y, X)`` or 3D
    ``(B, C, Z, Y, X)``, square in y/x), the network's softmax is transformed back,
    and the ``n`` results are averaged (``n = 1``: a plain forward pass).
    """
    from .refine import dihedral_transforms

    total = None
    for k, flip in dihedral_transforms(n):
        x = torch.rot90(batch, k, dims=(-2, -1)) if k else batch
        if flip:
            x = x.flip(-1)
        p = torch.softmax(net(x).float(), dim=1)
        if flip:
            p = p.flip(-1)
        if k:
            p = torch.rot90(p, -k, dims=(-2, -1))
        total = p if total is None else total + p
    return total / n


def inference_net(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Make a freshly built eval-mode network faster for prediction (modifies ``net``).

    Every convolution followed by a batch norm is folded into one convolution, and on
    the CPU 2D networks use the channels-last memory layout that oneDNN convolutions
    prefer. Same predictions; ``bench/predict_speed.py`` measured 1.1-1.7x faster CPU
    prediction depending on the decoder (docs/benchmarks.md).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if net.training:
        return net
    for seq in [m for m in net.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, norm = seq[i], seq[i + 1]
            if (isinstance(conv, torch.nn.Conv2d | torch.nn.Conv3d)
                    and isinstance(norm, torch.nn.BatchNorm2d | torch.nn.BatchNorm3d)
                    and norm.track_running_stats and norm.running_mean is not None
                    and conv.out_channels == norm.num_features):
                seq[i] = fuse_conv_bn_eval(conv, norm)
                seq[i + 1] = torch.nn.Identity()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    if device.type == "cpu" and convs and all(c.weight.ndim == 4 for c in convs):
        net = net.to(memory_format=torch.channels_last)
    return net


def iter_predict(
    model: TrainedModel,
    image: Any,
    *,
    tile: TileConfig | None = None,
    probabilities: bool = False,
    device: str | torch.device = "auto",
    slices: Any = None,
    stop: threading.Event | None = None,
    threads: int | None = None,
) -> Generator[PredictProgress, None, PredictResult]:
    """Predict class ids (and optionally probabilities) tile by tile.

    Parameters
    ----------
    model : TrainedModel
        A trained model (see :func:`~napari_unet_studio.core.checkpoint.load_model`).
    image : array-like
        numpy or dask array: ``(Y, X)``, ``(Y, X, C)``, ``(Z, Y, X)`` or
        ``(Z, Y, X, C)``; the model's ``in_channels > 1`` means the last axis is channels.
    tile : TileConfig, optional
        Tile size, overlap and tiles per batch (default ``TileConfig()``).
    probabilities : bool
        Also return float32 ``(K, *spatial)`` probabilities.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    slices : int, range, slice, list of int or None
        Stacks only: which slices to predict (``None``: all). An int returns 2D output.
    stop : threading.Event, optional
        Set it to cancel; the result then has ``cancelled=True``.
    threads : int, optional
        Torch CPU threads (see :func:`~napari_unet_studio.core.device.prepare_runtime`).

    Yields
    ------
    PredictProgress
        After every batch of tiles.

    Returns
    -------
    PredictResult
        As the generator's return value (``StopIteration.value``).
    """
    prepare_runtime(threads)
    dev = resolve_device(device)
    net = inference_net(model.build(dev), dev)
    return (yield from iter_predict_module(
        net, model.config, model.normalization, image, tile=tile,
        probabilities=probabilities, device=dev, slices=slices, stop=stop,
    ))


def predict_image(model: TrainedModel, image: Any, **kwargs: Any) -> PredictResult:
    """Non-generator wrapper of :func:`iter_predict` (same keyword arguments)."""
    return run_to_end(iter_predict(model, image, **kwargs))
