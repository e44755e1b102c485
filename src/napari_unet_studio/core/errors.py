"""Errors with plain-language messages, shown verbatim to users (GUI and CLI).

Every message says what went wrong in words a biologist uses and what to do about it.
Catch :class:`UNetStudioError` to handle all of them; the subclasses also derive from
the matching built-in exception so generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations

__all__ = ["UNetStudioError", "DataError", "ModelFileError", "DeviceError"]


class UNetStudioError(Exception):
    """Base class of every error napari-unet-studio raises on purpose."""


class DataError(UNetStudioError, ValueError):
    """The images or labels cannot be used (shapes, values, missing labels...)."""


class ModelFileError(UNetStudioError, ValueError):
    """A model file is missing, damaged, or not a U-Net Studio model."""


class DeviceError(UNetStudioError, RuntimeError):
    """The requested compute device is unavailable or ran out of memory."""
