"""The napari reader opens OME-Zarr stores lazily: multiscale image + label images."""

from __future__ import annotations

import numpy as np
from bd_helpers import write_ome

from napari_unet_studio._reader import get_zarr_reader
from napari_unet_studio.io import create_prediction_store, open_image


def test_reader_opens_a_multiscale_image_and_the_prediction_labels(tmp_path):
    img = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    write_ome(tmp_path / "in.zarr", img, chunks=(32, 32), scale={"y": 0.5, "x": 0.5})
    layers = get_zarr_reader(str(tmp_path / "in.zarr"))(str(tmp_path / "in.zarr"))
    (data, meta, kind), = layers
    assert kind == "image" and meta["multiscale"] and meta["scale"] == [0.5, 0.5]
    assert [d.shape for d in data] == [(64, 48), (32, 24)]
    np.testing.assert_array_equal(np.asarray(data[0]), img)
    store = create_prediction_store(tmp_path / "p.zarr", open_image(tmp_path / "in.zarr"), 2,
                                    instances=True, resume=False)
    store.arrays["labels/classes/0"][:] = 2
    layers = get_zarr_reader(str(tmp_path / "p.zarr"))(str(tmp_path / "p.zarr"))
    assert [(m["name"], k) for _, m, k in layers] == [("p", "image"), ("p classes", "labels"),
                                                      ("p instances", "labels")]
    labels, meta, _ = layers[1]
    assert labels.shape == (64, 48) and int(labels[3, 3]) == 2 and meta["scale"] == [0.5, 0.5]
    assert get_zarr_reader(str(tmp_path / "x.tif")) is None
