"""Fixtures of the export tests: tiny models (width 4, depth 2) of every decoder, a
generated image, and one exported package per decoder (built once per session)."""

from __future__ import annotations

import importlib.util

import pytest
from export_support import blob_image, tiny_model

# the export extra (bioimageio.core, onnx, onnxruntime) is part of the testing extra;
# without it these tests are not collected
if importlib.util.find_spec("bioimageio.core") is None:  # pragma: no cover
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """decoder -> (model, image, ExportReport): the full package (PyTorch, TorchScript,
    ONNX; validated with bioimageio.core) of a tiny model of every registered decoder
    (the first one with the engine's default stem)."""
    import torch

    from napari_unet_studio import list_decoders
    from napari_unet_studio.export import export_model

    torch.set_num_threads(1)
    out = {}
    folder = tmp_path_factory.mktemp("packages")
    image = blob_image(70, seed=1)  # not a multiple of the size step (4): the crop is 68
    for i, decoder in enumerate(list_decoders()):
        # the stem sits before and after the decoder: one decoder with it is enough
        model = tiny_model(decoder, seed=i, with_stem=(i == 0))
        report = export_model(model, folder / f"{decoder}.zip", image=image,
                              authors=["Test Author"])
        out[decoder] = (model, image, report)
    return out
