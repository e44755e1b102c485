"""Fixtures of the worker tests: clients that always end their process."""

from __future__ import annotations

import pytest
from worker_support import pid_gone

from napari_unet_studio.worker import WorkerClient


@pytest.fixture(scope="session", autouse=True)
def _no_warm_up():
    """Workers in these tests skip the warm-up training (one test turns it back on)."""
    import os

    before = os.environ.get("NAPARI_UNET_STUDIO_WORKER_WARMUP")
    os.environ["NAPARI_UNET_STUDIO_WORKER_WARMUP"] = "0"
    yield
    if before is None:
        os.environ.pop("NAPARI_UNET_STUDIO_WORKER_WARMUP", None)
    else:
        os.environ["NAPARI_UNET_STUDIO_WORKER_WARMUP"] = before


def _end(client: WorkerClient) -> None:
    pid = client.pid
    client.shutdown()
    assert pid_gone(pid), f"worker {pid} still runs after shutdown"


@pytest.fixture(scope="module")
def client():
    """One warm worker shared by a module's tests (one torch thread, small models)."""
    c = WorkerClient(threads=1)
    c.start()
    try:
        yield c
    finally:
        _end(c)


@pytest.fixture
def fresh_client(monkeypatch):
    """A worker of its own (crash tests); saves the best model early."""
    monkeypatch.setenv("NAPARI_UNET_STUDIO_BEST_SAVE_FIRST", "0.3")
    monkeypatch.setenv("NAPARI_UNET_STUDIO_BEST_SAVE_EVERY", "0.5")
    c = WorkerClient(threads=1)
    c.start()
    try:
        yield c
    finally:
        _end(c)
