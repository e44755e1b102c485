"""The small parts: the job drain, the paint watcher's regions, the loss plot."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet_studio.gui.drain import JobDrain
from napari_unet_studio.gui.painting import PaintWatcher, atom_region, union
from napari_unet_studio.gui.plot import LossPlot


class ScriptedJob:
    def __init__(self, batches, fail_at=None):
        self.batches = list(batches)
        self.finished = False
        self.fail_at = fail_at
        self.polls = 0

    def poll(self):
        self.polls += 1
        if self.fail_at is not None and self.polls == self.fail_at:
            raise ConnectionResetError("pipe closed")
        batch = self.batches.pop(0) if self.batches else []
        if any(k in ("done", "error") for k, _ in batch):
            self.finished = True
        return batch


def test_drain_dispatches_coalesces_previews_and_finishes_once(qtbot):
    job = ScriptedJob([
        [("progress", 1), ("preview", "old"), ("progress", 2), ("preview", "new")],
        [],
        [("progress", 3), ("done", "model")],
    ])
    seen, finished = [], []
    drain = JobDrain(job, {"progress": lambda p: seen.append(("progress", p)),
                           "preview": lambda p: seen.append(("preview", p)),
                           "done": lambda p: seen.append(("done", p))},
                     on_finished=lambda: finished.append(1), interval_ms=5)
    qtbot.waitUntil(lambda: drain.done, timeout=2000)
    assert seen == [("progress", 1), ("progress", 2), ("preview", "new"), ("progress", 3),
                    ("done", "model")]
    assert finished == [1] and not drain.timer.isActive()
    drain.tick()
    assert finished == [1]


def test_drain_turns_a_failing_poll_into_one_error(qtbot):
    job = ScriptedJob([[("progress", 1)]], fail_at=2)
    errors, finished = [], []
    drain = JobDrain(job, {"error": errors.append}, on_finished=lambda: finished.append(1),
                     interval_ms=5)
    qtbot.waitUntil(lambda: drain.done, timeout=2000)
    assert len(errors) == 1 and errors[0].kind == "crashed"
    assert "connection" in errors[0].message and "ConnectionResetError" in errors[0].detail
    assert finished == [1]


def test_drain_survives_a_failing_handler(qtbot):
    job = ScriptedJob([[("progress", 1), ("preview", 2), ("done", 3)]])
    done, bugs = [], []

    def broken(_):
        raise ValueError("bug")

    drain = JobDrain(job, {"progress": broken, "preview": broken, "done": done.append},
                     interval_ms=5, on_bug=lambda kind, exc: bugs.append((kind, str(exc))))
    qtbot.waitUntil(lambda: drain.done, timeout=2000)
    assert done == [3]
    assert bugs == [("preview", "bug")]  # a failed progress update is not worth a message


def test_regions_of_history_atoms():
    class Masked:
        slice_key = (slice(2, 5), slice(7, 9))

    assert atom_region(Masked(), 2) == (slice(2, 5), slice(7, 9))
    fancy = ((np.array([3, 1, 4]), np.array([9, 2, 6])), None, 1)
    assert atom_region(fancy, 2) == (slice(1, 5), slice(2, 10))
    assert atom_region(fancy, 3) is None  # cannot be told: the whole array
    assert union((slice(0, 2), slice(5, 6)), (slice(1, 4), slice(0, 1))) == (
        slice(0, 4), slice(0, 6))
    assert union((), (slice(1, 2),)) == (slice(1, 2),)
    assert union(None, (slice(1, 2),)) is None


def test_paint_watcher_reports_regions_per_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    a = viewer.add_labels(np.zeros((40, 40), np.uint8), name="a")
    b = viewer.add_labels(np.zeros((3, 40, 40), np.uint8), name="b")
    calls = []
    watcher = PaintWatcher([a, b], lambda i, layer, region: calls.append((i, region)), 60.0)
    try:
        watcher.flush()
        assert calls == []
        a.brush_size = 5
        a.paint((10, 20), 1, refresh=False)
        a.paint((30, 22), 2, refresh=False)
        watcher.flush()
        ((i, region),) = calls
        assert i == 0 and region[0].start <= 8 and region[0].stop >= 32
        assert region[1].start <= 18 and region[1].stop >= 25 and region[1].stop <= 26
        calls.clear()
        b.data = np.ones((3, 40, 40), np.uint8)
        watcher.flush()
        assert calls == [(1, None)]
    finally:
        watcher.close()
    calls.clear()
    a.paint((5, 5), 1, refresh=False)
    watcher.flush()
    assert calls == []  # disconnected


@pytest.mark.parametrize("n", [0, 5, 50000])
def test_loss_plot_paints_any_number_of_points(qtbot, n):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(300, 120)
    for step in range(1, n + 1):
        plot.add(step, 1.0 / step)
    plot.add(n + 1, float("nan"))  # ignored
    assert len(plot.steps) == n
    image = plot.grab()
    assert plot.draw_count == 1 and not image.isNull()
    steps, losses = plot._points(250)
    assert len(steps) <= max(n, 1) and len(steps) <= 2 * 250 + 2
    if n:
        assert steps[-1] == n and losses[-1] == pytest.approx(1.0 / n)
