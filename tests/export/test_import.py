"""Opening exported packages again (bit-identical), refusing other packages, and formats
that cannot represent a network are left out and said so."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml
from export_support import blob_image, tiny_model

import napari_unet_studio as nus
from napari_unet_studio.core.errors import ModelFileError
from napari_unet_studio.export import ExportError, export_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    """A model trained for a few steps on painted pixels, saved, and its package (one
    torch thread already for the filter stem's per-pixel fit, which runs before
    ``threads=1`` is applied)."""
    folder = tmp_path_factory.mktemp("trained")
    image = blob_image(64, seed=4)
    labels = np.zeros(image.shape, np.uint8)
    labels[image > 1500] = 2
    labels[:6] = 1
    labels[image < 400] = 1
    labels[20:40] = 0  # unpainted rows
    model = nus.train(image, labels, steps=3, decoder="unpool", arch={"depth": 2, "width": 4},
                      start="scratch", device="cpu", threads=1, patch_size=32, batch_size=2,
                      class_names=["background", "nucleus"])
    nus.save_model(model, folder / "m.pt")
    report = export_model(folder / "m.pt", folder / "m.zip", image=image,
                          weight_formats=(), validate=False)
    return model, image, report.path


def test_round_trip_is_bit_identical(trained):
    model, image, path = trained
    again = nus.load_model(path)
    assert again.config == model.config and again.record == model.record
    assert again.normalization == model.normalization
    assert set(again.state_dict) == set(model.state_dict)
    assert all(np.array_equal(again.state_dict[k].numpy(), v.numpy())
               for k, v in model.state_dict.items())
    big = np.tile(image, (2, 3))  # several tiles with blending
    a, pa = nus.predict(model, big, device="cpu", probabilities=True, threads=1)
    b, pb = nus.predict(again, big, device="cpu", probabilities=True, threads=1)
    assert np.array_equal(a, b) and np.array_equal(pa, pb)
    readme = _read(path, "README.md").decode()
    assert "Steps: 3" in readme and "nucleus:" in readme and "Decoder: unpool" in readme


def _read(path, name) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def _rewrite(src, dst, change) -> None:
    """Copy the package ``src`` to ``dst`` with ``change(rdf)`` applied to rdf.yaml."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "rdf.yaml":
                rdf = yaml.safe_load(data)
                change(rdf)
                data = yaml.safe_dump(rdf).encode()
            zout.writestr(item, data)


def test_a_package_made_by_another_program_is_refused(trained, tmp_path):
    from napari_unet_studio._reader import get_reader, package_kind, read_foreign_package

    _, _, path = trained
    foreign = tmp_path / "other.zip"
    _rewrite(path, foreign, lambda rdf: (rdf["config"].pop("napari-unet-studio"),
                                         rdf.update(name="Their nuclei model")))
    with pytest.raises(ModelFileError, match="not exported by napari-unet-studio") as err:
        nus.load_model(foreign)
    assert "Their nuclei model" in str(err.value) and "bioimage.io tool" in str(err.value)
    assert package_kind(foreign) == "foreign" and package_kind(path) == "ours"
    assert get_reader(str(foreign)) is read_foreign_package
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(ModelFileError, match="not a bioimage.io model package"):
        nus.load_model(plain)
    assert get_reader(str(plain)) is None


def test_reader_hands_our_package_to_the_dock(trained):
    from napari_unet_studio._reader import get_reader, read_model

    assert get_reader(str(trained[2])) is read_model


def test_foreign_package_notification(trained, tmp_path, monkeypatch):
    from napari.utils import notifications

    from napari_unet_studio._reader import read_foreign_package

    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    assert read_foreign_package(str(tmp_path / "x.zip")) == [(None,)]
    assert "not exported by napari-unet-studio" in shown[0]


def test_damaged_weights_in_our_package_are_reported(trained, tmp_path):
    _, _, path = trained
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(broken, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, data[: len(data) // 2] if item.filename == "weights.pt" else data)
    with pytest.raises(ModelFileError, match="incomplete or damaged"):
        nus.load_model(broken)


def test_a_format_that_does_not_reproduce_the_model_is_left_out(tmp_path, monkeypatch):
    """A conversion whose classes differ from the original is not shipped: the package,
    its README, its rdf.yaml and the summary say which and why."""
    import torch

    from napari_unet_studio.export import convert

    class Negated(torch.nn.Module):  # stands in for a wrongly converted graph
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return -self.net(x)

    real = convert.traceable
    monkeypatch.setattr(convert, "traceable", lambda net: Negated(real(net)))
    model = tiny_model("bilinear")
    report = export_model(model, tmp_path / "m.zip", image=blob_image(64),
                          weight_formats=("torchscript",), validate=True)
    assert not report.formats["torchscript"].ok
    reason = report.not_exported["torchscript"]
    assert "predicts other classes than the original" in reason
    rdf = yaml.safe_load(_read(report.path, "rdf.yaml"))
    assert set(rdf["weights"]) == {"pytorch_state_dict"}
    assert rdf["config"]["napari-unet-studio"]["not_exported"]["torchscript"] == reason
    assert "weights_torchscript.pt" not in zipfile.ZipFile(report.path).namelist()
    assert "| torchscript | not included |" in _read(report.path, "README.md").decode()
    assert "torchscript: NOT included" in report.summary()
    assert report.validation["status"] == "passed"
    with pytest.raises(ExportError, match="cannot be exported to torchscript"):
        export_model(model, tmp_path / "m.pt", format="torchscript")


def test_export_errors_are_plain(tmp_path):
    model = tiny_model("nearest")
    with pytest.raises(ExportError, match="needs one of your images"):
        export_model(model, tmp_path / "m.zip")
    with pytest.raises(ExportError, match="Unknown export format"):
        export_model(model, tmp_path / "m.x", format="keras")
    with pytest.raises(ExportError, match="is a folder"):
        export_model(model, tmp_path, format="onnx")


def test_missing_packages_are_named_with_the_install_command(monkeypatch):
    from napari_unet_studio.export import needs

    monkeypatch.setattr(needs, "_installed", lambda module: not module.startswith("onnx"))
    text = needs.missing_message("onnx")
    assert "onnx, onnxscript, onnxruntime" in text and 'napari-unet-studio[export]' in text
    assert needs.missing_message("torchscript") == ""
    with pytest.raises(ExportError, match="pip install"):
        export_model(tiny_model("nearest"), "x.onnx", format="onnx")


def test_torchscript_file_alone(tmp_path):
    import torch

    model = tiny_model("unpool")
    image = blob_image(64)
    report = export_model(model, tmp_path / "m.pt", format="torchscript", image=image)
    ts = torch.jit.load(str(report.path))
    x = torch.randn(2, 1, 48, 64)
    with torch.no_grad():
        assert torch.equal(ts(x).argmax(1), model.build("cpu")(x).argmax(1))


def test_a_conversion_with_the_same_classes_but_loose_probabilities_is_left_out(tmp_path,
                                                                              monkeypatch):
    """Same argmax everywhere is not enough: the package's test compares probabilities
    with bioimage.io's tolerance, so a conversion outside it is not shipped either."""
    import torch

    from napari_unet_studio.export import convert

    class Sharper(torch.nn.Module):  # same classes, other probabilities
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return 1.5 * self.net(x)

    real = convert.traceable
    monkeypatch.setattr(convert, "traceable", lambda net: Sharper(real(net)))
    report = export_model(tiny_model("transposed"), tmp_path / "m.zip", image=blob_image(64),
                          weight_formats=("torchscript",), validate=True)
    res = report.formats["torchscript"]
    assert not res.ok and all(v["agreement"] == 1.0 for v in res.agreement.values())
    assert "probabilities differ from the original's by more than bioimage.io's tolerance" \
        in res.reason
    assert report.validation["status"] == "passed"
