"""Probe: move the U-Net's nucleus contours to the image's edges, without labels.

The realistic suite's remaining misses are decided at the nucleus boundary (see
``bench/ceiling.py``). This probe asks whether an unsupervised post-step can place the
boundary better than the fixed 0.5 threshold of the nucleus probability: for each
evaluation image it picks, among candidate masks, the one whose contour has the highest
mean image gradient (Sobel of a Gaussian-smoothed image, sigma 1; ``core/edges.py``), in three ways:

- ``image-t``: one threshold in 0.2-0.8 for the whole image;
- ``object-t``: a threshold in 0.3-0.7 for each nucleus (the region around each 0.5
  component, grown by 3 px); ``-wide`` 0.2-0.8, ``-narrow`` 0.4-0.6, ``-m5`` / ``-m10``
  0.2-0.8 but keeping 0.5 unless another threshold's contour is 5 / 10 % stronger;
- ``object-shift``: each nucleus grown or shrunk by -2..2 px.

It also prints ``best-t``, the best single threshold per image chosen **with** the truth:
the headroom of any threshold choice. The forest and the 0.5 U-Net are the suite's usual
methods (150 steps, shipped start, one thread). Probabilities are cached in
``--cache`` so the analysis can be re-run without training::

    nice -n 19 python bench/edge_snap.py --seeds 0 1 2     # about 25 min on 2 cores
    python bench/edge_snap.py --gradient-check             # seconds, no training
    python bench/edge_snap.py --memory                     # one 4288 x 4288 plane
    python bench/edge_snap.py --cases scratch-timelapse --seeds 1 \
        --figure docs/images/edge_snap.png                  # the docs' picture

Writes ``bench/results/edge_snap.json`` (with the snap's time per megapixel, one
thread-free numpy/scipy pass); prints one row per case and seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import realistic as rl  # noqa: E402
import realistic_cases as rc  # noqa: E402

CASES = ("bbbc-gap-A9_p10d", "bbbc-gap-17P1_POS0011", "bbbc-gap-20P1_POS0007",
         "bbbc-inductive", "scratch-timelapse", "dsb-gap")
THRESHOLDS = np.round(np.arange(0.2, 0.81, 0.1), 2)
SHIFTS = (-2, -1, 0, 1, 2)
# per-object threshold variants: lowest and highest threshold, margin over 0.5
OBJECT_T = {"object-t": (0.3, 0.7, 0.0), "object-t-wide": (0.2, 0.8, 0.0),
            "object-t-narrow": (0.4, 0.6, 0.0), "object-t-m5": (0.2, 0.8, 0.05),
            "object-t-m10": (0.2, 0.8, 0.10)}
NAMES = ("forest", "unet", "image-t", *OBJECT_T, "object-shift", "best-t")


def contour_mean(grad: np.ndarray, mask: np.ndarray) -> float:
    """Mean gradient on the inner boundary of ``mask`` (0 for an empty mask)."""
    c = mask & ~ndi.binary_erosion(mask)
    return float(grad[c].mean()) if c.any() else 0.0


def snaps(image: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Every unsupervised choice tried, for one nucleus probability map.

    ``object-t`` is the product's :func:`napari_unet_studio.core.edges.snap`; the others
    use its :func:`~napari_unet_studio.core.edges.choose_per_object` with other
    candidates."""
    from napari_unet_studio.core import edges

    grad = edges.gradient(image)
    base = p > 0.5
    out = {"unet": base}
    masks = [p > t for t in THRESHOLDS]
    out["image-t"] = masks[int(np.argmax([contour_mean(grad, m) for m in masks]))]
    for name, (lo, hi, margin) in OBJECT_T.items():
        ts = [float(t) for t in THRESHOLDS if lo - 1e-6 <= t <= hi + 1e-6]
        out[name] = edges.snap(image, p, ts, margin)
    regions = edges.regions_of(base)
    shifted = []
    for s in SHIFTS:
        if s < 0:
            shifted.append(ndi.binary_erosion(base, iterations=-s))
        elif s > 0:
            shifted.append(ndi.binary_dilation(base, iterations=s))
        else:
            shifted.append(base)
    out["object-shift"] = edges.choose_per_object(grad, regions, shifted, SHIFTS.index(0))
    return out


def probabilities(case: str, seed: int, cache: Path, steps: int = 150
                  ) -> dict[str, list[np.ndarray]]:
    """Forest and U-Net nucleus probabilities per evaluation image (cached)."""
    f = cache / (f"{case}_{seed}.npz" if steps == 150 else f"{case}_{seed}_{steps}.npz")
    if f.exists():
        z = np.load(f)
        n = len([k for k in z.files if k.startswith("u")])
        return {"unet": [z[f"u{i}"] for i in range(n)], "forest": [z[f"f{i}"] for i in range(n)]}
    c = rc.CASES[case]
    _, data = rc.build(case, seed)
    images = [img for _, img, _ in data["eval"]]
    fg = int(c.foreground) - 1
    fp, _ = rl.forest(data["train"], images, c.rgb, seed, probabilities=2)
    up, _ = rl.unet(data["train"], images, seed, "pretrained", steps, None, None, 1,
                    probabilities=True)
    out = {"unet": [u[fg].astype(np.float32) for u in up],
           "forest": [p[fg].astype(np.float32) for p in fp]}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(f, **{f"u{i}": u for i, u in enumerate(out["unet"])},
                        **{f"f{i}": p for i, p in enumerate(out["forest"])})
    return out


def _scores(mask: np.ndarray, truth: np.ndarray, fg: int) -> tuple[float, float]:
    """Mean IoU (nucleus and background, classes 1 and 2) and nucleus IoU."""
    from _common import iou_per_class

    iou = iou_per_class(np.where(mask, fg, 3 - fg), truth, (1, 2))
    return float(np.mean(list(iou.values()))), iou[fg]


def run(case: str, seed: int, cache: Path, steps: int = 150) -> dict:
    """Mean IoU and nucleus IoU per method for one case and seed (mean over images)."""
    c = rc.CASES[case]
    fg = int(c.foreground)
    _, data = rc.build(case, seed)
    probs = probabilities(case, seed, cache, steps)
    from napari_unet_studio.core import edges

    per: dict[str, list[tuple[float, float]]] = {}
    secs: list[tuple[float, int]] = []
    for k, (_, image, truth) in enumerate(data["eval"]):
        per.setdefault("forest", []).append(_scores(probs["forest"][k] > 0.5, truth, fg))
        for name, m in snaps(image, probs["unet"][k]).items():
            per.setdefault(name, []).append(_scores(m, truth, fg))
        per.setdefault("best-t", []).append(max(_scores(probs["unet"][k] > t, truth, fg)
                                                for t in THRESHOLDS))
        p2 = np.stack([1 - probs["unet"][k], probs["unet"][k]])
        t0 = time.perf_counter()
        edges.snap_labels(image, p2)  # what prediction runs on a gray two-class plane
        secs.append((time.perf_counter() - t0, image.size))
    row: dict = {"case": case, "seed": seed,
                 "snap_s_per_megapixel": round(sum(t for t, _ in secs)
                                               / (sum(n for _, n in secs) / 1e6), 3)}
    for name, v in per.items():
        row[name] = round(float(np.mean([x[0] for x in v])), 4)
        row[name + "_fg"] = round(float(np.mean([x[1] for x in v])), 4)
    return row


def gradient_check() -> list[dict]:
    """Mean gradient on the truth's contour, eroded / dilated by 2 and 1 px and as drawn,
    relative to the image's mean gradient: where the truth sits against the edge."""
    from napari_unet_studio.core.edges import gradient

    ds = rc.datasets
    frames, truth = ds.scratch_assay()
    pairs = [("time-lapse frame 0", frames[0], truth[0]),
             ("time-lapse frame 3", frames[3], truth[3]),
             ("BBBC007 A9_p10d", *rc._by_name("A9_p10d")[1:]),
             ("DSB2018", *ds.dsb2018())]
    rows = []
    for name, image, t in pairs:
        g = gradient(image)
        nuc = t == 2
        ratios = []
        for s in (-2, -1, 0, 1, 2):
            m = (ndi.binary_erosion(nuc, iterations=-s) if s < 0 else
                 ndi.binary_dilation(nuc, iterations=s) if s > 0 else nuc)
            ratios.append(round(contour_mean(g, m) / float(g.mean()), 2))
        rows.append({"image": name, "eroded 2 / 1, as drawn, dilated 1 / 2": ratios})
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in ratios) + " |")
    return rows


def figure(case: str, seed: int, cache: Path, path: Path) -> None:
    """Truth, plain and snapped contours on a crop of the case's first evaluation image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_unet_studio.core.edges import snap

    c = rc.CASES[case]
    _, data = rc.build(case, seed)
    _, image, truth = data["eval"][0]
    prob = probabilities(case, seed, cache)["unet"][0]
    masks = {"truth": truth == int(c.foreground), "plain (0.5)": prob > 0.5,
             "snapped": snap(image, prob)}
    from matplotlib.lines import Line2D

    ys, xs = slice(60, 140), slice(40, 160)  # a crop of a few nuclei, drawn large
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.7))
    colours = {"truth": "#ff3030", "plain (0.5)": "#ffd000", "snapped": "#30e0ff"}
    for ax, shown in zip(axes, (("truth", "plain (0.5)"), ("truth", "snapped")), strict=True):
        ax.imshow(image[ys, xs], cmap="gray", vmax=np.percentile(image, 99.5))
        for name in shown:
            ax.contour(masks[name][ys, xs].astype(float), levels=[0.5],
                       colors=[colours[name]], linewidths=1.3)
        miou = _scores(masks[shown[1]], truth, int(c.foreground))[0]
        ax.set_title(f"{shown[1]}: mean IoU {miou:.3f} on the whole frame", fontsize=9)
        ax.legend(handles=[Line2D([], [], color=colours[n], label=n) for n in shown],
                  loc="upper right", fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def memory(side: int = 4288, discs: int = 20000) -> dict:
    """Time and peak extra memory (tracemalloc) of snapping one ``side``-square plane of
    bright discs (radius 9): a default block's region in the block-wise runner."""
    import tracemalloc

    from napari_unet_studio.core.edges import snap_labels

    rng = np.random.default_rng(0)
    mask = np.zeros((side, side), bool)
    mask[tuple(rng.integers(0, side, (2, discs)))] = True
    mask = ndi.binary_dilation(mask, iterations=9)
    image = ndi.gaussian_filter(np.where(mask, 500.0, 100.0).astype(np.float32), 1.2)
    image += rng.normal(0, 20, image.shape).astype(np.float32)
    p = ndi.gaussian_filter(mask.astype(np.float32), 2.0)
    probs = np.stack([1 - p, p])
    tracemalloc.start()
    t0 = time.perf_counter()
    snap_labels(image, probs)
    secs = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row = {"side": side, "objects": int(ndi.label(p > 0.5)[1]), "seconds": round(secs, 2),
           "peak_extra_mib": round(peak / 2**20), "held_probabilities_mib":
           round(probs.nbytes / 2**20)}
    print(row)
    return row


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/edge_snap_cache"))
    ap.add_argument("--steps", type=int, default=150, help="U-Net training steps")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "edge_snap.json")
    ap.add_argument("--gradient-check", action="store_true",
                    help="only print where the truth's contour sits against the edge")
    ap.add_argument("--figure", type=Path,
                    help="only draw the first case and seed's first image (cached)")
    ap.add_argument("--memory", action="store_true",
                    help="only time one 4288 x 4288 plane and its peak extra memory")
    args = ap.parse_args(argv)
    if args.memory:
        memory()
        return 0
    if args.figure is not None:
        figure(args.cases[0], args.seeds[0], args.cache, args.figure)
        return 0
    if args.gradient_check:
        print("| image | eroded 2 | eroded 1 | as drawn | dilated 1 | dilated 2 |\n"
              "|---|---|---|---|---|---|")
        gradient_check()
        return 0
    from _common import machine_description

    machine = machine_description()
    machine["matmul_gflops_1thread"] = rl.matmul_peak(1)
    rows = []
    print("mean IoU (x the forest's)\n| case | seed | " + " | ".join(NAMES)
          + " |\n|---|---|" + "---|" * len(NAMES))
    for case in args.cases:
        for seed in args.seeds:
            r = run(case, seed, args.cache, args.steps)
            rows.append(r)
            print(f"| {case} | {seed} | {r['forest']:.4f} | " + " | ".join(
                f"{r[n]:.4f} ({r[n] / r['forest']:.3f})" for n in NAMES[1:]) + " |", flush=True)
    args.out.write_text(json.dumps({"machine": machine, "steps": args.steps, "rows": rows,
                                    "command": "python bench/edge_snap.py"}, indent=1) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
