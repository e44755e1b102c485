""""See what each upsampling does": a crop of the user's image, downsampled, upsampled
by every decoder in the worker (``upsample`` job), shown side by side in the Assistant
panel with each decoder's one-line explanation and a link to docs/decoders.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .drain import JobDrain, abandon
from .notify import Notifier, UserProblem, friendly_message

__all__ = ["UpsamplingController"]


class UpsamplingController:
    """Runs the ``upsample`` job and fills the panel's gallery.

    Parameters
    ----------
    client : WorkerClient
    panel : AssistantPanel
    slot : ModelSlot
        Its model's learned kernels are shown where its decoder has them.
    crop : callable
        ``crop(size) -> (Y, X[, C]) array`` around the view centre.
    notifier : Notifier
    """

    def __init__(self, client: Any, panel: Any, slot: Any,
                 crop: Callable[[int], np.ndarray], notifier: Notifier) -> None:
        self.client = client
        self.panel = panel
        self.slot = slot
        self.crop = crop
        self.notifier = notifier
        self.job: Any = None
        self.drain: JobDrain | None = None
        self.panels: list[dict] = []

    @property
    def running(self) -> bool:
        return self.job is not None

    def show(self) -> None:
        """Send the crop to the worker (the Show upsampling button)."""
        if self.running:
            return
        try:
            crop = np.asarray(self.crop(int(self.panel.crop_size.currentData())), np.float32)
            spec = {"factor": int(self.panel.factor.currentData()), "model": self.slot.ref}
            job = self.client.submit("upsample", spec, {"crop": crop})
        except (UserProblem, ValueError) as exc:
            self.notifier.error(friendly_message(exc, "Showing the upsampling"))
            return
        except Exception as exc:  # noqa: BLE001 - the client could not send it
            self.notifier.error(friendly_message(exc, "Showing the upsampling"))
            return
        self.job = job
        self.panel.show_button.setEnabled(False)
        self.panel.status.setText("Upsampling the crop with every decoder...")
        self.drain = JobDrain(job, {"done": self._on_done, "error": self._on_error},
                              on_finished=self._finished, parent=self.panel,
                              on_bug=self.notifier.bug)

    def _on_done(self, result: dict) -> None:
        self.panels = list(result.get("panels") or [])
        self.panel.show_gallery(self.panels)
        self.panel.status.setText(
            "Each picture is stretched to its own range. Learned kernels are averaged over "
            "the network's channels: a one-channel picture of what the layer does.")

    def _on_error(self, error: Any) -> None:
        self.panel.status.setText("The upsampling could not be shown; see the message.")
        self.notifier.worker_error(error)

    def _finished(self) -> None:
        self.job, self.drain = None, None
        self.panel.show_button.setEnabled(True)

    def shutdown(self) -> bool:
        running = abandon(self.job, self.drain)
        self.job = self.drain = None
        return running
