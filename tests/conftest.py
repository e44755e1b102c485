"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny models on one torch thread, then restore the count.

    Tiny models gain nothing from threads, and idle OpenMP threads spinning on a busy
    2-core machine stall every step. The engine's own setting is used
    (``NAPARI_UNET_STUDIO_THREADS``), so training and prediction keep to it.
    """
    import torch

    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAPARI_UNET_STUDIO_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(before)
