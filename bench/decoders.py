"""Decoder study: every registered decoder, progressive (U-Net) and one-shot (FCN-style).

Each variant is trained with the product's engine (:class:`~napari_unet_studio.core.train.
Trainer`, default architecture and training settings) on the same scribbles, for the same
compute budget, then evaluated against the full ground truth:

* ``nuclei`` -- the DSB2018 image shipped with the package and its shipped scribbles
  (what *File > Open Sample* gives); classes background / nucleus.
* ``rgb`` -- a generated 512 x 512 RGB scene with 4 classes that differ in colour and
  texture (``bench/_common.py: textured_scene``), with user-like scribbles
  (``make_scribbles``).

The budget. "The same wall-clock budget" is made reproducible on a shared machine:
first every variant's training step is timed (median CPU time per step of the real
``Trainer``, one thread, interleaved, under ``/tmp/bench.lock``); then each variant gets
``steps = seconds / (time per step)`` steps. So a cheaper decoder gets more steps, as it
would in a fixed time, but the trained weights depend only on the seed and the step
count, not on what else the machine was doing; training runs in ``--jobs`` worker
processes with one thread each. The numbers "ms/step" and "predict ms/MP" are one-thread
CPU times (the product uses every core; compare ratios, not absolute values).

Metrics: mean IoU over classes, nucleus IoU (nuclei), boundary F1 (boundary pixels of
the class partition matched within 2 px), parameters, training ms/step, prediction ms per
megapixel (whole image, product's tiled prediction).

Run (``pip install -e ".[bench]"``)::

    python bench/decoders.py                     # the study: --seconds 45 --seeds 3
                                                 # (~25 min on 2 free cores)
    python bench/decoders.py --seconds 10 --seeds 1 --datasets nuclei   # a quick look
    python bench/decoders.py --figure-only       # redraw the figures from saved results
    python bench/decoders.py --explain           # regenerate the arrays in docs/decoders.md

Writes ``bench/results/decoders.json`` (and ``decoders_runs.jsonl``, one line per run,
reused by ``--resume``), ``bench/results/decoders_predictions.npz`` and the figures
``docs/images/decoders_comparison.png`` (nuclei) and ``docs/images/decoders_rgb.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
IMAGES = ROOT / "docs" / "images"
DOC = ROOT / "docs" / "decoders.md"
LOCK = "/tmp/bench.lock"
sys.path.insert(0, str(HERE))

DATASETS = ("nuclei", "rgb")


# ----------------------------------------------------------------------------- data
def load_dataset(name: str) -> dict[str, Any]:
    """Image, scribbles, truth and what to report for one benchmark image."""
    from _common import make_scribbles, nuclei_data, textured_scene

    if name == "nuclei":
        image, scribbles, truth = nuclei_data()
        return {"image": image, "scribbles": scribbles, "truth": truth, "foreground": 2,
                "classes": ["background", "nucleus"], "rgb": False}
    if name == "rgb":
        image, truth = textured_scene(512, seed=0)
        scribbles = make_scribbles(truth, seed=0)
        return {"image": image, "scribbles": scribbles, "truth": truth, "foreground": None,
                "classes": ["background", "stripes", "dots", "grain"], "rgb": True}
    raise ValueError(f"unknown dataset {name!r}")


def variants() -> list[tuple[str, str, bool]]:
    """``(label, decoder, progressive)`` for every registered decoder, both ways."""
    from napari_unet_studio.core.decoders import list_decoders

    out = []
    for progressive in (True, False):
        for name in list_decoders():
            out.append((f"{name}{'' if progressive else ' one-shot'}", name, progressive))
    return out


def model_config(decoder: str, progressive: bool, data: dict[str, Any]):
    from napari_unet_studio.core.config import ModelConfig

    return ModelConfig(
        decoder=decoder,
        progressive=progressive,
        in_channels=3 if data["rgb"] else 1,
        num_classes=int(data["truth"].max()),
    )


@contextlib.contextmanager
def bench_lock(path: str = LOCK):
    """Hold the shared benchmark lock (same file as ``flock /tmp/bench.lock``)."""
    with open(path, "a+") as fh:
        t0 = time.perf_counter()
        fcntl.flock(fh, fcntl.LOCK_EX)
        waited = time.perf_counter() - t0
        if waited > 1:
            print(f"(waited {waited:.0f} s for {path})", flush=True)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------- calibration
def time_variant(data: dict[str, Any], decoder: str, progressive: bool, steps: int = 8,
                 warmup: int = 3) -> dict[str, float]:
    """CPU ms per training step of the real Trainer, and prediction CPU ms per megapixel."""
    import torch

    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.infer import predict_image
    from napari_unet_studio.core.model import count_parameters
    from napari_unet_studio.core.train import Trainer

    torch.set_num_threads(1)
    cfg = model_config(decoder, progressive, data)
    trainer = Trainer([(data["image"], data["scribbles"])], cfg,
                      TrainConfig(steps=warmup + steps, seed=0, device="cpu"), threads=1)
    cpu, wall = [], []
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    for p in trainer.run():
        now_cpu, now_wall = time.process_time(), time.perf_counter()
        if not p.done and p.step > warmup:
            cpu.append(now_cpu - t_cpu)
            wall.append(now_wall - t_wall)
        t_cpu, t_wall = now_cpu, now_wall
    model = trainer.result()
    mp_ = data["truth"].size / 1e6
    pred = []
    for _ in range(2):
        t0 = time.process_time()
        predict_image(model, data["image"], device="cpu", threads=1)
        pred.append((time.process_time() - t0) * 1000 / mp_)
    return {
        "train_ms_per_step": statistics.median(cpu) * 1000,
        "train_wall_ms_per_step": statistics.median(wall) * 1000,
        "predict_ms_per_mp": min(pred),
        "params": count_parameters(trainer.model),
    }


def calibrate(datasets: list[str], rounds: int) -> dict[str, dict[str, dict]]:
    """Interleaved timing of every variant on every dataset (``rounds`` passes)."""
    out: dict[str, dict[str, dict]] = {}
    for ds in datasets:
        data = load_dataset(ds)
        samples: dict[str, list[dict]] = {}
        for r in range(rounds):
            for label, dec, prog in variants():
                samples.setdefault(label, []).append(time_variant(data, dec, prog))
                print(f"  timing {ds:6s} round {r + 1}/{rounds} {label:24s} "
                      f"{samples[label][-1]['train_ms_per_step']:7.1f} ms/step", flush=True)
        out[ds] = {
            label: {
                key: (s[0][key] if key == "params"
                      else statistics.median(x[key] for x in s))
                for key in s[0]
            }
            for label, s in samples.items()
        }
    return out


def complete_timing(timing: dict[str, dict[str, dict]]) -> None:
    """Fill in parameters and prediction time where a saved timing lacks them."""
    import torch

    from napari_unet_studio.core.checkpoint import DEFAULT_NORMALIZATION, TrainedModel
    from napari_unet_studio.core.infer import predict_image
    from napari_unet_studio.core.model import build_model, count_parameters

    torch.set_num_threads(1)
    for ds, per in timing.items():
        data = load_dataset(ds)
        for label, dec, prog in variants():
            t = per.get(label)
            if t is None or ("params" in t and "predict_ms_per_mp" in t):
                continue
            cfg = model_config(dec, prog, data)
            net = build_model(cfg)
            t["params"] = count_parameters(net)
            model = TrainedModel(cfg, net.state_dict(), dict(DEFAULT_NORMALIZATION), {})
            best = []
            for _ in range(2):
                t0 = time.process_time()
                predict_image(model, data["image"], device="cpu", threads=1)
                best.append((time.process_time() - t0) * 1000 / (data["truth"].size / 1e6))
            t["predict_ms_per_mp"] = min(best)
            print(f"  timing {ds:6s} {label:24s} predict {t['predict_ms_per_mp']:6.0f} ms/MP",
                  flush=True)


# ------------------------------------------------------------------------- training
def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one variant with the product's Trainer, predict the image, evaluate."""
    import torch
    from _common import evaluate

    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.infer import predict_image
    from napari_unet_studio.core.train import Trainer

    torch.set_num_threads(1)
    data = load_dataset(job["dataset"])
    cfg = model_config(job["decoder"], job["progressive"], data)
    t0 = time.perf_counter()
    trainer = Trainer([(data["image"], data["scribbles"])], cfg,
                      TrainConfig(steps=job["steps"], seed=job["seed"], device="cpu"),
                      threads=1)
    gen = trainer.run()
    while True:
        try:
            next(gen)
        except StopIteration as fin:
            model = fin.value
            break
    pred = predict_image(model, data["image"], device="cpu", threads=1).labels
    res = evaluate(pred, data["truth"], data["foreground"])
    res.update({k: job[k] for k in ("dataset", "label", "decoder", "progressive", "seed",
                                    "steps")})
    res["best_step"] = model.record.get("best_step")
    res["final_loss"] = model.record.get("final_loss")
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["prediction"] = pred.astype(np.uint8)
    return res


def run_jobs(jobs: list[dict], n_workers: int, log: Path, preds: dict, npz: Path) -> list[dict]:
    done: list[dict] = []
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(n_workers, maxtasksperchild=4) as pool:
        for i, res in enumerate(pool.imap_unordered(train_one, jobs), start=1):
            pred = res.pop("prediction")
            if res["seed"] == jobs[0]["seed"]:
                preds[f"{res['dataset']}|{res['label']}"] = pred
            with log.open("a") as fh:
                fh.write(json.dumps(res) + "\n")
            np.savez_compressed(npz, **preds)
            done.append(res)
            fg = f" fg {res['fg_iou']:.3f}" if "fg_iou" in res else ""
            print(f"[{i}/{len(jobs)} {time.perf_counter() - t0:6.0f}s] {res['dataset']:6s} "
                  f"{res['label']:24s} seed {res['seed']} steps {res['steps']:4d}: mIoU "
                  f"{res['miou']:.3f}{fg} bF1 {res['boundary_f1']:.3f}", flush=True)
    return done


# -------------------------------------------------------------------------- report
def _ms(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else 0.0


def aggregate(runs: list[dict], timing: dict, steps: dict) -> dict[str, list[dict]]:
    table: dict[str, list[dict]] = {}
    for ds in timing:
        rows = []
        for label, dec, prog in variants():
            rs = [r for r in runs if r["dataset"] == ds and r["label"] == label]
            if not rs:
                continue
            t = timing[ds][label]
            row = {
                "variant": label, "decoder": dec, "progressive": prog,
                "params": int(t["params"]), "steps": steps[ds][label],
                "train_ms_per_step": round(t["train_ms_per_step"], 1),
                "predict_ms_per_mp": round(t["predict_ms_per_mp"], 0),
                "seeds": len(rs),
            }
            for key in ("miou", "fg_iou", "boundary_f1"):
                if key in rs[0]:
                    m, s = _ms([r[key] for r in rs])
                    row[key], row[key + "_sd"] = round(m, 4), round(s, 4)
            rows.append(row)
        table[ds] = rows
    return table


def format_table(ds: str, rows: list[dict], markdown: bool = False) -> str:
    fg = any("fg_iou" in r for r in rows)
    head = ["variant", "params", "steps", "train ms/step", "predict ms/MP", "mean IoU"]
    head += ["nucleus IoU"] if fg else []
    head += ["boundary F1"]
    lines = []
    for r in rows:
        cells = [r["variant"], f"{r['params'] / 1e3:.0f}k", str(r["steps"]),
                 f"{r['train_ms_per_step']:.0f}", f"{r['predict_ms_per_mp']:.0f}",
                 f"{r['miou']:.3f} ± {r['miou_sd']:.3f}"]
        if fg:
            cells.append(f"{r['fg_iou']:.3f} ± {r['fg_iou_sd']:.3f}")
        cells.append(f"{r['boundary_f1']:.3f} ± {r['boundary_f1_sd']:.3f}")
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([f"== {ds} ==", fmt.format(*head)] + [fmt.format(*c) for c in lines])


# -------------------------------------------------------------------------- figures
def _edges(lab: np.ndarray) -> np.ndarray:
    e = np.zeros(lab.shape, bool)
    e[:-1] |= lab[:-1] != lab[1:]
    e[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return e


def _zoom_box(truth: np.ndarray, preds: list[np.ndarray], size: int) -> tuple[int, int]:
    """The window where the variants disagree most about the class boundaries."""
    from scipy import ndimage as ndi

    disagree = np.zeros(truth.shape, np.float64)
    for p in preds:
        disagree += p != truth
    score = ndi.uniform_filter(disagree + 2 * _edges(truth), size)
    h, w = truth.shape
    half = size // 2
    score = score[half:h - half, half:w - half]
    y, x = np.unravel_index(np.argmax(score), score.shape)
    return int(y), int(x)


def _show_image(ax, image: np.ndarray) -> None:
    if image.ndim == 2:
        lo, hi = np.percentile(image, (1, 99.8))
        ax.imshow(image, cmap="gray", vmin=lo, vmax=max(hi, lo + 1), interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")


def make_figure(ds: str, preds: dict[str, np.ndarray], table: list[dict], out: Path,
                zoom: int = 96) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    data = load_dataset(ds)
    image, truth, scr = data["image"], data["truth"], data["scribbles"]
    k = int(truth.max())
    colours = ["#000000", "#3a3a3a", "#e8c547", "#4ea3e6", "#e0604a"][: k + 1]
    cmap = ListedColormap(colours)
    strokes = ListedColormap(["#000000", "#00e5ff", "#ff40ff", "#ffe000", "#40ff40"][: k + 1])
    labels = [r["variant"] for r in table if f"{ds}|{r['variant']}" in preds]
    prog = [v for v in labels if "one-shot" not in v]
    one = [v for v in labels if "one-shot" in v]
    ncol = 1 + max(len(prog), len(one))
    y0, x0 = _zoom_box(truth, [preds[f"{ds}|{v}"] for v in labels], zoom)
    crop = (slice(y0, y0 + zoom), slice(x0, x0 + zoom))
    by = {r["variant"]: r for r in table}

    fig, axes = plt.subplots(4, ncol, figsize=(2.3 * ncol, 2.3 * 4 + 0.6))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    # first column: image + scribbles, truth, zoomed image with true boundary, legend
    _show_image(axes[0, 0], image)
    sc = np.ma.masked_equal(scr, 0)
    axes[0, 0].imshow(sc, cmap=strokes, vmin=0, vmax=k, interpolation="nearest")
    axes[0, 0].add_patch(Rectangle((x0, y0), zoom, zoom, fill=False, ec="w", lw=1))
    axes[0, 0].set_title("image + scribbles", fontsize=8)
    axes[1, 0].imshow(truth, cmap=cmap, vmin=0, vmax=k, interpolation="nearest")
    axes[1, 0].set_title("ground truth", fontsize=8)
    _show_image(axes[2, 0], image[crop])
    ey, ex = np.nonzero(_edges(truth[crop]))
    axes[2, 0].plot(ex, ey, ",", color="w")
    axes[2, 0].set_title("zoom, true boundary", fontsize=8)
    axes[3, 0].axis("off")
    axes[3, 0].text(0.0, 0.5, "zoom rows:\nwhite = true boundary\nred = predicted\n"
                    "boundary", fontsize=8, va="center", transform=axes[3, 0].transAxes)

    def metric(v: str) -> str:
        r = by[v]
        key = "fg_iou" if "fg_iou" in r else "miou"
        name = "nuc IoU" if key == "fg_iou" else "mIoU"
        return f"{name} {r[key]:.3f}, bF1 {r['boundary_f1']:.3f}"

    for row_full, row_zoom, names in ((0, 2, prog), (1, 3, one)):
        for j, v in enumerate(names, start=1):
            p = preds[f"{ds}|{v}"]
            ax = axes[row_full, j]
            ax.imshow(p, cmap=cmap, vmin=0, vmax=k, interpolation="nearest")
            ax.set_title(f"{v}\n{metric(v)}", fontsize=7)
            az = axes[row_zoom, j]
            _show_image(az, image[crop])
            ty, tx = np.nonzero(_edges(truth[crop]))
            py, px = np.nonzero(_edges(p[crop]))
            az.plot(tx, ty, "s", color="w", ms=1.2, mew=0)
            az.plot(px, py, "s", color="#ff3030", ms=1.2, mew=0)
            az.set_title(f"{v} (zoom)", fontsize=7)
    fig.suptitle(f"{ds}: decoders after the same training budget; pictures: seed 0, numbers: "
                 "mean over seeds; rows 1/3 U-Net (progressive), rows 2/4 one-shot FCN-style",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


# --------------------------------------------------------------------------- explain
def _arr(a: Any, fmt: str = "{:g}") -> str:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[None]
    cells = [[fmt.format(float(v)) if a.dtype.kind == "f" else str(v) for v in row]
             for row in a]
    w = max(len(c) for row in cells for c in row)
    return "\n".join(" ".join(c.rjust(w) for c in row) for row in cells)


def explain_blocks() -> dict[str, str]:
    """The small worked examples of docs/decoders.md, computed by the product's code."""
    import torch
    import torch.nn.functional as F

    from napari_unet_studio.core.decoders import (
        icnr_,
        nearest_reverse_map,
        pixel_shuffle_nd,
        reverse_map_indices,
    )

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    blocks: dict[str, str] = {}

    # nearest by reverse mapping: lecture's corner rule vs our pixel-centre rule
    o = np.arange(4)
    corner = reverse_map_indices(4, 2, convention="corner").numpy()
    center = reverse_map_indices(4, 2, convention="center").numpy()
    lines = ["input (2x2):", _arr(x[0, 0].numpy()), "",
             "output index o -> input coordinate -> input pixel, along one axis (4 <- 2):",
             "  lecture (corner):  u = o * 2/4          -> " + ", ".join(
                 f"{a}->{a * 0.5:g}->{b}" for a, b in zip(o, corner)),
             "  ours (centre):     u = (o + 0.5) * 2/4 - 0.5 -> " + ", ".join(
                 f"{a}->{(a + 0.5) * 0.5 - 0.5:g}->{b}" for a, b in zip(o, center)),
             "", "output (1, 1) -> input (0.5, 0.5) under the lecture's rule, rounded to "
             "input (1, 1):",
             _arr(nearest_reverse_map(x, (4, 4), convention="corner")[0, 0].numpy()), "",
             "ours, pixel centres aligned (every input pixel fills a 2x2 block, no shift):",
             _arr(nearest_reverse_map(x, (4, 4))[0, 0].numpy())]
    blocks["nearest"] = "\n".join(lines)

    # linear interpolation
    line = torch.tensor([1.0, 2.0])[None, None]
    lin = F.interpolate(line, size=3, mode="linear", align_corners=True)[0, 0].numpy()
    bil = F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)[0, 0].numpy()
    blocks["bilinear"] = "\n".join([
        "1D: between the samples 1 and 2 the midpoint gets 0.5*(1+2):", _arr(lin), "",
        "2x2 -> 4x4 bilinear, pixel centres aligned (align_corners=False):", _arr(bil, "{:.2f}"),
    ])

    # unpooling with stored indices
    a = torch.tensor([[1.0, 5.0, 2.0, 0.0], [3.0, 0.0, 1.0, 7.0],
                      [4.0, 2.0, 0.0, 1.0], [0.0, 1.0, 6.0, 3.0]])[None, None]
    pooled, idx = F.max_pool2d(a, 2, 2, return_indices=True)
    un = F.max_unpool2d(pooled, idx, 2, 2, output_size=(4, 4))
    blocks["unpool"] = "\n".join([
        "encoder map (4x4):", _arr(a[0, 0].numpy()), "",
        "max-pool 2x2 -> values, and the stored flat index of each maximum:",
        _arr(pooled[0, 0].numpy()), _arr(idx[0, 0].numpy()), "",
        "unpool: each value goes back to where its maximum was, zeros elsewhere:",
        _arr(un[0, 0].numpy()),
    ])

    # transposed convolution as C^T
    k = torch.arange(1.0, 10.0).reshape(3, 3)
    c = torch.zeros(4, 16)
    for r, (oy, ox) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        m = torch.zeros(4, 4)
        m[oy:oy + 3, ox:ox + 3] = k
        c[r] = m.reshape(-1)
    inp = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = F.conv2d(inp, k[None, None])
    ct_y = (c.T @ y.reshape(4)).reshape(4, 4)
    tconv = F.conv_transpose2d(y, k[None, None])
    pad6 = F.pad(y, (2, 2, 2, 2))
    conv6 = F.conv2d(pad6, torch.flip(k, (0, 1))[None, None])
    assert torch.allclose(ct_y, tconv[0, 0]) and torch.allclose(tconv, conv6)
    blocks["transposed"] = "\n".join([
        "kernel w (3x3):", _arr(k.numpy()), "",
        "C (4x16): row r holds w at the 9 input positions output r sees (x0..x15):",
        _arr(c.numpy()), "",
        "x = 0..15 as 4x4;  y = C x  (= conv2d(x, w), 2x2):", _arr(y[0, 0].numpy()), "",
        "C^T y (16 values -> 4x4) = conv_transpose2d(y, w) = conv2d(pad(y, 2), flip(w)):",
        _arr(ct_y.numpy()),
    ])

    # pixel shuffle + ICNR
    ch = torch.arange(1.0, 5.0).reshape(1, 4, 1, 1).expand(1, 4, 2, 2).clone()
    ch = ch * torch.tensor([[1.0, 10.0], [100.0, 1000.0]])
    shuf = pixel_shuffle_nd(ch, 2)
    conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    torch.manual_seed(0)
    icnr_(conv.weight, 2, 2)
    with torch.no_grad():
        out = pixel_shuffle_nd(conv(x), 2)[0, 0]
        ref = F.conv2d(x, conv.weight[:1], padding=1)
        near = nearest_reverse_map(ref, (4, 4))[0, 0]
    assert torch.allclose(out, near, atol=1e-6)
    blocks["pixelshuffle"] = "\n".join([
        "4 channels of a 2x2 map (channel k holds (k + 1) * [[1, 10], [100, 1000]]):",
        *(f"channel {i}:\n" + _arr(ch[0, i].numpy()) for i in range(4)), "",
        "pixel shuffle (r = 2): the 4 channels become the 2x2 sub-positions of one channel:",
        _arr(shuf[0, 0].numpy()), "",
        "ICNR start: the 4 sub-position filters are equal, so conv + shuffle of the input",
        "above is exactly a nearest upsampling (no checkerboard):",
        _arr(out.numpy(), "{:.3f}"),
    ])
    return blocks


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0:
        raise SystemExit(f"{DOC} lacks the markers {start} ... {end}")
    return text[: i + len(start)] + "\n" + body.rstrip() + "\n" + text[j:]


def write_explain() -> None:
    blocks = explain_blocks()
    for name, body in blocks.items():
        print(f"--- {name}\n{body}\n")
    if DOC.exists():
        text = DOC.read_text()
        for name, body in blocks.items():
            text = replace_block(text, f"explain:{name}", f"```text\n{body}\n```")
        DOC.write_text(text)
        print(f"updated {DOC}")


def write_doc_tables(result: dict) -> None:
    if not DOC.exists():
        return
    text = DOC.read_text()
    m = result["machine"]
    note = (f"Measured {m.get('date')} on {m.get('cores')} cores ({m.get('cpu')}), torch "
            f"{m.get('versions', {}).get('torch')}; budget {result['args']['seconds']:g} s of "
            f"one-thread CPU time per run, {result['args']['seeds']} seeds (mean ± sd). "
            "`python bench/decoders.py` regenerates this.")
    parts = [note]
    for ds, rows in result["table"].items():
        parts += ["", f"**{ds}**", "", format_table(ds, rows, markdown=True)]
    text = replace_block(text, "table", "\n".join(parts))
    DOC.write_text(text)
    print(f"updated the table in {DOC}")


# ----------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=45.0,
                   help="training budget per run, in one-thread CPU seconds (default 45)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--jobs", type=int, default=max(1, min(2, len(os.sched_getaffinity(0)))),
                   help="worker processes for training (one thread each)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved timing passes")
    p.add_argument("--resume", action="store_true",
                   help="reuse runs already in decoders_runs.jsonl (same steps and seed)")
    p.add_argument("--timing", help="reuse the step timing of this decoders_timing.json")
    p.add_argument("--report-only", action="store_true",
                   help="no training: tables and figures from the runs already logged")
    p.add_argument("--figure-only", action="store_true")
    p.add_argument("--explain", action="store_true")
    p.add_argument("--no-lock", action="store_true", help=f"do not take {LOCK} for timing")
    args = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    out_json = RESULTS / "decoders.json"
    npz = RESULTS / "decoders_predictions.npz"

    if args.explain:
        write_explain()
        return
    if args.figure_only:
        result = json.loads(out_json.read_text())
        preds = dict(np.load(npz))
        for ds, rows in result["table"].items():
            name = "decoders_comparison.png" if ds == "nuclei" else f"decoders_{ds}.png"
            make_figure(ds, preds, rows, IMAGES / name)
        return

    from _common import machine_description

    datasets = [d for d in args.datasets.split(",") if d]
    est = len(datasets) * len(variants()) * args.seeds * args.seconds / args.jobs / 60
    print(f"{len(variants())} variants x {len(datasets)} images x {args.seeds} seeds, "
          f"{args.seconds:g} s each: about {est:.0f} min of training on {args.jobs} "
          "free cores, plus timing", flush=True)
    load_before = os.getloadavg()
    timing_file = RESULTS / "decoders_timing.json"
    if args.timing:
        saved = json.loads(Path(args.timing).read_text())
        timing, load_timing = saved["timing"], saved.get("loadavg")
        missing = [ds for ds in datasets if ds not in timing]
        if missing:
            raise SystemExit(f"{args.timing} has no timing for {missing}")
        timing = {ds: timing[ds] for ds in datasets}
        with contextlib.nullcontext() if args.no_lock else bench_lock():
            complete_timing(timing)
    else:
        with contextlib.nullcontext() if args.no_lock else bench_lock():
            load_timing = os.getloadavg()
            timing = calibrate(datasets, args.rounds)
    saved_steps = {ds: {v: max(1, int(args.seconds * 1000 / t["train_ms_per_step"]))
                        for v, t in timing[ds].items()} for ds in datasets}
    timing_file.write_text(json.dumps({"timing": timing, "steps": saved_steps,
                                       "loadavg": load_timing,
                                       "machine": machine_description()}, indent=1))
    steps = {ds: {v: max(1, int(args.seconds * 1000 / t["train_ms_per_step"]))
                  for v, t in timing[ds].items()} for ds in datasets}
    if args.timing and "steps" in saved:  # exactly the step counts of an earlier run
        for ds in datasets:
            steps[ds].update(saved["steps"].get(ds, {}))

    log = RESULTS / "decoders_runs.jsonl"
    previous: list[dict] = []
    if args.resume and log.exists():
        previous = [json.loads(line) for line in log.read_text().splitlines() if line]
    elif log.exists() and not args.report_only:
        log.unlink()
    if args.report_only:  # aggregate the runs already logged (e.g. an interrupted study)
        previous = [json.loads(line) for line in log.read_text().splitlines() if line]
        for r in previous:  # the step counts those runs really used
            if r["dataset"] in steps:
                steps[r["dataset"]][r["label"]] = r["steps"]
    jobs, runs = [], []
    for seed in range(args.seeds):
        for ds in datasets:
            for label, dec, prog in variants():
                job = {"dataset": ds, "label": label, "decoder": dec, "progressive": prog,
                       "seed": seed, "steps": steps[ds][label]}
                old = [r for r in previous if all(r.get(k) == v for k, v in job.items())]
                if old:
                    runs.append(old[-1])
                else:
                    jobs.append(job)
    keep = (args.resume or args.report_only) and npz.exists()
    preds: dict[str, np.ndarray] = dict(np.load(npz)) if keep else {}
    if args.report_only:
        print(f"report only: {len(runs)} runs logged, {len(jobs)} not run")
        jobs = []
    runs += run_jobs(jobs, args.jobs, log, preds, npz)

    table = aggregate(runs, timing, steps)
    result = {
        "args": vars(args),
        "protocol": "steps = seconds / median one-thread CPU time per Trainer step; "
                    "default ModelConfig/TrainConfig; evaluation on the whole image",
        "machine": machine_description(),
        "loadavg": {"before": load_before, "timing": load_timing, "after": os.getloadavg()},
        "timing": timing,
        "steps": steps,
        "table": table,
        "runs": runs,
    }
    out_json.write_text(json.dumps(result, indent=1))
    for ds, rows in table.items():
        print(format_table(ds, rows))
        print()
    print(f"wrote {out_json}")
    for ds, rows in table.items():
        name = "decoders_comparison.png" if ds == "nuclei" else f"decoders_{ds}.png"
        if any(f"{ds}|{r['variant']}" in preds for r in rows):
            make_figure(ds, preds, rows, IMAGES / name)
    write_doc_tables(result)


if __name__ == "__main__":
    main()
