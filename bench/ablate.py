"""Ablations on the realistic suite: one engine change on/off, same strokes, same steps.

Each variant is a named set of :class:`ModelConfig` fields (``arch``) and
:class:`TrainConfig` fields (``train``) applied on top of the defaults; the forest is
taken from a committed result file of ``bench/realistic.py`` (same strokes: they depend
only on the case and seed), so only the U-Nets run.

Run::

    nice -n 19 .venv/bin/python bench/ablate.py --cases arc2017 voc --seeds 0 1 2 \\
        --variants default stem-pixel --out bench/results/ablate_stem.json
    nice -n 19 .venv/bin/python bench/ablate.py --cases voc --tta 1 8 \\
        --out bench/results/ablate_tta.json      # one training, one row per TTA count
    .venv/bin/python bench/ablate.py --report bench/results/ablate_*.json
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import realistic as rl  # noqa: E402
import realistic_cases as rc  # noqa: E402

FOREST_FILE = HERE / "results" / "realistic_steps150_scratch.json"

# name -> (ModelConfig fields, TrainConfig fields)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "default": ({}, {}),
    "stem-none": ({"stem": "none"}, {}),
    "stem-pixel": ({"stem": "pixel"}, {}),
    "stem-project": ({"stem": "project"}, {}),
    "stem-both": ({"stem": "both"}, {}),
    "scratch": ({}, {"start": "scratch"}),
    "scratch-stem-none": ({"stem": "none"}, {"start": "scratch"}),
    "scratch-stem-pixel": ({"stem": "pixel"}, {"start": "scratch"}),
    "scratch-stem-both": ({"stem": "both"}, {"start": "scratch"}),
    "holdout": ({}, {"holdout": 0.2}),
    "holdout-none": ({}, {"holdout": 0.0}),
}


def forest_rows(path: Path = FOREST_FILE) -> dict[tuple[str, int], dict]:
    """Forest rows of a committed realistic-suite result, by (case, seed)."""
    rows = json.loads(path.read_text())["rows"]
    return {(r["case"], r["seed"]): r for r in rows if r["method"] == "forest"}


def parse_variant(spec: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A registered name, or ``name:arch.key=value,train.key=value,tile.key=value`` (JSON
    values; a list's commas stay in it: ``patch.data.WEIGHT_CLIP=[1,1]``). ``tile.``
    fields (e.g. ``tile.tta=8``) go to prediction; they travel in the train dict under
    the key ``"tile"``."""
    if ":" not in spec:
        arch, train = VARIANTS[spec]
        return spec, dict(arch), dict(train)
    name, _, body = spec.partition(":")
    arch: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for item in filter(None, re.split(r",(?![^\[]*\])", body)):  # not inside [..]
        key, _, value = item.partition("=")
        where, _, field = key.partition(".")
        try:
            val = json.loads(value)
        except ValueError:
            val = value
        if where in ("tile", "patch"):  # patch.<core module>.<NAME>: a module constant
            train.setdefault(where, {})[field] = val
        else:
            (arch if where == "arch" else train)[field] = val
    return name, arch, train


def run_variant(name: str, arch: dict, train: dict, case: str, seed: int,
                threads: int, steps: int, tta: list[int] | None = None) -> list[dict]:
    """Train and score one variant on one case and seed; one row per prediction.

    ``tta``: predict the one trained model with each of these test-time augmentation
    counts (rows named ``<name>+tta<n>``, ``<name>`` for 1) instead of the variant's
    ``tile.tta``; the training is shared, so the rows differ only by the prediction."""
    import napari_unet_studio as nus
    from napari_unet_studio.core.config import TileConfig, TrainConfig

    c, data = rc.build(case, seed)
    images = [img for _, img, _ in data["eval"]]
    train = dict(train)
    tile_fields = train.pop("tile", {})
    patches = train.pop("patch", {})
    tile = TileConfig(**tile_fields)
    tc = TrainConfig(device="cpu", **train)
    saved = []
    for key, value in patches.items():  # e.g. "stem._HIDDEN": 64, restored below
        mod_name, _, attr = key.rpartition(".")
        mod = importlib.import_module(f"napari_unet_studio.core.{mod_name}")
        saved.append((mod, attr, getattr(mod, attr)))
        setattr(mod, attr, value)
    try:
        t0 = time.perf_counter()
        model = nus.train(data["train"], train_config=tc, steps=steps, seed=seed,
                          threads=threads, arch=arch or None)
        train_s = round(time.perf_counter() - t0, 1)
        rows = []
        for n in tta or [tile.tta]:
            t1 = time.perf_counter()
            tile_n = dataclasses.replace(tile, tta=n)
            preds = [nus.predict(model, img, tile=tile_n, threads=threads, device="cpu")
                     for img in images]
            label = name if not tta or n == 1 else f"{name}+tta{n}"
            rows.append({
                "case": case, "seed": seed, "variant": label, "arch": arch, "train": train,
                "tile": {**tile_fields, "tta": n} if tta else tile_fields, "patch": patches,
                **rl.score(preds, data["eval"], c.foreground),
                "steps": model.record.get("steps"),
                "best_step": model.record.get("best_step"),
                "start_used": model.record.get("start"), "train_s": train_s,
                "predict_s": round(time.perf_counter() - t1, 1)})
    finally:
        for mod, attr, value in saved:
            setattr(mod, attr, value)
    return rows


def _meets_goals(case: str, row: dict, forest: dict | None) -> bool:
    """The realistic suite's goals for one case and seed (docs/benchmarks.md)."""
    if forest is None:
        return False
    ok = row["miou"] >= rl.GOAL_RATIO * forest["miou"]
    return ok and (not (rc.CASES[case].gap and "fg" in row) or row["fg"] >= rl.GOAL_FG)


def report(paths: list[Path]) -> str:
    """Markdown: per case and seed, forest and every variant (ratio to the forest; "*"
    where both goals are met), then the mean ratio and the goals met per variant.

    A ``bench/realistic.py`` result file counts as one variant named after the file: its
    default-start (``pretrained``) rows.
    """
    rows: list[dict] = []
    for p in paths:
        for r in json.loads(p.read_text())["rows"]:
            if "variant" not in r and r.get("method") == "pretrained":
                r = {**r, "variant": p.stem.removeprefix("realistic_")}
            rows += [r] if "variant" in r else []
    forest = forest_rows()
    variants: list[str] = []
    for r in rows:
        variants += [r["variant"]] if r["variant"] not in variants else []
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["seed"]), {})[r["variant"]] = r
    head = ["case", "seed", "forest"] + variants
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sums: dict[str, list[float]] = {v: [] for v in variants}
    met = dict.fromkeys(variants, 0)
    for (case, seed), by in sorted(groups.items()):
        f = forest.get((case, seed))
        fg = "fg" in (f or {})
        cells = [case, str(seed), "-" if f is None else f"{f['miou']:.3f}"
                 + (f" / {f['fg']:.3f}" if fg else "")]
        for v in variants:
            r = by.get(v)
            if r is None:
                cells.append("-")
                continue
            txt = f"{r['miou']:.3f}" + (f" / {r['fg']:.3f}" if "fg" in r else "")
            if f is not None:
                ratio = r["miou"] / f["miou"]
                sums[v].append(ratio)
                met[v] += int(_meets_goals(case, r, f))
                txt += f" ({ratio:.2f})" + ("*" if _meets_goals(case, r, f) else "")
            cells.append(txt)
        out.append("| " + " | ".join(cells) + " |")
    out.append("| mean ratio | | | " + " | ".join(
        f"{statistics.fmean(sums[v]):.3f} (n={len(sums[v])})" if sums[v] else "-"
        for v in variants) + " |")
    out.append("| goals met (*) | | | " + " | ".join(
        f"{met[v]} of {len(sums[v])}" for v in variants) + " |")
    return "\n".join(out)


def suite_table(new_paths: list[Path], results: Path = HERE / "results") -> str:
    """Markdown: per case and seed, the forest, the previous default and the new one.

    The previous default is the committed ``realistic_steps150_pretrained.json`` row on
    the nuclei cases and ``realistic_steps150_scratch.json`` on the photos (where the
    engine falls back to random weights, docs/benchmarks.md); the new rows are the
    ``pretrained`` rows (the default start) of ``new_paths``.
    """
    load = lambda p: json.loads(p.read_text())["rows"]  # noqa: E731
    old_pre = {(r["case"], r["seed"]): r for r in load(results /
               "realistic_steps150_pretrained.json")}
    old_scr = {(r["case"], r["seed"]): r for r in load(results /
               "realistic_steps150_scratch.json") if r["method"] == "scratch"}
    forest = forest_rows()
    new = {(r["case"], r["seed"]): r for p in new_paths for r in load(p)
           if r["method"] == "pretrained"}
    head = ["case", "seed", "forest", "previous default", "new default", "new / forest",
            "goals (new)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda r: "-" if r is None else f"{r['miou']:.3f}" + (  # noqa: E731
        f" / {r['fg']:.3f}" if "fg" in r else "")
    for case in rc.CASES:
        for seed in (0, 1, 2):
            key = (case, seed)
            if key not in new:
                continue
            f, n = forest[key], new[key]
            old = old_pre.get(key) if rc.CASES[case].foreground else old_scr.get(key)
            ratio = n["miou"] / f["miou"]
            ok = ratio >= rl.GOAL_RATIO and (not (rc.CASES[case].gap and "fg" in n)
                                            or n["fg"] >= rl.GOAL_FG)
            out.append(f"| {case} | {seed} | {fmt(f)} | {fmt(old)} | {fmt(n)} | "
                       f"{ratio:.3f} | {'met' if ok else 'no'} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description="realistic-suite ablations")
    ap.add_argument("--cases", nargs="+", choices=sorted(rc.CASES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["default"])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tta", nargs="+", type=int, choices=[1, 2, 4, 8],
                    help="predict every trained model with each of these test-time "
                    "augmentation counts (one training, one row per count)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--report", nargs="+", type=Path)
    ap.add_argument("--suite", nargs="+", type=Path,
                    help="realistic.py result files of the new default: compare them with "
                    "the committed previous default and the forest, then exit")
    args = ap.parse_args(argv)
    if args.suite:
        print(suite_table(args.suite))
        return 0
    if args.report:
        print(report(args.report))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    variants = [parse_variant(v) for v in args.variants]
    out = args.out or HERE / "results" / "ablate.json"
    from _common import machine_description

    machine = machine_description()
    machine["matmul_gflops_1thread"] = rl.matmul_peak(1)
    machine["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {"machine": machine, "steps": args.steps, "threads": args.threads,
                              "command": "python bench/ablate.py " + " ".join(
                                  argv or sys.argv[1:]), "rows": []}
    forest = forest_rows()
    for case in args.cases or list(rc.CASES):
        for seed in args.seeds:
            for name, arch, train in variants:
                for row in run_variant(name, arch, train, case, seed, args.threads,
                                       args.steps, args.tta):
                    f = forest.get((case, seed))
                    ratio = row["miou"] / f["miou"] if f else float("nan")
                    print(f"{case:22s} s{seed} {row['variant']:22s} miou {row['miou']:.3f}"
                          + (f" fg {row['fg']:.3f}" if "fg" in row else "")
                          + f" ratio {ratio:.3f} best {row['best_step']} {row['train_s']} s"
                          f" predict {row['predict_s']} s", flush=True)
                    result["rows"].append(row)
                result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
                out.write_text(json.dumps(result, indent=1) + "\n")
    print(report([out]))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
