"""Helpers of the reliability tests: tiny configs, hashing, labels, tiny models.

Waiting for the dock is :func:`widget_support.wait_idle` (:func:`wait_idle` here).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from napari_unet_studio.core.config import ModelConfig, TrainConfig

ARCH = {"width": 4, "depth": 2}
TINY_TRAIN = TrainConfig(steps=2, patch_size=32, batch_size=2, device="cpu", seed=0)


def tiny_model_config(in_channels: int = 1, num_classes: int = 2, **kw: Any) -> ModelConfig:
    """A U-Net small enough that a step on a 32-pixel patch takes milliseconds."""
    return ModelConfig(in_channels=in_channels, num_classes=num_classes, **{**ARCH, **kw})


def digest(array: Any) -> str:
    """Hash of an array's bytes, shape and dtype."""
    a = np.ascontiguousarray(np.asarray(array))
    return hashlib.sha256(a.tobytes() + str((a.shape, a.dtype.str)).encode()).hexdigest()


def layer_digests(viewer: Any) -> dict[int, tuple[str, str]]:
    """``id(layer) -> (name, digest of data)`` for every layer of ``viewer``.

    Only the live training preview (``"<image> prediction"``) and the Assistant's
    uncertainty map (``"<image> uncertainty"``), both rewritten by design while training
    runs, are left out; user layers, our prediction layers (the user paints
    corrections on them) and corrections layers must never change behind their back.
    """
    out = {}
    for layer in viewer.layers:
        if (getattr(layer, "metadata", None) or {}).get("unet_studio_role") in (
                "live", "uncertainty"):
            continue
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        out[id(layer)] = (layer.name, digest(data))
    return out


def assert_layers_unchanged(viewer: Any, before: dict[int, tuple[str, str]],
                            removed: tuple[str, ...] = ()) -> None:
    """Every layer in ``before`` is still there (unless named in ``removed``), same bytes."""
    now = {id(layer): layer for layer in viewer.layers}
    for key, (name, dig) in before.items():
        if name in removed:
            continue
        assert key in now, f"the user's layer '{name}' disappeared"
        layer = now[key]
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        assert digest(data) == dig, f"the user's layer '{name}' was modified"


def scribbles(shape: tuple[int, ...], classes: int = 2, dtype: Any = np.uint8) -> np.ndarray:
    """Sparse labels: a short stroke of each class 1..``classes`` in every 2D plane."""
    lab = np.zeros(shape, dtype=dtype)
    ny, nx = shape[-2], shape[-1]
    for k in range(1, classes + 1):
        y = min(ny - 1, (k - 1) * max(1, ny // max(classes, 1)))
        x0 = min(nx - 1, (k - 1) % nx)
        lab[..., y, x0:x0 + max(1, nx // 3)] = k
    return lab


def textured(shape: tuple[int, ...], seed: int = 0, dtype: Any = np.float32) -> np.ndarray:
    """A random image of ``shape`` and ``dtype`` (scaled to the dtype's range)."""
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return x > 0.5
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return (info.min + x * (min(info.max, 60000) - info.min)).astype(dt)
    return x.astype(dt)


def tiny_trained_model(in_channels: int = 1, num_classes: int = 2, seed: int = 0):
    """A :class:`TrainedModel` with random weights (no training; enough to predict)."""
    import torch

    from napari_unet_studio.core.checkpoint import TrainedModel
    from napari_unet_studio.core.model import build_model

    cfg = tiny_model_config(in_channels, num_classes)
    torch.manual_seed(seed)
    net = build_model(cfg)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    record = {"steps": 1, "seconds": 0.1, "device": "cpu", "created": "2026-01-01T00:00:00"}
    return TrainedModel(cfg, state, record=record)




class Evil:
    """Unpickling this runs ``exec`` and would create ``marker``: nothing may unpickle it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


class EvilSystem:
    """Unpickling this would call ``os.system('touch marker')``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.marker}'",))


def drain(gen: Any) -> Any:
    """Exhaust a progress generator and return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as fin:
            return fin.value


def load_tiny_model(qtbot: Any, widget: Any, folder: Any, in_channels: int = 1,
                    num_classes: int = 2, seed: int = 0) -> Any:
    """Save :func:`tiny_trained_model` to ``folder`` and load it through the dock's worker.

    Returns the dock's current model (a ``ModelRef``) afterwards.
    """
    from pathlib import Path

    path = Path(folder) / f"tiny_{in_channels}_{num_classes}_{seed}.pt"
    if not path.exists():
        tiny_trained_model(in_channels, num_classes, seed).save(path)
    widget.load_model_file(str(path))
    qtbot.waitUntil(lambda: not widget.files.running, timeout=30000)
    assert widget.model is not None and widget.model.path == str(path), "the model did not load"
    return widget.model


def wait_idle(qtbot: Any, widget: Any, timeout: int = 30000) -> None:
    """:func:`widget_support.wait_idle` (imported late: subprocesses load this module
    with only its own folder on the path)."""
    from widget_support import wait_idle as wait

    wait(qtbot, widget, timeout)


def tiny_widget_settings(widget: Any, steps: int = 2) -> None:
    """A tiny network and few steps: a training run takes about a second."""
    from widget_support import tiny_settings

    tiny_settings(widget, steps, batch_size=2, tile=32)


def reset_widget(viewer: Any, widget: Any, rec: Any) -> None:
    """Back to a fresh-looking session: no layers, no model, default choices."""
    from napari_unet_studio.gui.data import DEFAULT_CLASS_NAMES

    widget.use_model(None)
    widget.train_panel.continue_box.setChecked(False)
    widget.predict_panel.update_box.setChecked(False)
    widget.predict_panel.confidence_box.setChecked(False)
    viewer.layers.clear()
    widget.data_panel.set_class_names(list(DEFAULT_CLASS_NAMES))
    tiny_widget_settings(widget)
    rec.errors.clear()
    rec.warnings.clear()
    rec.infos.clear()
