"""3D tiled prediction of a volume with a 3D model, blended, memory bounded by the tile.

The volume is read one band of ``tz`` slices at a time (numpy, dask and memory-mapped
arrays alike), cut into ``(tz, t, t)`` tiles that overlap by ``overlap`` on each axis,
and every tile's class probabilities are weighted by a separable raised-cosine window
(:func:`~.infer.blend_window` on each axis) and accumulated. Blended probabilities are
kept only for the band of slices still being written (``K x tz x Y x X`` floats), so
memory depends on the tile depth and the plane size, not on the number of slices; the
full ``K x Z x Y x X`` probabilities are allocated only when asked for.

The tile depth follows the voxel spacing the model was trained with: about a cube in
physical units, at least the model's minimum size in z.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from .anisotropy import pool_factors, total_factors
from .config import ModelConfig, TileConfig
from .errors import DataError
from .infer import (
    PredictProgress,
    PredictResult,
    _checked_block,
    _layout,
    _net_device,
    _select_slices,
    _shift_band,
    blend_window,
    tile_positions,
    tta_softmax,
)
from .volume import normalize_block, volume_stats

__all__ = ["iter_predict_volume", "volume_tile", "MAX_TILE_3D"]

MAX_TILE_3D = 128  # y/x tile edge cap for 3D tiles (a 256^2 x 256 tile is ~1 GB of features)


def volume_tile(config: ModelConfig, tile: TileConfig, spatial: tuple[int, int, int]
                ) -> tuple[int, int, int]:
    """Tile shape ``(tz, ty, tx)`` for a volume of shape ``spatial``.

    ``ty = tx = min(tile.tile, MAX_TILE_3D)`` (or the plane, if smaller), ``tz`` about the
    same physical length; every edge a multiple of the model's per-axis downsampling.
    """
    factors = total_factors(pool_factors(config.spacing, int(config.depth), 3), 3)
    edge = min(int(tile.tile), MAX_TILE_3D)
    sp = config.spacing
    want = [edge * (sp[1] / sp[0]) if sp else edge, edge, edge]
    out = []
    for n, w, f in zip(spatial, want, factors):
        t = min(int(math.ceil(w)), n)
        out.append(max(f, int(math.ceil(t / f)) * f))
    return out[0], out[1], out[2]


def _window(shape: tuple[int, int, int], overlaps: tuple[int, int, int]) -> np.ndarray:
    wz, wy, wx = (blend_window(t, o) for t, o in zip(shape, overlaps))
    return (wz[:, None, None] * wy[None, :, None] * wx[None, None, :]).astype(np.float32)


def _pad_end3(arr: np.ndarray, target: tuple[int, int, int]) -> np.ndarray:
    pads = [(0, 0)] + [(0, max(0, t - s)) for s, t in zip(arr.shape[1:], target)]
    if not any(p[1] for p in pads):
        return arr
    mode = "reflect" if min(arr.shape[1:]) > 1 and all(
        p[1] < s for p, s in zip(pads[1:], arr.shape[1:])) else "edge"
    return np.pad(arr, pads, mode=mode)


def iter_predict_volume(
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
) -> Generator[PredictProgress, None, PredictResult]:
    """Tiled 3D prediction (see the module docstring); same contract as
    :func:`~.infer.iter_predict_module`. ``slices`` picks output slices (an int gives
    one 2D slice); only the bands of tiles that cover them are computed."""
    tile = tile or TileConfig()
    device = device if device is not None else _net_device(net)
    k = int(config.num_classes)
    channels = int(config.in_channels)
    spatial, channel_last = _layout(tuple(np.shape(image)), channels)
    if len(spatial) != 3:
        raise DataError(
            f"This is a 3D model: it predicts volumes (Z, Y, X); the image has shape "
            f"{tuple(np.shape(image))}. Use a 2D model for 2D images.")
    nz, h, w = spatial
    zs, squeeze = _select_slices(nz, slices)
    if not zs:
        raise DataError("No slices were selected for prediction.")
    tz, ty, tx = volume_tile(config, tile, spatial)
    ovs = tuple(int(round(float(tile.overlap) * t)) for t in (tz, ty, tx))
    win = _window((tz, ty, tx), ovs)
    win_t = torch.from_numpy(win)
    z_all = tile_positions(nz, tz, ovs[0])
    zmin, zmax = min(zs), max(zs)
    z_pos = [z0 for z0 in z_all if z0 <= zmax and z0 + tz > zmin]
    ys, xs = tile_positions(h, ty, ovs[1]), tile_positions(w, tx, ovs[2])
    hp, wp = max(h, ty), max(w, tx)
    source = image[..., 0] if channel_last and channels == 1 else image
    lo, scale = volume_stats(source, normalization, channels)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(scale))):
        raise DataError("The image contains NaN or infinite values; replace them first.")
    out_index = {z: i for i, z in enumerate(zs)}
    out_shape = (h, w) if squeeze else (len(zs), h, w)
    labels = np.zeros(out_shape, dtype=np.uint8 if k < 256 else np.uint16)
    probs = np.zeros((k, *out_shape), dtype=np.float32) if probabilities else None
    acc = np.zeros((k, tz, hp, wp), np.float32)
    wsum = np.zeros((tz, hp, wp), np.float32)
    base = z_pos[0]
    total = len(z_pos) * len(ys) * len(xs)
    done, cancelled, t0 = 0, False, time.perf_counter()
    from .device import amp_dtype

    autocast = amp_dtype(device)
    batch_n = max(1, int(tile.batch_size) // 2)

    def flush(n_slices: int) -> None:
        for d in range(min(n_slices, nz - base)):
            z = base + d
            if z not in out_index:
                continue
            p = acc[:, d, :h, :w] / wsum[None, d, :h, :w]
            ids = (np.argmax(p, axis=0) + 1).astype(labels.dtype)
            i = out_index[z]
            if squeeze:
                labels[...] = ids
            else:
                labels[i] = ids
            if probs is not None:
                probs[(slice(None),) + (() if squeeze else (i,))] = p

    for z0 in z_pos:
        if z0 > base:
            flush(z0 - base)
            _shift_band(acc, wsum, z0 - base)
            base = z0
        block = _checked_block(source[z0:z0 + tz])
        band = _pad_end3(normalize_block(block, lo, scale), (tz, hp, wp))
        corners = [(y0, x0) for y0 in ys for x0 in xs]
        for b0 in range(0, len(corners), batch_n):
            if stop is not None and stop.is_set():
                cancelled = True
                break
            chunk = corners[b0:b0 + batch_n]
            batch = torch.from_numpy(np.stack(
                [band[:, :, y0:y0 + ty, x0:x0 + tx] for y0, x0 in chunk]))
            with torch.inference_mode():
                batch = batch.to(device)
                with (torch.autocast(device_type=device.type, dtype=autocast)
                      if autocast is not None else contextlib.nullcontext()):
                    soft = tta_softmax(net, batch, int(tile.tta))
                soft = (soft * win_t.to(device)).cpu().numpy()
            for i, (y0, x0) in enumerate(chunk):
                acc[:, :, y0:y0 + ty, x0:x0 + tx] += soft[i]
                wsum[:, y0:y0 + ty, x0:x0 + tx] += win
            done += len(chunk)
            yield PredictProgress(done, total, time.perf_counter() - t0)
        if cancelled:
            break
    if not cancelled:
        flush(tz)
    return PredictResult(labels, probs, cancelled)

