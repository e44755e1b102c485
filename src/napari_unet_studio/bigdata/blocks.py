"""Block geometry: blocks of whole chunks, and the tile-aligned region each block predicts.

A block is a group of whole output chunks (so blocks never write the same chunk). To
predict it, the engine's tiler (:func:`core.infer.iter_predict_module`) runs on a region
that holds exactly the tiles of the *whole image's* tile grid that touch the block: the
same tiles, the same raised-cosine weights and the same summation order as the
in-memory prediction, so the cropped result is the in-memory result (no seams at block
borders, and no approximation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.infer import tile_positions

__all__ = ["Block", "plan_blocks", "tile_region", "tile_geometry"]


@dataclass(frozen=True)
class Block:
    """One block: its index in the block grid and its ranges in ``(S, Y, X)``."""

    index: tuple[int, int, int]
    linear: int
    s: tuple[int, int]
    y: tuple[int, int]
    x: tuple[int, int]


def tile_geometry(tile: int, overlap: float, depth: int) -> tuple[int, int]:
    """Tile edge and overlap in pixels exactly as the engine's tiler computes them."""
    t = max(int(tile), 2 ** int(depth))
    return t, int(round(float(overlap) * t))


def tile_region(size: int, lo: int, hi: int, t: int, ov: int) -> tuple[int, int]:
    """Range ``[r0, r1)`` covering every tile of the full axis's grid that touches ``[lo, hi)``.

    The tiler run on ``[r0, r1)`` places its tiles at exactly those positions
    (``tile_positions`` of the region is the matching subset of the whole axis's).
    """
    if size <= t:
        return 0, size
    pos = [p for p in tile_positions(size, t, ov) if p < hi and p + t > lo]
    return pos[0], pos[-1] + t


def _edge(chunk: int, target: int, size: int) -> int:
    """A multiple of ``chunk`` near ``target`` (at least one chunk, at most the axis)."""
    n = max(1, round(target / chunk))
    return min(size, n * chunk)


def plan_blocks(shape: tuple[int, int, int], chunks: tuple[int, int, int],
                block: int = 4096, block_s: int | None = None) -> list[Block]:
    """Blocks of whole chunks over a ``(S, Y, X)`` working shape.

    Parameters
    ----------
    shape, chunks : (S, Y, X)
        Working shape and the output chunks in that order.
    block : int
        Target block edge in Y and X (rounded to whole chunks).
    block_s : int, optional
        Slices per block (default: the chunk along S).
    """
    es = _edge(chunks[0], block_s or chunks[0], shape[0])
    ey = _edge(chunks[1], block, shape[1])
    ex = _edge(chunks[2], block, shape[2])
    grid = [math.ceil(n / e) for n, e in zip(shape, (es, ey, ex))]
    out = []
    for i in range(grid[0]):
        for j in range(grid[1]):
            for k in range(grid[2]):
                out.append(Block((i, j, k), len(out),
                                 (i * es, min(shape[0], (i + 1) * es)),
                                 (j * ey, min(shape[1], (j + 1) * ey)),
                                 (k * ex, min(shape[2], (k + 1) * ex))))
    return out
