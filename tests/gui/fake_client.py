"""A fake worker client: the contract of ``napari_unet_studio.worker`` with canned events.

It runs no torch and no process. Jobs advance one training step per ``step_seconds`` of
wall-clock time, checked when the GUI polls; previews are ``1 + (plane > mean)`` of the
plane the GUI sent; predictions are ``1`` everywhere. Everything the GUI sends is
recorded so tests can check it. Failures are injected with ``fail_next`` (a
``WorkerError`` for the next job of a kind) and ``crash_at_step``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet_studio.worker import ModelRef, WorkerError

DECODERS = [
    ("nearest", "Nearest-neighbour upsampling."),
    ("bilinear", "Bilinear upsampling (default)."),
    ("transposed", "Learned transposed convolution."),
    ("unpool", "Max-unpooling with the encoder's indices."),
    ("pixelshuffle", "Sub-pixel convolution."),
]
INFO = {
    "decoders": DECODERS,
    "devices": [("auto", "auto: CPU"), ("cpu", "CPU (2 threads)")],
    "torch": "fake",
    "pretrained": True,
}


@dataclass
class FakeJob:
    """One job; ``events`` are produced lazily by :meth:`poll`."""

    client: FakeClient
    kind: str
    spec: dict
    queue: list = field(default_factory=list)
    finished: bool = False
    stopped: bool = False
    paused: bool = False
    step: int = 0
    labels_updates: list = field(default_factory=list)
    preview_sources: list = field(default_factory=list)
    controls: list = field(default_factory=list)
    _last: float = field(default_factory=time.monotonic)
    _last_preview: float = -1e9

    # ------------------------------------------------------------------ controls
    def stop(self) -> None:
        self.controls.append("stop")
        self.stopped = True

    def pause(self) -> None:
        self.controls.append("pause")
        self.paused = True

    def resume(self) -> None:
        self.controls.append("resume")
        self.paused = False

    def update_labels(self, pair_index: int, labels: np.ndarray, region=None) -> None:
        part = np.array(labels[region] if region is not None else labels, copy=True)
        self.labels_updates.append((pair_index, region, part))

    def set_preview_source(self, key: Any, plane: np.ndarray | None) -> None:
        self.preview_sources.append((key, None if plane is None else np.asarray(plane).shape))
        self.spec["source"] = (key, plane)

    # ---------------------------------------------------------------------- poll
    def poll(self) -> list[tuple[str, Any]]:
        if self.finished:
            return []
        out, self.queue = self.queue, []
        if any(k in ("done", "error") for k, _ in out):
            self.finished = True
            return out
        if self.kind == "train":
            out += self._train_events()
        elif self.kind == "predict":
            out += self._predict_events()
        if any(k in ("done", "error") for k, _ in out):
            self.finished = True
        return out

    def _model(self, steps: int) -> ModelRef:
        spec = self.spec
        config = dict(spec["model_config"] or spec["init"].config)
        names = list(spec["class_names"])
        config["num_classes"] = max(int(config.get("num_classes", 2)), len(names))
        record = {"steps": steps, "seconds": 0.1 * steps, "device": "cpu",
                  "class_names": names}
        if spec["init"] is not None:
            record["init_from"] = spec["init"].path
        path = str(self.client.folder / f"model-{id(self)}-{steps}.pt")
        return ModelRef(path, config, record, names)

    def _train_events(self) -> list[tuple[str, Any]]:
        c, spec = self.client, self.spec
        total = int(spec["train_config"]["steps"])
        out: list[tuple[str, Any]] = []
        now = time.monotonic()
        if self.stopped or self.step >= total:
            return [("done", self._model(self.step))]
        if self.paused:
            self._last = now
            return out
        while now - self._last >= c.step_seconds and self.step < total:
            self._last += c.step_seconds
            self.step += 1
            if c.crash_at_step is not None and self.step >= c.crash_at_step:
                c.crash_at_step = None
                best = self._model(self.step - 1) if self.step > 1 else None
                return out + [("error", WorkerError(
                    "crashed", "The training engine stopped unexpectedly (fake crash). "
                    "Your labels are untouched; press Train to start again.", best,
                    "exit code -9"))]
            out.append(("progress", {
                "step": self.step, "total_steps": total, "loss": 1.0 / self.step,
                "elapsed": 0.1 * self.step, "eta": 0.1 * (total - self.step),
                "device": "cpu", "paused": False, "lr": 1e-3, "done": self.step >= total}))
        source = spec.get("source")
        if (spec["live"] and source is not None and source[1] is not None
                and now - self._last_preview >= c.preview_seconds and out):
            self._last_preview = now
            key, plane = source
            plane = np.asarray(plane, dtype=float)
            if plane.ndim == 3 and plane.shape[-1] <= 4:  # RGB; else a 3D model's slab
                plane = plane.mean(axis=-1)
            out.append(("preview", (key, (1 + (plane > plane.mean())).astype(np.uint8))))
            # uncertainty: highest where the plane is closest to the fake threshold
            spread = float(np.abs(plane - plane.mean()).max()) or 1.0
            unc = 255 * (1 - np.abs(plane - plane.mean()) / spread)
            out.append(("uncertainty", (key, np.round(unc).astype(np.uint8))))
        return out

    def _predict_events(self) -> list[tuple[str, Any]]:
        c, spec = self.client, self.spec
        total = c.predict_tiles
        now = time.monotonic()
        out: list[tuple[str, Any]] = []
        while now - self._last >= c.step_seconds and self.step < total and not self.stopped:
            self._last += c.step_seconds
            self.step += 1
            out.append(("progress", {"done_tiles": self.step, "total_tiles": total}))
        if self.stopped:
            return out + [("done", {"labels": None, "probabilities": None,
                                    "cancelled": True, "device": "cpu"})]
        if self.step < total:
            return out
        image, ref = spec["image"], spec["model"]
        spatial = image.shape[:-1] if int(ref.config.get("in_channels", 1)) > 1 else image.shape
        if spec["slices"] is not None:
            spatial = spatial[1:]
        labels = np.ones(spatial, np.uint8)
        k = int(ref.config.get("num_classes", 2))
        probs = np.full((k, *spatial), 1.0 / k, np.float32) if spec["probabilities"] else None
        return out + [("done", {"labels": labels, "probabilities": probs, "cancelled": False,
                                "device": "cpu"})]


class FakeClient:
    """Implements the ``WorkerClient`` contract without a process or torch."""

    def __init__(self, folder: Path, *, step_seconds: float = 0.01,
                 preview_seconds: float = 0.05, predict_tiles: int = 3) -> None:
        self.folder = Path(folder)
        self.step_seconds = step_seconds
        self.preview_seconds = preview_seconds
        self.predict_tiles = predict_tiles
        self.started = 0
        self.shutdowns = 0
        self.jobs: list[FakeJob] = []
        self.fail_next: dict[str, WorkerError] = {}
        self.crash_at_step: int | None = None
        self.bad_files: dict[str, str] = {}  # file name -> message of a failed load
        self.saved: dict[str, ModelRef] = {}
        self._info: dict | None = None

    @property
    def alive(self) -> bool:
        return self.started > self.shutdowns

    def start(self) -> None:
        self.started += 1
        self._info = INFO

    def info(self) -> dict | None:
        return self._info

    def shutdown(self, timeout: float = 2.0) -> None:
        self.shutdowns += 1
        for job in self.jobs:
            job.finished = True

    def _job(self, kind: str, spec: dict) -> FakeJob:
        job = FakeJob(self, kind, spec)
        self.jobs.append(job)
        error = self.fail_next.pop(kind, None)
        if error is not None:
            job.queue.append(("error", error))
        return job

    @property
    def last(self) -> FakeJob:
        return self.jobs[-1]

    def train(self, pairs, model_config, train_config, *, init=None, reinit_head=False,
              class_names=None, live=True, preview_interval=4.0) -> FakeJob:
        spec = {"pairs": [(np.asarray(i).shape, np.asarray(lab).copy()) for i, lab in pairs],
                "model_config": model_config, "train_config": train_config, "init": init,
                "reinit_head": reinit_head, "class_names": list(class_names or []),
                "live": live, "preview_interval": preview_interval}
        return self._job("train", spec)

    def predict(self, model, image, *, tile=None, probabilities=False, device="auto",
                slices=None) -> FakeJob:
        image = np.asarray(image)
        spec = {"model": model, "image": image, "tile": tile, "probabilities": probabilities,
                "device": device, "slices": slices}
        return self._job("predict", spec)

    def load_model(self, path: str) -> FakeJob:
        job = self._job("load", {"path": path})
        name = Path(path).name
        if name in self.bad_files:
            job.queue.append(("error", WorkerError("error", self.bad_files[name])))
        elif str(path) in self.saved:
            job.queue.append(("done", self.saved[str(path)]))
        else:
            job.queue.append(("error", WorkerError(
                "error", f"'{path}' is not a U-Net Studio model file.")))
        return job

    def save_model(self, model, path: str) -> FakeJob:
        job = self._job("save", {"model": model, "path": path})
        Path(path).write_bytes(b"fake model")
        self.saved[str(path)] = ModelRef(str(path), dict(model.config), dict(model.record),
                                         list(model.class_names))
        job.queue.append(("done", str(path)))
        return job
