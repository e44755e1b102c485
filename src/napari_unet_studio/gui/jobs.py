"""The base of the dock's controllers that run one worker job at a time.

:class:`JobController` holds what they share: the collaborators the dock hands over, the
running ``job`` and the :class:`~napari_unet_studio.gui.drain.JobDrain` that follows it,
the current model (or why there is none), starting a job with a plain-language
notification when it cannot be sent, Cancel, the status line after a failed job, and
stopping the job when the dock closes. The train, predict, objects, Assistant and
upsampling controllers subclass it; the model-file controller follows several short jobs
at once and keeps its own list of drains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .drain import JobDrain, abandon
from .notify import Notifier, UserProblem, friendly_message

__all__ = ["JobController"]


class JobController:
    """One worker job at a time, followed by a :class:`JobDrain` on the panel.

    Parameters
    ----------
    client : WorkerClient
    panel : QWidget
        The panel the job's events update (it parents the drain).
    notifier : Notifier
    viewer : napari.Viewer, optional
    data : DataPanel, optional
    settings : SettingsPanel, optional
    slot : ModelSlot, optional
        The current model.
    """

    #: the panel's status line after the job failed (the worker's message is notified)
    failed_text = "The job did not finish; see the message."
    #: the status line after Cancel
    cancelling_text = "Cancelling..."

    def __init__(self, client: Any, panel: Any, notifier: Notifier, *, viewer: Any = None,
                 data: Any = None, settings: Any = None, slot: Any = None) -> None:
        self.viewer = viewer
        self.client = client
        self.data = data
        self.settings = settings
        self.panel = panel
        self.slot = slot
        self.notifier = notifier
        self.job: Any = None
        self.drain: JobDrain | None = None

    @property
    def running(self) -> bool:
        """True from the start of the job until its last event was handled."""
        return self.job is not None

    def _current_model(self) -> Any:
        """The current model's ``ModelRef``; ``None`` after telling the user there is none."""
        ref = self.slot.ref
        if ref is None:
            self.notifier.error("There is no model yet. Train one (or load a saved model) first.")
        return ref

    def _submit(self, send: Callable[[], Any], doing: str, starting: str | None = None) -> Any:
        """``send()`` (it prepares and sends a job); ``None`` after telling the user why not.

        A :class:`UserProblem` or ``ValueError`` (the user's input or settings) is told
        as ``doing`` failing, anything else (the client could not send the job) as
        ``starting`` failing (default: ``doing``).
        """
        try:
            return send()
        except (UserProblem, ValueError) as exc:
            self.notifier.error(friendly_message(exc, doing))
        except Exception as exc:  # noqa: BLE001 - the client could not even send the job
            self.notifier.error(friendly_message(exc, starting or doing))
        return None

    def _follow(self, job: Any, handlers: dict[str, Callable[[Any], None]],
                latest_only: tuple[str, ...] = ("preview",)) -> None:
        """Make ``job`` the running job and dispatch its events to ``handlers``."""
        self.job = job
        self.drain = JobDrain(job, handlers, on_finished=self._finished,
                              latest_only=latest_only, parent=self.panel,
                              on_bug=self.notifier.bug)

    def _finished(self) -> None:
        """The job's last event was handled (subclasses update the panel after this)."""
        self.job, self.drain = None, None

    def cancel(self) -> None:
        """Ask the running job to stop (Cancel button)."""
        if self.job is not None:
            self.job.stop()
            self.panel.status.setText(self.cancelling_text)

    def _on_error(self, error: Any) -> None:
        self.panel.status.setText(self.failed_text)
        self.notifier.worker_error(error)

    def shutdown(self) -> bool:
        """Stop the job (closing the dock); True if one was running."""
        running = abandon(self.job, self.drain)
        self.job, self.drain = None, None
        return running
