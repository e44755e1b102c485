"""The Assistant panel on the real worker process: the decoder comparison (two decoders,
cancel, keeping the winner) and the upsampling gallery.

Kept apart from test_assistant.py (fake client) and named to run next to
test_worker_gui.py: a module that opens ``napari.Viewer`` itself must not come before
tests that use ``make_napari_viewer`` (napari then registers the plugin's commands a
second time when the next module opens its own viewer).
"""

from __future__ import annotations

import pytest
from gui_helpers import add_shapes, digest
from widget_support import (
    real_worker_studio,
    tiny_settings,
    wait_for_worker_info,
    wait_idle,
)

from napari_unet_studio.gui.layers import (
    ROLE_COMPARE,
    role,
)


def _only(panel, names):
    for name, box in panel.decoder_boxes.items():
        box.setChecked(name in names)


# ------------------------------------------------------------------ real worker
FAST = {"NAPARI_UNET_STUDIO_THREADS": "1", "NAPARI_UNET_STUDIO_WORKER_WARMUP": "0"}


@pytest.fixture(scope="module")
def shared(qapp):
    """``(viewer, widget, notes)`` on one real worker for the module."""
    with real_worker_studio(qapp, FAST) as studio:
        yield studio


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
