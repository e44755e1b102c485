"""Is the decoder that wins on the full truth the same from one training seed to the next?

The decoder comparison (``bench/assistant.py compare``) asks that the winner on held-out
strokes be the winner on the full truth. That goal can only be met where the truth
winner itself is stable: this benchmark trains every decoder on all the strokes of a
development image (the comparison's images, strokes and budget: 30 steps from the
default start, one torch thread) with several training seeds, and with several stroke
draws, and reports the truth score of each, the winner per seed and how often each
decoder wins. Fixed steps: the numbers do not depend on the load.

Run::

    nice -n 19 .venv/bin/python bench/decoder_seeds.py            # all 5 images
    .venv/bin/python bench/decoder_seeds.py --report

Writes ``bench/results/decoder_seeds.json`` (after every training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

OUT = HERE / "results" / "decoder_seeds.json"


def edge_alignment(image: np.ndarray, labels: np.ndarray, sigma: float = 1.0) -> float:
    """Mean image gradient on the predicted class boundaries / its mean over the image.

    A label-free score of where a prediction puts its boundaries (higher: on stronger
    intensity edges). Channels are standardised and their gradient magnitudes summed.
    Decided before the runs as a candidate for ranking decoders without truth.
    """
    from _common import class_edges
    from scipy import ndimage as ndi

    img = np.asarray(image, np.float64)
    img = img[..., None] if img.ndim == 2 else img
    grad = np.zeros(img.shape[:2])
    for c in range(img.shape[-1]):
        ch = img[..., c]
        ch = (ch - ch.mean()) / (ch.std() + 1e-12)
        grad += ndi.gaussian_gradient_magnitude(ch, sigma)
    edge = class_edges(np.asarray(labels))
    if not edge.any():
        return 0.0
    return float(grad[edge].mean() / grad.mean())


def train_and_score(name: str, strokes_seed: int, train_seed: int, decoder: str,
                    steps: int) -> dict[str, Any]:
    """Train ``decoder`` on all strokes of one draw and score it on the full truth."""
    import assistant as bench

    from napari_unet_studio.core.compare import _train
    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.infer import predict_image

    image, strokes, truth, fg = bench.case_data(name, strokes_seed)
    tc = TrainConfig(steps=steps, device="cpu", seed=train_seed)
    c0 = time.process_time()
    model = _train([(image, strokes)], None, tc, decoder, True, 1, None, None, None)
    pred = predict_image(model, image, device="cpu", threads=1).labels
    row = bench.score(pred, truth, fg)
    return {"case": name, "strokes_seed": strokes_seed, "train_seed": train_seed,
            "edge": round(edge_alignment(image, pred), 4), "decoder": decoder,
            "score": bench.metric(row), "truth": row,
            "cpu_seconds": round(time.process_time() - c0, 1)}


def winners(rows: list[dict], key: str = "score") -> dict[tuple, str]:
    """``{(case, strokes_seed, train_seed): best decoder by key}`` over complete groups."""
    from assistant import DECODERS

    groups: dict[tuple, dict[str, float]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["strokes_seed"], r["train_seed"]), {})[
            r["decoder"]] = r[key]
    return {k: max(v, key=v.get) for k, v in groups.items() if len(v) == len(DECODERS)}


def report(rows: list[dict]) -> None:
    from assistant import DECODERS

    cases = sorted({r["case"] for r in rows})
    wins = winners(rows)
    for case in cases:
        keys = sorted({(r["strokes_seed"], r["train_seed"]) for r in rows if r["case"] == case})
        print(f"\n{case}\n")
        print("| decoder | " + " | ".join(f"strokes {s}, train {t}" for s, t in keys)
              + " | mean | wins |")
        print("|---|" + "---|" * (len(keys) + 2))
        by = {(r["strokes_seed"], r["train_seed"], r["decoder"]): r["score"]
              for r in rows if r["case"] == case}
        count = Counter(w for k, w in wins.items() if k[0] == case)
        for d in DECODERS:
            vals = [by.get((s, t, d)) for s, t in keys]
            cells = [("-" if v is None else f"{v:.3f}") for v in vals]
            got = [v for v in vals if v is not None]
            mean = f"{np.mean(got):.3f}" if got else "-"
            print(f"| {d} | " + " | ".join(cells) + f" | {mean} | {count.get(d, 0)} |")
        spread = []
        for s, t in keys:
            vals = [by[(s, t, d)] for d in DECODERS if (s, t, d) in by]
            if len(vals) == len(DECODERS):
                spread.append(max(vals) - min(vals))
        if spread:
            print(f"\nbest - worst decoder per run: {min(spread):.3f}-{max(spread):.3f}")
    edge = winners(rows, "edge")
    hit = [k for k in wins if edge.get(k) == wins[k]]
    print(f"\nwinner by edge alignment = truth winner: {len(hit)} of {len(wins)} runs")
    for k in sorted(wins):
        print(f"  {k[0]:24s} strokes {k[1]} train {k[2]}: truth {wins[k]:12s} "
              f"edge {edge.get(k)}")


def main(argv: list[str] | None = None) -> int:
    from assistant import COMPARE_CASES, DECODERS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(COMPARE_CASES))
    p.add_argument("--train-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--strokes-seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--report", action="store_true")
    args = p.parse_args(argv)
    rows = json.loads(OUT.read_text())["rows"] if OUT.exists() else []
    if args.report:
        report(rows)
        return 0
    import torch

    torch.set_num_threads(1)
    done = {(r["case"], r["strokes_seed"], r["train_seed"], r["decoder"]) for r in rows}
    for case in args.cases:
        for s in args.strokes_seeds:
            for t in args.train_seeds:
                for d in DECODERS:
                    if (case, s, t, d) in done:
                        continue
                    row = train_and_score(case, s, t, d, args.steps)
                    row["steps"] = args.steps
                    rows.append(row)
                    print(f"{case:24s} strokes {s} train {t} {d:12s} {row['score']:.3f} "
                          f"({row['cpu_seconds']} CPU s)", flush=True)
                    OUT.write_text(json.dumps({"rows": rows}, indent=1))
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
