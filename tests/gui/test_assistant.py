"""The Assistant panel: the uncertainty layer and "Next uncertain region" on the fake
client; the decoder comparison (two decoders, cancel, keeping the winner) and the
upsampling gallery on the real worker process."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from gui_helpers import add_shapes, digest, wait_training_done
from widget_support import (
    docked_studio,
    record_notifications,
    tiny_settings,
    wait_for_worker_info,
    wait_idle,
)

from napari_unet_studio.gui.layers import (
    ROLE_COMPARE,
    ROLE_KEY,
    ROLE_UNCERTAINTY,
    is_user_image,
    role,
)


def _only(panel, names):
    for name, box in panel.decoder_boxes.items():
        box.setChecked(name in names)


# ------------------------------------------------------------------ fake client
def test_uncertainty_layer_follows_the_previews(studio, qtbot, notes, fake):
    viewer, widget = studio
    image, labels = add_shapes(viewer)
    before = digest(labels.data)
    widget.model_panel["steps"].value = 30
    fake.step_seconds = 0.02
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.assistant.uncertainty_updates >= 1, timeout=10000)
    layer = viewer.layers["shapes uncertainty"]
    assert layer.metadata[ROLE_KEY] == ROLE_UNCERTAINTY and role(layer) == ROLE_UNCERTAINTY
    assert not layer.visible  # off by default
    assert layer.data.shape == labels.data.shape and layer.data.dtype == np.uint8
    plane = image.data.astype(float).mean(axis=-1)
    spread = np.abs(plane - plane.mean()).max()
    expect = np.round(255 * (1 - np.abs(plane - plane.mean()) / spread)).astype(np.uint8)
    assert np.array_equal(layer.data, expect)  # written as the worker sent it
    assert viewer.layers.selection.active is not layer  # painting stays on the labels
    widget.assistant_panel.uncertainty_box.setChecked(True)
    assert layer.visible
    widget.assistant_panel.uncertainty_box.setChecked(False)
    assert not layer.visible
    wait_training_done(qtbot, widget)
    assert digest(labels.data) == before
    assert not is_user_image(layer)  # never offered as an image to train on
    assert not notes.errors, notes.errors


def test_next_region_moves_the_camera_and_skips_painted(studio, qtbot, notes):
    viewer, widget = studio
    image = viewer.add_image(np.zeros((120, 160), np.float32), name="cells")
    labels = viewer.add_labels(np.zeros((120, 160), np.uint8), name="strokes")
    labels.data[100:104, 10:30] = 1
    before = digest(labels.data)
    unc = np.zeros((120, 160), np.uint8)
    unc[10:30, 20:40] = 250    # most uncertain, but the user paints there below
    unc[70:90, 110:130] = 200  # second
    unc[20:40, 120:140] = 120  # third
    widget.assistant_panel.region_size.setValue(20)
    widget.assistant.on_uncertainty(None, unc, image, labels)
    viewer.camera.center = (0.0, 0.0)
    panel = widget.assistant_panel

    panel.next_button.click()
    assert tuple(np.round(viewer.camera.center[-2:])) == (20, 30)
    assert "where to paint next" in [ly.name for ly in viewer.layers]
    labels.data[18:22, 25:35] = 2  # the user paints the region shown
    panel.next_button.click()
    assert tuple(np.round(viewer.camera.center[-2:])) == (80, 120)
    panel.next_button.click()
    assert tuple(np.round(viewer.camera.center[-2:])) == (30, 130)
    # the cycle starts again, still without the painted region
    for _ in range(6):
        panel.next_button.click()
        y, x = np.round(viewer.camera.center[-2:])
        assert not (abs(y - 20) < 10 and abs(x - 30) < 10), (y, x)
    assert digest(labels.data) != before  # (the test painted; the plugin did not)
    assert labels.data[100:104, 10:30].min() == 1
    assert not notes.errors, notes.errors


def test_next_region_changes_the_slice_of_a_stack(studio, qtbot, notes):
    viewer, widget = studio
    image = viewer.add_image(np.zeros((5, 64, 64), np.float32), name="stack",
                             scale=(2.0, 0.5, 0.5))
    labels = viewer.add_labels(np.zeros((5, 64, 64), np.uint8), name="strokes",
                               scale=(2.0, 0.5, 0.5))
    widget.assistant_panel.region_size.setValue(16)
    hot = np.zeros((64, 64), np.uint8)
    hot[40:56, 8:24] = 230
    widget.assistant.on_uncertainty(3, hot, image, labels)   # plane 3 previewed
    widget.assistant.on_uncertainty(1, np.full((64, 64), 10, np.uint8), image, labels)
    viewer.dims.set_point(0, 0.0)
    widget.assistant_panel.next_button.click()
    assert viewer.dims.point[0] == pytest.approx(6.0)  # slice 3 at z-scale 2
    assert tuple(np.round(viewer.camera.center[-2:], 1)) == (24.0, 8.0)  # (48, 16) px * 0.5
    layer = viewer.layers["stack uncertainty"]
    assert layer.data[3, 48, 16] == 230 and layer.data[0].max() == 0


def test_next_without_a_map_says_so(studio, notes):
    _, widget = studio
    widget.assistant_panel.next_button.click()
    assert any("No uncertainty map yet" in m for m in notes.infos)


# ------------------------------------------------------------------ real worker
FAST = {"NAPARI_UNET_STUDIO_THREADS": "1", "NAPARI_UNET_STUDIO_WORKER_WARMUP": "0"}


@pytest.fixture(scope="module")
def shared(qapp):
    import napari

    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAST.items():
            mp.setenv(key, value)
        notes = record_notifications(mp)
        viewer, widget = docked_studio(lambda: napari.Viewer(show=False))
        gc.freeze()
        try:
            yield viewer, widget, notes
        finally:
            gc.unfreeze()
            widget.shutdown()
            viewer.close()
            qapp.processEvents()
            gc.collect()


@pytest.fixture
def real(shared, qtbot):
    viewer, widget, notes = shared
    wait_for_worker_info(qtbot, widget)
    wait_idle(qtbot, widget)
    qtbot.waitUntil(lambda: not widget.assistant.running, timeout=30000)
    viewer.layers.clear()
    widget.use_model(None)
    tiny_settings(widget)
    notes.errors.clear()
    notes.infos.clear()
    yield viewer, widget, notes
    qtbot.waitUntil(lambda: not widget.assistant.running, timeout=30000)


def test_compare_two_decoders_and_keep_the_winner(real, qtbot):
    viewer, widget, notes = real
    _, labels = add_shapes(viewer)
    before = digest(labels.data)
    panel = widget.assistant_panel
    _only(panel, {"nearest", "bilinear"})
    panel.steps.setValue(3)
    panel.compare_button.click()
    assert widget.assistant.running and not panel.compare_button.isEnabled()
    assert panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not widget.assistant.running, timeout=90000)
    assert not notes.errors, notes.errors
    assert panel.table.rowCount() == 2
    names = [panel.table.item(r, 0).text() for r in range(2)]
    best = widget.assistant.best
    assert best in ("nearest", "bilinear") and f"\u2605 {best}" in names
    layers = [ly for ly in viewer.layers if role(ly) == ROLE_COMPARE]
    assert sorted(ly.metadata["decoder"] for ly in layers) == ["bilinear", "nearest"]
    assert [ly.metadata["decoder"] for ly in layers if ly.visible] == [best]
    assert all(ly.data.shape == labels.data.shape and ly.data.min() >= 1 for ly in layers)
    assert panel.keep_button.isEnabled()
    panel.keep_button.click()
    ref = widget.model
    assert ref is not None and ref.config["decoder"] == best
    assert "compared here" in widget.models_panel.info.toPlainText() or widget.slot.source
    assert widget.model_panel["decoder"].value == best  # the settings follow the model
    assert digest(labels.data) == before


def test_compare_cancel(real, qtbot):
    viewer, widget, notes = real
    add_shapes(viewer)
    panel = widget.assistant_panel
    _only(panel, {"nearest", "bilinear"})
    panel.steps.setValue(100000)
    panel.compare_button.click()
    qtbot.waitUntil(lambda: "step" in panel.compare_status.text(), timeout=60000)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.assistant.running, timeout=30000)
    assert "cancelled after 0 of 2" in panel.compare_status.text()
    assert panel.table.rowCount() == 0 and panel.compare_button.isEnabled()
    assert not panel.keep_button.isEnabled() and widget.model is None
    assert not notes.errors, notes.errors


def test_upsampling_gallery(real, qtbot):
    viewer, widget, notes = real
    add_shapes(viewer)
    panel = widget.assistant_panel
    panel.crop_size.setCurrentIndex(0)  # 32 px
    panel.show_button.click()
    qtbot.waitUntil(lambda: bool(widget.upsampling.panels), timeout=60000)
    names = [p["name"] for p in widget.upsampling.panels]
    assert names[:2] == ["input", "downsampled"] and "unpool" in names
    assert panel.gallery_grid.count() == len(names) == 7
    assert "decoders.md" in panel.docs_link.text()
    assert not notes.errors, notes.errors
