"""Objects from a class map: instances per class and their measurements (2D and 3D).

Instances of a class are its connected components; touching objects are split by a
watershed on the Euclidean distance transform of the class mask, seeded at the maxima
of the (slightly smoothed) distance that are at least ``min_distance`` pixels apart,
so two touching round nuclei become two objects while one elongated nucleus stays one.
Objects smaller than ``min_size`` pixels are removed (set to 0).

Measurements are first kept as per-object sums (pixel count, coordinate sums,
intensity sums, bounding boxes), so that pieces of one object measured in different
blocks of a big image add up exactly (:func:`combine_partials`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ObjectSettings",
    "find_instances",
    "partial_measurements",
    "combine_partials",
    "measure_objects",
    "write_csv",
    "COLUMNS",
]


@dataclass(frozen=True)
class ObjectSettings:
    """How to turn a class map into instances.

    Parameters
    ----------
    classes : tuple of int or None
        Class ids (1..K) to make objects of; ``None``: every class but class 1
        (conventionally the background).
    split : bool
        Split touching objects (distance-transform watershed); ``False``: connected
        components only.
    min_distance : int
        Smallest distance in pixels between two object centres when splitting.
    min_size : int
        Objects with fewer pixels (voxels) are removed.
    halo : int
        Big images only: pixels of context labelled around every block (rounded up to
        whole tiles). An object, or a clump of touching objects, that reaches further
        than this beyond a block border may be split differently than in memory.
    """

    classes: tuple[int, ...] | None = None
    split: bool = True
    min_distance: int = 4
    min_size: int = 10
    halo: int = 64

    def chosen(self, num_classes: int) -> list[int]:
        """The class ids to make objects of."""
        if self.classes is None:
            return list(range(2, num_classes + 1)) if num_classes > 1 else [1]
        return [int(c) for c in self.classes]


def _split(mask: np.ndarray, min_distance: int) -> np.ndarray:
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    cc, n = ndi.label(mask)
    if n == 0:
        return cc
    dist = ndi.distance_transform_edt(mask)
    smooth = ndi.gaussian_filter(dist, 1.0) * mask
    peaks = peak_local_max(smooth, min_distance=max(1, int(min_distance)), labels=cc,
                           exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # every component gets at least one seed (a flat one may have no strict maximum)
    seeded = np.zeros(n + 1, bool)
    seeded[cc[tuple(peaks.T)]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    if len(missing):
        centres = ndi.maximum_position(dist, cc, missing)
        for i, pos in enumerate(centres):
            markers[tuple(int(p) for p in pos)] = len(peaks) + 1 + i
    return watershed(-smooth, markers, mask=mask)


def find_instances(
    labels: np.ndarray, settings: ObjectSettings | None = None, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids (1..N, uint32, 0 = no object) for the chosen classes of ``labels``.

    Parameters
    ----------
    labels : numpy.ndarray
        Class ids, 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` (a volume: objects are 3D).
    settings : ObjectSettings, optional
    num_classes : int, optional
        K (default: the largest id in ``labels``).

    Returns
    -------
    instances : numpy.ndarray
        uint32, same shape; ids are consecutive from 1.
    classes : numpy.ndarray
        ``classes[i - 1]`` is the class of instance ``i``.
    """
    settings = settings or ObjectSettings()
    labels = np.asarray(labels)
    k = int(num_classes or (labels.max() if labels.size else 1))
    out = np.zeros(labels.shape, np.uint32)
    classes: list[np.ndarray] = []
    next_id = 1
    for c in settings.chosen(k):
        mask = labels == c
        if not mask.any():
            continue
        if settings.split:
            inst = _split(mask, settings.min_distance)
        else:
            from scipy import ndimage as ndi

            inst = ndi.label(mask)[0]
        counts = np.bincount(inst.ravel())
        keep = counts >= max(1, int(settings.min_size))
        keep[0] = False
        lut = np.zeros(len(counts), np.uint32)
        lut[keep] = np.arange(next_id, next_id + int(keep.sum()), dtype=np.uint32)
        sel = inst > 0
        out[sel] = lut[inst[sel]]
        classes.append(np.full(int(keep.sum()), c, np.int32))
        next_id += int(keep.sum())
    return out, (np.concatenate(classes) if classes else np.zeros(0, np.int32))


def partial_measurements(
    instances: np.ndarray,
    classes_of: np.ndarray | dict,
    intensity: np.ndarray | None = None,
    offset: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Per-object sums of one region: ids, class, count, coordinate sums, intensity sum, bbox.

    ``offset`` (the region's origin in the whole image) makes coordinates global;
    ``classes_of`` maps an id to its class (array indexed by ``id - 1`` or a dict).
    """
    inst = np.asarray(instances)
    nd = inst.ndim
    offset = np.zeros(nd, np.int64) if offset is None else np.asarray(offset, np.int64)
    flat = inst.ravel()
    ids = np.unique(flat)
    ids = ids[ids > 0]
    out: dict[str, np.ndarray] = {"id": ids.astype(np.int64)}
    if isinstance(classes_of, dict):
        out["class"] = np.array([classes_of.get(int(i), 0) for i in ids], np.int64)
    else:
        out["class"] = np.asarray(classes_of, np.int64)[ids.astype(np.int64) - 1] \
            if len(ids) else np.zeros(0, np.int64)
    if len(ids) == 0:
        for name in ("count", "isum"):
            out[name] = np.zeros(0)
        out["csum"] = np.zeros((0, nd))
        out["lo"] = np.zeros((0, nd), np.int64)
        out["hi"] = np.zeros((0, nd), np.int64)
        return out
    sel = np.flatnonzero(flat)
    pos = np.searchsorted(ids, flat[sel])
    n = len(ids)
    out["count"] = np.bincount(pos, minlength=n).astype(np.float64)
    coords = np.unravel_index(sel, inst.shape)
    out["csum"] = np.stack([np.bincount(pos, weights=coords[d] + offset[d], minlength=n)
                            for d in range(nd)], axis=1)
    lo = np.full((n, nd), np.iinfo(np.int64).max, np.int64)
    hi = np.full((n, nd), -1, np.int64)
    for d in range(nd):
        np.minimum.at(lo[:, d], pos, coords[d] + offset[d])
        np.maximum.at(hi[:, d], pos, coords[d] + offset[d])
    out["lo"], out["hi"] = lo, hi
    if intensity is not None:
        vals = np.asarray(intensity, np.float64).reshape(inst.size, -1)[sel].mean(axis=1)
        out["isum"] = np.bincount(pos, weights=vals, minlength=n)
    else:
        out["isum"] = np.full(n, np.nan)
    return out


def combine_partials(parts: Sequence[dict[str, np.ndarray]],
                     relabel=None) -> dict[str, np.ndarray]:
    """Add up partial sums of the same objects (optionally after mapping ids with ``relabel``)."""
    parts = [p for p in parts if len(p["id"])]
    if not parts:
        return partial_measurements(np.zeros((1, 1), np.uint32), {})
    ids = np.concatenate([p["id"] for p in parts])
    if relabel is not None:
        ids = np.asarray(relabel(ids), np.int64)
    keep = ids > 0
    uniq, pos = np.unique(ids[keep], return_inverse=True)
    n = len(uniq)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([p[name] for p in parts])[keep]

    out = {"id": uniq}
    cls = np.zeros(n, np.int64)
    cls[pos] = cat("class")
    out["class"] = cls
    out["count"] = np.bincount(pos, weights=cat("count"), minlength=n)
    out["isum"] = np.bincount(pos, weights=cat("isum"), minlength=n)
    cs, lo, hi = cat("csum"), cat("lo"), cat("hi")
    nd = cs.shape[1]
    out["csum"] = np.stack([np.bincount(pos, weights=cs[:, d], minlength=n)
                            for d in range(nd)], axis=1)
    glo = np.full((n, nd), np.iinfo(np.int64).max, np.int64)
    ghi = np.full((n, nd), -1, np.int64)
    for d in range(nd):
        np.minimum.at(glo[:, d], pos, lo[:, d])
        np.maximum.at(ghi[:, d], pos, hi[:, d])
    out["lo"], out["hi"] = glo, ghi
    return out


COLUMNS_2D = ["id", "class", "class_name", "area", "centroid_y", "centroid_x",
              "mean_intensity", "bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x"]
COLUMNS = COLUMNS_2D


def table(sums: dict[str, np.ndarray], class_names: Sequence[str] | None = None,
          scale: Sequence[float] | None = None) -> list[dict]:
    """Rows of the measurements table from (combined) partial sums.

    Columns: ``id``, ``class``, ``class_name``, ``area`` (2D, pixels) or ``volume`` (3D,
    voxels), ``centroid_[z]yx``, ``mean_intensity``, ``bbox_min_*`` and ``bbox_max_*``
    (inclusive-exclusive, in pixels); with ``scale`` also the physical size
    (``area_physical`` / ``volume_physical``).
    """
    nd = sums["csum"].shape[1] if sums["csum"].ndim == 2 else 2
    axes = "zyx"[-nd:]
    size_name = "volume" if nd == 3 else "area"
    rows = []
    for i in range(len(sums["id"])):
        cnt = float(sums["count"][i])
        c = int(sums["class"][i])
        row = {"id": int(sums["id"][i]), "class": c,
               "class_name": (class_names[c - 1] if class_names and 0 < c <= len(class_names)
                              else str(c)),
               size_name: int(cnt)}
        if scale is not None:
            row[f"{size_name}_physical"] = cnt * float(np.prod(list(scale)[-nd:]))
        for d, a in enumerate(axes):
            row[f"centroid_{a}"] = float(sums["csum"][i, d] / cnt)
        row["mean_intensity"] = float(sums["isum"][i] / cnt)
        for d, a in enumerate(axes):
            row[f"bbox_min_{a}"] = int(sums["lo"][i, d])
        for d, a in enumerate(axes):
            row[f"bbox_max_{a}"] = int(sums["hi"][i, d]) + 1
        rows.append(row)
    return rows


def measure_objects(instances: np.ndarray, classes_of: np.ndarray,
                    intensity: np.ndarray | None = None,
                    class_names: Sequence[str] | None = None,
                    scale: Sequence[float] | None = None) -> list[dict]:
    """The measurements table of an in-memory instance image (see :func:`table`)."""
    return table(partial_measurements(instances, classes_of, intensity), class_names, scale)


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """Write the measurements table as CSV (a header even when there are no objects)."""
    fields = list(rows[0]) if rows else COLUMNS
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, path)
