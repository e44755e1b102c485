"""Big-data benchmark: block-wise OME-Zarr prediction vs in-memory tiled prediction.

Steps (each a separate command; the timed ones under ``flock /tmp/bench.lock``)::

    nice -n 19 python bench/bigdata.py make --size 32768     # synthetic OME-Zarr input
    nice -n 19 python bench/bigdata.py model                 # the small model (untimed)
    flock /tmp/bench.lock python bench/bigdata.py inmem --size 8192
    flock /tmp/bench.lock python bench/bigdata.py inmem-parallel --size 8192 --procs 2
    flock /tmp/bench.lock python bench/bigdata.py store --size 32768 --workers 1
    flock /tmp/bench.lock python bench/bigdata.py store --size 32768 --workers 2
    flock /tmp/bench.lock python bench/bigdata.py resume --size 16384 --workers 2

Every run appends one JSON line to ``bench/results/bigdata.jsonl`` with the float32
matmul peak measured at its start, ``os.getloadavg()`` before and after, the wall
clock, pixels per second (and per core), the tiles the engine computed, and the peak
resident memory of every process that predicted blocks.

The input is generated: uint16 noise (mean 100) with bright discs (radius 9), each
1024 x 1024 chunk from its own seed, written as OME-Zarr 0.5 with 1024 x 1024 chunks.
The model is a narrow U-Net (depth 2, width 4, bilinear decoder, no filter stem) trained
for 60 steps on a 128 x 128 disc image, so that a 32768 x 32768 image fits in the 12 minutes a
timed command may take on two shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("BIGDATA_DIR", "/tmp/unet-studio-bigdata"))
RESULTS = HERE / "results" / "bigdata.jsonl"
TILE = {"tile": 256, "overlap": 0.25, "batch_size": 4}


def _chunk(block: np.ndarray, block_info=None) -> np.ndarray:
    info = block_info[None]
    (y0, y1), (x0, x1) = info["array-location"]
    seed = (y0 // 1024) * 100003 + x0 // 1024
    rng = np.random.default_rng(seed)
    h, w = y1 - y0, x1 - x0
    img = rng.integers(85, 116, (h, w)).astype(np.uint16)
    dy, dx = np.mgrid[-8:9, -8:9]
    disc = (dy ** 2 + dx ** 2 < 81).astype(np.uint16) * 80
    pad = np.pad(img, 8)
    for cy, cx in rng.integers(0, [h, w], (int(h * w / 3000), 2)):
        pad[cy:cy + 17, cx:cx + 17] += disc  # a disc of radius 9 centred at (cy, cx)
    return pad[8:-8, 8:-8]


def make(size: int) -> Path:
    """Write the synthetic ``size`` x ``size`` OME-Zarr input (skipped if it exists)."""
    import dask.array as da
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    path = ROOT / f"img{size}.zarr"
    if (path / "0" / "zarr.json").exists() and (path / ".complete").exists():
        return path
    ROOT.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    arr = root.create_array("0", shape=(size, size), chunks=(1024, 1024), dtype="uint16")
    write_multiscales_metadata(root, [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [0.5, 0.5]}]}], fmt=FormatV05(),
        axes=[{"name": "y", "type": "space", "unit": "micrometer"},
              {"name": "x", "type": "space", "unit": "micrometer"}])
    lazy = da.zeros((size, size), dtype=np.uint16, chunks=1024).map_blocks(
        _chunk, dtype=np.uint16)
    da.store(lazy, arr, lock=False, scheduler="threads", num_workers=2)
    (path / ".complete").write_text("ok")
    return path


MODEL_KIND = "narrow"  # --model: "narrow" (the default of these rows) or "default"


def _tag() -> str:
    """Suffix of the output stores of the non-narrow model (they never mix with its)."""
    return "" if MODEL_KIND == "narrow" else f"_{MODEL_KIND}"


def model() -> Path:
    """Train the benchmark's model (untimed; one thread); ``MODEL_KIND`` says which.

    ``narrow``: depth 2, width 4, no filter stem, from random weights -- cheap per tile,
    so the block-wise machinery around the tiles weighs as much as it ever can.
    ``default``: the product's default architecture (``ModelConfig()``, filter stem
    included) from the shipped pretrained start: the model a user trains, and so the
    per-core cost a user sees.
    """
    import napari_unet_studio as nus

    path = ROOT / ("model.pt" if MODEL_KIND == "narrow" else f"model_{MODEL_KIND}.pt")
    if path.exists():
        return path
    ROOT.mkdir(parents=True, exist_ok=True)
    img = _chunk(np.zeros((128, 128)), {None: {"array-location": [(0, 128), (0, 128)]}})
    lab = np.zeros(img.shape, np.uint8)
    lab[::5, ::5] = np.where(img[::5, ::5] > 150, 2, 1)
    # narrow: no filter stem: its fixed filters (sigma up to 16) cost this tiny network 4x
    # per tile (measured 0.70 vs about 2.8 Mpx per CPU second), and what is measured here
    # is the block-wise machinery around the tiles, which the stem does not change
    narrow = {"arch": {"depth": 2, "width": 4, "stem": "none"}, "decoder": "bilinear",
              "start": "scratch"} if MODEL_KIND == "narrow" else {}
    m = nus.train(img, lab, steps=60, seed=0, threads=1, class_names=["background", "disc"],
                  **narrow)
    nus.save_model(m, path)
    return path


def _peak() -> float:
    sys.path.insert(0, str(HERE))
    from realistic import matmul_peak

    return matmul_peak(threads=2)


def _tiles(h: int, w: int, block: int | None) -> int:
    from napari_unet_studio.core.infer import tile_positions

    t, ov = TILE["tile"], round(TILE["overlap"] * TILE["tile"])
    if block is None:
        return len(tile_positions(h, t, ov)) * len(tile_positions(w, t, ov))

    def per_axis(n: int) -> int:
        grid = tile_positions(n, t, ov)
        return sum(len([p for p in grid if p < min(n, lo + block) and p + t > lo])
                   for lo in range(0, n, block))

    return per_axis(h) * per_axis(w)


def _record(row: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def _base(case: str) -> dict:
    return {"case": case, "machine": "AMD EPYC, 2 cores (shared)", "model": MODEL_KIND,
            "matmul_peak_gflops": _peak(), "load_before": os.getloadavg(),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _phases(res) -> dict:
    """Seconds per phase summed over the predicted blocks (read, predict, output)."""
    return {k: round(sum(p[k] for p in res.phase_seconds), 2)
            for k in ("read", "predict", "output")}


def inmem(size: int, rounds: int = 2, record: bool = True) -> None:
    """In-memory tiled prediction (numpy in, numpy out) on one torch thread, then the
    same image block-wise in this process on one thread: as one block (the same tiles:
    what the store itself costs) and in 4096 blocks (block borders): identical?

    An untimed in-memory prediction of a 1024 x 1024 crop warms torch and the model
    first. The three runs are repeated ``rounds`` times in turn; the first round still
    pays the first calls of the store path (zarr writing, the model cache); every round
    is recorded with its own ratios, and the later rounds are the steady state."""
    import napari_unet_studio as nus
    from napari_unet_studio.core.config import TileConfig

    row = _base("inmem")
    src = make(size)
    import zarr

    img = np.asarray(zarr.open_group(str(src), mode="r")["0"])
    row.update(size=size, workers=0, threads=1, tiles=_tiles(size, size, None), rounds=[],
               warmup="in-memory prediction of the first 1024 x 1024, not timed")
    nus.predict(model(), img[:1024, :1024], tile=TileConfig(**TILE), threads=1)
    for _ in range(rounds):
        rnd: dict = {}
        t0, c0 = time.perf_counter(), time.process_time()
        ref = nus.predict(model(), img, tile=TileConfig(**TILE), threads=1)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rnd["inmem"] = {"seconds": round(dt, 2), "cpu_seconds": round(cpu, 2),
                        "px_per_cpu_s": img.size / cpu}
        for block in (size, 4096):  # one block = the same tiles (overheads only); borders
            out = ROOT / f"check{size}_{block}{_tag()}.zarr"
            c0 = time.process_time()
            res = nus.predict_store(model(), src, out, tile=TileConfig(**TILE), block=block,
                                    threads=1, resume=False)
            cpu = time.process_time() - c0
            stored = np.asarray(zarr.open_group(str(out), mode="r")["labels/classes/0"])
            rnd[f"blockwise_{block}"] = {
                "identical": bool(np.array_equal(stored, ref)),
                "seconds": round(res.seconds, 2), "cpu_seconds": round(cpu, 2),
                "px_per_cpu_s": img.size / cpu,
                "block_px_per_cpu_s": img.size / sum(res.block_cpu_seconds),
                "stats_seconds": round(res.stats_seconds, 2),
                "tiles": _tiles(size, size, block), "phases": _phases(res),
                "block_seconds": [round(x, 2) for x in res.block_seconds],
                "block_cpu_seconds": [round(x, 2) for x in res.block_cpu_seconds],
                "block_thread_cpu_seconds": [round(x, 2) for x in res.block_thread_cpu_seconds]}
        rnd["ratio_cpu"] = {k: round(rnd["inmem"]["px_per_cpu_s"] / v["px_per_cpu_s"], 3)
                            for k, v in rnd.items() if k.startswith("blockwise")}
        row["rounds"].append(rnd)
    row.update(max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               disc_fraction=float((ref == 2).mean()), load_after=os.getloadavg())
    if record:
        _record(row)
    else:
        print(json.dumps(row, indent=1))


def store(size: int, workers: int, block: int, resume: bool = False,
          out: Path | None = None, record: bool = True, max_blocks: int = 0) -> dict:
    """Block-wise prediction of the OME-Zarr input into an OME-Zarr store.

    ``max_blocks``: stop after that many newly predicted blocks (a partial run that
    fits the time limit; the rest stays for a resumed run)."""
    import threading

    import napari_unet_studio as nus
    from napari_unet_studio.core.config import TileConfig

    row = _base("store")
    src = make(size)
    out = out or ROOT / f"pred{size}_w{workers}{_tag()}.zarr"
    t0 = time.perf_counter()
    stop = threading.Event()
    gen = nus.iter_predict_store(model(), src, out, tile=TileConfig(**TILE), block=block,
                                 workers=workers or None, threads=1, resume=resume,
                                 stop=stop)
    while True:
        try:
            p = next(gen)
        except StopIteration as fin:
            res = fin.value
            break
        print(f"{p.phase} {p.done}/{p.total} skipped {p.skipped} {p.elapsed:.0f} s",
              file=sys.stderr, flush=True)
        if max_blocks and p.done - p.skipped >= max_blocks:
            stop.set()
    dt = time.perf_counter() - t0
    phases = _phases(res)
    cores = max(1, workers)
    done_px = size * size if not res.cancelled else None
    row.update(size=size, workers=workers, threads_per_worker=1, block=block,
               seconds=round(dt, 2), partial=bool(res.cancelled),
               px_per_s=done_px / dt if done_px else None,
               px_per_s_per_core=done_px / dt / cores if done_px else None,
               blocks=res.blocks,
               skipped=res.skipped, predicted=len(res.block_seconds),
               block_seconds=[round(s, 2) for s in res.block_seconds],
               block_cpu_seconds=[round(s, 2) for s in res.block_cpu_seconds],
               block_thread_cpu_seconds=[round(s, 2) for s in res.block_thread_cpu_seconds],
               px_per_thread_cpu_s=(len(res.block_thread_cpu_seconds) * block * block
                                    / max(1e-9, sum(res.block_thread_cpu_seconds))),
               px_per_cpu_s=(len(res.block_cpu_seconds) * block * block
                             / max(1e-9, sum(res.block_cpu_seconds))),
               block_starts=[(pid, round(t - res.block_starts[0][1], 2))
                             for pid, t in res.block_starts] if res.block_starts else [],
               tiles=_tiles(size, size, block), tiles_in_memory=_tiles(size, size, None),
               max_rss_mb_per_block=[round(m) for m in res.max_rss_mb],
               max_rss_mb=round(max(res.max_rss_mb or [0])),
               stats_seconds=round(res.stats_seconds, 2), phases=phases,
               predict_px_per_s=(len(res.block_cpu_seconds) * block * block
                                 / max(1e-9, phases["predict"])),
               start_seconds=round(res.start_seconds, 2), load_after=os.getloadavg())
    # each worker's first block also imports torch and loads the model: the steady
    # state is the blocks after it
    first: dict = {}
    for i, (pid, t) in enumerate(res.block_starts):
        if pid not in first or t < res.block_starts[first[pid]][1]:
            first[pid] = i
    later = [i for i in range(len(res.block_starts)) if i not in first.values()]
    if later:
        row["px_per_cpu_s_after_first"] = len(later) * block * block / sum(
            res.block_cpu_seconds[i] for i in later)
        row["px_per_thread_cpu_s_after_first"] = len(later) * block * block / sum(
            res.block_thread_cpu_seconds[i] for i in later)
    if record:
        _record(row)
    return row


def resume(size: int, workers: int, block: int) -> None:
    """Kill a run (SIGKILL to its process group) half way, then resume it."""
    import zarr

    row = _base("resume")
    out = ROOT / f"resume{size}.zarr"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "store", "--size", str(size), "--workers", str(workers),
           "--block", str(block), "--out", str(out), "--no-record", "--model", MODEL_KIND]
    n_blocks = (size // block) ** 2
    chunks_per_block = (block // 1024) ** 2
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    t0 = time.perf_counter()
    done_at_kill = 0
    while proc.poll() is None:
        time.sleep(0.5)
        cdir = out / "0" / "c"
        n = sum(1 for _ in cdir.rglob("*") if _.is_file()) if cdir.exists() else 0
        if n >= chunks_per_block * n_blocks // 2:
            done_at_kill = n / chunks_per_block
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    killed_after = time.perf_counter() - t0
    second = store(size, workers, block, resume=True, out=out, record=False)
    ref = ROOT / f"pred{size}_w{workers}{_tag()}.zarr"
    same = None
    if ref.exists():
        a = zarr.open_group(str(out), mode="r")["labels/classes/0"]
        b = zarr.open_group(str(ref), mode="r")["labels/classes/0"]
        same = all(np.array_equal(a[y:y + 4096], b[y:y + 4096]) for y in range(0, size, 4096))
    row.update(size=size, workers=workers, block=block, killed_after_s=round(killed_after, 1),
               blocks_written_at_kill=done_at_kill, resumed_seconds=second["seconds"],
               resumed_skipped=second["skipped"], resumed_predicted=second["predicted"],
               resumed_block_seconds=second["block_seconds"],
               resumed_block_cpu_seconds=second["block_cpu_seconds"],
               resumed_block_starts=second["block_starts"],
               resumed_max_rss_mb=second["max_rss_mb"],
               blocks=second["blocks"], identical_to_uninterrupted_run=same,
               load_after=os.getloadavg())
    _record(row)


def _inmem_child(size: int, start_at: float) -> None:
    """One in-memory prediction started at ``start_at`` (a warm-up first); prints JSON."""
    import zarr

    import napari_unet_studio as nus
    from napari_unet_studio.core.config import TileConfig

    img = np.asarray(zarr.open_group(str(make(size)), mode="r")["0"])
    nus.predict(model(), img[:1024, :1024], tile=TileConfig(**TILE), threads=1)
    time.sleep(max(0.0, start_at - time.time()))
    t0, c0 = time.perf_counter(), time.process_time()
    nus.predict(model(), img, tile=TileConfig(**TILE), threads=1)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": round(dt, 2), "cpu_seconds": round(cpu, 2),
                      "px_per_s": img.size / dt, "px_per_cpu_s": img.size / cpu}))


def inmem_parallel(size: int, procs: int) -> None:
    """``procs`` in-memory predictions at once, one process and one torch thread each.

    The per-core baseline for ``procs`` workers: with every core busy, cores that share
    caches, memory bandwidth or a host core run slower than one alone, for the in-memory
    prediction as for the block-wise workers."""
    row = _base("inmem_parallel")
    make(size)
    model()
    start_at = time.time() + 20
    kids = [subprocess.Popen([sys.executable, __file__, "inmem-child", "--size", str(size),
                              "--start-at", str(start_at), "--model", MODEL_KIND],
                             stdout=subprocess.PIPE, text=True)
            for _ in range(procs)]
    runs = [json.loads(k.communicate()[0].strip().splitlines()[-1]) for k in kids]
    row.update(size=size, procs=procs, threads=1, runs=runs,
               px_per_s_per_core=sum(r["px_per_s"] for r in runs) / procs,
               px_per_cpu_s=sum(r["px_per_cpu_s"] for r in runs) / procs,
               load_after=os.getloadavg())
    _record(row)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["make", "model", "inmem", "inmem-parallel", "inmem-child",
                                    "store", "resume"])
    p.add_argument("--procs", type=int, default=2, help="inmem-parallel: processes at once")
    p.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--workers", type=int, default=0, help="0: a thread in this process")
    p.add_argument("--block", type=int, default=8192)
    p.add_argument("--out")
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--max-blocks", type=int, default=0,
                   help="store: stop after this many newly predicted blocks")
    p.add_argument("--resume", action="store_true", help="store: keep an existing output")
    p.add_argument("--rounds", type=int, default=2, help="inmem: repetitions of the three runs")
    p.add_argument("--model", choices=["narrow", "default"], default="narrow",
                   help="narrow: depth 2, width 4, no stem; default: the product's default model")
    a = p.parse_args()
    global MODEL_KIND
    MODEL_KIND = a.model
    if a.what == "make":
        print(make(a.size))
    elif a.what == "model":
        print(model())
    elif a.what == "inmem-parallel":
        inmem_parallel(a.size, a.procs)
    elif a.what == "inmem-child":
        _inmem_child(a.size, a.start_at)
    elif a.what == "inmem":
        inmem(a.size, a.rounds, record=not a.no_record)
    elif a.what == "store":
        store(a.size, a.workers, a.block, resume=a.out is not None or a.resume,
              out=Path(a.out) if a.out else None, record=not a.no_record,
              max_blocks=a.max_blocks)
    else:
        resume(a.size, a.workers, a.block)


if __name__ == "__main__":
    main()
