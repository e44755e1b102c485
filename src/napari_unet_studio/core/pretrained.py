"""The starting weights shipped with napari-unet-studio, loaded safely and mapped to any task.

The folder ``core/weights/`` holds one model file per decoder (the format of
:mod:`.checkpoint`, float16 tensors) and ``manifest.json``: the architecture the weights
fit, the sha256 of every file and the provenance of the weights (data, script, commit,
date; see docs/pretraining.md). A file is read only if its checksum matches, and with
the same safe loader as user models (no code in a file ever runs).

The pretrained networks see 3 input channels and predict the classes of their
pretraining tasks. :func:`start_state` turns them into the start of a user's model:

* image channels: 1 (gray) -> the first convolution's weights summed over its three
  input channels (a gray image is what an RGB network sees when R = G = B); 2 -> channel
  1 gets the red + blue weights, channel 2 the green ones (the magenta/green display of
  two-channel images); 3 -> as they are; 4 -> RGB as they are, the fourth channel's
  weights start at zero (learned during fine-tuning);
* classes: the output layer (``head``) is always new, for the user's class count.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import TrainedModel, load_model
from .config import ModelConfig
from .errors import ModelFileError

__all__ = [
    "WEIGHTS_DIR",
    "PretrainedError",
    "Pretrained",
    "manifest",
    "available",
    "why_not",
    "load_pretrained",
    "start_state",
    "map_first_conv",
    "semantic_head",
    "provenance_text",
    "HEAD_THRESHOLD",
]

WEIGHTS_DIR = Path(__file__).with_name("weights")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "napari-unet-studio-pretrained"
FIRST_CONV = "encoder.0.0.weight"  # the first 3x3 convolution of the encoder
_ARCH_KEYS = ("depth", "width", "norm", "dims", "progressive")
_SEMANTIC = (8, 10)  # output channels of the pretrained object/background head
SEMANTIC_THRESHOLD = 0.75
# 2D models load the pretrained head only when it gets at most 5 % of the painted pixels
# wrong (balanced); between the two thresholds the prior fits the task (object-like
# classes) but its boundaries contradict the strokes: the features are kept, the head is
# new (3D models adopt from SEMANTIC_THRESHOLD: core/starts.py adopt_head)
HEAD_THRESHOLD = 0.95


class PretrainedError(ModelFileError):
    """The shipped weights are missing, damaged or do not fit the requested model."""


@dataclass(frozen=True)
class Pretrained:
    """Shipped starting weights of one decoder, as loaded (float32, CPU)."""

    model: TrainedModel
    file: str
    sha256: str
    provenance: dict[str, Any]

    @property
    def label(self) -> str:
        """Short text for the model record, e.g. ``pretrained bilinear (2026-12-01, abc123)``."""
        p = self.provenance
        bits = [str(p.get("date", "?"))[:10], str(p.get("commit", "?"))[:10]]
        return f"pretrained {self.model.config.decoder} ({', '.join(bits)})"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(directory: str | Path | None = None) -> dict[str, Any] | None:
    """The manifest of the shipped weights, or ``None`` when there are none.

    Raises
    ------
    PretrainedError
        If the manifest exists but cannot be read.
    """
    path = Path(directory or WEIGHTS_DIR) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PretrainedError(f"The pretrained weights' manifest '{path}' is damaged ({exc}); "
                              "reinstall napari-unet-studio.") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise PretrainedError(f"'{path}' is not a pretrained-weights manifest.")
    return data


def available(directory: str | Path | None = None) -> bool:
    """Whether starting weights are installed (for at least one decoder)."""
    try:
        m = manifest(directory)
    except PretrainedError:
        return False
    return bool(m and m.get("files"))


def why_not(config: ModelConfig, directory: str | Path | None = None) -> str | None:
    """``None`` if shipped weights fit ``config``; else the reason, in plain words."""
    if int(config.dims) == 3:  # the 2D weights, inflated to 3D (inflate.py)
        config = dataclasses.replace(config, dims=2, spacing=None)
    try:
        m = manifest(directory)
    except PretrainedError as exc:
        return str(exc)
    if not m or not m.get("files"):
        return "no pretrained weights are installed"
    arch = m.get("architecture", {})
    differs = [k for k in _ARCH_KEYS if k in arch and getattr(config, k) != arch[k]]
    if differs:
        want = ", ".join(f"{k} {arch[k]}" for k in differs)
        have = ", ".join(f"{k} {getattr(config, k)}" for k in differs)
        return f"the pretrained weights are for {want}; this model has {have}"
    if config.decoder not in m["files"]:
        return f"no pretrained weights for the decoder '{config.decoder}'"
    if not 1 <= config.in_channels <= 4:
        return f"{config.in_channels} image channels (pretrained weights map 1 to 4)"
    return None


@functools.lru_cache(maxsize=16)
def _load_verified(path: str, sha256: str) -> TrainedModel:
    p = Path(path)
    if not p.is_file():
        raise PretrainedError(f"The pretrained weights file '{p}' is missing; reinstall "
                              "napari-unet-studio (or train from scratch).")
    got = _sha256(p)
    if got != sha256:
        raise PretrainedError(
            f"The pretrained weights file '{p.name}' fails its checksum (sha256 {got[:12]}... "
            f"instead of {sha256[:12]}...): it was changed or damaged, so it was not loaded. "
            "Reinstall napari-unet-studio, or train from scratch.")
    model = load_model(p)
    model.state_dict = {k: v.float() for k, v in model.state_dict.items()}
    return model


def load_pretrained(decoder: str, directory: str | Path | None = None) -> Pretrained:
    """Load the shipped weights of ``decoder`` after checking their sha256.

    Raises
    ------
    PretrainedError
        No weights for this decoder, a missing or changed file, or an unreadable one.
    """
    directory = Path(directory or WEIGHTS_DIR)
    m = manifest(directory)
    if not m or decoder not in (m.get("files") or {}):
        raise PretrainedError(f"No pretrained weights for the decoder '{decoder}'.")
    entry = m["files"][decoder]
    path = directory / str(entry["file"])
    try:
        model = _load_verified(str(path.resolve()), str(entry["sha256"]))
    except PretrainedError:
        raise
    except ModelFileError as exc:
        raise PretrainedError(str(exc)) from None
    return Pretrained(model, str(entry["file"]), str(entry["sha256"]),
                      dict(m.get("provenance") or {}))


def map_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Map the first convolution's RGB weights ``(out, 3, k, k)`` to ``in_channels`` inputs.

    1: the sum over R, G, B (gray = R = G = B); 2: (R + B, G); 3: unchanged; 4: R, G, B
    and zeros for the fourth channel.
    """
    if weight.shape[1] != 3:
        raise ValueError(f"expected 3 input channels in the first convolution, got "
                         f"{weight.shape[1]}")
    r, g, b = weight[:, 0:1], weight[:, 1:2], weight[:, 2:3]
    if in_channels == 1:
        return r + g + b
    if in_channels == 2:
        return torch.cat([r + b, g], dim=1)
    if in_channels == 3:
        return weight.clone()
    if in_channels == 4:
        return torch.cat([weight, torch.zeros_like(r)], dim=1)
    raise ValueError(f"pretrained weights map 1 to 4 image channels, not {in_channels}")


def start_state(
    model: torch.nn.Module, config: ModelConfig, directory: str | Path | None = None
) -> tuple[Pretrained | None, str]:
    """Load the shipped weights into ``model`` (built from ``config``), in place.

    Every weight except the output layer comes from the pretrained network of
    ``config.decoder``; the first convolution is mapped to ``config.in_channels``
    (:func:`map_first_conv`); the output layer keeps its fresh initialisation.

    Returns
    -------
    (Pretrained or None, str)
        The loaded weights and ``""``, or ``None`` and the reason they were not used
        (the model is then left as it was: random weights).
    """
    reason = why_not(config, directory)
    if reason is not None:
        return None, reason
    try:
        pre = load_pretrained(config.decoder, directory)
    except PretrainedError as exc:
        return None, str(exc)
    if int(config.dims) == 3:
        from .inflate import start_state_3d

        return start_state_3d(model, config, pre)
    own = model.state_dict()
    src = pre.model.state_dict
    new: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        if key.startswith("head.") or key not in own:
            continue
        if key == FIRST_CONV:
            value = map_first_conv(value, config.in_channels)
        if tuple(value.shape) != tuple(own[key].shape):
            return None, f"the pretrained weight '{key}' does not fit this model"
        new[key] = value.to(own[key].dtype)
    missing = [k for k in own if k not in new and not k.startswith(("head.", "stem."))]
    if missing:
        return None, f"the pretrained weights lack '{missing[0]}'"
    model.load_state_dict(new, strict=False)
    return pre, ""


def semantic_head(
    model: torch.nn.Module, pre: Pretrained, batches: list[tuple[torch.Tensor, torch.Tensor]],
    threshold: float = SEMANTIC_THRESHOLD, adopt: float = HEAD_THRESHOLD,
) -> tuple[str, float]:
    """For a 2-class model: start the output layer from the pretrained object/background
    head when it already agrees with the painted pixels.

    The pretrained network has a semantic head (object-like blobs and nuclei vs
    background). Both assignments (class 1 = background or class 1 = object) are scored
    by their balanced accuracy on the painted pixels of ``batches`` (patches and labels,
    0 = not painted), in eval mode. The better one is loaded into ``model.head`` if it
    reaches ``adopt``. From ``threshold`` to ``adopt`` the task is object-like but the
    head contradicts part of the strokes (measured: the pretrained head then costs up to
    0.09 nucleus IoU, docs/benchmarks.md): the head stays new and the caller keeps the
    pretrained features. Below ``threshold`` the head stays new (e.g. for photos).

    Returns
    -------
    (str, float)
        ``"background-object"``, ``"object-background"``, ``"features"`` (object-like,
        head not loaded) or ``"new"``, and the balanced accuracy of the better assignment.
    """
    chans = pre.model.record.get("semantic_channels") or _SEMANTIC
    src = pre.model.state_dict
    weight = src["head.weight"][chans[0]:chans[1]]
    bias = src["head.bias"][chans[0]:chans[1]]
    weight = weight.reshape(*weight.shape[:2], *model.head.weight.shape[2:])  # 2D or 3D
    if weight.shape[0] != 2 or model.head.weight.shape[0] != 2:
        return "new", 0.0
    was_training = model.training
    model.eval()
    hits = torch.zeros(2, 2)  # [assignment, class] correct counts
    totals = torch.zeros(2)
    head = model.head
    with torch.no_grad():
        saved = (head.weight.detach().clone(), head.bias.detach().clone())
        head.weight.copy_(weight.to(head.weight))
        head.bias.copy_(bias.to(head.bias))
        for x, y in batches:
            pred = model(x).argmax(1) + 1  # 1 = background, 2 = object
            for k in (1, 2):
                painted = y == k
                totals[k - 1] += painted.sum()
                hits[0, k - 1] += (painted & (pred == k)).sum()
                hits[1, k - 1] += (painted & (pred == 3 - k)).sum()
        head.weight.copy_(saved[0])
        head.bias.copy_(saved[1])
    model.train(was_training)
    if not bool((totals > 0).all()):
        return "new", 0.0
    balanced = (hits / totals).mean(1)
    best = int(balanced.argmax())
    score = float(balanced[best])
    if score < threshold:
        return "new", score
    if score < adopt:
        return "features", score
    order = [0, 1] if best == 0 else [1, 0]
    with torch.no_grad():
        head.weight.copy_(weight[order].to(head.weight))
        head.bias.copy_(bias[order].to(head.bias))
    return ("background-object" if best == 0 else "object-background"), score


def provenance_text(directory: str | Path | None = None) -> str:
    """Human description of the shipped weights (for ``unet-studio info --pretrained``)."""
    try:
        m = manifest(directory)
    except PretrainedError as exc:
        return str(exc)
    if not m or not m.get("files"):
        return "No pretrained weights are installed: training starts from random weights."
    arch = m.get("architecture", {})
    p = m.get("provenance") or {}
    lines = [
        "Pretrained starting weights (shipped with napari-unet-studio)",
        "  architecture: " + ", ".join(f"{k} {v}" for k, v in arch.items()),
        "  decoders:     " + ", ".join(sorted(m["files"])),
    ]
    for key in ("date", "commit", "script", "command", "steps", "seconds", "threads",
                "total_steps"):
        if key in p:
            lines.append(f"  {key + ':':<13} {p[key]}")
    for stage in p.get("stages", []):
        lines.append(f"  stage:        {stage}")
    for item in p.get("data", []):
        if isinstance(item, dict):
            text = ", ".join(f"{k} {v}" for k, v in item.items() if k != "name")
            lines.append(f"  data:         {item.get('name', '?')} ({text})")
        else:
            lines.append(f"  data:         {item}")
    for decoder, entry in sorted(m["files"].items()):
        lines.append(f"  {decoder}: {entry.get('file')} sha256 {entry.get('sha256')}")
    return "\n".join(lines)
