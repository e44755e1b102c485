"""Every failure reaches the user as a plain-words notification, and the GUI recovers."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import add_shapes, digest, wait_training_done
from qtpy.QtWidgets import QFileDialog


def test_no_labels_painted_yet(studio, notes):
    viewer, widget = studio
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    widget.data_panel.rows[0].new_button.click()
    widget.train_panel.train_button.click()
    assert widget.state.train_worker is None
    assert notes.errors and "No labels painted yet" in notes.errors[-1]


def test_nothing_chosen(studio, notes):
    _, widget = studio
    widget.train_panel.train_button.click()
    assert "Choose an image and a labels layer" in notes.errors[-1]


def test_only_one_class_painted(studio, notes):
    viewer, widget = studio
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    labels = np.zeros((32, 32), np.uint8)
    labels[3:6, 3:9] = 1
    viewer.add_labels(labels, name="lab")
    widget.train_panel.train_button.click()
    assert "Only class 1 (background) is painted" in notes.errors[-1]


def test_image_and_labels_shapes_differ(studio, notes):
    viewer, widget = studio
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    viewer.add_labels(np.ones((20, 32), np.uint8), name="lab")
    row = widget.data_panel.rows[0]
    row.labels.set_layer(viewer.layers["lab"])
    widget.train_panel.train_button.click()
    assert "different shapes" in notes.errors[-1]


def test_predict_without_model(studio, notes):
    viewer, widget = studio
    add_shapes(viewer)
    widget.predict_panel.predict_button.click()
    assert "no model yet" in notes.errors[-1]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("boom from torch", "unexpected error (RuntimeError: boom from torch)"),
        ("CUDA out of memory. Tried to allocate 2.00 GiB", "ran out of memory"),
    ],
)
def test_runtime_error_in_worker_is_reported_and_controls_come_back(
    studio, qtbot, notes, monkeypatch, message, expected
):
    """superqt drops RuntimeErrors of generator workers; ours must still reach the user."""
    from napari_unet_studio.core import train

    def broken_run(self):
        yield from ()
        raise RuntimeError(message)

    monkeypatch.setattr(train.Trainer, "run", broken_run)
    viewer, widget = studio
    _, labels = add_shapes(viewer)
    before = digest(labels.data)
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget, timeout=20000)
    assert notes.errors and expected in notes.errors[-1]
    assert widget.train_panel.train_button.isEnabled()
    assert widget.model_panel.decoder.isEnabled()
    assert digest(labels.data) == before


def test_layer_deleted_mid_training_stops_with_a_warning(studio, qtbot, notes):
    viewer, widget = studio
    image, labels = add_shapes(viewer)
    widget.model_panel.steps.setValue(100000)
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
    viewer.layers.remove(image)
    wait_training_done(qtbot, widget, timeout=15000)
    assert any("'shapes' was deleted while training" in w for w in notes.warnings)
    assert widget.model is not None  # the best model so far is kept
    assert "scribbles" in viewer.layers


def test_bad_model_files_are_explained(studio, notes, monkeypatch, tmp_path):
    _, widget = studio
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a model")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(junk), ""))
    widget.models_panel.load_button.click()
    assert widget.model is None
    assert notes.errors and "junk.pt" in notes.errors[-1]
    assert "Traceback" not in notes.errors[-1]


def test_save_without_model_and_cancelled_dialogs(studio, notes, monkeypatch):
    _, widget = studio
    widget.save_model()
    assert "no model to save" in notes.errors[-1]
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    widget.models_panel.load_button.click()
    assert widget.model is None and len(notes.errors) == 1
