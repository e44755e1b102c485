"""Helpers for the worker tests: tiny data, waiting for jobs, checking processes."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from napari_unet_studio.core.config import TrainConfig


def tiny_pair(size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image with a bright square (class 2) on a dark background (class 1)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.2, 0.05, (size, size)).astype(np.float32)
    img[size // 4: size // 2, size // 4: size // 2] += 0.6
    lab = np.zeros((size, size), np.uint8)
    lab[2:8, 2:8] = 1
    lab[size // 4 + 2: size // 2 - 2, size // 4 + 2: size // 2 - 2] = 2
    return img, lab


def tiny_config(steps: int = 6, **kw: Any) -> dict[str, Any]:
    """A train config dict that trains fast on the CPU."""
    values = {"steps": steps, "batch_size": 2, "patch_size": 32, "device": "cpu",
              "augment": False, **kw}
    return TrainConfig(**values).to_dict()


def tiny_model_config(num_classes: int = 2, **kw: Any) -> dict[str, Any]:
    """A small network (depth 2, width 4; other ``ModelConfig`` fields in ``kw``)."""
    from napari_unet_studio.core.config import ModelConfig

    return ModelConfig(**{"depth": 2, "width": 4, "num_classes": num_classes, **kw}).to_dict()


def wait(job: Any, timeout: float = 60.0, until: Any = None) -> list[tuple[str, Any]]:
    """Poll ``job`` until it finished (or ``until(events)`` is true); all events seen."""
    events: list[tuple[str, Any]] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        events += job.poll()
        if job.finished or (until is not None and until(events)):
            return events
        time.sleep(0.02)
    raise AssertionError(f"job {job.kind} did not finish in {timeout} s: {events[-3:]}")


def final(events: list[tuple[str, Any]]) -> tuple[str, Any]:
    """The done/error event."""
    last = [e for e in events if e[0] in ("done", "error")]
    assert last, f"no done/error in {[k for k, _ in events]}"
    return last[-1]


def pid_gone(pid: int | None, timeout: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (zombies count as gone)."""
    import psutil

    if pid is None:
        return True
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def shm_exists(name: str) -> bool:
    """Whether a POSIX shared-memory block of that name exists (Linux)."""
    return os.path.exists(os.path.join("/dev/shm", name.lstrip("/")))


def wait_info(client: Any, timeout: float = 60.0) -> dict:
    """The worker's hello, waiting for it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        info = client.info()
        if info is not None:
            return info
        time.sleep(0.05)
    raise AssertionError("the worker never said hello")
