"""The dock's panels: settings forms from the configs, pickers from the worker's hello,
layer pairs, scribble layers, model files handed over by the reader (fake client)."""

from __future__ import annotations

import dataclasses

import numpy as np
from fake_client import DECODERS
from gui_helpers import add_shapes, wait_files_done
from qtpy.QtCore import Qt

from napari_unet_studio.core.config import ModelConfig, TileConfig, TrainConfig
from napari_unet_studio.gui.model_form import parameter_help
from napari_unet_studio.worker import ModelRef


def test_decoder_picker_lists_the_workers_decoders_with_their_descriptions(studio):
    _, widget = studio
    form = widget.model_panel
    combo = form["decoder"].native
    listed = [combo.itemData(i) for i in range(combo.count())]
    expected = dict(DECODERS)
    assert listed == list(expected)
    for i, name in enumerate(listed):
        assert combo.itemData(i, Qt.ItemDataRole.ToolTipRole) == expected[name]
    assert form["decoder"].value == "bilinear"  # the engine's default stays chosen
    form["decoder"].value = "unpool"
    assert form.decoder_help.text() == expected["unpool"]
    cfg = form.model_config(in_channels=3, num_classes=4)
    assert (cfg["decoder"], cfg["in_channels"], cfg["num_classes"]) == ("unpool", 3, 4)
    form["progressive"].value = False
    assert form.model_config(1, 2)["progressive"] is False


def test_pickers_hold_the_defaults_until_the_worker_says_hello(make_napari_viewer, fake,
                                                               qtbot, notes):
    from widget_support import shut_down

    from napari_unet_studio.gui.dock import UNetStudioWidget

    fake.start = lambda: None  # the hello never comes in this test, until we send it
    viewer = make_napari_viewer()
    widget = UNetStudioWidget(viewer, client=fake)
    assert widget.model_panel.decoders() == ["bilinear"]
    assert widget.model_panel["device"].value == "auto"
    fake._info = {"decoders": DECODERS[:2], "devices": [("cpu", "CPU")], "pretrained": False}
    qtbot.waitUntil(lambda: len(widget.model_panel.decoders()) == 2, timeout=3000)
    assert widget.model_panel["device"].choices == ("auto", "cpu")
    # no shipped weights: 'Start from' offers scratch and a file only
    assert "pretrained" not in widget.model_panel["start"].choices
    assert widget.model_panel.train_config()["start"] == "scratch"
    shut_down(qtbot, widget)


def test_settings_forms_are_generated_from_the_config_dataclasses(studio):
    _, widget = studio
    form = widget.model_panel
    hidden = {"in_channels", "num_classes", "time_limit", "spacing"}  # spacing: layer scale
    for cls, rename in ((ModelConfig, {}), (TrainConfig, {}),
                        (TileConfig, {"batch_size": "tile_batch_size"})):
        helps = parameter_help(cls)
        for f in dataclasses.fields(cls):
            if f.name in hidden:
                continue
            key = rename.get(f.name, f.name)
            assert key in form.fields, key
            if key not in ("decoder", "device", "start", "progressive"):
                assert form[key].tooltip == helps[f.name].replace("``", "'"), key
    defaults = TrainConfig()
    config = form.train_config()
    assert config["cutmix"] == defaults.cutmix and config["lr"] == defaults.lr
    assert form.tile_config() == {**TileConfig().to_dict(), "tile": 64}
    assert form["superpixels"].value == "auto"
    form["superpixels"].value = "off"  # a choice, sent with the prediction settings
    assert form.tile_config()["superpixels"] == "off"
    form["superpixels"].value = "auto"
    assert form["edges"].value == "auto"
    form["edges"].value = "off"
    assert form.tile_config()["edges"] == "off"
    form["edges"].value = "auto"
    assert not form.advanced.isExpanded()
    assert form.device_used.text() == "Ran on: -"


def test_cutmix_setting_follows_augment_and_the_training_lock(studio):
    _, widget = studio
    form = widget.model_panel
    form["cutmix"].value = 0.2
    assert form.train_config()["cutmix"] == 0.2
    form["augment"].value = False
    assert not form["cutmix"].enabled
    form.set_locked(True)
    form.set_locked(False)
    assert not form["cutmix"].enabled  # unlocking does not re-enable it without Augment
    form["augment"].value = True
    assert form["cutmix"].enabled
    form.set_locked(True)
    assert not form["cutmix"].enabled and not form["decoder"].enabled
    assert form["tile"].enabled  # prediction settings stay usable while training


def test_start_from_choice(studio, notes, tmp_path):
    _, widget = studio
    form = widget.model_panel
    form["start"].value = "pretrained"
    assert form.train_config()["start"] == "pretrained"
    form["start"].value = "scratch"
    assert form.train_config()["start"] == "scratch"
    assert form.start_file.native.isHidden()
    form["start"].value = "file"
    assert not form.start_file.native.isHidden()
    try:
        form.train_config()
    except Exception as exc:  # noqa: BLE001
        assert "no file is chosen" in str(exc)
    else:
        raise AssertionError("a missing start file must be refused")
    path = tmp_path / "start.pt"
    form.start_file.value = str(path)
    assert form.train_config()["start"] == str(path)


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


def _model_file(fake, tmp_path, decoder="unpool", names=("bg", "a", "b")):
    """A model file the fake worker 'loads' (the reader checks the file's marker)."""
    from napari_unet_studio._reader import FORMAT_MARKER

    path = tmp_path / f"dropped_{decoder}.pt"
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", FORMAT_MARKER)
    config = ModelConfig(decoder=decoder, width=2, depth=1, num_classes=len(names)).to_dict()
    fake.saved[str(path)] = ModelRef(str(path), config, {"steps": 7}, list(names))
    return path


def test_dropping_a_model_file_loads_it_into_the_open_dock(studio, fake, tmp_path, qtbot,
                                                          notes):
    viewer, widget = studio
    path = _model_file(fake, tmp_path)
    n_layers = len(viewer.layers)
    viewer.open(str(path), plugin="napari-unet-studio")
    wait_files_done(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert fake.last.kind == "load" and fake.last.spec["path"] == str(path)
    assert widget.model is not None and widget.model.config["decoder"] == "unpool"
    assert widget.model_panel["decoder"].value == "unpool"
    assert widget.data_panel.class_names() == ["bg", "a", "b"]
    assert "dropped_unpool.pt" in widget.models_panel.current.text()
    assert "unpool" in widget.models_panel.info.toPlainText()


def test_dropping_a_model_without_the_dock_opens_it(make_napari_viewer, use_fake, tmp_path,
                                                   qtbot, notes):
    from napari_unet_studio.gui import models as models_io

    viewer = make_napari_viewer()
    path = _model_file(use_fake, tmp_path, decoder="nearest", names=("bg", "fg"))
    viewer.open(str(path), plugin="napari-unet-studio")
    mine = models_io.open_docks()  # napari hands plugins a viewer proxy
    assert len(mine) == 1
    qtbot.waitUntil(lambda: mine[0].model is not None, timeout=5000)
    assert mine[0].model.config["decoder"] == "nearest"
    assert models_io.pending_paths() == []
    mine[0].shutdown()
    assert use_fake.shutdowns == 1
