"""Injected faults: stop at the worst moment, close the viewer mid-run, out of memory,
exceptions inside the workers. The user always hears about it, keeps their layers and
their last good model, and can go on working.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch
from qtpy.QtCore import QThreadPool
from rel_helpers import (
    ARCH,
    TINY_TRAIN,
    assert_layers_unchanged,
    drain,
    layer_digests,
    scribbles,
    textured,
    tiny_trained_model,
    wait_idle,
)

from napari_unet_studio.core import infer as core_infer
from napari_unet_studio.core import train as core_train
from napari_unet_studio.core.config import TileConfig
from napari_unet_studio.core.errors import DeviceError
from napari_unet_studio.core.infer import iter_predict
from napari_unet_studio.core.train import Trainer

OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"


def _out_of_memory_once(monkeypatch) -> list[int]:
    """Make the first training step raise CUDA out-of-memory; returns the batch sizes seen."""
    real, calls = Trainer._train_step, []

    def oom_once(self, opt, scaler, x, y, lr):
        calls.append(len(x))
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError(OOM)
        return real(self, opt, scaler, x, y, lr)

    monkeypatch.setattr(Trainer, "_train_step", oom_once)
    return calls


def _trainer(steps=3, **kw):
    tc = dataclasses.replace(TINY_TRAIN, steps=steps)
    return Trainer([(textured((16, 16)), scribbles((16, 16)))], None, tc, arch=ARCH, **kw)


# ------------------------------------------------------------------------------ engine
def test_stop_during_the_first_step(monkeypatch):
    trainer = _trainer(steps=50)
    real = Trainer._train_step

    def step_and_stop(self, *args):
        self.stop()  # the user presses Stop while the first step runs
        return real(self, *args)

    monkeypatch.setattr(Trainer, "_train_step", step_and_stop)
    reports = list(trainer.run())
    assert [r.step for r in reports] == [1, 1]
    assert reports[-1].done and reports[-1].stopped
    assert trainer.result().record["steps"] == 1


def test_stop_before_the_first_step():
    trainer = _trainer(steps=50)
    trainer.stop()
    reports = list(trainer.run())
    assert len(reports) == 1 and reports[0].done and reports[0].stopped and reports[0].step == 0


def test_stop_during_prediction():
    stop = threading.Event()
    gen = iter_predict(tiny_trained_model(), textured((50, 16, 16)), device="cpu",
                       tile=TileConfig(tile=32, batch_size=1), stop=stop)
    first = next(gen)
    stop.set()
    result = drain(gen)
    assert result.cancelled and first.done < first.total


def test_out_of_memory_once_halves_the_batch(monkeypatch):
    trainer = _trainer(steps=2)
    calls = _out_of_memory_once(monkeypatch)
    reports = list(trainer.run())
    assert calls == [2, 1, 1]
    assert "batch size halved to 1" in reports[0].message
    assert reports[-1].done and reports[-1].step == 2
    assert trainer.result().record["batch_size"] == 1


def test_out_of_memory_at_one_patch_is_a_clear_error(monkeypatch):
    def always_oom(self, *args):
        raise torch.cuda.OutOfMemoryError(OOM)

    monkeypatch.setattr(Trainer, "_train_step", always_oom)
    with pytest.raises(DeviceError, match="Not enough memory .* even for one 32-pixel patch"):
        drain(_trainer().run())


def test_other_errors_in_a_step_are_not_mistaken_for_out_of_memory(monkeypatch):
    def broken(self, *args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(Trainer, "_train_step", broken)
    with pytest.raises(RuntimeError, match="mat1"):
        drain(_trainer().run())


def test_nan_loss_skips_the_step_and_keeps_training(monkeypatch):
    real, calls = core_train.masked_loss, []

    def nan_once(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 1 else loss

    monkeypatch.setattr(core_train, "masked_loss", nan_once)
    trainer = _trainer(steps=3)
    reports = list(trainer.run())
    assert "loss was not a number" in reports[0].message
    assert all(torch.isfinite(v).all() for v in trainer.result().state_dict.values()
               if v.is_floating_point())


# ------------------------------------------------------------------------------ widget
@pytest.fixture
def studio(shared_studio, qtbot):
    from conftest import reset_widget

    viewer, widget, rec = shared_studio
    wait_idle(qtbot, widget)
    reset_widget(viewer, widget, rec)
    yield viewer, widget
    wait_idle(qtbot, widget)


@pytest.fixture
def notes(shared_studio):
    return shared_studio[2]


def _layers(viewer, shape=(16, 16)):
    img = viewer.add_image(textured(shape), name="img")
    lab = viewer.add_labels(scribbles(shape), name="lab")
    return img, lab


def test_stop_right_after_train_keeps_the_previous_model(studio, qtbot, notes):
    viewer, widget = studio
    _layers(viewer)
    previous = tiny_trained_model(1, 2, seed=5)
    widget.use_model(previous, source="my good model")
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    widget.train_panel.stop_button.click()  # before the first step
    wait_idle(qtbot, widget)
    assert not notes.errors, notes.errors
    assert any("stopped" in m.lower() for m in notes.infos + notes.warnings), notes.infos
    if widget.model is not previous:  # a model replacing the user's must have learnt
        assert widget.model.record["steps"] >= 1
    else:
        assert "current model is unchanged" in notes.infos[-1]
    assert_layers_unchanged(viewer, before)


def test_stop_during_the_first_step_in_the_widget(studio, qtbot, notes, monkeypatch):
    viewer, widget = studio
    _layers(viewer)
    widget.model_panel.steps.setValue(1000)
    real = Trainer._train_step
    in_step, release = threading.Event(), threading.Event()

    def slow_first_step(self, *args):
        in_step.set()
        release.wait(10)
        return real(self, *args)

    monkeypatch.setattr(Trainer, "_train_step", slow_first_step)
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    qtbot.waitUntil(in_step.is_set, timeout=20000)
    widget.train_panel.stop_button.click()
    release.set()
    start = time.monotonic()
    wait_idle(qtbot, widget, timeout=10000)
    assert time.monotonic() - start < 5
    assert widget.model is not None and widget.model.record["steps"] == 1
    assert any("stopped after 1 steps" in m for m in notes.infos), notes.infos
    assert_layers_unchanged(viewer, before)


def test_cancel_during_prediction(studio, qtbot, notes, monkeypatch):
    viewer, widget = studio
    img = viewer.add_image(textured((200, 16, 16), dtype=np.uint8), name="stack")
    widget.use_model(tiny_trained_model(), source="test")
    widget.predict_panel.image.set_layer(img)
    before = layer_digests(viewer)
    seen = []
    real = core_infer.iter_predict_module

    # keep the real return value: wrap with a generator that forwards it
    def forwarding(*args, **kwargs):
        gen = real(*args, **kwargs)
        while True:
            try:
                progress = next(gen)
            except StopIteration as fin:
                return fin.value
            seen.append(progress.done)
            time.sleep(0.02)
            yield progress

    monkeypatch.setattr(core_infer, "iter_predict_module", forwarding)
    widget.predict_panel.predict_button.click()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=20000)
    widget.predict_panel.cancel_button.click()
    wait_idle(qtbot, widget)
    assert seen[-1] < 200
    assert any("cancelled" in m for m in notes.infos), notes.infos
    assert len(viewer.layers) == len(before)  # no half-filled layer
    assert_layers_unchanged(viewer, before)
    assert not notes.errors


def test_out_of_memory_in_the_widget_halves_the_batch(studio, qtbot, notes, monkeypatch):
    viewer, widget = studio
    _layers(viewer)
    calls = _out_of_memory_once(monkeypatch)
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    wait_idle(qtbot, widget)
    assert calls[:2] == [2, 1]
    assert any("batch size halved to 1" in w for w in notes.warnings), notes.warnings
    assert not notes.errors and widget.model.record["batch_size"] == 1
    assert_layers_unchanged(viewer, before)


@pytest.mark.parametrize(("where", "exc", "expected"), [
    ("run", RuntimeError("boom from torch"), "unexpected error (RuntimeError: boom from torch)"),
    ("run", torch.cuda.OutOfMemoryError(OOM), "ran out of memory"),
    ("run", MemoryError(), "ran out of memory"),
    ("init", RuntimeError("cannot build"), "RuntimeError: cannot build"),
    ("step3", ValueError("bad value at step 3"), "bad value at step 3"),
], ids=["runtime_error", "cuda_oom_in_run", "memory_error", "error_in_constructor",
        "error_after_some_steps"])
def test_worker_exception_reaches_the_user_and_the_widget_recovers(
        studio, qtbot, notes, monkeypatch, where, exc, expected):
    viewer, widget = studio
    _layers(viewer)
    widget.model_panel.steps.setValue(5)
    if where == "run":
        def broken_run(self):
            yield from ()
            raise exc

        monkeypatch.setattr(Trainer, "run", broken_run)
    elif where == "init":
        def broken_init(self, *args, **kwargs):
            raise exc

        monkeypatch.setattr(Trainer, "__init__", broken_init)
    else:
        real, calls = Trainer._train_step, []

        def broken_step(self, *args):
            calls.append(1)
            if len(calls) == 3:
                raise exc
            return real(self, *args)

        monkeypatch.setattr(Trainer, "_train_step", broken_step)
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    wait_idle(qtbot, widget)
    assert notes.errors and expected in notes.errors[-1], notes.errors
    if where == "step3":  # two steps were done: that model is kept and said so
        assert "best model so far is kept" in notes.errors[-1]
        assert widget.model is not None and widget.model.record["steps"] == 2
    assert_layers_unchanged(viewer, before)
    # the widget is usable again: a second training works
    monkeypatch.undo()
    widget.model_panel.steps.setValue(2)
    notes.errors.clear()
    widget.train_panel.train_button.click()
    wait_idle(qtbot, widget)
    assert not notes.errors, notes.errors
    assert widget.model is not None and widget.model.record["steps"] == 2
    assert_layers_unchanged(viewer, before)


def test_prediction_worker_exception_reaches_the_user(studio, qtbot, notes, monkeypatch):
    viewer, widget = studio
    img = viewer.add_image(textured((16, 16)), name="img")
    widget.use_model(tiny_trained_model(), source="test")
    widget.predict_panel.image.set_layer(img)

    def broken(*args, **kwargs):
        yield from ()
        raise RuntimeError("kernel died")

    monkeypatch.setattr(core_infer, "iter_predict", broken)
    before = layer_digests(viewer)
    widget.predict_panel.predict_button.click()
    wait_idle(qtbot, widget)
    assert notes.errors and "RuntimeError: kernel died" in notes.errors[-1]
    assert len(viewer.layers) == len(before)
    monkeypatch.undo()
    widget.predict_panel.predict_button.click()
    wait_idle(qtbot, widget)
    assert "img prediction (bilinear)" in viewer.layers
    assert_layers_unchanged(viewer, before)


def test_image_replaced_during_training(studio, qtbot, notes):
    """The user swaps the image data (other shape) mid-run: the new data is skipped with
    a warning, training goes on to the end, nothing the user has is touched."""
    viewer, widget = studio
    img, lab = _layers(viewer)
    widget.model_panel.steps.setValue(100000)
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
    img.data = textured((24, 24))
    lab.paint((3, 3), 2, refresh=True)  # painting hands the new pairs to the trainer
    before = layer_digests(viewer)
    qtbot.waitUntil(lambda: any("not used" in w for w in notes.warnings), timeout=15000)
    assert widget.state.train_worker is not None  # still training
    widget.train_panel.stop_button.click()
    wait_idle(qtbot, widget)
    assert any("(24, 24)" in w for w in notes.warnings), notes.warnings
    assert widget.model is not None and not notes.errors
    assert_layers_unchanged(viewer, before)


def test_live_preview_layer_deleted_during_training(studio, qtbot, notes):
    viewer, widget = studio
    _layers(viewer)
    widget.model_panel.steps.setValue(100000)
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.state.previews >= 1, timeout=30000)
    before = layer_digests(viewer)
    viewer.layers.remove("img prediction")
    qtbot.wait(200)
    assert widget.state.train_worker is not None  # training goes on without its preview
    widget.train_panel.stop_button.click()
    wait_idle(qtbot, widget)
    assert widget.model is not None and not notes.errors and not notes.warnings
    assert "img prediction" not in viewer.layers
    assert_layers_unchanged(viewer, before)


@pytest.mark.parametrize("deleted", ["img", "lab"])
def test_layer_deleted_during_training(studio, qtbot, notes, deleted):
    viewer, widget = studio
    _layers(viewer)
    widget.model_panel.steps.setValue(100000)
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
    viewer.layers.remove(deleted)
    wait_idle(qtbot, widget, timeout=15000)
    assert any(f"'{deleted}' was deleted while training" in w for w in notes.warnings)
    assert widget.model is not None and not notes.errors
    assert_layers_unchanged(viewer, before, removed=(deleted,))


# ------------------------------------------------------------------- closing the viewer
@pytest.mark.parametrize("job", ["training", "paused_training", "prediction"])
def test_closing_the_viewer_mid_job_leaves_no_running_thread(qtbot, notes, job):
    import napari
    from conftest import tiny_widget_settings

    from napari_unet_studio._widget import UNetStudioWidget

    viewer = napari.Viewer(show=False)  # closed by the test itself
    widget = UNetStudioWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_widget_settings(widget, steps=100000)
    threads_before = {t.ident for t in threading.enumerate()}
    if job in ("training", "paused_training"):
        _layers(viewer)
        widget.train_panel.train_button.click()
        worker = widget.state.train_worker
        qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
        if job == "paused_training":
            widget.train_panel.pause_button.click()
            assert widget.train_panel.pause_button.text() == "Resume"
    else:
        img = viewer.add_image(textured((3000, 16, 16), dtype=np.uint8), name="long stack")
        widget.use_model(tiny_trained_model(), source="test")
        widget.predict_panel.image.set_layer(img)
        widget.predict_panel.predict_button.click()
        worker = widget.state.predict_worker
        qtbot.waitUntil(lambda: widget.predict_panel.progress.value() >= 1, timeout=30000)
    assert worker is not None and worker.is_running
    start = time.monotonic()
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10000)
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10000)
    assert time.monotonic() - start < 5.0
    leftover = [t for t in threading.enumerate()
                if t.ident not in threads_before and t.is_alive() and not t.daemon]
    assert not leftover, leftover
    assert any("stopped" in w for w in notes.warnings), notes.warnings


@pytest.mark.parametrize("how", ["close_viewer"])  # Stop takes the same path (job.stop)
def test_stop_or_close_during_a_slow_live_preview(qtbot, notes, monkeypatch, how):
    """A live preview of a large plane (here: many tiles, each slowed down) is abandoned
    between two batches of tiles, so Stop and closing napari take effect in seconds
    (before the fix: 11 s here, and minutes for a large image on a slow CPU)."""
    import napari
    from conftest import tiny_widget_settings

    from napari_unet_studio._widget import UNetStudioWidget

    real = core_infer.iter_predict_module
    in_preview = threading.Event()

    def slow_tiles(*args, **kwargs):
        gen = real(*args, **kwargs)
        while True:
            try:
                progress = next(gen)
            except StopIteration as fin:
                return fin.value
            in_preview.set()
            time.sleep(1.0)  # 25 tiles of 256 px in batches of 4: 7 s per preview
            yield progress

    monkeypatch.setattr(core_infer, "iter_predict_module", slow_tiles)
    viewer = napari.Viewer(show=False)
    widget = UNetStudioWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_widget_settings(widget, steps=100000)
    widget.model_panel.preview_interval.setValue(3.0)
    viewer.add_image(textured((1000, 1000)), name="img")
    viewer.add_labels(scribbles((1000, 1000)), name="lab")
    widget.train_panel.train_button.click()
    worker = widget.state.train_worker
    qtbot.waitUntil(in_preview.is_set, timeout=60000)
    start = time.monotonic()
    try:
        if how == "stop_button":
            widget.train_panel.stop_button.click()
            wait_idle(qtbot, widget, timeout=20000)
        else:
            viewer.close()
        qtbot.waitUntil(lambda: not worker.is_running, timeout=20000)
        assert time.monotonic() - start < 4.0, time.monotonic() - start
    finally:
        if how == "stop_button":
            viewer.close()
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10000)
    assert not notes.errors, notes.errors
