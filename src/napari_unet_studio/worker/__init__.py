"""The process that owns torch: the GUI's client, the messages, the server loop.

``import napari_unet_studio.worker`` imports no torch: the client and the message types
are torch-free, the server (:mod:`.server`) runs only inside the worker process
(``python -m napari_unet_studio.worker``). See docs/worker.md.
"""

from __future__ import annotations

from .client import Job, WorkerClient
from .protocol import ModelRef, WorkerError

__all__ = ["Job", "ModelRef", "WorkerClient", "WorkerError"]
