"""Which packages each export format needs, checked without importing them (torch-free:
the GUI asks before it sends an export to the worker)."""

from __future__ import annotations

import importlib.util

__all__ = ["INSTALL_HINT", "missing_packages", "missing_message"]

#: import name -> what to ``pip install``, per format
NEEDS = {
    "bioimageio": {"bioimageio.spec": "bioimageio.core", "bioimageio.core": "bioimageio.core",
                   "yaml": "pyyaml", "PIL": "pillow"},
    "torchscript": {},
    "onnx": {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime"},
}
INSTALL_HINT = 'pip install "napari-unet-studio[export]"'


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(fmt: str) -> list[str]:
    """pip names of the packages ``fmt`` needs that are not installed."""
    missing: list[str] = []
    for module, pip_name in NEEDS.get(fmt, {}).items():
        if not _installed(module) and pip_name not in missing:
            missing.append(pip_name)
    return missing


def missing_message(fmt: str) -> str:
    """Plain words for the user when ``fmt`` cannot run here ("" when it can)."""
    missing = missing_packages(fmt)
    if not missing:
        return ""
    return (f"Exporting to {fmt} needs {', '.join(missing)}, which is not installed. "
            f"Install it with {INSTALL_HINT} (or pip install {' '.join(missing)}) in the "
            "Python environment napari runs in, restart napari, and export again.")
