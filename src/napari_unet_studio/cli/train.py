"""``unet-studio train``: train a model on images + painted labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._io import read_tiff, tiff_spacing

EXIT_INTERRUPTED = 130


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to ``sub``."""
    t = sub.add_parser("train", help="train a model on images + painted labels")
    t.add_argument("--image", action="append", required=True, metavar="IMG.tif",
                   help="training image (repeat with --labels for several pairs)")
    t.add_argument("--labels", action="append", required=True, metavar="LAB.tif",
                   help="labels for the preceding --image: 0 = not painted, 1..K = classes")
    t.add_argument("--out", required=True, metavar="MODEL.pt", help="where to save the model")
    t.add_argument("--decoder", help="decoder name (see `unet-studio decoders`)")
    t.add_argument("--time-limit", type=float, metavar="SECONDS", help="stop after this time")
    t.add_argument("--steps", type=int, metavar="N",
                   help="optimiser steps (default 300, or unlimited with --time-limit)")
    t.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--start", metavar="pretrained|pretrained-features|scratch|MODEL.pt",
                   help="starting weights: 'pretrained' (default: the weights shipped with "
                        "napari-unet-studio, see `unet-studio info --pretrained`, where their "
                        "object/background prior fits the strokes, else random), "
                        "'pretrained-features' (the shipped weights for any task), 'scratch' "
                        "(random) or a model file to start from (new output layer if the "
                        "classes differ)")
    t.add_argument("--start-lr", type=float, metavar="LR",
                   help="peak learning rate of the starting weights (default 3e-4; the new "
                        "output layer uses --lr)")
    t.add_argument("--from", dest="init", metavar="MODEL.pt",
                   help="continue training this model (its settings and head are kept)")
    t.add_argument("--reinit-head", action="store_true",
                   help="with --from: train a new output layer (different classes)")
    t.add_argument("--patch-size", type=int, help="training patch edge in pixels (default 128)")
    t.add_argument("--batch-size", type=int, help="patches per step (default 4)")
    t.add_argument("--lr", type=float,
                   help="peak learning rate (default 3e-3; with a start: of the new output "
                        "layer)")
    t.add_argument("--depth", type=int, help="U-Net depth (poolings, default 3)")
    t.add_argument("--width", type=int, help="channels of the first level (default 16)")
    t.add_argument("--no-augment", action="store_true",
                   help="no flips/rotations/jitter/CutMix")
    t.add_argument("--cutmix", type=float, metavar="P",
                   help="chance that a training patch gets a square of another patch pasted "
                        "in, with its labels (default 0.5; 0 = off)")
    t.add_argument("--entropy-weight", type=float, metavar="W",
                   help="weight of the prediction entropy on unpainted pixels in the loss: "
                        "boundaries settle where the image changes, in the gaps between "
                        "strokes (default: TrainConfig's; 0 = off)")
    t.add_argument("--dims", type=int, choices=[2, 3],
                   help="2: a 2D model (stacks: slice by slice); 3: a 3D U-Net on volumes "
                        "(strokes on a few slices are enough). Default: 2 for 2D images; "
                        "for stacks what the recommendation says (printed)")
    t.add_argument("--spacing", type=float, nargs=3, metavar=("Z", "Y", "X"),
                   help="3D: voxel size (default: the TIFF's OME/ImageJ metadata, else "
                        "isotropic); when z is much coarser the first levels pool only in y/x")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    return t


def choose_dims(args: argparse.Namespace, pairs: list) -> tuple[int, tuple | None, str]:
    """``--dims`` or the recommendation for the first pair, its spacing, and a line saying
    what was chosen and why (printed by :func:`run`)."""
    from ..core.anisotropy import parse_spacing, recommend_dims

    image, labels = pairs[0]
    spacing = parse_spacing(args.spacing) if args.spacing else tiff_spacing(args.image[0])
    shape = tuple(getattr(image, "shape", ()))
    channel_axis = len(shape) == len(getattr(labels, "shape", ())) + 1
    dims, why = recommend_dims(shape, image, channel_axis=channel_axis, spacing=spacing)
    if args.dims is not None:
        note = "" if args.dims == dims else f" (the recommendation was {dims}D: {why})"
        return args.dims, spacing, f"Training a {args.dims}D model (--dims {args.dims}){note}"
    if len(shape) - int(channel_axis) < 3:
        return 2, None, ""
    return dims, spacing, f"Training a {dims}D model: {why} Use --dims to choose."


def run(args: argparse.Namespace) -> int:
    from .. import _api
    from ..core.errors import DataError

    if len(args.image) != len(args.labels):
        raise DataError(
            f"Got {len(args.image)} --image but {len(args.labels)} --labels; give one "
            "--labels after each --image."
        )
    pairs = [(read_tiff(i), read_tiff(lab)) for i, lab in zip(args.image, args.labels)]
    dims, spacing, why = choose_dims(args, pairs)
    if why:
        print(why, file=sys.stderr)
    settings = {name: getattr(args, name) for name in (
        "device", "steps", "time_limit", "seed", "start", "start_lr", "patch_size",
        "batch_size", "lr", "cutmix", "entropy_weight")}
    if args.no_augment:
        settings["augment"] = False
    tc = _api.train_config_from(None, **settings)  # invalid values end here, before reading
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise FileNotFoundError(f"The folder of --out does not exist: '{out.parent}'")
    if out.is_dir():  # found out before training, not after it (the work would be lost)
        raise ValueError(f"--out is a folder: '{out}'; give a file name such as model.pt")
    init = _api.load_model(args.init) if args.init else None
    arch = {k: getattr(args, k) for k in ("depth", "width") if getattr(args, k) is not None}
    if dims == 3 and init is None:
        arch.update(dims=3, **({"spacing": spacing} if spacing else {}))
        if spacing:
            print(f"Voxel size (Z, Y, X): {spacing}", file=sys.stderr)
    volume = dims == 3 and init is None  # sizes not given: volume_defaults (_api.train)
    given = {k: v for k, v in settings.items() if v is not None}
    model = _api.train(pairs, train_config=None if volume else tc, init=init,
                       reinit_head=args.reinit_head, decoder=args.decoder, arch=arch or None,
                       progress=not args.quiet, keep_on_interrupt=True,
                       **(given if volume else {}))
    interrupted = bool(model.record.get("interrupted"))
    if int(model.config.dims) == 3:
        from ..core.anisotropy import describe_pools, pool_factors
        from ..core.volume import volume_patch

        cfg, ps = model.config, int(model.record["train_config"]["patch_size"])
        print(f"3D model: patches (Z, Y, X) {volume_patch(ps, cfg.spacing, cfg.depth)}, "
              f"poolings (z x y x x per level) "
              f"{describe_pools(pool_factors(cfg.spacing, cfg.depth))}", file=sys.stderr)
    if interrupted:
        print("Interrupted: saving the best model so far.", file=sys.stderr)
    model.save(out)
    rec = model.record
    best = rec["best_loss"] if rec["best_loss"] is None else round(rec["best_loss"], 4)
    print(f"Saved {out} ({rec['steps']} steps, {rec['seconds']:.1f} s on {rec['device']}, "
          f"best loss {best}; start: {rec.get('start', '?')})")
    return EXIT_INTERRUPTED if interrupted else 0

