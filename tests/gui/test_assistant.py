"""The Assistant panel on the fake client: the uncertainty layer and "Next uncertain
region" (the real-worker part is in test_worker_assistant.py)."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import add_shapes, digest, wait_training_done

from napari_unet_studio.gui.layers import (
    ROLE_KEY,
    ROLE_UNCERTAINTY,
    is_user_image,
    role,
)


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


def test_compare_table_shows_the_cross_entropy(qtbot):
    from napari_unet_studio.gui.assistant import COLUMNS, AssistantPanel

    panel = AssistantPanel()
    qtbot.addWidget(panel)
    base = {"heldout": 1.0, "boundary": None, "step_seconds": 0.5, "parameters": 1234}
    panel.add_row({**base, "decoder": "nearest", "heldout_nll": 0.21})
    panel.add_row({**base, "decoder": "bilinear", "heldout_nll": 0.0456})
    panel.add_row({**base, "decoder": "unpool"})  # a row without the score
    col = COLUMNS.index("cross-entropy")
    assert [panel.table.item(r, col).text() for r in range(3)] == ["0.210", "0.046", "-"]
    assert panel.table.item(0, COLUMNS.index("held-out")).text() == "100.0 %"
    assert panel.mark_best("bilinear") == 1
    assert panel.table.item(1, 0).text() == "\u2605 bilinear"


def test_compare_status_says_when_the_strokes_cannot_decide(studio):
    _, widget = studio
    ctl = widget.assistant
    ctl.rows = []
    ctl._n = 2
    base = {"heldout": 1.0, "boundary": None, "step_seconds": 0.5, "parameters": 1234}
    for name in ("nearest", "bilinear"):
        ctl._on_row({**base, "decoder": name, "heldout_nll": 0.1})
    ctl._on_done({"best": "bilinear", "undecided": "Every decoder got them right.",
                  "cancelled": False})
    text = widget.assistant_panel.compare_status.text()
    assert "Best on your held-out strokes" in text and text.endswith("got them right.")
    ctl._on_done({"best": "bilinear", "undecided": None, "cancelled": False})
    assert "got them right" not in widget.assistant_panel.compare_status.text()
