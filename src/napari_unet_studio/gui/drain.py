"""The one helper that turns a worker ``Job`` into callbacks on the GUI thread.

A :class:`JobDrain` polls ``job.poll()`` (non-blocking) from a ``QTimer`` and hands
every ``(kind, payload)`` event to the callback registered for its kind. Kinds listed in
``latest_only`` (previews) are coalesced: of several waiting in one poll only the
newest is delivered, so a slow GUI never replays stale previews. When the job has
finished (after its ``"done"`` or ``"error"`` event) the timer stops and ``on_finished``
runs once. A failure of ``poll`` itself (the client lost its process in a way it did not
report) is delivered as an ``"error"`` event, so the GUI never waits forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from qtpy.QtCore import QObject, QTimer

__all__ = ["JobDrain", "PollFailure", "abandon"]

log = logging.getLogger("napari_unet_studio.gui")


class PollFailure:
    """Stands in for a ``WorkerError`` when ``job.poll()`` raised (a client bug)."""

    kind = "crashed"
    best = None

    def __init__(self, exc: BaseException) -> None:
        self.message = (
            "The connection to the U-Net Studio worker process was lost "
            f"({type(exc).__name__}). Your layers are untouched; press the button again "
            "to start a fresh worker."
        )
        self.detail = repr(exc)


class JobDrain(QObject):
    """Poll a job on a timer and dispatch its events.

    Parameters
    ----------
    job : Job
        Anything with ``poll() -> list[(kind, payload)]`` and ``finished``.
    handlers : dict
        ``kind -> callback(payload)``; kinds without a handler are ignored.
    on_finished : callable, optional
        Called once, after the last event was dispatched.
    interval_ms : int
        Polling period.
    latest_only : iterable of str
        Kinds of which only the newest event of each poll is delivered.
    parent : QObject, optional
        The panel the events update: when Qt deletes it, polling ends with it.
    on_bug : callable, optional
        ``on_bug(kind, exception)`` when a handler raised (a bug of ours): the drain
        goes on with the next event, and the user can be told.
    """

    def __init__(
        self,
        job: Any,
        handlers: dict[str, Callable[[Any], None]],
        on_finished: Callable[[], None] | None = None,
        *,
        interval_ms: int = 40,
        latest_only: Iterable[str] = ("preview",),
        parent: QObject | None = None,
        on_bug: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.job = job
        self._handlers = dict(handlers)
        self._on_finished = on_finished
        self._latest_only = frozenset(latest_only)
        self._on_bug = on_bug
        self.done = False
        self.events_seen = 0
        self.timer = QTimer(self)
        self.timer.setInterval(int(interval_ms))
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        """Poll once and dispatch (the timer calls this; tests may call it directly)."""
        if self.done:
            return
        try:
            events = list(self.job.poll())
        except Exception as exc:  # noqa: BLE001 - must reach the user, never hang
            log.exception("polling a worker job failed")
            events = [("error", PollFailure(exc))]
            self._dispatch(events)
            self._finish()
            return
        self._dispatch(events)
        finished = any(kind in ("done", "error") for kind, _ in events)
        if finished or bool(getattr(self.job, "finished", False)):
            self._finish()

    def _dispatch(self, events: list[tuple[str, Any]]) -> None:
        last = {kind: i for i, (kind, _) in enumerate(events) if kind in self._latest_only}
        for i, (kind, payload) in enumerate(events):
            if kind in last and last[kind] != i:
                continue
            self.events_seen += 1
            handler = self._handlers.get(kind)
            if handler is None:
                continue
            try:
                handler(payload)
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the drain
                log.exception("handling a %r event failed", kind)
                if self._on_bug is not None and kind != "progress":
                    self._on_bug(kind, exc)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.timer.stop()
        if self._on_finished is not None:
            self._on_finished()

    def cancel(self) -> None:
        """Stop polling without calling ``on_finished`` (the dock is closing)."""
        self.done = True
        try:
            self.timer.stop()
        except RuntimeError:  # Qt already deleted it with its parent
            pass


def abandon(job: Any, drain: JobDrain | None) -> bool:
    """Stop ``job`` (if any) and its drain when the dock closes; True if a job ran.

    The worker may already be gone, so a failing ``stop`` is ignored.
    """
    running = job is not None
    if running:
        try:
            job.stop()
        except Exception:  # noqa: BLE001 - the worker may be gone already
            pass
    if drain is not None:
        drain.cancel()
    return running
