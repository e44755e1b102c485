"""Which output layer the pretrained start adopts, and how well it fits the strokes.

For every 2-class realistic case and seed (``bench/realistic_cases.py``) and the two
nuclei cases of ``bench/scribbles_vs_rf.py``, builds the product's ``Trainer`` with the
default start and prints its ``head_start``: whether the pretrained object/background
head was adopted and its balanced accuracy on the painted pixels (2D models adopt it
from ``HEAD_THRESHOLD`` and keep only the pretrained features from
``SEMANTIC_THRESHOLD``; ``bench/results/pretrained_head.txt`` was written before that
rule, when every score from 0.75 adopted). No training; about a minute on two cores.

    python bench/pretrained_head.py > bench/results/pretrained_head.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = ["bbbc-gap-A9_p10d", "bbbc-gap-17P1_POS0011", "bbbc-gap-20P1_POS0007",
         "bbbc-inductive", "bbbc-dense", "scratch-timelapse", "dsb-gap", "dsb-dense"]


def main() -> int:
    import realistic_cases as rc
    import scribbles_vs_rf as svr

    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.train import Trainer

    def head(pairs: list, seed: int) -> str:
        t = Trainer(pairs, None, TrainConfig(seed=seed, steps=1, device="cpu"), threads=2)
        return str(t.head_start)

    for name in CASES:
        for seed in range(3):
            _, data = rc.build(name, seed)
            print(f"{name:24s} seed {seed}  {head(data['train'], seed)}", flush=True)
    for ds in ("nuclei", "nuclei-sparse"):
        data = svr.load_dataset(ds)
        for seed in range(3):
            print(f"{'scribbles-' + ds:24s} seed {seed}  "
                  f"{head([(data['image'], data['scribbles'])], seed)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
