"""Tiled prediction speed and memory: 2048 x 2048 in memory, 8192 x 8192 lazily from zarr.

The product's prediction (``napari_unet_studio.core.infer.predict_image``, default
``TileConfig``: 256 px tiles, 25 % overlap, 4 tiles per batch) of a default U-Net
(bilinear decoder, depth 3, width 16, 2 classes; random weights: speed does not depend
on them) on:

* ``2048`` -- a 2048 x 2048 uint8 image (the DSB2018 nuclei sample tiled 4 x 4) in memory,
  against MONAI ``sliding_window_inference`` with the same network, tile (roi), overlap
  and batch (``sw_batch_size``), Gaussian blending, followed by softmax and argmax so that
  both produce class ids; repeats interleaved in one process.
* ``8192`` -- an 8192 x 8192 uint8 image written to a zarr store in ``/tmp`` and read
  through ``dask.array.from_zarr`` (nothing but the tiles being predicted is loaded).

Each case runs in its own subprocess; peak resident memory is sampled every 5 ms by a
thread (psutil) and checked against ``ru_maxrss``. "Baseline" is the RSS after imports
and model set-up, before prediction. For 8192 x 8192 the peak is compared with the size
of a float32 class-probability volume, ``K * 8192 * 8192 * 4`` bytes, that a
whole-image approach would hold.

Run: ``flock /tmp/bench.lock python bench/predict_speed.py`` (``bench`` extra: monai, zarr,
psutil). Writes ``bench/results/predict_speed.json``. About 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))


# ---------------------------------------------------------------------- in the child
class PeakRSS:
    """Sample this process's RSS in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def make_model(classes: int):
    import torch

    from napari_unet_studio.core.checkpoint import DEFAULT_NORMALIZATION, TrainedModel
    from napari_unet_studio.core.config import ModelConfig
    from napari_unet_studio.core.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(num_classes=classes)
    net = build_model(cfg)
    # give batch norm non-trivial running statistics, as a trained model has
    with torch.no_grad():
        net.train()
        net(torch.randn(2, 1, 128, 128))
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return TrainedModel(cfg, state, dict(DEFAULT_NORMALIZATION), {"bench": True})


def big_image(size: int) -> np.ndarray:
    from _common import nuclei_data

    tile = nuclei_data()[0]
    reps = -(-size // tile.shape[0])
    return np.tile(tile, (reps, reps))[:size, :size].copy()


def monai_predict(net, model, image: np.ndarray, tile, device) -> np.ndarray:
    """MONAI sliding window with the same network, tile, overlap and batch."""
    import torch
    from monai.inferers import sliding_window_inference

    from napari_unet_studio.core.data import normalize_plane

    x = torch.from_numpy(normalize_plane(image, model.normalization, 1))[None]
    with torch.inference_mode():
        logits = sliding_window_inference(
            x.to(device), roi_size=(tile.tile, tile.tile), sw_batch_size=tile.batch_size,
            predictor=net, overlap=tile.overlap, mode="gaussian",
        )
        labels = torch.argmax(torch.softmax(logits, dim=1), dim=1)[0] + 1
    return labels.to(torch.uint8).cpu().numpy()


def plain_predict(model, image: np.ndarray, tile) -> np.ndarray:
    """The product's prediction without :func:`infer.inference_net` (the state before)."""
    from napari_unet_studio.core import infer

    original = infer.inference_net
    infer.inference_net = lambda net, device: net
    try:
        return infer.predict_image(model, image, tile=tile, device="cpu").labels
    finally:
        infer.inference_net = original


def child(case: str, args: argparse.Namespace) -> dict:
    import resource

    import psutil
    import torch

    from napari_unet_studio.core import infer
    from napari_unet_studio.core.config import TileConfig
    from napari_unet_studio.core.device import prepare_runtime
    from napari_unet_studio.core.infer import predict_image

    runtime = prepare_runtime(args.threads or None)
    tile = TileConfig(tile=args.tile, overlap=args.overlap, batch_size=args.batch)
    model = make_model(args.classes)
    device = torch.device("cpu")
    out: dict = {"case": case, "threads": runtime["threads"], "tile": tile.to_dict(),
                 "classes": args.classes}
    if case == "2048":
        image = big_image(2048)
        net = model.build(device)
        predict_image(model, image[:512, :512], tile=tile, device="cpu")  # warm-up
        monai_predict(net, model, image[:512, :512], tile, device)
        base = psutil.Process().memory_info().rss
        ours, plain, monai, peak_ours, peak_monai = [], [], [], 0, 0
        for _ in range(args.repeats):
            with PeakRSS() as m:
                t0 = time.perf_counter()
                lab = predict_image(model, image, tile=tile, device="cpu").labels
                ours.append(time.perf_counter() - t0)
            peak_ours = max(peak_ours, m.peak)
            if hasattr(infer, "inference_net"):  # before the conv+BN / channels-last change
                t0 = time.perf_counter()
                lab_p = plain_predict(model, image, tile)
                plain.append(time.perf_counter() - t0)
            if not args.no_monai:
                with PeakRSS() as m:
                    t0 = time.perf_counter()
                    lab_m = monai_predict(net, model, image, tile, device)
                    monai.append(time.perf_counter() - t0)
                peak_monai = max(peak_monai, m.peak)
        mp_ = image.size / 1e6
        out.update({
            "megapixels": mp_,
            "baseline_rss": base,
            "seconds": ours,
            "mp_per_s": mp_ / min(ours),
            "peak_rss": peak_ours,
        })
        if plain:
            out.update({
                "plain_seconds": plain,
                "plain_mp_per_s": mp_ / min(plain),
                "speedup_over_plain": min(plain) / min(ours),
                "agreement_with_plain": float((lab == lab_p).mean()),
            })
        if monai:
            out.update({
                "monai_seconds": monai,
                "monai_mp_per_s": mp_ / min(monai),
                "monai_peak_rss": peak_monai,
                "ratio_ours_over_monai": min(monai) / min(ours),
                "agreement_with_monai": float((lab == lab_m).mean()),
            })
    else:
        import dask.array as da

        path = Path(args.zarr)
        arr = da.from_zarr(str(path))
        predict_image(model, np.asarray(arr[:512, :512]), tile=tile, device="cpu")  # warm-up
        base = psutil.Process().memory_info().rss
        with PeakRSS() as m:
            t0 = time.perf_counter()
            lab = predict_image(model, arr, tile=tile, device="cpu").labels
            sec = time.perf_counter() - t0
        mp_ = arr.size / 1e6
        prob_bytes = args.classes * arr.shape[0] * arr.shape[1] * 4
        out.update({
            "megapixels": mp_,
            "baseline_rss": base,
            "seconds": [sec],
            "mp_per_s": mp_ / sec,
            "peak_rss": m.peak,
            "labels_bytes": int(lab.nbytes),
            "probability_volume_bytes": prob_bytes,
            "peak_over_probability_volume": m.peak / prob_bytes,
            "added_over_probability_volume": (m.peak - base) / prob_bytes,
        })
    out["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["loadavg"] = os.getloadavg()
    return out


# ----------------------------------------------------------------------- the parent
def write_zarr(path: Path, size: int, chunk: int = 1024) -> None:
    import zarr

    if path.exists():
        try:
            z = zarr.open(str(path), mode="r")
            if z.shape == (size, size):
                return
        except Exception:  # noqa: BLE001 - rebuild a broken store
            pass
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    tile = big_image(chunk)
    z = zarr.open(str(path), mode="w", shape=(size, size), chunks=(chunk, chunk),
                  dtype=np.uint8)
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            z[y:y + chunk, x:x + chunk] = tile
    print(f"wrote {path} ({size}x{size} uint8, {chunk}x{chunk} chunks)")


def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="2048,8192")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="0: the product's choice")
    p.add_argument("--large", type=int, default=8192, help="edge of the large image")
    p.add_argument("--zarr", default="/tmp/unet_studio_bench_8192.zarr")
    p.add_argument("--no-monai", action="store_true")
    p.add_argument("--tag", default="", help="suffix of the JSON file name (before/after)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)), flush=True)
        return

    from _common import machine_description

    cases = [c for c in args.cases.split(",") if c]
    if "8192" in cases:
        write_zarr(Path(args.zarr), args.large)
    results = []
    passthrough = [f"--tile={args.tile}", f"--overlap={args.overlap}", f"--batch={args.batch}",
                   f"--classes={args.classes}", f"--repeats={args.repeats}",
                   f"--threads={args.threads}", f"--zarr={args.zarr}"]
    passthrough += ["--no-monai"] if args.no_monai else []
    for case in cases:
        cmd = [sys.executable, __file__, "--child", case, *passthrough]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stdout, proc.stderr)
            raise SystemExit(f"case {case} failed")
        results.append(json.loads(line[-1][7:]))

    print(f"tile {args.tile}, overlap {args.overlap}, batch {args.batch}, "
          f"{args.classes} classes, threads {results[0]['threads']}")
    for r in results:
        size = "2048x2048 (numpy)" if r["case"] == "2048" else f"{args.large}x{args.large} (zarr)"
        print(f"{size:22s} {r['mp_per_s']:6.2f} MP/s  best {min(r['seconds']):6.1f} s  "
              f"peak RSS {gib(r['peak_rss'])} (baseline {gib(r['baseline_rss'])})")
        if "plain_mp_per_s" in r:
            print(f"{'  before (plain net)':22s} {r['plain_mp_per_s']:6.2f} MP/s  best "
                  f"{min(r['plain_seconds']):6.1f} s; speed-up {r['speedup_over_plain']:.2f}x, "
                  f"same label at {100 * r['agreement_with_plain']:.3f} % of pixels")
        if "monai_mp_per_s" in r:
            print(f"{'  MONAI sliding window':22s} {r['monai_mp_per_s']:6.2f} MP/s  best "
                  f"{min(r['monai_seconds']):6.1f} s  peak RSS {gib(r['monai_peak_rss'])}; "
                  f"ours/MONAI speed {r['ratio_ours_over_monai']:.2f}x, same label at "
                  f"{100 * r['agreement_with_monai']:.2f} % of pixels")
        if "probability_volume_bytes" in r:
            print(f"{'':22s} float32 probability volume would be "
                  f"{gib(r['probability_volume_bytes'])}; peak RSS is "
                  f"{100 * r['peak_over_probability_volume']:.0f} % of it "
                  f"(added during prediction: {gib(r['peak_rss'] - r['baseline_rss'])}, "
                  f"labels {gib(r['labels_bytes'])})")
    RESULTS.mkdir(exist_ok=True)
    name = f"predict_speed{'_' + args.tag if args.tag else ''}.json"
    out = {"args": {k: v for k, v in vars(args).items() if k != "child"},
           "machine": machine_description(), "loadavg": os.getloadavg(), "results": results}
    (RESULTS / name).write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
