"""Injected faults: stop at the worst moment, close the viewer mid-run, out of memory,
exceptions inside the engine. The user always hears about it, keeps their layers and
their last good model, and can go on working.

The engine faults are injected in this process (monkeypatching ``core``); the dock runs
its torch work in a worker process, so its tests here use faults a user can cause
(Stop at once, deleted layers, replaced images, closing napari). Exceptions and crashes
inside the worker are tested with canned errors (tests/gui/test_dock_errors.py) and a
killed worker process (tests/gui/test_worker_gui.py).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
from rel_helpers import (
    ARCH,
    TINY_TRAIN,
    assert_layers_unchanged,
    drain,
    layer_digests,
    load_tiny_model,
    scribbles,
    textured,
    tiny_trained_model,
    wait_idle,
)

from napari_unet_studio.core import step as core_step
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
    real, calls = core_step.masked_loss, []  # the loss of one optimiser step

    def nan_once(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 1 else loss

    monkeypatch.setattr(core_step, "masked_loss", nan_once)
    trainer = _trainer(steps=3)
    reports = list(trainer.run())
    assert "loss was not a number" in reports[0].message
    assert all(torch.isfinite(v).all() for v in trainer.result().state_dict.values()
               if v.is_floating_point())


# ------------------------------------------------------------------------------ widget
@pytest.fixture
def studio(shared_studio, qtbot):
    from rel_helpers import reset_widget

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


def test_stop_right_after_train_keeps_the_previous_model(studio, qtbot, notes, tmp_path):
    viewer, widget = studio
    _layers(viewer)
    previous = load_tiny_model(qtbot, widget, tmp_path, 1, 2, seed=5)
    notes.infos.clear()
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


def test_cancel_during_prediction(studio, qtbot, notes, tmp_path):
    viewer, widget = studio
    img = viewer.add_image(textured((3000, 16, 16), dtype=np.uint8), name="stack")
    load_tiny_model(qtbot, widget, tmp_path)
    widget.predict_panel.image.set_layer(img)
    before = layer_digests(viewer)
    widget.predict_panel.predict_button.click()
    qtbot.waitUntil(lambda: widget.predict_panel.progress.value() >= 1, timeout=20000)
    widget.predict_panel.cancel_button.click()
    wait_idle(qtbot, widget)
    assert widget.predict_panel.progress.value() < 3000
    assert any("cancelled" in m for m in notes.infos), notes.infos
    assert len(viewer.layers) == len(before)  # no half-filled layer
    assert_layers_unchanged(viewer, before)
    assert not notes.errors


def test_image_replaced_during_training(studio, qtbot, notes):
    """The user swaps the image data (other shape) mid-run: they are told the new image
    is not used until the next Train, training goes on, nothing the user has is touched."""
    viewer, widget = studio
    img, lab = _layers(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
    img.data = textured((24, 24))
    lab.paint((3, 3), 2, refresh=True)  # painting still reaches the trainer
    before = layer_digests(viewer)
    qtbot.waitUntil(lambda: widget.train.labels_pushes >= 1, timeout=15000)
    assert any("'img' was changed while training" in w for w in notes.warnings), notes.warnings
    assert widget.train.running  # still training
    widget.train_panel.stop_button.click()
    wait_idle(qtbot, widget)
    assert widget.model is not None and not notes.errors
    assert_layers_unchanged(viewer, before)


def test_live_preview_layer_deleted_during_training(studio, qtbot, notes):
    viewer, widget = studio
    _layers(viewer)
    widget.model_panel["steps"].value = 100000
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train.previews >= 1, timeout=30000)
    before = layer_digests(viewer)
    viewer.layers.remove("img prediction")
    qtbot.wait(200)
    assert widget.train.running  # training goes on without its preview
    # a step after the removal (the first preview can come before the first step)
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
    widget.train_panel.stop_button.click()
    wait_idle(qtbot, widget)
    assert widget.model is not None and not notes.errors and not notes.warnings
    assert "img prediction" not in viewer.layers
    assert_layers_unchanged(viewer, before)


@pytest.mark.parametrize("deleted", ["img", "lab"])
def test_layer_deleted_during_training(studio, qtbot, notes, deleted):
    viewer, widget = studio
    _layers(viewer)
    widget.model_panel["steps"].value = 100000
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
    viewer.layers.remove(deleted)
    wait_idle(qtbot, widget, timeout=15000)
    assert any(f"'{deleted}' was deleted while training" in w for w in notes.warnings)
    assert widget.model is not None and not notes.errors
    assert_layers_unchanged(viewer, before, removed=(deleted,))


# ------------------------------------------------------------------- closing the viewer
@pytest.mark.parametrize("job", ["training", "paused_training", "prediction",
                                 "preview_of_a_large_plane"])
def test_closing_the_viewer_mid_job_ends_the_worker(qtbot, notes, job, tmp_path):
    """Closing napari during any job ends the worker process within 2 s and leaves no
    thread of ours running in napari."""
    import napari
    from rel_helpers import tiny_widget_settings
    from widget_support import pid_gone, wait_for_worker_info

    from napari_unet_studio.gui.dock import UNetStudioWidget

    threads_before = {t.ident for t in threading.enumerate()}
    viewer = napari.Viewer(show=False)  # closed by the test itself
    widget = UNetStudioWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_widget_settings(widget, steps=100000)
    wait_for_worker_info(qtbot, widget)
    if job == "prediction":
        img = viewer.add_image(textured((3000, 16, 16), dtype=np.uint8), name="long stack")
        load_tiny_model(qtbot, widget, tmp_path)
        widget.predict_panel.image.set_layer(img)
        widget.predict_panel.predict_button.click()
        qtbot.waitUntil(lambda: widget.predict_panel.progress.value() >= 1, timeout=30000)
    else:
        if job == "preview_of_a_large_plane":
            viewer.add_image(textured((1000, 1000)), name="img")
            viewer.add_labels(scribbles((1000, 1000)), name="lab")
            widget.model_panel["preview_interval"].value = 3.0
        else:
            _layers(viewer)
        widget.train_panel.train_button.click()
        qtbot.waitUntil(lambda: widget.train_panel.progress.value() >= 1, timeout=30000)
        if job == "paused_training":
            widget.train_panel.pause_button.click()
            assert widget.train_panel.pause_button.text() == "Resume"
        if job == "preview_of_a_large_plane":
            qtbot.wait(3500)  # the first preview of the 1000 x 1000 plane is under way
    pid = widget.client.pid
    assert pid is not None and widget.client.alive
    viewer.close()
    assert pid_gone(pid, timeout=3.0), "the worker process outlived napari"
    leftover = [t for t in threading.enumerate()
                if t.ident not in threads_before and t.is_alive() and not t.daemon]
    assert not leftover, leftover
    assert any("stopped" in w for w in notes.warnings), notes.warnings
    assert not notes.errors, notes.errors
