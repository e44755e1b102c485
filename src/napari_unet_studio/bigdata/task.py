"""What one worker does for one block (runs in this process, a thread, or a cluster worker).

Workers reopen the input image and the model file from their paths (cached per
process), read the block's tile-aligned region, normalise it with the whole image's
statistics, predict it with the engine's tiler, crop it to the block and write its
chunks into the output store. With objects, instances are found on the region (the
halo gives objects at the border their context), cropped, given ids of the block's own
range and written to a scratch array; the block's border faces and per-object sums go
back to the client for stitching. The class-id array is written last, so a block whose
class-id chunks all exist is finished (resume).
"""

from __future__ import annotations

import itertools
import os
import resource
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .blocks import Block, tile_region

__all__ = ["BlockJob", "run_block", "relabel_block", "SCRATCH"]

SCRATCH = "_scratch/instances"
_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


@dataclass
class BlockJob:
    """Everything a worker needs (small and picklable; arrays stay in the stores)."""

    image: str
    level: int
    model: str
    out: str
    tile: dict
    lo: np.ndarray          # (S, C) offsets of the whole image's normalisation
    scale: np.ndarray       # (S, C)
    probabilities: bool = False
    objects: dict | None = None
    cap: int = 1 << 20
    device: str = "cpu"
    threads: int | None = None
    resume: bool = True
    axes: str = "yx"        # axes of the stored label arrays
    prob_axes: str = "cyx"  # axes of the stored probabilities
    run: str = ""           # one id per run: the stores are reopened for each run
    stack_axis: str | None = None   # "z"/"t" for stacks: objects are then 3D

    @property
    def stack(self) -> bool:
        return self.stack_axis is not None


def _model(path: str, device: str, threads: int | None):
    from ..core.checkpoint import load_model
    from ..core.device import prepare_runtime, resolve_device
    from ..core.infer import inference_net

    key = ("model", os.path.abspath(path), os.path.getmtime(path), device)
    with _LOCK:
        if key not in _CACHE:
            prepare_runtime(threads)
            model = load_model(path)
            dev = resolve_device(device)
            _CACHE[key] = (model, inference_net(model.build(dev), dev), dev)
        return _CACHE[key]


def _source(job: BlockJob):
    from ..io.zarr_io import open_image, working_array

    key = ("src", job.image, job.level, job.run)
    with _LOCK:
        if key not in _CACHE:
            src = open_image(job.image, job.level)
            c = dict(zip(src.axes, src.shape)).get("c", 1)
            work, _ = working_array(src, c)
            _CACHE[key] = (src, work)
        return _CACHE[key]


def _store(job: BlockJob):
    import zarr

    from ..io.zarr_io import PredictionStore

    key = ("out", os.path.abspath(job.out), job.run)
    with _LOCK:
        if key not in _CACHE:
            root = zarr.open_group(job.out, mode="r+")
            names = ["0", "labels/classes/0"]
            names += ["probabilities/0"] if job.probabilities else []
            arrays = {k: root[k] for k in names}
            if job.objects:
                arrays[SCRATCH] = root[_ids_source(root)]
            _CACHE[key] = PredictionStore(job.out, job.axes, job.stack_axis, arrays,
                                          job.prob_axes)
        return _CACHE[key]


def _read(lazy: Any) -> np.ndarray:
    """Read a dask region here, in this thread.

    Inside a ``dask.distributed`` task, computing a dask array would go through the
    cluster and *secede* from the worker's thread pool, letting the worker start its next
    block at the same time (two blocks in memory, and their timings mixed up).
    """
    return np.asarray(lazy.compute(scheduler="synchronous"))


def _ids_source(root: Any) -> str:
    """Where the block ids are: the scratch array, or (a finished run) the final ids."""
    return SCRATCH if "_scratch" in root else "labels/instances/0"


def _done(arr: Any, store, b: Block) -> bool:
    from ..io.zarr_io import chunk_written

    sel = store.index(slice(*b.s), slice(*b.y), slice(*b.x))
    ranges = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(sel, arr.chunks)]
    return all(chunk_written(arr, idx) for idx in itertools.product(*ranges))


def _halo(ids_r: np.ndarray, crop: tuple[slice, slice], stack: bool) -> dict:
    """The region's ids on the one-pixel strips just outside the block, per face axis.

    ``ids_r`` ``(S, RY, RX)`` holds the block's ids (0 for objects not in the block).
    The neighbour labels those same pixels as its own first row/column, so matching
    them pairs the two labellings of the same pixels (volumes: Y and X faces only).
    """
    cy, cx = crop
    out: dict[int, tuple] = {}
    for axis, (sl, n) in enumerate([(cy, ids_r.shape[1]), (cx, ids_r.shape[2])], start=1):
        def strip(i: int, axis: int = axis) -> np.ndarray:
            sel = [slice(None), cy, cx]
            sel[axis] = i
            return ids_r[tuple(sel)].copy()

        before = strip(sl.start - 1) if sl.start > 0 else None
        after = strip(sl.stop) if sl.stop < n else None
        out[axis if stack else axis - 1] = (
            before if (before is None or stack) else before[0],
            after if (after is None or stack) else after[0])
    return out


def _halo_path(out: str, linear: int) -> str:
    return os.path.join(out, "_scratch", "strips", f"{linear}.npz")


def _save_halo(out: str, linear: int, halo: dict) -> None:
    """Keep the strips next to the scratch ids (local stores) so a resumed run has them."""
    path = _halo_path(out, linear)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        arrays = {f"{w}{d}": a for d, pair in halo.items()
                  for w, a in zip(("before", "after"), pair) if a is not None}
        np.savez(path + ".tmp.npz", **arrays)
        os.replace(path + ".tmp.npz", path)
    except OSError:  # not a local store: a resumed run falls back to touching faces
        pass


def _load_halo(out: str, linear: int) -> dict | None:
    path = _halo_path(out, linear)
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        keys = set(z.files)
        axes = sorted({int(k[-1]) for k in keys})
        return {d: tuple(z[f"{w}{d}"] if f"{w}{d}" in keys else None
                         for w in ("before", "after")) for d in axes}


def _faces(inst: np.ndarray) -> dict:
    """First and last slice of the block along each working axis (S only for volumes)."""
    out = {}
    for d in range(inst.ndim):
        out[d] = (np.take(inst, 0, axis=d).copy(), np.take(inst, -1, axis=d).copy())
    return out


def _expand(arr: np.ndarray, store, channels: bool = False) -> np.ndarray:
    """Working ``(S, Y, X)`` (or ``(K, S, Y, X)``) block -> the stored axes' order and shape."""
    axes = store.prob_axes if channels else store.axes
    if channels:
        arr = np.moveaxis(arr, 0, -1)  # (K, S, Y, X) -> (S, Y, X, K)
    if not store.stack:
        arr = arr[0]
    src_axes = ([store.stack] if store.stack else []) + ["y", "x"] + (["c"] if channels else [])
    for a in axes:
        if a not in src_axes:
            arr = arr[..., None]
            src_axes.append(a)
    return np.transpose(arr, [src_axes.index(a) for a in axes])


def run_block(job: BlockJob, b: Block) -> dict:
    """Predict (and label objects in) one block; returns counts, faces and object sums."""
    from ..core.infer import iter_predict_module
    from ..core.progress import run_to_end
    from ..objects.instances import ObjectSettings, find_instances, partial_measurements

    t0 = time.perf_counter()
    cpu0, tcpu0 = time.process_time(), time.thread_time()
    started = time.time()
    src, work = _source(job)
    model, net, dev = _model(job.model, job.device, job.threads)
    store = _store(job)
    arr0 = store.arrays["0"]
    s0, s1 = b.s
    ny, nx = work.shape[1], work.shape[2]
    from ..core.config import TileConfig
    from .blocks import tile_geometry

    tc = TileConfig(**job.tile)
    t, ov = tile_geometry(tc.tile, tc.overlap, model.config.depth)
    # objects need context around the block: a halo of whole tiles of the image's grid
    halo = int(job.objects.get("halo", 0)) if job.objects else 0
    ry = tile_region(ny, max(0, b.y[0] - halo), min(ny, b.y[1] + halo), t, ov)
    rx = tile_region(nx, max(0, b.x[0] - halo), min(nx, b.x[1] + halo), t, ov)
    crop = (slice(b.y[0] - ry[0], b.y[1] - ry[0]), slice(b.x[0] - rx[0], b.x[1] - rx[0]))
    result: dict[str, Any] = {"block": b, "skipped": False}
    raw = strips = None
    if job.resume and _done(arr0, store, b):
        result["skipped"] = True
        if not job.objects:
            return result
        inst = np.asarray(store.arrays[SCRATCH][store.index(slice(s0, s1), slice(*b.y),
                                                                slice(*b.x))])
        inst = inst.reshape(s1 - s0, b.y[1] - b.y[0], b.x[1] - b.x[0])
        raw = _read(work[s0:s1, b.y[0]:b.y[1], b.x[0]:b.x[1]])
        cls_map = np.asarray(arr0[store.index(slice(s0, s1), slice(*b.y), slice(*b.x))])
        cls_map = cls_map.reshape(inst.shape)
        ids, first = np.unique(inst, return_index=True)
        result["classes"] = {int(i): int(cls_map.ravel()[f]) for i, f in zip(ids, first) if i}
    else:
        tr = time.perf_counter()
        region_raw = _read(work[s0:s1, ry[0]:ry[1], rx[0]:rx[1]])
        result["read_seconds"] = time.perf_counter() - tr
        c = region_raw.shape[-1]
        # the raw region and the whole image's statistics: the tiler normalises each band
        # exactly as the in-memory prediction does (no float copy of the region)
        region = region_raw[..., 0] if c == 1 else region_raw
        stats = (job.lo[s0:s1], job.scale[s0:s1])
        if not job.stack:
            region, stats = region[0], (job.lo[s0], job.scale[s0])
        tp = time.perf_counter()
        res = run_to_end(iter_predict_module(
            net, model.config, {"method": "none"}, region, tile=tc,
            probabilities=job.probabilities, device=dev, stats=stats))
        result["predict_seconds"] = time.perf_counter() - tp
        tw = time.perf_counter()
        labels = res.labels if job.stack else res.labels[None]
        labels_b = labels[(slice(None), *crop)]
        if job.probabilities:
            p = res.probabilities if job.stack else res.probabilities[:, None]
            store.arrays["probabilities/0"][store.index(slice(s0, s1), slice(*b.y), slice(*b.x),
                                                        channels=True)] = \
                _expand(p[(slice(None), slice(None), *crop)], store, channels=True)
        raw = region_raw[(slice(None), *crop)]
        inst = None
        if job.objects:
            settings = ObjectSettings(**job.objects)
            lab_r = labels if job.stack else labels[0]
            inst_r, cls = find_instances(lab_r, settings, model.config.num_classes)
            inst_r = inst_r if job.stack else inst_r[None]
            inst = inst_r[(slice(None), *crop)]
            present = np.unique(inst)
            present = present[present > 0]
            if len(present) >= job.cap:
                raise RuntimeError("Too many objects in one block; use a smaller --block.")
            lut = np.zeros(int(inst_r.max()) + 1, np.int64)
            lut[present] = b.linear * job.cap + np.arange(1, len(present) + 1)
            result["classes"] = {int(lut[i]): int(cls[i - 1]) for i in present}
            inst = lut[inst]
            strips = _halo(lut[inst_r], crop, job.stack)
            _save_halo(job.out, b.linear, strips)
            store.arrays[SCRATCH][store.index(slice(s0, s1), slice(*b.y), slice(*b.x))] = \
                _expand(inst.astype(np.uint32), store)
        lab_out = _expand(labels_b, store)
        sel = store.index(slice(s0, s1), slice(*b.y), slice(*b.x))
        store.arrays["labels/classes/0"][sel] = lab_out
        arr0[sel] = lab_out  # last: its chunks mark the block as done
        result["output_seconds"] = time.perf_counter() - tw  # objects + writes
        result["class_counts"] = np.bincount(labels_b.ravel(),
                                             minlength=model.config.num_classes + 1)
    if job.objects:
        inst = np.asarray(inst, np.int64)
        view = inst if job.stack else inst[0]
        rawv = raw if job.stack else raw[0]
        offset = (s0, b.y[0], b.x[0]) if job.stack else (b.y[0], b.x[0])
        result["faces"] = _faces(view)
        result["halo"] = strips if strips is not None else _load_halo(job.out, b.linear)
        result["partials"] = partial_measurements(
            view, result["classes"], rawv.astype(np.float64), offset)
    result["seconds"] = time.perf_counter() - t0
    result["started"], result["pid"] = started, os.getpid()
    result["cpu_seconds"] = time.process_time() - cpu0  # this process's CPU time
    result["thread_cpu_seconds"] = time.thread_time() - tcpu0  # this block's thread only
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def relabel_block(out: str, axes: str, stack: str | None, b: Block, relabel) -> int:
    """Write the final instance ids of one block (scratch ids mapped by ``relabel``)."""
    import zarr

    from ..io.zarr_io import PredictionStore

    root = zarr.open_group(out, mode="r+")
    store = PredictionStore(out, axes, stack, {})
    sel = store.index(slice(*b.s), slice(*b.y), slice(*b.x))
    tmp = np.asarray(root[_ids_source(root)][sel])
    root["labels/instances/0"][sel] = relabel(tmp)
    return int(np.count_nonzero(tmp))
