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
    t.add_argument("--from", dest="init", metavar="MODEL.pt", help="continue from this model")
    t.add_argument("--reinit-head", action="store_true",
                   help="with --from: train a new output layer (different classes)")
    t.add_argument("--patch-size", type=int, help="training patch edge in pixels (default 128)")
    t.add_argument("--batch-size", type=int, help="patches per step (default 4)")
    t.add_argument("--lr", type=float, help="peak learning rate (default 3e-3)")
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
    i = sub.add_parser("info", help="describe a model file")
    i.add_argument("model", metavar="MODEL.pt")
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
    from .core.checkpoint import load_model
    from .core.config import TrainConfig
    from .core.errors import DataError
    from .core.train import Trainer

    if len(args.image) != len(args.labels):
        raise DataError(
            f"Got {len(args.image)} --image but {len(args.labels)} --labels; give one "
            "--labels after each --image."
        )
    pairs = [(_read_tiff(i), _read_tiff(lab)) for i, lab in zip(args.image, args.labels)]
    fields: dict[str, Any] = {"device": args.device}
    if args.steps is not None or args.time_limit is not None:
        fields.update(steps=args.steps, time_limit=args.time_limit)
    for name in ("seed", "patch_size", "batch_size", "lr", "cutmix"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if args.no_augment:
        fields["augment"] = False
    tc = TrainConfig(**fields)
    init = load_model(args.init) if args.init else None
    arch = {k: getattr(args, k) for k in ("depth", "width") if getattr(args, k) is not None}
    trainer = Trainer(pairs, None, tc, init=init, reinit_head=args.reinit_head,
                      decoder=args.decoder, arch=arch or None)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise FileNotFoundError(f"The folder of --out does not exist: '{out.parent}'")
    if out.is_dir():  # found out before training, not after it (the work would be lost)
        raise ValueError(f"--out is a folder: '{out}'; give a file name such as model.pt")
    bar = None if args.quiet else _train_bar(tc)
    gen = trainer.run()
    model = None
    interrupted = False
    try:
        while True:
            try:
                prog = next(gen)
            except StopIteration as fin:
                model = fin.value
                break
            if bar is not None:
                bar.update((prog.step if tc.steps is not None else int(prog.elapsed)) - bar.n)
                bar.set_postfix(loss=f"{prog.loss:.4f}", refresh=False)
                if prog.message:
                    bar.write(prog.message, file=sys.stderr)
    except KeyboardInterrupt:
        if trainer._step == 0:  # noqa: SLF001 - nothing worth saving
            raise
        print("Interrupted: saving the best model so far.", file=sys.stderr)
        model = trainer.result()
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    assert model is not None
    model.save(out)
    rec = model.record
    print(
        f"Saved {out} ({rec['steps']} steps, {rec['seconds']:.1f} s on {rec['device']}, "
        f"best loss {rec['best_loss'] if rec['best_loss'] is None else round(rec['best_loss'], 4)})"
    )
    return EXIT_INTERRUPTED if interrupted else 0


def _train_bar(tc: Any):
    from tqdm import tqdm

    if tc.steps is not None:
        return tqdm(total=tc.steps, unit="step", desc="training", file=sys.stderr)
    return tqdm(total=int(tc.time_limit), unit="s", desc="training", file=sys.stderr)


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile
    from tqdm import tqdm

    from .core.checkpoint import load_model
    from .core.config import TileConfig
    from .core.infer import iter_predict

    model = load_model(args.model)
    image = _read_tiff(args.image, lazy=True)
    tile_fields = {}
    if args.tile is not None:
        tile_fields["tile"] = args.tile
    if args.overlap is not None:
        tile_fields["overlap"] = args.overlap
    if args.tta is not None:
        tile_fields["tta"] = args.tta
    tile = TileConfig(**tile_fields)
    for target in (args.out, args.probabilities):
        if target and not Path(target).resolve().parent.exists():
            raise FileNotFoundError(f"The output folder does not exist: '{Path(target).parent}'")
        if target and Path(target).is_dir():  # checked before predicting, not after
            raise ValueError(f"'{target}' is a folder; give a file name such as pred.tif")
    gen = iter_predict(model, image, tile=tile, probabilities=bool(args.probabilities),
                       device=args.device)
    bar = None if args.quiet else tqdm(unit="tile", desc="predicting", file=sys.stderr)
    try:
        while True:
            try:
                prog = next(gen)
            except StopIteration as fin:
                result = fin.value
                break
            if bar is not None:
                bar.total = prog.total
                bar.update(prog.done - bar.n)
    finally:
        if bar is not None:
            bar.close()
    tifffile.imwrite(args.out, result.labels, compression="zlib")
    if args.probabilities:
        tifffile.imwrite(args.probabilities, result.probabilities.astype(np.float32),
                         compression="zlib")
    counts = np.bincount(result.labels.ravel(), minlength=model.config.num_classes + 1)[1:]
    share = ", ".join(f"{n}: {c / max(1, result.labels.size):.1%}"
                      for n, c in zip(model.class_names, counts))
    print(f"Saved {args.out} {result.labels.shape} ({share})")
    return 0


def _cmd_decoders(_args: argparse.Namespace) -> int:
    from .core.decoders import describe_decoders

    items = list(describe_decoders())
    width = max((len(name) for name, _ in items), default=0)
    for name, text in items:
        print(f"{name.ljust(width)}  {text}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .core.checkpoint import load_model

    print(load_model(args.model).describe())
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
