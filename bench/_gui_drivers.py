"""Drivers and helpers of bench/gui_latency.py: event-loop waits, gap statistics, a
painter, the floor stand-in, the real dock and a client-only stand-in dock."""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np

# The one place that names the dock: the manifest entry a user opens, and the class the
# variants build directly (the GUI moved from _widget.py to gui/dock.py).
DOCK_PLUGIN = ("napari-unet-studio", "U-Net Studio")
DOCK_CLASSES = ("napari_unet_studio.gui.dock:UNetStudioWidget",
                "napari_unet_studio._widget:UNetStudioWidget")
VARIANTS = {"default": {}, "nice19": {"NAPARI_UNET_STUDIO_WORKER_NICE": "19"},
            "nice0": {"NAPARI_UNET_STUDIO_WORKER_NICE": "0"},
            "paint1": {"NAPARI_UNET_STUDIO_PAINT_THREADS": "1"},
            "notune": {"NAPARI_UNET_STUDIO_THREAD_TUNING": "0"}}


def dock_class() -> type:
    for spec in DOCK_CLASSES:
        module, name = spec.split(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {DOCK_CLASSES}")


# ------------------------------------------------------------------ event loop helpers
def wait(seconds: float) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def wait_until(pred: Any, timeout: float, poll_ms: int = 10) -> float | None:
    """Run the event loop until ``pred()``; the time it took, or None on timeout."""
    from qtpy.QtCore import QEventLoop, QTimer

    start = time.perf_counter()
    if pred():
        return 0.0
    loop = QEventLoop()
    result: dict[str, float] = {}

    def check() -> None:
        if pred():
            result["t"] = time.perf_counter() - start
            loop.quit()
        elif time.perf_counter() - start > timeout:
            loop.quit()

    timer = QTimer()
    timer.setInterval(poll_ms)
    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    return result.get("t")


def gap_stats(ticks: np.ndarray, t0: float, t1: float, interval: float) -> dict[str, Any]:
    """Event-loop gaps (ms) of the ticks that fell in ``(t0, t1]``."""
    gaps = np.diff(ticks) * 1000
    ends = ticks[1:]
    sel = gaps[(ends > t0) & (ends <= t1)]
    if not sel.size:
        return {"ticks": 0}
    at = ends[(ends > t0) & (ends <= t1)] - t0
    worst = np.argsort(sel)[::-1][:5]
    return {"ticks": int(sel.size), "expected_ticks": int((t1 - t0) * 1000 / interval),
            "p50_ms": round(float(np.percentile(sel, 50)), 1),
            "p99_ms": round(float(np.percentile(sel, 99)), 1),
            "max_ms": round(float(sel.max()), 1),
            "over_50ms": int((sel > 50).sum()), "over_100ms": int((sel > 100).sum()),
            "over_250ms": int((sel > 250).sum()),
            "worst_at_s_ms": [(round(float(at[i]), 2), round(float(sel[i]), 1)) for i in worst]}


class Painter:
    """A short stroke of background (label 1) every second, like a user's brush."""

    def __init__(self, truth: np.ndarray, seed: int = 0) -> None:
        from qtpy.QtCore import QTimer

        self.ys, self.xs = np.nonzero(truth == 1)
        self.rng = np.random.default_rng(seed)
        self.layer = None
        self.on_paint = None
        self.count = 0
        self.timer = QTimer()
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.stroke)

    def start(self, layer: Any, on_paint: Any = None) -> None:
        self.layer, self.on_paint = layer, on_paint
        layer.brush_size = 5
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def stroke(self) -> None:
        i = int(self.rng.integers(len(self.ys)))
        y, x = int(self.ys[i]), int(self.xs[i])
        shape = self.layer.data.shape
        points = [(min(max(y + k, 0), shape[0] - 1), min(max(x + k, 0), shape[1] - 1))
                  for k in range(0, 10, 2)]
        for point in points:  # one dab per mouse-move event
            self.layer.paint(point, 1, refresh=True)
        self.count += 1
        if self.on_paint is not None:
            ys, xs = [p[0] for p in points], [p[1] for p in points]
            self.on_paint((slice(max(min(ys) - 3, 0), max(ys) + 4),
                           slice(max(min(xs) - 3, 0), max(xs) + 4)))


# ------------------------------------------------------------------ what gets measured
class FloorDriver:
    """Worker-free stand-in: writes a preview-sized plane into a layer every interval."""

    name = "floor"

    def __init__(self, viewer: Any, image: Any, truth: np.ndarray, interval: float) -> None:
        from napari.layers import Labels
        from qtpy.QtCore import QTimer

        self.viewer = viewer
        self.planes = [truth.astype(np.uint8), np.where(truth == 2, 1, 2).astype(np.uint8)]
        self.layer = viewer.add_layer(Labels(np.zeros(truth.shape, np.uint8),
                                             name="floor stand-in prediction", opacity=0.6))
        self.scribbles = viewer.add_layer(Labels(np.zeros(truth.shape, np.uint8),
                                                 name="floor stand-in scribbles"))
        self.previews = 0
        self.timer = QTimer()
        self.timer.setInterval(int(interval * 1000))
        self.timer.timeout.connect(self.update)

    def update(self) -> None:
        self.layer.data[...] = self.planes[self.previews % 2]
        self.layer.refresh()
        self.previews += 1

    def press_train(self) -> None:
        self.timer.start()
        single_shot(0.3, self.update)  # the dock's first overlay comes after a step

    def press_stop(self) -> None:
        self.timer.stop()

    def running(self) -> bool:
        return self.timer.isActive()

    def record(self) -> dict:
        return {}

    def config(self) -> dict:
        return {}

    def close(self) -> None:
        for layer in (self.layer, self.scribbles):
            self.viewer.layers.remove(layer)


def single_shot(seconds: float, fn: Any) -> None:
    from qtpy.QtCore import QTimer

    QTimer.singleShot(int(seconds * 1000), fn)


class DockDriver:
    """The real dock, pressed like a user (works with gui/dock.py and the older _widget)."""

    name = "dock"

    def __init__(self, viewer: Any, widget: Any, image: Any, labels: Any, steps: int) -> None:
        self.viewer, self.widget = viewer, widget
        self.labels = labels
        row = widget.data_panel.rows[0]
        if row.image.layer() is None or row.labels.layer() is None:
            row.image.set_layer(image)
            row.labels.set_layer(labels)
        panel = widget.model_panel
        try:
            panel["steps"].value = steps  # gui/model_form.py (magicgui fields)
        except (TypeError, KeyError):
            panel.steps.setValue(steps)  # the older widget

    @property
    def controller(self) -> Any:
        return getattr(self.widget, "train", None) if hasattr(self.widget, "slot") else None

    def client(self) -> Any:
        return getattr(self.widget, "client", None)

    def warm(self) -> bool:
        """The worker answered and finished its warm-up (a user paints meanwhile)."""
        client = self.client()
        info = client.info() if client is not None else {}
        return info is not None and info.get("warm", True)

    def press_train(self) -> None:
        self.widget.train_panel.train_button.click()

    def press_stop(self) -> None:
        self.widget.train_panel.stop_button.click()

    def running(self) -> bool:
        c = self.controller
        return c.running if c is not None else self.widget.state.train_worker is not None

    @property
    def previews(self) -> int:
        c = self.controller
        return int(c.previews if c is not None else self.widget.state.previews)

    @property
    def labels_pushes(self) -> int:
        c = self.controller
        return int(c.labels_pushes if c is not None else self.widget.state.labels_pushes)

    def record(self) -> dict:
        ref = self.widget.slot.ref if hasattr(self.widget, "slot") else self.widget.model
        return dict(ref.record) if ref is not None else {}

    def config(self) -> dict:
        ref = self.widget.slot.ref if hasattr(self.widget, "slot") else self.widget.model
        if ref is None:
            return {}
        return dict(ref.config) if isinstance(ref.config, dict) else ref.config.to_dict()

    def close(self) -> None:
        if hasattr(self.widget, "shutdown"):  # gui/dock.py: ends the worker
            self.widget.shutdown()
        try:
            self.viewer.window.remove_dock_widget(self.widget)
        except Exception:  # noqa: BLE001 - older napari: the dock wrapper
            pass
        self.widget.close()
        self.widget.deleteLater()


class ClientDriver:
    """Stand-in dock that uses the worker client directly (no panels, no loss plot)."""

    name = "client"

    def __init__(self, viewer: Any, image: Any, labels: Any, steps: int,
                 interval: float) -> None:
        from napari.layers import Labels
        from qtpy.QtCore import QTimer

        from napari_unet_studio.core.config import TrainConfig
        from napari_unet_studio.worker import WorkerClient

        self.viewer, self.image, self.labels = viewer, image, labels
        self.client = WorkerClient()
        self.client.start()
        self.tc = TrainConfig(steps=steps).to_dict()
        self.interval = interval
        self.layer = viewer.add_layer(Labels(np.zeros(labels.data.shape, np.uint8),
                                             name="client stand-in prediction", opacity=0.6))
        self.job = None
        self.previews = self.labels_pushes = 0
        self._record: dict = {}
        self._config: dict = {}
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self.poll)

    def warm(self) -> bool:
        info = self.client.info()
        return info is not None and info.get("warm", True)

    def on_paint(self, region: tuple[slice, ...]) -> None:
        if self.job is not None:
            self.job.update_labels(0, self.labels.data, region)
            self.labels_pushes += 1

    def press_train(self) -> None:
        self.job = self.client.train([(self.image.data, self.labels.data)], None, self.tc,
                                     live=True, preview_interval=self.interval)
        self.job.set_preview_source(None, np.asarray(self.image.data))
        self.timer.start()

    def poll(self) -> None:
        if self.job is None:
            return
        for kind, payload in self.job.poll():
            if kind == "preview":
                self.layer.data[...] = payload[1]
                self.layer.refresh()
                self.previews += 1
            elif kind == "done":
                self._record, self._config = dict(payload.record), dict(payload.config)
            elif kind == "error":
                print("client stand-in:", payload.message)
        if self.job.finished:
            self.job = None
            self.timer.stop()

    def press_stop(self) -> None:
        if self.job is not None:
            self.job.stop()

    def running(self) -> bool:
        return self.job is not None

    def record(self) -> dict:
        return self._record

    def config(self) -> dict:
        return self._config

    def close(self) -> None:
        self.client.shutdown()
        self.viewer.layers.remove(self.layer)
