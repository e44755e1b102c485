"""The training job of the worker: Trainer, live previews, labels updates, best model.

Runs in a thread of the worker process (see :mod:`.server`); the server's main thread
calls :meth:`TrainTask.control` with Stop, Pause, new labels and the preview plane.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from typing import Any

import numpy as np

from ..core.config import preview_tile
from .protocol import PREVIEW, PROGRESS, UNCERTAINTY, ModelRef, to_plain
from .server import WARMUP_WAIT_S, Server, SpecTask, model_ref, save_quick
from .shm import pack, unpack
from .tuning import ThreadTuner


def _env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# first crash-safe copy of the best model after this much training, then at most every
# SAVE_EVERY_S (only when the best model changed); the environment overrides it (tests)
SAVE_FIRST_S = _env_seconds("NAPARI_UNET_STUDIO_BEST_SAVE_FIRST", 5.0)
SAVE_EVERY_S = _env_seconds("NAPARI_UNET_STUDIO_BEST_SAVE_EVERY", 20.0)
PAINT_HOLD_S = 2.0  # "the user is painting" lasts this long after a labels update
TUNING_ENV = "NAPARI_UNET_STUDIO_THREAD_TUNING"  # "0": keep the engine's thread count


def tuning_wanted(threads: int | None, paint_threads: int | None) -> bool:
    """Tune the thread count unless the user or the environment fixed it."""
    if threads is not None or paint_threads:
        return False
    if os.environ.get(TUNING_ENV, "1").strip() == "0":
        return False
    return not (os.environ.get("NAPARI_UNET_STUDIO_THREADS", "").strip()
                or os.environ.get("OMP_NUM_THREADS", "").strip())


class TrainTask(SpecTask):
    """Trainer with live previews, labels updates and a crash-safe best model."""

    doing = "Training"

    def __init__(self, server: Server, job_id: int, spec: dict) -> None:
        super().__init__(server, job_id, spec)
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.trainer: Any = None
        self._lock = threading.Lock()
        # orders the step events and the "paused" event (not self._lock: a failed send
        # ends the process through stop(), which takes self._lock)
        self._progress_lock = threading.Lock()
        self.stop_requested = False
        self.pause_requested = False
        self.dirty = False
        self.preview_source: tuple[Any, np.ndarray] | None = None
        self.painted_at = -1e9
        self.pauses = 0
        self.best: ModelRef | None = None
        self._last_progress: dict[str, Any] | None = None
        for img_desc, lab_desc in spec["pairs"]:
            self.images.append(self.attach(img_desc))
            self.labels.append(self.attach(lab_desc))

    # --------------------------------------------------------------- control
    def pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Images as shared views, labels as private copies (the GUI keeps painting)."""
        return [(img, np.array(lab, copy=True)) for img, lab in zip(self.images, self.labels)]

    def stop(self) -> None:
        with self._lock:
            self.stop_requested = True
            self.cancel.set()
            if self.trainer is not None:
                self.trainer.stop()

    def control(self, op: str, args: tuple) -> None:
        with self._lock:
            trainer = self.trainer
            if op == "pause":
                self.pause_requested = True
                self.pauses += 1
            elif op == "resume":
                self.pause_requested = False
            elif op == "labels":
                self.painted_at = time.monotonic()
                self.dirty = trainer is None
            elif op == "preview_source":
                key, packed = args
                if packed is None:
                    self.preview_source = None
                else:
                    with contextlib.suppress(FileNotFoundError):  # replaced meanwhile
                        self.preview_source = (key, unpack(packed)[0])
        if op == "stop":
            self.stop()
        elif trainer is not None and op == "pause":
            # the GUI gets "paused" after the last step event sent and before the next
            # one (which then says paused too), never the other way round
            with self._progress_lock:
                trainer.pause()
                if self._last_progress is not None:
                    self.event(PROGRESS, {**self._last_progress, "paused": True})
        elif trainer is not None and op == "resume":
            trainer.resume()
        elif trainer is not None and op == "labels":
            trainer.update_data(self.pairs())

    # --------------------------------------------------------------- work
    def work(self) -> ModelRef:
        self.server.warm.wait(WARMUP_WAIT_S)
        import torch

        from ..core.config import ModelConfig, TrainConfig
        from ..core.train import Trainer

        spec = self.spec
        mc = ModelConfig.from_dict(spec["model_config"]) if spec.get("model_config") else None
        tc = TrainConfig.from_dict(spec["train_config"]) if spec.get("train_config") else None
        init = self.server.load(spec["init"].path) if spec.get("init") else None
        from ..core.device import prepare_runtime

        tuner = None
        threads = self.server.threads
        if tuning_wanted(threads, self.server.paint_threads):
            tuner = ThreadTuner(int(prepare_runtime(None)["threads"]))
            threads = tuner.current if tuner.enabled else None
        # set the count now: building the Trainer runs the network (a pretrained start
        # measures its head on the painted pixels), and an earlier job may have left
        # two threads that the tuner found 10x slower (3-4 s instead of 0.3 s here)
        prepare_runtime(threads)
        trainer = Trainer(self.pairs(), mc, tc, init=init,
                          reinit_head=bool(spec.get("reinit_head")),
                          class_names=spec.get("class_names") or None, threads=threads)
        with self._lock:
            self.trainer = trainer
            if self.stop_requested:
                trainer.stop()
            if self.pause_requested:
                trainer.pause()
            if self.dirty:
                trainer.update_data(self.pairs())
        run = trainer.run()
        live, interval = bool(spec.get("live", True)), float(spec.get("preview_interval", 4.0))
        next_preview = time.monotonic()
        seen_best, save_at, base_threads = None, None, None
        while True:
            t_step, pauses = time.perf_counter(), self.pauses
            try:
                p = next(run)
            except StopIteration as fin:
                model = fin.value
                break
            now = time.monotonic()
            if tuner is not None and tuner.enabled and pauses == self.pauses and not p.done:
                target = tuner.observe(time.perf_counter() - t_step)
                if target != torch.get_num_threads():
                    torch.set_num_threads(target)
            progress = to_plain(dataclasses.asdict(p))
            progress["threads"] = int(torch.get_num_threads())
            with self._progress_lock:  # in order with the "paused" event of control()
                progress["paused"] = bool(trainer.paused)
                self._last_progress = progress
                self.event(PROGRESS, progress)
            if p.done:
                continue
            if base_threads is None:
                base_threads = torch.get_num_threads()
            self._paint_threads(base_threads, now)
            if save_at is None:
                save_at = now + SAVE_FIRST_S
            if p.best_loss != seen_best and now >= save_at and p.step > 0:
                seen_best, save_at = p.best_loss, now + SAVE_EVERY_S
                self._save_best(trainer.result())
            source = self.preview_source
            if live and source is not None and now >= next_preview and not self.cancel.is_set():
                started = time.monotonic()
                tile = preview_tile(np.shape(source[1]), trainer.model_config.in_channels)
                result = trainer.preview_result(source[1], tile=tile, stop=self.cancel,
                                                probabilities=True)
                took = time.monotonic() - started
                # previews may take at most about a quarter of the training time
                next_preview = time.monotonic() + max(interval, 3.0 * took)
                if result is not None:
                    self._send_preview(source[0], result.labels, result.probabilities)
        if tuner is not None and tuner.enabled:
            self.server.preferred_threads = tuner.best  # for the final preview, predict
        elif base_threads is not None and torch.get_num_threads() != base_threads:
            torch.set_num_threads(base_threads)
        source = self.preview_source
        if live and source is not None and not self.cancel.is_set():
            final = self._final_preview(model, source[1], trainer.device)
            if final is not None:
                self._send_preview(source[0], *final)
        path = self.server.session / f"train-{self.job_id}.pt"
        save_quick(model, path)
        return model_ref(model, path)

    def _paint_threads(self, base: int, now: float) -> None:
        """Fewer torch threads for a moment after the user painted (if configured)."""
        want = self.server.paint_threads
        if not want:
            return
        import torch

        target = want if now - self.painted_at < PAINT_HOLD_S else base
        if torch.get_num_threads() != target:
            torch.set_num_threads(target)

    def _send_preview(self, key: Any, labels: np.ndarray, probs: np.ndarray | None) -> None:
        """The preview plane, then its uncertainty map (uint8, from the same probabilities:
        5 ms of CPU time for a 512 x 512 plane of 2 classes, no extra forward pass)."""
        from ..core.uncertainty import to_uint8, uncertainty_map

        self.event(PREVIEW, (key, pack(np.asarray(labels), self.server.owned)))
        if probs is not None:
            unc = to_uint8(uncertainty_map(probs, "entropy"))
            self.event(UNCERTAINTY, (key, pack(unc, self.server.owned)))

    def _final_preview(self, model: Any, plane: np.ndarray,
                       device: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
        from ..core.infer import predict_image

        # the last preview stays on screen: vote and snap as a prediction would
        tile = preview_tile(np.shape(plane), model.config.in_channels, superpixels="auto",
                            edges="auto")
        result = predict_image(model, plane, tile=tile, device=str(device), stop=self.cancel,
                               probabilities=True,
                               threads=self.server.threads or self.server.preferred_threads)
        return None if result.cancelled else (np.asarray(result.labels), result.probabilities)

    def _save_best(self, model: Any) -> None:
        path = self.server.session / f"train-{self.job_id}-best.pt"
        save_quick(model, path)
        self.best = model_ref(model, path)
        self.server.send(("best", self.job_id, self.best))

    def best_on_error(self) -> ModelRef | None:
        trainer = self.trainer
        if trainer is None:
            return self.best
        try:
            model = trainer.result()
            if not model.record.get("steps"):
                return None
            self._save_best(model)
        except Exception:  # noqa: BLE001 - the model may be in a broken state
            pass
        return self.best

    def cleanup(self) -> None:
        self.trainer = None
        self.images, self.labels, self.preview_source = [], [], None
        super().cleanup()

