"""Predict an image bigger than memory block by block into an OME-Zarr store.

The client (this process) opens the image lazily, computes the normalisation of the
whole image (the same subsampled percentiles as the in-memory prediction), creates the
output store and sends one small :class:`~.task.BlockJob` per block to the scheduler:

- default: a thread pool in this process (one thread: torch uses all cores);
- ``workers=N``: a ``dask.distributed`` ``LocalCluster`` of N worker processes, one
  block at a time each (memory per worker: one block's region, not the image);
- ``scheduler="tcp://host:8786"``: an existing ``dask.distributed`` cluster whose
  workers see the same files (they open the image and the model file themselves).

Each block is predicted with the engine's tiler on its tile-aligned region and written
chunk by chunk; a block whose class-id chunks exist already is skipped (resume). With
objects, a second, cheap pass renumbers the block-local instance ids after stitching
them across block borders, and the measurements of the pieces are added up.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import Block, plan_blocks
from .task import BlockJob, relabel_block, run_block

__all__ = ["BlockProgress", "StoreResult", "iter_predict_store", "predict_store",
           "image_statistics"]


@dataclass
class BlockProgress:
    """Blocks finished (``done`` of ``total``, ``skipped`` of them already written)."""

    phase: str
    done: int
    total: int
    skipped: int
    elapsed: float


@dataclass
class StoreResult:
    """What a block-wise prediction did.

    Attributes
    ----------
    out : str
        The OME-Zarr store written.
    blocks, skipped : int
        Blocks in the plan, and blocks found already written (resume).
    seconds : float
        Wall clock of the whole run.
    class_counts : numpy.ndarray
        Pixels per class (index k = class k; 0 unused) over the blocks predicted now.
    objects : int or None
        Number of instances (after stitching), if asked.
    rows : list of dict
        The measurements table (if objects were asked).
    block_seconds, max_rss_mb : list of float
        Seconds per predicted block and the peak resident memory of the process that
        ran it (per worker process with a cluster).
    cancelled : bool
        The stop event ended the run early (finished blocks stay written).
    stats_seconds, start_seconds : float
        Reading the whole image's normalisation statistics; starting the scheduler.
    phase_seconds : list of dict
        Per predicted block: ``read`` (the region), ``predict`` (the tiler) and
        ``output`` (objects and writing the chunks) seconds.
    block_cpu_seconds, block_thread_cpu_seconds : list of float
        Per predicted block: CPU seconds of the whole process that ran it while it ran
        (a cluster worker's own threads included), and of the block's thread alone.
    """

    out: str
    blocks: int
    skipped: int
    seconds: float
    class_counts: np.ndarray
    objects: int | None = None
    rows: list = field(default_factory=list)
    block_seconds: list = field(default_factory=list)
    max_rss_mb: list = field(default_factory=list)
    cancelled: bool = False
    block_starts: list = field(default_factory=list)
    block_cpu_seconds: list = field(default_factory=list)
    stats_seconds: float = 0.0
    start_seconds: float = 0.0
    phase_seconds: list = field(default_factory=list)
    block_thread_cpu_seconds: list = field(default_factory=list)


class _Presampled:
    """A plane whose regular-grid subsample was read already (``plane_stats`` reads it)."""

    def __init__(self, shape: tuple[int, ...], step: int, sub: np.ndarray) -> None:
        self.shape, self._step, self._sub = shape, step, sub

    def __getitem__(self, key: Any) -> np.ndarray:
        want = (slice(None, None, self._step),) * 2
        if key != want:
            raise IndexError("only the statistics subsample is available")
        return self._sub


def image_statistics(work: Any, normalization: dict, channels: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Normalisation offsets and scales ``(S, C)`` of every slice of a ``(S, Y, X, C)`` image.

    The same numbers as the in-memory prediction (``core.data.plane_stats`` on each
    slice); the subsamples of all slices are read in one pass over the chunks.
    """
    from ..core.normalize import _STATS_PIXELS, plane_stats

    s, ny, nx = (int(v) for v in work.shape[:3])
    step = max(1, math.ceil(math.sqrt(ny * nx / _STATS_PIXELS)))
    sub = np.asarray(work[:, ::step, ::step])
    lo = np.zeros((s, channels))
    scale = np.ones((s, channels))
    for i in range(s):
        plane = sub[i, ..., 0] if channels == 1 else sub[i]
        shape = (ny, nx) if channels == 1 else (ny, nx, channels)
        lo[i], scale[i] = plane_stats(_Presampled(shape, step, plane), normalization, channels)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(scale))):
        from ..core.errors import DataError

        raise DataError("The image contains NaN or infinite values; replace them first.")
    return lo, scale


class _Local:
    """The default scheduler: a thread pool in this process."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def as_completed(self, futures):
        from concurrent.futures import as_completed

        return as_completed(futures)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Distributed:
    """A ``dask.distributed`` client (a new LocalCluster, or an existing scheduler)."""

    def __init__(self, workers: int | None, scheduler: str | None,
                 memory_limit: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError("--workers and --scheduler need dask.distributed: "
                              "pip install 'napari-unet-studio[cluster]'") from exc

        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            from ..core.malloc import child_environ

            # the workers run torch in task threads: one malloc arena (core/malloc.py)
            self.cluster = LocalCluster(n_workers=int(workers or 1), threads_per_worker=1,
                                        processes=True, dashboard_address=None,
                                        memory_limit=memory_limit or "auto", env=child_environ({}))
            self.client = Client(self.cluster)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def as_completed(self, futures):
        from distributed import as_completed

        return as_completed(futures)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _signature(model_path: str, src, tile: dict, probabilities: bool, objects: dict | None,
               block: int) -> dict:
    sig = {"model": os.path.abspath(model_path), "model_mtime": os.path.getmtime(model_path),
           "image": os.path.abspath(src.path), "level": src.level, "tile": tile,
           "probabilities": bool(probabilities), "objects": objects, "block": int(block)}
    return json.loads(json.dumps(sig))


def _stitch(results: list[dict], blocks: list[Block], stack: bool):
    """Merge the ids of objects cut by block borders; returns the relabelling."""
    from ..objects.stitch import build_relabel, face_pairs

    by_index = {r["block"].index: r for r in results}
    classes: dict[int, int] = {}
    for r in results:
        classes.update(r["classes"])
    pairs: list[tuple[int, int]] = []
    # working axes of the faces: volumes (S, Y, X); 2D images (Y, X)
    dims = [(0, 0), (1, 1), (2, 2)] if stack else [(1, 0), (2, 1)]
    for r in results:
        idx = r["block"].index
        for grid_axis, face_axis in dims:
            nxt = list(idx)
            nxt[grid_axis] += 1
            other = by_index.get(tuple(nxt))
            if other is None:
                continue
            last = r["faces"][face_axis][1]        # last slice of this block
            first = other["faces"][face_axis][0]   # first slice of the next block
            after = (r.get("halo") or {}).get(face_axis, (None, None))[1]
            before = (other.get("halo") or {}).get(face_axis, (None, None))[0]
            if after is None and before is None:   # no halo (z faces): touching pixels
                pairs += face_pairs(last, first, classes)
                continue
            # the same pixels labelled by both blocks (each block labels with a halo)
            if after is not None:
                pairs += face_pairs(after, first, classes)
            if before is not None:
                pairs += face_pairs(before, last, classes)
    return build_relabel([np.fromiter(classes, np.int64, len(classes))], pairs), classes


def iter_predict_store(
    model: str | os.PathLike,
    image: str | os.PathLike,
    out: str | os.PathLike,
    *,
    level: int = 0,
    tile: Any = None,
    probabilities: bool = False,
    objects: Any = None,
    block: int = 4096,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    device: str = "auto",
    resume: bool = True,
    ome_version: str | None = None,
    stop: threading.Event | None = None,
) -> Generator[BlockProgress, None, StoreResult]:
    """Predict ``image`` (OME-Zarr, zarr or TIFF) into the OME-Zarr store ``out``, block by block.

    Parameters
    ----------
    model : path
        Model file (workers load it themselves).
    image : path
        Input image; ``level`` picks a multiscale level.
    out : path
        Output ``*.zarr`` (see :mod:`napari_unet_studio.io.zarr_io` for its layout).
    tile : TileConfig, optional
        Tiling inside each block (the engine's tiler).
    probabilities : bool
        Also store float32 class probabilities.
    objects : ObjectSettings, True or None
        Also find instances (stitched across blocks) and measure them.
    block : int
        Block edge in Y and X in pixels (rounded to whole chunks; default 4096).
    workers, scheduler
        ``dask.distributed``: a LocalCluster of ``workers`` processes, or the address of
        an existing scheduler. Neither: a thread in this process.
    threads : int, optional
        Torch threads per worker (default: all cores locally, 1 per cluster worker).
    resume : bool
        Keep an existing store made by the same settings and skip its finished blocks.
    stop : threading.Event, optional
        Set it to stop after the blocks in progress (finished ones stay written).

    Yields
    ------
    BlockProgress
        After every block (phase ``"predict"``, then ``"objects"``).

    Returns
    -------
    StoreResult
    """
    from ..core.checkpoint import load_model
    from ..core.config import TileConfig
    from ..io.zarr_io import _out_axes, create_prediction_store, open_image, working_array
    from ..objects.instances import ObjectSettings, combine_partials, table

    t0 = time.perf_counter()
    model_path = str(model)
    trained = load_model(model_path)
    cfg = trained.config
    if int(getattr(cfg, "dims", 2)) != 2:
        from ..core.errors import DataError

        raise DataError("Block-wise prediction (a .zarr output) supports 2D models, also on "
                        "stacks and volumes (slice by slice); predict with this 3D model "
                        "into a TIFF (in memory) instead.")
    tile = tile or TileConfig()
    if objects is True:
        objects = ObjectSettings()
    obj = None if objects is None or objects is False else {
        "classes": None if objects.classes is None else list(objects.classes),
        "split": objects.split, "min_distance": objects.min_distance,
        "min_size": objects.min_size, "halo": objects.halo}
    src = open_image(image, level)
    work, stack = working_array(src, int(cfg.in_channels))
    t_stats = time.perf_counter()
    lo, scale = image_statistics(work, trained.normalization, int(cfg.in_channels))
    t_stats = time.perf_counter() - t_stats
    store = create_prediction_store(
        out, src, int(cfg.num_classes), class_names=list(trained.class_names),
        probabilities=probabilities, instances=obj is not None, resume=resume,
        ome_version=ome_version,
        signature=_signature(model_path, src, tile.to_dict(), probabilities, obj, block))
    chunk = dict(zip(src.axes, src.chunks))
    wchunks = (int(chunk.get(stack, 1)) if stack else 1, int(chunk["y"]), int(chunk["x"]))
    blocks = plan_blocks(tuple(int(v) for v in work.shape[:3]), wchunks, block)
    cluster = workers is not None or scheduler is not None
    job = BlockJob(str(src.path), src.level, model_path, str(out), tile.to_dict(), lo, scale,
                   probabilities=probabilities,
                   objects=dict(obj, classes=tuple(obj["classes"]) if obj["classes"] else None)
                   if obj else None,
                   cap=max(1, (2 ** 32 - 1) // max(1, len(blocks))) - 1,
                   device=device, threads=threads if threads or not cluster else 1,
                   resume=resume, axes=store.axes, stack_axis=stack,
                   prob_axes=_out_axes(src, True), run=uuid.uuid4().hex)
    t_start = time.perf_counter()
    runner = _Distributed(workers, scheduler) if cluster else _Local(1)
    counts = np.zeros(int(cfg.num_classes) + 1, np.int64)
    results: list[dict] = []
    skipped = 0
    res = StoreResult(str(out), len(blocks), 0, 0.0, counts, stats_seconds=t_stats,
                      start_seconds=time.perf_counter() - t_start)
    try:
        futures = [runner.submit(run_block, job, b) for b in blocks]
        for fut in runner.as_completed(futures):
            r = fut.result()
            results.append(r)
            skipped += int(r["skipped"])
            if not r["skipped"]:
                counts += r["class_counts"]
                res.block_seconds.append(r["seconds"])
                res.block_starts.append((r["pid"], r["started"]))
                res.block_cpu_seconds.append(r["cpu_seconds"])
                res.block_thread_cpu_seconds.append(r["thread_cpu_seconds"])
                res.max_rss_mb.append(r["max_rss_mb"])
                res.phase_seconds.append({k: r[f"{k}_seconds"]
                                          for k in ("read", "predict", "output")})
            yield BlockProgress("predict", len(results), len(blocks), skipped,
                                time.perf_counter() - t0)
            if stop is not None and stop.is_set():
                for f in futures:
                    f.cancel()
                res.cancelled = True
                break
        if obj is not None and not res.cancelled:
            relabel, _ = _stitch(results, blocks, stack is not None)
            if cluster and hasattr(runner, "client"):
                relabel = runner.client.scatter(relabel, broadcast=True)
            futs = [runner.submit(relabel_block, str(out), store.axes, stack, b, relabel)
                    for b in blocks]
            for i, fut in enumerate(runner.as_completed(futs), start=1):
                fut.result()
                yield BlockProgress("objects", i, len(blocks), 0, time.perf_counter() - t0)
            if hasattr(relabel, "result"):
                relabel = relabel.result()
            sums = combine_partials([r["partials"] for r in results], relabel)
            res.objects = relabel.count
            scale_yx = dict(zip(src.axes, src.scale))
            sc = [scale_yx.get(a, 1.0) for a in ([stack] if stack else []) + ["y", "x"]]
            res.rows = table(sums, list(trained.class_names), sc)
            import zarr

            root = zarr.open_group(str(out), mode="r+")
            if "_scratch" in root:
                del root["_scratch"]
    finally:
        runner.close()
    res.skipped = skipped
    res.seconds = time.perf_counter() - t0
    return res


def predict_store(*args: Any, progress: bool = False, **kwargs: Any) -> StoreResult:
    """Non-generator :func:`iter_predict_store` (same arguments), with a tqdm bar if asked."""
    import sys

    gen = iter_predict_store(*args, **kwargs)
    bar = None
    phase = None
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as fin:
                return fin.value
            if progress:
                from tqdm import tqdm

                if p.phase != phase:
                    if bar is not None:
                        bar.close()
                    phase = p.phase
                    bar = tqdm(total=p.total, unit="block", file=sys.stderr,
                               desc="predicting" if phase == "predict" else "objects")
                bar.update(p.done - bar.n)
                if p.skipped:
                    bar.set_postfix(skipped=p.skipped, refresh=False)
    finally:
        if bar is not None:
            bar.close()
