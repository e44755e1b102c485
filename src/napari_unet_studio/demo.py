"""The main job in one command: ``python -m napari_unet_studio.demo``.

With a display it opens napari with U-Net Studio docked and the nuclei sample (image +
scribbles) loaded, ready to press Train. With ``--headless`` (or no display) it trains
on the sample scribbles for a short time, predicts the whole image, writes the mask as a
TIFF and prints how well it matches the sample's full ground truth.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def open_gui(sample: str = "nuclei") -> None:
    """Open napari with the plugin docked and a sample loaded (blocks until closed)."""
    import napari

    viewer = napari.Viewer(title="napari-unet-studio")
    viewer.open_sample("napari-unet-studio", sample)
    viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
    napari.run()


def _iou(pred, truth, cls: int) -> float:
    a, b = pred == cls, truth == cls
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def run_headless(out: Path, seconds: float, decoder: str, seed: int) -> Path:
    """Train on the nuclei sample scribbles, predict, write ``out``; return the path."""
    import numpy as np
    import tifffile

    from . import _sample_data, predict, train
    from .core.config import TrainConfig

    image, scribbles, truth = _sample_data.load_nuclei()
    labeled = float((scribbles > 0).mean())
    print(
        f"nuclei sample: image {image.shape} {image.dtype}, scribbles on {labeled:.1%} "
        f"of the pixels; training a '{decoder}' U-Net for {seconds:g} s ...",
        flush=True,
    )
    t0 = time.perf_counter()
    model = train(
        [(image, scribbles)],
        decoder=decoder,
        train_config=TrainConfig(steps=None, time_limit=seconds, seed=seed),
        progress=True,
    )
    pred = predict(model, image)
    out.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out, pred.astype(np.uint8), compression="zlib")
    model_path = out.with_suffix(".pt")
    model.save(model_path)
    msg = (
        f"done in {time.perf_counter() - t0:.1f} s on {model.record.get('device', '?')}: "
        f"{model.record.get('steps', '?')} steps; mask -> {out}, model -> {model_path}"
    )
    if truth is not None:
        msg += f"; nucleus IoU vs full ground truth {_iou(pred, truth, 2):.3f}"
    print(msg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the demo."""
    p = argparse.ArgumentParser(prog="python -m napari_unet_studio.demo", description=__doc__)
    p.add_argument("--headless", action="store_true", help="train and predict without a GUI")
    p.add_argument("--seconds", type=float, default=30.0, help="training time (headless)")
    p.add_argument("--decoder", default="bilinear", help="decoder name (headless)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("demo-output/nuclei_prediction.tif"))
    args = p.parse_args(argv)
    headless = args.headless or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless:
        run_headless(args.out, args.seconds, args.decoder, args.seed)
    else:
        open_gui()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
