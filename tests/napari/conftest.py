"""Fixtures for the GUI tests: a viewer with the dock widget, recorded notifications."""

from __future__ import annotations

import pytest
from gui_helpers import Notes, tiny_settings


@pytest.fixture
def notes(monkeypatch) -> Notes:
    """Record napari notifications (the widget calls napari.utils.notifications.show_*)."""
    from napari.utils import notifications

    rec = Notes()
    monkeypatch.setattr(notifications, "show_error", lambda m: rec.errors.append(str(m)))
    monkeypatch.setattr(notifications, "show_warning", lambda m: rec.warnings.append(str(m)))
    monkeypatch.setattr(notifications, "show_info", lambda m: rec.infos.append(str(m)))
    return rec


@pytest.fixture
def studio(make_napari_viewer, qtbot, notes):
    """(viewer, widget) with the widget docked and tiny training settings."""
    from napari_unet_studio._widget import UNetStudioWidget

    viewer = make_napari_viewer()
    widget = UNetStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net Studio")
    tiny_settings(widget)
    yield viewer, widget
    widget.shutdown()
    qtbot.waitUntil(lambda: widget.state.train_worker is None, timeout=10000)
    qtbot.waitUntil(lambda: widget.state.predict_worker is None, timeout=10000)
