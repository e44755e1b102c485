"""Packaging: manifest discovery and validity, wheel contents, light-weight import."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "napari_unet_studio"


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def test_import_does_not_load_torch_qt_or_napari():
    code = (
        "import sys, napari_unet_studio as p; "
        "p.__version__; "
        "heavy = [m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', "
        "'PySide6', 'magicgui') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    res = _run(sys.executable, "-c", code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"importing the package loaded: {res.stdout}"


def test_configs_are_torch_free():
    code = (
        "import sys; from napari_unet_studio.core.config import ModelConfig; "
        "ModelConfig(); print('torch' in sys.modules)"
    )
    res = _run(sys.executable, "-c", code)
    assert res.stdout.strip() == "False", res.stderr


def test_public_api_resolves_lazily():
    import napari_unet_studio as pkg

    for name in pkg.__all__:
        assert getattr(pkg, name) is not None, name
    with pytest.raises(AttributeError):
        pkg.does_not_exist  # noqa: B018


def test_manifest_in_package_equals_top_level_manifest():
    assert (ROOT / "napari.yaml").read_text() == (PKG / "napari.yaml").read_text()


def test_npe2_validate_passes():
    npe2 = shutil.which("npe2", path=str(Path(sys.executable).parent)) or shutil.which("npe2")
    assert npe2, "npe2 command not found"
    res = _run(npe2, "validate", "napari-unet-studio")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_napari_discovers_the_manifest_and_its_commands_import():
    from npe2 import PluginManifest

    mf = PluginManifest.from_distribution("napari-unet-studio")
    assert mf.name == "napari-unet-studio"
    ids = {c.id for c in mf.contributions.commands}
    assert {"napari-unet-studio.studio_widget", "napari-unet-studio.sample_nuclei"} <= ids
    import importlib

    for cmd in mf.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.python_name


def test_built_wheel_contains_manifest_and_entry_point(tmp_path):
    res = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", str(tmp_path), str(ROOT),
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (wheel,) = tmp_path.glob("napari_unet_studio-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "napari_unet_studio/napari.yaml" in names
        assert zf.read("napari_unet_studio/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
        weights = PKG / "core" / "weights"
        for f in weights.iterdir():  # the pretrained starting weights ship in the wheel
            assert zf.read(f"napari_unet_studio/core/weights/{f.name}") == f.read_bytes(), f
        assert "napari_unet_studio/core/weights/manifest.json" in names
        ep = next(n for n in names if n.endswith("entry_points.txt"))
        text = zf.read(ep).decode()
        meta = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "[napari.manifest]" in text
    assert "napari-unet-studio = napari_unet_studio:napari.yaml" in text
    assert "unet-studio = napari_unet_studio.cli:main" in text
    assert "Classifier: Framework :: napari" in meta
    assert not any(q in meta for q in ("Requires-Dist: PyQt", "Requires-Dist: PySide")), (
        "the package must not pin a Qt binding"
    )
