"""Every failure reaches the user as one plain-words notification, and the GUI recovers
(fake client: the worker's failures are canned ``WorkerError`` events)."""

from __future__ import annotations

import numpy as np
from gui_helpers import add_shapes, digest, wait_files_done, wait_training_done
from qtpy.QtWidgets import QFileDialog

from napari_unet_studio.worker import ModelRef, WorkerError


def test_no_labels_painted_yet(studio, notes, fake):
    viewer, widget = studio
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    widget.data_panel.rows[0].new_button.click()
    widget.train_panel.train_button.click()
    assert not widget.train.running and not fake.jobs
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


def test_invalid_setting_is_refused_in_plain_words(studio, notes, fake):
    viewer, widget = studio
    add_shapes(viewer)
    widget.model_panel["steps"].native.setMinimum(0)
    widget.model_panel["steps"].value = 0
    widget.train_panel.train_button.click()
    assert not fake.jobs
    assert "steps must be positive" in notes.errors[-1]


def test_predict_without_model(studio, notes):
    viewer, widget = studio
    add_shapes(viewer)
    widget.predict_panel.predict_button.click()
    assert "no model yet" in notes.errors[-1]


def test_worker_error_is_shown_verbatim_and_controls_come_back(studio, qtbot, notes, fake):
    viewer, widget = studio
    _, labels = add_shapes(viewer)
    before = digest(labels.data)
    message = "Training ran out of memory. Choose a smaller patch size."
    fake.fail_next["train"] = WorkerError("error", message, None, "Traceback (most recent...")
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget, timeout=5000)
    assert notes.errors == [message]  # verbatim, one notification, no traceback
    assert widget.train_panel.train_button.isEnabled()
    assert widget.model_panel["decoder"].enabled and widget.data_panel.rows[0].isEnabled()
    assert digest(labels.data) == before
    assert widget.model is None


def test_crash_keeps_the_best_model_and_the_next_train_works(studio, qtbot, notes, fake):
    viewer, widget = studio
    _, labels = add_shapes(viewer)
    before = digest(labels.data)
    widget.model_panel["steps"].value = 50
    fake.crash_at_step = 5
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget, timeout=10000)
    assert len(notes.errors) == 1 and "stopped unexpectedly" in notes.errors[0]
    assert "best model so far is kept" in notes.errors[0]
    assert widget.model is not None and widget.model.record["steps"] == 4
    assert digest(labels.data) == before
    widget.model_panel["steps"].value = 3
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget, timeout=10000)
    assert len(notes.errors) == 1
    assert widget.model.record["steps"] == 3


def test_prediction_error_adds_no_layer(studio, qtbot, notes, fake):
    viewer, widget = studio
    add_shapes(viewer)
    widget.use_model(ModelRef("m.pt", {"decoder": "bilinear", "in_channels": 3,
                                       "num_classes": 3}, {"steps": 1}, ["a", "b", "c"]))
    n_layers = len(viewer.layers)
    fake.fail_next["predict"] = WorkerError("error", "The image has NaN pixels.")
    widget.predict_panel.predict_button.click()
    qtbot.waitUntil(lambda: not widget.predict.running, timeout=5000)
    assert notes.errors == ["The image has NaN pixels."]
    assert len(viewer.layers) == n_layers
    assert widget.predict_panel.predict_button.isEnabled()


def test_layer_deleted_mid_training_stops_with_a_warning(studio, qtbot, notes, fake):
    viewer, widget = studio
    image, labels = add_shapes(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=5000)
    viewer.layers.remove(image)
    wait_training_done(qtbot, widget, timeout=5000)
    assert "stop" in fake.last.controls
    assert any("'shapes' was deleted while training" in w for w in notes.warnings)
    assert widget.model is not None  # the best model so far is kept
    assert "scribbles" in viewer.layers


def test_image_replaced_mid_training_is_explained(studio, qtbot, notes, fake):
    viewer, widget = studio
    image, labels = add_shapes(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    image.data = np.zeros((40, 40, 3), np.uint8)
    assert any("'shapes' was changed while training" in w for w in notes.warnings)
    labels.data = np.zeros((40, 40), np.uint8)
    widget.train.watcher.flush()
    assert any("changed shape while training" in w for w in notes.warnings)
    assert not fake.last.labels_updates  # a labels array of another shape is not sent
    widget.train_panel.stop_button.click()
    wait_training_done(qtbot, widget, timeout=5000)


def test_bad_model_files_are_explained(studio, notes, monkeypatch, tmp_path, qtbot, fake):
    _, widget = studio
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a model")
    fake.bad_files["junk.pt"] = f"The file '{junk}' is not a U-Net Studio model."
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(junk), ""))
    widget.models_panel.load_button.click()
    wait_files_done(qtbot, widget)
    assert widget.model is None
    assert notes.errors == [fake.bad_files["junk.pt"]]


def test_save_without_model_and_cancelled_dialogs(studio, notes, monkeypatch, fake):
    _, widget = studio
    widget.save_model()
    assert "no model to save" in notes.errors[-1]
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    widget.models_panel.load_button.click()
    assert widget.model is None and len(notes.errors) == 1 and not fake.jobs


def test_a_client_that_cannot_be_made_is_explained_at_train(make_napari_viewer, qtbot, notes,
                                                           monkeypatch):
    from napari_unet_studio.gui import dock

    def broken():
        raise ImportError("no module named napari_unet_studio.worker.server")

    monkeypatch.setattr(dock, "make_client", broken)
    viewer = make_napari_viewer()
    widget = dock.UNetStudioWidget(viewer)
    _, labels = add_shapes(viewer)
    before = digest(labels.data)
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget, timeout=5000)
    assert len(notes.errors) == 1 and "could not be started" in notes.errors[0]
    assert "Traceback" not in notes.errors[0]
    assert digest(labels.data) == before
    widget.shutdown()


def test_engine_messages_in_progress_are_shown(studio, qtbot, notes, fake):
    """The worker's progress messages (batch halved after out-of-memory, labels not used)
    appear in the status line, and as a warning when they concern the user's data."""
    viewer, widget = studio
    add_shapes(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    fake.last.queue.append(("progress", {
        "step": 1, "total_steps": 100000, "loss": 0.5, "eta": 10.0, "device": "cpu",
        "message": "Out of memory: batch size halved to 1."}))
    qtbot.waitUntil(lambda: bool(notes.warnings), timeout=5000)
    assert notes.warnings == ["Out of memory: batch size halved to 1."]
    widget.train_panel.stop_button.click()
    wait_training_done(qtbot, widget, timeout=5000)
    assert not notes.errors
