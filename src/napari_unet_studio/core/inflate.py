"""Start a 3D U-Net from the shipped 2D weights by *inflating* them (I3D-style).

Every 2D kernel ``(out, in, kh, kw)`` becomes ``(out, in, kd, kh, kw)``: copied into each
of the ``kd`` z-taps and divided by ``kd`` for convolutions, so that on a volume that is
constant along z the 3D network computes exactly what the 2D network computes on one
slice. Transposed convolutions (kernel = stride) are copied without division (each output
voxel receives one tap), and a pixel shuffle's convolution gets, for every z sub-position,
the 2D channels of the same y/x sub-position. Batch-norm, 1x1 projections and the head
keep their values. The network then starts from the 2D features and learns to use z.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["inflate_state", "inflate_into"]


def _inflate_conv(w2: torch.Tensor, shape3: torch.Size, transposed: bool) -> torch.Tensor:
    kd = int(shape3[2])
    w = w2.unsqueeze(2).expand(*w2.shape[:2], kd, *w2.shape[2:])
    return w.clone() if transposed else w / kd


def _inflate_shuffle(w2: torch.Tensor, shape3: torch.Size, factors: tuple[int, ...]
                     ) -> torch.Tensor:
    """``(o*4, i, k, k)`` 2D sub-pixel weights -> ``(o*fz*fy*fx, i, k, k, k)``."""
    fz, fy, fx = factors
    n2, n3 = 4, fz * fy * fx
    out_c = w2.shape[0] // n2
    src = w2.reshape(out_c, 2, 2, *w2.shape[1:])[:, :fy, :fx]  # (o, fy, fx, i, k, k)
    src = src.unsqueeze(1).expand(out_c, fz, fy, fx, *w2.shape[1:])
    src = src.reshape(out_c * n3, *w2.shape[1:])
    return _inflate_conv(src, torch.Size((out_c * n3, *shape3[1:])), False)


def inflate_state(state2d: dict[str, torch.Tensor], model3d: nn.Module
                  ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a 2D U-Net's ``state_dict`` onto ``model3d`` (same architecture, ``dims=3``).

    Returns
    -------
    (dict, list of str)
        The 3D state (every key of ``model3d`` that has a 2D counterpart) and the keys
        of ``model3d`` that had none or did not fit (left as they are).
    """
    own = model3d.state_dict()
    modules = dict(model3d.named_modules())
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for key, target in own.items():
        src = state2d.get(key)
        if src is None:
            missing.append(key)
            continue
        mod = modules.get(key.rsplit(".", 1)[0])
        if src.shape == target.shape:
            out[key] = src.to(target.dtype).clone()
        elif src.ndim == 4 and target.ndim == 5:
            shuffle = getattr(modules.get(key.rsplit(".", 2)[0]), "factors", None)
            is_shuffle = (isinstance(mod, nn.Conv3d) and shuffle is not None
                          and target.shape[0] != src.shape[0] and key.endswith("conv.weight"))
            if is_shuffle:
                value = _inflate_shuffle(src, target.shape, tuple(shuffle))
            else:
                value = _inflate_conv(src, target.shape, isinstance(mod, nn.ConvTranspose3d))
            if tuple(value.shape) != tuple(target.shape):
                missing.append(key)
                continue
            out[key] = value.to(target.dtype).contiguous()
        elif src.ndim == 1 and target.ndim == 1 and target.shape[0] != src.shape[0]:
            shuffle = getattr(modules.get(key.rsplit(".", 2)[0]), "factors", None)
            if shuffle is None:
                missing.append(key)
                continue
            fz, fy, fx = (int(f) for f in shuffle)
            out_c = src.shape[0] // 4
            value = src.reshape(out_c, 2, 2)[:, :fy, :fx].unsqueeze(1)
            value = value.expand(out_c, fz, fy, fx).reshape(-1)
            out[key] = value.to(target.dtype).clone()
        else:
            missing.append(key)
    return out, missing


def inflate_into(model3d: nn.Module, state2d: dict[str, torch.Tensor]) -> list[str]:
    """Load the inflated 2D weights into ``model3d`` in place; returns the keys left out."""
    state, missing = inflate_state(state2d, model3d)
    model3d.load_state_dict(state, strict=False)
    return missing


def start_state_3d(model3d: nn.Module, config, pre) -> tuple[object | None, str]:
    """The shipped 2D weights of ``pre`` (a :class:`~.pretrained.Pretrained`), inflated
    into the 3D ``model3d`` built from ``config``; the output layer stays new (the Trainer
    may adopt the object/background head as in 2D). Returns ``(pre, "")`` or
    ``(None, reason)`` with the model untouched."""
    from .pretrained import FIRST_CONV, map_first_conv

    src = {k: v for k, v in pre.model.state_dict.items() if not k.startswith("head.")}
    if FIRST_CONV in src:
        src[FIRST_CONV] = map_first_conv(src[FIRST_CONV], int(config.in_channels))
    state, _ = inflate_state(src, model3d)
    own = model3d.state_dict()
    lacking = [k for k in own if k not in state and not k.startswith(("head.", "stem."))]
    if lacking:
        return None, f"the pretrained weights do not fit this 3D model ('{lacking[0]}')"
    model3d.load_state_dict(state, strict=False)
    return pre, ""
