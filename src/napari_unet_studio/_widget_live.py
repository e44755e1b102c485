"""Train while you paint: the live prediction layer and the paint watcher.

The live layer ``"<image> prediction"`` is created once per image and then updated in
place (same layer object) for the slice the user is looking at. The paint watcher counts
the labels layers' ``paint``/``data`` events on the GUI thread and, at most every
``interval`` seconds, hands fresh copies of the labels to a callback; it never hashes or
compares big arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer
from qtpy.QtCore import QObject, QTimer

from ._widget_common import ROLE_KEY, ROLE_LIVE, layer_array, role, unique_layer_name


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

    It is inserted just below ``labels`` (so above the image when the labels are above
    it), at half opacity, with the labels' scale and translate. An existing live layer
    of ours with that name is reused; a user layer with that name is never touched.
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
    plane : array-like
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
    """Write a preview into the live layer in place; False if it no longer fits."""
    prediction = np.asarray(prediction)
    if key is None:
        if tuple(layer.data.shape) != prediction.shape:
            return False
        layer.data = prediction.astype(layer.data.dtype, copy=False)
        return True
    if not 0 <= key < layer.data.shape[0] or layer.data.shape[1:] != prediction.shape:
        return False
    layer.data[key] = prediction
    layer.refresh()
    return True


class PaintWatcher(QObject):
    """Notice painting on some labels layers and report fresh copies, throttled.

    Parameters
    ----------
    layers : list of napari.layers.Labels
        The labels layers being trained on.
    callback : callable
        Called on the GUI thread with no argument when any of them changed since the
        last call, at most once per ``interval`` seconds.
    interval : float
        Seconds between checks (a ``QTimer``; nothing runs between ticks).
    """

    def __init__(
        self, layers: list[Labels], callback: Callable[[], None], interval: float = 2.0
    ) -> None:
        super().__init__()
        self._layers = list(layers)
        self._callback = callback
        self._counter = 0
        self._seen = 0
        for layer in self._layers:
            layer.events.paint.connect(self._bump)
            layer.events.data.connect(self._bump)
        self.timer = QTimer(self)
        self.timer.setInterval(int(interval * 1000))
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _bump(self, *_: Any) -> None:
        self._counter += 1

    def _tick(self) -> None:
        if self._counter != self._seen:
            self._seen = self._counter
            self._callback()

    def close(self) -> None:
        """Stop the timer and disconnect from the layers."""
        self.timer.stop()
        for layer in self._layers:
            for emitter in (layer.events.paint, layer.events.data):
                try:
                    emitter.disconnect(self._bump)
                except (RuntimeError, TypeError, ValueError):  # already gone
                    pass
        self._layers = []


def is_live_layer(layer: Layer) -> bool:
    """True for our ``"<image> prediction"`` training preview layers."""
    return role(layer) == ROLE_LIVE
