"""Readers and writers for large images: OME-Zarr / zarr in, OME-Zarr out (lazy, dask).

Imported only by the features that need ``zarr``, ``ome-zarr`` and ``dask``; nothing in
``core`` imports this package. See docs/bigdata.md.
"""

from __future__ import annotations

from .zarr_io import (
    ImageSource,
    PredictionStore,
    create_prediction_store,
    is_zarr_path,
    open_image,
    read_label_image,
)

__all__ = [
    "ImageSource",
    "PredictionStore",
    "create_prediction_store",
    "is_zarr_path",
    "open_image",
    "read_label_image",
]
