"""Memory soak: train for a long time while the labels keep changing; RSS must stay flat.

What a user does in napari for an afternoon, compressed: training runs through the
engine (:class:`~napari_unet_studio.core.train.Trainer`, default network and patch
size), the scribbles change every few seconds (a stroke of the true class is painted,
now and then one is erased) and are handed over with ``Trainer.update_data`` exactly as
the widget does while you paint, and a live preview of the whole image is predicted
every few seconds (``Trainer.preview``, as the widget's live layer). A sampler thread
records the process RSS (psutil) every few seconds.

The verdict is the slope of RSS after minute 3 (allocator pools, torch caches and the
first data copies settle in the first minutes), from a least-squares fit over all
samples after that point, in MB per minute.

Usage::

    python bench/soak.py                  # 30 minutes
    python bench/soak.py --minutes 2      # a quick look

Prints a per-minute table and writes ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SETTLE_MINUTES = 3.0


def _rss_mb(proc: Any) -> float:
    return proc.memory_info().rss / 2**20


class Sampler(threading.Thread):
    """Samples RSS every ``interval`` seconds, independent of how long a step takes."""

    def __init__(self, interval: float, status: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.status = status
        self.samples: list[dict[str, float]] = []
        self.t0 = time.perf_counter()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append({
                "t_s": round(time.perf_counter() - self.t0, 2),
                "rss_mb": round(_rss_mb(self.proc), 2),
                "step": int(self.status.get("step", 0)),
                "updates": int(self.status.get("updates", 0)),
                "previews": int(self.status.get("previews", 0)),
            })
            self.done.wait(self.interval)


class Painter:
    """Changes the scribbles like a user: strokes of the true class, sometimes an erase."""

    def __init__(self, scribbles: np.ndarray, truth: np.ndarray, seed: int) -> None:
        self.labels = np.array(scribbles, copy=True)
        self.truth = truth
        self.rng = np.random.default_rng(seed)
        self.strokes: list[tuple[slice, slice]] = []

    def step(self) -> np.ndarray:
        """Paint one stroke (or erase an old one) and return a fresh copy of the labels."""
        ny, nx = self.truth.shape
        if self.strokes and self.rng.random() < 0.25:
            ys, xs = self.strokes.pop(int(self.rng.integers(len(self.strokes))))
            self.labels[ys, xs] = 0
        else:
            y, x = int(self.rng.integers(2, ny - 2)), int(self.rng.integers(2, nx - 20))
            ys, xs = slice(y - 1, y + 2), slice(x, x + int(self.rng.integers(4, 20)))
            self.labels[ys, xs] = self.truth[ys, xs]  # the true class under the stroke
            self.strokes.append((ys, xs))
        return np.array(self.labels, copy=True)  # the widget hands over copies too


def _slope_mb_per_min(samples: list[dict[str, float]], after_s: float) -> float | None:
    pts = [(s["t_s"], s["rss_mb"]) for s in samples if s["t_s"] >= after_s]
    if len(pts) < 3:
        return None
    t = np.array([p[0] for p in pts]) / 60.0
    r = np.array([p[1] for p in pts])
    return float(np.polyfit(t, r, 1)[0])


def _per_minute(samples: list[dict[str, float]], losses: list[tuple[float, float]]) -> list:
    rows = []
    last = int(samples[-1]["t_s"] // 60) if samples else 0
    for m in range(last + 1):
        chunk = [s for s in samples if m * 60 <= s["t_s"] < (m + 1) * 60]
        if not chunk:
            continue
        ls = [v for t, v in losses if m * 60 <= t < (m + 1) * 60 and np.isfinite(v)]
        rows.append({
            "minute": m + 1,
            "steps": chunk[-1]["step"],
            "updates": chunk[-1]["updates"],
            "previews": chunk[-1]["previews"],
            "rss_mb_mean": round(float(np.mean([s["rss_mb"] for s in chunk])), 1),
            "rss_mb_max": round(float(np.max([s["rss_mb"] for s in chunk])), 1),
            "loss": round(float(np.mean(ls)), 4) if ls else None,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the soak; return 0 if RSS did not grow faster than ``--max-slope``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to train")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--update-seconds", type=float, default=3.0,
                        help="how often the labels change (update_data)")
    parser.add_argument("--preview-seconds", type=float, default=4.0,
                        help="how often the live preview is predicted")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: fair to other work on a shared machine)")
    parser.add_argument("--max-slope", type=float, default=1.0,
                        help="MB/min after minute 3 above which the soak fails")
    parser.add_argument("--out", default=str(HERE / "results" / "soak.json"))
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from _common import machine_description

    from napari_unet_studio._sample_data import load_nuclei
    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.train import Trainer

    image, scribbles, truth = (np.asarray(a) for a in load_nuclei())
    painter = Painter(scribbles, truth, seed=0)
    seconds = args.minutes * 60.0
    tc = TrainConfig(steps=None, time_limit=seconds, device="cpu", seed=0)
    status: dict[str, Any] = {"step": 0, "updates": 0, "previews": 0}
    sampler = Sampler(args.sample_seconds, status)
    sampler.start()
    trainer = Trainer([(image, painter.labels.copy())], None, tc, threads=args.threads)
    losses: list[tuple[float, float]] = []
    messages: dict[str, int] = {}
    next_update = time.perf_counter() + args.update_seconds
    next_preview = time.perf_counter() + args.preview_seconds
    print(f"soak: {args.minutes:g} min, image {image.shape}, {trainer.model_config.decoder} "
          f"width {trainer.model_config.width} depth {trainer.model_config.depth}, patch "
          f"{tc.patch_size}, batch {tc.batch_size}, {args.threads} thread(s), pid {os.getpid()}",
          flush=True)
    last_print = 0.0
    for progress in trainer.run():
        now = time.perf_counter()
        status["step"] = progress.step
        losses.append((now - sampler.t0, progress.loss))
        if progress.message:
            key = progress.message.split(":")[0].split("(")[0].strip()[:40]
            messages[key] = messages.get(key, 0) + 1
        if progress.done:
            break
        if now >= next_update:
            trainer.update_data([(image, painter.step())])
            status["updates"] += 1
            next_update = now + args.update_seconds
        if now >= next_preview:
            pred = trainer.preview(image)
            assert pred.shape == image.shape[:2] and pred.min() >= 1
            status["previews"] += 1
            next_preview = time.perf_counter() + args.preview_seconds
        if now - sampler.t0 - last_print >= 60:
            last_print = now - sampler.t0
            rss = sampler.samples[-1]["rss_mb"] if sampler.samples else float("nan")
            print(f"  {last_print / 60:5.1f} min  step {progress.step:6d}  rss {rss:8.1f} MB  "
                  f"loss {progress.loss:.4f}", flush=True)
    sampler.done.set()
    sampler.join()
    samples = sampler.samples
    rows = _per_minute(samples, losses)
    slope = _slope_mb_per_min(samples, SETTLE_MINUTES * 60)
    after = [s["rss_mb"] for s in samples if s["t_s"] >= SETTLE_MINUTES * 60]
    result = {
        "benchmark": "soak",
        "minutes": args.minutes,
        "settings": {"sample_seconds": args.sample_seconds,
                     "update_seconds": args.update_seconds,
                     "preview_seconds": args.preview_seconds, "threads": args.threads,
                     "train_config": tc.to_dict(),
                     "model_config": trainer.model_config.to_dict(),
                     "image_shape": list(image.shape)},
        "machine": machine_description(),
        "steps": status["step"],
        "label_updates": status["updates"],
        "previews": status["previews"],
        "messages": messages,
        "rss_mb_start": samples[0]["rss_mb"] if samples else None,
        "rss_mb_at_settle": after[0] if after else None,
        "rss_mb_end": samples[-1]["rss_mb"] if samples else None,
        "rss_mb_peak": max(s["rss_mb"] for s in samples) if samples else None,
        "rss_mb_min_after_settle": min(after) if after else None,
        "rss_mb_max_after_settle": max(after) if after else None,
        "slope_mb_per_min_after_settle": None if slope is None else round(slope, 4),
        "settle_minutes": SETTLE_MINUTES,
        "max_slope_mb_per_min": args.max_slope,
        "per_minute": rows,
        "samples": samples,
    }
    ok = slope is None or slope <= args.max_slope
    result["verdict"] = "flat" if ok else "growing"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)

    print(f"\n{'min':>4} {'steps':>7} {'updates':>8} {'previews':>9} {'RSS mean MB':>12} "
          f"{'RSS max MB':>11} {'loss':>8}")
    for r in rows:
        loss = f"{r['loss']:.4f}" if r["loss"] is not None else "-"
        print(f"{r['minute']:>4} {r['steps']:>7} {r['updates']:>8} {r['previews']:>9} "
              f"{r['rss_mb_mean']:>12.1f} {r['rss_mb_max']:>11.1f} {loss:>8}")
    slope_txt = "n/a (run longer than 3 min)" if slope is None else f"{slope:+.3f} MB/min"
    print(f"\nRSS slope after minute {SETTLE_MINUTES:g}: {slope_txt}; "
          f"start {result['rss_mb_start']} MB, end {result['rss_mb_end']} MB, peak "
          f"{result['rss_mb_peak']} MB; {status['step']} steps, {status['updates']} label "
          f"updates, {status['previews']} previews -> {result['verdict']}; wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
