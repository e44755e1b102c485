"""Shared helpers of the dock widget: notifications, error wording, layer utilities.

Nothing here imports torch. Notifications go through :mod:`napari.utils.notifications`,
looked up at call time, so tests can monkeypatch ``show_error`` / ``show_warning`` /
``show_info`` there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox

ROLE_KEY = "unet_studio_role"
ROLE_LIVE = "live"  # the "<image> prediction" layer refreshed during training
ROLE_PREDICTION = "prediction"  # "<image> prediction (<decoder>)" from the Predict button
ROLE_CONFIDENCE = "confidence"
ROLE_CORRECTIONS = "corrections"  # "<labels> + corrections"
OUR_ROLES = (ROLE_LIVE, ROLE_PREDICTION, ROLE_CONFIDENCE, ROLE_CORRECTIONS)


class UserProblem(Exception):
    """A problem with the user's input, explained in plain words (shown verbatim)."""


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification."""
    from napari.utils import notifications

    notifications.show_error(message)


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification."""
    from napari.utils import notifications

    notifications.show_warning(message)


def notify_info(message: str) -> None:
    """Show ``message`` as a napari info notification."""
    from napari.utils import notifications

    notifications.show_info(message)


def friendly_message(exc: BaseException, doing: str) -> str:
    """Turn any exception into a sentence for the user.

    Parameters
    ----------
    exc : BaseException
        What went wrong.
    doing : str
        What we were doing, e.g. ``"Training"``.

    Returns
    -------
    str
        The plain message of our own errors, a hint for out-of-memory errors, else
        the exception type and text after ``doing``.
    """
    text = str(exc).strip()
    if isinstance(exc, UserProblem):
        return text
    try:
        from .core.errors import UNetStudioError
    except ImportError:  # pragma: no cover - engine missing
        UNetStudioError = ()  # type: ignore[assignment]  # noqa: N806
    if UNetStudioError and isinstance(exc, UNetStudioError):
        return f"{doing} failed: {text}"
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            f"{doing} ran out of memory. Choose a smaller patch size, batch size or tile "
            "size in Advanced settings, or use the CPU."
        )
    first = text.splitlines()[0] if text else ""
    return f"{doing} failed with an unexpected error ({type(exc).__name__}: {first})."


def role(layer: Layer) -> str | None:
    """The role this plugin gave ``layer`` (``None`` for the user's own layers)."""
    meta = getattr(layer, "metadata", None) or {}
    value = meta.get(ROLE_KEY)
    return value if value in OUR_ROLES else None


def unique_layer_name(viewer: Any, base: str) -> str:
    """``base``, or ``base [2]``, ``base [3]``... whichever no layer uses yet."""
    names = {layer.name for layer in viewer.layers}
    if base not in names:
        return base
    k = 2
    while f"{base} [{k}]" in names:
        k += 1
    return f"{base} [{k}]"


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
    shape = (
        tuple(int(s) for s in image.data.shape)
        if not image.multiscale
        else tuple(int(s) for s in image.data[0].shape)
    )
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


def format_seconds(seconds: float | None) -> str:
    """``75.2`` -> ``"1 min 15 s"``; ``None`` -> ``"?"``."""
    if seconds is None or not np.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Throttle:
    """True at most once per ``interval`` seconds (for redraws and previews)."""

    def __init__(self, interval: float) -> None:
        self.interval = float(interval)
        self._last = -np.inf

    def ready(self, force: bool = False) -> bool:
        """Whether enough time passed since the last ``True`` (and start a new period)."""
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            return True
        return False


class LayerCombo(QComboBox):
    """Combo box of the viewer's layers of one type that follows ``viewer.layers``.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are listed.
    layer_type : type
        :class:`napari.layers.Image` or :class:`napari.layers.Labels`.
    accept : callable, optional
        Extra filter; layers for which it returns False are not listed.
    """

    layer_changed = Signal(object)

    def __init__(
        self,
        viewer: Any,
        layer_type: type,
        accept: Callable[[Layer], bool] | None = None,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._type = layer_type
        self._accept = accept
        self._layers: list[Layer] = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(10)
        self.currentIndexChanged.connect(self._emit_changed)
        self.refresh()

    def _emit_changed(self, _index: int) -> None:
        self.layer_changed.emit(self.layer())

    def layers(self) -> list[Layer]:
        """The layers listed, in viewer order."""
        return list(self._layers)

    def layer(self) -> Layer | None:
        """The chosen layer, or None."""
        index = self.currentIndex()
        if 0 <= index < len(self._layers):
            return self._layers[index]
        return None

    def set_layer(self, layer: Layer | None) -> None:
        """Choose ``layer`` (ignored if it is not listed)."""
        for i, candidate in enumerate(self._layers):
            if candidate is layer:
                self.setCurrentIndex(i)
                return

    def refresh(self) -> None:
        """Re-list the layers, keeping the current choice when it still exists."""
        current = self.layer()
        layers = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, self._type) and (self._accept is None or self._accept(layer))
        ]
        self.blockSignals(True)
        try:
            self.clear()
            self._layers = layers
            for layer in layers:
                self.addItem(layer.name)
            if current is not None and any(current is x for x in layers):
                self.setCurrentIndex([i for i, x in enumerate(layers) if x is current][0])
            elif layers:
                self.setCurrentIndex(len(layers) - 1 if current is None else 0)
        finally:
            self.blockSignals(False)
        if self.layer() is not current:
            self.layer_changed.emit(self.layer())


def is_user_labels(layer: Layer) -> bool:
    """Labels layers the user may train on: their own and our corrections layers."""
    return isinstance(layer, Labels) and role(layer) in (None, ROLE_CORRECTIONS)


def is_user_image(layer: Layer) -> bool:
    """Image layers that are not our confidence maps."""
    return isinstance(layer, Image) and role(layer) is None
