"""Layers: roles, names, shapes, the live preview layer and our result layers.

Every layer the plugin makes carries a role in ``metadata["unet_studio_role"]``; layers
without one are the user's and are never written. The live layer
``"<image> prediction"`` is created once per image and then updated in place, one plane
at a time (the plane the user looks at). Predictions go to layers of our own
(``"<image> prediction (<decoder>)"``); corrections painted on them are merged into a
separate ``"<labels> + corrections"`` layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer

from .notify import UserProblem

ROLE_KEY = "unet_studio_role"
ROLE_LIVE = "live"  # "<image> prediction", refreshed during training
ROLE_PREDICTION = "prediction"  # "<image> prediction (<decoder>)" from the Predict button
ROLE_CONFIDENCE = "confidence"
ROLE_CORRECTIONS = "corrections"  # "<labels> + corrections"
ROLE_UNCERTAINTY = "uncertainty"  # "<image> uncertainty" (Assistant panel)
ROLE_COMPARE = "compare"  # "compare: <image> (<decoder>)" (Assistant panel)
ROLE_MARKER = "marker"  # "where to paint next" box (Assistant panel)
OUR_ROLES = (ROLE_LIVE, ROLE_PREDICTION, ROLE_CONFIDENCE, ROLE_CORRECTIONS, ROLE_UNCERTAINTY,
             ROLE_COMPARE, ROLE_MARKER)


# ---------------------------------------------------------------------------- roles
def role(layer: Layer) -> str | None:
    """The role this plugin gave ``layer`` (``None`` for the user's own layers)."""
    meta = getattr(layer, "metadata", None) or {}
    value = meta.get(ROLE_KEY)
    return value if value in OUR_ROLES else None


def is_user_labels(layer: Layer) -> bool:
    """Labels layers the user may train on: their own and our corrections layers."""
    return isinstance(layer, Labels) and role(layer) in (None, ROLE_CORRECTIONS)


def is_user_image(layer: Layer) -> bool:
    """Image layers that are not our confidence maps."""
    return isinstance(layer, Image) and role(layer) is None


def is_live_layer(layer: Layer) -> bool:
    """True for our ``"<image> prediction"`` training preview layers."""
    return role(layer) == ROLE_LIVE


def unique_layer_name(viewer: Any, base: str) -> str:
    """``base``, or ``base [2]``, ``base [3]``... whichever no layer uses yet."""
    names = {layer.name for layer in viewer.layers}
    if base not in names:
        return base
    k = 2
    while f"{base} [{k}]" in names:
        k += 1
    return f"{base} [{k}]"


# --------------------------------------------------------------------------- shapes
def layer_array(layer: Layer) -> np.ndarray:
    """The full-resolution data of ``layer`` as a numpy array (no copy when possible)."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    return np.asarray(data)


def spatial_shape(image: Image, in_channels: int | None = None) -> tuple[int, ...]:
    """Shape of an image layer without its channel axis.

    RGB(A) layers drop their last axis; so does any image whose last axis holds
    ``in_channels`` > 1 values (the channels a loaded model expects).
    """
    data = image.data[0] if image.multiscale else image.data
    shape = tuple(int(s) for s in data.shape)
    if image.rgb or (in_channels and in_channels > 1 and shape[-1] == in_channels):
        return shape[:-1]
    return shape


def image_channels(image_shape: tuple[int, ...], labels_shape: tuple[int, ...]) -> int:
    """Number of channels implied by an image/labels shape pair.

    Raises
    ------
    UserProblem
        If the shapes do not fit together.
    """
    if tuple(image_shape) == tuple(labels_shape):
        return 1
    if tuple(image_shape[:-1]) == tuple(labels_shape) and image_shape[-1] <= 4:
        return int(image_shape[-1])
    raise UserProblem(
        f"The image ({'x'.join(map(str, image_shape))}) and the labels "
        f"({'x'.join(map(str, labels_shape))}) have different shapes. Paint on a labels "
        "layer made for this image (use 'New scribble layer')."
    )


# ------------------------------------------------------------------ live preview
def keep_selection(viewer: Any) -> Callable[[], None]:
    """Remember the selected/active layers; call the result to restore them.

    Adding a layer selects it in napari; the live preview must not pull the user out
    of painting their labels layer.
    """
    selected = list(viewer.layers.selection)
    active = viewer.layers.selection.active

    def restore() -> None:
        alive = [layer for layer in selected if layer in viewer.layers]
        viewer.layers.selection.clear()
        viewer.layers.selection.update(alive)
        if active is not None and active in viewer.layers:
            viewer.layers.selection.active = active

    return restore


def live_layer(
    viewer: Any, image: Image, labels: Labels, dtype: np.dtype | type = np.uint8
) -> Labels:
    """Find or create the ``"<image> prediction"`` layer for training previews.

    It is inserted just below ``labels``, at half opacity, with the labels' scale and
    translate. An existing live layer of ours with that name is reused; a user layer
    with that name is never touched.
    """
    name = f"{image.name} prediction"
    shape = tuple(labels.data.shape)
    for layer in viewer.layers:
        if layer.name == name and role(layer) == ROLE_LIVE and isinstance(layer, Labels):
            if tuple(layer.data.shape) != shape:
                layer.data = np.zeros(shape, dtype=dtype)
            return layer
    layer = Labels(
        np.zeros(shape, dtype=dtype),
        name=unique_layer_name(viewer, name),
        opacity=0.5,
        scale=tuple(labels.scale),
        translate=tuple(labels.translate),
        metadata={ROLE_KEY: ROLE_LIVE, "source_image": image.name},
    )
    restore = keep_selection(viewer)
    index = viewer.layers.index(labels) if labels in viewer.layers else len(viewer.layers)
    viewer.layers.insert(index, layer)
    restore()
    return layer


def visible_plane(viewer: Any, image: Image, spatial: tuple[int, ...]) -> tuple[int | None, Any]:
    """The 2D plane of ``image`` the user is looking at.

    Returns
    -------
    key : int or None
        Index along the first spatial axis for stacks, None for 2D images.
    plane : numpy.ndarray
        ``(Y, X)`` or ``(Y, X, C)``.
    """
    data = layer_array(image)
    if len(spatial) == 2:
        return None, data
    try:
        coords = image.world_to_data(viewer.dims.point)
        z = int(round(float(coords[0])))
    except (IndexError, ValueError, TypeError):
        z = 0
    z = int(np.clip(z, 0, spatial[0] - 1))
    return z, np.asarray(data[z])


def write_preview(layer: Labels, key: int | None, prediction: np.ndarray) -> bool:
    """Write one preview plane into the live layer in place; False if it does not fit.

    Only that plane is written (no new array, no full-layer data event); the layer
    is refreshed so napari redraws what is displayed.
    """
    prediction = np.asarray(prediction)
    data = layer.data
    if key is None:
        if tuple(data.shape) != prediction.shape:
            return False
        data[...] = prediction
    else:
        if not 0 <= key < data.shape[0] or tuple(data.shape[1:]) != prediction.shape:
            return False
        data[key] = prediction
    layer.refresh()
    return True


# -------------------------------------------------------------------- predictions
def prediction_layers(viewer: Any) -> list[Labels]:
    """Our prediction layers (from the Predict button), oldest first."""
    return [ly for ly in viewer.layers if isinstance(ly, Labels) and role(ly) == ROLE_PREDICTION]


def choose_prediction_layer(viewer: Any) -> Layer | None:
    """The selected prediction layer, else the newest one."""
    active = viewer.layers.selection.active
    if active is not None and role(active) == ROLE_PREDICTION:
        return active
    layers = prediction_layers(viewer)
    return layers[-1] if layers else None


def place_result(
    viewer: Any,
    image: Image,
    labels: np.ndarray,
    decoder: str,
    class_names: list[str],
    update_existing: bool,
) -> Labels:
    """Put a prediction into a new layer (or, if asked, our existing one for this image)."""
    base = f"{image.name} prediction ({decoder})"
    nd = labels.ndim
    meta = {
        ROLE_KEY: ROLE_PREDICTION,
        "source_image": image.name,
        "decoder": decoder,
        "class_names": list(class_names),
    }
    if update_existing:
        mine = [
            ly for ly in prediction_layers(viewer) if ly.metadata.get("source_image") == image.name
        ]
        if mine:
            layer = mine[-1]
            layer.data = labels
            layer.metadata.update(meta)
            return layer
    layer = Labels(
        labels,
        name=unique_layer_name(viewer, base),
        scale=tuple(image.scale)[-nd:],
        translate=tuple(image.translate)[-nd:],
        opacity=0.6,
        metadata=meta,
    )
    viewer.add_layer(layer)
    return layer


def place_confidence(viewer: Any, image: Image, probabilities: np.ndarray, decoder: str) -> Image:
    """Add the per-pixel probability of the predicted class as an Image layer."""
    confidence = np.asarray(probabilities).max(axis=0).astype(np.float32)
    nd = confidence.ndim
    layer = Image(
        confidence,
        name=unique_layer_name(viewer, f"{image.name} confidence ({decoder})"),
        colormap="viridis",
        contrast_limits=(0.0, 1.0),
        scale=tuple(image.scale)[-nd:],
        translate=tuple(image.translate)[-nd:],
        opacity=0.7,
        visible=False,
        metadata={ROLE_KEY: ROLE_CONFIDENCE, "source_image": image.name},
    )
    viewer.add_layer(layer)
    return layer


def merge_corrections(
    viewer: Any, prediction: Labels, snapshot: np.ndarray, user_labels: Labels
) -> tuple[Labels, int]:
    """Add the pixels changed on ``prediction`` since ``snapshot`` to a corrections layer.

    Parameters
    ----------
    viewer : napari.Viewer
    prediction : napari.layers.Labels
        Our prediction layer the user painted on.
    snapshot : numpy.ndarray
        Its data as we produced it.
    user_labels : napari.layers.Labels
        The labels layer training used for this image. It is read, never written; if
        it already is our corrections layer, that layer is updated.

    Returns
    -------
    layer : napari.layers.Labels
        The ``"<labels> + corrections"`` layer holding labels plus corrections.
    n_changed : int
        Number of corrected pixels taken over.
    """
    now = np.asarray(prediction.data)
    changed = (now != snapshot) & (now > 0)
    n_changed = int(changed.sum())
    if role(user_labels) == ROLE_CORRECTIONS:
        target: Labels | None = user_labels
    else:
        name = f"{user_labels.name} + corrections"
        target = next(
            (
                ly
                for ly in viewer.layers
                if ly.name == name
                and role(ly) == ROLE_CORRECTIONS
                and ly.data.shape == user_labels.data.shape
            ),
            None,
        )
    if target is not None:
        base = np.asarray(target.data)
        dtype = np.promote_types(base.dtype, now.dtype)
        target.data = np.where(changed, now, base).astype(dtype, copy=False)
        return target, n_changed
    base = np.array(user_labels.data, copy=True)
    dtype = np.promote_types(base.dtype, now.dtype)
    merged = np.where(changed, now, base).astype(dtype, copy=False)
    target = Labels(
        merged,
        name=unique_layer_name(viewer, f"{user_labels.name} + corrections"),
        scale=tuple(user_labels.scale),
        translate=tuple(user_labels.translate),
        metadata={
            ROLE_KEY: ROLE_CORRECTIONS,
            "source_labels": user_labels.name,
            "class_names": list((user_labels.metadata or {}).get("class_names") or []),
        },
    )
    index = viewer.layers.index(user_labels) + 1 if user_labels in viewer.layers else None
    if index is None:
        viewer.add_layer(target)
    else:
        viewer.layers.insert(index, target)
    return target, n_changed
