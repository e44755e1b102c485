"""Driving the dock like a user on the fake client: train, watch, paint, stop, predict,
correct, save, load. What crosses to the worker is checked on the fake's records."""

from __future__ import annotations

import numpy as np
from gui_helpers import (
    add_shapes,
    digest,
    wait_files_done,
    wait_prediction_done,
    wait_training_done,
)
from qtpy.QtWidgets import QFileDialog

from napari_unet_studio.gui.layers import ROLE_KEY, ROLE_LIVE


def test_train_predict_correct_save_load(studio, qtbot, notes, monkeypatch, tmp_path, fake):
    viewer, widget = studio
    image, labels = add_shapes(viewer)
    before = digest(labels.data)
    widget.model_panel["decoder"].value = "transposed"

    widget.train_panel.train_button.click()
    assert not widget.train_panel.train_button.isEnabled()
    assert not widget.model_panel["decoder"].enabled
    assert not widget.data_panel.rows[0].isEnabled()
    assert not widget.models_panel.load_button.isEnabled()
    spec = fake.last.spec
    assert spec["model_config"]["decoder"] == "transposed"
    assert (spec["model_config"]["in_channels"], spec["model_config"]["num_classes"]) == (3, 3)
    assert spec["train_config"]["steps"] == 4 and spec["train_config"]["patch_size"] == 32
    assert spec["class_names"] == ["background", "disc", "square"]
    assert np.array_equal(spec["pairs"][0][1], labels.data)
    wait_training_done(qtbot, widget)
    assert not notes.errors, notes.errors
    assert widget.model_panel["decoder"].enabled and widget.data_panel.rows[0].isEnabled()

    # the live layer: ours, below the user's labels, written in place with classes 1..K
    live = viewer.layers["shapes prediction"]
    assert live.metadata[ROLE_KEY] == ROLE_LIVE
    # (the Assistant's hidden uncertainty layer may sit between it and the labels)
    assert viewer.layers.index(image) < viewer.layers.index(live) < viewer.layers.index(labels)
    assert live.opacity == 0.5 and live.data.shape == labels.data.shape
    assert widget.train.previews >= 1 and live.data.min() >= 1
    model = widget.model
    assert model is not None and model.config["decoder"] == "transposed"
    assert widget.model_panel.device_used.text() == "Ran on: cpu"
    assert "transposed" in widget.models_panel.info.toPlainText()
    assert widget.train_panel.progress.value() == widget.train_panel.progress.maximum() == 4
    assert widget.train_panel.loss_plot.steps == [1, 2, 3, 4]
    assert digest(labels.data) == before

    # Predict: a new layer with a decoder-specific name, then a unique name, then update
    widget.predict_panel.confidence_box.setChecked(True)
    widget.predict_panel.predict_button.click()
    assert fake.last.spec["model"] is model and fake.last.spec["tile"]["tile"] == 64
    wait_prediction_done(qtbot, widget)
    pred = viewer.layers["shapes prediction (transposed)"]
    assert pred.data.shape == (64, 64) and pred.data.min() >= 1
    assert "shapes confidence (transposed)" in viewer.layers
    widget.predict_panel.confidence_box.setChecked(False)
    widget.predict_panel.predict_button.click()
    wait_prediction_done(qtbot, widget)
    assert "shapes prediction (transposed) [2]" in viewer.layers
    n_layers = len(viewer.layers)
    widget.predict_panel.update_box.setChecked(True)
    widget.predict_panel.predict_button.click()
    wait_prediction_done(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert digest(labels.data) == before

    # corrections: paint on the prediction, merge them into a separate layer
    pred = viewer.layers["shapes prediction (transposed) [2]"]
    viewer.layers.selection.active = pred
    fixed = pred.data.copy()
    fixed[:5, :5] = 2
    fixed[0, 0] = 3
    pred.data = fixed
    widget.predict_panel.corrections_button.click()
    merged = viewer.layers["scribbles + corrections"]
    assert merged.data[0, 0] == 3
    assert np.array_equal(merged.data[10:, 10:], labels.data[10:, 10:])
    assert widget.data_panel.rows[0].labels.layer() is merged
    assert digest(labels.data) == before
    assert "unchanged" in notes.infos[-1]

    # save (dialog monkeypatched) with the class names shown, then load it back
    widget.data_panel.class_table.item(1, 1).setText("circle")
    path = tmp_path / "model.pt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    widget.models_panel.save_button.click()
    wait_files_done(qtbot, widget)
    assert fake.last.kind == "save" and fake.last.spec["path"] == str(path)
    assert fake.last.spec["model"].class_names == ["background", "circle", "square"]
    assert f"Model saved to {path}" in notes.infos[-1]
    widget.use_model(None)
    assert not widget.models_panel.save_button.isEnabled()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    widget.models_panel.load_button.click()
    wait_files_done(qtbot, widget)
    assert widget.model is not None and widget.model.config["decoder"] == "transposed"
    assert widget.model.class_names == ["background", "circle", "square"]
    assert widget.model_panel["decoder"].value == "transposed"

    # continue training the loaded model from the same panel
    assert widget.train_panel.continue_box.isEnabled()
    widget.train_panel.continue_box.setChecked(True)
    widget.train_panel.train_button.click()
    assert fake.last.spec["init"] is widget.model and fake.last.spec["model_config"] is None
    wait_training_done(qtbot, widget)
    assert not notes.errors, notes.errors
    assert widget.model.record.get("init_from") == str(path)
    assert digest(labels.data) == before


def test_painting_while_training_sends_only_the_changed_region(studio, qtbot, notes, fake):
    viewer, widget = studio
    _, labels = add_shapes(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    job = fake.last
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=5000)
    labels.brush_size = 3
    labels.paint((30, 30), 2, refresh=True)
    qtbot.waitUntil(lambda: widget.train.labels_pushes >= 1, timeout=5000)
    index, region, part = job.labels_updates[-1]
    assert index == 0
    assert region is not None and all(s.stop - s.start <= 4 for s in region)
    assert region[0].start <= 30 < region[0].stop and region[1].start <= 30 < region[1].stop
    assert (part == 2).any()
    labels.undo()  # undo emits no event; the watcher notices it from the history
    widget.train.watcher.flush()
    assert job.labels_updates[-1][1] is None  # the whole array is sent again
    assert np.array_equal(job.labels_updates[-1][2], labels.data)
    # pause and resume reach the job
    widget.train_panel.pause_button.click()
    assert widget.train_panel.pause_button.text() == "Resume"
    widget.train_panel.pause_button.click()
    assert widget.train_panel.pause_button.text() == "Pause"
    widget.train_panel.stop_button.click()
    wait_training_done(qtbot, widget, timeout=5000)
    assert job.controls == ["pause", "resume", "stop"]
    assert widget.model is not None
    assert any("stopped after" in m for m in notes.infos), notes.infos
    assert len(widget.train_panel.loss_plot.steps) >= 1
    assert not notes.errors, notes.errors


def test_stop_before_the_first_step_keeps_the_current_model(studio, qtbot, notes, fake):
    from napari_unet_studio.worker import ModelRef

    viewer, widget = studio
    add_shapes(viewer)
    mine = ModelRef("mine.pt", {"decoder": "bilinear", "in_channels": 3, "num_classes": 3},
                    {"steps": 9}, ["a", "b", "c"])
    widget.use_model(mine, "my good model")
    fake.step_seconds = 10.0
    widget.train_panel.train_button.click()
    widget.train_panel.stop_button.click()
    wait_training_done(qtbot, widget, timeout=5000)
    assert widget.model is mine
    assert "current model is unchanged" in notes.infos[-1]


def test_closing_the_viewer_mid_training_ends_the_worker(make_napari_viewer, qtbot, notes, fake):
    from widget_support import tiny_settings

    from napari_unet_studio.gui.dock import UNetStudioWidget

    viewer = make_napari_viewer()
    widget = UNetStudioWidget(viewer, client=fake)
    viewer.window.add_dock_widget(widget)
    tiny_settings(widget, steps=100000)
    add_shapes(viewer)
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=5000)
    viewer.close()
    assert fake.shutdowns == 1 and "stop" in fake.last.controls
    assert any("stopped" in w for w in notes.warnings)


def test_closing_the_dock_mid_training_ends_the_worker(studio, qtbot, fake):
    viewer, widget = studio
    add_shapes(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=5000)
    viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: fake.shutdowns == 1, timeout=5000)
    assert not widget.train.running


def test_stack_live_preview_follows_the_visible_slice_and_slice_prediction(studio, qtbot, notes,
                                                                          fake):
    viewer, widget = studio
    rng = np.random.default_rng(0)
    stack = rng.normal(0.2, 0.05, (3, 48, 48)).astype(np.float32)
    stack[:, 10:30, 10:30] += 0.6
    labels = np.zeros((3, 48, 48), np.uint8)
    labels[1, 40:44, 5:40] = 1
    labels[1, 15:25, 15:25] = 2
    viewer.add_image(stack, name="stack")
    lab = viewer.add_labels(labels, name="strokes")
    before = digest(lab.data)
    viewer.dims.set_current_step(0, 1)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    job = fake.last
    qtbot.waitUntil(lambda: widget.train.previews >= 1, timeout=5000)
    assert job.preview_sources == [(1, (48, 48))]
    live = viewer.layers["stack prediction"]
    assert live.data[1].min() >= 1 and not live.data[0].any() and not live.data[2].any()
    viewer.dims.set_current_step(0, 2)
    viewer.dims.set_current_step(0, 2)  # same plane again: nothing new is sent
    assert job.preview_sources == [(1, (48, 48)), (2, (48, 48))]
    previews = widget.train.previews
    qtbot.waitUntil(lambda: widget.train.previews > previews, timeout=5000)
    assert live.data[2].min() >= 1 and not live.data[0].any()
    widget.train_panel.stop_button.click()
    wait_training_done(qtbot, widget, timeout=5000)
    assert not notes.errors, notes.errors

    pp = widget.predict_panel
    pp.scope.setCurrentIndex(pp.scope.findData("current"))
    viewer.dims.set_current_step(0, 0)
    pp.predict_button.click()
    assert fake.last.spec["slices"] == 0
    wait_prediction_done(qtbot, widget)
    pred = viewer.layers[-1]
    assert pred.data.shape == (3, 48, 48)
    assert pred.data[0].min() >= 1 and not pred.data[1:].any()
    pp.scope.setCurrentIndex(pp.scope.findData("whole"))
    pp.predict_button.click()
    wait_prediction_done(qtbot, widget)
    assert viewer.layers[-1].data.min() >= 1
    assert digest(lab.data) == before


def test_cancel_prediction_adds_no_layer(studio, qtbot, notes, fake):
    from napari_unet_studio.worker import ModelRef

    viewer, widget = studio
    fake.step_seconds = 1.0
    widget.use_model(ModelRef("m.pt", {"decoder": "bilinear", "in_channels": 1,
                                       "num_classes": 2}, {"steps": 1}, ["a", "b"]), "test")
    viewer.add_image(np.zeros((256, 256), np.float32), name="big")
    n_layers = len(viewer.layers)
    widget.predict_panel.predict_button.click()
    assert widget.predict_panel.cancel_button.isEnabled()
    widget.predict_panel.cancel_button.click()
    wait_prediction_done(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert any("cancelled" in m for m in notes.infos)
    assert widget.predict_panel.predict_button.isEnabled()
    assert not notes.errors
