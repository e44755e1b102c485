"""Sample data for File > Open Sample: images with a few painted scribbles.

Each function returns napari layer data tuples: the image and a Labels layer named
``scribbles`` (0 = unlabeled, 1..K = classes) whose ``metadata["class_names"]`` lists the
class names in label order. Nothing here imports torch or Qt.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]

NUCLEI_CLASSES = ["background", "nucleus"]
MULTICLASS_CLASSES = ["background", "disc", "square"]


def _read_tif(name: str) -> np.ndarray:
    """Read one of the TIFF files shipped in ``napari_unet_studio/data``."""
    import tifffile

    with resources.as_file(resources.files("napari_unet_studio") / "data" / name) as path:
        return np.asarray(tifffile.imread(path))


def load_nuclei() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the DSB2018 nuclei image, its scribbles and its ground truth.

    Returns
    -------
    image : numpy.ndarray
        ``(512, 512)`` uint8 fluorescence image.
    scribbles : numpy.ndarray
        ``(512, 512)`` uint8, 0 = unlabeled, 1 = background, 2 = nucleus.
    mask : numpy.ndarray
        ``(512, 512)`` uint8 ground truth, 1 = background, 2 = nucleus.
    """
    return (
        _read_tif("nuclei_image.tif"),
        _read_tif("nuclei_scribbles.tif"),
        _read_tif("nuclei_mask.tif"),
    )


def nuclei_sample() -> list[LayerDataTuple]:
    """Nuclei (DSB2018, CC0) with background and nucleus scribbles.

    Returns
    -------
    list of tuple
        ``[(image, meta, "image"), (scribbles, meta, "labels")]``.
    """
    image, scribbles, _ = load_nuclei()
    return [
        (image, {"name": "nuclei", "colormap": "gray"}, "image"),
        (
            scribbles,
            {"name": "scribbles", "metadata": {"class_names": list(NUCLEI_CLASSES)}},
            "labels",
        ),
    ]


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_multiclass(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate the multi-class RGB example deterministically.

    Reddish dotted discs (class 2) and bluish striped squares (class 3) on a noisy
    greenish-grey background (class 1).

    Parameters
    ----------
    size : int
        Edge length of the square image.
    seed : int
        Seed of the random generator; the same seed gives the same arrays.

    Returns
    -------
    image : numpy.ndarray
        ``(size, size, 3)`` uint8 RGB image.
    scribbles : numpy.ndarray
        ``(size, size)`` uint8 sparse strokes, 0 = unlabeled, 1..3 = classes.
    truth : numpy.ndarray
        ``(size, size)`` uint8 ground truth, 1..3 everywhere.
    """
    rng = np.random.default_rng(seed)
    shape = (size, size)
    truth = np.ones(shape, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    strokes = np.zeros(shape, np.uint8)
    n_objects = max(4, (size * size) // 4000)
    placed: list[tuple[float, float, float]] = []
    for _ in range(50 * n_objects):  # rejection sampling: objects do not touch
        if len(placed) == n_objects:
            break
        r = rng.uniform(0.04, 0.08) * size
        cy, cx = rng.uniform(r + 2, size - r - 2, size=2)
        if all(np.hypot(cy - y, cx - x) > 1.5 * (r + q) + 3 for y, x, q in placed):
            placed.append((cy, cx, r))
    for i, (cy, cx, r) in enumerate(placed):
        cls = 2 + i % 2
        if cls == 2:
            obj = _disc(shape, cy, cx, r)
        else:
            obj = (np.abs(yy - cy) <= r * 0.9) & (np.abs(xx - cx) <= r * 0.9)
        truth[obj] = cls
        if i < len(placed) - 2:  # leave the last two objects without scribbles
            strokes[obj & (np.abs(yy - cy) <= 1) & (np.abs(xx - cx) <= r * 0.6)] = cls
    colours = {
        1: np.array([110.0, 125.0, 105.0]),
        2: np.array([190.0, 80.0, 70.0]),
        3: np.array([70.0, 95.0, 185.0]),
    }
    image = np.zeros((*shape, 3))
    for cls, colour in colours.items():
        image[truth == cls] = colour
    image[((yy // 4 + xx // 4) % 2 == 0) & (truth == 2)] *= 0.75  # dotted discs
    image[((yy + xx) // 5 % 2 == 0) & (truth == 3)] *= 1.25  # striped squares
    image += rng.normal(0.0, 18.0, image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    # background strokes: three horizontal and three vertical lines, kept off the objects
    lines = np.zeros(shape, bool)
    for k in (size // 7, size // 2, (6 * size) // 7):
        lines[k, :] = True
        lines[:, k] = True
    strokes[lines & ~_near(truth != 1, 4)] = 1
    return image, strokes, truth


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` (chessboard distance) of ``mask``: a cheap dilation."""
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def multiclass_sample() -> list[LayerDataTuple]:
    """Generated RGB image of discs and squares with scribbles for three classes.

    Returns
    -------
    list of tuple
        ``[(image, meta, "image"), (scribbles, meta, "labels")]``.
    """
    image, scribbles, _ = make_multiclass()
    return [
        (image, {"name": "shapes", "rgb": True}, "image"),
        (
            scribbles,
            {"name": "scribbles", "metadata": {"class_names": list(MULTICLASS_CLASSES)}},
            "labels",
        ),
    ]
