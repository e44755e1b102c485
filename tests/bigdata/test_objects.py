"""Instances (splitting touching objects, 2D and 3D), stitching across blocks, measurements."""

from __future__ import annotations

import csv

import numpy as np
import zarr
from bd_helpers import disc_image, write_ome

import napari_unet_studio as nus
from napari_unet_studio.core.config import TileConfig
from napari_unet_studio.objects import (
    ObjectSettings,
    build_relabel,
    face_pairs,
    find_instances,
    measure_objects,
    write_csv,
)


def _discs(shape, centres, r):
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    mask = np.zeros(shape, bool)
    for c in centres:
        mask |= sum((g - v) ** 2 for g, v in zip(grids, c)) < r ** 2
    return mask


def test_touching_discs_are_split_and_specks_removed():
    mask = _discs((64, 80), [(32, 25), (32, 41)], 10)  # overlap: one component
    labels = 1 + mask.astype(np.uint8)
    labels[2:4, 70:71] = 2                              # a 2-pixel speck
    cc, _ = find_instances(labels, ObjectSettings(split=False, min_size=1))
    assert cc.max() == 2                                # the pair merged + the speck
    inst, classes = find_instances(labels, ObjectSettings(min_size=10))
    assert inst.max() == 2 and list(classes) == [2, 2]
    assert inst[32, 20] != inst[32, 46] and inst[3, 70] == 0
    a, b = (inst == 1).sum(), (inst == 2).sum()
    assert abs(int(a) - int(b)) <= 0.1 * mask.sum()     # split near the middle
    one = 1 + _discs((64, 64), [(32, 32)], 12).astype(np.uint8)
    assert find_instances(one)[0].max() == 1             # a round object stays whole


def test_touching_balls_in_3d():
    mask = _discs((30, 40, 60), [(15, 20, 22), (15, 20, 38)], 10)
    inst, _ = find_instances(1 + mask.astype(np.uint8), ObjectSettings(min_distance=5))
    assert inst.ndim == 3 and inst.max() == 2 and inst[15, 20, 15] != inst[15, 20, 45]


def test_measurements_table_and_csv(tmp_path):
    mask = _discs((50, 60), [(20, 15)], 6) | _discs((50, 60), [(35, 45)], 4)
    labels = 1 + mask.astype(np.uint8)
    image = np.where(mask, 200.0, 10.0)
    image[35, 45] = 240.0
    inst, classes = find_instances(labels)
    rows = measure_objects(inst, classes, image, ["bg", "nucleus"])
    assert len(rows) == 2
    big = max(rows, key=lambda r: r["area"])
    sel = inst == big["id"]
    assert big["area"] == int(sel.sum()) and big["class_name"] == "nucleus"
    assert (big["centroid_y"], big["centroid_x"]) == (20.0, 15.0)
    assert (big["bbox_min_y"], big["bbox_max_y"]) == (15, 26) and big["mean_intensity"] == 200
    small = min(rows, key=lambda r: r["area"])
    assert np.isclose(small["mean_intensity"], (200 * (small["area"] - 1) + 240)
                      / small["area"])
    write_csv(rows, tmp_path / "t.csv")
    with open(tmp_path / "t.csv") as fh:
        read = list(csv.DictReader(fh))
    assert [int(r["area"]) for r in read] == [r["area"] for r in rows]
    vol = measure_objects(*find_instances(1 + _discs((9, 20, 20), [(4, 10, 10)], 4)
                                          .astype(np.uint8)))
    assert "volume" in vol[0] and "centroid_z" in vol[0] and vol[0]["centroid_z"] == 4.0


def test_stitch_rules():
    # ids 1, 2 on one side of a strip; 7, 8 the other labelling of the same pixels
    a = np.array([1, 1, 1, 2, 2, 0])
    b = np.array([7, 7, 7, 8, 8, 0])
    assert sorted(face_pairs(a, b)) == [(1, 7), (2, 8)]
    assert face_pairs(a, b, {1: 2, 2: 2, 7: 3, 8: 2}) == [(2, 8)]   # classes must agree
    rel = build_relabel([np.array([1, 2, 7, 8, 9])], [(1, 7), (2, 8)])
    assert rel.count == 3
    np.testing.assert_array_equal(rel(np.array([0, 1, 7, 2, 8, 9])), [0, 1, 1, 2, 2, 3])


def test_blockwise_instances_are_stitched_with_unique_ids(tmp_path, disc_model):
    tile = TileConfig(tile=48, overlap=0.25, batch_size=3)
    img = disc_image((192, 256), 45, 7)
    write_ome(tmp_path / "in.zarr", img, chunks=(32, 32))
    ref = nus.predict(disc_model, img, tile=tile, threads=1)
    ref_inst, ref_cls = find_instances(ref)
    res = nus.predict_store(disc_model, tmp_path / "in.zarr", tmp_path / "o.zarr", tile=tile,
                            block=64, threads=1, objects=True)
    inst = np.asarray(zarr.open_group(str(tmp_path / "o.zarr"), mode="r")["labels/instances/0"])
    assert res.blocks == 12 and res.objects == int(ref_inst.max()) > 15
    # the same partition as the in-memory instances: a one-to-one map of ids
    pairs = np.unique(np.stack([inst.ravel(), ref_inst.ravel()]), axis=1)
    assert len(pairs[0]) == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))
    assert sorted(np.unique(inst)[1:]) == list(range(1, res.objects + 1))
    # objects that cross block borders exist (so stitching was needed) and have one id
    crossing = [i for i in range(1, res.objects + 1)
                if len({(y // 64, x // 64) for y, x in np.argwhere(inst == i)}) > 1]
    assert len(crossing) >= 3
    mem_rows = measure_objects(ref_inst, ref_cls, img)
    assert sorted(r["area"] for r in res.rows) == sorted(r["area"] for r in mem_rows)
    assert np.isclose(sum(r["mean_intensity"] * r["area"] for r in res.rows),
                      sum(r["mean_intensity"] * r["area"] for r in mem_rows))
