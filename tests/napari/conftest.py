"""Fixtures for the GUI tests: a viewer with the dock widget, recorded notifications."""

from __future__ import annotations

import pytest
from widget_support import Notes, docked_studio, record_notifications, shut_down


@pytest.fixture
def notes(monkeypatch) -> Notes:
    """Record napari notifications (the widget calls napari.utils.notifications.show_*)."""
    return record_notifications(monkeypatch)


@pytest.fixture
def studio(make_napari_viewer, qtbot, notes):
    """(viewer, widget) with the widget docked and tiny training settings."""
    viewer, widget = docked_studio(make_napari_viewer)
    yield viewer, widget
    shut_down(qtbot, widget)
