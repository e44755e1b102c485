"""Build the shipped nuclei sample (image, scribbles, ground truth) from the DSB2018 files.

The source is the 2D example of the 2018 Data Science Bowl that the ``stardist`` wheel
ships as ``stardist/data/images/img2d.tif`` (image) and ``mask2d.tif`` (instance mask).
Run once (needs scikit-image and scipy, both napari dependencies)::

    python scripts/make_sample_data.py /path/to/stardist/data/images

Writes, under ``src/napari_unet_studio/data/``:

- ``nuclei_image.tif``: the image as uint8 (the source values 0..235 fit exactly).
- ``nuclei_mask.tif``: semantic ground truth, 1 = background, 2 = nucleus.
- ``nuclei_scribbles.tif``: sparse strokes, 0 = unlabeled, 1 = background, 2 = nucleus,
  about 2 % of the pixels, made deterministically from the mask.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.draw import line
from skimage.morphology import disk, skeletonize

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_unet_studio" / "data"


def nucleus_strokes(instances: np.ndarray, every: int = 3, min_area: int = 80) -> np.ndarray:
    """Skeletons of eroded nuclei, for every ``every``-th nucleus large enough.

    Parameters
    ----------
    instances : numpy.ndarray
        Instance mask, 0 = background.
    every : int
        Take one nucleus out of ``every`` (in label order).
    min_area : int
        Skip nuclei smaller than this many pixels.

    Returns
    -------
    numpy.ndarray
        Boolean stroke mask.
    """
    strokes = np.zeros(instances.shape, bool)
    ids = [i for i in np.unique(instances) if i != 0]
    for n, label_id in enumerate(ids):
        obj = instances == label_id
        if n % every or obj.sum() < min_area:
            continue
        inner = ndi.binary_erosion(obj, iterations=2)
        if inner.sum() < 10:
            continue
        strokes |= ndi.binary_dilation(skeletonize(inner), structure=disk(1)) & inner
    return strokes


def background_strokes(foreground: np.ndarray, margin: float = 4.0) -> np.ndarray:
    """A few straight lines across the image, kept only far from any nucleus.

    Parameters
    ----------
    foreground : numpy.ndarray
        Boolean nucleus mask.
    margin : float
        Minimum distance (pixels) from a nucleus for a stroke pixel.

    Returns
    -------
    numpy.ndarray
        Boolean stroke mask.
    """
    h, w = foreground.shape
    far = ndi.distance_transform_edt(~foreground) > margin
    lines = np.zeros(foreground.shape, bool)
    # fixed, hand-picked segments (fractions of the image size) crossing the background
    segments = [
        (0.05, 0.10, 0.30, 0.95),
        (0.40, 0.02, 0.95, 0.55),
        (0.70, 0.20, 0.75, 0.98),
        (0.15, 0.60, 0.95, 0.70),
        (0.02, 0.45, 0.55, 0.40),
    ]
    for y0, x0, y1, x1 in segments:
        rr, cc = line(int(y0 * (h - 1)), int(x0 * (w - 1)), int(y1 * (h - 1)), int(x1 * (w - 1)))
        lines[rr, cc] = True
    lines = ndi.binary_dilation(lines, structure=disk(1))
    return lines & far


def border_rings(
    instances: np.ndarray, every: int = 4, offset: int = 3, min_area: int = 80
) -> np.ndarray:
    """Partial rings of background just outside some nuclei (what an analyst paints).

    A one-pixel ring ``offset`` pixels outside every ``every``-th nucleus (starting
    with the second one), kept only where no nucleus is within 2 pixels, and only on
    the half facing the image centre so that strokes stay sparse.
    """
    foreground = instances > 0
    near_any = ndi.binary_dilation(foreground, iterations=2)
    rings = np.zeros(instances.shape, bool)
    ids = [i for i in np.unique(instances) if i != 0]
    h, w = instances.shape
    yy, xx = np.mgrid[:h, :w]
    for n, label_id in enumerate(ids):
        obj = instances == label_id
        if n % every != 1 or obj.sum() < min_area:
            continue
        outer = ndi.binary_dilation(obj, iterations=offset + 1)
        inner = ndi.binary_dilation(obj, iterations=offset)
        ring = outer & ~inner & ~near_any
        cy, cx = np.argwhere(obj).mean(axis=0)
        facing = (yy - cy) * (h / 2 - cy) + (xx - cx) * (w / 2 - cx) >= 0
        rings |= ring & facing
    return rings


def main(argv: list[str] | None = None) -> int:
    """Read the DSB2018 example files and write the sample data files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with img2d.tif and mask2d.tif")
    args = parser.parse_args(argv)
    image = tifffile.imread(args.source / "img2d.tif")
    instances = tifffile.imread(args.source / "mask2d.tif")
    if image.max() > 255:
        raise SystemExit("expected the DSB2018 example with values up to 255")
    image8 = image.astype(np.uint8)
    foreground = instances > 0
    mask = np.where(foreground, 2, 1).astype(np.uint8)
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[background_strokes(foreground) | border_rings(instances)] = 1
    scribbles[nucleus_strokes(instances)] = 2
    assert np.all(mask[scribbles > 0] == scribbles[scribbles > 0])
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("nuclei_image.tif", image8),
        ("nuclei_mask.tif", mask),
        ("nuclei_scribbles.tif", scribbles),
    ):
        tifffile.imwrite(OUT / name, data, compression="zlib")
    frac = (scribbles > 0).mean()
    sys.stdout.write(
        f"scribbles: {frac:.2%} of pixels "
        f"(background {(scribbles == 1).sum()}, nucleus {(scribbles == 2).sum()})\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
