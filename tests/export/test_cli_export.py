"""``unet-studio export``: the three formats, the package opening again in ``predict`` and
``info``, and plain one-line errors."""

from __future__ import annotations

import zipfile

import numpy as np
import tifffile
import torch
from export_support import blob_image, tiny_model

from napari_unet_studio.cli import main


def _files(tmp_path):
    model = tiny_model("transposed", num_classes=2)
    model.save(tmp_path / "m.pt")
    tifffile.imwrite(tmp_path / "img.tif", blob_image(64, seed=2))
    return model, tmp_path / "m.pt", tmp_path / "img.tif"


def test_cli_exports_a_package_that_predict_and_info_open(tmp_path, capsys):
    model, pt, img = _files(tmp_path)
    out = tmp_path / "m.zip"
    code = main(["export", "--model", str(pt), "--image", str(img), "--out", str(out),
                 "--author", "A. Person", "--name", "Nuclei test model", "--quiet",
                 "--no-weight-formats"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "bioimage.io test_model: passed" in text and f"Exported {out}" in text
    assert "rdf.yaml" in zipfile.ZipFile(out).namelist()
    pred = tmp_path / "pred.tif"
    assert main(["predict", "--model", str(out), "--image", str(img), "--out", str(pred),
                 "--device", "cpu", "--quiet"]) == 0
    ref = tmp_path / "ref.tif"
    assert main(["predict", "--model", str(pt), "--image", str(img), "--out", str(ref),
                 "--device", "cpu", "--quiet"]) == 0
    assert np.array_equal(tifffile.imread(pred), tifffile.imread(ref))
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "decoder:     transposed" in capsys.readouterr().out


def test_cli_torchscript_and_onnx_files(tmp_path, capsys):
    import onnxruntime as ort

    model, pt, img = _files(tmp_path)
    ts_path, onnx_path = tmp_path / "m.torchscript.pt", tmp_path / "m.onnx"
    assert main(["export", "--model", str(pt), "--format", "torchscript", "--image", str(img),
                 "--out", str(ts_path), "--quiet"]) == 0
    assert main(["export", "--model", str(pt), "--format", "onnx", "--out", str(onnx_path),
                 "--quiet"]) == 0
    assert "onnx: included; same class" in capsys.readouterr().out
    x = torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        ref = model.build("cpu")(x).argmax(1).numpy()
        got_ts = torch.jit.load(str(ts_path))(x).argmax(1).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got_onnx = session.run(None, {"input": x.numpy()})[0].argmax(1)
    assert np.array_equal(got_ts, ref) and np.array_equal(got_onnx, ref)


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    _, pt, img = _files(tmp_path)
    assert main(["export", "--model", str(pt), "--out", str(tmp_path / "m.zip")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs one of your images" in err
    assert main(["export", "--model", str(tmp_path / "nope.pt"), "--image", str(img),
                 "--out", str(tmp_path / "m.zip")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unet-studio: error:") and "No model file" in err
