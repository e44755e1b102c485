"""A job in the worker, as the GUI holds it: its events, Stop/Pause, labels and previews.

:class:`Job` objects are made by :class:`~napari_unet_studio.worker.client.WorkerClient`
(``train``, ``predict``, ``submit``...); the client's reader thread queues the worker's
events on them and :meth:`Job.poll` hands them over without blocking. The shared-memory
blocks of a job's images, labels and preview planes are released with its last event.
No torch.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .protocol import DONE, ERROR, ModelRef, region_to_wire
from .shm import SharedArray, pack

if TYPE_CHECKING:  # pragma: no cover - the client imports this module
    from .client import WorkerClient

__all__ = ["Job", "TERMINAL"]

TERMINAL = (DONE, ERROR)  # the event kinds that end a job


class Job:
    """One job in the worker; events arrive in the background, :meth:`poll` collects them."""

    def __init__(self, client: WorkerClient, job_id: int, kind: str) -> None:
        self.kind = kind
        self.id = job_id
        self._client = client
        self._events: collections.deque[tuple[str, Any]] = collections.deque()
        self._finished = False
        self._terminal = False  # a done/error event was queued (maybe not polled yet)
        self.best: ModelRef | None = None  # crash-safe copy of the best model (train)
        self._blocks: list[SharedArray] = []
        self._label_blocks: list[SharedArray] = []
        self._preview_blocks: list[SharedArray] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------- the GUI side
    def poll(self) -> list[tuple[str, Any]]:
        """Every event since the last call (never blocks)."""
        out = []
        while self._events:
            out.append(self._events.popleft())
        if any(kind in TERMINAL for kind, _ in out):
            self._finished = True
        return out

    @property
    def finished(self) -> bool:
        """True once ``poll`` returned the ``"done"`` or ``"error"`` event."""
        return self._finished

    def stop(self) -> None:
        """Train: end after the current step, keeping the best model. Predict: cancel."""
        self._control("stop")

    def pause(self) -> None:
        """Hold training between steps (train only)."""
        self._control("pause")

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        self._control("resume")

    def update_labels(self, pair_index: int, labels: np.ndarray,
                      region: tuple[slice, ...] | None = None) -> None:
        """The user painted: copy ``labels[region]`` into shared memory and tell the worker.

        ``labels`` is the full current labels array of pair ``pair_index``; only
        ``region`` (``None``: all of it) is copied.
        """
        if self._terminal or self.kind != "train":
            return
        with self._lock:
            if not 0 <= pair_index < len(self._label_blocks):
                raise IndexError(f"no training pair {pair_index}")
            block = self._label_blocks[pair_index]
            labels = np.asarray(labels)
            if tuple(labels.shape) != block.shape:
                raise ValueError(f"labels of shape {labels.shape} do not fit the training "
                                 f"pair's {block.shape}")
            wire = region_to_wire(region, block.shape)
            sel = tuple(slice(a, b) for a, b in wire) if wire is not None else ...
            block.array[sel] = labels[sel]
        self._control("labels", pair_index, wire)

    def set_preview_source(self, key: Any, plane: np.ndarray | None) -> None:
        """The 2D plane (channels last if any) the user looks at; ``None``: no previews."""
        if self._terminal or self.kind != "train":
            return
        owned: dict[str, SharedArray] = {}
        packed = None if plane is None else pack(np.asarray(plane), owned)
        with self._lock:
            self._preview_blocks.extend(owned.values())
            while len(self._preview_blocks) > 2:  # the worker may still be reading the last
                self._preview_blocks.pop(0).close()
        self._control("preview_source", key, packed)

    # ------------------------------------------------------------- the client side
    def _control(self, op: str, *args: Any) -> None:
        if not self._terminal:
            self._client._send((op, self.id, *args))

    def _push(self, kind: str, payload: Any) -> None:
        if self._terminal:
            return
        if kind in TERMINAL:
            self._terminal = True
        self._events.append((kind, payload))
        if self._terminal:
            self._release()

    def _release(self) -> None:
        with self._lock:
            for block in (*self._blocks, *self._label_blocks, *self._preview_blocks):
                block.close()
            self._blocks, self._label_blocks, self._preview_blocks = [], [], []
