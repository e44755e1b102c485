"""Share a trained model: bioimage.io packages, TorchScript and ONNX (and open them again).

Needs the ``export`` extra (``pip install "napari-unet-studio[export]"``:
bioimageio.core, onnx, onnxscript, onnxruntime); nothing here is imported by the rest of
the package until an export or a package import is asked for.

Modules: :mod:`.exporter` (``export_model``), :mod:`.package` (``rdf.yaml`` and the
zip), :mod:`.architecture` (the self-contained network source in the package),
:mod:`.convert` (TorchScript/ONNX with the agreement check), :mod:`.docs` (README,
cover), :mod:`.importer` (``load_package``), :mod:`.validate` (``bioimageio.core``
``test_model``, offline).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_model": ".exporter",
    "ExportReport": ".exporter",
    "ExportError": ".exporter",
    "EXPORT_FORMATS": ".exporter",
    "missing_packages": ".needs",
    "load_package": ".importer",
    "is_package": ".importer",
    "test_package": ".validate",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
