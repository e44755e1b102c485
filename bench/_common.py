"""Shared helpers for the benchmarks: data, scribbles, metrics, the random-forest baseline.

Everything here is deterministic for a given seed. Nothing imports Qt or napari.

- :func:`nuclei_data` -- the DSB2018 nuclei image shipped with the package, its shipped
  scribbles (what a user gets from *File > Open Sample*) and the full ground truth.
- :func:`textured_scene` -- a generated 512 x 512 RGB scene with 4 classes that differ in
  colour *and* texture (overlapping colour distributions, noise), with exact ground truth.
- :func:`nuclei_sparse_scribbles` -- sparser nuclei strokes, nothing near a border.
- :func:`make_scribbles` -- user-like strokes from a ground truth: skeletons of eroded
  objects for the object classes, straight lines kept away from objects for class 1.
- :func:`iou_per_class`, :func:`boundary_f1` -- metrics against the full ground truth.
- :func:`random_forest_segment` -- scikit-image's ``fit_segmenter``/``predict_segmenter``
  on ``multiscale_basic_features`` with a scikit-learn random forest (what Convpaint or
  ilastik give a user).
- :func:`machine_description` -- cores, CPU model, versions, date for the result files.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "nuclei_data",
    "textured_scene",
    "make_scribbles",
    "nuclei_sparse_scribbles",
    "iou_per_class",
    "class_edges",
    "boundary_f1",
    "evaluate",
    "rf_features",
    "random_forest_segment",
    "machine_description",
]


# ------------------------------------------------------------------------------ data
def nuclei_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DSB2018 nuclei: ``image`` (512, 512) uint8, shipped ``scribbles``, ``truth``.

    Labels: 1 = background, 2 = nucleus (scribbles: 0 = unlabeled).
    """
    from napari_unet_studio._sample_data import load_nuclei

    image, scribbles, truth = load_nuclei()
    return np.asarray(image), np.asarray(scribbles), np.asarray(truth)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to zero mean, unit standard deviation."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return (f - f.mean()) / (f.std() + 1e-12)


def textured_scene(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 4-class RGB scene whose classes differ in colour and texture.

    Class 1 (background): mottled low-frequency texture. Class 2: blobs with diagonal
    stripes. Class 3: blobs with a dotted pattern. Class 4: blobs with coarse grain.
    The class colours are close enough that colour alone does not separate them
    (texture is needed), and every pixel gets strong sensor noise.

    Returns
    -------
    image : numpy.ndarray
        ``(size, size, 3)`` uint8.
    truth : numpy.ndarray
        ``(size, size)`` uint8, classes 1..4 everywhere.
    """
    rng = np.random.default_rng(seed)
    shape = (size, size)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    truth = np.ones(shape, np.uint8)
    # irregular regions: thresholded smooth noise fields, painted in turn (later wins)
    for cls, sigma, thr in ((2, 18.0, 1.0), (3, 14.0, 1.05), (4, 22.0, 1.0)):
        field = _smooth_noise(rng, shape, sigma)
        truth[field > thr] = cls
    # remove specks so every region is a paintable object
    for cls in (2, 3, 4):
        lab, n = ndi.label(truth == cls)
        sizes = ndi.sum(np.ones(shape), lab, index=np.arange(1, n + 1))
        for i, s in enumerate(sizes, start=1):
            if s < 150:
                truth[lab == i] = 1
    base = {
        1: np.array([120.0, 120.0, 110.0]),
        2: np.array([150.0, 115.0, 100.0]),
        3: np.array([115.0, 130.0, 150.0]),
        4: np.array([135.0, 135.0, 120.0]),
    }
    image = np.zeros((*shape, 3))
    for cls, colour in base.items():
        image[truth == cls] = colour
    mottle = _smooth_noise(rng, shape, 6.0)[..., None] * 18.0  # background texture
    image[truth == 1] += mottle[truth == 1]
    stripes = np.sin((yy + xx) * 2 * np.pi / 7.0)[..., None] * 28.0
    image[truth == 2] += stripes[truth == 2]
    dots = (((yy % 6) < 3) & ((xx % 6) < 3))[..., None] * 40.0 - 20.0
    image[truth == 3] += dots[truth == 3]
    grain = _smooth_noise(rng, shape, 1.0)[..., None] * np.array([30.0, 30.0, 10.0])
    image[truth == 4] += grain[truth == 4]
    image += rng.normal(0.0, 14.0, image.shape)  # sensor noise everywhere
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image, truth


# ------------------------------------------------------------------------- scribbles
def _skeleton_strokes(obj: np.ndarray, erode: int) -> np.ndarray:
    from skimage.morphology import skeletonize

    inner = ndi.binary_erosion(obj, iterations=erode)
    if inner.sum() < 10:
        return np.zeros_like(obj)
    return ndi.binary_dilation(skeletonize(inner), iterations=1) & inner


def make_scribbles(
    truth: np.ndarray,
    background: int = 1,
    every: int = 3,
    erode: int = 3,
    margin: float = 6.0,
    n_lines: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """User-like sparse strokes from a full ground truth.

    Object classes (all but ``background``): the skeleton (dilated by one pixel, kept
    inside the eroded object) of one connected region out of ``every`` per class, at
    least one per class. Background: ``n_lines`` random straight segments (3 px wide)
    kept only where the nearest object is more than ``margin`` pixels away. No stroke
    touches a class boundary.

    Returns
    -------
    numpy.ndarray
        uint8 of ``truth``'s shape, 0 = unlabeled, class ids elsewhere.
    """
    from skimage.draw import line

    rng = np.random.default_rng(seed)
    out = np.zeros(truth.shape, np.uint8)
    h, w = truth.shape
    for cls in np.unique(truth):
        if cls == background:
            continue
        lab, n = ndi.label(truth == cls)
        order = rng.permutation(n) + 1
        picked = 0
        for i, region in enumerate(order):
            if i % every:
                continue
            s = _skeleton_strokes(lab == region, erode)
            if s.any():
                out[s] = cls
                picked += 1
        if not picked:  # at least one region per class
            for region in order:
                s = _skeleton_strokes(lab == region, 1)
                if s.any():
                    out[s] = cls
                    break
    far = ndi.distance_transform_edt(truth == background) > margin
    lines = np.zeros(truth.shape, bool)
    for _ in range(n_lines):
        y0, y1 = rng.integers(0, h, size=2)
        x0, x1 = rng.integers(0, w, size=2)
        rr, cc = line(int(y0), int(x0), int(y1), int(x1))
        lines[rr, cc] = True
    lines = ndi.binary_dilation(lines, iterations=1) & far
    out[lines & (out == 0)] = background
    return out


def nuclei_sparse_scribbles(truth: np.ndarray) -> np.ndarray:
    """Sparser nuclei strokes with nothing near a border (about 1.8 % of the pixels).

    Skeletons inside one nucleus region in three (eroded by 2 px) and eight background
    lines kept more than 6 px from every nucleus: a user's first strokes, before any
    correction near the borders. ``truth``: 1 = background, 2 = nucleus.
    """
    return make_scribbles(truth, background=1, every=3, erode=2, margin=6.0, n_lines=8, seed=0)


# --------------------------------------------------------------------------- metrics
def iou_per_class(pred: np.ndarray, truth: np.ndarray, classes: Any) -> dict[int, float]:
    """Intersection over union of each class (``nan`` if absent from both)."""
    res = {}
    for k in classes:
        p, t = pred == k, truth == k
        union = np.logical_or(p, t).sum()
        res[int(k)] = float(np.logical_and(p, t).sum() / union) if union else float("nan")
    return res


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=1)


def class_edges(lab: np.ndarray) -> np.ndarray:
    """Pixels of a 2D label image whose 4-neighbourhood holds another class."""
    e = np.zeros(lab.shape, bool)
    e[:-1] |= lab[:-1] != lab[1:]
    e[1:] |= lab[:-1] != lab[1:]
    e[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    e[:, 1:] |= lab[:, :-1] != lab[:, 1:]
    return e


def boundary_f1(pred: np.ndarray, truth: np.ndarray, tolerance: float = 2.0) -> float:
    """Boundary F1 of the class partition: a boundary pixel matches within ``tolerance``.

    Boundaries are :func:`class_edges`.
    """
    bp, bt = class_edges(pred), class_edges(truth)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    dt_t = ndi.distance_transform_edt(~bt)
    dt_p = ndi.distance_transform_edt(~bp)
    precision = float((dt_t[bp] <= tolerance).mean())
    recall = float((dt_p[bt] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate(pred: np.ndarray, truth: np.ndarray, foreground: int | None = None) -> dict:
    """IoU per class, mean IoU, boundary F1 and (optionally) the foreground class IoU."""
    classes = [int(k) for k in np.unique(truth)]
    per = iou_per_class(pred, truth, classes)
    res = {
        "iou": {str(k): round(v, 4) for k, v in per.items()},
        "miou": round(float(np.nanmean(list(per.values()))), 4),
        "boundary_f1": round(boundary_f1(pred, truth), 4),
    }
    if foreground is not None:
        res["fg_iou"] = round(per[foreground], 4)
    return res


# ---------------------------------------------------------------------- RF baseline
def rf_features(image: np.ndarray, rgb: bool) -> np.ndarray:
    """``skimage.feature.multiscale_basic_features`` (intensity, edges, texture, sigma 1-16)."""
    from skimage.feature import multiscale_basic_features

    img = image.astype(np.float32)
    return multiscale_basic_features(
        img, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=16,
        channel_axis=-1 if rgb else None,
    )


def random_forest_segment(
    image: np.ndarray, scribbles: np.ndarray, rgb: bool, seed: int = 0,
    n_estimators: int = 50, max_depth: int = 10, n_jobs: int = 2,
) -> tuple[np.ndarray, dict]:
    """Random-forest pixel classifier on the scribbles, like Convpaint / ilastik.

    Returns
    -------
    pred : numpy.ndarray
        Class ids at every pixel.
    info : dict
        ``{"seconds": ..., "features": ...}`` (feature extraction + fit + predict).
    """
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    feats = rf_features(image, rgb)
    clf = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, n_jobs=n_jobs, random_state=seed,
    )
    clf = fit_segmenter(scribbles, feats, clf)
    pred = predict_segmenter(feats, clf)
    return pred.astype(np.uint8), {
        "seconds": round(time.perf_counter() - t0, 2),
        "features": int(feats.shape[-1]),
    }


# --------------------------------------------------------------------------- machine
def machine_description() -> dict[str, Any]:
    """Cores, CPU model, memory, versions and date, for result files."""
    import numpy
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    mem_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem_gib = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version(), "torch": torch.__version__,
                                "numpy": numpy.__version__}
    for mod in ("skimage", "sklearn", "napari_unet_studio"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "versions": versions,
    }
