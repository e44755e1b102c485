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
