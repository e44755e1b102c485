"""Offline check of a package with the bioimage.io validator (``bioimageio.core``).

``test_model`` validates ``rdf.yaml`` against the format, checks every file's sha256,
rebuilds the network from each weight format (the ``pytorch_state_dict`` one from the
shipped architecture source), runs it on the test input with the described pre- and
postprocessing and compares with the test output (bioimage.io's tolerance), and runs
it at several other allowed sizes. A package holds every file it names, so nothing is
downloaded; ``BIOIMAGEIO_CACHE_PATH`` is pointed at a temporary folder so the check
does not write to the user's cache.
"""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["test_package"]


def test_package(path: str | os.PathLike, *, devices: tuple[str, ...] = ("cpu",)) -> dict[str, Any]:
    """Run ``bioimageio.core.test_model`` on the package at ``path``.

    Returns
    -------
    dict
        ``{"status": "passed" | "failed" | "valid-format", "format_version": str,
        "tests": [(name, status, first error or "")]}``.
    """
    from bioimageio.core import test_model
    from bioimageio.spec._internal._settings import settings

    old = settings.cache_path, settings.http_timeout
    with tempfile.TemporaryDirectory(prefix="unet-studio-bioimageio-") as cache:
        settings.cache_path = Path(cache)
        # the only network use is a reachability check of the project's web address
        # (a warning when offline); do not wait long for it
        settings.http_timeout = 2.0
        # the validator runs gc.collect() twice per weight format; with torch and onnx
        # imported that is seconds each: leave the objects that exist now out of it
        gc.freeze()
        try:
            summary = test_model(str(path), devices=list(devices))
        finally:
            gc.unfreeze()
            settings.cache_path, settings.http_timeout = old
    tests = []
    for d in summary.details:
        error = d.errors[0].msg if d.errors else ""
        tests.append((str(d.name), str(d.status), " ".join(str(error).split())[:300]))
    return {"status": str(summary.status), "format_version": str(summary.format_version),
            "tests": tests}
