"""Annotation assistant benchmark: where to paint next, and which decoder to pick.

``annotate``: a simulated annotator on real development images
(:mod:`realistic_cases`). It starts from a few strokes (the case's user-like strokes
thinned to ``--start-share``), trains, then adds strokes in rounds. In every round it
paints ``--boxes`` square regions of ``--box`` px; a region is chosen

* ``uncertainty``: by the product's uncertainty map (entropy of the live prediction,
  :func:`napari_unet_studio.core.uncertainty.uncertain_regions`, as the Next button does);
* ``random``: uniformly among the unpainted regions;
* ``oracle``: where the prediction is most wrong (uses the truth: the upper bound).

Painting a region = the skeleton and the long-axis line of every class present in it,
kept 2 px inside the class and brushed 3 px wide (what a user paints after looking at
the box). After each round the model continues from the previous round's model for
``--round-steps`` steps (one torch thread: the result does not depend on the load).
All strategies share the round-0 model. Scored against the full truth (mean IoU;
nucleus IoU on nuclei).

``compare``: the decoder comparison on 5 development images: every decoder trained on
the case's strokes with the same budget (``core/compare.py``: stroke-wise 2 folds held
out, then all strokes); the winner on held-out strokes against the winner on the full
truth.

Run (fixed steps, no lock needed)::

    nice -n 19 .venv/bin/python bench/assistant.py annotate --cases voc --seeds 0 1
    nice -n 19 .venv/bin/python bench/assistant.py compare
    .venv/bin/python bench/assistant.py report        # tables + docs/images figure

Writes ``bench/results/assistant_annotate_<case>_s<seed>_<strategies>.json`` and
``bench/results/assistant_compare_<case>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FIGURE = HERE.parent / "docs" / "images" / "assistant_annotator.png"
sys.path.insert(0, str(HERE))

STRATEGIES = ("uncertainty", "random", "oracle")
ANNOTATE_CASES = ("bbbc-gap-A9_p10d", "voc", "bbbc-gap-17P1_POS0011")
COMPARE_CASES = ("bbbc-gap-A9_p10d", "bbbc-gap-17P1_POS0011", "bbbc-gap-20P1_POS0007", "voc",
                 "scratch-frame0")
DECODERS = ("nearest", "bilinear", "unpool", "transposed", "pixelshuffle")


# ------------------------------------------------------------------------- data
def case_data(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """``(image, strokes, truth, foreground)`` of a transductive development image."""
    import datasets
    import realistic_cases as rc
    import strokes as st

    if name == "scratch-frame0":  # the time-lapse's painted frame, scored on itself
        frames, truth = datasets.scratch_assay()
        return frames[0], st.gap_strokes(truth[0], seed=seed), truth[0], 2
    case, data = rc.build(name, seed)
    image, strokes = data["train"][0]
    _, _, truth = data["eval"][0]
    return image, strokes, truth, case.foreground


def score(pred: np.ndarray, truth: np.ndarray, foreground: int | None) -> dict[str, float]:
    from _common import evaluate

    r = evaluate(np.asarray(pred), truth, foreground)
    out = {"miou": r["miou"]}
    if foreground is not None:
        out["fg"] = r["fg_iou"]
    return out


def metric(row: dict) -> float:
    return float(row["fg"] if "fg" in row else row["miou"])


# ---------------------------------------------------------------------- annotator
class Annotator:
    """Paints the classes it sees in a box, from the truth (see the module docstring)."""

    def __init__(self, truth: np.ndarray, inside: int = 2, width: int = 3) -> None:
        from scipy import ndimage as ndi

        self.truth = truth
        self.width = width
        self.allowed = np.zeros(truth.shape, bool)
        for c in np.unique(truth):
            self.allowed |= ndi.distance_transform_edt(np.pad(truth == c, 1))[1:-1, 1:-1] > inside

    def paint(self, painted: np.ndarray, center: tuple[int, int], size: int) -> int:
        """Paint the box around ``center`` (in place); returns the new painted pixels."""
        import strokes as st
        from scipy import ndimage as ndi
        from skimage.morphology import skeletonize

        h, w = painted.shape
        y0, x0 = max(0, center[0] - size // 2), max(0, center[1] - size // 2)
        sl = (slice(y0, min(h, y0 + size)), slice(x0, min(w, x0 + size)))
        truth, allowed = self.truth[sl], self.allowed[sl]
        view = painted[sl]
        before = int(np.count_nonzero(view))
        for c in np.unique(truth):
            ok = allowed & (truth == c)
            if ok.sum() < 6:
                continue
            # the skeleton follows the shape; the long-axis line paints a box that one
            # class fills (whose skeleton is a point)
            stroke = skeletonize(ok) | st._axis_line(ok)
            if self.width > 1:
                stroke = ndi.binary_dilation(stroke, iterations=(self.width - 1) // 2)
            stroke &= ok & (view == 0)
            view[stroke] = c
        return int(np.count_nonzero(view)) - before


def pick_regions(strategy: str, painted: np.ndarray, probs: np.ndarray, pred: np.ndarray,
                 truth: np.ndarray, size: int, count: int, rng: np.random.Generator
                 ) -> list[tuple[int, int]]:
    """Centres of the regions to paint next."""
    from napari_unet_studio.core.uncertainty import box_mean, uncertain_regions, uncertainty_map

    if strategy == "uncertainty":
        regions = uncertain_regions(uncertainty_map(probs, "entropy"), painted, size=size,
                                    count=count)
        return [r.center for r in regions]
    if strategy == "oracle":
        regions = uncertain_regions((pred != truth).astype(np.float32), painted, size=size,
                                    count=count)
        return [r.center for r in regions]
    free = box_mean(painted != 0, size) <= 0.02
    half = size // 2
    free[:half], free[-half:], free[:, :half], free[:, -half:] = False, False, False, False
    ys, xs = np.nonzero(free)
    out: list[tuple[int, int]] = []
    for i in rng.permutation(ys.size):
        c = (int(ys[i]), int(xs[i]))
        if all(max(abs(c[0] - o[0]), abs(c[1] - o[1])) >= size for o in out):
            out.append(c)
        if len(out) == count:
            break
    return out


def annotate(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every strategy on one image and seed."""
    import strokes as st

    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.infer import predict_image
    from napari_unet_studio.core.progress import run_to_end
    from napari_unet_studio.core.train import Trainer

    image, strokes, truth, fg = case_data(name, seed)
    painted0 = st.thin_out(strokes, args.start_share, seed=seed)
    tc0 = TrainConfig(steps=args.start_steps, device="cpu", seed=seed)
    tc = TrainConfig(steps=args.round_steps, device="cpu", seed=seed)
    annotator = Annotator(truth)

    def fit(labels: np.ndarray, init: Any, config: TrainConfig) -> Any:
        return run_to_end(Trainer([(image, labels)], None, config, init=init, threads=1).run())

    def look(model: Any) -> tuple[np.ndarray, np.ndarray]:
        res = predict_image(model, image, probabilities=True, device="cpu", threads=1)
        return np.asarray(res.labels), np.asarray(res.probabilities)

    t0 = time.perf_counter()
    model0 = fit(painted0, None, tc0)
    pred0, probs0 = look(model0)
    first = {"round": 0, "painted": int(np.count_nonzero(painted0)), "added": 0,
             **score(pred0, truth, fg)}
    out: dict[str, Any] = {"case": name, "seed": seed, "foreground": fg,
                           "start": model0.record.get("start"), "curves": {}}
    print(f"{name} seed {seed}: round 0 {metric(first):.3f} "
          f"({first['painted']} px painted, {time.perf_counter() - t0:.0f} s)", flush=True)
    for strategy in args.strategies:
        rng = np.random.default_rng([seed, 7])
        painted, model, pred, probs = painted0.copy(), model0, pred0, probs0
        rows = [first]
        for r in range(1, args.rounds + 1):
            centers = pick_regions(strategy, painted, probs, pred, truth, args.box, args.boxes,
                                   rng)
            added = sum(annotator.paint(painted, c, args.box) for c in centers)
            model = fit(painted, model, tc)
            pred, probs = look(model)
            row = {"round": r, "painted": int(np.count_nonzero(painted)), "added": added,
                   "centers": [list(c) for c in centers], **score(pred, truth, fg)}
            rows.append(row)
            print(f"  {strategy:11s} round {r:2d}: {metric(row):.3f} (+{added} px)", flush=True)
        out["curves"][strategy] = rows
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


# ------------------------------------------------------------------------ compare
def compare(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every decoder on one image: held-out strokes vs the full truth."""
    from napari_unet_studio.core.compare import evaluate_decoder, pick_best, split_pairs
    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.infer import predict_image

    image, strokes, truth, fg = case_data(name, 0)
    pairs = [(image, strokes)]
    tc = TrainConfig(steps=args.steps, device="cpu", seed=0)
    splits = split_pairs(pairs, args.folds, seed=0)
    rows = []
    for decoder in DECODERS:
        t0 = time.perf_counter()
        row, model = evaluate_decoder(pairs, decoder, train_config=tc, splits=splits, threads=1)
        pred = predict_image(model, image, device="cpu", threads=1).labels
        row["truth"] = score(pred, truth, fg)
        row["start"] = model.record.get("start")
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"  {name:24s} {decoder:12s} held-out {row['heldout']:.3f} boundary "
              f"{row['boundary'] if row['boundary'] is None else round(row['boundary'], 3)} "
              f"truth {metric(row['truth']):.3f} ({row['seconds']} s)", flush=True)
    by_truth = max(rows, key=lambda r: metric(r["truth"]))["decoder"]
    return {"case": name, "foreground": fg, "rows": rows, "best_heldout": pick_best(rows),
            "best_truth": by_truth}


# ------------------------------------------------------------------------- report
def rounds_to_reach(curve: list[dict], target: float) -> int | None:
    for row in curve:
        if metric(row) >= target - 1e-9:
            return int(row["round"])
    return None


def report(args: argparse.Namespace) -> int:
    files = sorted(RESULTS.glob("assistant_annotate_*.json"))
    merged: dict[tuple[str, int], dict] = {}  # one run per image and seed, all strategies
    for f in files:
        for r in json.loads(f.read_text())["runs"]:
            key = (r["case"], r["seed"])
            if key in merged:
                merged[key]["curves"].update(r["curves"])
            else:
                merged[key] = r
    for log in args.logs:  # curves printed by a run (same numbers as its JSON would hold)
        for key, strategy, rows in _parse_log(Path(log)):
            run = merged.setdefault(key, {"case": key[0], "seed": key[1], "start": "?",
                                          "curves": {}})
            if len(rows) >= 11:  # complete runs only (10 rounds)
                run["curves"].setdefault(strategy, rows)
    runs = [merged[k] for k in sorted(merged) if set(merged[k]["curves"]) >= set(STRATEGIES)]
    partial = sorted(k for k in merged if k not in {(r["case"], r["seed"]) for r in runs})
    if partial:
        print("incomplete (not all strategies):",
              {f"{k[0]} s{k[1]}": sorted(merged[k]["curves"]) for k in partial})
    meta = [json.loads(f.read_text())["machine"] for f in files]
    if meta:
        print("machine:", json.dumps(meta[0]))
    if runs:
        print("\n| image | seed | start | round 0 | uncertainty r6 | uncertainty r10 | random r10 |"
              " oracle r10 | uncertainty rounds to random r10 | met |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    cases = sorted({r["case"] for r in runs})
    for r in runs:
        c = r["curves"]
        target = metric(c["random"][-1])
        n = rounds_to_reach(c["uncertainty"], target)
        print(f"| {r['case']} | {r['seed']} | {r['start']} | {metric(c['random'][0]):.3f} | "
              f"{metric(c['uncertainty'][min(6, len(c['uncertainty']) - 1)]):.3f} | "
              f"{metric(c['uncertainty'][-1]):.3f} | {target:.3f} | {metric(c['oracle'][-1]):.3f}"
              f" | {n if n is not None else '> ' + str(len(c['random']) - 1)} | "
              f"{'yes' if n is not None and n <= 6 else 'no'} |")
    if runs:
        print("\nMean over seeds:\n\n| image | uncertainty rounds to random r10 | met |")
        print("|---|---|---|")
    for case in cases:
        rs = [r for r in runs if r["case"] == case]
        mean = {s: [statistics.fmean(metric(r["curves"][s][i]) for r in rs)
                    for i in range(len(rs[0]["curves"][s]))] for s in STRATEGIES}
        n = next((i for i, v in enumerate(mean["uncertainty"]) if v >= mean["random"][-1] - 1e-9),
                 None)
        print(f"| {case} | {n if n is not None else '>10'} | "
              f"{'yes' if n is not None and n <= 6 else 'no'} |")
    if runs and not args.no_figure:
        figure(runs, cases)
    cfiles = sorted(RESULTS.glob("assistant_compare_*.json"))
    datas = [json.loads(f.read_text()) for f in cfiles]
    for d in datas:
        print("\nmachine:", json.dumps(d["machine"]), "settings:", json.dumps(d["settings"]))
    done = {c["case"] for d in datas for c in d["cases"]}
    for log in args.compare_logs:  # images whose run had not finished: the decoders so far
        for res in _parse_compare_log(Path(log)):
            if res["case"] not in done:
                print(f"\n{res['case']}: UNFINISHED, {len(res['rows'])} of {len(DECODERS)} "
                      "decoders (from the printed output):")
                for row in res["rows"]:
                    print(f"  {row['decoder']}: held-out {row['heldout']:.3f} boundary "
                          f"{row['boundary']} truth {row['truth']:.3f}")
    if cfiles:
        data = {"cases": [c for d in datas for c in d["cases"]]}
        agree = 0
        for res in data["cases"]:
            print(f"\n{res['case']}: best on held-out strokes {res['best_heldout']}, best on "
                  f"the full truth {res['best_truth']}")
            print("\n| decoder | held-out | boundary (px) | truth IoU | s/step | parameters |")
            print("|---|---|---|---|---|---|")
            for row in res["rows"]:
                b = row["boundary"]
                print(f"| {row['decoder']} | {row['heldout']:.3f} | "
                      f"{'-' if b is None else f'{b:.3f}'} ({row['boundary_pixels']}) | "
                      f"{metric(row['truth']):.3f} | {row['step_seconds']:.3f} | "
                      f"{row['parameters']:,} |")
            agree += res["best_heldout"] == res["best_truth"]
        print(f"\nheld-out winner = truth winner on {agree} of {len(data['cases'])} images")
    return 0


def _parse_log(path: Path) -> list[tuple[tuple[str, int], str, list[dict]]]:
    """Curves from the lines ``annotate`` prints (``<case> seed S: round 0 V (N px ...``
    and ``  <strategy> round R: V (+N px)``); the metric is stored under ``fg`` for
    nuclei cases (as printed), else ``miou``."""
    import re

    out: dict[tuple[tuple[str, int], str], list[dict]] = {}
    key, first, name = None, None, "miou"
    for line in path.read_text().splitlines():
        m = re.match(r"(\S+) seed (\d+): round 0 ([\d.]+) \((\d+) px painted", line)
        if m:
            key = (m.group(1), int(m.group(2)))
            name = "fg" if m.group(1).startswith(("bbbc", "scratch")) else "miou"
            first = {"round": 0, "painted": int(m.group(4)), "added": 0,
                     name: float(m.group(3))}
            continue
        m = re.match(r"\s+(\w+)\s+round\s+(\d+): ([\d.]+) \(\+(\d+) px\)", line)
        if m and key is not None and first is not None:
            rows = out.setdefault((key, m.group(1)), [dict(first)])
            rows.append({"round": int(m.group(2)), "added": int(m.group(4)),
                         "painted": rows[-1]["painted"] + int(m.group(4)),
                         name: float(m.group(3))})
    return [(k, s, rows) for (k, s), rows in out.items() if len(rows) > 1]


def _parse_compare_log(path: Path) -> list[dict]:
    """Rows ``compare`` printed: ``  <case> <decoder> held-out X boundary Y truth Z``."""
    import re

    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s+(\S+)\s+(\S+)\s+held-out ([\d.]+) boundary (\S+) truth ([\d.]+)",
                     line)
        if m:
            res = out.setdefault(m.group(1), {"case": m.group(1), "rows": []})
            res["rows"].append({"decoder": m.group(2), "heldout": float(m.group(3)),
                                "boundary": m.group(4), "truth": float(m.group(5))})
    return list(out.values())


def figure(runs: list[dict], cases: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cases), figsize=(4.6 * len(cases), 3.6), squeeze=False)
    colours = {"uncertainty": "tab:blue", "random": "tab:orange", "oracle": "tab:green"}
    for ax, case in zip(axes[0], cases):
        for r in (r for r in runs if r["case"] == case):
            for s in STRATEGIES:
                curve = r["curves"][s]
                ax.plot([row["round"] for row in curve], [metric(row) for row in curve],
                        color=colours[s], marker="o", ms=3, lw=1.2,
                        ls="-" if r["seed"] == 0 else "--",
                        label=f"{s} (seed {r['seed']})")
        ax.set_title(case)
        ax.set_xlabel("rounds of strokes added")
        ax.set_ylabel("nucleus IoU" if "fg" in runs[0]["curves"]["random"][0] and
                      case.startswith("bbbc") else "IoU (nuclei) / mean IoU (photo)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)
    print(f"wrote {FIGURE}")


# --------------------------------------------------------------------------- main
def machine(threads: int = 1) -> dict[str, Any]:
    from _common import machine_description
    from realistic import matmul_peak

    return {**machine_description(), "matmul_peak_1thread_gflops": matmul_peak(threads),
            "loadavg": list(os.getloadavg())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("annotate")
    a.add_argument("--cases", nargs="+", default=list(ANNOTATE_CASES[:2]))
    a.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    a.add_argument("--rounds", type=int, default=10)
    a.add_argument("--boxes", type=int, default=2, help="regions painted per round")
    a.add_argument("--box", type=int, default=48, help="region side in px")
    a.add_argument("--start-share", type=float, default=0.15)
    a.add_argument("--start-steps", type=int, default=100)
    a.add_argument("--round-steps", type=int, default=30)
    a.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES,
                   help="run only these (one process each runs in parallel; all share the "
                        "same, seeded round-0 model)")
    c = sub.add_parser("compare")
    c.add_argument("--cases", nargs="+", default=list(COMPARE_CASES))
    c.add_argument("--steps", type=int, default=60)
    c.add_argument("--folds", type=int, default=2)
    r = sub.add_parser("report")
    r.add_argument("--no-figure", action="store_true")
    r.add_argument("--logs", nargs="*", default=[],
                   help="also read curves from annotate's printed output (a run whose JSON "
                        "was not written)")
    r.add_argument("--compare-logs", nargs="*", default=[],
                   help="compare's printed output of images whose JSON was not written")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    if args.cmd == "report":
        return report(args)
    info = machine()
    if args.cmd == "annotate":
        for case in args.cases:
            for seed in args.seeds:
                run = annotate(case, seed, args)
                info["loadavg_after"] = list(os.getloadavg())
                tag = "-".join(args.strategies)
                out = RESULTS / f"assistant_annotate_{case}_s{seed}_{tag}.json"
                out.write_text(json.dumps({"machine": info, "settings": vars(args),
                                           "runs": [run]}, indent=1))
                print(f"wrote {out}")
        return 0
    for case in args.cases:  # one file per image: images can run in parallel
        res = compare(case, args)
        info["loadavg_after"] = list(os.getloadavg())
        out = RESULTS / f"assistant_compare_{case}.json"
        out.write_text(json.dumps({"machine": info, "settings": vars(args), "cases": [res]},
                                  indent=1))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
