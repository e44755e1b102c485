"""Driving the widget like a user: train, watch, stop, predict, correct, save, load."""

from __future__ import annotations

import time

import numpy as np
from gui_helpers import add_shapes, digest, wait_prediction_done, wait_training_done
from qtpy.QtCore import QThreadPool, QTimer
from qtpy.QtWidgets import QFileDialog

from napari_unet_studio._widget_common import ROLE_KEY, ROLE_LIVE


def test_train_predict_correct_save_load(studio, qtbot, notes, monkeypatch, tmp_path):
    viewer, widget = studio
    image, labels = add_shapes(viewer)
    before = digest(labels.data)
    names = [
        widget.model_panel.decoder.itemData(i) for i in range(widget.model_panel.decoder.count())
    ]
    widget.model_panel.decoder.setCurrentIndex(names.index("transposed"))

    widget.train_panel.train_button.click()
    assert not widget.train_panel.train_button.isEnabled()
    assert not widget.model_panel.decoder.isEnabled()
    assert not widget.data_panel.rows[0].isEnabled()
    wait_training_done(qtbot, widget)
    assert not notes.errors, notes.errors
    assert widget.model_panel.decoder.isEnabled() and widget.data_panel.rows[0].isEnabled()

    # the live layer: ours, below the user's labels, holding classes 1..K
    live = viewer.layers["shapes prediction"]
    assert live.metadata[ROLE_KEY] == ROLE_LIVE
    assert viewer.layers.index(live) == viewer.layers.index(labels) - 1
    assert viewer.layers.index(live) > viewer.layers.index(image)
    assert live.opacity == 0.5 and live.data.shape == labels.data.shape
    assert set(np.unique(live.data)) <= {1, 2, 3} and live.data.min() >= 1
    model = widget.model
    assert model is not None and model.config.decoder == "transposed"
    assert model.config.num_classes == 3 and model.config.in_channels == 3
    assert model.record["class_names"] == ["background", "disc", "square"]
    assert widget.model_panel.device_used.text() == "Ran on: cpu"
    assert "transposed" in widget.models_panel.info.toPlainText()
    assert widget.train_panel.progress.value() == widget.train_panel.progress.maximum() == 4
    assert digest(labels.data) == before

    # Predict: a new layer with a decoder-specific name, then a unique name, then update
    widget.predict_panel.confidence_box.setChecked(True)
    widget.predict_panel.predict_button.click()
    wait_prediction_done(qtbot, widget)
    pred = viewer.layers["shapes prediction (transposed)"]
    assert pred.data.shape == (64, 64) and pred.data.min() >= 1 and pred.data.max() <= 3
    conf = viewer.layers["shapes confidence (transposed)"]
    assert conf.data.shape == (64, 64) and 0.3 <= conf.data.min() <= conf.data.max() <= 1.0
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
    fixed[0, 0] = 3 if pred.data[0, 0] != 3 else 1
    pred.data = fixed
    widget.predict_panel.corrections_button.click()
    merged = viewer.layers["scribbles + corrections"]
    assert merged.data[0, 0] == fixed[0, 0]
    untouched = np.asarray(pred.data) == widget.state.snapshots[pred.unique_id]
    assert untouched.all()
    assert np.array_equal(merged.data[10:, 10:], labels.data[10:, 10:])
    assert widget.data_panel.rows[0].labels.layer() is merged
    assert digest(labels.data) == before
    assert "unchanged" in notes.infos[-1]

    # save (dialog monkeypatched), then load it back through the Load button
    path = tmp_path / "model.pt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    widget.models_panel.save_button.click()
    assert path.is_file(), notes.errors
    widget.use_model(None)
    assert not widget.models_panel.save_button.isEnabled()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    widget.models_panel.load_button.click()
    assert widget.model is not None and widget.model.config.decoder == "transposed"
    assert widget.model.record["class_names"] == ["background", "disc", "square"]
    assert widget.model_panel.decoder.currentData() == "transposed"

    # continue training the loaded model from the same panel
    assert widget.train_panel.continue_box.isEnabled()
    widget.train_panel.continue_box.setChecked(True)
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget)
    assert not notes.errors, notes.errors
    assert widget.model.record.get("init_from")
    assert digest(labels.data) == before


def test_gui_stays_responsive_paint_while_training_pause_and_stop(studio, qtbot, notes):
    viewer, widget = studio
    _, labels = add_shapes(viewer)
    widget.model_panel.steps.setValue(100000)
    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setInterval(50)
    heartbeat.timeout.connect(lambda: beats.append(time.monotonic()))
    heartbeat.start()
    try:
        widget.train_panel.train_button.click()
        qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
        live = viewer.layers["shapes prediction"]
        # the user paints while training runs: the new strokes reach the trainer
        labels.paint((30, 30), 2, refresh=True)
        qtbot.waitUntil(lambda: widget.state.labels_pushes >= 1, timeout=10000)
        # the live prediction refreshes in place (same layer object, >= 3 s apart)
        qtbot.waitUntil(lambda: widget.state.previews >= 1, timeout=15000)
        assert viewer.layers["shapes prediction"] is live
        assert live.data.min() >= 1
        widget.train_panel.pause_button.click()
        assert widget.train_panel.pause_button.text() == "Resume"
        qtbot.wait(300)
        widget.train_panel.pause_button.click()
        assert widget.train_panel.pause_button.text() == "Pause"
        start = time.monotonic()
        widget.train_panel.stop_button.click()
        wait_training_done(qtbot, widget, timeout=10000)
        assert time.monotonic() - start < 5.0
    finally:
        heartbeat.stop()
    gaps = np.diff(beats)
    assert len(beats) > 20 and gaps.max() < 1.0, f"GUI froze for {gaps.max():.2f} s"
    assert widget.model is not None
    assert any("stopped" in m for m in notes.infos), notes.infos
    assert widget.train_panel.loss_plot.draw_count >= 2
    assert not notes.errors, notes.errors


def test_closing_the_viewer_mid_training_stops_the_worker(make_napari_viewer, qtbot, notes):
    from widget_support import tiny_settings

    from napari_unet_studio._widget import UNetStudioWidget

    viewer = make_napari_viewer()
    widget = UNetStudioWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_settings(widget, steps=100000)
    add_shapes(viewer)
    widget.train_panel.train_button.click()
    worker = widget.state.train_worker
    qtbot.waitUntil(lambda: widget.state.train_job.trainer is not None, timeout=30000)
    start = time.monotonic()
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10000)
    assert time.monotonic() - start < 8.0
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10000)


def test_closing_the_dock_widget_mid_training_stops_the_worker(studio, qtbot):
    viewer, widget = studio
    add_shapes(viewer)
    widget.model_panel.steps.setValue(100000)
    widget.train_panel.train_button.click()
    worker = widget.state.train_worker
    qtbot.waitUntil(lambda: widget.state.train_job.trainer is not None, timeout=30000)
    viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10000)
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10000)


def test_stack_live_preview_follows_the_visible_slice_and_slice_prediction(studio, qtbot, notes):
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
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget)
    assert not notes.errors, notes.errors
    live = viewer.layers["stack prediction"]
    assert live.data.shape == (3, 48, 48)
    assert live.data[1].min() >= 1 and not live.data[0].any() and not live.data[2].any()

    pp = widget.predict_panel
    pp.scope.setCurrentIndex(pp.scope.findData("current"))
    viewer.dims.set_current_step(0, 2)
    pp.predict_button.click()
    wait_prediction_done(qtbot, widget)
    pred = viewer.layers[-1]
    assert pred.data.shape == (3, 48, 48)
    assert pred.data[2].min() >= 1 and not pred.data[:2].any()
    pp.scope.setCurrentIndex(pp.scope.findData("whole"))
    pp.predict_button.click()
    wait_prediction_done(qtbot, widget)
    assert viewer.layers[-1].data.min() >= 1
    assert digest(lab.data) == before


def test_cancel_prediction_adds_no_layer(studio, qtbot, notes):
    from napari_unet_studio.core.checkpoint import TrainedModel
    from napari_unet_studio.core.config import ModelConfig
    from napari_unet_studio.core.model import build_model

    viewer, widget = studio
    config = ModelConfig(width=2, depth=1)
    widget.use_model(TrainedModel(config, build_model(config).state_dict()), source="test")
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
