"""Reader contribution: our model files are recognised and handed to the widget."""

from __future__ import annotations

import zipfile

import pytest
import torch

from napari_unet_studio import _reader
from napari_unet_studio import _widget_models as models_io
from napari_unet_studio.core.checkpoint import TrainedModel
from napari_unet_studio.core.config import ModelConfig
from napari_unet_studio.core.model import build_model


@pytest.fixture
def model_file(tmp_path):
    config = ModelConfig(width=2, depth=1, num_classes=2)
    model = TrainedModel(config, build_model(config).state_dict(), record={"steps": 1})
    path = tmp_path / "tiny.pt"
    model.save(path)
    return path


@pytest.fixture
def no_widgets(monkeypatch):
    """No open widget, and an empty pending list restored afterwards."""
    monkeypatch.setattr(models_io, "_open_widgets", models_io.weakref.WeakSet())
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


def test_reading_without_widget_keeps_the_model_for_later(model_file, no_widgets):
    assert _reader.read_model(str(model_file)) == [(None,)]
    ((model, source),) = models_io.pending_models()
    assert model.config.width == 2 and source == str(model_file)

    class FakeWidget:
        closed = False
        got: list = []

        def use_model(self, model, source=""):
            self.got.append((model, source))

    widget = FakeWidget()
    models_io.register_widget(widget)
    assert len(widget.got) == 1 and models_io.pending_models() == []
    # with a widget open, the next file goes straight to it
    assert _reader.read_model(str(model_file)) == [(None,)]
    assert len(widget.got) == 2


def test_reader_reports_a_damaged_model(tmp_path, no_widgets, monkeypatch):
    from napari.utils import notifications

    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as archive:  # our marker, but no loadable content
        archive.writestr("bad/data.pkl", b"garbage napari-unet-studio-model garbage")
    reader = _reader.get_reader(str(bad))
    assert reader is _reader.read_model
    assert reader(str(bad)) == [(None,)]
    assert errors and "bad.pt" in errors[-1] and "Traceback" not in errors[-1]
    assert models_io.pending_models() == []
