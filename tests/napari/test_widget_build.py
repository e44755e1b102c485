"""The dock widget's panels: decoder and device pickers, layer pairs, scribble layers."""

from __future__ import annotations

import numpy as np
from gui_helpers import add_shapes
from qtpy.QtCore import Qt

from napari_unet_studio.core.decoders import describe_decoders


def test_decoder_picker_lists_every_registered_decoder_with_its_description(studio):
    _, widget = studio
    combo = widget.model_panel.decoder
    listed = [combo.itemData(i) for i in range(combo.count())]
    expected = dict(describe_decoders())
    assert listed == list(expected)
    assert {"nearest", "bilinear", "unpool", "transposed", "pixelshuffle"} <= set(listed)
    for i, name in enumerate(listed):
        assert combo.itemData(i, Qt.ItemDataRole.ToolTipRole) == expected[name]
    combo.setCurrentIndex(listed.index("unpool"))
    assert widget.model_panel.decoder_help.text() == expected["unpool"]
    cfg = widget.model_panel.model_config(in_channels=3, num_classes=4)
    assert (cfg.decoder, cfg.in_channels, cfg.num_classes) == ("unpool", 3, 4)
    widget.model_panel.architecture.setCurrentIndex(1)
    assert widget.model_panel.model_config(1, 2).progressive is False


def test_device_picker_shows_available_devices_and_advanced_is_folded(studio):
    _, widget = studio
    devices = [
        widget.model_panel.device.itemData(i) for i in range(widget.model_panel.device.count())
    ]
    assert devices[0] == "auto" and "cpu" in devices
    assert "CPU" in widget.model_panel.device.itemText(devices.index("cpu"))
    assert not widget.model_panel.advanced.isExpanded()
    assert widget.model_panel.device_used.text() == "Ran on: -"


def test_cutmix_setting_follows_augment_and_the_training_lock(studio):
    _, widget = studio
    panel = widget.model_panel
    assert panel.train_config().cutmix == 0.5  # the engine's default
    panel.cutmix.setValue(0.2)
    assert panel.train_config().cutmix == 0.2
    panel.augment.setChecked(False)
    assert not panel.cutmix.isEnabled()
    panel.set_locked(True)
    panel.set_locked(False)
    assert not panel.cutmix.isEnabled()  # unlocking does not re-enable it without Augment
    panel.augment.setChecked(True)
    assert panel.cutmix.isEnabled()
    panel.set_locked(True)
    assert not panel.cutmix.isEnabled()


def test_layer_combos_follow_the_viewer(studio):
    viewer, widget = studio
    row = widget.data_panel.rows[0]
    assert row.image.layer() is None and row.labels.layer() is None
    image, labels = add_shapes(viewer)
    assert row.image.layer() is image
    assert row.labels.layer() is labels
    assert widget.predict_panel.image.layer() is image
    # the sample's class names are adopted for labels 1..3
    assert widget.data_panel.class_names() == ["background", "disc", "square"]
    image.name = "renamed"
    assert row.image.itemText(row.image.currentIndex()) == "renamed"
    second = widget.data_panel.add_row()
    assert len(widget.data_panel.rows) == 2 and second.image.layer() is image
    second.remove_button.click()
    assert len(widget.data_panel.rows) == 1
    viewer.layers.remove(labels)
    assert row.labels.layer() is None


def test_new_scribble_layer_matches_rgb_image_and_is_ready_to_paint(studio):
    viewer, widget = studio
    image = viewer.add_image(
        np.zeros((40, 50, 3), np.uint8), rgb=True, name="rgb", scale=(2, 3), translate=(5, 7)
    )
    row = widget.data_panel.rows[0]
    assert row.image.layer() is image
    row.new_button.click()
    layer = viewer.layers[-1]
    assert layer.name == "rgb scribbles"
    assert layer.data.shape == (40, 50) and not layer.data.any()
    assert tuple(layer.scale) == (2, 3) and tuple(layer.translate) == (5, 7)
    assert viewer.layers.selection.active is layer
    assert layer.mode == "paint" and layer.selected_label == 1 and layer.brush_size >= 3
    assert row.labels.layer() is layer
    row.new_button.click()
    assert viewer.layers[-1].name == "rgb scribbles [2]"


def test_new_scribble_layer_for_a_stack_and_class_names_can_be_renamed(studio):
    viewer, widget = studio
    viewer.add_image(np.zeros((3, 20, 30), np.float32), name="stack")
    widget.data_panel.rows[0].new_button.click()
    assert viewer.layers[-1].data.shape == (3, 20, 30)
    table = widget.data_panel.class_table
    table.item(1, 1).setText("cell")
    widget.data_panel.add_class_button.click()
    assert widget.data_panel.class_names() == ["background", "cell", "class 3"]
    assert viewer.layers[-1].selected_label == 3


def test_new_scribble_layer_without_image_warns(studio, notes):
    _, widget = studio
    widget.data_panel.rows[0].new_button.click()
    assert notes.warnings and "image" in notes.warnings[-1]


def test_dropping_a_model_file_loads_it_into_the_open_widget(studio, tmp_path, notes):
    from napari_unet_studio.core.checkpoint import TrainedModel
    from napari_unet_studio.core.config import ModelConfig
    from napari_unet_studio.core.model import build_model

    viewer, widget = studio
    config = ModelConfig(decoder="unpool", width=2, depth=1, num_classes=3)
    record = {"steps": 7, "class_names": ["bg", "a", "b"]}
    path = tmp_path / "dropped.pt"
    TrainedModel(config, build_model(config).state_dict(), record=record).save(path)
    n_layers = len(viewer.layers)
    viewer.open(str(path), plugin="napari-unet-studio")
    assert len(viewer.layers) == n_layers
    assert widget.model is not None and widget.model.config.decoder == "unpool"
    assert widget.model_panel.decoder.currentData() == "unpool"
    assert widget.data_panel.class_names() == ["bg", "a", "b"]
    assert "dropped.pt" in widget.models_panel.current.text()


def test_dropping_a_model_without_the_widget_opens_it(make_napari_viewer, tmp_path, notes):
    from napari_unet_studio import _widget_models as models_io
    from napari_unet_studio._widget import UNetStudioWidget
    from napari_unet_studio.core.checkpoint import TrainedModel
    from napari_unet_studio.core.config import ModelConfig
    from napari_unet_studio.core.model import build_model

    viewer = make_napari_viewer()
    config = ModelConfig(decoder="nearest", width=2, depth=1)
    path = tmp_path / "m.pt"
    TrainedModel(config, build_model(config).state_dict()).save(path)
    viewer.open(str(path), plugin="napari-unet-studio")
    docked = [w for w in models_io._open_widgets if isinstance(w, UNetStudioWidget)]
    mine = [w for w in docked if not w.closed]  # napari hands plugins a viewer proxy
    assert len(mine) == 1 and mine[0].model.config.decoder == "nearest"
    assert models_io.pending_models() == []
    mine[0].shutdown()
