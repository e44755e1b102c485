"""Helpers for the big-data and objects tests: disc images, OME-Zarr inputs."""

from __future__ import annotations

import numpy as np


def disc_image(shape: tuple[int, int], n: int, seed: int, radius: int = 9) -> np.ndarray:
    """uint16 noise with ``n`` bright discs at random places."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = rng.normal(100, 10, shape)
    for _ in range(n):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        img += 80 * (((yy - cy) ** 2 + (xx - cx) ** 2) < radius ** 2)
    return img.astype(np.uint16)


def write_ome(path, image, axes="yx", chunks=(64, 64), version="0.5", scale=None):
    """Write ``image`` as a two-level OME-Zarr with ``ome-zarr``."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    g = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    kw = {"scale": scale} if scale else {}
    write_image(image, g, axes=axes, fmt=fmt, storage_options={"chunks": chunks},
                scale_factors=[2], **kw)
    return path
