"""Notifications in plain words, and the wording of failures.

Nothing here imports torch. The functions look up :mod:`napari.utils.notifications` at
call time, so tests can monkeypatch ``show_error`` / ``show_warning`` / ``show_info``
there. Failures of the worker process arrive as ``WorkerError`` objects whose
``message`` is already written for the user and is shown verbatim; the traceback in
``detail`` goes to the log only.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "Notifier",
    "UserProblem",
    "friendly_message",
    "notify_error",
    "notify_info",
    "notify_warning",
]

log = logging.getLogger("napari_unet_studio.gui")


class UserProblem(Exception):
    """A problem with the user's input, explained in plain words (shown verbatim)."""


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification."""
    from napari.utils import notifications

    notifications.show_error(message)


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification."""
    from napari.utils import notifications

    notifications.show_warning(message)


def notify_info(message: str) -> None:
    """Show ``message`` as a napari info notification."""
    from napari.utils import notifications

    notifications.show_info(message)


def friendly_message(exc: BaseException, doing: str) -> str:
    """Turn an exception raised in the napari process into a sentence for the user.

    Parameters
    ----------
    exc : BaseException
        What went wrong.
    doing : str
        What we were doing, e.g. ``"Training"``.

    Returns
    -------
    str
        The text of our own errors, else the exception type and first line after
        ``doing``.
    """
    from ..core.errors import UNetStudioError  # torch-free

    text = str(exc).strip()
    if isinstance(exc, UserProblem):
        return text
    if isinstance(exc, UNetStudioError):
        return f"{doing} failed: {text}"
    first = text.splitlines()[0] if text else ""
    return f"{doing} failed with an unexpected error ({type(exc).__name__}: {first})."


class Notifier:
    """What the controllers use to talk to the user (one object, easy to replace).

    Every method shows one napari notification; :meth:`worker_error` shows a
    ``WorkerError``'s message verbatim and logs its ``detail``.
    """

    def error(self, message: str) -> None:
        """An error notification."""
        notify_error(message)

    def warning(self, message: str) -> None:
        """A warning notification."""
        notify_warning(message)

    def info(self, message: str) -> None:
        """An information notification."""
        notify_info(message)

    def bug(self, kind: str, exc: BaseException) -> None:
        """A handler of ours failed on a worker event: say so, in plain words."""
        notify_error(
            f"U-Net Studio could not show a result of the training engine ({kind}: "
            f"{type(exc).__name__}: {exc}). Your layers are untouched; please report this."
        )

    def worker_error(self, error: Any, suffix: str = "") -> None:
        """Show a ``WorkerError`` (``kind``, ``message``, ``detail``) in plain words."""
        detail = getattr(error, "detail", "")
        if detail:
            log.warning("worker %s: %s", getattr(error, "kind", "error"), detail)
        message = str(getattr(error, "message", "") or error)
        notify_error(message + (f" {suffix}" if suffix else ""))
