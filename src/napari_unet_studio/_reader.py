"""Reader contribution: open a U-Net Studio model file (``*.pt``) in napari.

Dropping a model file on napari (or File > Open) hands its path to the U-Net Studio dock
(or keeps it until the dock opens), which asks its worker process to load it; the reader
adds no layer: it returns the null-layer sentinel ``[(None,)]``. Other ``.pt`` files are
left to other readers (``get_reader`` returns ``None``). bioimage.io packages (``.zip``)
exported by napari-unet-studio open the same way; other bioimage.io packages get a
warning that says why the plugin cannot open them. Nothing here imports torch:
a model file is recognised as a zip archive whose pickled dict carries our format
marker, and loading happens in the worker.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT_MARKER = b"napari-unet-studio-model"  # == core.checkpoint.FORMAT, kept torch-free

ReaderFunction = Callable[[Any], list[tuple]]


def is_model_file(path: str | os.PathLike) -> bool:
    """True if ``path`` looks like a model saved by napari-unet-studio.

    Reads only the small pickle record of the ``torch.save`` zip archive; never
    unpickles anything.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if not names:
                return False
            with archive.open(names[0]) as fh:
                head = fh.read(1 << 20)
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return FORMAT_MARKER in head


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """napari reader hook: a reader for U-Net Studio model files, else ``None``.

    Parameters
    ----------
    path : str or list of str
        What the user opened.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = str(path)
    if path.lower().endswith(".zip") and Path(path).is_file():
        kind = package_kind(path)  # bioimage.io packages: ours open, others get told why
        return {"ours": read_model, "foreign": read_foreign_package}.get(kind or "")
    if not path.lower().endswith(".pt") or not Path(path).is_file():
        return None
    if not is_model_file(path):
        return None
    return read_model


def package_kind(path: str | os.PathLike) -> str | None:
    """``"ours"`` for a bioimage.io package exported by napari-unet-studio, ``"foreign"``
    for another bioimage.io package, ``None`` for anything else (reads only rdf.yaml)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            rdf = next((n for n in ("rdf.yaml", "bioimageio.yaml") if n in names), None)
            if rdf is None:
                return None
            text = archive.read(rdf)[: 4 << 20]
    except (OSError, zipfile.BadZipFile, ValueError, KeyError):
        return None
    return "ours" if b"format: " + FORMAT_MARKER in text else "foreign"


def read_foreign_package(path: str | list[str]) -> list[tuple]:
    """Tell the user that this bioimage.io package is not one the plugin can open."""
    from napari.utils import notifications

    if isinstance(path, (list, tuple)):
        path = path[0]
    notifications.show_warning(
        f"'{Path(str(path)).name}' is a bioimage.io package that was not exported by "
        "napari-unet-studio; U-Net Studio can only open its own models. Run it with a "
        "bioimage.io tool (bioimageio.core, deepImageJ, ilastik) instead.")
    return [(None,)]


def read_model(path: str | list[str]) -> list[tuple]:
    """Hand the model file to the U-Net Studio dock (opening it if needed); adds no layer.

    The dock's worker loads the file; a damaged file is then reported by the dock as a
    napari error notification in plain words.
    """
    from napari.utils import notifications

    from .gui.models import deliver_model_path

    if isinstance(path, (list, tuple)):
        path = path[0]
    path = str(path)
    if deliver_model_path(path) or _open_widget():
        notifications.show_info(f"Opening model '{Path(path).name}' in U-Net Studio...")
    else:
        notifications.show_info(
            f"Model '{Path(path).name}' read; open Plugins > U-Net Studio to use it."
        )
    return [(None,)]


def _open_widget() -> bool:
    """Dock the U-Net Studio widget in the current viewer; it takes the pending model."""
    try:
        import napari

        viewer = napari.current_viewer()
        if viewer is None:
            return False
        viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
    except Exception:  # noqa: BLE001 - no window (headless) or plugin not registered
        return False
    from .gui.models import pending_paths

    return not pending_paths()


def get_zarr_reader(path: str | list[str]) -> ReaderFunction | None:
    """napari reader hook for OME-Zarr / zarr stores (``*.zarr``), e.g. our predictions.

    Opens the image lazily (all levels of a multiscale image, with its physical scale)
    and every label image of its ``labels`` group as a Labels layer.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = str(path).rstrip("/")
    if not path.lower().endswith(".zarr") or not Path(path).is_dir():
        return None
    return read_zarr


def _zarr_layer(path: str, kind: str, name: str) -> tuple:
    from .io.zarr_io import open_image

    src = open_image(path)
    levels = [src.dask(i) for i in range(len(src.levels) or 1)]
    axes = src.axes
    size = dict(zip(axes, src.shape))
    scale = list(src.scale)
    meta: dict[str, Any] = {"name": name}
    if "c" in axes:
        ci = axes.index("c")
        if size["c"] == 1 or kind == "labels":
            levels = [lv[(slice(None),) * ci + (0,)] for lv in levels]
            scale.pop(ci)
        else:
            meta["channel_axis"] = ci
            scale.pop(ci)
    meta["scale"] = scale
    if len(levels) > 1:
        meta["multiscale"] = True
    return (levels if len(levels) > 1 else levels[0], meta, kind)


def read_zarr(path: str | list[str]) -> list[tuple]:
    """Layers of an OME-Zarr store: the image, then its label images (lazy, dask)."""
    import zarr

    if isinstance(path, (list, tuple)):
        path = path[0]
    path = str(path).rstrip("/")
    stem = Path(path).stem
    layers = [_zarr_layer(path, "image", stem)]
    root = zarr.open(path, mode="r")
    if isinstance(root, zarr.Group) and "labels" in root:
        attrs = dict(root["labels"].attrs)
        names = (attrs.get("ome") or attrs).get("labels") or []
        for name in names:
            layers.append(_zarr_layer(f"{path}/labels/{name}", "labels", f"{stem} {name}"))
    return layers
