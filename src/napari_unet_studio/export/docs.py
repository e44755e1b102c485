"""The README and the cover image of an exported package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.checkpoint import TrainedModel

__all__ = ["cover_image", "readme_text", "PALETTE"]

#: class colours of the overlay (class 1, 2, ...), RGB
PALETTE = np.array([[0, 114, 178], [230, 159, 0], [0, 158, 115], [204, 121, 167],
                    [240, 228, 66], [86, 180, 233], [213, 94, 0], [120, 120, 120]], np.float32)


def _display(raw: np.ndarray) -> np.ndarray:
    """``(1, C, Y, X)`` raw test tensor -> ``(Y, X, 3)`` float in [0, 1] for display."""
    img = raw[0].astype(np.float64)
    img = img[:3] if img.shape[0] >= 3 else img[:1].repeat(3, axis=0)
    out = np.empty_like(img)
    for c in range(3):
        lo, hi = np.percentile(img[c], [1.0, 99.8])
        out[c] = np.clip((img[c] - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return np.moveaxis(out, 0, -1)


def cover_image(raw: np.ndarray, prob: np.ndarray, path: str | Path) -> None:
    """Write a 2:1 PNG: the test image, and the same image with the predicted classes
    overlaid (colours of :data:`PALETTE`, half transparent); 3D: the middle slice."""
    from PIL import Image

    if raw.ndim == 5:  # a 3D model: the middle slice
        raw, prob = raw[:, :, raw.shape[2] // 2], prob[:, :, prob.shape[2] // 2]
    base = _display(raw)
    classes = np.argmax(prob[0], axis=0)
    colours = PALETTE[classes % len(PALETTE)] / 255.0
    overlay = 0.5 * base + 0.5 * colours
    both = np.concatenate([base, overlay], axis=1)
    Image.fromarray((both * 255 + 0.5).astype(np.uint8)).save(str(path))


def _fmt_table(formats: dict[str, Any]) -> list[str]:
    lines = ["| format | file | agreement with the PyTorch weights |", "|---|---|---|",
             "| pytorch_state_dict | weights.pt + unet_studio_architecture.py | the original |"]
    for fmt, res in formats.items():
        if res.ok:
            parts = [f"{v['agreement']:.2%} of {int(v['pixels'])} pixels ({k}), max logit "
                     f"difference {v['max_abs_logit_diff']:.1e}" for k, v in res.agreement.items()]
            lines.append(f"| {fmt} | {res.path.name} | " + "; ".join(parts) + " |")
        else:
            lines.append(f"| {fmt} | not included | {res.reason} |")
    return lines


def readme_text(model: TrainedModel, *, name: str, description: str, formats: dict[str, Any],
                halos: list[int], size_rules: list[tuple[int, int]], norm_note: str,
                version: str, test_shape: tuple[int, ...]) -> str:
    """The package's README: the model, its training record, formats, how to use it."""
    cfg, rec = model.config, model.record
    axes = ["z", "y", "x"][3 - int(cfg.dims):]
    counts = rec.get("labeled_pixels") or []
    names = model.class_names
    strokes = ", ".join(f"{n}: {int(c)} px" for n, c in zip(names, counts)) or "not recorded"
    start = rec.get("start") or ("from " + str(rec["init_from"]) if rec.get("init_from")
                                 else "not recorded")
    lines = [
        f"# {name}", "", description, "",
        f"Exported by napari-unet-studio {version}. The model segments each pixel into one "
        f"of {cfg.num_classes} classes: {', '.join(names)}.", "",
        "## Network", "",
        f"- U-Net with the **{cfg.decoder}** upsampling decoder, depth {cfg.depth}, width "
        f"{cfg.width}, {cfg.norm} normalisation, {cfg.dims}D, {cfg.in_channels} input "
        f"channel(s), {'skip connections' if cfg.progressive else 'no skip connections'}.",
        f"- Input: `(batch, channel, {', '.join(axes)})`; "
        + "; ".join(f"{a} at least {lo} and a multiple of {st}"
                    for a, (lo, st) in zip(axes, size_rules))
        + f". Output: class probabilities `(batch, class, {', '.join(axes)})` of the same "
        "size (softmax of the network's logits).",
        "- Halo: " + ", ".join(f"{h} pixels along {a}" for a, h in zip(axes, halos))
        + " on each side of a tile depend on pixels outside it; tile with at least this "
        "overlap (tiles of more than two halos).",
        f"- Normalisation: {norm_note}", "",
        "## Training record", "",
        f"- Painted pixels per class: {strokes}",
        f"- Steps: {rec.get('steps', 'not recorded')} "
        f"({float(rec['seconds']):.1f} s on {rec.get('device', '?')})" if rec.get("seconds")
        is not None else f"- Steps: {rec.get('steps', 'not recorded')}",
        f"- Decoder: {cfg.decoder}",
        f"- Start weights: {start}",
    ]
    if rec.get("data_shapes"):
        lines.append("- Images: " + ", ".join("x".join(str(s) for s in shp)
                                              for shp in rec["data_shapes"]))
    if rec.get("seed") is not None:
        lines.append(f"- Seed: {rec['seed']}")
    if rec.get("final_loss") is not None:
        lines.append(f"- Final loss: {float(rec['final_loss']):.4f}")
    if rec.get("created"):
        lines.append(f"- Trained: {rec['created']}")
    pre = rec.get("pretrained")
    if isinstance(pre, dict):
        lines.append(f"- Pretrained weights: {pre.get('file', '?')} "
                     f"(sha256 {str(pre.get('sha256', '?'))[:12]})")
    lines += ["", "## Weight formats", "", *_fmt_table(formats), "",
              f"The test tensors are a {'x'.join(str(s) for s in test_shape[2:])} crop of "
              "the user's own image and the probabilities this plugin computed for it.", "",
              "## Use", "",
              "- napari-unet-studio: open this .zip in napari (File > Open) or "
              "`napari_unet_studio.load_model('this.zip')`; predictions are identical to "
              "the original model file.",
              "- bioimage.io tools (bioimageio.core, deepImageJ, ilastik, QuPath...): as any "
              "bioimage.io model; they apply the normalisation and softmax described in "
              "rdf.yaml.", ""]
    return "\n".join(lines)
