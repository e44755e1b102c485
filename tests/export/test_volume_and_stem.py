"""3D models export too; the ONNX-friendly reflect border of the stem is exact."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml
from export_support import blob_image, tiny_model

import napari_unet_studio as nus
from napari_unet_studio.export import export_model
from napari_unet_studio.export.package import axis_halos, axis_size_rules


def test_3d_anisotropic_package_validates_and_opens_again(tmp_path):
    model = tiny_model("unpool", dims=3, spacing=(3.0, 1.0, 1.0))
    volume = np.stack([blob_image(64, seed=z % 3) for z in range(12)])
    report = export_model(model, tmp_path / "v.zip", image=volume,
                          weight_formats=("torchscript",))
    failed = [t for t in report.validation["tests"] if t[1] != "passed"]
    assert report.validation["status"] == "passed", failed
    assert report.formats["torchscript"].ok
    with zipfile.ZipFile(report.path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    inp, out = rdf["inputs"][0], rdf["outputs"][0]
    assert [a.get("id") for a in inp["axes"][2:]] == ["z", "y", "x"]
    halos = axis_halos(model.config)
    assert halos[0] < halos[1] == halos[2]  # z is pooled once less: a smaller halo
    assert [a["halo"] for a in out["axes"][2:]] == halos
    assert [(a["size"]["min"], a["size"]["step"]) for a in inp["axes"][2:]] == \
        axis_size_rules(model.config)
    assert inp["preprocessing"][-1]["kwargs"]["axes"] == ["z", "y", "x"]  # per volume
    assert report.test_shape[2] == axis_size_rules(model.config)[0][0]  # z padded up
    again = nus.load_model(report.path)
    a = nus.predict(model, volume, device="cpu", threads=1)
    b = nus.predict(again, volume, device="cpu", threads=1)
    assert a.shape == volume.shape and np.array_equal(a, b)


def test_a_2d_image_for_a_3d_model_is_refused(tmp_path):
    from napari_unet_studio.core.errors import DataError

    with pytest.raises(DataError, match="3D model"):
        export_model(tiny_model("nearest", dims=3), tmp_path / "v.zip", image=blob_image(64))


def test_onnx_friendly_reflect_index_is_the_stem_s():
    import torch

    stem = pytest.importorskip("napari_unet_studio.core.stem")
    from napari_unet_studio.export.convert import _tensor_reflect_index

    for n in (1, 2, 3, 7, 60):
        for pad in (0, 1, 5, 16, 70):
            assert torch.equal(_tensor_reflect_index(n, pad, "cpu"),
                               stem._reflect_index(n, pad, "cpu")), (n, pad)
