"""Fixtures of the reliability tests: recorded notifications, a docked widget, model files."""

from __future__ import annotations

import gc
import pickle
import zipfile

import numpy as np
import pytest
from rel_helpers import Evil, EvilSystem, tiny_trained_model, tiny_widget_settings
from widget_support import Notes, docked_studio, record_notifications, shut_down

# Workers started here skip the warm-up training (a default-size run of two steps, about
# 5 s of CPU that a job waits for): no test here is about it (tests/worker/test_lifecycle
# checks it, tests/gui/test_worker_gui trains on a warming worker).
NO_WARM_UP = ("NAPARI_UNET_STUDIO_WORKER_WARMUP", "0")


@pytest.fixture(autouse=True)
def reliability_one_thread(monkeypatch):
    """One torch thread: on a busy 2-core machine spinning OpenMP threads make tiny
    convolutions 20x slower (200 slices of 16x16: 18 s instead of 0.8 s). Restored after.
    Workers started by a test skip the warm-up (:data:`NO_WARM_UP`). Set here too, not
    only through the engine's variable: a Trainer fits the filter stem's per-pixel
    branch when it is made, before ``run`` applies the thread count."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("NAPARI_UNET_STUDIO_THREADS", "1")
    monkeypatch.setenv(*NO_WARM_UP)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def notes(monkeypatch) -> Notes:
    """Record napari notifications (the widget and the reader call ``show_*`` at call time)."""
    return record_notifications(monkeypatch)


@pytest.fixture
def studio(make_napari_viewer, qtbot, notes):
    """``(viewer, widget)``: the dock on the real worker process, tiny settings; the worker
    is ended after the test."""
    viewer, widget = docked_studio(make_napari_viewer, tiny_widget_settings)
    yield viewer, widget
    shut_down(qtbot, widget)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """A good model file and every kind of bad one, keyed by kind; plus the marker path."""
    import torch

    from napari_unet_studio.core.checkpoint import FORMAT_VERSION

    d = tmp_path_factory.mktemp("models")
    files = {}
    good = d / "good.pt"
    tiny_trained_model(1, 2).save(good)
    files["good"] = good
    rgb = d / "rgb3.pt"
    tiny_trained_model(3, 3).save(rgb)
    files["rgb_3_classes"] = rgb
    raw = good.read_bytes()
    (d / "empty.pt").write_bytes(b"")
    files["empty"] = d / "empty.pt"
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    files["truncated"] = d / "truncated.pt"
    (d / "truncated_tail.pt").write_bytes(raw[:-30])
    files["truncated_tail"] = d / "truncated_tail.pt"
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    files["random_bytes"] = d / "random.pt"
    (d / "random_zip_header.pt").write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(999))
    files["random_zip_header"] = d / "random_zip_header.pt"
    foreign = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(foreign.state_dict(), d / "foreign_state_dict.pt")
    files["foreign_state_dict"] = d / "foreign_state_dict.pt"
    torch.save(torch.zeros(3, 3), d / "tensor.pt")
    files["foreign_tensor"] = d / "tensor.pt"
    # our marker, but weights of another architecture (a state dict that does not fit)
    bad = tiny_trained_model(1, 2).to_dict()
    bad["state_dict"] = foreign.state_dict()
    torch.save(bad, d / "wrong_weights.pt")
    files["wrong_weights"] = d / "wrong_weights.pt"
    newer = tiny_trained_model(1, 2).to_dict()
    newer["format_version"] = FORMAT_VERSION + 1
    torch.save(newer, d / "newer.pt")
    files["newer_format"] = d / "newer.pt"
    unknown = tiny_trained_model(1, 2).to_dict()
    unknown["config"]["colour"] = "blue"
    torch.save(unknown, d / "unknown_setting.pt")
    files["unknown_setting"] = d / "unknown_setting.pt"
    tampered = tiny_trained_model(1, 2).to_dict()
    tampered["normalization"] = {"method": "percentile", "low": 150.0, "high": 99.8}
    torch.save(tampered, d / "bad_normalisation.pt")
    files["bad_normalisation"] = d / "bad_normalisation.pt"
    files["not_zip_text"] = d / "notes.pt"
    files["not_zip_text"].write_text("these are my notes, not a model\n")
    files["folder"] = d / "folder.pt"
    files["folder"].mkdir()
    files["missing"] = d / "missing.pt"
    return files


@pytest.fixture
def evil_files(tmp_path):
    """Files whose unpickling would create ``marker``: ``(marker, {kind: path})``."""
    import torch

    from napari_unet_studio.core.checkpoint import FORMAT

    marker = tmp_path / "PWNED"
    files = {}
    p = tmp_path / "evil_pickle.pt"
    p.write_bytes(pickle.dumps(Evil(str(marker))))
    files["plain_pickle_exec"] = p
    p = tmp_path / "evil_system.pt"
    p.write_bytes(pickle.dumps({"format": FORMAT, "x": EvilSystem(str(marker))}))
    files["plain_pickle_system"] = p
    # zip-format torch files that carry our format marker, so the napari reader claims them
    p = tmp_path / "evil_torch_zip.pt"
    torch.save({"format": FORMAT, "format_version": 1, "payload": Evil(str(marker))}, p)
    files["torch_zip_exec"] = p
    p = tmp_path / "evil_torch_zip_system.pt"
    state = tiny_trained_model(1, 2).to_dict()
    state["record"] = {"note": EvilSystem(str(marker))}
    torch.save(state, p)
    files["torch_zip_inside_a_real_model"] = p
    p = tmp_path / "evil_legacy.pt"
    torch.save({"format": FORMAT, "x": Evil(str(marker))}, p,
               _use_new_zipfile_serialization=False)
    files["torch_legacy_format"] = p
    # a real model archive with its data.pkl swapped for a malicious pickle
    good = tmp_path / "good.pt"
    tiny_trained_model(1, 2).save(good)
    p = tmp_path / "evil_swapped.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(p, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = pickle.dumps({"format": FORMAT, "x": Evil(str(marker))}, protocol=2)
            dst.writestr(info, data)
    files["zip_with_swapped_data_pkl"] = p
    assert not marker.exists()
    return marker, files


@pytest.fixture(scope="module")
def shared_studio(qapp):
    """One viewer + docked widget for a whole module (a long session of bad inputs).

    Creating a viewer costs about 2 s on two busy cores, and a worker process 2-4 s;
    the matrix tests reuse this one (and its worker) and `rel_helpers.reset_widget` between
    tests, which also shows that one dock survives dozens of failures in a row. Yields
    ``(viewer, widget, notes)``.
    """
    import napari

    with pytest.MonkeyPatch.context() as mp:
        rec = record_notifications(mp)
        mp.setenv("NAPARI_UNET_STUDIO_THREADS", "1")  # read by the worker when it starts
        mp.setenv(*NO_WARM_UP)
        viewer, widget = docked_studio(lambda: napari.Viewer(show=False), tiny_widget_settings)
        # napari runs gc.collect() on every layer removal; with torch loaded that is 0.5 s.
        # Freezing what exists now makes those collections scan only new objects.
        gc.freeze()
        try:
            yield viewer, widget, rec
        finally:
            gc.unfreeze()
            widget.shutdown()
            viewer.close()
            del viewer, widget
            qapp.processEvents()
            gc.collect()  # later make_napari_viewer tests check that no QtViewer is left
