"""The bioimage.io model package (``rdf.yaml`` + files, zipped) of a trained model.

Contents of the zip (all at its root):

``rdf.yaml``
    The model description in the format version of the installed ``bioimageio.spec``:
    name, description, authors, licence, citations (the U-Net, the decoder's paper,
    this project), tags, inputs and outputs with their axes, channel and class names,
    the halo, the normalisation as preprocessing (``scale_range``), softmax as
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

__all__ = ["receptive_halo", "size_rule", "test_tensors", "build_rdf", "write_zip",
           "FILES", "OWNER_KEY"]

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


def _spatial_ids(dims: int) -> list[str]:
    return ["z", "y", "x"][3 - dims:]


def receptive_halo(config: Any) -> int:
    """Pixels on each side of a tile whose output depends on pixels outside the tile.

    Half the receptive field of the network (3x3 convolutions twice per level on the
    way down and up, the 2x2 poolings, and a 3x3 kernel at low resolution for decoders
    that have one), rounded up to a multiple of ``2**depth`` so that a tile plus its
    halo on both sides is still a size the network accepts.
    """
    extent, jump = 1, 1
    depth = int(config.depth)
    for _ in range(depth):  # encoder levels above the bottleneck, then a pooling
        extent += 4 * jump
        extent += jump
        jump *= 2
    extent += 4 * jump  # bottleneck
    for _ in range(depth):  # upsampling (at most a 3x3 kernel at low resolution), convs
        extent += 2 * jump
        jump //= 2
        if config.progressive:
            extent += 4 * jump
    radius = math.ceil((extent - 1) / 2)
    step = 2**depth
    return int(math.ceil(radius / step) * step)


def size_rule(config: Any) -> tuple[int, int]:
    """``(min, step)`` of every spatial input axis: multiples of ``2**depth`` larger than
    two halos (a smaller tile would be all halo)."""
    step = 2 ** int(config.depth)
    halo = receptive_halo(config)
    return step * (2 * halo // step + 1), step


def _crop_or_pad(plane: np.ndarray, edge_min: int, step: int) -> np.ndarray:
    """Centre crop of ``plane`` (Y, X, C) to at most TEST_EDGE (multiple of ``step``),
    reflect-padded at the end up to ``edge_min`` where the image is smaller."""
    out = plane
    for axis in (0, 1):
        n = out.shape[axis]
        target = max(edge_min, min(TEST_EDGE, n) // step * step)
        target = max(target, edge_min)
        if n >= target:
            start = (n - target) // 2
            out = np.take(out, np.arange(start, start + target), axis=axis)
        else:
            pad = [(0, 0)] * out.ndim
            pad[axis] = (0, target - n)
            out = np.pad(out, pad, mode="reflect" if n > 1 else "edge")
    return out


def test_plane(model: TrainedModel, image: Any) -> np.ndarray:
    """The 2D plane ``(Y, X, C)`` of the user's image the test tensors are made from.

    Stacks ``(Z, Y, X[, C])`` for a 2D model give their middle slice.
    """
    from ..core.infer import _layout

    cfg = model.config
    arr = np.asarray(image)
    spatial, channel_last = _layout(tuple(arr.shape), int(cfg.in_channels))
    if not channel_last:
        arr = arr[..., None]
    if int(cfg.dims) == 2 and len(spatial) == 3:
        arr = arr[len(arr) // 2]
    if int(cfg.dims) != 2:
        raise ValueError("bioimage.io export of 3D models is not supported yet")
    return arr


def test_tensors(model: TrainedModel, image: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(input, output)`` test tensors: a crop of ``image`` as float32 ``(1, C, Y, X)``
    (raw values) and the model's class probabilities ``(1, K, Y, X)`` for it.

    The probabilities come from this plugin: its normalisation
    (:func:`~napari_unet_studio.core.data.plane_stats`) and the network on the CPU,
    the whole crop in one pass, softmax over the classes.
    """
    import torch

    from ..core.data import apply_stats, plane_stats

    low, step = size_rule(model.config)
    plane = _crop_or_pad(test_plane(model, image), low, step)
    if plane.dtype.kind not in "buif":
        raise ValueError(f"The image has type {plane.dtype}; it must be numeric.")
    raw = np.ascontiguousarray(np.moveaxis(plane, -1, 0)[None].astype(np.float32))
    lo, scale = plane_stats(plane, model.normalization, int(model.config.in_channels))
    x = torch.from_numpy(apply_stats(plane, lo, scale)[None])
    net = model.build("cpu")
    with torch.no_grad():
        prob = torch.softmax(net(x).float(), dim=1).numpy()
    return raw, np.ascontiguousarray(prob.astype(np.float32))


def normalized_input(model: TrainedModel, raw: np.ndarray) -> np.ndarray:
    """The network input for the raw test tensor (this plugin's normalisation)."""
    from ..core.data import apply_stats, plane_stats

    plane = np.moveaxis(raw[0], 0, -1)
    lo, scale = plane_stats(plane, model.normalization, int(model.config.in_channels))
    return apply_stats(plane, lo, scale)[None]


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
    low, step = size_rule(cfg)
    halo = receptive_halo(cfg)
    spatial = _spatial_ids(dims)
    pre, _ = preprocessing(model.normalization, dims)

    def f(key: str) -> dict[str, str]:
        return {"source": FILES[key], "sha256": _sha(folder / FILES[key])}

    in_axes: list[dict] = [{"type": "batch"},
                           {"type": "channel", "channel_names": list(channel_names)}]
    in_axes += [{"type": "space", "id": a, "size": {"min": low, "step": step}} for a in spatial]
    out_axes: list[dict] = [{"type": "batch"},
                            {"type": "channel", "channel_names": list(model.class_names)}]
    out_axes += [{"type": "space", "id": a, "halo": halo,
                  "size": {"tensor_id": "raw", "axis_id": a}} for a in spatial]
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
