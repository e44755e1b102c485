"""Reader contribution: our model files are recognised (without torch) and their paths
handed to the dock, whose worker loads them."""

from __future__ import annotations

import zipfile

import pytest
import torch

from napari_unet_studio import _reader
from napari_unet_studio.core.checkpoint import TrainedModel
from napari_unet_studio.core.config import ModelConfig
from napari_unet_studio.core.model import build_model
from napari_unet_studio.gui import models as models_io


@pytest.fixture
def model_file(tmp_path):
    config = ModelConfig(width=2, depth=1, num_classes=2)
    model = TrainedModel(config, build_model(config).state_dict(), record={"steps": 1})
    path = tmp_path / "tiny.pt"
    model.save(path)
    return path


@pytest.fixture
def no_widgets(monkeypatch):
    """No open dock, and an empty pending list restored afterwards."""
    monkeypatch.setattr(models_io, "_open_docks", models_io.weakref.WeakSet())
    monkeypatch.setattr(models_io, "_pending", [])
    monkeypatch.setattr(_reader, "_open_widget", lambda: False)


def test_reader_accepts_our_model_files_only(model_file, tmp_path):
    assert _reader.is_model_file(model_file)
    assert _reader.get_reader(str(model_file)) is _reader.read_model
    assert _reader.get_reader([str(model_file)]) is _reader.read_model
    foreign = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert _reader.get_reader(str(foreign)) is None
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    assert _reader.get_reader(str(junk)) is None
    assert _reader.get_reader(str(tmp_path / "missing.pt")) is None
    assert _reader.get_reader(str(tmp_path)) is None
    assert _reader.get_reader(str(model_file.with_suffix(".tif"))) is None


def test_reading_without_a_dock_keeps_the_path_for_later(model_file, no_widgets):
    assert _reader.read_model(str(model_file)) == [(None,)]
    assert models_io.pending_paths() == [str(model_file)]

    class FakeDock:
        closed = False
        got: list = []

        def load_model_file(self, path):
            self.got.append(path)

    dock = FakeDock()
    models_io.register_dock(dock)
    assert dock.got == [str(model_file)] and models_io.pending_paths() == []
    # with a dock open, the next file goes straight to it
    assert _reader.read_model([str(model_file)]) == [(None,)]
    assert dock.got == [str(model_file)] * 2
    models_io.unregister_dock(dock)


def test_reading_loads_nothing_in_the_napari_process(model_file, no_widgets, monkeypatch):
    """The reader never unpickles: a damaged file with our marker is handed over as it is
    (the dock's worker then refuses it; tests/gui/test_worker_gui.py)."""
    bad = model_file.parent / "bad.pt"
    with zipfile.ZipFile(bad, "w") as archive:  # our marker, but no loadable content
        archive.writestr("bad/data.pkl", b"garbage napari-unet-studio-model garbage")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    reader = _reader.get_reader(str(bad))
    assert reader is _reader.read_model
    assert reader(str(bad)) == [(None,)]
    assert models_io.pending_paths() == [str(bad)]
