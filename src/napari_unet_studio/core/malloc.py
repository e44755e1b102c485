"""glibc allocator settings for the processes that run torch (Linux; no torch import).

Two measured problems, one place that fixes them:

- With default settings glibc serves every allocation above the (dynamic) mmap
  threshold with a fresh ``mmap`` and unmaps it when freed, so the ~32 MiB activation
  buffers of a convolutional network are page-faulted back in on every training step
  (35-51 % of CPU time in conv training; ``mallopt(M_MMAP_MAX, 0)`` plus a high
  ``M_TRIM_THRESHOLD`` made training 1.6-1.8x faster).
- With mmap off, a thread other than the main one allocates from its own arena, a
  heap of at most 64 MiB that glibc shrinks and grows again, so the same page faults
  come back there: the same tiles predicted in a pool thread (the worker process's
  jobs, the block-wise runner, a dask worker's task) took 4-21 % more CPU than in the
  main thread (docs/benchmarks.md, "Big data and objects"). One arena
  (``M_ARENA_MAX = 1``) removes the difference.

glibc fixes the arena limit when a second thread first allocates, so ``mallopt`` in a
running process may come too late for it; processes we start get ``MALLOC_ARENA_MAX=1``
in their environment as well (:func:`child_environ`). Set
``NAPARI_UNET_STUDIO_NO_MALLOPT=1`` to opt out of all of this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["NO_MALLOPT_ENV", "tune_malloc", "child_environ"]

NO_MALLOPT_ENV = "NAPARI_UNET_STUDIO_NO_MALLOPT"
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def _opted_out() -> bool:
    return os.environ.get(NO_MALLOPT_ENV, "").strip() not in ("", "0")


def tune_malloc() -> bool:
    """Keep large freed buffers in the heap, in one arena (Linux with glibc only).

    Returns
    -------
    bool
        True if the mmap and trim settings were applied (the arena limit is best
        effort: see the module docstring).
    """
    if _opted_out() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no mallopt knobs)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    mallopt(_M_ARENA_MAX, 1)
    return ok_mmap and ok_trim


def child_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) for a process that will run torch.

    Adds ``MALLOC_ARENA_MAX=1`` unless the user set it or opted out; nothing else
    changes.
    """
    out = dict(os.environ if env is None else env)
    if not _opted_out():
        out.setdefault("MALLOC_ARENA_MAX", "1")
    return out
