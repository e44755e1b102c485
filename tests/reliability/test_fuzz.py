"""Property-based fuzzing (hypothesis) of the data pipeline and the model-file loader.

* Data: random shapes, channel counts, dtypes, fills (constant, NaN, inf, huge, negative)
  and sparse label patterns go through validation, normalisation, patch sampling, one
  training step and a preview prediction: the result is a finite loss and class ids in
  1..K, or a :class:`UNetStudioError` with a message; never another exception.
* Model files: random bytes and mutations (bit flips, truncations, deleted or inserted
  chunks) of a valid model file: :func:`load_model` returns a model that builds, or
  raises :class:`ModelFileError`; never another exception, never a hang (each load runs
  under a time limit).
"""

from __future__ import annotations

import math
import os
import tempfile
import threading

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_helpers import tiny_trained_model

from napari_unet_studio.core.checkpoint import TrainedModel, load_model
from napari_unet_studio.core.config import TrainConfig
from napari_unet_studio.core.errors import ModelFileError, UNetStudioError
from napari_unet_studio.core.infer import predict_image
from napari_unet_studio.core.train import Trainer

DTYPES = ["uint8", "uint16", "int32", "int8", "float16", "float32", "float64", "bool"]
FILLS = ["random"] * 4 + ["constant", "nan", "inf", "huge", "negative", "sparse_bright"]
# RELIABILITY_FUZZ_SCALE=20 runs 20x more examples (a deeper hunt, outside CI)
_SCALE = max(1, int(os.environ.get("RELIABILITY_FUZZ_SCALE", "1")))
EXAMPLES = {"data": 40 * _SCALE, "files": 150 * _SCALE}
counts = {"data": 0, "data_ok": 0, "data_refused": 0, "files": 0, "files_loaded": 0}


def _image(rng, shape, dtype, fill):
    dt = np.dtype(dtype)
    x = rng.random(shape)
    if fill == "constant":
        x = np.full(shape, rng.random() * 100)
    elif fill == "huge" and dt.kind == "f":
        x = x * np.finfo(dt).max * 0.5
    elif fill == "negative":
        x = -1000 * x
    elif fill == "sparse_bright":
        x = (rng.random(shape) > 0.995) * 1000.0
    if dt.kind == "b":
        img = x > 0.5
    elif dt.kind in "ui":
        info = np.iinfo(dt)
        img = np.clip(x * 200, info.min, info.max).astype(dt)
    else:
        img = x.astype(dt)
        if fill in ("nan", "inf") and img.size:
            img.flat[rng.integers(img.size)] = np.nan if fill == "nan" else -np.inf
    return img


def _labels(rng, shape, classes, density, dtype, stroke):
    lab = np.zeros(shape, dtype=dtype)
    if classes == 0:
        return lab
    if stroke:
        for k in range(1, classes + 1):
            y = int(rng.integers(shape[-2]))
            lab[..., y, : max(1, shape[-1] // 2)] = k
    else:
        mask = rng.random(shape) < density
        lab[mask] = rng.integers(1, classes + 1, size=int(mask.sum())).astype(dtype)
    return lab


@settings(max_examples=EXAMPLES["data"], deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    ny=st.integers(1, 24), nx=st.integers(1, 24), nz=st.sampled_from([None, None, 1, 3]),
    channels=st.sampled_from([None, None, None, 1, 2, 3, 5]), dtype=st.sampled_from(DTYPES),
    fill=st.sampled_from(FILLS), classes=st.sampled_from([0, 1, 2, 2, 3, 3, 4]),
    density=st.floats(0.0, 0.5), label_dtype=st.sampled_from(["uint8", "int32", "int64"]),
    stroke=st.booleans(), augment=st.booleans(), seed=st.integers(0, 2**16),
)
def test_data_pipeline_never_crashes(ny, nx, nz, channels, dtype, fill, classes, density,
                                     label_dtype, stroke, augment, seed):
    rng = np.random.default_rng(seed)
    spatial = (ny, nx) if nz is None else (nz, ny, nx)
    shape = spatial if channels is None else (*spatial, channels)
    image = _image(rng, shape, dtype, fill)
    labels = _labels(rng, spatial, classes, density, label_dtype, stroke)
    counts["data"] += 1
    tc = TrainConfig(steps=1, patch_size=16, batch_size=2, device="cpu", seed=seed,
                     augment=augment)
    try:
        trainer = Trainer([(image, labels)], None, tc, arch={"width": 2, "depth": 1}, threads=1)
        reports = list(trainer.run())
        plane = image if nz is None else image[0]
        preview = trainer.preview(plane)
    except UNetStudioError as exc:
        counts["data_refused"] += 1
        assert len(str(exc)) > 20  # a sentence, not a bare code
        return
    counts["data_ok"] += 1
    assert reports[-1].done and reports[-1].step == 1
    assert math.isfinite(reports[-1].loss), reports[-1]
    k = trainer.model_config.num_classes
    assert preview.shape == (ny, nx) and preview.min() >= 1 and preview.max() <= k


# ------------------------------------------------------------------------ model files
_VALID: dict[str, bytes] = {}
_IMAGE = np.random.default_rng(0).random((16, 16)).astype(np.float32)


def _valid_bytes() -> bytes:
    if "model" not in _VALID:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.pt")
            model = tiny_trained_model(1, 2)
            model.record["class_names"] = ["bg", "cell"]
            model.save(path)
            with open(path, "rb") as fh:
                _VALID["model"] = fh.read()
    return _VALID["model"]


def _mutate(raw: bytes, ops, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    data = bytearray(raw)
    for op in ops:
        if not data:
            break
        pos = int(rng.integers(len(data)))
        if op == "flip":
            data[pos] ^= 1 << int(rng.integers(8))
        elif op == "byte":
            data[pos] = int(rng.integers(256))
        elif op == "truncate":
            del data[pos:]
        elif op == "delete":
            del data[pos:pos + int(rng.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = rng.bytes(int(rng.integers(1, 64)))
        elif op == "zero_run":
            n = int(rng.integers(1, 256))
            data[pos:pos + n] = bytes(len(data[pos:pos + n]))
    return bytes(data)


def _load_with_time_limit(path: str, seconds: float = 30.0):
    box: dict = {}

    def target():
        try:
            model = load_model(path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc
            return
        try:  # a file that loads must predict, or say clearly why not
            box["result"] = model
            box["labels"] = predict_image(model, _IMAGE, device="cpu").labels
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["predict_error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"load_model hung for more than {seconds} s"
    return box


@settings(max_examples=EXAMPLES["files"], deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(["mutated", "mutated", "mutated", "random", "zip_random"]),
    ops=st.lists(st.sampled_from(["flip", "byte", "truncate", "delete", "insert", "zero_run"]),
                 min_size=1, max_size=6),
    size=st.integers(0, 5000), seed=st.integers(0, 2**32 - 1),
)
def test_model_loader_never_crashes_or_hangs(source, ops, size, seed):
    if source == "random":
        raw = np.random.default_rng(seed).bytes(size)
    elif source == "zip_random":
        raw = b"PK\x03\x04" + np.random.default_rng(seed).bytes(size)
    else:
        raw = _mutate(_valid_bytes(), ops, seed)
    counts["files"] += 1
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz.pt")
        with open(path, "wb") as fh:
            fh.write(raw)
        box = _load_with_time_limit(path)
    if "error" in box:
        exc = box["error"]
        assert isinstance(exc, ModelFileError), f"{type(exc).__name__}: {exc}"
        assert "fuzz.pt" in str(exc) or "model" in str(exc).lower()
    else:
        counts["files_loaded"] += 1  # e.g. a flipped bit inside a weight: still a model
        assert isinstance(box["result"], TrainedModel)
        if "predict_error" in box:
            exc = box["predict_error"]
            assert isinstance(exc, UNetStudioError), f"{type(exc).__name__}: {exc}"
        else:
            k = box["result"].config.num_classes
            assert box["labels"].min() >= 1 and box["labels"].max() <= k


def test_fuzzing_ran():
    """The properties above really ran their examples (a fuzzer that ran nothing proves
    nothing); the counts go into docs/reliability.md."""
    assert counts["data"] >= min(10, EXAMPLES["data"]), counts
    assert counts["files"] >= min(50, EXAMPLES["files"]), counts
    assert counts["data_ok"] and counts["data_refused"], counts
    print(f"\nfuzz counts: {counts}")
