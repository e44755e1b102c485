"""Command line ``unet-studio train|predict|decoders|info`` (or ``python -m napari_unet_studio``).

One module per sub-command (``train.py``, ``predict.py``, ``info.py``): each adds its
parser and has a ``run(args) -> int``; :data:`_COMMANDS` maps the names to them. A new
sub-command is a new module plus one line in :func:`build_parser` and :data:`_COMMANDS`.

Errors a user can fix (missing file, mismatched shapes, no labels...) end the program
with one clear line on stderr and a non-zero exit status, never a traceback; add
``--debug`` to see the traceback of unexpected errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import export, info, predict, train
from .train import EXIT_INTERRUPTED

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 2
EXIT_UNEXPECTED = 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands ``train``, ``predict``, ``decoders``, ``info``)."""
    parser = argparse.ArgumentParser(
        prog="unet-studio",
        description="Train a U-Net from painted labels and predict masks (TIFF in, TIFF out).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train.add_parser(sub)
    predict.add_parser(sub)
    info.add_parsers(sub)
    export.add_parser(sub)
    return parser


_COMMANDS = {"train": train.run, "predict": predict.run, "decoders": info.run_decoders,
             "info": info.run_info, "export": export.run}



def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 = success)."""
    from ..core.malloc import tune_malloc

    tune_malloc()  # first, before any thread allocates: glibc's arena limit holds only then
    parser = build_parser()
    args = parser.parse_args(argv)
    user_errors: tuple[type[BaseException], ...] = (OSError, ValueError)
    try:
        import tifffile

        user_errors += (tifffile.TiffFileError,)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    from ..core.errors import UNetStudioError

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
