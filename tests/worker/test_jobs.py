"""Jobs in a real worker process: training, previews, labels updates, prediction, files."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest
from worker_support import (
    final,
    shm_exists,
    tiny_config,
    tiny_model_config,
    tiny_pair,
    wait,
    wait_info,
)

from napari_unet_studio.worker import ModelRef, WorkerError


def test_import_loads_no_torch():
    code = ("import sys, napari_unet_studio.worker as w; w.WorkerClient; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_info(client):
    info = wait_info(client)
    names = [name for name, _ in info["decoders"]]
    assert "bilinear" in names and all(isinstance(d, str) for _, d in info["decoders"])
    assert ("cpu" in [value for value, _ in info["devices"]])
    assert info["torch"] and isinstance(info["pretrained"], bool)
    assert info["pid"] == client.pid


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal")
def test_ctrl_c_is_for_the_parent(client):
    import os
    import signal

    wait_info(client)
    os.kill(client.pid, signal.SIGINT)  # what the terminal sends the process group
    time.sleep(0.5)
    assert client.alive


def test_train_progress_and_model(client):
    from napari_unet_studio.core.checkpoint import load_model

    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=5),
                       class_names=["background", "square"], live=False)
    names = [b.name for b in job._blocks + job._label_blocks]
    events = wait(job)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and job.finished
    progress = [p for k, p in events if k == "progress"]
    assert [p["step"] for p in progress if not p["done"]] == [1, 2, 3, 4, 5]
    for key in ("step", "total_steps", "loss", "elapsed", "eta", "device", "paused", "lr",
                "done", "message", "threads"):
        assert key in progress[0]
    assert progress[-1]["done"] and progress[0]["total_steps"] == 5
    ref = events[-1][1]
    assert isinstance(ref, ModelRef) and ref.record["steps"] == 5
    assert ref.class_names == ["background", "square"]
    assert "5 steps" in ref.describe()
    model = load_model(ref.path)
    assert model.config.to_dict() == ref.config
    assert not any(shm_exists(n) for n in names), "shared memory left after the job"


def test_previews_of_the_preview_source(client):
    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=12), live=True,
                       preview_interval=0.0)
    job.set_preview_source(("plane", 0), img[:40, :44])
    events = wait(job)
    previews = [p for k, p in events if k == "preview"]
    assert previews, [k for k, _ in events]
    key, plane = previews[-1]
    assert key == ("plane", 0)
    assert plane.shape == (40, 44) and plane.dtype == np.uint8
    assert set(np.unique(plane)) <= {1, 2}
    assert final(events)[0] == "done"


def test_update_labels_sends_only_the_region(client):
    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(num_classes=3),
                       tiny_config(steps=100_000), live=False)
    wait(job, until=lambda ev: any(k == "progress" for k, _ in ev))
    painted = lab.copy()
    painted[36:44, 36:44] = 3  # a new class, inside the region
    painted[0:2, 40:48] = 3  # outside the region: must not reach the worker
    job.update_labels(0, painted, (slice(34, 46), slice(34, 46)))
    events = wait(job, until=lambda ev: any(
        k == "progress" and "updated labels" in p["message"] for k, p in ev))
    job.stop()
    events += wait(job)
    kind, ref = final(events)
    assert kind == "done", ref
    assert ref.record["labeled_pixels"][:3] == [36, 64, 64]  # 64 of class 3, not 80


def test_stop_keeps_the_best_model(client):
    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=100_000),
                       live=False)
    wait(job, until=lambda ev: sum(k == "progress" for k, _ in ev) >= 3)
    job.stop()
    kind, ref = final(wait(job, timeout=30))
    assert kind == "done" and 3 <= ref.record["steps"] < 100_000


def test_pause_and_resume(client):
    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=100_000),
                       live=False)
    wait(job, until=lambda ev: any(k == "progress" for k, _ in ev))
    job.pause()
    events = wait(job, until=lambda ev: any(k == "progress" and p["paused"] for k, p in ev))
    time.sleep(0.3)  # a step that was running when Pause arrived may still report
    held = [p["step"] for k, p in events + job.poll() if k == "progress"][-1]
    time.sleep(1.0)
    assert all(p["step"] <= held for k, p in job.poll() if k == "progress")
    job.resume()
    wait(job, until=lambda ev: any(k == "progress" and p["step"] > held for k, p in ev))
    job.stop()
    assert final(wait(job))[0] == "done"


def test_predict_equals_core_predict(client):
    from napari_unet_studio.core.checkpoint import load_model
    from napari_unet_studio.core.infer import predict_image

    img, lab = tiny_pair()
    # no filter stem: the worker's prediction against the engine's is under test, not the
    # model (the stem's 5-scale filters on 560 x 520 pixels, twice, cost seconds)
    ref = final(wait(client.train([(img, lab)], tiny_model_config(stem="none"),
                                  tiny_config(steps=4), live=False)))[1]
    big = np.tile(img, (12, 12))[:560, :520]  # labels 291 kB, probabilities 2.3 MB: shm
    job = client.predict(ref, big, probabilities=True, device="cpu",
                         tile={"tile": 128, "overlap": 0.25, "batch_size": 4, "tta": 1})
    events = wait(job)
    kind, out = final(events)
    assert kind == "done", out
    assert any(k == "progress" and p["total_tiles"] > 1 for k, p in events)
    expected = predict_image(load_model(ref.path), big, probabilities=True, device="cpu",
                             tile=__import__("napari_unet_studio.core.config", fromlist=["x"])
                             .TileConfig(tile=128))
    np.testing.assert_array_equal(out["labels"], expected.labels)
    np.testing.assert_allclose(out["probabilities"], expected.probabilities, atol=1e-5)
    assert out["device"] == "cpu" and out["cancelled"] is False


def test_predict_cancel(client):
    img, lab = tiny_pair()
    ref = final(wait(client.train([(img, lab)], tiny_model_config(), tiny_config(steps=2),
                                  live=False)))[1]
    big = np.tile(img, (40, 40))
    job = client.predict(ref, big, tile={"tile": 64, "overlap": 0.25, "batch_size": 1,
                                         "tta": 1})
    wait(job, until=lambda ev: any(k == "progress" for k, _ in ev))
    job.stop()
    kind, out = final(wait(job))
    assert kind == "done" and out["cancelled"] is True


def test_load_and_save(client, tmp_path, monkeypatch):
    img, lab = tiny_pair()
    ref = final(wait(client.train([(img, lab)], tiny_model_config(), tiny_config(steps=2),
                                  live=False)))[1]
    target = tmp_path / "mine.pt"
    kind, path = final(wait(client.save_model(ref, str(target))))
    assert kind == "done" and path == str(target) and target.exists()
    kind, loaded = final(wait(client.load_model(str(target))))
    assert kind == "done" and loaded.config == ref.config
    assert loaded.record["steps"] == 2 and loaded.path == str(target)
    # class names given in the dock after training are written into the saved file
    named = dataclasses.replace(ref, class_names=["cytoplasm", "nucleus"])
    assert final(wait(client.save_model(named, str(tmp_path / "named.pt"))))[0] == "done"
    kind, reloaded = final(wait(client.load_model(str(tmp_path / "named.pt"))))
    assert kind == "done" and reloaded.class_names == ["cytoplasm", "nucleus"]
    monkeypatch.chdir(tmp_path)  # relative paths are the user's, not the worker's
    kind, rel = final(wait(client.save_model(ref, "relative.pt")))
    assert kind == "done" and rel == str(tmp_path / "relative.pt")
    assert (tmp_path / "relative.pt").exists()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    kind, err = final(wait(client.load_model(str(bad))))
    assert kind == "error" and isinstance(err, WorkerError) and err.kind == "error"
    assert "not a U-Net Studio model" in err.message


def test_bad_input_is_a_plain_error(client):
    img, _ = tiny_pair()
    job = client.train([(img, np.zeros(img.shape, np.uint8))], None, tiny_config(steps=2))
    kind, err = final(wait(job))
    assert kind == "error" and err.kind == "error" and err.best is None
    assert err.message.startswith("Training failed:") and "Traceback" not in err.message
    assert "Traceback" in err.detail
    assert client.alive  # a plain error does not end the worker


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/shm is Linux")
def test_big_previews_come_through_shared_memory_and_are_released(client):
    import os

    before = set(os.listdir("/dev/shm"))
    img, lab = tiny_pair()
    # no filter stem: its 5-scale filters on every 1152 x 1152 preview cost seconds, and
    # the transport of big planes is under test here, not the model
    job = client.train([(img, lab)], tiny_model_config(stem="none"), tiny_config(steps=3),
                       preview_interval=0.0)
    plane = np.tile(img, (24, 24))  # 1152 x 1152: the plane (5 MB) and previews (1.3 MB)
    job.set_preview_source(0, plane)
    assert job._preview_blocks  # the plane went into a block, not a pickle
    events = wait(job, timeout=120)
    previews = [p for k, p in events if k == "preview"]
    assert previews and previews[-1][1].shape == plane.shape
    end = time.monotonic() + 5
    while set(os.listdir("/dev/shm")) - before and time.monotonic() < end:
        time.sleep(0.05)  # the release messages reach the worker
    assert not set(os.listdir("/dev/shm")) - before


def test_crash_message_says_whether_a_best_model_was_kept():
    from napari_unet_studio.worker.protocol import crash_message

    kept, none = crash_message(-9, best_kept=True), crash_message(-9, best_kept=False)
    assert "best model so far is kept" in kept and "SIGKILL" in kept
    assert "best model" not in none and "labels are safe" in none
