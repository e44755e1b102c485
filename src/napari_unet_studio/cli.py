"""Command line ``unet-studio train|predict|decoders|info`` (or ``python -m napari_unet_studio``).

Errors a user can fix (missing file, mismatched shapes, no labels...) end the program
with one clear line on stderr and a non-zero exit status, never a traceback; add
``--debug`` to see the traceback of unexpected errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 2
EXIT_UNEXPECTED = 3
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands ``train``, ``predict``, ``decoders``, ``info``)."""
    parser = argparse.ArgumentParser(
        prog="unet-studio",
        description="Train a U-Net from painted labels and predict masks (TIFF in, TIFF out).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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
    t.add_argument("--quiet", action="store_true", help="no progress bar")

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

    sub.add_parser("decoders", help="list the available decoders")
    i = sub.add_parser("info", help="describe a model file (or the shipped pretrained weights)")
    i.add_argument("model", metavar="MODEL.pt", nargs="?")
    i.add_argument("--pretrained", action="store_true",
                   help="describe the shipped pretrained weights and their provenance")
    return parser


def _read_tiff(path: str, lazy: bool = False) -> Any:
    """Read a TIFF; with ``lazy``, memory-map it when possible (uncompressed files)."""
    import tifffile

    if not Path(path).is_file():
        raise FileNotFoundError(f"No such file: '{path}'")
    if lazy:
        try:
            return tifffile.memmap(path, mode="r")
        except (ValueError, TypeError, OSError):  # compressed or tiled: read it all
            pass
    return tifffile.imread(path)


def _cmd_train(args: argparse.Namespace) -> int:
    from . import _api
    from .core.errors import DataError

    if len(args.image) != len(args.labels):
        raise DataError(
            f"Got {len(args.image)} --image but {len(args.labels)} --labels; give one "
            "--labels after each --image."
        )
    pairs = [(_read_tiff(i), _read_tiff(lab)) for i, lab in zip(args.image, args.labels)]
    settings = {name: getattr(args, name) for name in (
        "device", "steps", "time_limit", "seed", "start", "start_lr", "patch_size",
        "batch_size", "lr", "cutmix")}
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
    model = _api.train(pairs, train_config=tc, init=init, reinit_head=args.reinit_head,
                       decoder=args.decoder, arch=arch or None, progress=not args.quiet,
                       keep_on_interrupt=True)
    interrupted = bool(model.record.get("interrupted"))
    if interrupted:
        print("Interrupted: saving the best model so far.", file=sys.stderr)
    model.save(out)
    rec = model.record
    best = rec["best_loss"] if rec["best_loss"] is None else round(rec["best_loss"], 4)
    print(f"Saved {out} ({rec['steps']} steps, {rec['seconds']:.1f} s on {rec['device']}, "
          f"best loss {best}; start: {rec.get('start', '?')})")
    return EXIT_INTERRUPTED if interrupted else 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    from . import TileConfig, _api

    model = _api.load_model(args.model)
    image = _read_tiff(args.image, lazy=True)
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


def _cmd_decoders(_args: argparse.Namespace) -> int:
    from . import describe_decoders

    items = list(describe_decoders())
    width = max((len(name) for name, _ in items), default=0)
    for name, text in items:
        print(f"{name.ljust(width)}  {text}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from . import _api

    if args.pretrained or not args.model:
        print(_api.pretrained_info())
        return 0
    print(_api.load_model(args.model).describe())
    return 0


_COMMANDS = {"train": _cmd_train, "predict": _cmd_predict, "decoders": _cmd_decoders,
             "info": _cmd_info}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 = success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    user_errors: tuple[type[BaseException], ...] = (OSError, ValueError)
    try:
        import tifffile

        user_errors += (tifffile.TiffFileError,)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    from .core.errors import UNetStudioError

    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("unet-studio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UNetStudioError as exc:
        if args.debug:
            raise
        print(f"unet-studio: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except user_errors as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.strerror and exc.filename:
            text = f"{exc.strerror}: '{exc.filename}'"
        else:
            text = _one_line(exc)
        print(f"unet-studio: error: {text}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 - last resort: one line, --debug for more
        if args.debug:
            raise
        print(f"unet-studio: unexpected error: {type(exc).__name__}: {_one_line(exc)} "
              "(run with --debug for the full traceback)", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
