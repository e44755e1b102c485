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
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["bbbc-dense", "dsb-dense",
                                                        "scratch-timelapse"])
    ap.add_argument("--shifts", nargs="+", type=int, default=[1, 2])
    args = ap.parse_args(argv)
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
