"""The worker process: owns torch, runs training, previews, prediction, model files.

Started by :class:`~napari_unet_studio.worker.client.WorkerClient` as
``python -m napari_unet_studio.worker`` (a fresh interpreter: the user's ``__main__`` is
never re-imported). The main thread reads messages from the napari process and answers
control messages at once; every job runs in a thread of its own, so Stop, Pause and new
labels reach a running job between two training steps.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from .protocol import DONE, ERROR, PROGRESS, ModelRef, WorkerError, to_plain
from .shm import SharedArray, attach, detach, pack

WARMUP_ENV = "NAPARI_UNET_STUDIO_WORKER_WARMUP"  # "0": no warm-up training at start
WARMUP_WAIT_S = 30.0  # a job waits at most this long for the warm-up to end

#: The one registry of job kinds: message name -> ``"module:Class"`` of its
#: :class:`Task` (relative to this package, imported on first use). A new kind of job is
#: a :class:`SpecTask` subclass in a module of its own, one line here, and a client method
#: that calls :meth:`WorkerClient.submit <napari_unet_studio.worker.client.WorkerClient.submit>`.
TASKS: dict[str, str] = {
    "train": ".train_task:TrainTask",
    "predict": ".server:PredictTask",
    "load": ".server:LoadTask",
    "save": ".server:SaveTask",
    "export": ".export_task:ExportTask",
    "predict_store": ".bigdata_task:PredictStoreTask",
    "compare": ".compare_task:CompareTask",
    "upsample": ".upsample_task:UpsampleTask",
}


def task_class(kind: str) -> type[Task]:
    """The :class:`Task` class registered for ``kind`` in :data:`TASKS`."""
    import importlib

    module, _, name = TASKS[kind].partition(":")
    return getattr(importlib.import_module(module, __package__), name)


def user_message(exc: BaseException, doing: str) -> str:
    """Plain-language text for a failure inside the worker."""
    from ..core.errors import UNetStudioError

    text = str(exc).strip()
    if isinstance(exc, UNetStudioError):
        return f"{doing} failed: {text}"
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (f"{doing} ran out of memory. Choose a smaller patch size, batch size or "
                "tile size in Advanced settings, or use the CPU.")
    first = text.splitlines()[0] if text else ""
    return f"{doing} failed with an unexpected error ({type(exc).__name__}: {first})."


def parent_died(parent_pid: int, wait: float = 1.0) -> bool:
    """Whether the parent died (the socket closing or PDEATHSIG come before the kernel
    shows the new parent in ``getppid()``, so wait up to ``wait`` seconds for it)."""
    end = time.monotonic() + wait
    while os.getppid() == parent_pid and time.monotonic() < end:
        time.sleep(0.02)
    return os.getppid() != parent_pid


def device_broken(exc: BaseException) -> bool:
    """True for GPU errors after which the CUDA context is unusable (not out of memory)."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and "out of memory" not in text.lower() and any(
        key in text for key in ("CUDA error", "device-side assert", "cuDNN error",
                                "CUBLAS_STATUS", "illegal memory access"))


def model_ref(model: Any, path: str | Path) -> ModelRef:
    """Describe a saved ``TrainedModel`` without torch for the napari process."""
    record = to_plain(dict(model.record))
    record["parameters"] = int(sum(int(t.numel()) for t in model.state_dict.values()))
    return ModelRef(str(path), to_plain(model.config.to_dict()), record,
                    [str(n) for n in model.class_names])


def model_with_names(model: Any, ref: ModelRef) -> Any:
    """``model`` with the class names of ``ref`` (names the user gave in the dock after
    training belong in a saved file or package); ``model`` itself when they agree."""
    if ref.class_names and list(ref.class_names) != model.class_names:
        record = {**model.record, "class_names": list(ref.class_names)}
        return dataclasses.replace(model, record=record)
    return model


def save_quick(model: Any, path: Path) -> None:
    """Session copies: temp file + rename, no fsync (they only have to survive a crash)."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(model.to_dict(), tmp)
    os.replace(tmp, path)


class Server:
    """Message loop of the worker process."""

    def __init__(self, conn: Any, session_dir: str, threads: int | None,
                 paint_threads: int | None = None) -> None:
        self.conn = conn
        self.session = Path(session_dir)
        self.parent_pid = os.getppid()
        self.threads = threads
        self.paint_threads = paint_threads
        self._send_lock = threading.Lock()
        self.tasks: dict[int, Task] = {}
        self.owned: dict[str, SharedArray] = {}  # result blocks the parent has not taken yet
        self._models: dict[str, tuple[float, Any]] = {}
        self.warm = threading.Event()
        self.info: dict[str, Any] = {}
        self.preferred_threads: int | None = None  # what the last training tuner chose

    # ----------------------------------------------------------------- plumbing
    def send(self, msg: tuple) -> None:
        """Send one message; a vanished parent ends the process."""
        try:
            with self._send_lock:
                self.conn.send(msg)
        except (OSError, EOFError, BrokenPipeError):
            self.exit(2)

    def event(self, job_id: int, kind: str, payload: Any) -> None:
        self.send(("event", job_id, kind, payload))

    def exit(self, code: int = 0, parent_gone: bool = False) -> None:
        """Stop everything and leave at once (threads are not waited for).

        ``parent_gone``: napari died, nobody can use the session folder: remove it.
        """
        for task in list(self.tasks.values()):
            task.stop()
        for block in list(self.owned.values()):
            block.close()
        if parent_gone:
            import shutil

            shutil.rmtree(self.session, ignore_errors=True)
        os._exit(code)

    def load(self, path: str) -> Any:
        """``load_model`` with a small cache keyed by path and modification time
        (``_api.load_model``: model files and our exported bioimage.io packages)."""
        from .._api import load_model

        mtime = os.stat(path).st_mtime
        hit = self._models.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        model = load_model(path)
        self._models = {path: (mtime, model)}
        return model

    def hello(self) -> dict[str, Any]:
        """What the GUI shows before the first job: decoders, devices, versions."""
        import torch

        from ..core.decoders import describe_decoders
        from ..core.device import describe_devices

        pretrained = False
        try:
            from ..core import pretrained as _pre  # added by the pretraining work

            check = getattr(_pre, "available", None) or getattr(_pre, "has_pretrained", None)
            pretrained = bool(check()) if callable(check) else True
        except Exception:  # noqa: BLE001 - absent or broken: no shipped weights
            pretrained = False
        return {  # plain types only: unpickling must not import torch in napari
            "decoders": [(str(n), str(d)) for n, d in describe_decoders()],
            "devices": [(str(d.name), str(d.label)) for d in describe_devices()],
            "torch": str(torch.__version__),
            "pretrained": pretrained,
            "pid": os.getpid(),
            "threads": int(torch.get_num_threads()),
            "warm": False,
        }

    # ----------------------------------------------------------------- loop
    def warm_up(self) -> None:
        """Two training steps and a preview on noise, so the user's first step is fast.

        A fresh process spends about 2 s in its first training step (kernel set-up, memory
        first touched); paid here while the user is still painting, the first overlay
        after Train comes that much sooner. Runs on one thread, like the first steps of a
        real job (see :class:`~napari_unet_studio.worker.tuning.ThreadTuner`).
        """
        try:
            if os.environ.get(WARMUP_ENV, "1").strip() == "0":
                return
            from ..core.config import TrainConfig
            from ..core.device import prepare_runtime
            from ..core.train import Trainer

            rng = np.random.default_rng(0)
            image = rng.random((160, 160), dtype=np.float32)
            labels = np.zeros((160, 160), np.uint8)
            labels[:40], labels[-40:] = 1, 2
            # the default start (shipped pretrained weights, where installed): its first
            # use imports modules and measures the head (3 s cold, 0.3 s warm)
            tc = TrainConfig(steps=2, device="cpu")
            prepare_runtime(self.threads or 1)
            trainer = Trainer([(image, labels)], None, tc, threads=self.threads or 1)
            for _ in trainer.run():
                pass
            trainer.preview(rng.random((256, 256), dtype=np.float32))
        except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
            traceback.print_exc()
        finally:
            self.warm.set()
            self.info = {**self.info, "warm": True}
            self.send(("hello", self.info))

    def serve(self) -> None:
        """Answer messages until the parent says shutdown or goes away."""
        self.info = self.hello()
        self.send(("hello", self.info))
        threading.Thread(target=self.warm_up, daemon=True, name="warm-up").start()
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.exit(0, parent_gone=parent_died(self.parent_pid))
            self.dispatch(msg)

    def dispatch(self, msg: tuple) -> None:
        op = msg[0]
        if op == "shutdown":
            self.exit(0)
        elif op == "release":
            block = self.owned.pop(msg[1], None)
            if block is not None:
                block.close()
        elif op in TASKS:
            task = task_class(op)(self, msg[1], *msg[2:])
            self.tasks[msg[1]] = task
            task.start()
        else:
            task = self.tasks.get(msg[1])
            if task is not None:
                task.control(op, msg[2:])

    def finished(self, job_id: int) -> None:
        self.tasks.pop(job_id, None)


class Task(threading.Thread):
    """One job, run in its own thread; ``control`` is called from the main thread."""

    doing = "The job"

    def __init__(self, server: Server, job_id: int) -> None:
        super().__init__(daemon=True, name=f"job-{job_id}")
        self.server, self.job_id = server, job_id
        self.cancel = threading.Event()

    def stop(self) -> None:
        self.cancel.set()

    def control(self, op: str, args: tuple) -> None:
        if op == "stop":
            self.stop()

    def event(self, kind: str, payload: Any) -> None:
        self.server.event(self.job_id, kind, payload)

    def run(self) -> None:
        fatal = False
        try:
            self.event(DONE, self.work())
        except Exception as exc:  # noqa: BLE001 - every failure must reach the GUI
            message = user_message(exc, self.doing)
            fatal = device_broken(exc)
            if fatal:
                message += (" The GPU reported an error it may not recover from, so the "
                            "training engine restarts for the next job.")
            self.event(ERROR, WorkerError("error", message, self.best_on_error(),
                                          traceback.format_exc()))
        finally:
            self.cleanup()
            self.server.finished(self.job_id)
        if fatal:  # a CUDA context in an error state stays broken: start afresh
            self.server.exit(5)

    def work(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def best_on_error(self) -> ModelRef | None:
        return None

    def cleanup(self) -> None:
        pass


class SpecTask(Task):
    """A job whose message carries one ``spec`` dict (the :meth:`WorkerClient.submit
    <napari_unet_studio.worker.client.WorkerClient.submit>` kinds).

    :meth:`array` opens an array the client sent in shared memory; :meth:`cleanup`
    drops the views and detaches every block opened so.
    """

    def __init__(self, server: Server, job_id: int, spec: dict) -> None:
        super().__init__(server, job_id)
        self.spec = spec
        self.blocks: list[Any] = []

    def attach(self, desc: Any) -> np.ndarray:
        """The shared array of descriptor ``desc`` (detached at :meth:`cleanup`)."""
        shm, view = attach(desc)
        self.blocks.append(shm)
        return view

    def array(self, key: str) -> np.ndarray:
        """The shared array the client sent under ``key`` of the spec."""
        return self.attach(self.spec[key])

    def cleanup(self) -> None:
        gc.collect()  # dead views first, so that the blocks can be unmapped
        for shm in self.blocks:
            detach(shm)


class LoadTask(Task):
    doing = "Loading the model"

    def __init__(self, server: Server, job_id: int, path: str) -> None:
        super().__init__(server, job_id)
        self.path = str(path)

    def work(self) -> ModelRef:
        return model_ref(self.server.load(self.path), os.path.abspath(self.path))


class SaveTask(Task):
    doing = "Saving the model"

    def __init__(self, server: Server, job_id: int, ref: ModelRef, path: str) -> None:
        super().__init__(server, job_id)
        self.ref, self.path = ref, str(path)

    def work(self) -> str:
        model = model_with_names(self.server.load(self.ref.path), self.ref)
        model.save(self.path)
        return self.path


class PredictTask(SpecTask):
    doing = "Prediction"

    def work(self) -> dict[str, Any]:
        self.server.warm.wait(WARMUP_WAIT_S)
        from ..core.config import TileConfig
        from ..core.device import resolve_device
        from ..core.infer import iter_predict

        spec = self.spec
        model = self.server.load(spec["model"].path)
        image = self.array("image")
        tile = TileConfig.from_dict(spec["tile"]) if spec.get("tile") else None
        device = spec.get("device") or "auto"
        gen = iter_predict(model, image, tile=tile, probabilities=bool(spec.get("probabilities")),
                           device=device, slices=spec.get("slices"), stop=self.cancel,
                           threads=self.server.threads or self.server.preferred_threads)
        last = 0.0
        while True:
            try:
                p = next(gen)
            except StopIteration as fin:
                result = fin.value
                break
            now = time.monotonic()
            if now - last >= 0.05 or p.done == p.total:
                last = now
                self.event(PROGRESS, {"done_tiles": int(p.done), "total_tiles": int(p.total),
                                      "elapsed": float(p.elapsed)})
        del image
        owned = self.server.owned
        return {"labels": pack(result.labels, owned),
                "probabilities": pack(result.probabilities, owned),
                "cancelled": bool(result.cancelled), "device": str(resolve_device(device))}

