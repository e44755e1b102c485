"""Support shared by the napari GUI tests and the reliability tests (plain module)."""

from __future__ import annotations

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
    """Record napari notifications (the widget and reader call ``show_*`` at call time)."""
    from napari.utils import notifications

    rec = Notes()
    monkeypatch.setattr(notifications, "show_error", lambda m: rec.errors.append(str(m)))
    monkeypatch.setattr(notifications, "show_warning", lambda m: rec.warnings.append(str(m)))
    monkeypatch.setattr(notifications, "show_info", lambda m: rec.infos.append(str(m)))
    return rec


def tiny_settings(widget, steps: int = 4, *, batch_size: int = 1, tile: int = 64) -> None:
    """A very small network and few steps, on the CPU: a training run takes seconds."""
    mp = widget.model_panel
    mp.steps.setValue(steps)
    mp.patch_size.setValue(32)
    mp.batch_size.setValue(batch_size)
    mp.width.setValue(4)
    mp.depth.setValue(2)
    mp.tile.setValue(tile)
    mp.preview_interval.setValue(3.0)
    mp.device.setCurrentIndex(max(0, mp.device.findData("cpu")))


def docked_studio(make_napari_viewer, settings=tiny_settings):
    """A viewer with the dock widget added and tiny settings: ``(viewer, widget)``."""
    from napari_unet_studio._widget import UNetStudioWidget

    viewer = make_napari_viewer()
    widget = UNetStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net Studio")
    settings(widget)
    return viewer, widget


def shut_down(qtbot, widget, timeout: int = 15000) -> None:
    """Close the widget's jobs and wait until no worker is left."""
    widget.shutdown()
    qtbot.waitUntil(lambda: widget.state.train_worker is None, timeout=timeout)
    qtbot.waitUntil(lambda: widget.state.predict_worker is None, timeout=timeout)
