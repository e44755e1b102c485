"""``unet-studio predict``: predict masks (and objects) with a trained model.

Three forms::

    unet-studio predict --model M.pt --image IMG.tif --out PRED.tif [--instances INST.tif]
                        [--measurements T.csv] [--probabilities PROB.tif]
    unet-studio predict --model M.pt --image IN.zarr --out OUT.zarr [--workers N |
                        --scheduler ADDR] [--instances] [--measurements T.csv]
    unet-studio predict --model M.pt --image 'dir/*.tif' --out outdir/

A ``.zarr`` output is predicted block by block (``bigdata``): images bigger than memory,
dask workers, resume. TIFF output is predicted in memory (tile by tile).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path
from typing import Any

from ._io import read_tiff


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``predict`` sub-command to ``sub``."""
    p = sub.add_parser("predict", help="predict a mask (and objects) with a trained model")
    p.add_argument("--model", required=True, metavar="MODEL.pt")
    p.add_argument("--image", required=True, metavar="IMG",
                   help="a TIFF, an OME-Zarr/zarr store (*.zarr) or a quoted pattern such "
                        "as 'dir/*.tif' (then --out is a folder)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="PRED.tif (class ids 1..K), OUT.zarr (OME-Zarr, block by block) or "
                        "a folder for a pattern")
    p.add_argument("--probabilities", nargs="?", const=True, metavar="PROB.tif",
                   help="also write float32 class probabilities (K, ...); with a .zarr "
                        "output no path: they go into the store")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, help="tile edge in pixels (default 256)")
    p.add_argument("--overlap", type=float, help="tile overlap fraction (default 0.25)")
    p.add_argument("--tta", type=int, choices=[1, 2, 4, 8],
                   help="average over this many flips/rotations per tile (default 1: off)")
    p.add_argument("--superpixels", choices=["auto", "on", "off"],
                   help="average the class probabilities over superpixels of the image "
                        "(default auto: on for colour images, off for gray ones)")
    p.add_argument("--edges", choices=["auto", "on", "off"],
                   help="move each object's boundary to the image's strongest edge near it "
                        "(default auto: on for gray two-class models)")
    p.add_argument("--threads", type=int, help="torch CPU threads (per worker)")
    p.add_argument("--uncertainty", metavar="UNC.tif",
                   help="also write a float32 per-pixel uncertainty map in [0, 1] (TIFF "
                        "output only; docs/user-guide.md, annotation assistant)")
    p.add_argument("--uncertainty-method", choices=["entropy", "margin", "flips"],
                   default="entropy",
                   help="entropy or margin of the class probabilities (no extra cost), or "
                        "flips: also predict mirrored images and add their disagreement "
                        "(3x the prediction time)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    o = p.add_argument_group("objects")
    o.add_argument("--instances", nargs="?", const=True, metavar="INST.tif",
                   help="also find objects (one id each); a path for TIFF output, none "
                        "for .zarr (labels/instances in the store) or a folder")
    o.add_argument("--measurements", metavar="T.csv",
                   help="table of objects: id, class, area/volume, centroid, mean "
                        "intensity, bounding box (implies --instances)")
    o.add_argument("--object-classes", metavar="2,3",
                   help="classes to make objects of (default: all but class 1)")
    o.add_argument("--min-size", type=int, default=10, help="smallest object in pixels")
    o.add_argument("--min-distance", type=int, default=4,
                   help="smallest distance between the centres of touching objects")
    o.add_argument("--object-halo", type=int, default=64,
                   help="(.zarr) context in pixels labelled around each block; objects "
                        "or clumps reaching further across a block border may differ")
    o.add_argument("--no-split", action="store_true",
                   help="connected components only (do not split touching objects)")
    b = p.add_argument_group("big data (.zarr output)")
    b.add_argument("--level", type=int, default=0, help="multiscale level of the input")
    b.add_argument("--block", type=int, default=4096,
                   help="block edge in pixels (whole chunks; default 4096)")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, help="a local dask cluster of N worker processes")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing dask.distributed scheduler, e.g. tcp://host:8786")
    b.add_argument("--overwrite", action="store_true",
                   help="start again instead of resuming an existing output store")
    b.add_argument("--ome-version", choices=["0.4", "0.5"],
                   help="OME-Zarr version to write (default: the input's, else 0.5)")
    return p


def _tile(args: argparse.Namespace):
    from .. import TileConfig

    fields = {k: getattr(args, k) for k in ("tile", "overlap", "tta", "superpixels", "edges")
              if getattr(args, k) is not None}
    return TileConfig(**fields)


def _settings(args: argparse.Namespace):
    from ..objects import ObjectSettings

    classes = None
    if args.object_classes:
        classes = tuple(int(c) for c in str(args.object_classes).split(",") if c.strip())
    return ObjectSettings(classes=classes, split=not args.no_split,
                          min_distance=args.min_distance, min_size=args.min_size,
                          halo=args.object_halo)


def _check_target(target: Any) -> None:
    if not target or target is True:
        return
    if not Path(target).resolve().parent.exists():
        raise FileNotFoundError(f"The output folder does not exist: '{Path(target).parent}'")
    if Path(target).is_dir() and not str(target).rstrip("/").endswith(".zarr"):
        raise ValueError(f"'{target}' is a folder; give a file name such as pred.tif")


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def run(args: argparse.Namespace) -> int:
    from ..io.zarr_io import is_zarr_path

    if args.measurements and not args.instances:
        args.instances = True
    if getattr(args, "uncertainty", None) and (_is_pattern(args.image)
                                               or is_zarr_path(args.out)):
        raise ValueError("--uncertainty works with one TIFF output (--out PRED.tif).")
    if _is_pattern(args.image):
        return _run_batch(args)
    if is_zarr_path(args.out):
        return _run_store(args)
    return _run_file(args, args.image, args.out, args.probabilities, args.instances,
                     args.measurements)


def _run_store(args: argparse.Namespace) -> int:
    """OME-Zarr output, block by block."""
    from ..bigdata import predict_store
    from ..objects import write_csv

    if isinstance(args.probabilities, str) or isinstance(args.instances, str):
        raise ValueError("With a .zarr output, --probabilities and --instances take no path "
                         "(they are written into the store).")
    _check_target(args.out)
    _check_target(args.measurements)
    res = predict_store(
        args.model, args.image, args.out, level=args.level, tile=_tile(args),
        probabilities=bool(args.probabilities),
        objects=_settings(args) if args.instances else None, block=args.block,
        workers=args.workers, scheduler=args.scheduler, threads=args.threads,
        device=args.device, resume=not args.overwrite, ome_version=args.ome_version,
        progress=not args.quiet)
    if args.measurements:
        write_csv(res.rows, args.measurements)
    line = (f"Saved {args.out}: {res.blocks} blocks ({res.skipped} already written) in "
            f"{res.seconds:.1f} s")
    if res.objects is not None:
        line += f", {res.objects} objects"
    print(line)
    return 0


def _read_image(path: str, in_channels: int) -> Any:
    """An input for the in-memory prediction: a TIFF (memory-mapped) or one zarr level."""
    from ..io.zarr_io import is_zarr_path, open_image, working_array

    if not is_zarr_path(path):
        return read_tiff(path, lazy=True)
    work, stack = working_array(open_image(path), in_channels)
    work = work if stack else work[0]
    return work[..., 0] if in_channels == 1 else work


def _run_file(args: argparse.Namespace, image_path: str, out: str, probs_path: Any,
              inst_path: Any, table_path: str | None, rows_out: list | None = None) -> int:
    """TIFF output, in memory; objects and measurements from the class map."""
    import numpy as np
    import tifffile

    from .. import _api

    unc_path = getattr(args, "uncertainty", None) if rows_out is None else None
    method = getattr(args, "uncertainty_method", "entropy")
    for target in (out, probs_path, inst_path, table_path, unc_path):
        _check_target(target)
    if probs_path is True or (inst_path is True and rows_out is None and not table_path):
        raise ValueError("With a TIFF output, give a file for --probabilities/--instances, "
                         "e.g. --instances inst.tif")
    model = _api.load_model(args.model)
    image = _read_image(image_path, int(model.config.in_channels))
    want_probs = bool(probs_path) or (bool(unc_path) and method != "flips")
    res = _api.predict(model, image, tile=_tile(args), probabilities=want_probs,
                       device=args.device, threads=args.threads, progress=not args.quiet)
    labels, probs = res if want_probs else (res, None)
    if unc_path:
        from ..core.uncertainty import uncertainty_map

        unc = (uncertainty_map(probs, method) if method != "flips" else _api.uncertainty(
            model, image, method=method, tile=_tile(args), device=args.device,
            threads=args.threads))
        tifffile.imwrite(unc_path, unc.astype(np.float32), compression="zlib")
        probs = probs if probs_path else None
    tifffile.imwrite(out, labels, compression="zlib")
    if probs is not None:
        tifffile.imwrite(probs_path, probs.astype(np.float32), compression="zlib")
    counts = np.bincount(labels.ravel(), minlength=model.config.num_classes + 1)[1:]
    share = ", ".join(f"{n}: {c / max(1, labels.size):.1%}"
                      for n, c in zip(model.class_names, counts))
    line = f"Saved {out} {labels.shape} ({share})"
    if inst_path:
        from ..objects import find_instances, measure_objects, write_csv

        inst, classes = find_instances(labels, _settings(args), int(model.config.num_classes))
        if isinstance(inst_path, str):
            tifffile.imwrite(inst_path, inst, compression="zlib")
        rows = measure_objects(inst, classes, np.asarray(image), list(model.class_names))
        if table_path:
            write_csv(rows, table_path)
        if rows_out is not None:
            rows_out.extend(rows)
        line += f", {int(inst.max())} objects"
    print(line)
    return 0


def _run_batch(args: argparse.Namespace) -> int:
    """A pattern of inputs -> one output per input in the --out folder."""
    from ..io.zarr_io import is_zarr_path
    from ..objects import write_csv

    files = sorted(glob.glob(args.image))
    if not files:
        raise FileNotFoundError(f"No file matches '{args.image}'")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"With a pattern, --out must be a folder; '{out_dir}' is a file.")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for i, path in enumerate(files, start=1):
        stem = Path(path.rstrip("/")).name.split(".")[0]
        if not args.quiet:
            print(f"[{i}/{len(files)}] {path}", file=sys.stderr)
        if is_zarr_path(path):
            sub = argparse.Namespace(**vars(args))
            sub.image, sub.out = path, str(out_dir / f"{stem}_pred.zarr")
            sub.measurements = (str(out_dir / f"{stem}_objects.csv") if args.measurements
                                else None)
            _run_store(sub)
            continue
        probs = str(out_dir / f"{stem}_prob.tif") if args.probabilities else None
        inst = str(out_dir / f"{stem}_instances.tif") if args.instances else None
        before = len(rows)
        _run_file(args, path, str(out_dir / f"{stem}_pred.tif"), probs, inst, None, rows)
        for r in rows[before:]:
            r["image"] = Path(path).name
    if args.measurements and rows:
        write_csv([{"image": r.pop("image"), **r} for r in rows], args.measurements)
    return 0
