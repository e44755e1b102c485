"""Arrays in shared memory, passed between processes by name (no pickling of data).

The process that creates a block owns it and unlinks it; the other one only attaches.
Python < 3.13 registers *attached* blocks with the attaching process's resource tracker,
which would unlink (and warn about) the owner's block when that process exits; attaching
here skips that registration. Blocks created by the napari process are registered with
its resource tracker, so they disappear even if napari itself is killed.
"""

from __future__ import annotations

import sys
import threading
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

__all__ = ["SharedArray", "attach", "pack", "unpack", "INLINE_BYTES"]

INLINE_BYTES = 1 << 20  # arrays below 1 MiB travel inline (pickled): cheaper than a block
_attach_lock = threading.Lock()


class SharedArray:
    """A numpy array backed by a shared-memory block this process created.

    Parameters
    ----------
    array : array-like
        Copied once into the new block.
    """

    def __init__(self, array: Any) -> None:
        arr = np.ascontiguousarray(np.asarray(array))
        self.shape = tuple(int(s) for s in arr.shape)
        self.dtype = arr.dtype.str
        with _attach_lock:
            self._shm = shared_memory.SharedMemory(create=True, size=max(1, arr.nbytes))
        self.array = np.ndarray(self.shape, dtype=arr.dtype, buffer=self._shm.buf)
        self.array[...] = arr
        self.name = self._shm.name
        self._closed = False

    @property
    def desc(self) -> dict[str, Any]:
        """What the other process needs to attach: name, shape, dtype."""
        return {"shm": self.name, "shape": self.shape, "dtype": self.dtype}

    def close(self) -> None:
        """Unmap and unlink (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.array = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:  # a view is still alive somewhere: unlinking is what matters
            pass
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass


def attach(desc: dict[str, Any]) -> tuple[shared_memory.SharedMemory, np.ndarray]:
    """Map a block another process created; returns ``(block, array view)``.

    Raises
    ------
    FileNotFoundError
        If the block no longer exists.
    """
    if sys.version_info >= (3, 13):
        shm = shared_memory.SharedMemory(desc["shm"], track=False)  # type: ignore[call-arg]
    else:
        with _attach_lock:
            original = resource_tracker.register
            resource_tracker.register = lambda *a, **k: None  # type: ignore[assignment]
            try:
                shm = shared_memory.SharedMemory(desc["shm"])
            finally:
                resource_tracker.register = original  # type: ignore[assignment]
    arr = np.ndarray(tuple(desc["shape"]), dtype=np.dtype(desc["dtype"]), buffer=shm.buf)
    return shm, arr


def detach(shm: shared_memory.SharedMemory) -> None:
    """Unmap an attached block, ignoring views that are still alive."""
    try:
        shm.close()
    except BufferError:
        pass


def pack(array: Any, owned: dict[str, SharedArray] | None = None,
         inline_bytes: int = INLINE_BYTES) -> Any:
    """An array for a message: inline when small, else a new block kept in ``owned``.

    ``None`` stays ``None``. The receiver calls :func:`unpack` and then asks the owner
    to release the block (``("release", name)``).
    """
    if array is None:
        return None
    arr = np.asarray(array)
    if owned is None or arr.nbytes < inline_bytes:
        return {"inline": arr}
    block = SharedArray(arr)
    owned[block.name] = block
    return block.desc


def unpack(packed: Any) -> tuple[np.ndarray | None, str | None]:
    """``(array copy, block name to release or None)`` for a :func:`pack` result."""
    if packed is None:
        return None, None
    if "inline" in packed:
        return packed["inline"], None
    shm, view = attach(packed)
    try:
        arr = np.array(view, copy=True)
    finally:
        del view
        detach(shm)
    return arr, packed["shm"]
