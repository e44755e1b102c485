"""Support shared by the GUI tests and the reliability tests (plain module)."""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass, field


@dataclass
class Notes:
    """napari notifications recorded instead of shown."""

    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    infos: list = field(default_factory=list)

    def all(self) -> list[str]:
        return self.errors + self.warnings + self.infos


def record_notifications(monkeypatch) -> Notes:
    """Record napari notifications (the dock and reader call ``show_*`` at call time)."""
    from napari.utils import notifications

    rec = Notes()
    monkeypatch.setattr(notifications, "show_error", lambda m: rec.errors.append(str(m)))
    monkeypatch.setattr(notifications, "show_warning", lambda m: rec.warnings.append(str(m)))
    monkeypatch.setattr(notifications, "show_info", lambda m: rec.infos.append(str(m)))
    return rec


def tiny_settings(widget, steps: int = 4, *, batch_size: int = 1, tile: int = 64) -> None:
    """A very small network and few steps, on the CPU: a training run takes seconds."""
    form = widget.model_panel
    form["steps"].value = steps
    form["patch_size"].value = 32
    form["batch_size"].value = batch_size
    form["width"].value = 4
    form["depth"].value = 2
    form["tile"].value = tile
    form["preview_interval"].value = 3.0
    form["start"].value = "scratch"  # the shipped weights need the default architecture
    if "cpu" in form["device"].choices:
        form["device"].value = "cpu"


def wait_for_worker_info(qtbot, widget, timeout: int = 60000) -> None:
    """Wait until the worker said hello (decoder and device lists filled)."""
    qtbot.waitUntil(lambda: widget.client.info() is not None, timeout=timeout)
    qtbot.waitUntil(lambda: len(widget.model_panel.decoders()) > 1, timeout=5000)


def docked_studio(make_napari_viewer, settings=tiny_settings, client=None):
    """A viewer with the dock added and tiny settings: ``(viewer, widget)``.

    ``client`` is the worker client to use (default: the real worker process).
    """
    from napari_unet_studio.gui.dock import UNetStudioWidget

    viewer = make_napari_viewer()
    widget = UNetStudioWidget(viewer, client=client)
    viewer.window.add_dock_widget(widget, name="U-Net Studio")
    settings(widget)
    return viewer, widget


@contextlib.contextmanager
def real_worker_studio(qapp, env: dict[str, str]):
    """``(viewer, widget, notes)``: a napari viewer of its own with the dock on the real
    worker process, ``env`` set while it lives (for a module-scoped fixture)."""
    import napari
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        notes = record_notifications(mp)
        viewer, widget = docked_studio(lambda: napari.Viewer(show=False))
        gc.freeze()  # napari collects garbage on each layer removal; scan new objects only
        try:
            yield viewer, widget, notes
        finally:
            gc.unfreeze()
            widget.shutdown()
            viewer.close()
            qapp.processEvents()
            gc.collect()


def is_idle(widget) -> bool:
    """No training, prediction or model-file job runs."""
    return not (widget.train.running or widget.predict.running or widget.files.running)


def wait_idle(qtbot, widget, timeout: int = 30000) -> None:
    """Wait for the dock's jobs to end; then the controls must be usable again."""
    qtbot.waitUntil(lambda: is_idle(widget), timeout=timeout)
    assert widget.train_panel.train_button.isEnabled()
    assert widget.predict_panel.predict_button.isEnabled()
    assert widget.model_panel["decoder"].enabled and widget.data_panel.rows[0].isEnabled()


def shut_down(qtbot, widget, timeout: int = 15000) -> None:
    """Close the dock's jobs and its worker."""
    widget.shutdown()
    qtbot.waitUntil(lambda: is_idle(widget), timeout=timeout)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): os.kill said it exists
        return True


def pid_gone(pid: int | None, timeout: float = 3.0) -> bool:
    """True once process ``pid`` no longer runs, waiting at most ``timeout`` s."""
    if pid is None:
        return True
    end = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)
    return True
