"""The provenance record a trained model carries (``TrainedModel.record``).

Built by :meth:`~.train.Trainer.result` from what the run did; shown by
``unet-studio info`` and saved with the model (docs/engine.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .checkpoint import now_iso
from .config import ModelConfig, TrainConfig
from .data import TrainingData
from .progress import versions

__all__ = ["training_record"]


def training_record(
    *,
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: TrainingData,
    steps: int,
    best_step: int,
    seconds: float,
    device: str,
    final_loss: float,
    best_loss: float,
    batch_size: int,
    calibrated: bool,
    runtime: dict[str, object],
    start: str,
    head_start: str,
    pixel_fit: dict[str, Any] | None = None,
    pretrained: Any = None,
    class_names: Sequence[str] | None = None,
    init_record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of one training run.

    Parameters
    ----------
    model_config, train_config
        The network's and the run's configuration.
    data
        The training data (shapes and painted pixels per class are recorded).
    steps, best_step
        Optimiser steps done, and the step of the kept snapshot.
    seconds
        Training time without pauses.
    device
        Where it trained.
    final_loss, best_loss
        Last step's loss (NaN: none) and the kept snapshot's score (inf: none).
    batch_size
        The batch size in use at the end (lowered on GPU out-of-memory).
    calibrated
        Whether batch-norm statistics were re-estimated for the snapshot.
    runtime
        Threads and backend settings (:func:`~.device.prepare_runtime`).
    start, head_start
        Where the weights and the head came from.
    pixel_fit
        The per-pixel fit's summary, if one ran.
    pretrained
        The shipped weights used (``file``, ``sha256``, ``provenance``), or None.
    class_names
        The user's class names, if given.
    init_record
        The record of the model training started from, if any.

    Returns
    -------
    dict
        JSON-ready provenance.
    """
    record: dict[str, Any] = {
        "steps": steps,
        "best_step": best_step,
        "seconds": round(seconds, 3),
        "seed": train_config.seed,
        "device": device,
        "decoder": model_config.decoder,
        "data_shapes": [list(s) for s in data.shapes],
        "labeled_pixels": [int(c) for c in data.class_counts],
        "final_loss": None if math.isnan(final_loss) else final_loss,
        "best_loss": None if math.isinf(best_loss) else best_loss,
        "batch_size": batch_size,
        "batch_norm_recalibrated": calibrated,
        "train_config": train_config.to_dict(),
        "runtime": dict(runtime),
        "versions": versions(),
        "created": now_iso(),
        "start": start,
        "head_start": head_start,
    }
    if pixel_fit:
        record["pixel_fit"] = dict(pixel_fit)
    if pretrained is not None:
        record["pretrained"] = {"file": pretrained.file, "sha256": pretrained.sha256,
                                **pretrained.provenance}
    if class_names:
        record["class_names"] = list(class_names)
    if init_record is not None:
        record["init_from"] = init_record.get("created", "a saved model")
        record["init_steps"] = init_record.get("steps")
    return record
