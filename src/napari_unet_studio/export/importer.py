"""Open a bioimage.io package exported by napari-unet-studio as a ``TrainedModel``.

The package's ``rdf.yaml`` keeps, under ``config.napari-unet-studio``, the architecture,
normalisation and record of the model; ``weights.pt`` holds its weights, read with
``torch.load(weights_only=True)`` (no code from the package runs; the architecture
source in the package is not imported: this installation builds the network). The
result predicts exactly like the model that was exported.

Packages made by other programs are refused with a message saying so: they can be run
with bioimage.io tools, but not trained on or opened by this plugin.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

from ..core.checkpoint import FORMAT, FORMAT_VERSION, TrainedModel
from ..core.errors import ModelFileError

__all__ = ["is_package", "read_package_meta", "load_package"]

_MAX_RDF_BYTES = 4 << 20


def is_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip with an ``rdf.yaml`` (or ``bioimageio.yaml``) at its root."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return bool(names & {"rdf.yaml", "bioimageio.yaml"})


def _rdf_name(names: set[str]) -> str | None:
    for n in ("rdf.yaml", "bioimageio.yaml"):
        if n in names:
            return n
    return None


def read_package_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Our section of the package's ``rdf.yaml`` (``config.napari-unet-studio``).

    Raises
    ------
    ModelFileError
        Not a zip, no ``rdf.yaml``, or a package that napari-unet-studio did not make.
    """
    import yaml

    from .package import OWNER_KEY

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"No model file at '{path}'. Check the path.")
    try:
        with zipfile.ZipFile(path) as zf:
            name = _rdf_name(set(zf.namelist()))
            if name is None:
                raise ModelFileError(f"'{path}' is a zip file but not a bioimage.io model "
                                     "package (it has no rdf.yaml).")
            if zf.getinfo(name).file_size > _MAX_RDF_BYTES:
                raise ModelFileError(f"The rdf.yaml in '{path}' is implausibly large.")
            rdf = yaml.safe_load(zf.read(name).decode("utf-8"))
    except zipfile.BadZipFile:
        raise ModelFileError(f"'{path}' is damaged or not a zip file; download or export "
                             "it again.") from None
    except yaml.YAMLError:
        raise ModelFileError(f"The rdf.yaml in '{path}' cannot be read (not valid YAML).") \
            from None
    meta = ((rdf or {}).get("config") or {}).get(OWNER_KEY) if isinstance(rdf, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        title = rdf.get("name") if isinstance(rdf, dict) else None
        what = f"the model '{title}'" if title else "this model"
        raise ModelFileError(
            f"'{path.name}' is a bioimage.io package that was not exported by "
            f"napari-unet-studio, so the plugin cannot open {what}: it can only open and "
            "train its own U-Nets. Run it with a bioimage.io tool (bioimageio.core, "
            "deepImageJ, ilastik) instead.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"'{path}' was exported by a newer napari-unet-studio "
                             f"(format {version}); update napari-unet-studio to open it.")
    return meta


def load_package(path: str | os.PathLike) -> TrainedModel:
    """Read a package exported by napari-unet-studio (see the module docstring).

    Raises
    ------
    ModelFileError
        Not such a package (see :func:`read_package_meta`), or damaged weights.
    """
    import torch

    from ..core.checkpoint import _check_normalization, _check_weights
    from ..core.config import ModelConfig

    path = Path(path)
    meta = read_package_meta(path)
    try:
        config = ModelConfig.from_dict(meta["model_config"])
        normalization = dict(meta["normalization"])
        _check_normalization(normalization)
        record = dict(meta.get("record") or {})
        with zipfile.ZipFile(path) as zf:
            data = zf.read(str(meta.get("weights_file") or "weights.pt"))
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise ValueError("weights are not a name -> tensor mapping")
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means a damaged package
        raise ModelFileError(f"The package '{path}' is incomplete or damaged "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). "
                             "Export it again.") from None
    _check_weights(path, config, state)
    return TrainedModel(config, state, normalization, record)
