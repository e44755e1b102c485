""""See what each upsampling does": a crop of the user's image, downsampled, upsampled
by every decoder in the worker (``upsample`` job), shown side by side in the Assistant
panel with each decoder's one-line explanation and a link to docs/decoders.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .jobs import JobController
from .notify import Notifier

__all__ = ["UpsamplingController"]


class UpsamplingController(JobController):
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

    failed_text = "The upsampling could not be shown; see the message."

    def __init__(self, client: Any, panel: Any, slot: Any,
                 crop: Callable[[int], np.ndarray], notifier: Notifier) -> None:
        super().__init__(client, panel, notifier, slot=slot)
        self.crop = crop
        self.panels: list[dict] = []

    def show(self) -> None:
        """Send the crop to the worker (the Show upsampling button)."""
        if self.running:
            return
        job = self._submit(self._send_job, "Showing the upsampling")
        if job is None:
            return
        self.panel.show_button.setEnabled(False)
        self.panel.status.setText("Upsampling the crop with every decoder...")
        self._follow(job, {"done": self._on_done, "error": self._on_error})

    def _send_job(self) -> Any:
        crop = np.asarray(self.crop(int(self.panel.crop_size.currentData())), np.float32)
        spec = {"factor": int(self.panel.factor.currentData()), "model": self.slot.ref}
        return self.client.submit("upsample", spec, {"crop": crop})

    def _on_done(self, result: dict) -> None:
        self.panels = list(result.get("panels") or [])
        self.panel.show_gallery(self.panels)
        self.panel.status.setText(
            "Each picture is stretched to its own range. Learned kernels are averaged over "
            "the network's channels: a one-channel picture of what the layer does.")

    def _finished(self) -> None:
        super()._finished()
        self.panel.show_button.setEnabled(True)
