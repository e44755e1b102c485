"""The dock's 2D/3D choice on a tiny volume (fake client): the recommendation and why, the
voxel size from the layer's scale, 3D sizes, and the live preview of the slice looked at."""

from __future__ import annotations

import numpy as np
from gui_helpers import digest, wait_training_done

from napari_unet_studio.core.anisotropy import VOLUME_CPU


def _volume(nz=20, n=32, seed=0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:nz, :n, :n]
    ball = ((zz - nz / 2) ** 2 + (yy - n / 2) ** 2 + (xx - n / 2) ** 2) < (n / 3) ** 2
    image = (rng.normal(0.2, 0.02, ball.shape) + 0.6 * ball).astype(np.float32)
    labels = np.zeros(ball.shape, np.uint8)
    for z in (8, 11):
        labels[z] = np.where(ball[z], 2, 1) * (rng.random(ball[z].shape) < 0.2)
    return image, labels


def test_3d_choice_recommendation_spacing_and_slab_preview(studio, qtbot, notes, fake):
    viewer, widget = studio
    image, labels = _volume()
    viewer.add_image(image, name="vol", scale=(3.0, 1.0, 1.0))
    lab = viewer.add_labels(labels, name="strokes", scale=(3.0, 1.0, 1.0))
    before = digest(lab.data)
    form = widget.model_panel
    qtbot.waitUntil(lambda: "Recommended: 3D" in form.dims_help.text(), timeout=3000)
    assert "20 slices" in form.dims_help.text()
    item = form["dims"].native.model().item(1)
    assert item.isEnabled() and form["dims"].native.itemText(1) == "3D (volumes)"
    form["dims"].value = 3
    viewer.dims.set_current_step(0, 11)
    form["steps"].value = 100000
    widget.train_panel.train_button.click()
    job = fake.last
    spec = job.spec
    assert spec["model_config"]["dims"] == 3
    assert tuple(spec["model_config"]["spacing"]) == (3.0, 1.0, 1.0)
    assert np.array_equal(spec["pairs"][0][1], labels)
    qtbot.waitUntil(lambda: widget.train.previews >= 1, timeout=5000)
    # a slab around slice 11 (32 px / 3 = 11 slices), keyed (slice, its index in the slab)
    (key, shape), = job.preview_sources
    assert key[0] == 11 and shape == (11, 32, 32) and key[1] == 5
    live = viewer.layers["vol prediction"]
    assert live.data.shape == labels.shape
    assert live.data[11].min() >= 1 and not live.data[10].any() and not live.data[12].any()
    widget.train_panel.stop_button.click()
    wait_training_done(qtbot, widget, timeout=5000)
    assert not notes.errors, notes.errors
    assert digest(lab.data) == before  # the painted labels are never written


def test_thin_stacks_are_advised_2d_and_3d_switches_default_sizes(studio, qtbot):
    viewer, widget = studio
    viewer.add_image(np.random.default_rng(0).random((4, 32, 32)).astype(np.float32),
                     name="thin")
    viewer.add_labels(np.zeros((4, 32, 32), np.uint8), name="thin strokes")
    form = widget.model_panel
    qtbot.waitUntil(lambda: "Recommended: 2D" in form.dims_help.text(), timeout=3000)
    assert "only 4 slices" in form.dims_help.text()
    # untouched defaults follow the choice, sizes the user set stay
    from napari_unet_studio.gui.model_form import SettingsPanel

    panel = SettingsPanel()
    qtbot.addWidget(panel)
    panel["batch_size"].value = 3
    panel["dims"].value = 3
    assert panel["patch_size"].value == VOLUME_CPU["patch_size"]
    assert panel["width"].value == VOLUME_CPU["width"]
    assert panel["batch_size"].value == 3
    panel["dims"].value = 2
    assert panel["patch_size"].value == 128 and panel["width"].value == 16


def test_advice_for_a_volume_opened_before_the_dock(make_napari_viewer, qtbot, fake):
    from widget_support import docked_studio, shut_down

    image, labels = _volume()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="vol")
    viewer.add_labels(labels, name="strokes")
    _, widget = docked_studio(lambda: viewer, client=fake)
    assert "Recommended: 3D" in widget.model_panel.dims_help.text()
    shut_down(qtbot, widget)
