"""The napari side of the worker process: start it, send jobs, collect events (no torch).

:class:`WorkerClient` starts ``python -m napari_unet_studio.worker`` with
:class:`subprocess.Popen` (a fresh interpreter: nothing is forked from the Qt process and
the user's ``__main__`` is never re-imported), talks to it over an authenticated local
socket, and hands images and labels over in shared memory. A reader thread turns the
worker's messages into per-job event lists, so :meth:`Job.poll` never blocks. If the
process dies, every running job ends with a ``WorkerError(kind="crashed")`` and the next
job starts a fresh worker. The :class:`Job` handle itself is in :mod:`.job` (importable
from here as before).
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

import numpy as np

from ..core.malloc import child_environ
from .job import TERMINAL, Job
from .protocol import (
    DONE,
    ERROR,
    PREVIEW,
    UNCERTAINTY,
    ModelRef,
    WorkerError,
    crash_message,
    start_failed_message,
)
from .shm import SharedArray, unpack

__all__ = ["WorkerClient", "Job", "COMMAND_ENV", "NICE_ENV", "PAINT_THREADS_ENV"]

COMMAND_ENV = "NAPARI_UNET_STUDIO_WORKER_CMD"  # replaces the command (tests, debugging)
PAINT_THREADS_ENV = "NAPARI_UNET_STUDIO_PAINT_THREADS"
NICE_ENV = "NAPARI_UNET_STUDIO_WORKER_NICE"
DEFAULT_NICE = 10


class WorkerClient:
    """Runs all torch work in a separate, lower-priority process.

    Parameters
    ----------
    nice : int, optional
        Priority the worker lowers itself by (POSIX ``nice``; 0 keeps the priority).
        Default 10, or the ``NAPARI_UNET_STUDIO_WORKER_NICE`` environment variable.
    threads : int, optional
        Torch CPU threads in the worker (default: the engine's policy).
    command : list of str, optional
        Command that starts the worker (default ``[sys.executable, "-m",
        "napari_unet_studio.worker"]``, or the ``NAPARI_UNET_STUDIO_WORKER_CMD``
        environment variable, split like a shell line). Tests inject failures here.
    paint_threads : int, optional
        Torch threads while the user paints (for 2 s after each labels update);
        default ``NAPARI_UNET_STUDIO_PAINT_THREADS`` or unchanged.
    start_timeout : float
        Seconds the worker may take to open its socket.
    """

    def __init__(self, *, nice: int | None = None, threads: int | None = None,
                 command: list[str] | None = None, paint_threads: int | None = None,
                 start_timeout: float = 60.0) -> None:
        env_nice = os.environ.get(NICE_ENV, "").strip()
        if nice is None:
            nice = int(env_nice) if env_nice.lstrip("-").isdigit() else DEFAULT_NICE
        self.nice = int(nice)
        self.threads = threads
        env_cmd = os.environ.get(COMMAND_ENV, "").strip()
        self.command = list(command) if command else (
            shlex.split(env_cmd) if env_cmd else
            [sys.executable, "-m", "napari_unet_studio.worker"])
        env_pt = os.environ.get(PAINT_THREADS_ENV, "").strip()
        self.paint_threads = paint_threads if paint_threads is not None else (
            int(env_pt) if env_pt.isdigit() and int(env_pt) > 0 else None)
        self.start_timeout = float(start_timeout)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._proc: subprocess.Popen | None = None
        self._conn: Any = None
        self._state = "idle"  # idle | starting | ready
        self._outbox: queue.SimpleQueue | None = None  # sent by a thread: never blocks
        self._generation = 0
        self._info: dict | None = None
        self._session: Path | None = None
        self._log: Path | None = None
        self.restarts = 0  # workers started after the first (crashes, failed starts)
        ref = weakref.ref(self)
        atexit.register(lambda: ref() is not None and ref().shutdown(1.0))  # type: ignore[union-attr]

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int | None:
        """Process id of the current worker (``None`` when none runs)."""
        proc = self._proc
        return proc.pid if proc is not None else None

    @property
    def session_dir(self) -> Path | None:
        """Folder of the session's models (best-so-far copies, trained models) and logs."""
        return self._session

    @property
    def alive(self) -> bool:
        """True while a worker process is starting or running."""
        proc = self._proc
        return proc is not None and proc.poll() is None and self._state != "idle"

    def info(self) -> dict | None:
        """Decoders, devices, torch version, pretrained weights; ``None`` before hello."""
        return self._info

    def start(self) -> None:
        """Start the worker in the background (returns at once; idempotent)."""
        with self._lock:
            if self._state != "idle":
                return
            self._start_locked()

    def _start_locked(self) -> None:
        if self._session is None:
            self._session = Path(tempfile.mkdtemp(prefix="unet-studio-"))
        self._generation += 1
        gen = self._generation
        if gen > 1:
            self.restarts += 1
        self._log = self._session / f"worker-{gen}.log"
        authkey = os.urandom(32)
        settings = {"authkey": authkey.hex(), "parent_pid": os.getpid(), "nice": self.nice,
                    "threads": self.threads, "paint_threads": self.paint_threads,
                    "session_dir": str(self._session),
                    # PDEATHSIG fires when the *thread* that started the child ends
                    "pdeathsig": threading.current_thread() is threading.main_thread()}
        env = child_environ()  # one malloc arena: core/malloc.py
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            with open(self._log, "wb") as log:
                proc = subprocess.Popen(
                    self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=log, env=env, close_fds=True,
                    cwd=str(self._session), start_new_session=False)
        except OSError as exc:
            self._state = "idle"
            detail = f"{' '.join(self.command)}: {exc}"
            self._fail_jobs("start-failed", start_failed_message(detail), detail)
            return
        self._proc, self._state, self._info = proc, "starting", None
        self._outbox = outbox = queue.SimpleQueue()
        threading.Thread(target=self._run_connection,
                         args=(proc, gen, settings, authkey, outbox),
                         daemon=True, name="unet-studio-worker-reader").start()

    def _run_connection(self, proc: subprocess.Popen, gen: int, settings: dict,
                        authkey: bytes, outbox: queue.SimpleQueue) -> None:
        """Starter, then reader thread of one worker process.

        It never sends: a reader blocked on a full socket while the worker blocks on
        sending to it would deadlock both. A sender thread empties ``outbox`` instead,
        so the GUI thread never waits for the socket either.
        """
        timer = threading.Timer(self.start_timeout, lambda: proc.poll() is None and proc.kill())
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write((json.dumps(settings) + "\n").encode())
                proc.stdin.close()
            except OSError:
                pass
            line = proc.stdout.readline()
            proc.stdout.close()
            if not line:
                raise RuntimeError("the worker ended before it was ready")
            address = json.loads(line)["address"]
            conn = Client(tuple(address) if isinstance(address, list) else address,
                          authkey=authkey)
        except Exception as exc:  # noqa: BLE001 - any failure here means "did not start"
            timer.cancel()
            self._start_failed(proc, gen, exc)
            return
        timer.cancel()
        with self._lock:
            if gen != self._generation:  # shut down meanwhile
                conn.close()
                return
            self._conn, self._state = conn, "ready"
        threading.Thread(target=_sender, args=(conn, outbox), daemon=True,
                         name="unet-studio-worker-sender").start()
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # noqa: BLE001 - a message that cannot be unpickled
                continue
            try:
                self._handle(msg)
            except Exception:  # noqa: BLE001 - the reader must survive a bad message
                continue
        outbox.put(None)
        conn.close()
        self._died(proc, gen)

    def _log_tail(self, n: int = 4000) -> str:
        try:
            return self._log.read_text(errors="replace")[-n:] if self._log else ""
        except OSError:
            return ""

    def _start_failed(self, proc: subprocess.Popen, gen: int, exc: Exception) -> None:
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        detail = f"{' '.join(self.command)}: {exc}; exit code {code}\n{self._log_tail()}"
        with self._lock:
            if gen != self._generation:
                return
            self._proc, self._state, self._conn, self._outbox = None, "idle", None, None
            self._fail_jobs("start-failed", start_failed_message(self._log_tail() or str(exc)),
                            detail)

    def _died(self, proc: subprocess.Popen, gen: int) -> None:
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        with self._lock:
            if gen != self._generation:  # a deliberate shutdown
                return
            self._proc, self._state, self._conn, self._outbox = None, "idle", None, None
            detail = f"exit code {code}\n{self._log_tail()}"
            if self._info is None:  # it never said hello: e.g. torch failed to import
                self._fail_jobs("start-failed", start_failed_message(self._log_tail()), detail)
            else:
                self._fail_jobs(
                    "crashed", lambda job: crash_message(code, job.best is not None), detail
                )

    def _fail_jobs(
        self, kind: str, message: str | Callable[[Job], str], detail: str
    ) -> None:
        """End every running job with one ``WorkerError``; ``message`` may depend on the job."""
        jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            text = message(job) if callable(message) else message
            job._push(ERROR, WorkerError(kind, text, job.best, detail))

    def shutdown(self, timeout: float = 2.0) -> None:
        """End the worker (within ``timeout`` s), its jobs and the session folder."""
        with self._lock:
            self._generation += 1
            proc, outbox, state = self._proc, self._outbox, self._state
            self._proc, self._conn, self._state, self._outbox = None, None, "idle", None
            self._fail_jobs("error", "The job was cancelled because the training engine "
                            "was closed.", "shutdown")
        if outbox is not None:
            outbox.put(("shutdown",))
            outbox.put(None)
        if proc is not None:
            try:
                if state != "ready":  # not connected: nothing to say goodbye to
                    raise subprocess.TimeoutExpired(self.command, 0)
                proc.wait(timeout=max(0.1, timeout * 0.5))
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=max(0.1, timeout * 0.5))
                except subprocess.TimeoutExpired:
                    pass
        if self._session is not None:
            shutil.rmtree(self._session, ignore_errors=True)
            self._session = None

    # ------------------------------------------------------------------ messages
    def _send(self, msg: tuple) -> None:
        """Queue a message for the worker (sent once it is connected; never blocks)."""
        with self._lock:
            if self._outbox is not None:
                self._outbox.put(msg)

    def _handle(self, msg: tuple) -> None:
        op = msg[0]
        if op == "hello":
            self._info = msg[1]
            return
        job = self._jobs.get(msg[1])
        if op == "best":
            if job is not None:
                job.best = msg[2]
            return
        _, job_id, kind, payload = msg
        if kind in (PREVIEW, UNCERTAINTY):
            key, packed = payload
            payload = (key, self._take(packed))
        elif kind == DONE and isinstance(payload, dict) and "labels" in payload:
            payload = {**payload, "labels": self._take(payload["labels"]),
                       "probabilities": self._take(payload["probabilities"])}
        if job is None:
            return
        if kind in TERMINAL:
            with self._lock:
                self._jobs.pop(job_id, None)
        job._push(kind, payload)

    def _take(self, packed: Any) -> np.ndarray | None:
        arr, name = unpack(packed)
        if name is not None:
            self._send(("release", name))
        return arr

    def _new_job(self, kind: str) -> Job:
        with self._lock:
            if self._state == "idle":
                self._start_locked()
            job = Job(self, next(self._ids), kind)
            if self._state != "idle":
                self._jobs[job.id] = job
            return job

    def _submit(self, job: Job, msg: tuple) -> Job:
        with self._lock:
            if job.id not in self._jobs:  # the worker could not even be started
                if not job._terminal:
                    detail = f"{' '.join(self.command)}: could not be run"
                    job._push(ERROR, WorkerError("start-failed", start_failed_message(detail),
                                                 None, detail))
            else:
                self._send(msg)
        if job._terminal:  # ended before its blocks were added: release them too
            job._release()
        return job

    # ------------------------------------------------------------------ jobs
    def train(self, pairs: list[tuple[np.ndarray, np.ndarray]], model_config: dict | None,
              train_config: dict | None, *, init: ModelRef | None = None,
              reinit_head: bool = False, class_names: list[str] | None = None,
              live: bool = True, preview_interval: float = 4.0) -> Job:
        """Train on ``pairs``; events: progress dicts, previews, then done (ModelRef)."""
        job = self._new_job("train")
        descs = []
        for image, labels in pairs:
            img, lab = SharedArray(np.asarray(image)), SharedArray(np.asarray(labels))
            job._blocks.append(img)
            job._label_blocks.append(lab)
            descs.append((img.desc, lab.desc))
        spec = {"pairs": descs, "model_config": model_config, "train_config": train_config,
                "init": init, "reinit_head": bool(reinit_head),
                "class_names": list(class_names or []), "live": bool(live),
                "preview_interval": float(preview_interval)}
        return self._submit(job, ("train", job.id, spec))

    def predict(self, model: ModelRef, image: np.ndarray, *, tile: dict | None = None,
                probabilities: bool = False, device: str = "auto", slices: Any = None) -> Job:
        """Tiled prediction; events: progress, then done ``{"labels", ...}``."""
        spec = {"model": model, "tile": tile, "probabilities": bool(probabilities),
                "device": device, "slices": slices}
        return self.submit("predict", spec, {"image": image})

    def submit(self, kind: str, spec: dict, arrays: dict[str, np.ndarray] | None = None) -> Job:
        """Start a job of a kind registered in :data:`~napari_unet_studio.worker.server.TASKS`.

        Parameters
        ----------
        kind : str
            The job kind (the worker's ``TASKS`` key).
        spec : dict
            Plain, picklable settings of the job (small: no large arrays).
        arrays : dict, optional
            Arrays sent through shared memory; the task finds each one's descriptor under
            the same key in ``spec`` (open it with :func:`~napari_unet_studio.worker.shm.attach`).
            The blocks are released when the job ends.
        """
        job = self._new_job(kind)
        spec = dict(spec)
        for key, arr in (arrays or {}).items():
            block = SharedArray(np.asarray(arr))
            job._blocks.append(block)
            spec[key] = block.desc
        return self._submit(job, (kind, job.id, spec))

    def load_model(self, path: str) -> Job:
        """Read a model file in the worker; done payload: :class:`ModelRef`."""
        job = self._new_job("load")  # absolute: the worker runs in its session folder
        return self._submit(job, ("load", job.id, os.path.abspath(os.fspath(path))))

    def save_model(self, model: ModelRef, path: str) -> Job:
        """Write ``model`` to ``path`` (atomically); done payload: the path."""
        job = self._new_job("save")
        return self._submit(job, ("save", job.id, model, os.path.abspath(os.fspath(path))))


def _sender(conn: Any, outbox: queue.SimpleQueue) -> None:
    """Send queued messages until ``None`` or the connection breaks."""
    while True:
        msg = outbox.get()
        if msg is None:
            return
        try:
            conn.send(msg)
        except (OSError, ValueError):  # dead or closed: the reader reports it
            return
