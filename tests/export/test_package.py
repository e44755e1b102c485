"""bioimage.io packages: contents, the validator on every decoder, TorchScript/ONNX agreement."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml

from napari_unet_studio import list_decoders
from napari_unet_studio.export.package import FILES, receptive_halo, size_rule

DECODERS = list_decoders()


def _rdf(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return yaml.safe_load(zf.read("rdf.yaml"))


def _member(path, name) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


@pytest.mark.parametrize("decoder", DECODERS)
def test_validator_passes_offline_with_every_weight_format(packages, decoder):
    """bioimageio.core.test_model (run by the export, offline) passes every sub-test:
    format, the three weight formats reproducing the test output, other sizes/batches."""
    _, _, report = packages[decoder]
    assert report.validation is not None
    failed = [t for t in report.validation["tests"] if t[1] != "passed"]
    assert report.validation["status"] == "passed", failed
    names = " ".join(t[0] for t in report.validation["tests"])
    for fmt in ("pytorch_state_dict", "torchscript", "onnx"):
        assert f"Reproduce test outputs from test inputs ({fmt})" in names
    assert set(_rdf(report.path)["weights"]) == {"pytorch_state_dict", "torchscript", "onnx"}
    assert report.not_exported == {}


@pytest.mark.parametrize("decoder", DECODERS)
def test_torchscript_and_onnx_predict_the_same_classes(packages, decoder):
    """Recomputed here from the files in the zip: the class of every pixel of the test
    tensor and of a larger batch equals the PyTorch model's."""
    import onnxruntime as ort
    import torch

    from napari_unet_studio.export.package import normalized_input

    model, _, report = packages[decoder]
    raw = np.load(io.BytesIO(_member(report.path, FILES["test_input"])))
    x = torch.from_numpy(normalized_input(model, raw))
    step = size_rule(model.config)[1]
    big = torch.cat([x, x.flip(-1)])[..., : x.shape[-2] - step, :]  # batch 2, other size
    net = model.build("cpu")
    ts = torch.jit.load(io.BytesIO(_member(report.path, FILES["torchscript"])))
    session = ort.InferenceSession(_member(report.path, FILES["onnx"]),
                                   providers=["CPUExecutionProvider"])
    for inp in (x, big):
        with torch.no_grad():
            ref = net(inp).argmax(1).numpy()
            got_ts = ts(inp).argmax(1).numpy()
        got_onnx = session.run(None, {session.get_inputs()[0].name: inp.numpy()})[0].argmax(1)
        assert np.array_equal(got_ts, ref)
        assert np.array_equal(got_onnx, ref)
    for fmt in ("torchscript", "onnx"):  # what the package says it measured
        agreement = report.formats[fmt].agreement
        assert len(agreement) == 2 and all(v["agreement"] == 1.0 for v in agreement.values())


def test_package_contents(packages):
    model, image, report = packages["unpool"]
    from bioimageio.spec.model.v0_5 import ModelDescr

    with zipfile.ZipFile(report.path) as zf:
        names = set(zf.namelist())
    assert names == set(FILES.values())
    rdf = _rdf(report.path)
    assert rdf["type"] == "model"
    assert rdf["format_version"] == ModelDescr.implemented_format_version
    assert rdf["license"] == "CC-BY-4.0" and rdf["authors"] == [{"name": "Test Author"}]
    assert "unpool" in rdf["name"] and rdf["description"]
    dois = [c.get("doi") for c in rdf["cite"]]
    assert "10.1007/978-3-319-24574-4_28" in dois  # U-Net
    assert "10.1109/TPAMI.2016.2644615" in dois  # SegNet, for max-unpooling
    assert any("napari-unet-studio" in str(c.get("url")) for c in rdf["cite"])
    assert {"unet", "napari-unet-studio", "decoder-unpool", "2d"} <= set(rdf["tags"])
    assert rdf["documentation"]["source"] == "README.md"
    inp, out = rdf["inputs"][0], rdf["outputs"][0]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space"]
    assert inp["axes"][1]["channel_names"] == ["gray"]
    low, step = size_rule(model.config)
    assert inp["axes"][2]["size"] == {"min": low, "step": step}
    assert out["axes"][1]["channel_names"] == ["background", "cell", "edge"]
    halo = receptive_halo(model.config)
    assert [a["halo"] for a in out["axes"][2:]] == [halo, halo] and halo % step == 0
    assert inp["preprocessing"][-1] == {"id": "scale_range", "kwargs": {
        "axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.8, "eps": 1e-6}}
    assert out["postprocessing"][0] == {"id": "softmax", "kwargs": {"axis": "channel"}}
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert arch["callable"] == "build_unet" and arch["kwargs"] == model.config.to_dict()
    ours = rdf["config"]["napari-unet-studio"]
    assert ours["format"] == "napari-unet-studio-model" and ours["record"] == model.record
    # test tensors: a centre crop of the user's image (raw values) and our probabilities
    raw = np.load(io.BytesIO(_member(report.path, FILES["test_input"])))
    prob = np.load(io.BytesIO(_member(report.path, FILES["test_output"])))
    assert raw.shape == (1, 1, 68, 68) and raw.dtype == np.float32
    assert np.array_equal(raw[0, 0], image[1:69, 1:69].astype(np.float32))
    assert prob.shape == (1, 3, 68, 68)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    from napari_unet_studio.export.package import test_tensors

    assert np.array_equal(test_tensors(model, image)[1], prob)
    # cover: a 2:1 PNG, image left, overlay right
    from PIL import Image

    cover = Image.open(io.BytesIO(_member(report.path, FILES["cover"])))
    assert cover.size == (136, 68)
    readme = _member(report.path, FILES["readme"]).decode()
    for text in ("Training record", "background: 100 px", "cell: 101 px", "Decoder: unpool",
                 "Start weights: scratch", f"Halo: {halo} pixels along y", "| torchscript |"):
        assert text in readme, text


def test_architecture_source_needs_neither_the_plugin_nor_napari(packages, tmp_path):
    """The shipped architecture file, imported where napari_unet_studio cannot be, builds
    a network that takes the package's weights and gives the original's logits."""
    model, _, report = packages["pixelshuffle"]
    (tmp_path / "arch.py").write_bytes(_member(report.path, FILES["architecture"]))
    (tmp_path / "weights.pt").write_bytes(_member(report.path, FILES["weights"]))
    import torch

    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model.build("cpu")(x), tmp_path / "ref.pt")
    script = f"""
import importlib.abc, importlib.util, sys, torch
torch.set_num_threads(1)
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('napari_unet_studio', 'napari', 'qtpy'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
spec = importlib.util.spec_from_file_location('arch', {str(tmp_path / 'arch.py')!r})
mod = importlib.util.module_from_spec(spec); sys.modules['arch'] = mod
spec.loader.exec_module(mod)
net = mod.build_unet(**{model.config.to_dict()!r})
net.load_state_dict(torch.load({str(tmp_path / 'weights.pt')!r}, weights_only=True))
net.eval()
with torch.no_grad():
    out = net(torch.load({str(tmp_path / 'x.pt')!r}))
ref = torch.load({str(tmp_path / 'ref.pt')!r})
assert torch.equal(out, ref), (out - ref).abs().max()
print('same', sorted(m for m in sys.modules if m.startswith('napari')))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "same []" in res.stdout
