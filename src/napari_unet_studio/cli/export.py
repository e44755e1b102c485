"""``unet-studio export``: share a model as a bioimage.io package, TorchScript or ONNX."""

from __future__ import annotations

import argparse
import sys

from ._io import read_tiff

FORMATS = ("bioimageio", "torchscript", "onnx")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to ``sub``."""
    p = sub.add_parser(
        "export", help="export a model: bioimage.io package (.zip), TorchScript or ONNX",
        description="Export a trained model. A bioimage.io package holds the weights "
                    "(PyTorch, plus TorchScript and ONNX where they reproduce the model), "
                    "test tensors and a cover made from --image, and a README; it is "
                    "checked with bioimageio.core after writing. Needs the export extra: "
                    'pip install "napari-unet-studio[export]".')
    p.add_argument("--model", required=True, metavar="MODEL.pt",
                   help="a model file (.pt) or a package exported before (.zip)")
    p.add_argument("--format", default="bioimageio", choices=FORMATS)
    p.add_argument("--out", required=True, metavar="OUT",
                   help="file to write (.zip for bioimageio, .pt for torchscript, .onnx)")
    p.add_argument("--image", metavar="IMG.tif",
                   help="one of your images: the package's test input and cover are a crop "
                        "of it (required for bioimageio)")
    p.add_argument("--name", help="name of the model in the package")
    p.add_argument("--description", help="one-paragraph description for the package")
    p.add_argument("--author", action="append", dest="authors", metavar="NAME",
                   help="an author of the model (repeat for several)")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX licence (default CC-BY-4.0)")
    p.add_argument("--no-test", action="store_true",
                   help="do not run the bioimage.io test on the written package")
    p.add_argument("--no-weight-formats", action="store_true",
                   help="package the PyTorch weights only (no TorchScript/ONNX copies)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import _api

    image = read_tiff(args.image) if args.image else None

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"  {text}...", file=sys.stderr)

    report = _api.export_model(
        args.model, args.out, format=args.format, image=image, name=args.name,
        description=args.description, authors=args.authors, license=args.license,
        weight_formats=() if args.no_weight_formats else ("torchscript", "onnx"),
        validate=not args.no_test, progress=progress)
    print(report.summary())
    if report.validation is not None and report.validation["status"] != "passed":
        print("unet-studio: error: the written package did not pass the bioimage.io test "
              "(see above)", file=sys.stderr)
        return 1
    return 0
