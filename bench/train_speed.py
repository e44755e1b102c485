"""Training throughput: our U-Net vs MONAI ``BasicUNet`` of the same widths.

Same batch, patch, loss, optimiser and upsampling (transposed convolution, or pixel
shuffle), instance norm on both; repeats interleaved in one process so that both see
the same machine state. Also reports the fraction of the CPU's measured float32 matmul
GFLOP/s that each reaches (convolution FLOPs counted with forward hooks; a training step
is counted as 3x the forward FLOPs).

Run: ``python bench/train_speed.py`` (needs the ``bench`` extra: monai).
Writes ``bench/results/train_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from napari_unet_studio.core.config import ModelConfig
from napari_unet_studio.core.model import build_model

try:  # the product's malloc tuning, applied the same way for both models
    from napari_unet_studio.core.device import tune_malloc
except ImportError:  # pragma: no cover - engine not installed
    tune_malloc = None

try:
    from _common import machine_description  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    machine_description = None

RESULTS = Path(__file__).parent / "results"


def conv_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Forward FLOPs of all (transposed) convolutions for input ``x`` (2 per MAC)."""
    total = 0.0

    def hook(mod, inp, out):
        nonlocal total
        w = mod.weight
        k = w[0, 0].numel()
        if isinstance(mod, nn.modules.conv._ConvTransposeNd):
            # every input position spreads Cin x Cout x k MACs
            total += 2.0 * inp[0].numel() * w.shape[1] * k
        else:
            cin = w.shape[1]
            total += 2.0 * out.numel() * cin * k

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul throughput of this CPU, in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def make_models(width: int, upsample: str) -> dict[str, nn.Module]:
    from monai.networks.nets import BasicUNet

    ours = build_model(
        ModelConfig(
            decoder={"deconv": "transposed", "pixelshuffle": "pixelshuffle"}[upsample],
            depth=4,
            width=width,
            norm="instance",
        )
    )
    feats = (width, 2 * width, 4 * width, 8 * width, 16 * width, width)
    monai = BasicUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=2,
        features=feats,
        norm=("instance", {"affine": True}),
        act=("relu", {"inplace": True}),
        upsample=upsample,
    )
    return {"napari-unet-studio": ours, "monai BasicUNet": monai}


def time_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--upsample", choices=["deconv", "pixelshuffle"], default="deconv")
    p.add_argument("--no-allocator-tuning", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    if tune_malloc is not None and not args.no_allocator_tuning:
        tune_malloc()
    torch.manual_seed(0)
    models = make_models(args.width, args.upsample)
    x = torch.randn(args.batch, 1, args.patch, args.patch)
    y = torch.randint(0, 2, (args.batch, args.patch, args.patch))
    for m in models.values():
        m.train()
        time_steps(m, x, y, 2)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.repeats):
        for name, m in models.items():
            times[name].append(time_steps(m, x, y, args.steps))
    peak = matmul_gflops()
    rows = []
    for name, m in models.items():
        t = statistics.median(times[name]) / args.steps
        flops = 3 * conv_flops(m, x)
        rows.append(
            {
                "model": name,
                "params": sum(q.numel() for q in m.parameters()),
                "s_per_step": t,
                "samples_per_s": args.batch / t,
                "gflops_per_s": flops / t / 1e9,
                "fraction_of_matmul_peak": flops / t / 1e9 / peak,
            }
        )
    ratio = rows[0]["samples_per_s"] / rows[1]["samples_per_s"]
    print(
        f"batch {args.batch}, patch {args.patch}x{args.patch}, width {args.width}, "
        f"upsample {args.upsample}, {args.repeats} interleaved repeats of {args.steps} steps; "
        f"matmul peak {peak:.1f} GFLOP/s"
    )
    head = ("model", "params", "ms/step", "samples/s", "GFLOP/s", "of peak")
    print("{:22s} {:>9s} {:>9s} {:>10s} {:>8s} {:>8s}".format(*head))
    for r in rows:
        print(
            f"{r['model']:22s} {r['params']:9d} {1000 * r['s_per_step']:9.1f} "
            f"{r['samples_per_s']:10.2f} {r['gflops_per_s']:8.1f} "
            f"{100 * r['fraction_of_matmul_peak']:7.1f}%"
        )
    print(f"throughput ratio (ours / MONAI): {ratio:.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "args": vars(args),
        "matmul_gflops": peak,
        "rows": rows,
        "ratio_ours_over_monai": ratio,
        "machine": machine_description() if machine_description else None,
        "loadavg": os.getloadavg(),
    }
    (RESULTS / "train_speed.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
