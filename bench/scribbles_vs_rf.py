"""Scribbles vs random forest: does the U-Net beat the classical scribble tool?

On the same sparse scribbles, after the same short CPU training budget (45 s by
default), compare against the full ground truth:

* ``RF``: scikit-image's ``fit_segmenter``/``predict_segmenter`` on
  ``multiscale_basic_features`` (intensity, edges, texture, sigma 1-16) with a
  scikit-learn ``RandomForestClassifier(n_estimators=50, max_depth=10)`` -- what
  Convpaint / ilastik give a user. Its time (features + fit + predict) is reported.
* ``U-Net (engine defaults)``: the product's engine exactly as a user gets it
  (``Trainer`` with default ``ModelConfig``/``TrainConfig``, ``predict_image``).
* ``U-Net (defaults, CutMix off)``: the same with ``TrainConfig(cutmix=0)``, to show
  what the engine's CutMix (a square of another training patch pasted in, labels
  included) adds (``--variants rf default nocutmix``).
* ``U-Net + pairwise``: the same engine plus the pairwise (local CRF) loss of
  :mod:`napari_unet_studio.core.refine` on every step (weight ``--pairwise``,
  sigma = ``--sigma`` x the image's typical neighbour difference). If the engine's
  ``TrainConfig`` has ``pairwise_weight``, the engine's own implementation is used;
  otherwise a subclass of the engine's ``Trainer`` adds the term to its loss (the
  proposed engine change, nothing else differs). The term starts after ``--start`` of the
  training (0.3: the scribbles first set up the classes, then the pairwise term moves
  the boundaries onto the image's edges; from the first step it can merge classes on a
  textured image).
* ``... + TTA``: the same trained model, predictions averaged over the 8 flips and
  rotations (:func:`~napari_unet_studio.core.refine.tta_probabilities`).

Images (``bench/_common.py``), metric against the full ground truth:

* ``nuclei``: the DSB2018 image shipped with the package and its shipped scribbles (what
  *File > Open Sample* gives: interior strokes, background lines and a few partial rings
  of background 3 px outside some nuclei); nucleus IoU.
* ``nuclei-sparse``: the same image with sparser strokes, nothing near a border
  (``nuclei_sparse_scribbles``: skeletons inside one nucleus in three, background lines
  kept > 6 px from every nucleus; a user's first strokes); nucleus IoU.
* ``rgb``: generated 512 x 512 RGB scene, 4 classes that differ in colour and texture,
  user-like scribbles (``make_scribbles``); mean IoU over classes.

Boundary F1 (2 px tolerance) for all.

The budget. The machine is shared (other people's tests run on the same two cores), so
"45 s of training" is made reproducible and conservative: under ``/tmp/bench.lock`` the
real training step of each U-Net variant is timed in *one-thread CPU seconds* (the
fastest of a few rounds; the same rule as ``bench/decoders.py``), and the variant then
trains for ``steps = seconds / (CPU seconds per step)`` steps on one thread. The trained
weights depend only on the seed and the step count, not on what else the machine was
doing, and the U-Net gets the steps that *one* core gives in 45 s: on an idle machine
the product trains with all cores and does more steps in 45 s of wall time. ``--wall``
instead trains with ``time_limit=seconds`` on all cores (meaningful on an idle machine).

Run (``pip install -e ".[bench]"``)::

    python bench/scribbles_vs_rf.py                    # --seconds 45 --seeds 3
    python bench/scribbles_vs_rf.py --seconds 20 --seeds 1 --datasets nuclei

Writes ``bench/results/scribbles_vs_rf.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LOCK = "/tmp/bench.lock"
sys.path.insert(0, str(HERE))

DATASETS = ("nuclei", "nuclei-sparse", "rgb")
PAIRWISE_WEIGHT = 5.0  # weight of the pairwise loss (measured: see docs/benchmarks.md)
PAIRWISE_SIGMA = 0.75  # sigma in units of the image's median neighbour difference
PAIRWISE_START = 0.3  # fraction of the training after which the pairwise loss is used


# ----------------------------------------------------------------------------- data
def load_dataset(name: str) -> dict[str, Any]:
    """Image, scribbles, truth and what to report for one benchmark image."""
    from _common import make_scribbles, nuclei_data, nuclei_sparse_scribbles, textured_scene

    if name in ("nuclei", "nuclei-sparse"):
        image, scribbles, truth = nuclei_data()
        if name == "nuclei-sparse":
            scribbles = nuclei_sparse_scribbles(truth)
        return {"image": image, "scribbles": scribbles, "truth": truth, "foreground": 2,
                "metric": "fg_iou", "rgb": False}
    if name == "rgb":
        image, truth = textured_scene(512, seed=0)
        scribbles = make_scribbles(truth, seed=0)
        return {"image": image, "scribbles": scribbles, "truth": truth, "foreground": None,
                "metric": "miou", "rgb": True}
    raise ValueError(f"unknown dataset {name!r}")


@contextlib.contextmanager
def bench_lock(path: str = LOCK):
    """Hold the shared benchmark lock (same file as ``flock /tmp/bench.lock``)."""
    with open(path, "a+") as fh:
        t0 = time.perf_counter()
        fcntl.flock(fh, fcntl.LOCK_EX)
        if time.perf_counter() - t0 > 1:
            print(f"(waited {time.perf_counter() - t0:.0f} s for {path})", flush=True)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ------------------------------------------------------------------------- variants
@dataclasses.dataclass(frozen=True)
class Variant:
    """One U-Net training recipe (``pairwise`` 0 = the engine's loss only)."""

    name: str
    pairwise: float = 0.0
    sigma: float = PAIRWISE_SIGMA
    start: float = PAIRWISE_START
    tta: tuple[int, ...] = (1,)  # prediction variants from the same model: 1 = plain, 8 = TTA
    cutmix: float | None = None  # None: the engine's default
    weights: str | None = None  # TrainConfig.start ("scratch", ...); None: the engine's default


def engine_has_pairwise() -> bool:
    from napari_unet_studio.core.config import TrainConfig

    return "pairwise_weight" in {f.name for f in dataclasses.fields(TrainConfig)}


def make_trainer(data: dict, variant: Variant, steps: int | None, seed: int,
                 time_limit: float | None, threads: int | None):
    """The product's Trainer, plus the pairwise loss where the variant asks for it."""
    import torch

    from napari_unet_studio.core.config import TrainConfig
    from napari_unet_studio.core.losses import masked_loss
    from napari_unet_studio.core.refine import neighbour_scale, pairwise_affinity_loss
    from napari_unet_studio.core.train import Trainer

    tc_kwargs: dict[str, Any] = {"steps": steps, "time_limit": time_limit, "seed": seed,
                                 "device": "cpu"}
    if variant.cutmix is not None:
        tc_kwargs["cutmix"] = variant.cutmix
    if variant.weights is not None:
        tc_kwargs["start"] = variant.weights
    pairs = [(data["image"], data["scribbles"])]
    if not variant.pairwise:
        return Trainer(pairs, None, TrainConfig(**tc_kwargs), threads=threads)
    if engine_has_pairwise():
        tc_kwargs.update(pairwise_weight=variant.pairwise, pairwise_sigma=variant.sigma,
                         pairwise_start=variant.start)
        return Trainer(pairs, None, TrainConfig(**tc_kwargs), threads=threads)

    class PairwiseTrainer(Trainer):
        """Engine Trainer whose loss adds ``weight * pairwise_affinity_loss`` (CPU path)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            first = self._data.samples[0].image  # normalised (C, Y, X)
            self._sigma = variant.sigma * neighbour_scale(first)

        def _train_step(self, opt, scaler, x, y, lr):  # noqa: ANN001 - engine signature
            for group in opt.param_groups:
                group["lr"] = lr
            xb = torch.from_numpy(x).to(self.device)
            yb = torch.from_numpy(y).to(self.device)
            opt.zero_grad(set_to_none=True)
            logits = self.model(xb).float()
            loss = masked_loss(logits, yb, self._weights, self.train_config.dice_weight)
            tc = self.train_config
            frac = 0.0  # fraction of the training done, as the engine's LR schedule sees it
            if tc.steps is not None:
                frac = self._step / tc.steps
            if tc.time_limit is not None:
                frac = max(frac, self._elapsed / tc.time_limit)
            pair = pairwise_affinity_loss(logits.softmax(1), xb, self._sigma)
            if frac >= variant.start:
                loss = loss + variant.pairwise * pair
                report = loss
            else:  # report the same objective throughout, so "best loss" stays comparable
                report = loss + variant.pairwise * pair.detach()
            if not torch.isfinite(loss):
                opt.zero_grad(set_to_none=True)
                return float("nan")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            opt.step()
            return float(report.detach())

    return PairwiseTrainer(pairs, None, TrainConfig(**tc_kwargs), threads=threads)


def drain(gen) -> Any:  # noqa: ANN001
    while True:
        try:
            next(gen)
        except StopIteration as fin:
            return fin.value


# ---------------------------------------------------------------------- calibration
def seconds_per_step(data: dict, variant: Variant, warmup: int = 3, steps: int = 8,
                     rounds: int = 2) -> float:
    """One-thread CPU seconds per training step: fastest median over ``rounds`` short runs.

    CPU time (not wall time) of one thread, so that other programs on the machine do not
    change the result much; the fastest round counts.
    """
    best = float("inf")
    for _ in range(rounds):
        trainer = make_trainer(data, variant, warmup + steps, 0, None, 1)
        times, last = [], time.process_time()
        for p in trainer.run():
            now = time.process_time()
            if not p.done and p.step > warmup:
                times.append(now - last)
            last = now
        best = min(best, statistics.median(times))
    return best


# ------------------------------------------------------------------------- running
def predict_probs(model, image: np.ndarray) -> np.ndarray:  # noqa: ANN001
    from napari_unet_studio.core.infer import predict_image

    return predict_image(model, image, probabilities=True, device="cpu", threads=1).probabilities


def run_unet(data: dict, variant: Variant, seed: int, steps: int | None,
             time_limit: float | None, threads: int | None) -> list[dict]:
    from _common import evaluate

    from napari_unet_studio.core.refine import tta_probabilities

    t0 = time.perf_counter()
    trainer = make_trainer(data, variant, steps, seed, time_limit, threads)
    model = drain(trainer.run())
    train_s = time.perf_counter() - t0
    # diagnostic: the last weights instead of the engine's lowest-smoothed-loss snapshot
    last = dataclasses.replace(model, state_dict={
        k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()})
    last_pred = (np.argmax(predict_probs(last, data["image"]), 0) + 1).astype(np.uint8)
    last_res = evaluate(last_pred, data["truth"], data["foreground"])
    out = []
    for n in variant.tta:
        t1 = time.perf_counter()
        if n == 1:
            probs = predict_probs(model, data["image"])
        else:
            probs = tta_probabilities(lambda im: predict_probs(model, im), data["image"], n,
                                      channel_last=data["rgb"])
        pred = (np.argmax(probs, 0) + 1).astype(np.uint8)
        res = evaluate(pred, data["truth"], data["foreground"])
        res.update(variant=variant.name + ("" if n == 1 else f" + TTA x{n}"), seed=seed,
                   steps=int(model.record["steps"]), best_step=model.record.get("best_step"),
                   threads=model.record.get("runtime", {}).get("threads"),
                   start=trainer.start_description, head_start=trainer.head_start,
                   last_weights_metric=last_res[data["metric"]], train_wall_s=round(train_s, 1),
                   predict_wall_s=round(time.perf_counter() - t1, 2))
        out.append(res)
    return out


def run_rf(data: dict, seed: int) -> dict:
    from _common import evaluate, random_forest_segment

    pred, info = random_forest_segment(data["image"], data["scribbles"], data["rgb"], seed=seed)
    res = evaluate(pred, data["truth"], data["foreground"])
    res.update(variant="RF (skimage features + sklearn forest)", seed=seed, steps=None,
               train_wall_s=info["seconds"], predict_wall_s=None, features=info["features"])
    return res


def aggregate(runs: list[dict], metric: str) -> list[dict]:
    rows: dict[str, list[dict]] = {}
    for r in runs:
        rows.setdefault(r["variant"], []).append(r)
    table = []
    for name, rs in rows.items():
        vals = [r[metric] for r in rs]
        table.append({
            "variant": name,
            "metric": metric,
            "mean": round(statistics.mean(vals), 4),
            "sd": round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0,
            "per_seed": vals,
            "miou": round(statistics.mean(r["miou"] for r in rs), 4),
            "boundary_f1": round(statistics.mean(r["boundary_f1"] for r in rs), 4),
            "steps": rs[0]["steps"],
            "train_wall_s": round(statistics.mean(r["train_wall_s"] for r in rs), 1),
        })
    return table


def format_table(ds: str, table: list[dict], markdown: bool = False) -> str:
    metric = table[0]["metric"] if table else ""
    head = ["variant", f"{metric} mean +- sd", "per seed", "mIoU", "boundary F1", "steps",
            "train s (wall)"]
    lines = []
    for row in table:
        lines.append([
            row["variant"], f"{row['mean']:.3f} +- {row['sd']:.3f}",
            " ".join(f"{v:.3f}" for v in row["per_seed"]), f"{row['miou']:.3f}",
            f"{row['boundary_f1']:.3f}", "-" if row["steps"] is None else str(row["steps"]),
            f"{row['train_wall_s']:.1f}",
        ])
    if markdown:
        out = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
        out += [f"| {' | '.join(cells)} |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{w}s}}" for w in widths)
    return "\n".join([f"[{ds}]", fmt.format(*head)] + [fmt.format(*c) for c in lines])


DOC = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- scribbles_vs_rf:begin -->", "<!-- scribbles_vs_rf:end -->"


def doc_tables(result: dict) -> str:
    """Markdown tables of every dataset in ``result`` (what ``--doc`` writes)."""
    m = result["machine"]
    parts = [f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), torch "
             f"{m['versions'].get('torch')}, scikit-image {m['versions'].get('skimage')}, "
             f"scikit-learn {m['versions'].get('sklearn')}."]
    for ds, res in result["datasets"].items():
        st = res.get("settings", result["settings"])
        steps = ", ".join(f"{k}: {v}" for k, v in res.get("steps", {}).items())
        pairwise = ""
        if any("pairwise" in row["variant"] for row in res["table"]):
            pairwise = (f"pairwise weight {st['pairwise']:g}, sigma {st['sigma']:g}, start "
                        f"{st.get('start', 0):g}; ")
        budget = ("wall clock, both cores" if st.get("wall") else
                  f"steps {steps}" if steps else "one-thread CPU time")
        parts.append(
            f"\n**{ds}** ({res['scribbled_fraction']:.1%} of the pixels scribbled; "
            f"{st['seconds']:g} s budget ({budget}), {st['seeds']} seeds; {pairwise}"
            f"steps column: seed 0)\n\n{format_table(ds, res['table'], markdown=True)}")
    return "\n".join(parts)


def write_doc(result: dict, path: Path = DOC) -> None:
    """Replace the generated tables between the markers in ``docs/benchmarks.md``."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{doc_tables(result)}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="training budget per model")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--pairwise", type=float, default=PAIRWISE_WEIGHT)
    parser.add_argument("--sigma", type=float, default=PAIRWISE_SIGMA)
    parser.add_argument("--start", type=float, default=PAIRWISE_START)
    parser.add_argument("--wall", action="store_true",
                        help="train with time_limit=seconds on all cores (no calibration)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scribbles_vs_rf.json")
    parser.add_argument("--variants", nargs="+", default=["rf", "default", "nocutmix"],
                        choices=["rf", "default", "nocutmix", "scratch", "pairwise"],
                        help="what to run")
    parser.add_argument("--no-lock", action="store_true",
                        help="do not wait for /tmp/bench.lock (CPU-time calibration still works)")
    parser.add_argument("--doc", action="store_true",
                        help="only rewrite the tables in docs/benchmarks.md from --out")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other datasets already in --out (run datasets apart)")
    args = parser.parse_args(argv)
    if args.doc:
        write_doc(json.loads(args.out.read_text()))
        return 0

    from _common import machine_description

    from napari_unet_studio.core.device import prepare_runtime

    prepare_runtime()
    pw_name = (f"U-Net + pairwise (w {args.pairwise:g}, sigma {args.sigma:g}, "
               f"from {args.start:.0%})")
    chosen = {"default": Variant("U-Net (engine defaults)", tta=(1, 8)),
              "nocutmix": Variant("U-Net (defaults, CutMix off)", cutmix=0.0),
              "scratch": Variant("U-Net (defaults, random start)", weights="scratch"),
              "pairwise": Variant(pw_name, pairwise=args.pairwise, sigma=args.sigma,
                                  start=args.start, tta=(1, 8))}
    variants = [v for k, v in chosen.items() if k in args.variants]
    machine = machine_description()
    print(f"{machine['date']}  {machine['cpu']}  {machine['cores']} cores  "
          f"torch {machine['versions']['torch']}", flush=True)
    result: dict[str, Any] = {
        "machine": machine,
        "settings": {"seconds": args.seconds, "seeds": args.seeds, "pairwise": args.pairwise,
                     "sigma": args.sigma, "start": args.start, "wall": args.wall,
                     "engine_has_pairwise": engine_has_pairwise()},
        "datasets": {},
    }
    for ds in args.datasets:
        data = load_dataset(ds)
        steps: dict[str, int | None] = {}
        timing: dict[str, float] = {}
        if not args.wall:
            with contextlib.nullcontext() if args.no_lock else bench_lock():
                for v in variants:
                    timing[v.name] = seconds_per_step(data, v)
                    steps[v.name] = max(1, int(args.seconds / timing[v.name]))
                    print(f"  {ds}: {v.name}: {timing[v.name] * 1000:.0f} CPU ms/step on one "
                          f"thread -> {steps[v.name]} steps in {args.seconds:g} s", flush=True)
        runs = []
        for seed in range(args.seeds):
            if "rf" in args.variants:
                runs.append(run_rf(data, seed))
            for v in variants:
                if args.wall:
                    with contextlib.nullcontext() if args.no_lock else bench_lock():
                        runs += run_unet(data, v, seed, None, args.seconds, None)
                else:
                    runs += run_unet(data, v, seed, steps[v.name], None, 1)
            for r in (r for r in runs if r["seed"] == seed):
                print(f"  {ds} seed {seed}: {r['variant']:40s} {data['metric']} "
                      f"{r[data['metric']]:.4f}  bf1 {r['boundary_f1']:.3f}", flush=True)
        table = aggregate(runs, data["metric"])
        result["datasets"][ds] = {
            "metric": data["metric"],
            "settings": dict(result["settings"]),
            "scribbled_fraction": round(float((data["scribbles"] > 0).mean()), 4),
            "ms_per_step": {k: round(v * 1000, 1) for k, v in timing.items()},
            "steps": steps,
            "table": table,
            "runs": runs,
        }
        print(format_table(ds, table), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and args.out.exists():  # keep the other datasets of an earlier run
        old = json.loads(args.out.read_text())
        old.get("datasets", {}).update(result["datasets"])
        result["datasets"] = old["datasets"]
        result.setdefault("earlier_runs", old.get("earlier_runs", []))
        result["earlier_runs"].append({"machine": old.get("machine"),
                                       "settings": old.get("settings")})
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    for ds, res in result["datasets"].items():
        print(f"\n### {ds}\n\n{format_table(ds, res['table'], markdown=True)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
