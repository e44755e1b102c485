"""OME-Zarr / zarr reading (levels, axes, scale) and the prediction store's metadata."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from bd_helpers import write_ome

from napari_unet_studio.core.errors import DataError
from napari_unet_studio.io import create_prediction_store, open_image
from napari_unet_studio.io.zarr_io import working_array


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_open_image_reads_a_level_lazily_with_its_scale(tmp_path, version):
    img = np.arange(96 * 80, dtype=np.uint16).reshape(96, 80)
    write_ome(tmp_path / "a.zarr", img, chunks=(32, 16), version=version,
              scale={"y": 0.5, "x": 0.25})
    src = open_image(tmp_path / "a.zarr")
    assert (src.axes, src.shape, src.chunks, src.ome_version) == ("yx", (96, 80), (32, 16),
                                                                  version)
    assert src.scale == (0.5, 0.25)
    lazy = src.dask()
    assert type(lazy).__name__ == "Array"  # dask: nothing read yet
    np.testing.assert_array_equal(np.asarray(lazy), img)
    low = open_image(tmp_path / "a.zarr", level=1)
    assert low.shape == (48, 40) and low.scale == (1.0, 0.5)
    with pytest.raises(ValueError, match="levels"):
        open_image(tmp_path / "a.zarr", level=5)


def test_axes_to_working_layout(tmp_path):
    vol = np.random.default_rng(0).integers(0, 9, (1, 1, 5, 40, 30)).astype(np.uint8)
    write_ome(tmp_path / "v.zarr", vol, axes="tczyx", chunks=(1, 1, 2, 16, 16))
    src = open_image(tmp_path / "v.zarr")
    work, stack = working_array(src, 1)
    assert stack == "z" and work.shape == (5, 40, 30, 1)
    np.testing.assert_array_equal(np.asarray(work)[..., 0], vol[0, 0])
    with pytest.raises(DataError, match="3 channel"):
        working_array(src, 3)
    plain = zarr.create_array(str(tmp_path / "p.zarr"), shape=(50, 60), chunks=(25, 30),
                              dtype="f4")
    plain[:] = 1.5
    p = open_image(tmp_path / "p.zarr")
    assert (p.kind, p.axes, p.chunks) == ("zarr", "yx", (25, 30))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_prediction_store_metadata_scale_chunks_and_labels_group(tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    img = np.zeros((1, 70, 50), np.uint16)
    write_ome(tmp_path / "in.zarr", img, axes="zyx", chunks=(1, 32, 16), version=version,
              scale={"z": 2.0, "y": 0.3, "x": 0.3})
    src = open_image(tmp_path / "in.zarr")
    create_prediction_store(tmp_path / "out.zarr", src, 3, class_names=["bg", "a", "b"],
                            probabilities=True, instances=True, resume=False)
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert root["labels/classes/0"].shape == (1, 70, 50)
    assert root["labels/classes/0"].chunks == (1, 32, 16)
    assert root["probabilities/0"].shape == (3, 1, 70, 50)
    assert root["labels/instances/0"].dtype == np.uint32
    out = open_image(tmp_path / "out.zarr/labels/classes")
    assert out.scale == (2.0, 0.3, 0.3) and out.axes == "zyx" and out.ome_version == version
    # the OME-Zarr reference reader finds the image and both label images
    nodes = list(Reader(parse_url(str(tmp_path / "out.zarr")))())
    names = {n.zarr.path.rstrip("/").split("/")[-1] for n in nodes}
    assert {"classes", "instances"} <= names
    lab_attrs = dict(root["labels"].attrs)
    lab_list = lab_attrs["ome"]["labels"] if "ome" in lab_attrs else lab_attrs["labels"]
    assert lab_list == ["classes", "instances"]
    cls_attrs = dict(root["labels/classes"].attrs)
    meta = cls_attrs.get("ome", cls_attrs)["image-label"]
    assert [p["class"] for p in meta["properties"]] == ["bg", "a", "b"]
