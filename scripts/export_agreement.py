"""Per decoder and format: does the exported network predict the same classes?

    python scripts/export_agreement.py [--dims 2 3] [--out table.md]

For every registered decoder, 2D and 3D (isotropic, and anisotropic with spacing
(3, 1, 1)), a width-4 depth-2 U-Net with random weights (seed 0, the engine's default
stem and batch norm) is converted to TorchScript and ONNX by
:mod:`napari_unet_studio.export.convert` and run on two inputs (the conversion size and
a larger batch-2 input); the table gives the share of pixels whose class equals the
PyTorch network's, the largest logit difference, or why the format is not available.
One torch thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from napari_unet_studio.core.config import ModelConfig
from napari_unet_studio.core.decoders import list_decoders
from napari_unet_studio.core.model import build_model
from napari_unet_studio.export.convert import to_onnx, to_torchscript


def _cell(res) -> str:
    if not res.ok:
        return f"not available: {res.reason}"
    return "; ".join(f"{v['agreement']:.2%} of {int(v['pixels'])} px ({k}), max |dlogit| "
                     f"{v['max_abs_logit_diff']:.1e}" for k, v in res.agreement.items())


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally write) the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cases = []
    if 2 in args.dims:
        cases.append(("2D", {"dims": 2}, (1, 1, 64, 64)))
    if 3 in args.dims:
        cases.append(("3D", {"dims": 3}, (1, 1, 16, 24, 24)))
        cases.append(("3D, spacing 3:1:1", {"dims": 3, "spacing": (3.0, 1.0, 1.0)},
                      (1, 1, 16, 24, 24)))
    lines = [f"torch {torch.__version__}", "",
             "| decoder | case | TorchScript | ONNX | seconds (ts, onnx) |",
             "|---|---|---|---|---|"]
    folder = Path(tempfile.mkdtemp(prefix="unet-studio-agreement-"))
    for decoder in list_decoders():
        for name, arch, shape in cases:
            torch.manual_seed(0)
            cfg = ModelConfig(decoder=decoder, depth=2, width=4, num_classes=3, **arch)
            net = build_model(cfg).eval()
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
            t0 = time.perf_counter()
            ts = to_torchscript(net, x, folder / "m.pt", 2**cfg.depth)
            t1 = time.perf_counter()
            ox = to_onnx(net, x, folder / "m.onnx", 2**cfg.depth)
            t2 = time.perf_counter()
            lines.append(f"| {decoder} | {name} | {_cell(ts)} | {_cell(ox)} | "
                         f"{t1 - t0:.1f}, {t2 - t1:.1f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
