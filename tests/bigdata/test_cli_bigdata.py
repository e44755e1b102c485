"""The CLI contract: .zarr in/out with objects, TIFF with instances + table, a pattern."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile
import zarr
from bd_helpers import disc_image, write_ome

import napari_unet_studio as nus
from napari_unet_studio.cli import main

TILE = ["--tile", "48", "--threads", "1"]


def test_zarr_in_zarr_out_with_instances_and_measurements(tmp_path, disc_model, capsys):
    img = disc_image((160, 200), 20, 4)
    write_ome(tmp_path / "in.zarr", img, chunks=(64, 64), scale={"y": 0.5, "x": 0.5})
    args = ["predict", "--model", str(disc_model), "--image", str(tmp_path / "in.zarr"),
            "--out", str(tmp_path / "out.zarr"), "--instances", "--measurements",
            str(tmp_path / "t.csv"), "--block", "64", *TILE, "--quiet"]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert "12 blocks (0 already written)" in line and "objects" in line
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    ref = nus.predict(disc_model, img, tile=nus.TileConfig(tile=48), threads=1)
    np.testing.assert_array_equal(np.asarray(root["labels/classes/0"]), ref)
    inst = np.asarray(root["labels/instances/0"])
    with open(tmp_path / "t.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == inst.max() > 3
    assert {"id", "class", "area", "area_physical", "centroid_y", "mean_intensity",
            "bbox_max_x"} <= set(rows[0])
    r = rows[0]
    assert float(r["area_physical"]) == pytest.approx(0.25 * int(r["area"]))
    assert "_scratch" not in root
    # running it again resumes: nothing is predicted again
    assert main(args) == 0
    assert "12 blocks (12 already written)" in capsys.readouterr().out


def test_tiff_with_instances_and_measurements(tmp_path, disc_model, capsys):
    img = disc_image((120, 100), 12, 5)
    tifffile.imwrite(tmp_path / "img.tif", img)
    assert main(["predict", "--model", str(disc_model), "--image", str(tmp_path / "img.tif"),
                 "--out", str(tmp_path / "pred.tif"), "--instances", str(tmp_path / "i.tif"),
                 "--measurements", str(tmp_path / "t.csv"), *TILE, "--quiet"]) == 0
    pred, inst = tifffile.imread(tmp_path / "pred.tif"), tifffile.imread(tmp_path / "i.tif")
    assert pred.shape == inst.shape == (120, 100) and inst.dtype == np.uint32
    assert ((inst > 0) <= (pred == 2)).all() and inst.max() > 3
    with open(tmp_path / "t.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["id"]) for r in rows) == list(range(1, int(inst.max()) + 1))
    assert all(int(r["area"]) == int((inst == int(r["id"])).sum()) for r in rows)
    # --instances without a path is a plain error for TIFF output
    assert main(["predict", "--model", str(disc_model), "--image", str(tmp_path / "img.tif"),
                 "--out", str(tmp_path / "p2.tif"), "--instances", "--quiet"]) == 2
    assert "give a file" in capsys.readouterr().err


def test_a_pattern_of_tiffs_into_a_folder(tmp_path, disc_model):
    for i in range(3):
        tifffile.imwrite(tmp_path / f"im{i}.tif", disc_image((64, 80), 4, 10 + i))
    out = tmp_path / "out"
    assert main(["predict", "--model", str(disc_model), "--image", str(tmp_path / "im*.tif"),
                 "--out", str(out) + "/", "--measurements", str(tmp_path / "all.csv"), *TILE,
                 "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*_pred.tif")) == [f"im{i}_pred.tif"
                                                            for i in range(3)]
    with open(tmp_path / "all.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["image"] for r in rows} == {f"im{i}.tif" for i in range(3)}
    assert main(["predict", "--model", str(disc_model), "--image", str(tmp_path / "no*.tif"),
                 "--out", str(out)]) == 2
