"""What the training loop reports, and its learning-rate schedule (no torch needed)."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

__all__ = ["TrainProgress", "one_cycle_lr", "package_version", "run_to_end", "versions"]


@dataclass
class TrainProgress:
    """One report from the training loop (after every step, and a final one).

    Attributes
    ----------
    step : int
        Optimiser steps done.
    total_steps : int or None
        Step budget (``None`` if only a time limit is set).
    loss : float
        Loss of the last step (``nan`` before the first).
    lr : float
        Learning rate of the last step.
    elapsed : float
        Training seconds so far (pauses excluded).
    samples_per_s : float
        Recent throughput in patches per second.
    device : str
        Where training runs, e.g. ``"cpu"`` or ``"cuda:0"``.
    eta : float or None
        Estimated seconds left.
    best_loss : float
        Best smoothed loss so far (the model :meth:`Trainer.result` returns).
    done : bool
        True on the last report.
    stopped : bool
        True if training ended because :meth:`Trainer.stop` was called.
    message : str
        Something the user should know (new labels skipped, batch size halved...).
    """

    step: int
    total_steps: int | None
    loss: float
    lr: float
    elapsed: float
    samples_per_s: float
    device: str
    eta: float | None
    best_loss: float
    done: bool = False
    stopped: bool = False
    message: str = ""


def one_cycle_lr(fraction: float, peak: float, warmup: float = 0.1, final: float = 0.01) -> float:
    """One-cycle learning rate at ``fraction`` (0..1) of the run.

    Linear warm-up from ``0.04 * peak`` over the first ``warmup`` of the run, then a
    cosine decay to ``final * peak``.
    """
    f = min(max(fraction, 0.0), 1.0)
    if f < warmup:
        return peak * (0.04 + 0.96 * f / warmup)
    t = (f - warmup) / max(1e-9, 1.0 - warmup)
    return peak * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t)))


def package_version() -> str:
    """The installed napari-unet-studio version (from the package metadata; core never
    imports the package above it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-unet-studio")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of napari-unet-studio, torch and numpy, for the model record."""
    import numpy as np
    import torch

    return {"napari-unet-studio": package_version(), "torch": torch.__version__,
            "numpy": np.__version__}


def run_to_end(gen: Generator[Any, Any, Any]) -> Any:
    """Exhaust a progress generator (its reports are dropped) and return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as fin:
            return fin.value
