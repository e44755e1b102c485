"""``export_model``: a trained model as a bioimage.io package, TorchScript or ONNX file."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.checkpoint import TrainedModel
from ..core.errors import UNetStudioError
from .needs import INSTALL_HINT, missing_message, missing_packages

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportReport", "export_model", "missing_packages"]

EXPORT_FORMATS = ("bioimageio", "torchscript", "onnx")

class ExportError(UNetStudioError, ValueError):
    """The model cannot be exported as asked (the message says why and what to do)."""


@dataclass
class ExportReport:
    """What an export wrote and how well each format agrees with the original.

    Attributes
    ----------
    path : Path
        The file written (``.zip`` package, ``.pt`` TorchScript or ``.onnx``).
    format : str
        ``"bioimageio"``, ``"torchscript"`` or ``"onnx"``.
    formats : dict
        Format name -> :class:`~napari_unet_studio.export.convert.FormatResult`.
    validation : dict or None
        For packages checked with ``bioimageio.core.test_model``: ``{"status", "tests":
        [(name, status, first error)]}``.
    """

    path: Path
    format: str
    formats: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    halo: int | None = None
    test_shape: tuple[int, ...] | None = None

    @property
    def not_exported(self) -> dict[str, str]:
        """Format -> reason, for every format that could not be written."""
        return {k: v.reason for k, v in self.formats.items() if not v.ok}

    def summary(self) -> str:
        """Lines for the command line and the GUI notification."""
        lines = [f"Exported {self.path} ({self.format})"]
        for fmt, res in self.formats.items():
            if res.ok:
                worst = min((v["agreement"] for v in res.agreement.values()), default=0.0)
                lines.append(f"  {fmt}: included; same class as the PyTorch weights on "
                             f"{worst:.2%} of the pixels checked")
            else:
                lines.append(f"  {fmt}: NOT included: {res.reason}")
        if self.validation is not None:
            lines.append(f"  bioimage.io test_model: {self.validation['status']}")
            for name, status, error in self.validation["tests"]:
                if status != "passed":
                    lines.append(f"    {status}: {name}: {error}")
        return "\n".join(lines)


def _need(fmt: str) -> None:
    message = missing_message(fmt)
    if message:
        raise ExportError(message)


def _example(model: TrainedModel, image: Any) -> tuple[np.ndarray, Any, Any]:
    """Network input to convert and check with (the normalised test crop of ``image``,
    or without an image generated noise of the smallest tile size), and the raw test
    tensor and its probabilities (``None`` without an image)."""
    from .package import axis_size_rules, normalized_input, test_tensors

    if image is not None:
        raw, prob = test_tensors(model, image)
        example = normalized_input(model, raw)
        if int(model.config.dims) == 3:  # convert and check on at most 32 voxels per axis
            ends = [min(n, max(step, 32 // step * step))
                    for n, (_, step) in zip(example.shape[2:], axis_size_rules(model.config))]
            example = np.ascontiguousarray(example[:, :, :ends[0], :ends[1], :ends[2]])
        return example, raw, prob
    rules = axis_size_rules(model.config)
    sizes = [low if int(model.config.dims) == 2 else max(low, 4 * step) for low, step in rules]
    rng = np.random.default_rng(0)
    shape = (1, int(model.config.in_channels), *sizes)
    return rng.standard_normal(shape).astype(np.float32), None, None


def _convert(model: TrainedModel, example: np.ndarray, folder: Path,
             which: Sequence[str], names: dict[str, str]) -> dict[str, Any]:
    import torch

    from .convert import to_onnx, to_torchscript
    net = model.build("cpu")
    x = torch.from_numpy(example)
    step = 2 ** int(model.config.depth)  # a multiple of every axis's size step
    results = {}
    for fmt in which:
        if fmt == "torchscript":
            results[fmt] = to_torchscript(net, x, folder / names[fmt], step)
        elif fmt == "onnx":
            missing = missing_packages("onnx")
            if missing:
                from .convert import FormatResult

                results[fmt] = FormatResult("onnx", False, reason=(
                    f"{', '.join(missing)} not installed ({INSTALL_HINT})"))
            else:
                results[fmt] = to_onnx(net, x, folder / names[fmt], step)
    return results


def export_model(
    model: TrainedModel | str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "bioimageio",
    image: Any = None,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str] | None = None,
    license: str = "CC-BY-4.0",
    channel_names: Sequence[str] | None = None,
    weight_formats: Sequence[str] = ("torchscript", "onnx"),
    validate: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export a trained model for use outside napari-unet-studio.

    Parameters
    ----------
    model : TrainedModel or path
        The model (or its ``.pt`` / exported ``.zip`` file).
    out : path
        File to write: a ``.zip`` bioimage.io package, a TorchScript ``.pt`` or ``.onnx``.
    format : {"bioimageio", "torchscript", "onnx"}
        What to write.
    image : array-like, optional
        One of your images, ``(Y, X[, C])`` or a stack (its middle slice is used; a
        volume ``(Z, Y, X[, C])`` for a 3D model).
        Required for ``"bioimageio"``: the package's test tensors and cover are a crop of
        it and the model's prediction. For TorchScript/ONNX it is the check input
        (default: generated noise).
    name, description : str, optional
        For the package (defaults say decoder and classes).
    authors : sequence of str, optional
        Names of the people who trained the model (default: "napari-unet-studio user").
    license : str
        SPDX licence of the package (default CC-BY-4.0).
    channel_names : sequence of str, optional
        Names of the image channels (default "channel1"...; "gray" for one channel).
    weight_formats : sequence of str
        Formats added to a package next to the PyTorch weights, where the network
        converts and agrees with the original (see :mod:`~napari_unet_studio.export.convert`).
    validate : bool
        Run ``bioimageio.core.test_model`` on the written package (offline).
    progress : callable, optional
        Called with a short text before each stage.

    Returns
    -------
    ExportReport

    Raises
    ------
    ExportError
        Unknown format, missing packages, no image for a package, or a format that
        cannot represent this network (the message says why).
    """
    from .. import __version__
    from .._api import load_model

    fmt = str(format).lower().replace(".", "").replace("-", "")
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"Unknown export format '{format}'; choose one of: "
                          f"{', '.join(EXPORT_FORMATS)}.")
    _need(fmt)
    say = progress or (lambda _text: None)
    if not isinstance(model, TrainedModel):
        model = load_model(model)
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"'{out}' is a folder; give a file name such as model.zip.")
    if not out.resolve().parent.exists():
        raise ExportError(f"The output folder does not exist: '{out.parent}'.")
    if fmt == "bioimageio" and image is None:
        raise ExportError("A bioimage.io package needs one of your images: its test "
                          "tensors and cover image are made from it (give image=... or "
                          "--image).")
    work = Path(tempfile.mkdtemp(prefix="unet-studio-export-"))
    try:
        say("preparing the test input")
        example, raw, prob = _example(model, image)
        if fmt != "bioimageio":
            res = _convert(model, example, work, [fmt], {fmt: "converted"})[fmt]
            if not res.ok:
                raise ExportError(f"This model (decoder '{model.config.decoder}') cannot be "
                                  f"exported to {fmt}: {res.reason}.")
            shutil.move(str(res.path), out)
            res.path = out
            return ExportReport(out, fmt, {fmt: res})
        from .package import FILES

        say("converting the weights")
        which = [w for w in weight_formats if w in ("torchscript", "onnx")]
        results = _convert(model, example, work, which, FILES)
        say("writing the package")
        report = _write_package(model, work, out, raw, prob, results, name=name,
                                description=description, authors=authors, license=license,
                                channel_names=channel_names, version=__version__)
        if validate:
            say("testing the package with bioimageio.core")
            from .validate import test_package

            report.validation = test_package(out)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_package(model: TrainedModel, work: Path, out: Path, raw: np.ndarray,
                   prob: np.ndarray, results: dict[str, Any], *, name: str | None,
                   description: str | None, authors: Sequence[str] | None, license: str,
                   channel_names: Sequence[str] | None, version: str) -> ExportReport:
    import tifffile
    import torch
    import yaml

    from .architecture import architecture_source
    from .docs import cover_image, readme_text
    from .package import (
        FILES,
        axis_halos,
        axis_size_rules,
        build_rdf,
        preprocessing,
        receptive_halo,
        write_zip,
    )

    cfg = model.config
    np.save(work / FILES["test_input"], raw)
    np.save(work / FILES["test_output"], prob)
    tifffile.imwrite(work / FILES["sample_input"], raw[0])
    tifffile.imwrite(work / FILES["sample_output"], prob[0])
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict.items()},
               work / FILES["weights"])
    (work / FILES["architecture"]).write_text(architecture_source(version), encoding="utf-8")
    cover_image(raw, prob, work / FILES["cover"])
    classes = ", ".join(model.class_names)
    name = name or f"U-Net {cfg.decoder} {cfg.num_classes} classes"
    description = description or (
        f"U-Net ({cfg.decoder} decoder) trained in napari-unet-studio on painted labels; "
        f"segments every pixel into {classes}.")
    if channel_names is None:
        channel_names = (["gray"] if int(cfg.in_channels) == 1 else
                         [f"channel{i + 1}" for i in range(int(cfg.in_channels))])
    if len(channel_names) != int(cfg.in_channels):
        raise ExportError(f"{len(channel_names)} channel names given; the model has "
                          f"{cfg.in_channels} channel(s).")
    _, note = preprocessing(model.normalization, int(cfg.dims))
    halo = receptive_halo(cfg)
    (work / FILES["readme"]).write_text(readme_text(
        model, name=name, description=description, formats=results,
        halos=axis_halos(cfg), size_rules=axis_size_rules(cfg), norm_note=note,
        version=version, test_shape=tuple(raw.shape)), encoding="utf-8")
    rdf = build_rdf(model, work, name=name, description=description,
                    authors=list(authors or ["napari-unet-studio user"]), license=license,
                    formats=results, channel_names=channel_names, version=version)
    (work / FILES["rdf"]).write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True),
                                     encoding="utf-8")
    names = [FILES[k] for k in ("rdf", "readme", "cover", "weights", "architecture",
                                "test_input", "test_output", "sample_input", "sample_output")]
    names += [FILES[k] for k, r in results.items() if r.ok]
    write_zip(work, out, names)
    for res in results.values():
        if res.ok:
            res.path = Path(res.path.name)  # a member of the package now
    return ExportReport(out, "bioimageio", results, halo=halo, test_shape=tuple(raw.shape))
