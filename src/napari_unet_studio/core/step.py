"""One optimiser step of the Trainer: forward (mixed precision where it applies), loss,
backward with gradient clipping, update. Pure torch; the loop around it is
:meth:`~.train.Trainer.run`."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from .config import TrainConfig
from .device import amp_dtype
from .losses import masked_loss

__all__ = ["CLIP_NORM", "optimiser_step"]

CLIP_NORM = 5.0  # gradient norm clipping


def optimiser_step(model: torch.nn.Module, opt: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None, x: np.ndarray, y: np.ndarray, *,
                   lr: float, class_weights: torch.Tensor, train_config: TrainConfig,
                   device: torch.device, entropy_weight: float | None = None) -> float:
    """Train ``model`` on one batch of patches ``x`` (N, C, ...) with labels ``y``.

    Every parameter group gets ``lr`` times its ``"lr_scale"``. A loss that is not
    finite is skipped (no update) and returned as NaN. ``entropy_weight`` replaces the
    config's weight of the entropy term for this step (the ramp of
    ``TrainConfig.entropy_ramp``); ``None``: the config's.

    Returns
    -------
    float
        The batch's loss (:func:`~.losses.masked_loss` with the config's weights).
    """
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    xb = torch.from_numpy(x).to(device)
    yb = torch.from_numpy(y).to(device)
    opt.zero_grad(set_to_none=True)
    tc = train_config
    dtype = amp_dtype(device, tc.amp)
    ctx = (torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None
           else contextlib.nullcontext())
    with ctx:
        logits = model(xb)
    ent = tc.entropy_weight if entropy_weight is None else entropy_weight
    loss = masked_loss(logits.float(), yb, class_weights, tc.dice_weight, ent)
    if not torch.isfinite(loss):
        opt.zero_grad(set_to_none=True)
        return math.nan
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        opt.step()
    return float(loss.detach())
