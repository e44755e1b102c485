"""The dock with the real worker process: Train / Pause / Stop, painting while training,
a worker killed mid-training, napari closed mid-training, a worker that cannot start,
napari started from a script without a ``__main__`` guard.

Tiny images and networks keep each run to seconds; one viewer and worker are shared by
the tests that do not end them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from gui_helpers import add_shapes, digest, wait_training_done
from widget_support import (
    docked_studio,
    pid_alive,
    pid_gone,
    real_worker_studio,
    record_notifications,
    shut_down,
    tiny_settings,
    wait_for_worker_info,
    wait_idle,
)

FAST_BEST = {"NAPARI_UNET_STUDIO_BEST_SAVE_FIRST": "0.3",
             "NAPARI_UNET_STUDIO_BEST_SAVE_EVERY": "0.5",
             "NAPARI_UNET_STUDIO_THREADS": "1"}
# The shared worker warms up (the first Train waits for it, as a user's would); the
# workers started later skip it: about 5 s of CPU each that no test here is about.
NO_WARM_UP = ("NAPARI_UNET_STUDIO_WORKER_WARMUP", "0")


def _viewer():
    import napari

    return napari.Viewer(show=False)


@pytest.fixture(scope="module")
def shared(qapp):
    """``(viewer, widget, notes)`` on one real worker for the module."""
    with real_worker_studio(qapp, FAST_BEST) as studio:
        yield studio


@pytest.fixture
def real(shared, qtbot):
    viewer, widget, notes = shared
    wait_for_worker_info(qtbot, widget)
    wait_idle(qtbot, widget)
    viewer.layers.clear()
    widget.use_model(None)
    tiny_settings(widget)
    notes.errors.clear()
    notes.warnings.clear()
    notes.infos.clear()
    yield viewer, widget, notes
    wait_idle(qtbot, widget)


def _record_progress(monkeypatch, panel) -> list[tuple[float, int, bool]]:
    """``(arrival time, step, paused)`` of every progress event the Train panel shows."""
    shown: list[tuple[float, int, bool]] = []
    show = panel.show_progress

    def recording(p: dict) -> None:
        shown.append((time.monotonic(), int(p.get("step") or 0), bool(p.get("paused"))))
        show(p)

    monkeypatch.setattr(panel, "show_progress", recording)
    return shown


def test_train_paint_pause_resume_stop(real, qtbot, monkeypatch):
    viewer, widget, notes = real
    shown = _record_progress(monkeypatch, widget.train_panel)
    _, labels = add_shapes(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=60000)
    live = viewer.layers["shapes prediction"]
    # painting while training: the stroke's region reaches the worker
    labels.brush_size = 3
    labels.paint((30, 30), 2, refresh=True)
    before = digest(labels.data)  # from now on nothing but the user may change them
    qtbot.waitUntil(lambda: widget.train.labels_pushes >= 1, timeout=10000)
    # the live prediction refreshes in place (same layer object)
    qtbot.waitUntil(lambda: widget.train.previews >= 1, timeout=30000)
    assert viewer.layers["shapes prediction"] is live and live.data.min() >= 1
    # Pause: the step in flight may still finish, then no step is made until Resume
    widget.train_panel.pause_button.click()
    assert widget.train_panel.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: any(paused for _, _, paused in shown), timeout=10000)
    first_paused = next(step for _, step, paused in shown if paused)
    # settled: while paused the worker sends no progress at all (training never stops
    # for this long between two steps of this tiny network, even on a loaded machine)
    qtbot.waitUntil(lambda: time.monotonic() - shown[-1][0] >= 0.5, timeout=10000)
    paused_at = widget.train_panel.progress.value()
    assert shown[-1][1:] == (paused_at, True)  # the panel's last word: paused, at that step
    assert first_paused <= paused_at <= first_paused + 1  # at most the step in flight
    held = len(shown)
    qtbot.wait(1500)
    assert widget.train_panel.progress.value() == paused_at
    assert shown[held:] == []  # not a single step (nor event) while paused
    widget.train_panel.pause_button.click()
    assert widget.train_panel.pause_button.text() == "Pause"
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() > paused_at, timeout=20000)
    widget.train_panel.stop_button.click()
    wait_training_done(qtbot, widget, timeout=20000)
    assert not notes.errors, notes.errors
    assert widget.model is not None and widget.model.record["steps"] > paused_at
    assert any("stopped after" in m for m in notes.infos), notes.infos
    assert widget.model_panel.device_used.text().startswith("Ran on: cpu")
    assert digest(labels.data) == before
    # the trained model predicts through the worker too
    widget.predict_panel.predict_button.click()
    qtbot.waitUntil(lambda: not widget.predict.running, timeout=30000)
    pred = viewer.layers["shapes prediction (bilinear)"]
    assert pred.data.shape == (64, 64) and pred.data.min() >= 1 and not notes.errors


def test_worker_killed_mid_training(real, qtbot, monkeypatch):
    """napari stays, exactly one notification, labels intact, the best model so far is
    kept, and the next Train starts a fresh worker."""
    viewer, widget, notes = real
    monkeypatch.setenv(*NO_WARM_UP)  # for the fresh worker
    image, labels = add_shapes(viewer)
    before = digest(labels.data)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    job = widget.train.job
    qtbot.waitUntil(lambda: getattr(job, "best", None) is not None, timeout=60000)
    pid = widget.client.pid
    os.kill(pid, signal.SIGKILL)
    wait_training_done(qtbot, widget, timeout=20000)
    assert pid_gone(pid, timeout=5)
    assert len(notes.errors) == 1, notes.errors
    assert "SIGKILL" in notes.errors[0] and "Traceback" not in notes.errors[0]
    assert not notes.warnings, notes.warnings
    assert digest(labels.data) == before and image in viewer.layers
    assert widget.model is not None and widget.model.record.get("steps", 0) >= 1
    assert widget.train_panel.train_button.isEnabled()
    # the next Train works, on a fresh worker
    widget.model_panel["steps"].value = 3
    widget.train_panel.train_button.click()
    wait_training_done(qtbot, widget, timeout=60000)
    assert len(notes.errors) == 1, notes.errors
    assert widget.client.pid not in (None, pid)
    assert widget.model.record["steps"] == 3
    assert digest(labels.data) == before


def test_a_damaged_model_file_dropped_on_napari_is_refused_by_the_worker(real, qtbot,
                                                                       tmp_path):
    import zipfile

    viewer, widget, notes = real
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as archive:  # our marker, but no loadable content
        archive.writestr("bad/data.pkl", b"garbage napari-unet-studio-model garbage")
    viewer.open(str(bad), plugin="napari-unet-studio")
    wait_idle(qtbot, widget)
    assert len(notes.errors) == 1 and "bad.pt" in notes.errors[0], notes.errors
    assert "Traceback" not in notes.errors[0] and widget.model is None
    assert len(viewer.layers) == 0


def test_closing_napari_while_training_leaves_no_worker(qtbot, monkeypatch):
    monkeypatch.setenv("NAPARI_UNET_STUDIO_THREADS", "1")
    monkeypatch.setenv(*NO_WARM_UP)
    notes = record_notifications(monkeypatch)
    viewer, widget = docked_studio(_viewer)
    add_shapes(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=60000)
    pid = widget.client.pid
    assert pid_alive(pid)
    viewer.close()
    assert pid_gone(pid, timeout=3.0), "the worker outlived napari"
    assert widget.client.pid is None
    assert not notes.errors, notes.errors


def test_a_worker_that_fails_to_start(qtbot, monkeypatch):
    monkeypatch.setenv("NAPARI_UNET_STUDIO_WORKER_CMD",
                       f"{sys.executable} -c \"import sys; sys.exit('no torch here')\"")
    notes = record_notifications(monkeypatch)
    viewer, widget = docked_studio(_viewer)
    try:
        _, labels = add_shapes(viewer)
        before = digest(labels.data)
        widget.train_panel.train_button.click()
        wait_training_done(qtbot, widget, timeout=30000)
        assert len(notes.errors) == 1, notes.errors
        message = notes.errors[0]
        assert "could not be started" in message and "no torch here" in message
        assert "Traceback" not in message
        assert digest(labels.data) == before
        assert widget.train_panel.train_button.isEnabled()
        assert widget.model_panel.decoders() == ["bilinear"]  # no hello came
    finally:
        shut_down(qtbot, widget)
        viewer.close()


SCRIPT = """
import numpy as np
import napari
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer(show=False)
dock, widget = viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
labels = np.zeros((32, 32), np.uint8)
labels[2, 2:20] = 1
labels[20, 5:25] = 2
viewer.add_image(image, name="img")
viewer.add_labels(labels, name="lab")
form = widget.model_panel
form["steps"].value = 3
form["patch_size"].value = 16
form["width"].value = 4
form["depth"].value = 2
form["start"].value = "scratch"
widget.train_panel.train_button.click()

def check():
    if widget.train.running:
        return
    timer.stop()
    model = widget.model
    print("TRAINED", model.record["steps"] if model is not None else None, flush=True)
    viewer.close()
    QApplication.instance().quit()

timer = QTimer()
timer.timeout.connect(check)
timer.start(50)
napari.run()
"""


def test_napari_started_from_a_script_without_a_main_guard(tmp_path):
    """The worker is its own program (``python -m``), so a user's script without
    ``if __name__ == "__main__"`` runs once, not again in the worker."""
    script = tmp_path / "my_analysis.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "NAPARI_UNET_STUDIO_THREADS": "1", NO_WARM_UP[0]: NO_WARM_UP[1]}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=180, env=env, cwd=tmp_path)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("TRAINED")]
    assert lines == ["TRAINED 3"], (res.stdout[-2000:], res.stderr[-3000:])
    assert res.returncode == 0, res.stderr[-3000:]
