"""napari-unet-studio: paint a few labels, train a U-Net, see the masks in napari.

The headless API is importable from here without loading torch, Qt or napari: the
names below are resolved on first use (PEP 562), so ``import napari_unet_studio`` and
opening napari stay fast.

Examples
--------
>>> import napari_unet_studio as nus
>>> model = nus.train([(image, labels)], steps=200)          # doctest: +SKIP
>>> classes = nus.predict(model, image)                       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    "ModelConfig": ".core.config",
    "TrainConfig": ".core.config",
    "TileConfig": ".core.config",
    "list_decoders": ".core.decoders",
    "describe_decoders": ".core.decoders",
    "UNet": ".core.model",
    "build_model": ".core.model",
    "train": "._api",
    "predict": "._api",
    "uncertainty": "._api",
    "load_model": "._api",
    "save_model": "._api",
    "export_model": "._api",
    "TrainedModel": ".core.checkpoint",
    "predict_store": ".bigdata.runner",
    "iter_predict_store": ".bigdata.runner",
    "open_image": ".io.zarr_io",
    "ObjectSettings": ".objects.instances",
    "find_instances": ".objects.instances",
    "measure_objects": ".objects.instances",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from ._api import load_model, predict, save_model, train
    from .bigdata.runner import iter_predict_store, predict_store
    from .core.checkpoint import TrainedModel
    from .core.config import ModelConfig, TileConfig, TrainConfig
    from .core.decoders import describe_decoders, list_decoders
    from .core.model import UNet, build_model
    from .io.zarr_io import open_image
    from .objects.instances import ObjectSettings, find_instances, measure_objects


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
