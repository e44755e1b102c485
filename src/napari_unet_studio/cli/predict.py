"""``unet-studio predict``: predict a mask with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._io import read_tiff


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``predict`` sub-command to ``sub``."""
    p = sub.add_parser("predict", help="predict a mask with a trained model")
    p.add_argument("--model", required=True, metavar="MODEL.pt")
    p.add_argument("--image", required=True, metavar="IMG.tif")
    p.add_argument("--out", required=True, metavar="PRED.tif", help="class ids 1..K")
    p.add_argument("--probabilities", metavar="PROB.tif",
                   help="also write float32 class probabilities (K, ...)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, help="tile edge in pixels (default 256)")
    p.add_argument("--overlap", type=float, help="tile overlap fraction (default 0.25)")
    p.add_argument("--tta", type=int, choices=[1, 2, 4, 8],
                   help="average over this many flips/rotations per tile (default 1: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    from .. import TileConfig, _api

    model = _api.load_model(args.model)
    image = read_tiff(args.image, lazy=True)
    tile_fields = {k: getattr(args, k) for k in ("tile", "overlap", "tta")
                   if getattr(args, k) is not None}
    tile = TileConfig(**tile_fields)
    for target in (args.out, args.probabilities):
        if target and not Path(target).resolve().parent.exists():
            raise FileNotFoundError(f"The output folder does not exist: '{Path(target).parent}'")
        if target and Path(target).is_dir():  # checked before predicting, not after
            raise ValueError(f"'{target}' is a folder; give a file name such as pred.tif")
    res = _api.predict(model, image, tile=tile, probabilities=bool(args.probabilities),
                       device=args.device, progress=not args.quiet)
    labels, probs = res if args.probabilities else (res, None)
    tifffile.imwrite(args.out, labels, compression="zlib")
    if probs is not None:
        tifffile.imwrite(args.probabilities, probs.astype(np.float32), compression="zlib")
    counts = np.bincount(labels.ravel(), minlength=model.config.num_classes + 1)[1:]
    share = ", ".join(f"{n}: {c / max(1, labels.size):.1%}"
                      for n, c in zip(model.class_names, counts))
    print(f"Saved {args.out} {labels.shape} ({share})")
    return 0
