"""The Assistant's jobs in a real worker: uncertainty with the previews, the decoder
comparison (rows, predictions, best, cancel) and the upsampling gallery."""

from __future__ import annotations

import os

import numpy as np
from worker_support import final, tiny_config, tiny_model_config, tiny_pair, wait

from napari_unet_studio.core.compare import undecided
from napari_unet_studio.worker import ModelRef


def _two_stroke_pair():
    img, lab = tiny_pair()
    lab[40:46, 2:8] = 1   # a second background stroke: something to hold out
    lab[14:18, 14:18] = 2  # a second square stroke (inside the square)
    return img, lab


def test_previews_come_with_their_uncertainty(client):
    img, lab = tiny_pair()
    job = client.train([(img, lab)], tiny_model_config(), tiny_config(steps=10), live=True,
                       preview_interval=0.0)
    job.set_preview_source(None, img)
    events = wait(job)
    kinds = [k for k, _ in events]
    maps = [p for k, p in events if k == "uncertainty"]
    assert maps, kinds
    for k, payload in zip(kinds, [p for _, p in events]):
        if k == "uncertainty":
            key, unc = payload
            assert key is None and unc.shape == img.shape and unc.dtype == np.uint8
    # every preview is followed by its map
    assert kinds.count("uncertainty") == kinds.count("preview")
    assert final(events)[0] == "done"


def test_compare_two_decoders(client):
    img, lab = _two_stroke_pair()
    spec = {"pairs": [["image0", "labels0"]], "decoders": ["nearest", "bilinear"],
            "model_config": tiny_model_config(), "train_config": tiny_config(steps=4),
            "folds": 2, "seed": 0, "class_names": ["background", "square"],
            "plane_key": None}
    job = client.submit("compare", spec, {"image0": img, "labels0": lab, "plane": img})
    events = wait(job, timeout=120)
    kind, result = final(events)
    assert kind == "done", result
    rows = [p for k, p in events if k == "row"]
    assert [r["decoder"] for r in rows] == ["nearest", "bilinear"]
    for row in rows:
        assert 0 <= row["heldout"] <= 1 and row["heldout_pixels"] > 0
        assert row["parameters"] > 0 and row["step_seconds"] > 0
        ref = row["model"]
        assert isinstance(ref, ModelRef) and os.path.exists(ref.path)
        assert ref.config["decoder"] == row["decoder"] and ref.record["steps"] == 4
    previews = [p for k, p in events if k == "preview"]
    assert [key for key, _ in previews] == [("compare", "nearest", None),
                                            ("compare", "bilinear", None)]
    assert all(p.shape == img.shape for _, p in previews)
    assert result["best"] in ("nearest", "bilinear") and not result["cancelled"]
    assert [r["decoder"] for r in result["rows"]] == ["nearest", "bilinear"]
    assert result["undecided"] == undecided(result["rows"])


def test_compare_cancel_keeps_finished_rows(client):
    img, lab = _two_stroke_pair()
    spec = {"pairs": [["image0", "labels0"]], "decoders": ["nearest", "bilinear"],
            "model_config": tiny_model_config(), "train_config": tiny_config(steps=100000),
            "folds": 2, "seed": 0}
    job = client.submit("compare", spec, {"image0": img, "labels0": lab})
    wait(job, until=lambda ev: any(k == "progress" for k, _ in ev))
    job.stop()
    events = wait(job, timeout=60)
    kind, result = final(events)
    assert kind == "done" and result["cancelled"] and result["rows"] == []
    assert result["best"] is None


def test_compare_needs_two_strokes(client):
    img, lab = tiny_pair()  # one stroke per class: nothing can be held out
    spec = {"pairs": [["image0", "labels0"]], "decoders": ["nearest"],
            "model_config": tiny_model_config(), "train_config": tiny_config(steps=2)}
    job = client.submit("compare", spec, {"image0": img, "labels0": lab})
    kind, error = final(wait(job))
    assert kind == "error" and "two separate strokes" in error.message


def test_upsampling_gallery(client):
    img, _ = tiny_pair()
    job = client.submit("upsample", {"factor": 2, "model": None}, {"crop": img[:32, :32]})
    kind, result = final(wait(job))
    assert kind == "done", result
    names = [p["name"] for p in result["panels"]]
    assert names[:2] == ["input", "downsampled"]
    assert set(names[2:]) == {"nearest", "bilinear", "unpool", "transposed", "pixelshuffle"}
    for p in result["panels"]:
        assert p["image"].shape == (32, 32) and p["about"]
    by = {p["name"]: p["image"] for p in result["panels"]}
    # unpooling puts each maximum back where it was and zeros elsewhere
    assert np.count_nonzero(by["unpool"]) <= 32 * 32 // 4
    nz = by["unpool"] != 0
    assert np.allclose(by["unpool"][nz], by["input"][nz])
    # nearest copies each pooled value into its 2 x 2 block
    assert np.allclose(by["nearest"], by["downsampled"])
