"""bench/ceiling.py's shifted truth and bench/ablate.py's shared-training TTA rows."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import ablate  # noqa: E402
from ceiling import shifted_scores  # noqa: E402


def test_a_wider_boundary_shift_costs_more() -> None:
    one, two = shifted_scores("scratch-timelapse", 1), shifted_scores("scratch-timelapse", 2)
    for how in ("dilated", "eroded"):
        assert 0.5 < two[how]["miou"] < one[how]["miou"] < 1.0
        assert two[how]["fg"] < one[how]["fg"] < 1.0


def test_tta_rows_share_one_training() -> None:
    name, arch, train = ablate.parse_variant("tiny:train.pixel_fit=5")
    rows = ablate.run_variant(name, arch, train, "voc-third", 0, threads=1, steps=2,
                              tta=[1, 2])
    assert [r["variant"] for r in rows] == ["tiny", "tiny+tta2"]
    assert [r["tile"]["tta"] for r in rows] == [1, 2]
    assert rows[0]["train_s"] == rows[1]["train_s"] and rows[0]["steps"] == 2
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
