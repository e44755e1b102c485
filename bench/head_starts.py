"""How to start a 2-class task whose strokes the pretrained object head partly contradicts.

Variants (``case:variant`` pairs, 3 seeds each, fixed steps, one thread; nucleus IoU):

- ``adopt``: the pretrained head loaded from ``SEMANTIC_THRESHOLD`` (the rule before
  2026-12-03);
- ``default``: the engine as it is (2D: shipped features and a new head from 0.75 to
  ``HEAD_THRESHOLD``, the head above);
- ``body``: shipped features and a new head whatever the head's accuracy;
- ``fulllr``: the head adopted, every weight at the full learning rate.

Cases: the 2-class realistic cases (``bench/realistic_cases.py``, 150 steps) and
``svr-nuclei`` / ``svr-nuclei-sparse`` (``bench/scribbles_vs_rf.py``'s images, 195 / 198
steps, the step counts of its 45-CPU-second budget)::

    python bench/head_starts.py svr-nuclei:adopt,svr-nuclei:default out.json

Prints one JSON line per run and writes them all to the output file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = {"adopt": {}, "default": {}, "body": {"start": "pretrained-features"},
            "fulllr": {"start_lr": None}}


def run(case: str, variant: str, seed: int) -> dict:
    import realistic as R
    import realistic_cases as rc
    import scribbles_vs_rf as svr
    from _common import evaluate

    import napari_unet_studio as nus
    from napari_unet_studio.core import pretrained
    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.train import Trainer

    saved = pretrained.HEAD_THRESHOLD
    if variant == "adopt":
        pretrained.HEAD_THRESHOLD = pretrained.SEMANTIC_THRESHOLD
    try:
        if case.startswith("svr-"):
            data = svr.load_dataset(case[4:])
            pairs, steps = [(data["image"], data["scribbles"])], (195 if case == "svr-nuclei"
                                                                  else 198)
        else:
            c, data = rc.build(case, seed)
            pairs, steps = data["train"], 150
        tc = TrainConfig(steps=steps, seed=seed, device="cpu", **VARIANTS[variant])
        trainer = Trainer(pairs, None, tc, threads=1, pretrained_head=(variant != "body"))
        model = svr.drain(trainer.run())
    finally:
        pretrained.HEAD_THRESHOLD = saved
    if case.startswith("svr-"):
        pred = (np.argmax(svr.predict_probs(model, data["image"]), 0) + 1).astype(np.uint8)
        fg = evaluate(pred, data["truth"], data["foreground"])["fg_iou"]
    else:
        preds = [nus.predict(model, img, threads=1, device="cpu") for _, img, _ in data["eval"]]
        fg = R.score(preds, data["eval"], c.foreground)["fg"]
    return {"case": case, "variant": variant, "seed": seed, "fg": round(float(fg), 4),
            "steps": model.record.get("steps"), "start": model.record.get("start"),
            "head": model.record.get("head_start")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rows = []
    for job in argv[0].split(","):
        case, variant = job.split(":")
        for seed in range(3):
            rows.append(run(case, variant, seed))
            print(json.dumps(rows[-1]), flush=True)
    Path(argv[1]).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
