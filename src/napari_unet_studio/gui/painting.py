"""Notice the user painting while training runs, with the bounding box of each change.

napari Labels layers emit ``paint`` (a brush stroke, fill or polygon; the event's value
lists the history atoms, which carry the changed indices or a bounding box) and ``data``
(the whole array replaced). Undo/redo emit neither; they are noticed from the length
of the layer's undo/redo history at each tick. Nothing large is hashed or compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QObject, QTimer

Region = tuple[slice, ...]
ALL = None  # region meaning "the whole array"


def atom_region(atom: Any, ndim: int) -> Region | None:
    """Bounding box of one napari history atom; ``None`` if it cannot be told."""
    key = getattr(atom, "slice_key", None)
    if key is not None:
        return tuple(key)
    try:
        indices = atom[0]
        if len(indices) != ndim:
            return None
        arrays = [np.asarray(ix).ravel() for ix in indices]
        if not arrays or arrays[0].size == 0:
            return ()
        return tuple(slice(int(a.min()), int(a.max()) + 1) for a in arrays)
    except (TypeError, IndexError, ValueError):
        return None


def union(a: Region | None, b: Region | None) -> Region | None:
    """Smallest box holding both (``None`` = everything, ``()`` = nothing)."""
    if a is None or b is None:
        return None
    if a == ():
        return b
    if b == ():
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


class PaintWatcher(QObject):
    """Collect changed regions of some labels layers and report them, throttled.

    Parameters
    ----------
    layers : list of napari.layers.Labels
        The labels layers being trained on (index ``i`` = training pair ``i``).
    callback : callable
        ``callback(i, layer, region)`` on the GUI thread for each layer that changed
        since the last tick; ``region`` is a tuple of slices or ``None`` (all).
    interval : float
        Seconds between ticks (a ``QTimer``; nothing runs between ticks).
    """

    def __init__(
        self,
        layers: list[Labels],
        callback: Callable[[int, Labels, Region | None], None],
        interval: float = 1.0,
    ) -> None:
        super().__init__()
        self._layers = list(layers)
        self._callback = callback
        self._dirty: dict[int, Region | None] = {}
        self._handlers: list[tuple[Any, Callable]] = []
        self._history = [self._history_len(layer) for layer in self._layers]
        for i, layer in enumerate(self._layers):
            on_paint = self._make_paint_handler(i)
            on_data = self._make_data_handler(i)
            layer.events.paint.connect(on_paint)
            layer.events.data.connect(on_data)
            self._handlers += [(layer.events.paint, on_paint), (layer.events.data, on_data)]
        self.timer = QTimer(self)
        self.timer.setInterval(int(interval * 1000))
        self.timer.timeout.connect(self.flush)
        self.timer.start()

    @staticmethod
    def _history_len(layer: Labels) -> tuple[int, int]:
        return (len(getattr(layer, "_undo_history", ())), len(getattr(layer, "_redo_history", ())))

    def _mark(self, i: int, region: Region | None) -> None:
        self._dirty[i] = union(self._dirty[i], region) if i in self._dirty else region

    def _make_paint_handler(self, i: int) -> Callable[[Any], None]:
        def on_paint(event: Any) -> None:
            ndim = self._layers[i].data.ndim
            region: Region | None = ()
            for atom in getattr(event, "value", None) or [None]:
                region = union(region, atom_region(atom, ndim) if atom is not None else None)
            self._mark(i, region)
            self._history[i] = self._history_len(self._layers[i])

        return on_paint

    def _make_data_handler(self, i: int) -> Callable[[Any], None]:
        def on_data(_event: Any) -> None:
            self._mark(i, ALL)

        return on_data

    def flush(self) -> None:
        """Report what changed since the last call (the timer calls it)."""
        for i, layer in enumerate(self._layers):
            now = self._history_len(layer)
            if now != self._history[i]:  # undo or redo
                self._history[i] = now
                self._mark(i, ALL)
        dirty, self._dirty = self._dirty, {}
        for i, region in sorted(dirty.items(), key=lambda kv: kv[0]):
            if region == ():
                continue
            self._callback(i, self._layers[i], region)

    def close(self) -> None:
        """Stop the timer and disconnect from the layers."""
        self.timer.stop()
        for emitter, handler in self._handlers:
            try:
                emitter.disconnect(handler)
            except (RuntimeError, TypeError, ValueError):  # already gone
                pass
        self._handlers = []
        self._layers = []
