"""Probe: the U-Net's probabilities combined with the forest's (or voted over superpixels).

Issue 11, item 4 lists "ensembling with the forest where it is sure" among the things
to try. This probe trains, per case and seed, the forest of ``bench/realistic.py`` and
the product's U-Net (default start, fixed steps, one torch thread), takes both
probability maps and scores them alone and combined. The combination rules were fixed
before the first run:

* ``mean``: the average of the two probability maps (the rule this probe tests);
* ``product``: the sum of the log-probabilities (a product of experts; probabilities
  clipped at 1e-6);
* ``sure``: the forest's class where its top probability is at least 0.8, the
  U-Net's elsewhere ("the forest where it is sure");
* ``mean-w25`` / ``mean-w75``: 0.25 / 0.75 of the forest in the average (a sensitivity
  check of ``mean``, not a choice).

The forest here is the suite's forest (50 trees, depth 10, the same features and seed);
its class-id prediction is the argmax of these probabilities, so its row must repeat the
committed forest rows (a check, printed). The U-Net row must repeat the committed
150-step default rows (another check). Results: ``--out``, default
``bench/results/forest_ensemble.json``; the committed run was split over two processes,
``forest_ensemble_a.json`` and ``forest_ensemble_b.json`` (``--report`` merges them).

``--rules superpixel`` scores the rules of :mod:`superpixels` instead (the U-Net's or the
forest's probabilities averaged over SLIC superpixels of the image; the same trainings,
so the ``unet`` and ``forest`` rows are the same checks).

Run::

    nice -n 19 .venv/bin/python bench/forest_ensemble.py --cases arc2017 voc --seeds 0 1 2
    .venv/bin/python bench/forest_ensemble.py --report bench/results/forest_ensemble*.json
    nice -n 19 .venv/bin/python bench/forest_ensemble.py --rules superpixel \\
        --out bench/results/superpixel_vote.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import realistic as rl  # noqa: E402
import realistic_cases as rc  # noqa: E402
import superpixels as sp  # noqa: E402
from ablate import forest_rows  # noqa: E402  (the committed forest rows)

RESULTS = HERE / "results" / "forest_ensemble.json"
REFERENCE = HERE / "results" / "realistic_steps150_headrule.json"
SURE = 0.8
RULESETS = {"ensemble": ("unet", "forest", "mean", "product", "sure", "mean-w25",
                         "mean-w75"),
            "superpixel": ("unet", "forest", *sp.RULES)}


def combine(p_unet: np.ndarray, p_forest: np.ndarray, rule: str,
            seg: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Class ids (1..K) from two ``(K, *spatial)`` probability maps by ``rule``;
    ``seg``: the image's superpixels by mean area (for the rules of :mod:`superpixels`)."""
    if rule in sp.RULES:
        area, mix, model = sp.RULES[rule]
        return sp.vote(p_unet if model == "unet" else p_forest, seg[area], mix).argmax(0) + 1
    if rule == "unet":
        return p_unet.argmax(0) + 1
    if rule == "forest":
        return p_forest.argmax(0) + 1
    if rule == "product":
        return (np.log(np.clip(p_unet, 1e-6, 1)) + np.log(np.clip(p_forest, 1e-6, 1))
                ).argmax(0) + 1
    if rule == "sure":
        pick = np.where(p_forest.max(0) >= SURE, p_forest.argmax(0), p_unet.argmax(0))
        return pick + 1
    w = {"mean": 0.5, "mean-w25": 0.25, "mean-w75": 0.75}[rule]
    return ((1 - w) * p_unet + w * p_forest).argmax(0) + 1


def run_case(name: str, seed: int, steps: int, rules: tuple[str, ...] = RULESETS["ensemble"]
             ) -> list[dict[str, Any]]:
    """Every rule of ``rules`` on one case and seed; one row per rule."""
    case, data = rc.build(name, seed)
    images = [img for _, img, _ in data["eval"]]
    p_unet, info = rl.unet(data["train"], images, seed, "pretrained", steps, None, None,
                           threads=1, probabilities=True)
    k = p_unet[0].shape[0]
    p_forest, forest_s = rl.forest(data["train"], images, case.rgb, seed, probabilities=k)
    areas = sorted({sp.RULES[r][0] for r in rules if r in sp.RULES})
    segs = [{a: sp.segments(img, a) for a in areas} for img in images]
    rows = []
    for rule in rules:
        preds = [combine(u, f, rule, s)
                 for u, f, s in zip(p_unet, p_forest, segs, strict=True)]
        row = {"case": name, "seed": seed, "rule": rule, "check_only": case.check_only,
               **rl.score(preds, data["eval"], case.foreground),
               "steps": info["steps"], "start_used": info["start_used"],
               "forest_s": forest_s, "unet_train_s": info["train_s"]}
        rows.append(row)
        print(f"  {name:24s} seed {seed} {rule:9s} miou {row['miou']:.4f}"
              + (f" fg {row['fg']:.4f}" if "fg" in row else ""), flush=True)
    return rows


def _unet_reference(path: Path = REFERENCE) -> dict[tuple[str, int], dict]:
    """The committed 150-step default U-Net rows, by (case, seed)."""
    return {(r["case"], r["seed"]): r for r in json.loads(path.read_text())["rows"]
            if r["method"] != "forest"}


def _cell(r: dict | None, forest: dict, gap: bool) -> tuple[str, float, bool]:
    """One table cell (score, ratio to the forest, ``*`` where both goals are met)."""
    if r is None:
        return "-", 0.0, False
    ratio = r["miou"] / forest["miou"]
    ok = ratio >= rl.GOAL_RATIO and (not gap or r.get("fg", 1.0) >= rl.GOAL_FG)
    fg = f" / {r['fg']:.3f}" if "fg" in r else ""
    return f"{r['miou']:.3f}{fg} ({ratio:.2f}){'*' if ok else ''}", ratio, ok


def report(paths: list[Path]) -> int:
    """Per case and seed: every rule's score and ratio to the forest; goals marked."""
    rows = [r for p in paths for r in json.loads(p.read_text())["rows"]]
    by = {(r["case"], r["seed"], r["rule"]): r for r in rows}
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    columns = ["forest", "unet", *(r for r in rules if r not in ("forest", "unet"))]
    ref_unet = _unet_reference()
    ref_forest = forest_rows()
    keys = sorted({(r["case"], r["seed"]) for r in rows})
    print("| case | seed | forest | U-Net | " + " | ".join(columns[2:])
          + " | checks (forest, U-Net = committed) |")
    print("|---|---|---|---|" + "---|" * (len(columns) - 2) + "---|")
    met = {rule: 0 for rule in columns}
    ratios: dict[str, list[float]] = {rule: [] for rule in columns}
    for case, seed in keys:
        forest = by[(case, seed, "forest")]
        cells = []
        for rule in columns:
            r = by.get((case, seed, rule))
            text, ratio, ok = _cell(r, forest, rc.CASES[case].gap)
            cells.append(text)
            if r is not None and not r["check_only"]:
                ratios[rule].append(ratio)
                met[rule] += ok
        checks = []
        rf, ru = ref_forest.get((case, seed)), ref_unet.get((case, seed))
        if rf:
            checks.append(f"forest {abs(rf['miou'] - forest['miou']) < 5e-4}")
        if ru:
            checks.append(f"U-Net {abs(ru['miou'] - by[(case, seed, 'unet')]['miou']) < 5e-4}")
        label = f"{case}{' (check)' if rc.CASES[case].check_only else ''}"
        print(f"| {label} | {seed} | " + " | ".join(cells) + f" | {', '.join(checks)} |")
    n = len(ratios["unet"])
    print(f"| mean ratio (n={n}, checks excluded) | | "
          + " | ".join(f"{statistics.fmean(ratios[r]):.3f}" if ratios[r] else "-"
                       for r in columns) + " | |")
    print(f"| goals met (*) of {n} | | " + " | ".join(str(met[r]) for r in columns) + " | |")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", choices=sorted(rc.CASES), help="default: all")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rules", choices=sorted(RULESETS), default="ensemble")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--report", nargs="+", type=Path)
    args = ap.parse_args(argv)
    if args.report:
        return report(args.report)
    import torch

    torch.set_num_threads(1)
    from _common import machine_description

    result: dict[str, Any] = {
        "machine": {**machine_description(), "matmul_gflops_1thread": rl.matmul_peak(1),
                    "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
        "steps": args.steps, "sure": SURE, "rules": args.rules,
        "command": "python bench/forest_ensemble.py " + " ".join(argv or sys.argv[1:]),
        "rows": []}
    print(result["machine"], flush=True)
    for name in args.cases or list(rc.CASES):
        for seed in args.seeds:
            result["rows"] += run_case(name, seed, args.steps, RULESETS[args.rules])
            result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    return report([args.out])


if __name__ == "__main__":
    raise SystemExit(main())
