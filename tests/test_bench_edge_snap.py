"""bench/edge_snap.py: its variants, its scores and its gradient check."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import edge_snap  # noqa: E402

from napari_unet_studio.core.edges import snap  # noqa: E402


def _disc() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    truth = np.where(r < 12, 2, 1)
    image = (truth == 2) * 100.0 + 5
    prob = (1 / (1 + np.exp((r - 14) / 1.5))).astype(np.float32)
    return image, truth, prob


def test_object_t_is_the_product_snap_and_every_variant_is_a_mask() -> None:
    image, _, prob = _disc()
    out = edge_snap.snaps(image, prob)
    assert set(out) == set(edge_snap.NAMES) - {"forest", "best-t"}
    np.testing.assert_array_equal(out["object-t"], snap(image, prob))
    np.testing.assert_array_equal(out["unet"], prob > 0.5)
    assert all(m.dtype == bool and m.shape == prob.shape for m in out.values())


def test_scores_of_a_perfect_and_an_empty_mask() -> None:
    _, truth, _ = _disc()
    assert edge_snap._scores(truth == 2, truth, 2) == (1.0, 1.0)
    miou, nuc = edge_snap._scores(np.zeros(truth.shape, bool), truth, 2)
    assert nuc == 0.0 and 0.0 < miou < 0.5


def test_the_time_lapse_truth_sits_on_the_gradient_maximum() -> None:
    rows = {r["image"]: r["eroded 2 / 1, as drawn, dilated 1 / 2"]
            for r in edge_snap.gradient_check()}
    for name in ("time-lapse frame 0", "time-lapse frame 3", "DSB2018"):
        assert int(np.argmax(rows[name])) == 2, name
    assert int(np.argmax(rows["BBBC007 A9_p10d"])) == 1
