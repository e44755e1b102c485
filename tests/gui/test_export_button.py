"""The Export button of the model-file panel (fake worker client: what crosses over)."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QFileDialog

from napari_unet_studio.worker import ModelRef, WorkerError


def _model() -> ModelRef:
    config = {"decoder": "unpool", "depth": 2, "width": 4, "num_classes": 2, "in_channels": 1,
              "dims": 2}
    return ModelRef("/tmp/m.pt", config, {"steps": 5}, ["background", "nucleus"])


def _submit_recorder(fake, result=None, error=None):
    sent = []

    def submit(kind, spec, arrays=None):
        job = fake._job(kind, {**spec, "arrays": {k: np.array(v) for k, v in
                                                  (arrays or {}).items()}})
        sent.append(job)
        job.queue.append(("error", error) if error is not None else ("done", result))
        return job

    fake.submit = submit
    return sent


def test_export_button_sends_model_image_path_and_format(studio, notes, fake, qtbot,
                                                         monkeypatch, tmp_path):
    viewer, widget = studio
    button = widget.models_panel.export_button
    assert not button.isEnabled()
    viewer.add_image(np.arange(600 * 40, dtype=np.uint16).reshape(600, 40), name="cells")
    widget.use_model(_model(), "trained here")
    assert button.isEnabled()
    path = tmp_path / "shared"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(path), "bioimage.io model package (*.zip)"))
    sent = _submit_recorder(fake, {"path": str(path) + ".zip", "format": "bioimageio",
                                   "not_exported": {}, "validation": "passed"})
    button.click()
    qtbot.waitUntil(lambda: not widget.files.running, timeout=5000)
    (job,) = sent
    assert job.kind == "export"
    assert job.spec["format"] == "bioimageio" and job.spec["out"] == str(path) + ".zip"
    assert job.spec["model"].class_names == ["background", "nucleus"]
    image = job.spec["arrays"]["image"]
    assert image.shape == (512, 40)  # a centre crop of at most 512 pixels per axis
    assert np.array_equal(image, viewer.layers["cells"].data[44:556])
    assert any("Model exported to" in t and "check: passed" in t for t in notes.infos)
    assert not notes.errors


def test_export_formats_from_the_dialog_and_a_left_out_format(studio, notes, fake, qtbot,
                                                              monkeypatch, tmp_path):
    viewer, widget = studio
    viewer.add_image(np.zeros((64, 64), np.uint8), name="img")
    widget.use_model(_model())
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "m"), "ONNX (*.onnx)"))
    sent = _submit_recorder(fake, {"path": str(tmp_path / "m.onnx"), "format": "onnx",
                                   "not_exported": {"torchscript": "tracing failed"},
                                   "validation": None})
    widget.models_panel.export_button.click()
    qtbot.waitUntil(lambda: not widget.files.running, timeout=5000)
    assert sent[0].spec["format"] == "onnx" and sent[0].spec["out"].endswith("m.onnx")
    assert "Not included: torchscript (tracing failed)" in notes.warnings[-1]


def test_export_says_what_to_install_and_reports_worker_errors(studio, notes, fake, qtbot,
                                                               monkeypatch, tmp_path):
    from napari_unet_studio.export import needs

    viewer, widget = studio
    viewer.add_image(np.zeros((64, 64), np.uint8), name="img")
    widget.use_model(_model())
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "m.zip"), ""))
    sent = _submit_recorder(fake, error=WorkerError(
        "error", "Exporting the model failed: the disk is full."))
    installed = needs._installed
    monkeypatch.setattr(needs, "_installed", lambda module: False)
    widget.models_panel.export_button.click()
    assert not sent
    assert 'pip install "napari-unet-studio[export]"' in notes.errors[-1]
    assert "bioimageio.core" in notes.errors[-1]
    monkeypatch.setattr(needs, "_installed", installed)  # the packages are back
    widget.models_panel.export_button.click()
    qtbot.waitUntil(lambda: not widget.files.running, timeout=5000)
    assert len(sent) == 1 and sent[0].spec["format"] == "bioimageio"
    assert notes.errors[-1] == "Exporting the model failed: the disk is full."
