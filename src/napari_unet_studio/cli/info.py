"""``unet-studio decoders`` and ``unet-studio info``."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``decoders`` and ``info`` sub-commands to ``sub``."""
    sub.add_parser("decoders", help="list the available decoders")
    i = sub.add_parser("info", help="describe a model file (or the shipped pretrained weights)")
    i.add_argument("model", metavar="MODEL.pt", nargs="?")
    i.add_argument("--pretrained", action="store_true",
                   help="describe the shipped pretrained weights and their provenance")


def run_decoders(_args: argparse.Namespace) -> int:
    from .. import describe_decoders

    items = list(describe_decoders())
    width = max((len(name) for name, _ in items), default=0)
    for name, text in items:
        print(f"{name.ljust(width)}  {text}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from .. import _api

    if args.pretrained or not args.model:
        print(_api.pretrained_info())
        return 0
    print(_api.load_model(args.model).describe())
    return 0
