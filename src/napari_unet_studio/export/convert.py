"""TorchScript and ONNX copies of a trained network, checked against the original.

A converted file is kept only if it predicts the same class as the PyTorch network at
every pixel of the check input, at the size it was converted at *and* at a second
size and batch (a graph that baked in one shape is caught), and its class probabilities
stay within bioimage.io's reproducibility tolerance (so the package's test passes).
Otherwise the format is reported as not available for this network, with the reason:
no wrong graph is shipped.

TorchScript: ``torch.jit.trace``. The ``unpool`` decoder's ``F.max_unpool2d/3d`` checks
its output size with Python conditions that tracing cannot follow, so for tracing its
unpooling calls the same ATen kernel (``aten::max_unpool2d/3d``) directly with the
size the decoder already computes; the weights and every other operation are unchanged.

ONNX: ``torch.onnx.export(..., dynamo=True)`` (the current exporter, needs
``onnxscript``), batch and spatial axes dynamic, checked with ``onnxruntime``. The
fixed-filter stem's reflect border computes ``index % (2 * size)``, which this exporter
cannot convert for a symbolic size; during the export it takes the remainder with a
tensor instead (same indices).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FormatResult", "ONNX_OPSET", "to_torchscript", "to_onnx", "class_agreement",
           "check_sizes"]

ONNX_OPSET = 18


@dataclass
class FormatResult:
    """Outcome of converting the network to one format.

    Attributes
    ----------
    format : str
        ``"torchscript"`` or ``"onnx"``.
    ok : bool
        Whether the file was written and agrees with the PyTorch network.
    path : Path or None
        The file, when ``ok``.
    reason : str
        Why the format is not available (empty when ``ok``).
    agreement : dict
        Per check size ``"NxCxYxX"``: fraction of pixels with the same class, and
        ``max_abs_logit_diff``.
    """

    format: str
    ok: bool
    path: Path | None = None
    reason: str = ""
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def check_sizes(example: torch.Tensor, step: int) -> list[torch.Tensor]:
    """The example and a second input of another batch size and spatial size."""
    spatial = [int(s) + step for s in example.shape[2:]]
    gen = torch.Generator().manual_seed(0)
    other = torch.randn(2, example.shape[1], *spatial, generator=gen) * example.std() \
        + example.mean()
    return [example, other.to(example.dtype)]


#: bioimage.io's default reproducibility tolerance (``ReproducibilityTolerance``): a
#: probability may differ by ``ABS + REL * |expected|``, in at most this many elements
#: per million
ABS_TOL, REL_TOL, MISMATCH_PER_MILLION = 1e-3, 1e-3, 100


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Fraction of pixels whose argmax class agrees, the largest logit difference, and
    the probabilities outside bioimage.io's tolerance (per million elements)."""
    if ref.shape != got.shape:
        return {"pixels": float(np.prod(ref.shape[2:]) * ref.shape[0]), "agreement": 0.0,
                "max_abs_logit_diff": float("inf"), "prob_mismatch_per_million": 1e6}
    same = np.argmax(ref, axis=1) == np.argmax(got, axis=1)
    p_ref, p_got = _softmax(ref.astype(np.float64)), _softmax(got.astype(np.float64))
    outside = np.abs(p_ref - p_got) > ABS_TOL + REL_TOL * np.abs(p_ref)
    return {"pixels": float(same.size), "agreement": float(same.mean()),
            "max_abs_logit_diff": float(np.max(np.abs(ref - got))),
            "prob_mismatch_per_million": float(outside.mean() * 1e6)}


def _direct_unpool(dims: int) -> Callable[..., torch.Tensor]:
    """``F.max_unpool2d/3d`` written so that a trace follows the input's size.

    Max-unpooling puts every value at its stored index of the unpooled plane and zeros
    elsewhere: a scatter into a zero plane. Where the unpooled size is the input size
    times the stride (every size the exported network accepts) the zero plane is made
    with ``repeat_interleave`` + ``zeros_like``, whose shapes a trace keeps dynamic (the
    size arguments of ``aten::max_unpool2d`` would be frozen at the traced size).
    """

    def unpool(x, indices, kernel_size=2, stride=None, padding=0, output_size=None):
        s = kernel_size if stride is None else stride
        s = [int(s)] * dims if isinstance(s, int) else [int(v) for v in s]
        want = [int(v) for v in list(output_size)[-dims:]]
        if want != [int(n) * f for n, f in zip(x.shape[-dims:], s)]:
            if dims == 2:
                return torch.ops.aten.max_unpool2d(x, indices, want)
            p = [padding] * 3 if isinstance(padding, int) else list(padding)
            return torch.ops.aten.max_unpool3d(x, indices, want, s, p)
        shape = x
        for axis, f in enumerate(s):
            shape = shape.repeat_interleave(f, dim=x.dim() - dims + axis)
        out = torch.zeros_like(shape).flatten(2)
        out = out.scatter(2, indices.flatten(2), x.flatten(2))
        return out.view_as(shape)

    return unpool


class _Same(torch.nn.Module):
    """``nn.Identity`` that tracing keeps in the graph (a traced Identity loses its input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * 1


def traceable(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` for tracing: unpooling calls the ATen kernel directly with a size
    that follows the input, and identity layers stay in the graph. Same results."""
    net = copy.deepcopy(net).eval()
    for module in list(net.modules()):
        if getattr(module, "name", "") == "unpool" and hasattr(module, "unpool"):
            module.unpool = _direct_unpool(int(module.dims))
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Identity):
                setattr(module, child_name, _Same())
    return net


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and progress lines (they go to stdout)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _reference(net: torch.nn.Module, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        return [net(x).numpy() for x in inputs]


def _judge(result: FormatResult, refs: list[np.ndarray], outs: list[np.ndarray],
           inputs: list[torch.Tensor]) -> FormatResult:
    for x, ref, got in zip(inputs, refs, outs):
        result.agreement["x".join(str(int(s)) for s in x.shape)] = class_agreement(ref, got)
    bad = {k: v for k, v in result.agreement.items() if v["agreement"] < 1.0}
    loose = {k: v for k, v in result.agreement.items()
             if v.get("prob_mismatch_per_million", 0.0) > MISMATCH_PER_MILLION}
    if bad:
        result.ok = False
        k, v = next(iter(bad.items()))
        result.reason = (f"the converted {result.format} network predicts other classes than "
                         f"the original on {1 - v['agreement']:.2%} of the pixels of a {k} "
                         "input, so it was not kept")
    elif loose:
        result.ok = False
        k, v = next(iter(loose.items()))
        result.reason = (
            f"the converted {result.format} network gives the same classes, but its "
            f"probabilities differ from the original's by more than bioimage.io's tolerance "
            f"(1e-3) in {v['prob_mismatch_per_million']:.0f} per million values of a {k} "
            f"input (largest logit difference {v['max_abs_logit_diff']:.2g}; at most "
            f"{MISMATCH_PER_MILLION} per million are allowed), so it was not kept")
        if result.path is not None:
            result.path.unlink(missing_ok=True)
            result.path = None
    return result


def to_torchscript(net: torch.nn.Module, example: torch.Tensor, path: str | Path,
                   step: int) -> FormatResult:
    """Trace ``net`` (eval mode, CPU) on ``example`` into ``path`` and check it.

    ``step`` is the size multiple the network accepts; the second check input is that
    much larger on every spatial axis.
    """
    path = Path(path)
    result = FormatResult("torchscript", False)
    inputs = check_sizes(example, step)
    refs = _reference(net, inputs)
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(traceable(net), example, check_trace=False)
            traced.save(str(path))
            loaded = torch.jit.load(str(path), map_location="cpu").eval()
            outs = [loaded(x).numpy() for x in inputs]
    except Exception as exc:  # noqa: BLE001 - any failure means: format not available
        path.unlink(missing_ok=True)
        result.reason = f"tracing failed ({type(exc).__name__}: {_first_line(exc)})"
        return result
    result.ok, result.path = True, path
    result.details = {"pytorch_version": torch.__version__}
    return _judge(result, refs, outs, inputs)


def to_onnx(net: torch.nn.Module, example: torch.Tensor, path: str | Path,
            step: int) -> FormatResult:
    """Export ``net`` with the dynamo ONNX exporter into ``path`` and check it with
    onnxruntime (see :func:`to_torchscript` for ``step``)."""
    path = Path(path)
    result = FormatResult("onnx", False)
    try:
        import onnxruntime as ort
    except ImportError:
        result.reason = "onnxruntime is not installed (pip install onnxruntime)"
        return result
    inputs = check_sizes(example, step)
    refs = _reference(net, inputs)
    dims = {0: torch.export.Dim("batch")}
    for axis in range(2, example.ndim):
        dims[axis] = torch.export.Dim.AUTO
    try:
        with _quiet(), _onnx_friendly():
            torch.onnx.export(net, (example,), str(path), input_names=["input"],
                              output_names=["output"], dynamo=True, opset_version=ONNX_OPSET,
                              dynamic_shapes={"x": dims}, external_data=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        outs = [session.run(None, {name: x.numpy()})[0] for x in inputs]
    except Exception as exc:  # noqa: BLE001 - any failure means: format not available
        path.unlink(missing_ok=True)
        result.reason = f"the ONNX export failed ({type(exc).__name__}: {_first_line(exc)})"
        return result
    result.ok, result.path = True, path
    result.details = {"opset_version": ONNX_OPSET, "ops": _onnx_ops(path)}
    return _judge(result, refs, outs, inputs)


def _tensor_reflect_index(n: Any, pad: int, device: Any) -> torch.Tensor:
    """``core.stem._reflect_index`` with the remainder taken by a tensor: the same
    indices (checked by the tests), but an operation the ONNX exporter can convert when
    ``n`` is a symbolic size (``aten.remainder.Scalar`` with a symbolic divisor fails)."""
    idx = torch.arange(-pad, n + pad, device=device)
    idx = torch.remainder(idx, torch.ones((), dtype=idx.dtype, device=device) * (2 * n))
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


@contextlib.contextmanager
def _onnx_friendly() -> Iterator[None]:
    """Swap in :func:`_tensor_reflect_index` for the fixed-filter stem while exporting."""
    import importlib

    try:
        stem = importlib.import_module("napari_unet_studio.core.stem")
    except ImportError:  # an engine without the stem
        yield
        return
    original = getattr(stem, "_reflect_index", None)
    if original is None:
        yield
        return
    stem._reflect_index = _tensor_reflect_index
    try:
        yield
    finally:
        stem._reflect_index = original


def _onnx_ops(path: Path) -> list[str]:
    try:
        import onnx

        return sorted({n.op_type for n in onnx.load(str(path)).graph.node})
    except Exception:  # noqa: BLE001 - informative only
        return []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else ""
