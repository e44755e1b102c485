"""OME-Zarr / zarr / TIFF images as lazy dask arrays, and OME-Zarr prediction stores.

Reading uses ``zarr`` (v2 and v3 stores) and the OME-NGFF ``multiscales`` metadata
(versions 0.4 and 0.5); writing uses ``zarr`` for the arrays (created empty, filled chunk
by chunk by the block runner) and ``ome-zarr``'s metadata writers
(``write_multiscales_metadata``, ``write_label_metadata``), so the result is what
napari's OME-Zarr reader, vizarr and other NGFF viewers expect.

A prediction store ``OUT.zarr`` is an OME-Zarr image with a ``labels`` group::

    OUT.zarr/0                     class ids 1..K (uint8), the input's axes (c of size 1)
    OUT.zarr/labels/classes/0      the same class ids as an image-label (napari: Labels)
    OUT.zarr/labels/instances/0    instance ids (uint32), only with instances
    OUT.zarr/probabilities/0       float32 class probabilities (c = K), only if asked

All arrays use the input's chunks and physical scale.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ImageSource",
    "PredictionStore",
    "create_prediction_store",
    "is_zarr_path",
    "open_image",
    "read_label_image",
]

DEFAULT_CHUNK = 1024
_SPACE = {"x", "y", "z"}


def is_zarr_path(path: str | os.PathLike) -> bool:
    """True for a path that names a zarr store (``*.zarr``, or a folder with zarr metadata)."""
    p = Path(str(path).rstrip("/"))
    if p.suffix.lower() == ".zarr":
        return True
    return p.is_dir() and any((p / n).exists() for n in ("zarr.json", ".zgroup", ".zarray"))


def _guess_axes(shape: tuple[int, ...]) -> str:
    nd = len(shape)
    if nd == 2:
        return "yx"
    if nd == 3:
        return "yxc" if shape[-1] <= 4 else "zyx"
    if nd == 4:
        return "zyxc" if shape[-1] <= 4 else "czyx"
    if nd == 5:
        return "tczyx"
    raise ValueError(f"Cannot guess the axes of an image of shape {shape}.")


def _ome_attrs(attrs: dict) -> tuple[dict, str | None]:
    """The NGFF attributes of a group and their version (0.5 keeps them under ``ome``)."""
    if "ome" in attrs:
        ome = dict(attrs["ome"])
        return ome, str(ome.get("version", "0.5"))
    if "multiscales" in attrs:
        ms = attrs["multiscales"]
        return dict(attrs), str(ms[0].get("version", "0.4")) if ms else "0.4"
    return dict(attrs), None


@dataclass
class ImageSource:
    """A lazily opened image: where it is, its axes, scale and chunking.

    Attributes
    ----------
    path : str
        File or store path (workers reopen the image from it).
    array_path : str
        Path of the array inside the store ("" for a bare array or a TIFF).
    level : int
        Multiscale level (0 = full resolution).
    axes : str
        One letter per axis, e.g. ``"tczyx"`` or ``"yx"``.
    scale : tuple of float
        Physical pixel size per axis (1.0 where unknown).
    units : dict
        Unit per axis name where the metadata gives one.
    chunks : tuple of int
        Chunk edge per axis.
    shape, dtype
        Of the array.
    kind : str
        ``"ome-zarr"``, ``"zarr"`` or ``"tiff"``.
    ome_version : str or None
        NGFF version of the input ("0.4", "0.5"), ``None`` if it had none.
    levels : list of str
        Array paths of all levels (multiscale), ``[array_path]`` otherwise.
    """

    path: str
    array_path: str
    level: int
    axes: str
    scale: tuple[float, ...]
    units: dict[str, str]
    chunks: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: np.dtype
    kind: str
    ome_version: str | None = None
    levels: list[str] = field(default_factory=list)

    def dask(self, level: int | None = None) -> Any:
        """The image (or another level of it) as a lazy dask array."""
        import dask.array as da

        if self.kind == "tiff":
            import tifffile
            import zarr

            store = tifffile.imread(self.path, aszarr=True)
            z = zarr.open(store, mode="r")
            if hasattr(z, "shape"):
                return da.from_zarr(z)
            return da.from_zarr(z[str(self.level)])
        path = self.levels[self.level if level is None else level] if self.levels else ""
        return da.from_zarr(self.path, component=path or None)

    def spec(self) -> dict:
        """A small picklable description (sent to cluster workers, who reopen it)."""
        return {"path": self.path, "level": self.level}


def open_image(path: str | os.PathLike, level: int = 0) -> ImageSource:
    """Open an OME-Zarr image, a zarr array or a TIFF lazily (nothing is read but metadata).

    Parameters
    ----------
    path : str or path
        ``*.zarr`` (OME-Zarr multiscale image, or a plain zarr array / group holding
        one array) or ``*.tif``.
    level : int
        Multiscale level to use (0 = full resolution; negative counts from the end).

    Returns
    -------
    ImageSource
    """
    import zarr

    path = str(path).rstrip("/")
    if not is_zarr_path(path):
        return _open_tiff(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"No such zarr store: '{path}'")
    node = zarr.open(path, mode="r")
    if isinstance(node, zarr.Array):
        axes = _guess_axes(node.shape)
        return ImageSource(path, "", 0, axes, (1.0,) * node.ndim, {}, tuple(node.chunks),
                           tuple(node.shape), node.dtype, "zarr", None, [""])
    ome, version = _ome_attrs(dict(node.attrs))
    if version is None or not ome.get("multiscales"):
        arrays = sorted(name for name, _ in node.arrays())
        if not arrays:
            raise ValueError(f"'{path}' holds no image: no OME-Zarr multiscales and no array.")
        arr = node[arrays[0]]
        axes = _guess_axes(arr.shape)
        return ImageSource(path, arrays[0], 0, axes, (1.0,) * arr.ndim, {}, tuple(arr.chunks),
                           tuple(arr.shape), arr.dtype, "zarr", None, [arrays[0]])
    ms = ome["multiscales"][0]
    datasets = ms["datasets"]
    if not -len(datasets) <= level < len(datasets):
        raise ValueError(f"'{path}' has {len(datasets)} levels; level {level} does not exist.")
    level = level % len(datasets)
    ds = datasets[level]
    arr = node[ds["path"]]
    raw_axes = ms.get("axes") or list(_guess_axes(arr.shape))
    names = [a["name"] if isinstance(a, dict) else str(a) for a in raw_axes]
    units = {a["name"]: a["unit"] for a in raw_axes if isinstance(a, dict) and a.get("unit")}
    scale = np.ones(arr.ndim)
    for tr in [*ms.get("coordinateTransformations", []), *ds.get("coordinateTransformations", [])]:
        if tr.get("type") == "scale":
            scale = scale * np.asarray(tr["scale"], dtype=float)
    if any(len(n) != 1 for n in names):
        raise ValueError(f"Unsupported axis names {names} in '{path}'.")
    return ImageSource(path, ds["path"], level, "".join(names), tuple(float(s) for s in scale),
                       units, tuple(arr.chunks), tuple(arr.shape), arr.dtype, "ome-zarr",
                       version, [d["path"] for d in datasets])


def _open_tiff(path: str) -> ImageSource:
    import tifffile

    if not Path(path).is_file():
        raise FileNotFoundError(f"No such file: '{path}'")
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        shape = tuple(int(s) for s in series.shape)
        dtype = np.dtype(series.dtype)
    axes = _guess_axes(shape)
    chunks = tuple(min(s, DEFAULT_CHUNK) if a in _SPACE - {"z"} else 1
                   for a, s in zip(axes, shape))
    return ImageSource(path, "", 0, axes, (1.0,) * len(shape), {}, chunks, shape, dtype,
                       "tiff", None, [""])


def working_layout(src: ImageSource, in_channels: int) -> tuple[list[int], str | None]:
    """Axis order that turns the source into ``(S, Y, X, C)`` and the stack axis name.

    Returns the permutation of the source axes (stack, y, x, c; missing ones absent) and
    the name of the stack axis (``"z"`` or ``"t"``) or ``None`` for a 2D image. Axes of
    size 1 other than y/x are dropped.
    """
    from ..core.errors import DataError

    axes, shape = src.axes, src.shape
    if "y" not in axes or "x" not in axes:
        raise DataError(f"The image axes '{axes}' have no y and x.")
    size = dict(zip(axes, shape))
    stacked = [a for a in axes if a in "zt" and size[a] > 1]
    if len(stacked) > 1:
        raise DataError(f"The image has both z ({size['z']}) and t ({size['t']}) longer "
                        "than 1; predict one time point (or one z) at a time.")
    channels = size.get("c", 1)
    if channels != in_channels:
        raise DataError(f"This model expects {in_channels} channel(s); the image has "
                        f"{channels} (axes '{axes}', shape {tuple(shape)}).")
    order = [axes.index(a) for a in [*stacked, "y", "x"]]
    if "c" in axes:
        order.append(axes.index("c"))
    extra = [a for a in axes if a not in {*stacked, "y", "x", "c"}]
    if any(size[a] != 1 for a in extra):
        raise DataError(f"Cannot predict axes {extra} of the image (axes '{axes}').")
    return order, (stacked[0] if stacked else None)


def working_array(src: ImageSource, in_channels: int) -> tuple[Any, str | None]:
    """The source as a lazy dask array ``(S, Y, X, C)`` (S = 1 for 2D) and its stack axis."""
    arr = src.dask()
    order, stack = working_layout(src, in_channels)
    drop = tuple(i for i in range(arr.ndim) if i not in order)
    arr = arr.transpose([*order, *drop]).reshape(
        tuple(arr.shape[i] for i in order)) if drop else arr.transpose(order)
    if stack is None:
        arr = arr[None]
    if "c" not in src.axes:
        arr = arr[..., None]
    return arr, stack


@dataclass
class PredictionStore:
    """The arrays of an open prediction store and how to index them per block.

    ``index(z, ys, xs, channel)`` gives the selection of one region of the working
    layout in the stored arrays (which keep the input's axes).
    """

    path: str
    axes: str
    stack: str | None
    arrays: dict[str, Any]
    prob_axes: str = ""

    def index(self, zs: slice, ys: slice, xs: slice, channels: bool = False) -> tuple:
        """Selection of a working-layout region in the label (or probability) arrays."""
        sel = []
        for a in (self.prob_axes if channels else self.axes):
            if a == "y":
                sel.append(ys)
            elif a == "x":
                sel.append(xs)
            elif a == self.stack:
                sel.append(zs)
            elif a == "c" and channels:
                sel.append(slice(None))
            else:
                sel.append(slice(0, 1))
        return tuple(sel)


def _out_axes(src: ImageSource, probabilities: bool) -> str:
    axes = src.axes
    if "c" in axes or not probabilities:
        return axes
    pos = 1 if axes.startswith("t") else 0
    return axes[:pos] + "c" + axes[pos:]


def _axes_meta(axes: str, units: dict[str, str]) -> list[dict]:
    kinds = {"t": "time", "c": "channel"}
    out = []
    for a in axes:
        d = {"name": a, "type": kinds.get(a, "space")}
        if a in units:
            d["unit"] = units[a]
        out.append(d)
    return out


def _fmt(version: str):
    from ome_zarr.format import FormatV04, FormatV05

    if version == "0.4":
        return FormatV04(), 2
    if version == "0.5":
        return FormatV05(), 3
    raise ValueError(f"Unsupported OME-Zarr version {version!r}; use 0.4 or 0.5.")


def create_prediction_store(
    path: str | os.PathLike,
    src: ImageSource,
    num_classes: int,
    *,
    class_names: list[str] | None = None,
    probabilities: bool = False,
    instances: bool = False,
    resume: bool = True,
    ome_version: str | None = None,
    chunks: dict[str, int] | None = None,
    signature: dict | None = None,
) -> PredictionStore:
    """Create (or, with ``resume``, reopen) the OME-Zarr prediction store for ``src``.

    The arrays are created empty with the input's chunks (or ``chunks``, per axis name)
    and scale; the block runner fills them chunk by chunk. An existing store with the same
    layout (and the same ``signature``: model, tiling, input) is reopened when ``resume``
    is true so that finished chunks are kept; anything else raises ``DataError``.
    """
    import zarr
    from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

    from ..core.errors import DataError

    path = str(path).rstrip("/")
    version = ome_version or (src.ome_version if src.ome_version in ("0.4", "0.5") else "0.5")
    fmt, zfmt = _fmt(version)
    in_ch = dict(zip(src.axes, src.shape)).get("c", 1)
    _, stack = working_layout(src, in_ch)
    lab_axes = _out_axes(src, False)
    prob_axes = _out_axes(src, True)
    size = dict(zip(src.axes, src.shape))
    chunk_of = dict(zip(src.axes, src.chunks))
    chunk_of.update(chunks or {})

    def geometry(axes: str, c: int) -> tuple[tuple[int, ...], tuple[int, ...], list]:
        shape = tuple(c if a == "c" else size[a] for a in axes)
        ch = tuple(1 if a == "c" else min(size[a], int(chunk_of.get(a, DEFAULT_CHUNK)))
                   for a in axes)
        sc = [1.0 if a == "c" else dict(zip(src.axes, src.scale))[a] for a in axes]
        return shape, ch, [{"path": "0", "coordinateTransformations":
                            [{"type": "scale", "scale": sc}]}]

    wanted = {"0": (lab_axes, 1, "uint8" if num_classes < 256 else "uint16")}
    wanted["labels/classes/0"] = wanted["0"]
    if instances:
        wanted["labels/instances/0"] = (lab_axes, 1, "uint32")
        wanted["_scratch/instances"] = (lab_axes, 1, "uint32")  # block ids before stitching
    if probabilities:
        wanted["probabilities/0"] = (prob_axes, num_classes, "float32")
    if resume and Path(path).exists():
        try:
            root = zarr.open_group(path, mode="r+")
            if "_scratch/instances" in wanted and "_scratch" not in root:
                del wanted["_scratch/instances"]  # a finished run: its ids are final
            arrays = {k: root[k] for k in wanted}
            ok = all(arrays[k].shape == geometry(ax, c)[0] for k, (ax, c, _) in wanted.items())
            stored = dict(root.attrs).get("napari_unet_studio", {}).get("signature")
            ok = ok and (signature is None or stored == signature)
        except (KeyError, FileNotFoundError, ValueError, TypeError):
            ok = False
        if ok:
            return PredictionStore(path, lab_axes, stack, arrays, prob_axes)
        raise DataError(f"'{path}' exists but does not hold this prediction (other image, "
                        "model or options); choose another --out or add --overwrite.")
    root = zarr.open_group(path, mode="w", zarr_format=zfmt)
    arrays = {}
    names = class_names or [f"class {i}" for i in range(1, num_classes + 1)]
    for key, (axes, c, dtype) in wanted.items():
        shape, ch, datasets = geometry(axes, c)
        gname, aname = key.rsplit("/", 1) if "/" in key else ("", key)
        group = root.require_group(gname) if gname else root
        arrays[key] = group.create_array(aname, shape=shape, chunks=ch, dtype=dtype,
                                         fill_value=0, overwrite=True)
        if gname == "_scratch":
            continue
        write_multiscales_metadata(group, datasets, fmt=fmt, axes=_axes_meta(axes, src.units),
                                   name=gname.rsplit("/", 1)[-1] if gname else "prediction")
    labels = root["labels"]
    rng = np.random.default_rng(0)
    colors = [{"label-value": i, "rgba": [int(v) for v in rng.integers(40, 255, 3)] + [255]}
              for i in range(1, num_classes + 1)]
    props = [{"label-value": i, "class": n} for i, n in enumerate(names, start=1)]
    write_label_metadata(labels, "classes", colors=colors, properties=props, fmt=fmt)
    if instances:
        write_label_metadata(labels, "instances", fmt=fmt)
    root.attrs.update({"napari_unet_studio": {"classes": names, "source": src.path,
                                              "level": src.level, "signature": signature}})
    return PredictionStore(path, lab_axes, stack, arrays, prob_axes)


def read_label_image(path: str | os.PathLike, name: str = "classes") -> Any:
    """A label image of a prediction store (``classes`` or ``instances``) as a dask array."""
    import dask.array as da

    return da.from_zarr(str(path), component=f"labels/{name}/0")


def chunk_written(arr: Any, chunk_index: tuple[int, ...]) -> bool:
    """True if the chunk at ``chunk_index`` of a local zarr array exists on disk."""
    store = getattr(arr, "store", None)
    root = getattr(store, "root", None)
    if root is None:  # not a local store: cannot tell, so recompute
        return False
    base = Path(str(root)) / arr.path
    meta = arr.metadata
    if getattr(meta, "zarr_format", 3) == 2:
        sep = getattr(meta, "dimension_separator", ".") or "."
        return (base / sep.join(str(i) for i in chunk_index)).exists()
    return (base / "c" / "/".join(str(i) for i in chunk_index)).exists()


def chunk_grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Number of chunks per axis."""
    return tuple(math.ceil(s / c) for s, c in zip(shape, chunks))
