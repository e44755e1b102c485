"""The worker process's life: crashes, closing, failed starts, scripts, a dying parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from worker_support import (
    final,
    pid_gone,
    shm_exists,
    tiny_config,
    tiny_model_config,
    tiny_pair,
    wait,
    wait_info,
)

from napari_unet_studio.worker import WorkerClient, WorkerError

POSIX = pytest.mark.skipif(os.name != "posix", reason="signals and /dev/shm are POSIX")


@POSIX
def test_killed_mid_training_reports_crash_keeps_best_and_restarts(fresh_client):
    from napari_unet_studio.core.checkpoint import load_model

    client = fresh_client
    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=100_000),
                       live=False)
    end = time.monotonic() + 60
    while job.best is None and time.monotonic() < end:  # the crash-safe copy exists
        job.poll()
        time.sleep(0.05)
    assert job.best is not None
    old = client.pid
    os.kill(old, signal.SIGKILL)
    kind, err = final(wait(job, timeout=15))
    assert kind == "error" and isinstance(err, WorkerError) and err.kind == "crashed"
    assert "SIGKILL" in err.message and "labels are safe" in err.message
    assert "Press Train" in err.message
    assert err.best is not None and load_model(err.best.path).record["steps"] >= 1
    assert pid_gone(old)
    assert not client.alive
    again = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=2), live=False)
    kind, ref = final(wait(again))
    assert kind == "done" and ref.record["steps"] == 2
    assert client.pid != old and client.restarts == 1
    assert os.path.exists(err.best.path)  # the session folder survived the restart


@POSIX
def test_shutdown_while_training_ends_everything(fresh_client):
    client = fresh_client
    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=100_000),
                       live=True, preview_interval=0.0)
    job.set_preview_source(0, img)
    wait(job, until=lambda ev: any(k == "progress" for k, _ in ev))
    pid, session = client.pid, client.session_dir
    blocks = [b.name for b in job._blocks + job._label_blocks]
    assert all(shm_exists(n) for n in blocks)
    started = time.monotonic()
    client.shutdown(timeout=2.0)
    took = time.monotonic() - started
    assert took < 3.0, took
    assert pid_gone(pid, timeout=0.5)
    assert not any(shm_exists(n) for n in blocks)
    assert not session.exists()
    kind, err = final(wait(job, timeout=5))
    assert kind == "error" and err.kind == "error" and "closed" in err.message
    client.shutdown()  # idempotent


@pytest.mark.parametrize("how", ["exits", "missing"])
def test_a_worker_that_cannot_start_gives_start_failed(how, monkeypatch):
    if how == "exits":
        cmd = f"{sys.executable} -c \"import sys; sys.exit('ModuleNotFoundError: torch')\""
        monkeypatch.setenv("NAPARI_UNET_STUDIO_WORKER_CMD", cmd)
        client = WorkerClient()
    else:
        client = WorkerClient(command=["/nonexistent/python", "-m", "x"])
    try:
        img, lab = tiny_pair()
        job = client.train([(img, lab)], None, tiny_config(steps=2))
        kind, err = final(wait(job, timeout=30))
        assert kind == "error" and err.kind == "start-failed", err
        assert "could not be started" in err.message and err.best is None
        if how == "exits":
            assert "ModuleNotFoundError: torch" in err.message
        assert not client.alive and client.info() is None
        job2 = client.load_model("x.pt")  # the next call tries again, and fails the same way
        assert final(wait(job2, timeout=30))[1].kind == "start-failed"
    finally:
        client.shutdown()


def test_a_worker_that_dies_before_hello_is_start_failed(tmp_path):
    fake = tmp_path / "fake_worker.py"  # opens the socket like the real one, then dies
    fake.write_text(textwrap.dedent("""
        import json, os, sys
        from multiprocessing.connection import Listener
        cfg = json.loads(sys.stdin.readline())
        path = os.path.join(cfg["session_dir"], "fake.sock")
        listener = Listener(path, "AF_UNIX", authkey=bytes.fromhex(cfg["authkey"]))
        print(json.dumps({"address": path}), flush=True)
        conn = listener.accept()
        sys.stderr.write("ImportError: libtorch_cpu.so: cannot open shared object file\\n")
        sys.exit(1)
    """))
    client = WorkerClient(command=[sys.executable, str(fake)])
    try:
        kind, err = final(wait(client.load_model("x.pt"), timeout=30))
        assert kind == "error" and err.kind == "start-failed"
        assert "libtorch_cpu.so" in err.message
    finally:
        client.shutdown()


SCRIPT = """
import numpy as np
from napari_unet_studio.worker import WorkerClient
from napari_unet_studio.core.config import TrainConfig
import time, os
print("script body ran", os.getpid(), flush=True)
client = WorkerClient(threads=1)
img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
lab = np.zeros((40, 40), np.uint8); lab[:5] = 1; lab[-5:] = 2
cfg = TrainConfig(steps=3, batch_size=2, patch_size=32, device="cpu").to_dict()
job = client.train([(img, lab)], None, cfg, live=False)
while not job.finished:
    for kind, payload in job.poll():
        if kind in ("done", "error"):
            print("result", kind, getattr(payload, "record", payload) and
                  (payload.record["steps"] if kind == "done" else payload.message), flush=True)
    time.sleep(0.05)
ref = payload
job = client.predict(ref, img)
while not job.finished:
    events = job.poll()
    time.sleep(0.05)
print("predicted", events[-1][0], events[-1][1]["labels"].shape, flush=True)
print("info torch", client.info()["torch"], type(client.info()["torch"]).__name__)
import sys
print("torch imported here:", "torch" in sys.modules, flush=True)
client.shutdown()
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_script_without_main_guard_runs_once(how, tmp_path):
    """A user's script without a guard, or code typed into a REPL / notebook (stdin)."""
    script = tmp_path / "no_guard.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, str(script)] if how == "file" else [sys.executable, "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         input=SCRIPT if how == "stdin" else None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("script body ran") == 1, out.stdout
    assert "result done 3" in out.stdout, out.stdout + out.stderr
    assert "predicted done (40, 40)" in out.stdout
    assert "info torch 2" in out.stdout and " str" in out.stdout
    assert "torch imported here: False" in out.stdout  # messages unpickle without torch


PARENT = """
import sys, threading, time
from napari_unet_studio.worker import WorkerClient
client = WorkerClient(threads=1)
if sys.argv[1] == "thread":  # no PDEATHSIG: the watchdog must notice
    t = threading.Thread(target=client.start); t.start(); t.join()
else:
    client.start()
while client.info() is None:
    time.sleep(0.05)
print(client.pid, client.session_dir, flush=True)
time.sleep(120)
"""


@POSIX
@pytest.mark.parametrize("where", ["main", "thread"])
def test_worker_exits_when_its_parent_is_killed(where, tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), where], stdout=subprocess.PIPE,
                              text=True)
    try:
        pid, session = parent.stdout.readline().split()
        worker = int(pid)
        assert os.path.isdir(session)
        parent.kill()
        parent.wait(10)
        assert pid_gone(worker, timeout=5.0)
        end = time.monotonic() + 5  # the worker removed the dead parent's session folder
        while os.path.exists(session) and time.monotonic() < end:
            time.sleep(0.05)
        assert not os.path.exists(session)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_info_arrives_without_a_job_then_the_worker_warms_up(monkeypatch):
    monkeypatch.setenv("NAPARI_UNET_STUDIO_WORKER_WARMUP", "1")
    client = WorkerClient(threads=1)
    try:
        client.start()
        client.start()  # idempotent
        assert client.alive
        info = wait_info(client)
        assert info["pid"] == client.pid
        end = time.monotonic() + 60
        while not client.info()["warm"] and time.monotonic() < end:
            time.sleep(0.05)
        assert client.info()["warm"]
        assert "Traceback" not in client.session_dir.joinpath("worker-1.log").read_text()
    finally:
        pid = client.pid
        client.shutdown()
        assert pid_gone(pid)
