"""What each decoder's upsampling makes of a downsampled crop (for users who learn it).

:func:`upsampling_gallery` max-pools a crop of the user's image by ``factor`` (as the
U-Net's encoder does, remembering where each maximum was) and upsamples it back with the
operation of every decoder:

- ``nearest``: reverse mapping (each output pixel copies the input pixel it maps back to);
- ``bilinear``: linear interpolation with pixel-centre alignment;
- ``unpool``: every maximum goes back to the position the pooling stored, zeros elsewhere;
- ``transposed``: a transposed convolution with the channel-averaged kernel of a learned
  model (the current model if it uses this decoder, else the shipped pretrained weights,
  else a fixed 2 x 2 box), i.e. every input pixel paints a copy of the kernel;
- ``pixelshuffle``: the ``r * r`` channel-averaged 3 x 3 kernels of a learned
  sub-pixel convolution, each giving one sub-pixel position of every output block.

Learned kernels act on many feature channels in a real network; averaging over the
channels gives a one-channel picture of what the layer does, not its full effect.
Used by the worker's ``upsample`` job and the Assistant panel; torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .decoders import describe_decoders, nearest_reverse_map

__all__ = ["learned_kernel", "upsampling_gallery"]


def _last_up(model: Any, cls_name: str) -> torch.nn.Module | None:
    """The upsampler closest to full resolution of a ``TrainedModel`` with that decoder."""
    if model is None or model.config.decoder != cls_name or int(model.config.dims) != 2:
        return None
    net = model.build("cpu")
    ups = [m for m in net.modules() if type(m).__name__ in
           ("TransposedUp", "PixelShuffleUp")]
    return ups[-1] if ups else None


def learned_kernel(decoder: str, model: Any = None) -> tuple[np.ndarray | None, str]:
    """Channel-averaged kernel of ``decoder``'s learned layer and where it came from.

    ``transposed``: ``(k, k)``; ``pixelshuffle``: ``(r * r, 3, 3)``; others: ``None``.
    """
    if decoder not in ("transposed", "pixelshuffle"):
        return None, ""
    up, source = _last_up(model, decoder), "the current model"
    if up is None:
        try:
            from .pretrained import load_pretrained

            up = _last_up(load_pretrained(decoder).model, decoder)
            source = "the shipped pretrained weights"
        except Exception:  # noqa: BLE001 - no weights shipped: a fixed kernel
            up = None
    if up is None:
        if decoder == "transposed":
            return np.ones((2, 2), np.float32), "a fixed 2 x 2 box kernel (no learned one)"
        k = np.zeros((4, 3, 3), np.float32)
        k[:, 1, 1] = 1.0
        return k, "fixed identity kernels (no learned ones)"
    with torch.no_grad():
        if decoder == "transposed":
            w = up.up.weight.detach().float()  # (C_in, C_out, k, k)
            return w.mean(dim=(0, 1)).numpy(), source
        w = up.conv.weight.detach().float()  # (C_out * r*r, C_in, 3, 3)
        r2 = int(up.factor) ** 2
        w = w.reshape(-1, r2, *w.shape[1:]).mean(dim=(0, 2))  # (r*r, 3, 3)
        return w.numpy(), source


def _signed_unit(kernel: torch.Tensor) -> torch.Tensor:
    """Scale so that the kernel's mean is +1 (brightness kept; sign of the mean kept)."""
    m = float(kernel.mean())
    if abs(m) < 1e-8:
        m = float(kernel.abs().mean()) or 1.0
    return kernel / m


def upsampling_gallery(crop: np.ndarray, factor: int = 2,
                       model: Any = None) -> list[dict[str, Any]]:
    """Downsample ``crop`` by ``factor`` and upsample it with every decoder.

    Parameters
    ----------
    crop : numpy.ndarray
        ``(Y, X)`` or ``(Y, X, C)`` (channels are averaged).
    factor : int
        2 or 4 (a power of two).
    model : TrainedModel, optional
        The current model: its learned kernels are used where its decoder has them.

    Returns
    -------
    list of dict
        First ``{"name": "input"}`` and ``"downsampled"``, then one per decoder:
        ``name``, ``image`` (float32, same size as the crop), ``about`` (the registry's
        one-line description), ``source`` (where a learned kernel came from).
    """
    a = np.asarray(crop, dtype=np.float32)
    if a.ndim == 3:
        a = a.mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"crop must be 2D (or 2D + channels); got shape {np.shape(crop)}")
    factor = int(factor)
    if factor < 2 or factor & (factor - 1):
        raise ValueError("factor must be a power of two >= 2")
    h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    if h < factor or w < factor:
        raise ValueError(f"the crop is smaller than the factor {factor}")
    a = a[:h, :w]
    lo, hi = float(a.min()), float(a.max())
    x = torch.from_numpy((a - lo) / (hi - lo if hi > lo else 1.0))[None, None]
    low, idx = F.max_pool2d(x, factor, return_indices=True)
    about = dict(describe_decoders())
    out: list[dict[str, Any]] = [
        {"name": "input", "image": x[0, 0].numpy(), "about": "the crop of your image",
         "source": ""},
        {"name": "downsampled", "image": F.interpolate(low, size=(h, w), mode="nearest")[0, 0]
         .numpy(), "about": f"max-pooled {factor}x (what the encoder keeps), shown enlarged",
         "source": ""},
    ]
    with torch.no_grad():
        for name in about:
            source = ""
            if name == "nearest":
                up = nearest_reverse_map(low, (h, w))
            elif name == "bilinear":
                up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
            elif name == "unpool":
                up = F.max_unpool2d(low, idx, factor, output_size=(h, w))
            elif name == "transposed":
                k, source = learned_kernel(name, model)
                kt = _signed_unit(torch.from_numpy(np.asarray(k, np.float32)))
                y = low
                steps = int(np.log2(factor)) if kt.shape[-1] == 2 else 1
                stride = 2 if steps > 1 or kt.shape[-1] == 2 else factor
                for _ in range(steps):
                    y = F.conv_transpose2d(y, kt[None, None], stride=stride)
                up = y[..., :h, :w] if y.shape[-1] >= w else F.interpolate(y, size=(h, w))
            elif name == "pixelshuffle":
                k, source = learned_kernel(name, model)
                kt = torch.from_numpy(np.asarray(k, np.float32))
                kt = kt / (float(kt.sum(dim=(1, 2)).mean()) or 1.0)
                y = low
                r = int(round(np.sqrt(kt.shape[0])))
                while y.shape[-1] < w:
                    y = F.pixel_shuffle(F.conv2d(y, kt[:, None], padding=1), r)
                up = y[..., :h, :w]
            else:  # a decoder registered later: no one-channel picture of it
                continue
            out.append({"name": name, "image": up[0, 0].numpy().astype(np.float32),
                        "about": about[name], "source": source})
    return out
