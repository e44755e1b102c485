"""The 2D / 3D choice in the dock: the recommendation from the data, the voxel size from
the image layer's ``scale``, 3D sizes, and the slab sent for a 3D live preview.

Torch-free: it uses :mod:`napari_unet_studio.core.anisotropy` (numpy only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.anisotropy import PREVIEW_SLAB, VOLUME_CPU, preview_slab, recommend_dims
from .layers import layer_array

__all__ = ["layer_spacing", "dims_advice", "update_dims_advice", "with_volume_settings",
           "preview_source_3d", "volume_sizes",
           "pick_preview_plane"]


def layer_spacing(layer: Any, spatial_dims: int = 3) -> tuple[float, float, float] | None:
    """Voxel size ``(Z, Y, X)`` from a layer's ``scale`` (``None``: all equal)."""
    try:
        scale = tuple(float(s) for s in layer.scale)
    except (AttributeError, TypeError, ValueError):
        return None
    rgb = bool(getattr(layer, "rgb", False))
    spatial = scale[: len(scale) - int(rgb)] if rgb else scale
    if len(spatial) < spatial_dims:
        return None
    zyx = spatial[-3:]
    if not all(s > 0 for s in zyx) or max(zyx) == min(zyx):
        return None
    return zyx[0], zyx[1], zyx[2]


def dims_advice(viewer: Any, image_layer: Any, labels_shape: tuple[int, ...] | None = None
                ) -> tuple[int, str]:
    """``recommend_dims`` for an image layer: ``(2 or 3, "Recommended: ... because ...")``."""
    data = layer_array(image_layer)
    shape = tuple(int(s) for s in np.shape(data))
    channel_axis = bool(getattr(image_layer, "rgb", False)) or (
        labels_shape is not None and len(shape) == len(labels_shape) + 1)
    labels = None
    try:
        labels = tuple(viewer.dims.axis_labels)[-(len(shape) - int(channel_axis)):]
    except (AttributeError, TypeError):
        pass
    dims, why = recommend_dims(shape, data, channel_axis=channel_axis, axis_labels=labels,
                               spacing=layer_spacing(image_layer))
    return dims, f"Recommended: {dims}D, {why}"


def with_volume_settings(model_config: dict, train_config: dict, image_layer: Any
                         ) -> tuple[dict, dict]:
    """For a 3D model: the voxel size from the image layer's scale (``spacing``)."""
    if int(model_config.get("dims", 2)) != 3:
        return model_config, train_config
    model_config = dict(model_config, spacing=layer_spacing(image_layer))
    return model_config, dict(train_config)


def volume_sizes() -> dict[str, int]:
    """Patch edge, batch size and width the settings switch to for 3D (CPU sizes)."""
    return dict(VOLUME_CPU)


def preview_source_3d(volume: Any, z: int, spacing: tuple | None) -> tuple[tuple[int, int],
                                                                           np.ndarray]:
    """Key ``(z, index of z in the slab)`` and the slab of slices around ``z`` that a 3D
    model predicts for the live preview (about a cube of ``PREVIEW_SLAB`` y/x pixels)."""
    depth = PREVIEW_SLAB
    if spacing is not None:
        depth = max(8, int(round(PREVIEW_SLAB * spacing[1] / spacing[0])))
    offset, slab = preview_slab(volume, z, depth)
    return (int(z), offset), slab


def pick_preview_plane(key: Any, prediction: np.ndarray) -> tuple[Any, np.ndarray]:
    """The plane to write: a 3D model's preview is a slab, keyed ``(z, offset)``."""
    if isinstance(key, (tuple, list)) and len(key) == 2 and np.ndim(prediction) == 3:
        z, offset = (int(v) for v in key)
        return z, np.asarray(prediction)[offset]
    return key, prediction


def update_dims_advice(viewer: Any, data_panel: Any, settings: Any) -> None:
    """Show the recommendation for the first training image under the 2D/3D choice."""
    rows = getattr(data_panel, "rows", [])
    image = rows[0].image.layer() if rows else None
    text = ""
    if image is not None:
        try:
            text = dims_advice(viewer, image)[1]
        except Exception:  # noqa: BLE001 - advice must never break choosing layers
            text = ""
    settings.show_dims_advice(text)
