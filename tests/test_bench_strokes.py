"""Properties of the realistic suite's stroke generator (bench/strokes.py) and data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import datasets  # noqa: E402
import strokes  # noqa: E402


@pytest.fixture(scope="module")
def nuclei_truths() -> list[np.ndarray]:
    return [t for _, _, t in datasets.bbbc007_pairs("eval")[:3]]


@pytest.fixture(scope="module")
def voc_truth() -> np.ndarray:
    return datasets.voc_photo()[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_background_strokes_keep_the_gap(nuclei_truths, seed):
    for truth in nuclei_truths:
        s = strokes.gap_strokes(truth, seed=seed, gap=4.0)
        dist = ndi.distance_transform_edt(truth == 1)  # distance to the nearest nucleus px
        bg = s == 1
        assert bg.any()
        assert dist[bg].min() >= 4.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_strokes_lie_inside_their_objects(nuclei_truths, seed):
    for truth in nuclei_truths:
        s = strokes.gap_strokes(truth, seed=seed, inside=1)
        obj = s == 2
        assert obj.any()
        assert np.all(truth[obj] == 2)
        # at least one nucleus pixel between a stroke and the nucleus edge
        inner = ndi.distance_transform_edt(np.pad(truth == 2, 1))[1:-1, 1:-1]
        assert inner[obj].min() > 1.0
        # only a subset of the nuclei is painted
        lab, n = ndi.label(truth == 2)
        painted = np.unique(lab[obj])
        assert 0 < painted.size < n


def test_region_strokes_stay_inside_regions(voc_truth):
    s = strokes.region_strokes(voc_truth, seed=0, inside=3)
    painted = s > 0
    assert np.array_equal(s[painted], voc_truth[painted])
    for cls in np.unique(voc_truth):
        inner = ndi.distance_transform_edt(np.pad(voc_truth == cls, 1))[1:-1, 1:-1]
        assert inner[s == cls].min() > 3.0
    assert set(np.unique(s)) - {0} == set(np.unique(voc_truth))  # every class painted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coverage_in_the_user_range(nuclei_truths, voc_truth, seed):
    for truth in nuclei_truths:
        assert 0.005 <= strokes.coverage(strokes.gap_strokes(truth, seed=seed)) <= 0.05
    full = strokes.region_strokes(voc_truth, seed=seed)
    third = strokes.thin_out(full, 1 / 3, seed=seed)
    assert 0.03 <= strokes.coverage(full) <= 0.07
    assert 0.005 <= strokes.coverage(third) <= 0.6 * strokes.coverage(full)
    assert np.all((third == 0) | (third == full))  # thinning only removes strokes


def test_deterministic_per_seed(nuclei_truths, voc_truth):
    truth = nuclei_truths[0]
    a, b = strokes.gap_strokes(truth, seed=5), strokes.gap_strokes(truth, seed=5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, strokes.gap_strokes(truth, seed=6))
    r = strokes.region_strokes(voc_truth, seed=1)
    assert np.array_equal(r, strokes.region_strokes(voc_truth, seed=1))
    assert not np.array_equal(r, strokes.region_strokes(voc_truth, seed=2))


def test_no_rings_around_objects(nuclei_truths):
    """No background stroke pixel touches the 3 px band outside any nucleus."""
    truth = nuclei_truths[1]
    s = strokes.gap_strokes(truth, seed=0)
    ring = ndi.binary_dilation(truth == 2, iterations=3) & (truth == 1)
    assert not (ring & (s == 1)).any()


def test_bbbc_split_is_fixed_and_disjoint():
    ev = [n for n, _, _ in datasets.bbbc007_pairs("eval")]
    pre = [n for n, _, _ in datasets.bbbc007_pairs("pretrain")]
    allp = [n for n, _, _ in datasets.bbbc007_pairs("all")]
    assert len(ev) == len(pre) == 7
    assert allp[0::2] == ev and allp[1::2] == pre
    assert ev[0] == "A9_p10d" and pre[0] == "A9_p5d"


def test_committed_data_match_the_manifest():
    import hashlib

    for entry in datasets.manifest()["files"]:
        data = (datasets.DATA / entry["local"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["local"]
        assert entry["licence"] and entry["version"] and entry["path"]
