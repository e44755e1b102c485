"""Entry point of the worker process: ``python -m napari_unet_studio.worker``.

The parent writes one JSON line on stdin (authkey, its pid, priority, threads, session
folder). The worker lowers its priority, arranges to die with its parent, opens a local
socket, prints its address on stdout (one JSON line) and then serves the connection.
Nothing here imports the user's ``__main__``: this is a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time


def _orphaned(parent_pid: int, session_dir: str) -> None:
    """The napari process is gone: remove its session folder (nobody can use it) and exit.

    Its shared-memory blocks are removed by its resource tracker.
    """
    from .server import parent_died

    if parent_died(parent_pid):
        shutil.rmtree(session_dir, ignore_errors=True)
    os._exit(3)


def _die_with_parent(parent_pid: int, use_pdeathsig: bool, session_dir: str) -> None:
    """Exit when the parent goes away (Linux signal + a watchdog thread everywhere)."""
    if use_pdeathsig and sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            # SIGTERM, not SIGKILL: the handler removes the session folder first; a
            # SIGTERM from anyone else while the parent lives only ends the worker
            signal.signal(signal.SIGTERM, lambda *_: _orphaned(parent_pid, session_dir))
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError, ValueError):
            pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        _orphaned(parent_pid, session_dir)

    def watch() -> None:
        while True:
            time.sleep(0.25)
            if os.getppid() != parent_pid:
                _orphaned(parent_pid, session_dir)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def _lower_priority(nice: int) -> None:
    if nice <= 0:
        return
    try:
        os.nice(nice)
    except (AttributeError, OSError):  # Windows: no os.nice
        try:
            import psutil

            psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - priority is a nicety
            pass


def main() -> int:
    """Start serving; returns the exit code (normally the process ends in ``os._exit``)."""
    line = sys.stdin.readline()
    if not line:
        print("napari-unet-studio worker: no start-up settings on stdin", file=sys.stderr)
        return 2
    cfg = json.loads(line)
    try:  # Ctrl-C in the terminal or an interrupted Jupyter cell is meant for the parent
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError, AttributeError):
        pass
    _lower_priority(int(cfg.get("nice") or 0))
    _die_with_parent(int(cfg["parent_pid"]), bool(cfg.get("pdeathsig")), cfg["session_dir"])
    from multiprocessing.connection import Listener

    authkey = bytes.fromhex(cfg["authkey"])
    if os.name == "nt":
        listener = Listener(("127.0.0.1", 0), "AF_INET", authkey=authkey)
    else:
        path = os.path.join(cfg["session_dir"], f"w{os.getpid()}.sock")
        listener = Listener(path, "AF_UNIX", authkey=authkey)
    address = listener.address
    sys.stdout.write(json.dumps({"address": address, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    try:  # from now on stray prints go to the log, never into a pipe nobody reads
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except OSError:
        pass
    conn = listener.accept()
    listener.close()
    from .server import Server

    Server(conn, cfg["session_dir"], cfg.get("threads"), cfg.get("paint_threads")).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
