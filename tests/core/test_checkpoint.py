"""Model files: round trip, atomic save, and refusing anything that is not our weights."""

from __future__ import annotations

import os
import pathlib
import pickle

import numpy as np
import pytest
import torch

from napari_unet_studio.core.checkpoint import FORMAT, TrainedModel, load_model, save_model
from napari_unet_studio.core.config import ModelConfig
from napari_unet_studio.core.errors import ModelFileError, UNetStudioError
from napari_unet_studio.core.model import build_model


def _model(num_classes: int = 3, seed: int = 0) -> TrainedModel:
    cfg = ModelConfig(depth=1, width=4, num_classes=num_classes)
    torch.manual_seed(seed)
    net = build_model(cfg)
    with torch.no_grad():  # non-trivial BN statistics, so buffers matter too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    record = {"steps": 7, "seconds": 1.5, "device": "cpu", "class_names": ["bg", "cell"],
              "data_shapes": [[32, 32]], "created": "2026-01-01T00:00:00+00:00"}
    return TrainedModel(cfg, state, record=record)


def test_round_trip_gives_identical_predictions(tmp_path):
    tm = _model()
    path = tmp_path / "m.pt"
    tm.save(path)
    back = load_model(path)
    assert back.config == tm.config
    assert back.normalization == tm.normalization
    assert back.record == tm.record
    assert set(back.state_dict) == set(tm.state_dict)
    x = torch.randn(2, 1, 23, 17)
    with torch.no_grad():
        a, b = tm.build()(x), back.build()(x)
    assert not back.build().training
    assert torch.equal(a, b)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    tm = _model()
    path = tmp_path / "m.pt"
    save_model(tm, path)
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        _model(seed=1).save(path)
    assert path.read_bytes() == before  # the old model is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_describe_mentions_what_matters():
    text = _model().describe()
    for word in ("bilinear", "3 (bg, cell, class 3)", "channels", "7 steps", "32x32"):
        assert word in text


class _Evil:
    def __init__(self, target: pathlib.Path):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (self.target,))


@pytest.mark.parametrize("via", ["torch", "pickle"])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path, via):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT, "format_version": 1, "config": {}, "x": _Evil(target)}
    if via == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ModelFileError, match="not a U-Net Studio model"):
        load_model(path)
    assert not target.exists()


def _valid_bytes(tmp_path) -> bytes:
    path = tmp_path / "ok.pt"
    _model().save(path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        ("truncated", "damaged or incomplete"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a"),
        (b"PK\x03\x04" + b"\x00" * 200, "damaged or incomplete"),
    ],
)
def test_bad_files_raise_model_file_error(tmp_path, content, match):
    if content == "truncated":
        data = _valid_bytes(tmp_path)
        content = data[: len(data) // 2]
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    assert isinstance(info.value, UNetStudioError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_foreign_torch_files_are_recognised(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ModelFileError, match="format marker"):
        load_model(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(ModelFileError, match="format marker"):
        load_model(path)


def test_missing_folder_and_newer_format(tmp_path):
    with pytest.raises(ModelFileError, match="No model file"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(ModelFileError, match="folder"):
        load_model(tmp_path)
    data = _model().to_dict()
    data["format_version"] = 99
    torch.save(data, tmp_path / "new.pt")
    with pytest.raises(ModelFileError, match="newer"):
        load_model(tmp_path / "new.pt")


def test_damaged_content_inside_a_valid_file(tmp_path):
    data = _model().to_dict()
    data["config"] = {"decoder": "bilinear", "colour": "blue"}
    torch.save(data, tmp_path / "a.pt")
    with pytest.raises(ModelFileError, match="incomplete or damaged"):
        load_model(tmp_path / "a.pt")
    data = _model().to_dict()
    del data["state_dict"]["head.weight"]
    torch.save(data, tmp_path / "b.pt")
    with pytest.raises(ModelFileError, match="do not match"):  # refused at load time
        load_model(tmp_path / "b.pt")
    data = _model().to_dict()
    data["config"]["decoder"] = "not-a-decoder"
    torch.save(data, tmp_path / "c.pt")
    with pytest.raises(ModelFileError, match="cannot build"):
        load_model(tmp_path / "c.pt")


def test_record_is_stored_as_plain_types(tmp_path):
    tm = _model()
    tm.record["shape"] = (3, 4)  # tuples become lists, numpy scalars become numbers
    tm.record["n"] = np.int64(5).item()
    tm.save(tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").record["shape"] == [3, 4]
    assert os.path.getsize(tmp_path / "m.pt") > 0
