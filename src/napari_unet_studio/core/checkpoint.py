"""Trained models on disk: config + normalisation + weights + record, loaded safely.

A model file is a ``torch.save`` of a plain dict (strings, numbers, lists, dicts and
tensors only), read back with ``torch.load(weights_only=True)``: loading never runs
code from the file. A format marker tells our files apart from other ``.pt`` files.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .errors import ModelFileError

__all__ = ["FORMAT", "FORMAT_VERSION", "TrainedModel", "load_model", "save_model"]

FORMAT = "napari-unet-studio-model"
FORMAT_VERSION = 1

DEFAULT_NORMALIZATION: dict[str, Any] = {
    "method": "percentile",
    "low": 1.0,
    "high": 99.8,
    "scope": "slice",
    "per_channel": True,
}


def _plain(value: Any) -> Any:
    """JSON round trip: keeps only types the safe loader accepts."""
    return json.loads(json.dumps(value, default=str))


@dataclass
class TrainedModel:
    """Everything needed to predict with a trained U-Net.

    Attributes
    ----------
    config : ModelConfig
        Architecture; rebuilds the exact network.
    state_dict : dict of str to torch.Tensor
        Weights (CPU tensors).
    normalization : dict
        How images were normalised for training, applied identically at prediction,
        e.g. ``{"method": "percentile", "low": 1.0, "high": 99.8}``.
    record : dict
        Provenance: steps, seconds, seed, data shapes, device, versions, decoder,
        optional ``class_names``, ``created``...
    """

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    normalization: dict = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    record: dict = field(default_factory=dict)

    def build(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Build the network with these weights, in eval mode, on ``device``.

        Raises
        ------
        ModelFileError
            If the weights do not fit the architecture in ``config``.
        """
        from .model import build_model

        model = build_model(self.config)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(
                "The weights in this model do not match its architecture "
                f"(decoder '{self.config.decoder}'); it was probably saved by an "
                "incompatible version of napari-unet-studio. Retrain the model. "
                f"Details: {str(exc).splitlines()[0]}"
            ) from None
        return model.to(device).eval()

    @property
    def class_names(self) -> list[str]:
        """Names of classes 1..K (``record["class_names"]`` or ``"class k"``)."""
        names = list(self.record.get("class_names") or [])
        k = self.config.num_classes
        return [str(n) for n in names[:k]] + [f"class {i}" for i in range(len(names) + 1, k + 1)]

    def to_dict(self) -> dict[str, Any]:
        """The plain dict written to disk."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "normalization": _plain(self.normalization),
            "record": _plain(self.record),
            "state_dict": {
                k: v.detach().to("cpu").contiguous() for k, v in self.state_dict.items()
            },
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: temp file in the same folder, fsync, then rename.

        A crash or full disk never leaves a half-written model under ``path``.
        """
        path = Path(path)
        directory = path.parent if str(path.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            os.chmod(tmp, _file_mode(path))  # mkstemp makes 0o600: colleagues could not read
            with os.fdopen(fd, "wb") as fh:
                torch.save(self.to_dict(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError, AttributeError):  # make the rename durable
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def describe(self) -> str:
        """Multi-line human summary: decoder, classes, channels, training, data."""
        c, r = self.config, self.record
        lines = [
            f"U-Net Studio model (format {FORMAT_VERSION})",
            f"  decoder:     {c.decoder} ({'U-Net' if c.progressive else 'FCN, no skips'}, "
            f"depth {c.depth}, width {c.width}, {c.norm} norm, {c.dims}D)",
            f"  channels:    {c.in_channels}",
            f"  classes:     {c.num_classes} ({', '.join(self.class_names)})",
        ]
        if getattr(c, "spacing", None):  # 3D, anisotropic: pooling per level (anisotropy.py)
            from .anisotropy import describe_pools, pool_factors

            lines.append(f"  voxel size:  {' x '.join(f'{v:g}' for v in c.spacing)} (Z x Y x X); "
                         f"pooling {describe_pools(pool_factors(c.spacing, c.depth))}")
        n_params = sum(int(t.numel()) for t in self.state_dict.values())
        lines.append(f"  parameters:  {n_params:,}")
        if "steps" in r:
            secs = r.get("seconds")
            secs_txt = f" in {float(secs):.1f} s" if secs is not None else ""
            lines.append(f"  training:    {r['steps']} steps{secs_txt} on {r.get('device', '?')}")
        if r.get("final_loss") is not None:
            lines.append(
                f"  loss:        {float(r['final_loss']):.4f} (best {float(r['best_loss']):.4f})"
            )
        if r.get("data_shapes"):
            shapes = ", ".join("x".join(str(s) for s in shp) for shp in r["data_shapes"])
            lines.append(f"  data:        {shapes}")
        if r.get("labeled_pixels"):
            lines.append(f"  labeled px:  {r['labeled_pixels']}")
        norm = self.normalization
        if norm.get("method") == "percentile":
            lines.append(f"  normalise:   percentiles {norm.get('low')}-{norm.get('high')}")
        if "seed" in r:
            lines.append(f"  seed:        {r['seed']}")
        if r.get("init_from"):
            lines.append(f"  continued:   from {r['init_from']}")
        if r.get("start"):
            lines.append(f"  start:       {r['start']}")
        if r.get("head_start", "new") != "new":
            lines.append(f"  head:        {r['head_start']}")
        pre = r.get("pretrained")
        if isinstance(pre, dict):
            data = [str(d.get("name", d)) if isinstance(d, dict) else str(d)
                    for d in pre.get("data", [])]
            lines.append(f"  pretrained:  {pre.get('script', '?')} at commit "
                         f"{str(pre.get('commit', '?'))[:12]}, {pre.get('date', '?')}, "
                         f"sha256 {str(pre.get('sha256', '?'))[:12]}")
            if data:
                lines.append(f"  pretr. data: {', '.join(data)}")
        if "created" in r:
            lines.append(f"  created:     {r['created']}")
        versions = r.get("versions") or {}
        if versions:
            lines.append("  versions:    " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        return "\n".join(lines)


def _file_mode(path: Path) -> int:
    """Permissions for a saved model: those of the file it replaces, else ``0o666 - umask``."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        pass
    try:  # Linux: read the umask without changing it (os.umask is process-wide)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def save_model(model: TrainedModel, path: str | os.PathLike) -> None:
    """Save ``model`` to ``path`` atomically (see :meth:`TrainedModel.save`)."""
    model.save(path)


def _foreign(path: Path, why: str) -> ModelFileError:
    return ModelFileError(f"'{path}' is not a U-Net Studio model file ({why}).")


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Read a model file without executing any code from it.

    Raises
    ------
    ModelFileError
        If the file is missing, empty, truncated, corrupt, or not a U-Net Studio
        model (e.g. some other ``.pt`` file or a pickle with code in it).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"No model file at '{path}'. Check the path.")
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a folder; choose a model file (.pt).")
    if path.stat().st_size == 0:
        raise ModelFileError(f"The model file '{path}' is empty (0 bytes); save it again.")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelFileError(
            f"Cannot read the model file '{path}': {exc.strerror or exc}."
        ) from None
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise _foreign(path, "it is not a PyTorch weights file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"The model file '{path}' is damaged or incomplete (was the copy or download "
            "interrupted?). Save or download it again."
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the safe unpickler means "bad file"
        if "global" in str(exc).lower():
            raise _foreign(path, "it contains Python code or objects other than weights; "
                           "loading it could run that code, so it was refused") from None
        raise ModelFileError(
            f"The model file '{path}' is damaged or incomplete and cannot be read "
            f"({type(exc).__name__}). Save or download it again."
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _foreign(path, "no U-Net Studio format marker; it may be a model from "
                       "another program")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' was saved by a newer napari-unet-studio (format {version}); "
            "update napari-unet-studio to open it."
        )
    try:
        # files from before the filter stem (core/stem.py) have no "stem": they had none
        config = ModelConfig.from_dict({"stem": "none", **data["config"]})
        state = data["state_dict"]
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise ValueError("weights are not a name -> tensor mapping")
        normalization = dict(data.get("normalization") or DEFAULT_NORMALIZATION)
        _check_normalization(normalization)
        record = dict(data.get("record") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The model file '{path}' is incomplete or damaged ({exc}).") from None
    _check_weights(path, config, state)
    return TrainedModel(config, state, normalization, record)


def _check_normalization(norm: dict[str, Any]) -> None:
    """Raise ``ValueError`` for settings prediction could not apply (damaged file)."""
    method = norm.get("method", "percentile")
    if method not in ("percentile", "minmax", "none"):  # what data.plane_stats knows
        raise ValueError(f"unknown normalisation method {method!r}")
    if method == "percentile":
        low, high = norm.get("low", 1.0), norm.get("high", 99.8)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not 0.0 <= low < high <= 100.0:
            raise ValueError(f"normalisation percentiles {low!r} to {high!r} are not valid")


def _check_weights(path: Path, config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    """Refuse weights that do not fit the architecture the file describes, at load time.

    The network is built on the ``meta`` device (no memory, no computation), so a
    damaged config asking for a huge network costs nothing; a model that loads is one
    that builds, and a broken file never replaces a working model in the GUI.
    """
    from .model import build_model

    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    except Exception as exc:  # noqa: BLE001 - e.g. a decoder this installation does not have
        raise ModelFileError(
            f"'{path}' describes a network this napari-unet-studio cannot build "
            f"({' '.join(str(exc).split())})."
        ) from None
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or sorted(
            k for k in got if got[k] != expected[k])
        raise ModelFileError(
            f"The weights in '{path}' do not match the network it describes (decoder "
            f"'{config.decoder}', depth {config.depth}, width {config.width}; first "
            f"mismatch: '{wrong[0]}'). The file is damaged or was saved by an incompatible "
            "version; save or train the model again."
        )


def now_iso() -> str:
    """Current local time, ISO format, seconds precision (for ``record["created"]``)."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")
