"""File reading shared by the sub-commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_tiff(path: str, lazy: bool = False) -> Any:
    """Read a TIFF; with ``lazy``, memory-map it when possible (uncompressed files)."""
    import tifffile

    if not Path(path).is_file():
        raise FileNotFoundError(f"No such file: '{path}'")
    if lazy:
        try:
            return tifffile.memmap(path, mode="r")
        except (ValueError, TypeError, OSError):  # compressed or tiled: read it all
            pass
    return tifffile.imread(path)


def tiff_spacing(path: str) -> tuple[float, float, float] | None:
    """Voxel size ``(Z, Y, X)`` from a TIFF's OME or ImageJ metadata, else ``None``.

    OME-TIFF: ``PhysicalSizeZ/Y/X`` of the first image. ImageJ: the ``spacing`` entry
    (z) and the X/YResolution tags (pixels per unit, so the size is their inverse).
    Missing or unusable values give ``None`` (the volume is treated as isotropic).
    """
    import re

    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if tif.ome_metadata:
                sizes = []
                for axis in "ZYX":
                    m = re.search(rf'PhysicalSize{axis}="([0-9.eE+-]+)"', tif.ome_metadata)
                    sizes.append(float(m.group(1)) if m else None)
                if all(s and s > 0 for s in sizes):
                    return sizes[0], sizes[1], sizes[2]
            ij = tif.imagej_metadata or {}
            z = ij.get("spacing")
            page = tif.pages[0]
            res = []
            for tag in ("YResolution", "XResolution"):
                value = page.tags.get(tag)
                num, den = value.value if value is not None else (1, 1)
                res.append(den / num if num else None)
            if z and all(r and r > 0 for r in res) and float(z) > 0:
                return float(z), float(res[0]), float(res[1])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return None
