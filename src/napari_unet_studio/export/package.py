"""The bioimage.io model package (``rdf.yaml`` + files, zipped) of a trained model.

Contents of the zip (all at its root):

``rdf.yaml``
    The model description in the format version of the installed ``bioimageio.spec``:
    name, description, authors, licence, citations (the U-Net, the decoder's paper,
    this project), tags, inputs and outputs with their axes (2D or 3D), channel and
    class names, the halo, the normalisation as preprocessing (``scale_range``), softmax as
    postprocessing, the weights, and under ``config.napari-unet-studio`` everything the
    plugin needs to open the package again (architecture, normalisation, record).
``weights.pt``
    The ``pytorch_state_dict`` weights (a plain ``torch.save`` of name -> tensor).
``unet_studio_architecture.py``
    The self-contained architecture source (:mod:`.architecture`).
``weights_torchscript.pt``, ``weights.onnx``
    Where the network converts and agrees with the original (:mod:`.convert`).
``test_input.npy``, ``test_output.npy``
    A crop of the user's image and the model's class probabilities for it, computed by
    this plugin's own normalisation and network (not by bioimage.io tools).
``sample_input.tif``, ``sample_output.tif``
    The same two arrays as TIFF images (bioimage.io's human-readable samples).
``cover.png``
    The test image next to it with the prediction overlaid.
``README.md``
    The documentation: what the model is, the training record, the formats.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.checkpoint import FORMAT, FORMAT_VERSION, TrainedModel

__all__ = ["axis_halos", "axis_size_rules", "receptive_halo", "size_rule", "test_tensors",
           "normalized_input", "build_rdf", "write_zip", "FILES", "OWNER_KEY"]

#: key of our own section in ``rdf.yaml`` ``config``
OWNER_KEY = "napari-unet-studio"
PROJECT_URL = "https://github.com/napari-unet-studio/napari-unet-studio"

FILES = {
    "rdf": "rdf.yaml",
    "weights": "weights.pt",
    "architecture": "unet_studio_architecture.py",
    "torchscript": "weights_torchscript.pt",
    "onnx": "weights.onnx",
    "test_input": "test_input.npy",
    "test_output": "test_output.npy",
    "cover": "cover.png",
    "sample_input": "sample_input.tif",
    "sample_output": "sample_output.tif",
    "readme": "README.md",
}

UNET_CITATION = {
    "text": "Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for "
            "Biomedical Image Segmentation. MICCAI 2015.",
    "doi": "10.1007/978-3-319-24574-4_28",
}
DECODER_CITATIONS = {
    "unpool": {"text": "Badrinarayanan, V., Kendall, A., Cipolla, R. SegNet: A Deep "
                       "Convolutional Encoder-Decoder Architecture for Image Segmentation. "
                       "IEEE TPAMI 2017.", "doi": "10.1109/TPAMI.2016.2644615"},
    "pixelshuffle": {"text": "Shi, W. et al. Real-Time Single Image and Video Super-Resolution "
                             "Using an Efficient Sub-Pixel Convolutional Neural Network. "
                             "CVPR 2016.", "doi": "10.1109/CVPR.2016.207"},
}
TEST_EDGE = 256  # the test tensor is a crop of at most this many pixels per axis
TEST_EDGE_3D = 64  # ... voxels per axis for 3D models


def _spatial_ids(dims: int) -> list[str]:
    return ["z", "y", "x"][3 - dims:]


def _pools(config: Any) -> list[tuple[int, ...]]:
    """Per-level, per-axis pooling factors (2 everywhere unless z is coarse, 3D)."""
    from ..core.anisotropy import pool_factors

    return pool_factors(getattr(config, "spacing", None), int(config.depth), int(config.dims))


def axis_halos(config: Any) -> list[int]:
    """Per spatial axis: pixels on each side of a tile whose output depends on pixels
    outside the tile.

    Half the receptive field of the network along that axis (3x3 convolutions twice
    per level on the way down and up, the 2x2 poolings, and a 3x3 kernel at low
    resolution for decoders that have one), plus the reach of the fixed-filter stem
    where the network has one, rounded up to a multiple of the axis's size step, so
    that a tile plus its halo on both sides is still a size the network accepts.
    """
    pools = _pools(config)
    halos = []
    for axis, step in enumerate(axis_steps(config)):
        extent, jump = 1, 1
        for level in pools:  # encoder levels above the bottleneck, then a pooling
            extent += 4 * jump + (level[axis] - 1) * jump
            jump *= level[axis]
        extent += 4 * jump  # bottleneck
        for level in reversed(pools):  # upsampling (at most a 3x3 kernel), then convs
            extent += 2 * jump
            jump //= level[axis]
            if config.progressive:
                extent += 4 * jump
        radius = math.ceil((extent - 1) / 2) + _stem_radius(config)
        halos.append(int(math.ceil(radius / step) * step))
    return halos


def _stem_radius(config: Any) -> int:
    """How far the fixed filters of the network's stem reach (0 without a stem)."""
    if getattr(config, "stem", "none") in (None, "none"):
        return 0
    from ..core import stem

    return int(stem.receptive_radius())


def axis_steps(config: Any) -> list[int]:
    """Per spatial axis: the size multiple the network needs (its total pooling)."""
    pools = _pools(config)
    return [int(math.prod(level[a] for level in pools)) for a in range(int(config.dims))]


def receptive_halo(config: Any) -> int:
    """The largest of :func:`axis_halos` (the in-plane halo)."""
    return max(axis_halos(config))


def axis_size_rules(config: Any) -> list[tuple[int, int]]:
    """Per spatial axis ``(min, step)`` of the input size.

    Multiples of the axis step larger than two halos (a smaller tile would be all halo;
    the bioimage.io format requires it).
    """
    return [(step * (2 * halo // step + 1), step)
            for halo, step in zip(axis_halos(config), axis_steps(config))]


def size_rule(config: Any) -> tuple[int, int]:
    """``(min, step)`` of the y and x axes (see :func:`axis_size_rules`)."""
    return axis_size_rules(config)[-1]


def _crop_or_pad(arr: np.ndarray, rules: Sequence[tuple[int, int]], edge: int) -> np.ndarray:
    """Centre crop of the leading spatial axes of ``arr`` (..., C) to at most ``edge``
    (a multiple of the axis step), reflect-padded at the end up to the axis minimum."""
    out = arr
    for axis, (low, step) in enumerate(rules):
        n = out.shape[axis]
        target = max(low, min(edge, n) // step * step)
        if n >= target:
            start = (n - target) // 2
            out = np.take(out, np.arange(start, start + target), axis=axis)
        else:
            pad = [(0, 0)] * out.ndim
            pad[axis] = (0, target - n)
            out = np.pad(out, pad, mode="reflect" if n > 1 else "edge")
    return out


def test_array(model: TrainedModel, image: Any) -> np.ndarray:
    """The part of the user's image the test tensors are made from: a centre crop, with
    a last channel axis: ``(Y, X, C)`` (stacks give their middle slice to a 2D model)
    or ``(Z, Y, X, C)`` for a 3D model."""
    from ..core.errors import DataError
    from ..core.infer import _layout

    cfg = model.config
    arr = np.asarray(image)
    spatial, channel_last = _layout(tuple(arr.shape), int(cfg.in_channels))
    if not channel_last:
        arr = arr[..., None]
    dims = int(cfg.dims)
    if dims == 2 and len(spatial) == 3:
        arr = arr[len(arr) // 2]
    elif dims == 3 and len(spatial) != 3:
        raise DataError(f"This is a 3D model; give a volume (Z, Y, X) to export it, not an "
                        f"image of shape {tuple(np.shape(image))}.")
    if arr.dtype.kind not in "buif":
        raise DataError(f"The image has type {arr.dtype}; it must be numeric.")
    return _crop_or_pad(arr, axis_size_rules(cfg), TEST_EDGE if dims == 2 else TEST_EDGE_3D)


def _stats(model: TrainedModel, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from ..core.normalize import apply_stats, plane_stats
    from ..core.volume import normalize_block, volume_stats

    channels = int(model.config.in_channels)
    if int(model.config.dims) == 3:
        lo, scale = volume_stats(arr, model.normalization, channels)
        return normalize_block(arr, lo, scale)[None], lo
    lo, scale = plane_stats(arr, model.normalization, channels)
    return apply_stats(arr, lo, scale)[None], lo


def test_tensors(model: TrainedModel, image: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(input, output)`` test tensors: a crop of ``image`` as float32 ``(1, C, *spatial)``
    (raw values) and the model's class probabilities ``(1, K, *spatial)`` for it.

    The probabilities come from this plugin: its normalisation (per image for 2D models,
    per volume for 3D ones) and the network on the CPU, the whole crop in one pass,
    softmax over the classes.
    """
    import torch

    arr = test_array(model, image)
    raw = np.ascontiguousarray(np.moveaxis(arr, -1, 0)[None].astype(np.float32))
    x = torch.from_numpy(_stats(model, arr)[0])
    net = model.build("cpu")
    with torch.no_grad():
        prob = torch.softmax(net(x).float(), dim=1).numpy()
    return raw, np.ascontiguousarray(prob.astype(np.float32))


def normalized_input(model: TrainedModel, raw: np.ndarray) -> np.ndarray:
    """The network input for the raw test tensor (this plugin's normalisation)."""
    return _stats(model, np.moveaxis(raw[0], 0, -1))[0]


def preprocessing(normalization: dict, dims: int) -> tuple[list[dict], str]:
    """bioimage.io preprocessing steps for our normalisation, and a note on differences."""
    steps: list[dict] = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    axes = _spatial_ids(dims)
    method = normalization.get("method", "percentile")
    note = ("Each image (and each channel) is scaled so that its {lo} and {hi} percentiles "
            "map to 0 and 1 (bioimage.io `scale_range` over the spatial axes, per channel "
            "and per image). One difference: where these two percentiles are equal (a "
            "nearly constant image) the plugin uses the minimum and maximum instead.")
    if method == "percentile":
        lo, hi = float(normalization.get("low", 1.0)), float(normalization.get("high", 99.8))
        steps.append({"id": "scale_range", "kwargs": {
            "axes": axes, "min_percentile": lo, "max_percentile": hi, "eps": 1e-6}})
        return steps, note.format(lo=lo, hi=hi)
    if method == "minmax":
        steps.append({"id": "scale_range", "kwargs": {
            "axes": axes, "min_percentile": 0.0, "max_percentile": 100.0, "eps": 1e-6}})
        return steps, "Each image (and channel) is scaled from its minimum and maximum to 0-1."
    return steps, "The raw values go into the network unchanged (no normalisation)."


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _name(text: str) -> str:
    import string

    ok = set(string.ascii_letters + string.digits + "_+- ()")
    name = "".join(c if c in ok else " " for c in text)
    name = " ".join(name.split())[:64]
    return name if len(name) >= 5 else f"U-Net {name}".strip()


def build_rdf(
    model: TrainedModel,
    folder: Path,
    *,
    name: str,
    description: str,
    authors: Sequence[str],
    license: str,
    formats: dict[str, Any],
    channel_names: Sequence[str],
    version: str,
) -> dict[str, Any]:
    """The ``rdf.yaml`` content for the files already written to ``folder``.

    ``formats`` maps ``"torchscript"``/``"onnx"`` to a
    :class:`~napari_unet_studio.export.convert.FormatResult`.
    """
    import torch
    from bioimageio.spec.model.v0_5 import ModelDescr

    cfg = model.config
    dims = int(cfg.dims)
    rules = axis_size_rules(cfg)
    halos = axis_halos(cfg)
    spatial = _spatial_ids(dims)
    pre, _ = preprocessing(model.normalization, dims)

    def f(key: str) -> dict[str, str]:
        return {"source": FILES[key], "sha256": _sha(folder / FILES[key])}

    in_axes: list[dict] = [{"type": "batch"},
                           {"type": "channel", "channel_names": list(channel_names)}]
    in_axes += [{"type": "space", "id": a, "size": {"min": low, "step": step}}
                for a, (low, step) in zip(spatial, rules)]
    out_axes: list[dict] = [{"type": "batch"},
                            {"type": "channel", "channel_names": list(model.class_names)}]
    out_axes += [{"type": "space", "id": a, "halo": halo,
                  "size": {"tensor_id": "raw", "axis_id": a}} for a, halo in zip(spatial, halos)]
    torch_version = torch.__version__.split("+")[0]
    weights: dict[str, Any] = {"pytorch_state_dict": {
        **f("weights"),
        "architecture": {**f("architecture"), "callable": "build_unet",
                         "kwargs": json.loads(json.dumps(cfg.to_dict()))},
        "pytorch_version": torch_version,
    }}
    not_exported = {}
    for fmt, res in formats.items():
        if res.ok:
            entry = {**f(fmt), "parent": "pytorch_state_dict"}
            if fmt == "torchscript":
                entry["pytorch_version"] = torch_version
            else:
                entry["opset_version"] = int(res.details.get("opset_version", 18))
            weights[fmt] = entry
        else:
            not_exported[fmt] = res.reason
    n_params = int(sum(int(t.numel()) for t in model.state_dict.values()))
    rec = model.record
    tc = rec.get("train_config") or {}
    cite = [UNET_CITATION]
    if cfg.decoder in DECODER_CITATIONS:
        cite.append(DECODER_CITATIONS[cfg.decoder])
    cite.append({"text": "napari-unet-studio: paint a few labels in napari, train a U-Net "
                         "with a choice of upsampling decoder.", "url": PROJECT_URL})
    rdf = {
        "type": "model",
        "format_version": ModelDescr.implemented_format_version,
        "name": _name(name),
        "description": description,
        "authors": [{"name": a} for a in authors],
        "cite": cite,
        "license": license,
        "tags": ["unet", "semantic-segmentation", "segmentation", "pytorch", "napari",
                 "napari-unet-studio", f"decoder-{cfg.decoder}", f"{dims}d"],
        "documentation": f("readme"),
        "covers": [f("cover")],
        "git_repo": PROJECT_URL,
        "inputs": [{
            "id": "raw",
            "description": "image, raw intensities (normalised by the preprocessing)",
            "axes": in_axes,
            "test_tensor": f("test_input"),
            "sample_tensor": f("sample_input"),
            "data": {"type": "float32"},
            "preprocessing": pre,
        }],
        "outputs": [{
            "id": "probabilities",
            "description": "class probabilities; the class of a pixel is the argmax",
            "axes": out_axes,
            "test_tensor": f("test_output"),
            "sample_tensor": f("sample_output"),
            "data": {"type": "float32", "range": [0.0, 1.0]},
            "postprocessing": [{"id": "softmax", "kwargs": {"axis": "channel"}}],
        }],
        "weights": weights,
        "config": {
            "bioimageio": {
                "architecture_type": "U-Net",
                "architecture_description": (
                    f"U-Net, {cfg.decoder} decoder, depth {cfg.depth}, width {cfg.width}, "
                    f"{cfg.norm} norm, {'skip connections' if cfg.progressive else 'no skips'}"),
                "model_parameter_count": n_params,
                "task": "semantic segmentation",
                "training": {
                    "training_batch_size": rec.get("batch_size"),
                    "initial_learning_rate": tc.get("lr"),
                    "learning_rate_schedule": "one-cycle",
                    "loss_function": "masked cross-entropy + soft Dice on painted pixels",
                    "optimizer": "AdamW",
                    "training_duration": (float(rec["seconds"]) / 3600.0
                                          if rec.get("seconds") is not None else None),
                },
            },
            OWNER_KEY: {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "version": version,
                "model_config": cfg.to_dict(),
                "normalization": model.normalization,
                "record": rec,
                "weights_file": FILES["weights"],
                "not_exported": not_exported,
                "agreement": {fmt: res.agreement for fmt, res in formats.items() if res.ok},
            },
        },
    }
    return json.loads(json.dumps(rdf, default=str))  # plain YAML types only


def write_zip(folder: Path, out: Path, names: Sequence[str]) -> None:
    """Zip ``names`` of ``folder`` into ``out`` (temp file + rename: never half a zip)."""
    import os
    import tempfile

    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp",
                               dir=out.parent if str(out.parent) else ".")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for n in names:
                zf.write(folder / n, arcname=n)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
