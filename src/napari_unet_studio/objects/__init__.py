"""Objects from class maps: instances (split touching objects), stitching, measurements.

Needs ``scipy`` and ``scikit-image``; torch-free (usable in the napari process).
"""

from __future__ import annotations

from .instances import (
    ObjectSettings,
    combine_partials,
    find_instances,
    measure_objects,
    partial_measurements,
    table,
    write_csv,
)
from .stitch import Relabel, build_relabel, face_pairs

__all__ = [
    "ObjectSettings",
    "Relabel",
    "build_relabel",
    "combine_partials",
    "face_pairs",
    "find_instances",
    "measure_objects",
    "partial_measurements",
    "table",
    "write_csv",
]
