"""Helpers of the GUI tests: hashing, sample layers, waiting (settings: widget_support)."""

from __future__ import annotations

import hashlib

import numpy as np

from napari_unet_studio._sample_data import MULTICLASS_CLASSES, make_multiclass

SIZE = 64  # tiny images keep each training step well under a second on 2 cores


def digest(array) -> str:
    """Hash of an array's bytes, shape and dtype (to prove it was not modified)."""
    a = np.ascontiguousarray(np.asarray(array))
    return hashlib.sha256(a.tobytes() + str((a.shape, a.dtype)).encode()).hexdigest()


def add_shapes(viewer, size: int = SIZE):
    """The generated RGB sample at a tiny size: returns (image layer, scribbles layer)."""
    image, scribbles, _ = make_multiclass(size=size, seed=1)
    img = viewer.add_image(image, name="shapes", rgb=True)
    lab = viewer.add_labels(
        scribbles, name="scribbles", metadata={"class_names": list(MULTICLASS_CLASSES)}
    )
    return img, lab


def wait_training_done(qtbot, widget, timeout: int = 60000) -> None:
    """Wait until the training job has finished and the GUI is unlocked."""
    qtbot.waitUntil(lambda: not widget.train.running, timeout=timeout)
    assert widget.train_panel.train_button.isEnabled()


def wait_prediction_done(qtbot, widget, timeout: int = 30000) -> None:
    """Wait until the prediction job has finished."""
    qtbot.waitUntil(lambda: not widget.predict.running, timeout=timeout)


def wait_files_done(qtbot, widget, timeout: int = 30000) -> None:
    """Wait until model load/save jobs have finished."""
    qtbot.waitUntil(lambda: not widget.files.running, timeout=timeout)
