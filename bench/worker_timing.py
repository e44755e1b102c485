"""Worker process timings without a GUI: first step, first preview, Stop, thread tuning.

For each case a fresh :class:`~napari_unet_studio.worker.WorkerClient` starts (default
nice 10), waits for its warm-up, trains on the 512 x 512 nuclei sample with the default
settings and reports: time from ``train()`` to the first progress event and the first
preview, time from ``stop()`` to ``done``, and steps in ``--seconds`` of training.

Cases: ``tuned`` (the default: the worker picks its thread count), ``two`` (tuning off,
all cores), ``one`` (one thread), ``cold`` (no warm-up). Prints a table and writes
``bench/results/worker_timing[_TAG].json``. Timed: run it with ``flock /tmp/bench.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CASES = {
    "tuned": {},
    "two": {"NAPARI_UNET_STUDIO_THREAD_TUNING": "0"},
    "one": {"NAPARI_UNET_STUDIO_THREADS": "1"},
    "cold": {"NAPARI_UNET_STUDIO_WORKER_WARMUP": "0"},
}


def one_case(name: str, seconds: float) -> dict:
    from _common import nuclei_data

    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.worker import WorkerClient

    image, scribbles, _ = nuclei_data()
    saved = {k: os.environ.get(k) for k in CASES[name]}
    os.environ.update(CASES[name])
    client = WorkerClient()
    try:
        t0 = time.perf_counter()
        client.start()
        while client.info() is None:
            time.sleep(0.01)
        hello = time.perf_counter() - t0
        while not client.info().get("warm") and time.perf_counter() - t0 < 120:
            time.sleep(0.01)
        warm = time.perf_counter() - t0
        tc = TrainConfig(steps=1_000_000).to_dict()
        t = time.perf_counter()
        job = client.train([(image, scribbles)], None, tc, live=True)
        job.set_preview_source(None, image)
        marks: dict[str, float] = {}
        threads: list[int] = []
        stop_at = None
        ref = None
        while not job.finished:
            for kind, payload in job.poll():
                now = time.perf_counter() - t
                if kind == "progress":
                    marks.setdefault("first_step_s", now)
                    threads.append(payload.get("threads"))
                elif kind == "preview":
                    marks.setdefault("first_preview_s", now)
                elif kind == "done":
                    ref = payload
                    marks["stop_s"] = time.perf_counter() - stop_at
                elif kind == "error":
                    raise RuntimeError(payload.message)
            if stop_at is None and time.perf_counter() - t > seconds:
                stop_at = time.perf_counter()
                job.stop()
            time.sleep(0.005)
    finally:
        client.shutdown()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return {"hello_s": round(hello, 2), "warm_s": round(warm, 2),
            **{k: round(v, 2) for k, v in marks.items()},
            "steps": ref.record["steps"], "train_seconds": ref.record["seconds"],
            "steps_per_min": round(60 * ref.record["steps"] / ref.record["seconds"], 1),
            "threads_used": {str(n): threads.count(n) for n in sorted(set(threads), key=str)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    res = {"loadavg_before": os.getloadavg(), "seconds": args.seconds, "cases": {}}
    for name in args.cases:
        res["cases"][name] = one_case(name, args.seconds)
        print(name, res["cases"][name], flush=True)
    res["loadavg_after"] = os.getloadavg()
    print("load average before", res["loadavg_before"], "after", res["loadavg_after"])
    out = HERE / "results" / f"worker_timing{'_' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(res, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
