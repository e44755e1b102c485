"""Block-wise prediction of images bigger than memory (OME-Zarr in and out, dask).

``predict_store`` / ``iter_predict_store`` run the engine's tiler per block on the local
threads or on a ``dask.distributed`` cluster; see docs/bigdata.md.
"""

from __future__ import annotations

from .runner import BlockProgress, StoreResult, image_statistics, iter_predict_store, predict_store

__all__ = ["BlockProgress", "StoreResult", "image_statistics", "iter_predict_store",
           "predict_store"]
