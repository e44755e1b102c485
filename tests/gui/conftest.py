"""Fixtures of the GUI tests: a viewer with the dock, recorded notifications, clients.

``studio`` docks the widget with the fake client (``fake_client.py``: the worker
contract with canned events, no process) for fast tests of the GUI's own behaviour;
``real_studio`` docks it with the real worker process client.
"""

from __future__ import annotations

import pytest
from fake_client import FakeClient
from widget_support import Notes, docked_studio, record_notifications, shut_down


@pytest.fixture
def notes(monkeypatch) -> Notes:
    """Record napari notifications (the dock calls napari.utils.notifications.show_*)."""
    return record_notifications(monkeypatch)


@pytest.fixture
def fake(tmp_path) -> FakeClient:
    """A fake worker client writing its model files under ``tmp_path``."""
    return FakeClient(tmp_path)


@pytest.fixture
def use_fake(monkeypatch, fake) -> FakeClient:
    """Docks opened by napari itself (reader, plugin menu) get the fake client too."""
    from napari_unet_studio.gui import dock

    monkeypatch.setattr(dock, "make_client", lambda: fake)
    return fake


@pytest.fixture
def studio(make_napari_viewer, qtbot, notes, fake):
    """(viewer, widget) with the widget docked on the fake client, tiny settings."""
    viewer, widget = docked_studio(make_napari_viewer, client=fake)
    yield viewer, widget
    shut_down(qtbot, widget)
