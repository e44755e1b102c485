"""The worker's ``export`` job (what the Export button runs): a package from a ModelRef and
an image sent through shared memory; the package opens again through the ``load`` job."""

from __future__ import annotations

import dataclasses
import zipfile

import numpy as np
import pytest
from worker_support import final, wait

pytest.importorskip("bioimageio.core", reason="the export extra is not installed")


def _tiny_model(path):
    import torch

    from napari_unet_studio.core.checkpoint import TrainedModel
    from napari_unet_studio.core.config import ModelConfig
    from napari_unet_studio.core.model import build_model

    torch.manual_seed(0)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    stem = {"stem": "none"} if "stem" in fields else {}  # tests/export covers the stem
    cfg = ModelConfig(decoder="nearest", depth=2, width=4, num_classes=2, **stem)
    TrainedModel(cfg, build_model(cfg).state_dict(), record={"steps": 1}).save(path)


def test_export_job_writes_a_valid_package_that_loads_again(client, tmp_path):
    _tiny_model(tmp_path / "m.pt")
    kind, ref = final(wait(client.load_model(str(tmp_path / "m.pt"))))
    assert kind == "done"
    ref = type(ref)(ref.path, ref.config, ref.record, ["sky", "cloud"])  # names from the dock
    image = (np.random.default_rng(0).random((70, 80)) * 1000).astype(np.uint16)
    out = tmp_path / "m.zip"
    spec = {"model": ref, "out": str(out), "format": "bioimageio", "validate": True,
            "weight_formats": ["torchscript"]}  # ONNX in packages: tests/export
    events = wait(client.submit("export", spec, {"image": image}), timeout=300)
    kind, result = final(events)
    assert kind == "done", result
    stages = [p["stage"] for k, p in events if k == "progress"]
    assert stages[0] == "preparing the test input" and "testing the package" in stages[-1]
    assert result["path"] == str(out) and result["validation"] == "passed"
    assert result["not_exported"] == {}
    assert "rdf.yaml" in zipfile.ZipFile(out).namelist()
    kind, loaded = final(wait(client.load_model(str(out))))
    assert kind == "done" and loaded.config == ref.config
    assert loaded.class_names == ["sky", "cloud"]


def test_export_job_failure_is_plain(client, tmp_path):
    _tiny_model(tmp_path / "m.pt")
    kind, ref = final(wait(client.load_model(str(tmp_path / "m.pt"))))
    kind, err = final(wait(client.submit("export", {"model": ref, "out": str(tmp_path / "m.zip"),
                                                    "format": "bioimageio"})))
    assert kind == "error"
    assert err.message.startswith("Exporting the model failed: A bioimage.io package needs")
    assert "Traceback" not in err.message
