"""Annotation assistant benchmark: where to paint next, and which decoder to pick.

``annotate``: a simulated annotator on real development images
(:mod:`realistic_cases`). It starts from a few strokes (the case's user-like strokes
thinned to ``--start-share``), trains, then adds strokes in rounds. In every round it
paints ``--boxes`` square regions of ``--box`` px; a region is chosen

* ``uncertainty``: by the product's uncertainty map (entropy of the live prediction,
  :func:`napari_unet_studio.core.uncertainty.uncertain_regions`, as the Next button does);
* ``random``: uniformly among the unpainted regions;
* ``oracle``: where the prediction is most wrong (uses the truth: the upper bound).

Painting a region (:mod:`assistant_annotator`), ``--annotator``:

* ``correct`` (default): what a user does who corrects the prediction in the box: a
  stroke (skeleton and long-axis line) of every class present plus every wrongly
  predicted pixel painted with its true class, brushed 3 px wide, kept ``--margin`` (1) px
  from every class boundary, so the strokes reach the true boundaries;
* ``inside`` (the earlier benchmark): the class strokes only, 2 px inside the class: they
  never carry boundary information.

Every round **retrains from the same fixed start** (the engine's default start,
the same seed) for the same ``--steps`` on all the strokes painted so far: the model of
round ``r`` depends only on the strokes, not on the rounds before it (continuing from the
previous round's model with a restarted schedule made +-0.1 of noise per round). All
strategies share the round-0 model. One torch thread: the result does not depend on the
load. Scored against the full truth (mean IoU; nucleus IoU on nuclei).

``compare``: the decoder comparison on 5 development images: every decoder trained on
the case's strokes with the same budget (``core/compare.py``: stroke-wise 2 folds held
out, then all strokes); the winner on held-out strokes against the winner on the full
truth.

Run (fixed steps, no lock needed)::

    nice -n 19 .venv/bin/python bench/assistant.py annotate --cases bbbc-gap-A9_p10d --steps 50
    nice -n 19 .venv/bin/python bench/assistant.py compare
    .venv/bin/python bench/assistant.py report        # tables + docs/images figure

Writes ``bench/results/assistant_annotate_<case>[_<start>][_inside]_s<seed>.json``
(after every round, so an interrupted run keeps its rounds) and
``bench/results/assistant_compare_<case>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
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
def annotate(name: str, seed: int, args: argparse.Namespace,
             save: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every strategy on one image and seed; ``save(run)`` after every round."""
    import strokes as st
    from assistant_annotator import Annotator, pick_regions

    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.infer import predict_image
    from napari_unet_studio.core.progress import run_to_end
    from napari_unet_studio.core.train import Trainer

    image, strokes, truth, fg = case_data(name, seed)
    painted0 = st.thin_out(strokes, args.start_share, seed=seed)
    tc = TrainConfig(steps=args.steps, device="cpu", seed=seed,  # the same for every round
                     **({"start": args.start} if args.start else {}))
    annotator = Annotator(truth, args.annotator, args.margin)
    cost: list[dict[str, float]] = []

    def fit(labels: np.ndarray) -> Any:  # always from the default start: init=None
        c0 = time.process_time()
        model = run_to_end(Trainer([(image, labels)], None, tc, threads=1).run())
        rec = model.record
        cost.append({"train_cpu_s": round(time.process_time() - c0, 2),
                     "step_s": round(float(rec["seconds"]) / max(1, int(rec["steps"])), 4)})
        return model

    def look(model: Any) -> tuple[np.ndarray, np.ndarray]:
        res = predict_image(model, image, probabilities=True, device="cpu", threads=1)
        return np.asarray(res.labels), np.asarray(res.probabilities)

    model0 = fit(painted0)
    pred0, probs0 = look(model0)
    first = {"round": 0, "painted": int(np.count_nonzero(painted0)), "added": 0,
             **score(pred0, truth, fg), **cost[-1]}
    out: dict[str, Any] = {"case": run_label(name, args.start, args.annotator), "seed": seed,
                           "foreground": fg, "steps": args.steps, "annotator": args.annotator,
                           "margin": annotator.margin, "start": model0.record.get("start"),
                           "explore": args.explore, "curves": {}}
    print(f"{name} seed {seed}: round 0 {metric(first):.3f} ({first['painted']} px painted, "
          f"{first['step_s']} s/step)", flush=True)
    for strategy in args.strategies:
        rounds = {"oracle": args.oracle_rounds,
                  "uncertainty": args.uncertainty_rounds}.get(strategy) or args.rounds
        rng = np.random.default_rng([seed, 7])
        painted, pred, probs = painted0.copy(), pred0, probs0
        rows = out["curves"][strategy] = [first]
        for r in range(1, rounds + 1):
            centers = pick_regions(strategy, painted, probs, pred, truth, args.box, args.boxes,
                                   rng, args.explore)
            added = sum(annotator.paint(painted, c, args.box, pred) for c in centers)
            pred, probs = look(fit(painted))
            row = {"round": r, "painted": int(np.count_nonzero(painted)), "added": added,
                   "centers": [list(c) for c in centers], **score(pred, truth, fg), **cost[-1]}
            rows.append(row)
            print(f"  {strategy:11s} round {r:2d}: {metric(row):.3f} (+{added} px, "
                  f"{row['step_s']} s/step)", flush=True)
            if save is not None:
                save(out)
    steps = [c["step_s"] for c in cost]
    out["step_s_median"] = float(np.median(steps))
    out["train_cpu_s_total"] = round(sum(c["train_cpu_s"] for c in cost), 1)
    return out


def kept_curves(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The curves of an earlier run in ``out`` that this run does not redo.

    With ``--keep-others`` the strategies not in ``--strategies`` keep their stored
    curves (random and the oracle do not depend on the uncertainty ranking); an earlier
    ``uncertainty`` curve that this run redoes with another ``--explore`` is kept as
    ``uncertainty (explore X)``. Returns ``{"curves": ..., "from": settings or None}``.
    """
    if not args.keep_others or not out.exists():
        return {"curves": {}, "from": None}
    old = json.loads(out.read_text())
    run = old["runs"][0]
    curves = {k: v for k, v in run["curves"].items() if k not in args.strategies}
    old_explore = run.get("explore", 0.0)  # runs before the option: the entropy alone
    if "uncertainty" in args.strategies and "uncertainty" in run["curves"] and \
            old_explore != args.explore:
        curves[f"uncertainty (explore {old_explore:g})"] = run["curves"]["uncertainty"]
    return {"curves": curves, "from": {"machine": old["machine"], "settings": old["settings"]}}


def run_label(name: str, start: str | None, annotator: str) -> str:
    """The case name of a run: ``name``, with its start and annotator when not the default."""
    tags = [t for t in (start, None if annotator == "correct" else f"{annotator} strokes") if t]
    return f"{name} ({', '.join(tags)})" if tags else name


def result_path(name: str, start: str | None, annotator: str, seed: int) -> Path:
    """``assistant_annotate_<case>[_<start>][_inside]_s<seed>.json``."""
    tag = "".join(f"_{t}" for t in (start, None if annotator == "correct" else annotator) if t)
    return RESULTS / f"assistant_annotate_{name}{tag}_s{seed}.json"


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
        c0 = time.process_time()
        row, model = evaluate_decoder(pairs, decoder, train_config=tc, splits=splits, threads=1)
        pred = predict_image(model, image, device="cpu", threads=1).labels
        row["truth"] = score(pred, truth, fg)
        row["start"] = model.record.get("start")
        row["cpu_seconds"] = round(time.process_time() - c0, 1)
        rows.append(row)
        print(f"  {name:24s} {decoder:12s} held-out {row['heldout']:.3f} "
              f"nll {_f(row['heldout_nll'])} boundary {_f(row['boundary'])} "
              f"boundary-nll {_f(row['boundary_nll'])} truth {metric(row['truth']):.3f} "
              f"({row['step_seconds']:.3f} s/step)", flush=True)
    return {"case": name, "foreground": fg, "rows": rows, "steps": args.steps,
            "best": {"agreement": best_by_agreement(rows), "nll": pick_best(rows),
                     "boundary_nll": best_by_boundary_nll(rows),
                     "truth": max(rows, key=lambda r: metric(r["truth"]))["decoder"]}}


def best_by_agreement(rows: list[dict]) -> str:
    """The winner before the cross-entropy: agreement, boundary agreement, fewer weights."""
    def key(r: dict) -> tuple:
        b = r.get("boundary")
        return (round(float(r["heldout"]), 4), -1.0 if b is None else round(float(b), 4),
                -(r.get("parameters") or 0))
    return str(max(rows, key=key)["decoder"])


def best_by_boundary_nll(rows: list[dict]) -> str | None:
    scored = [r for r in rows if r.get("boundary_nll") is not None]
    return str(min(scored, key=lambda r: r["boundary_nll"])["decoder"]) if scored else None


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------------- report
def rounds_to_reach(curve: list[dict], target: float) -> int | None:
    for row in curve:
        if metric(row) >= target - 1e-9:
            return int(row["round"])
    return None


def load_runs(annotator: str) -> list[tuple[Path, dict, dict]]:
    """``(file, machine, run)`` of every annotate result of that annotator mode.

    Files written before the ``correct`` mode have no ``annotator`` key: ``inside``.
    """
    out = []
    for f in sorted(RESULTS.glob("assistant_annotate_*.json")):
        d = json.loads(f.read_text())
        for r in d["runs"]:
            if "annotator" not in r:
                r["annotator"] = "inside"
                start = r["case"].partition(" (")[2].rstrip(")") or None
                r["case"] = run_label(r["case"].partition(" (")[0], start, "inside")
            if r["annotator"] == annotator:
                out.append((f, d["machine"], r))
    return out


def _reach(curves: dict, target: float) -> str:
    n = rounds_to_reach(curves["uncertainty"], target)
    return f"{n} ({target:.3f})" if n is not None else \
        f"> {len(curves['uncertainty']) - 1} ({target:.3f})"


def report(args: argparse.Namespace) -> int:
    loaded = load_runs(args.annotator)
    runs = [r for _, _, r in loaded]
    for f, m, r in loaded:
        print(f"{f.name}: steps {r['steps']}, matmul peak {m['matmul_peak_1thread_gflops']} "
              f"GFLOP/s, load {m['loadavg'][0]:.1f}-{m.get('loadavg_after', [0])[0]:.1f}, "
              f"median s/step {r.get('step_s_median', '(unfinished)')}")
    if runs:
        print("\n| image | seed | strategy | IoU after rounds 0.. | mean from r1 | "
              "painted px (last) |")
        print("|---|---|---|---|---|---|")
    for r in runs:
        for s, curve in r["curves"].items():
            mean = np.mean([metric(row) for row in curve[1:]]) if len(curve) > 1 else None
            print(f"| {r['case']} | {r['seed']} | {s} | "
                  f"{' '.join(f'{metric(row):.3f}' for row in curve)} | {_f(mean)} | "
                  f"{curve[-1]['painted']} |")
    if runs:
        print("\n| image | seed | round 0 | uncertainty r6 | random r10 | oracle (last) | "
              "uncertainty rounds to random r10 | painted px: uncertainty then, random r10 | "
              "met | stricter: rounds to random's best r1-10 |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        c = r["curves"]
        if len(c.get("random", [])) < 11 or "uncertainty" not in c:
            print(f"| {r['case']} | {r['seed']} | incomplete | | | | | | | |")
            continue
        target = metric(c["random"][10])
        n = rounds_to_reach(c["uncertainty"], target)
        best = max(metric(row) for row in c["random"][1:11])
        u6 = c["uncertainty"][min(6, len(c["uncertainty"]) - 1)]
        o = c.get("oracle", [{}])[-1]
        print(f"| {r['case']} | {r['seed']} | {metric(c['random'][0]):.3f} | {metric(u6):.3f} | "
              f"{target:.3f} | {_f(metric(o) if o else None)} (r{o.get('round', '-')}) | "
              f"{n if n is not None else '> ' + str(len(c['uncertainty']) - 1)} | "
              f"{c['uncertainty'][n]['painted'] if n is not None else '-'}, "
              f"{c['random'][10]['painted']} | "
              f"{'yes' if n is not None and n <= 6 else 'no'} | {_reach(c, best)} |")
    full = [r for r in runs if len(r["curves"].get("random", [])) >= 11
            and len(r["curves"].get("uncertainty", [])) >= 7]
    if full:
        print("\nMean over the complete seeds:\n\n| image | seeds | uncertainty r0..r6 | "
              "random r10 | uncertainty rounds to random r10 | met |\n|---|---|---|---|---|---|")
    for case in sorted({r["case"] for r in full}):
        rs = [r for r in full if r["case"] == case]
        unc = [float(np.mean([metric(r["curves"]["uncertainty"][i]) for r in rs]))
               for i in range(min(len(r["curves"]["uncertainty"]) for r in rs))]
        target = float(np.mean([metric(r["curves"]["random"][10]) for r in rs]))
        n = next((i for i, v in enumerate(unc) if v >= target - 1e-9), None)
        print(f"| {case} | {len(rs)} | {' '.join(f'{v:.3f}' for v in unc[:7])} | "
              f"{target:.3f} | {n if n is not None else '> ' + str(len(unc) - 1)} | "
              f"{'yes' if n is not None and n <= 6 else 'no'} |")
    explore_table(full)
    if runs and not args.no_figure and args.annotator == "correct":
        figure(runs, sorted({r["case"] for r in runs}))
    datas = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("assistant_compare_*.json"))]
    cases = [(d["machine"], c) for d in datas for c in d["cases"] if "best" in c]
    agree = dict.fromkeys(("agreement", "nll", "boundary_nll"), 0)
    for info, res in cases:
        b = res["best"]
        print(f"\n{res['case']} ({res['steps']} steps, matmul peak "
              f"{info['matmul_peak_1thread_gflops']} GFLOP/s): best by agreement "
              f"{b['agreement']}, by cross-entropy {b['nll']}, by boundary cross-entropy "
              f"{b['boundary_nll'] or '-'}, on the full truth {b['truth']}")
        print("\n| decoder | held-out | cross-entropy | boundary (px) | boundary cross-entropy |"
              " truth IoU | s/step | parameters |")
        print("|---|---|---|---|---|---|---|---|")
        for row in res["rows"]:
            print(f"| {row['decoder']} | {row['heldout']:.3f} | {_f(row['heldout_nll'])} | "
                  f"{_f(row['boundary'])} ({row['boundary_pixels']}) | "
                  f"{_f(row['boundary_nll'])} | {metric(row['truth']):.3f} | "
                  f"{row['step_seconds']:.3f} | {row['parameters']:,} |")
        for k in agree:
            agree[k] += b[k] == b["truth"]
    if cases:
        print("\nheld-out winner = truth winner: " + ", ".join(
            f"{k} {v} of {len(cases)}" for k, v in agree.items()))
    return 0


def explore_table(runs: list[dict]) -> None:
    """The uncertainty curve against an earlier one with another ``explore`` weight."""
    pairs = [(r, k) for r in runs for k in r["curves"] if k.startswith("uncertainty (")]
    if not pairs:
        return
    print("\nThe ranking with and without the distance to the painted pixels (same round 0, "
          "random and oracle):\n\n| image | seed | ranking | uncertainty r0..r6 | mean r1-6 | "
          "rounds to random r10 | rounds to random's best r1-10 |\n|---|---|---|---|---|---|---|")
    for r, key in pairs:
        c = r["curves"]
        target = metric(c["random"][10])
        best = max(metric(row) for row in c["random"][1:11])
        for label, curve in ((f"explore {r.get('explore', 0):g}", c["uncertainty"]),
                             (key.partition(" (")[2].rstrip(")"), c[key])):
            n = rounds_to_reach(curve, target)
            nb = rounds_to_reach(curve, best)
            print(f"| {r['case']} | {r['seed']} | {label} | "
                  f"{' '.join(f'{metric(row):.3f}' for row in curve[:7])} | "
                  f"{np.mean([metric(row) for row in curve[1:7]]):.3f} | "
                  f"{n if n is not None else '> 6'} | {nb if nb is not None else '> 6'} |")


def figure(runs: list[dict], cases: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(cases), figsize=(4.6 * len(cases), 7.0), squeeze=False)
    colours = {"uncertainty": "tab:blue", "random": "tab:orange", "oracle": "tab:green"}
    for col, case in enumerate(cases):
        for r in (r for r in runs if r["case"] == case):
            earlier = [k for k in r["curves"] if k.startswith("uncertainty (")]
            for s in [s for s in STRATEGIES if s in r["curves"]] + earlier:
                curve = r["curves"][s]
                style = dict(color=colours.get(s, "tab:purple"), marker="o", ms=3, lw=1.2,
                             ls=("-", "--", ":", "-.")[r["seed"] % 4],
                             label=f"{s} (seed {r['seed']})")
                y = [metric(row) for row in curve]
                axes[0][col].plot([row["round"] for row in curve], y, **style)
                axes[1][col].plot([row["painted"] for row in curve], y, **style)
        ylabel = "nucleus IoU" if case.startswith(("bbbc", "scratch")) else "mean IoU"
        axes[0][col].set_title(case)
        axes[0][col].set_xlabel("rounds of strokes added (2 boxes of 48 px each)")
        axes[1][col].set_xlabel("painted pixels")
        for ax in axes[:, col]:
            ax.set_ylabel(ylabel)
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
    a.add_argument("--steps", type=int, default=50,
                   help="training steps of every round's retraining from the default start")
    a.add_argument("--oracle-rounds", type=int, default=None,
                   help="fewer rounds for the oracle (default: --rounds)")
    a.add_argument("--explore", type=float, default=None,
                   help="uncertainty: weight of the distance to the painted pixels "
                        "(default: the product's, uncertainty.EXPLORE; 0: entropy alone)")
    a.add_argument("--keep-others", action="store_true",
                   help="keep the stored curves of the strategies not run (and an earlier "
                        "uncertainty curve with another --explore) in the result file")
    a.add_argument("--uncertainty-rounds", type=int, default=None,
                   help="fewer rounds for uncertainty (default: --rounds; the goal needs 6)")
    a.add_argument("--annotator", default="correct", choices=("correct", "inside"),
                   help="correct: class strokes plus the prediction's errors in the box, up "
                        "to --margin px from the boundaries (default); inside: class strokes "
                        "only, 2 px inside (the earlier benchmark)")
    a.add_argument("--margin", type=int, default=None,
                   help="px kept free on each side of a class boundary (default 1 for "
                        "correct, 2 for inside)")
    a.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    a.add_argument("--start", default=None,
                   help="TrainConfig.start instead of the default (e.g. scratch: a model far "
                        "from its ceiling); tagged in the case name and the file name")
    c = sub.add_parser("compare")
    c.add_argument("--cases", nargs="+", default=list(COMPARE_CASES))
    c.add_argument("--steps", type=int, default=30)
    c.add_argument("--folds", type=int, default=2)
    r = sub.add_parser("report")
    r.add_argument("--no-figure", action="store_true")
    r.add_argument("--annotator", default="correct", choices=("correct", "inside"),
                   help="which annotator's runs to report (the figure: correct only)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    if args.cmd == "report":
        return report(args)
    info = machine()
    if args.cmd == "annotate":
        from napari_unet_studio.core.uncertainty import EXPLORE

        args.explore = EXPLORE if args.explore is None else float(args.explore)
        for case in args.cases:
            for seed in args.seeds:
                out = result_path(case, args.start, args.annotator, seed)

                kept = kept_curves(out, args)

                def save(run: dict[str, Any], out: Path = out, kept: dict = kept) -> None:
                    info["loadavg_after"] = list(os.getloadavg())
                    run["curves"] = {**kept["curves"], **run["curves"]}
                    extra = {"kept_from": kept["from"]} if kept["from"] else {}
                    out.write_text(json.dumps({"machine": info, "settings": vars(args),
                                               "runs": [run], **extra}, indent=1))

                save(annotate(case, seed, args, save))
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
