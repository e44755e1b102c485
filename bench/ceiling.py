"""How much a one-pixel boundary disagreement costs on the dense-label cases.

The realistic suite's goal asks for a mean IoU of 1.05x the forest's on every case. On
the dense cases (and the time-lapse, whose small nuclei make every boundary pixel count)
the forest is already close to the truth, so this script measures what
the score would be if a prediction matched the truth everywhere except for a boundary
shifted by ``k`` pixels (the truth's nuclei dilated or eroded by ``k``): the part of the
score that is decided at the boundary, where hand-drawn truth itself is uncertain by
about a pixel.

Run::

    python bench/ceiling.py            # the dense cases and the time-lapse, 1 and 2 px
    python bench/ceiling.py --cases bbbc-inductive dsb-gap --shifts 1

Prints one row per case and shift; no training, a few seconds.

``--oracle`` measures a second bound on the inductive stroke cases: the same methods
trained on the **full truth** of the training image(s) (every pixel labelled, instead of
the gap strokes) and scored on the same evaluation images. A stroke goal above what the
full truth of the training image reaches is beyond what better use of the strokes can
give::

    nice -n 19 python bench/ceiling.py --oracle scratch-timelapse --steps 150 600

(forest, U-Net from the shipped start and from scratch, seeds 0 and 1; about 10 min on one
thread; writes ``bench/results/ceiling_oracle.json``).

``--unlabelled`` counts, on a stroke case, the objects that the forest and the U-Net (150
steps, shipped start) both find and the truth leaves out (at least half a median truth
nucleus, no truth pixel), scores both methods again with those objects (grown by 2 px)
left out of the scoring, and with ``--figure`` draws the first evaluation image::

    nice -n 19 python bench/ceiling.py --unlabelled scratch-timelapse --seeds 0 1 2 \
        --figure docs/images/timelapse_unlabelled.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import realistic as rl  # noqa: E402
import realistic_cases as rc  # noqa: E402


def shifted_scores(case: str, shift: int) -> dict[str, dict[str, float]]:
    """Mean IoU and nucleus IoU of the truth with its boundary moved by ``shift`` px."""
    c, data = rc.build(case, 0)
    fg = int(c.foreground)
    bg = 1 if fg == 2 else 2
    out = {}
    for how, op in (("dilated", ndi.binary_dilation), ("eroded", ndi.binary_erosion)):
        preds = [np.where(op(truth == fg, iterations=shift), fg, bg).astype(np.uint8)
                 for _, _, truth in data["eval"]]
        out[how] = rl.score(preds, data["eval"], fg)
    return out


def dense_training(case: str) -> tuple[list, list]:
    """The full truth of an inductive case's training image(s) and its evaluation images."""
    import datasets

    if case == "scratch-timelapse":
        frames, truth = datasets.scratch_assay()
        return [(frames[0], truth[0])], rc.build(case, 0)[1]["eval"]
    if case == "bbbc-inductive":
        pairs = datasets.bbbc007_pairs("eval")
        return ([(img, t) for n, img, t in pairs if n in rc.INDUCTIVE_TRAIN],
                rc.build(case, 0)[1]["eval"])
    raise SystemExit(f"--oracle: no dense training labels defined for {case!r}")


def oracle(cases: list[str], steps: list[int], seeds: list[int], starts: list[str],
           threads: int) -> dict:
    """Forest and U-Net trained on the full truth of the training images, per case."""
    from _common import machine_description

    machine = machine_description()
    machine["matmul_gflops_1thread"] = rl.matmul_peak(1)
    machine["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    print(f"{machine['date']}  {machine['cpu']}  float32 matmul "
          f"{machine['matmul_gflops_1thread']} GFLOP/s (1 thread)", flush=True)
    rows = []
    for case in cases:
        c = rc.CASES[case]
        train, ev = dense_training(case)
        images = [img for _, img, _ in ev]
        preds, secs = rl.forest(train, images, c.rgb, 0)
        rows.append({"case": case, "method": "forest", "labels": "full truth",
                     **rl.score(preds, ev, c.foreground), "train_s": secs})
        print(f"  {case} forest {rows[-1]['miou']:.4f}", flush=True)
        for start in starts:
            for n in steps:
                for seed in seeds:
                    preds, info = rl.unet(train, images, seed, start, n, None, None, threads)
                    rows.append({"case": case, "method": start, "labels": "full truth",
                                 "seed": seed, **rl.score(preds, ev, c.foreground), **info})
                    print(f"  {case} {start} {n} steps seed {seed} "
                          f"{rows[-1]['miou']:.4f}", flush=True)
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"machine": machine, "threads": threads, "rows": rows,
            "command": "python bench/ceiling.py --oracle " + " ".join(cases)}


def _miou(pred: np.ndarray, truth: np.ndarray, keep: np.ndarray) -> float:
    return float(np.mean([np.sum((pred == c) & (truth == c) & keep)
                          / np.sum(((pred == c) | (truth == c)) & keep) for c in (1, 2)]))


def unlabelled(case: str, seeds: list[int], steps: int, figure: Path | None) -> list[dict]:
    """Objects both methods find that the truth leaves out; scores without them."""
    c = rc.CASES[case]
    rows = []
    for seed in seeds:
        _, data = rc.build(case, seed)
        images = [img for _, img, _ in data["eval"]]
        fp, _ = rl.forest(data["train"], images, c.rgb, seed, probabilities=2)
        up, _ = rl.unet(data["train"], images, seed, "pretrained", steps, None, None, 1,
                        probabilities=True)
        row: dict = {"case": case, "seed": seed, "objects": [], "pixels": [],
                     "unet": [], "forest": []}
        for k, (_, image, truth) in enumerate(data["eval"]):
            t = truth == 2
            lt, _ = ndi.label(t)
            median = float(np.median(np.bincount(lt.ravel())[1:]))
            preds = {"unet": np.where(up[k][1] > 0.5, 2, 1),
                     "forest": np.where(fp[k][1] > 0.5, 2, 1)}
            lb, m = ndi.label((preds["unet"] == 2) & (preds["forest"] == 2))
            areas = np.bincount(lb.ravel())
            touches = ndi.maximum(t, lb, range(1, m + 1))
            ids = [i + 1 for i in range(m) if touches[i] == 0 and areas[i + 1] >= median / 2]
            missing = np.isin(lb, ids)
            keep = ~ndi.binary_dilation(missing, iterations=2)
            row["objects"].append(len(ids))
            row["pixels"].append(int(missing.sum()))
            for name, pred in preds.items():
                row[name].append([round(_miou(pred, truth, np.ones_like(keep)), 4),
                                  round(_miou(pred, truth, keep), 4)])
            if figure is not None and k == 0 and seed == seeds[0]:
                _draw(image, t, preds["unet"] == 2, missing, figure)
        for name in ("unet", "forest"):
            row[name + "_mean"] = [round(float(np.mean([v[i] for v in row[name]])), 4)
                                   for i in (0, 1)]
        rows.append(row)
        print(f"  {case} seed {seed}: objects left out of the truth {row['objects']} "
              f"({row['pixels']} px); mean IoU all / without them: U-Net {row['unet_mean']}"
              f", forest {row['forest_mean']}", flush=True)
    return rows


def _draw(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, missing: np.ndarray,
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.imshow(image, cmap="gray", vmax=np.percentile(image, 99.5))
    for mask, colour, label in ((truth, "#ff3030", "truth"), (pred, "#30e0ff", "U-Net"),
                                (missing, "#ffd000", "found by both, not in the truth")):
        yy, xx = np.nonzero(find_boundaries(mask, mode="outer"))
        ax.plot(xx, yy, ",", color=colour, label=label)
    ax.legend(loc="upper right", markerscale=30, fontsize=8)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["bbbc-dense", "dsb-dense",
                                                        "scratch-timelapse"])
    ap.add_argument("--shifts", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--oracle", nargs="+", metavar="CASE",
                    help="train on the full truth of these cases' training images instead")
    ap.add_argument("--steps", nargs="+", type=int, default=[150, 600])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--start", nargs="+", default=["pretrained", "scratch"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ceiling_oracle.json")
    ap.add_argument("--unlabelled", metavar="CASE",
                    help="objects both methods find that the truth of CASE leaves out")
    ap.add_argument("--figure", type=Path, help="with --unlabelled: draw the first image")
    args = ap.parse_args(argv)
    if args.unlabelled:
        rows = unlabelled(args.unlabelled, args.seeds, 150, args.figure)
        out = HERE / "results" / "ceiling_unlabelled.json"
        out.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"written {out}")
        return 0
    if args.oracle:
        res = oracle(args.oracle, args.steps, args.seeds, args.start, args.threads)
        args.out.write_text(json.dumps(res, indent=1) + "\n")
        print(f"written {args.out}")
        return 0
    print("| case | boundary moved by | mean IoU (dilated / eroded) | nucleus IoU "
          "(dilated / eroded) |\n|---|---|---|---|")
    for case in args.cases:
        for k in args.shifts:
            s = shifted_scores(case, k)
            print(f"| {case} | {k} px | {s['dilated']['miou']:.3f} / {s['eroded']['miou']:.3f}"
                  f" | {s['dilated']['fg']:.3f} / {s['eroded']['fg']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
