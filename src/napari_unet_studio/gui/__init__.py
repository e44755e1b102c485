"""The napari side of U-Net Studio: the dock widget, its panels and controllers.

Nothing here imports torch; the torch work runs in the worker process
(:mod:`napari_unet_studio.worker`).

Modules
-------
dock
    :class:`UNetStudioWidget`, which builds the panels and hands each controller its
    collaborators.
data, model_form, training, prediction, models
    One panel each (``model_form`` generates the settings with magicgui from the
    config dataclasses; ``models`` also holds the current-model slot and the reader
    hand-over).
train_controller, predict_controller, model_controller
    The logic behind the panels' buttons, talking to the worker client.
drain
    :class:`JobDrain`, the one helper that polls a worker job and dispatches its events.
layers, painting, plot, notify, widgets
    Layer roles and in-place updates, painted-region tracking, the loss curve,
    notifications, small widgets.
"""

__all__ = ["UNetStudioWidget"]


def __getattr__(name: str):
    if name == "UNetStudioWidget":
        from .dock import UNetStudioWidget

        return UNetStudioWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
