"""Compare decoders on the user's own strokes: held-out strokes, boundaries, cost.

For one decoder, :func:`evaluate_decoder` trains with the same short budget once per
fold of a stroke-wise split (:func:`~napari_unet_studio.core.folds.stroke_folds`) and
scores each fold's model on the strokes that fold held out, then trains once more on
all strokes (the model the user can keep). Two scores of the held-out pixels: the share
predicted as painted (a count: it saturates at 100 % when every decoder gets the easy
pixels away from boundaries right) and the mean cross-entropy of the painted class
(:func:`nll_table`, continuous: how sure each model is of the right class, and a
confidently wrong pixel costs most); :func:`pick_best` ranks by the cross-entropy.
Training is :class:`~.train.Trainer` (the one training loop); prediction is
:func:`~.infer.predict_image`. Used by the worker's ``compare`` job and
``bench/assistant.py``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .config import ModelConfig, TrainConfig, preview_tile
from .errors import DataError
from .folds import StrokeSplit, boundary_mask, stroke_folds

__all__ = ["split_pairs", "evaluate_decoder", "pick_best", "decoder_entry", "nll_table",
           "balanced_mean", "undecided", "SATURATED"]

#: Held-out agreement at or above which a decoder gets the held-out strokes all right.
SATURATED = 0.99

EPS = 1e-6  # probabilities are clipped here: one pixel costs at most -log(EPS) = 13.8


def decoder_entry(entry: str) -> tuple[str, bool]:
    """``"bilinear"`` -> ``("bilinear", True)``; ``"bilinear/one-shot"`` -> progressive False."""
    name, _, kind = str(entry).partition("/")
    return name, kind != "one-shot"


def nll_table(probabilities: np.ndarray, heldout: np.ndarray,
              mask: np.ndarray | None = None,
              table: dict[int, list[float]] | None = None) -> dict[int, list[float]]:
    """Add each held-out class's cross-entropy to ``table``: ``{class: [sum, pixels]}``.

    Parameters
    ----------
    probabilities : numpy.ndarray
        ``(K, *spatial)`` class probabilities; label ``k`` (1..K) is channel ``k - 1``.
    heldout : numpy.ndarray
        Held-out labels of the same spatial shape (0 = not held out).
    mask : numpy.ndarray of bool, optional
        Only these pixels (e.g. the boundary pixels).
    table : dict, optional
        Sums to add to (several folds); a new one if ``None``.

    Returns
    -------
    dict
        ``{class: [sum of -log p(class), pixels]}`` with ``p`` clipped to ``[EPS, 1]``.
    """
    table = {} if table is None else table
    probs = np.asarray(probabilities)
    held = np.asarray(heldout)
    if probs.shape[1:] != held.shape:
        raise ValueError(f"probabilities {probs.shape} do not match labels {held.shape}")
    sel = held > 0 if mask is None else (held > 0) & np.asarray(mask, bool)
    truth = held[sel].astype(np.int64)
    if truth.size == 0:
        return table
    if truth.max() > probs.shape[0]:
        raise ValueError(f"label {int(truth.max())} has no probability channel")
    p = probs[:, sel][truth - 1, np.arange(truth.size)].astype(np.float64)
    nll = -np.log(np.clip(p, EPS, 1.0))
    for c in np.unique(truth):
        m = truth == c
        cell = table.setdefault(int(c), [0.0, 0])
        cell[0] += float(nll[m].sum())
        cell[1] += int(m.sum())
    return table


def balanced_mean(table: dict[int, list[float]]) -> float | None:
    """Mean over classes of each class's mean (``None`` for an empty table)."""
    means = [float(s) / n for s, n in table.values() if n]
    return float(np.mean(means)) if means else None


def split_pairs(pairs: Sequence[tuple[Any, np.ndarray]], n_folds: int,
                seed: int = 0) -> list[list[StrokeSplit | None]]:
    """Stroke folds of every pair: ``out[p][f]`` (``None``: pair ``p`` holds nothing out).

    Raises
    ------
    DataError
        No pair has a class with at least two separate strokes.
    """
    out: list[list[StrokeSplit | None]] = []
    for _, labels in pairs:
        try:
            out.append(list(stroke_folds(np.asarray(labels), n_folds, seed)))
        except ValueError:
            out.append([None] * int(n_folds))
    if all(s is None for per in out for s in per):
        raise DataError("To compare decoders, paint at least two separate strokes of a "
                        "class (the comparison holds some strokes out and checks them).")
    return out


def _held_planes(held: np.ndarray) -> list[int] | None:
    """Stacks: the slices that hold held-out pixels (``None`` for 2D)."""
    if held.ndim == 2:
        return None
    return [int(z) for z in np.flatnonzero(held.reshape(held.shape[0], -1).any(axis=1))]


def _predict(model: Any, image: Any, planes: list[int] | None, threads: int | None,
             stop: threading.Event | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, probabilities)`` of the image (or the listed slices)."""
    from .infer import predict_image

    tile = preview_tile(tuple(np.shape(image)), int(model.config.in_channels))
    res = predict_image(model, image, tile=tile, device=str(model.record.get("device", "cpu")),
                        slices=planes, threads=threads, stop=stop, probabilities=True)
    if res.cancelled:
        return None
    return np.asarray(res.labels), np.asarray(res.probabilities)


def _train(pairs: list, mc: ModelConfig | None, tc: TrainConfig, decoder: str,
           progressive: bool, threads: int | None, stop: threading.Event | None,
           on_step: Callable[[Any], None] | None, class_names: Any) -> Any:
    from .train import Trainer

    arch = {"progressive": bool(progressive)}
    if mc is not None:
        mc = dataclasses.replace(mc, decoder=decoder, progressive=bool(progressive))
    trainer = Trainer(pairs, mc, tc, decoder=decoder, arch=None if mc else arch,
                      class_names=class_names, threads=threads)
    run = trainer.run()
    while True:
        if stop is not None and stop.is_set():
            trainer.stop()
        try:
            p = next(run)
        except StopIteration as fin:
            return fin.value
        if on_step is not None:
            on_step(p)


def evaluate_decoder(
    pairs: Sequence[tuple[Any, np.ndarray]],
    decoder: str,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    n_folds: int = 2,
    seed: int = 0,
    splits: list[list[StrokeSplit | None]] | None = None,
    radius: int = 6,
    threads: int | None = None,
    stop: threading.Event | None = None,
    on_step: Callable[[str, Any], None] | None = None,
    class_names: Sequence[str] | None = None,
    final: bool = True,
) -> tuple[dict[str, Any], Any]:
    """Held-out agreement of one decoder, and its model trained on all strokes.

    Parameters
    ----------
    pairs : sequence of (image, labels)
        The user's images and painted labels.
    decoder : str
        A registered decoder, optionally ``"<name>/one-shot"`` (no progressive steps).
    model_config, train_config
        Architecture (its decoder is replaced) and the budget (the same for every
        decoder: fixed ``steps`` keep the comparison fair).
    n_folds, seed, splits
        The stroke-wise split (computed from ``pairs`` when ``splits`` is ``None``).
    radius : int
        Boundary pixels: held-out pixels within this many px of a painted pixel of
        another class.
    stop : threading.Event, optional
        Set it to cancel; the row then has ``"cancelled": True``.
    on_step : callable, optional
        ``on_step(phase, TrainProgress)`` after every training step.
    final : bool
        Also train on all strokes (the model to keep and its prediction).

    Returns
    -------
    row : dict
        ``decoder``, ``heldout`` (balanced agreement: mean over classes of the share of
        held-out pixels predicted as painted), ``heldout_accuracy``, ``boundary`` (the
        same on boundary pixels, ``None`` where the user never painted both sides),
        ``heldout_nll`` and ``boundary_nll`` (balanced cross-entropy, nats: mean over
        classes of the mean ``-log p(painted class)`` of those pixels, lower is better;
        ``None`` without pixels), ``heldout_pixels``, ``boundary_pixels``,
        ``step_seconds``, ``parameters``, ``steps``, ``cancelled``.
    model : TrainedModel or None
        Trained on all strokes (``None`` if ``final`` is False or it was cancelled).
    """
    tc = train_config or TrainConfig()
    name, progressive = decoder_entry(decoder)
    splits = splits if splits is not None else split_pairs(pairs, n_folds, seed)
    n_folds = len(splits[0])
    hits: dict[int, list[int]] = {}   # class -> [correct, total] over all folds
    bhits: dict[int, list[int]] = {}
    nll: dict[int, list[float]] = {}  # class -> [sum of -log p, pixels] over all folds
    bnll: dict[int, list[float]] = {}
    step_times: list[float] = []
    cancelled = False

    def stepper(phase: str) -> Callable[[Any], None] | None:
        return None if on_step is None else (lambda p: on_step(phase, p))

    for f in range(n_folds):
        if stop is not None and stop.is_set():
            cancelled = True
            break
        train = [(img, labels if splits[p][f] is None else splits[p][f].train)
                 for p, (img, labels) in enumerate(pairs)]
        model = _train(train, model_config, tc, name, progressive, threads, stop,
                       stepper(f"fold {f + 1}/{n_folds}"), class_names)
        if stop is not None and stop.is_set():
            cancelled = True
            break
        rec = model.record
        if rec.get("steps"):
            step_times.append(float(rec["seconds"]) / int(rec["steps"]))
        for p, (img, labels) in enumerate(pairs):
            split = splits[p][f]
            if split is None or not split.heldout.any():
                continue
            planes = _held_planes(split.heldout)
            got = _predict(model, img, planes, threads, stop)
            if got is None:
                cancelled = True
                break
            pred, probs = got
            held = split.heldout if planes is None else split.heldout[planes]
            ctx = np.asarray(labels) if planes is None else np.asarray(labels)[planes]
            border = boundary_mask(held, ctx, radius)
            nll_table(probs, held, None, nll)
            nll_table(probs, held, border, bnll)
            for table, sel in ((hits, held > 0), (bhits, border & (held > 0))):
                truth, got = held[sel], pred[sel]
                for c in np.unique(truth):
                    m = truth == c
                    cell = table.setdefault(int(c), [0, 0])
                    cell[0] += int(np.count_nonzero(got[m] == c))
                    cell[1] += int(m.sum())
        if cancelled:
            break

    def score(table: dict[int, list[int]]) -> tuple[float | None, float | None, int]:
        total = sum(t for _, t in table.values())
        if total == 0:
            return None, None, 0
        balanced = float(np.mean([c / t for c, t in table.values() if t]))
        return balanced, sum(c for c, _ in table.values()) / total, total

    held_bal, held_acc, n_held = score(hits)
    bnd_bal, _, n_bnd = score(bhits)
    kept = None
    params = None
    if final and not cancelled:
        kept = _train(list(pairs), model_config, tc, name, progressive, threads, stop,
                      stepper("all strokes"), class_names)
        cancelled = bool(stop is not None and stop.is_set())
        rec = kept.record
        if rec.get("steps"):
            step_times.append(float(rec["seconds"]) / int(rec["steps"]))
        params = int(sum(int(t.numel()) for t in kept.state_dict.values()))
        if cancelled:
            kept = None
    row = {
        "decoder": str(decoder),
        "heldout": held_bal,
        "heldout_accuracy": held_acc,
        "heldout_pixels": int(n_held),
        "boundary": bnd_bal,
        "boundary_pixels": int(n_bnd),
        "heldout_nll": balanced_mean(nll),
        "boundary_nll": balanced_mean(bnll),
        "step_seconds": float(np.median(step_times)) if step_times else None,
        "parameters": params,
        "steps": int(tc.steps or 0),
        "folds": int(n_folds),
        "cancelled": bool(cancelled),
    }
    return row, kept


def _scored(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that finished with a held-out score (not cancelled)."""
    return [r for r in rows if not r.get("cancelled") and r.get("heldout") is not None]


def pick_best(rows: Sequence[dict[str, Any]]) -> str | None:
    """The decoder with the lowest held-out cross-entropy (``heldout_nll``; ties, or rows
    without it: the highest held-out agreement, then boundary agreement, then fewer
    parameters); rows that were cancelled or have no score are skipped.

    Cross-entropy first because it is continuous and a proper score: agreement counts
    pixels on the right side of 0.5 and saturates at 100 % when the held-out strokes
    lie away from boundaries, as careful strokes do, leaving the choice to noise and the
    tie-break; the cross-entropy still tells a model that is barely right from one that
    is sure, and punishes confidently wrong pixels most (docs/benchmarks.md).
    """
    scored = _scored(rows)
    if not scored:
        return None

    def key(r: dict[str, Any]) -> tuple:
        n = r.get("heldout_nll")
        b = r.get("boundary")
        return (-float("inf") if n is None else -round(float(n), 4),
                round(float(r["heldout"]), 4), -1.0 if b is None else round(float(b), 4),
                -(r.get("parameters") or 0))

    return str(max(scored, key=key)["decoder"])


def undecided(rows: Sequence[dict[str, Any]]) -> str | None:
    """Why the held-out strokes cannot rank these decoders' boundaries, or ``None``.

    When every finished decoder predicts at least :data:`SATURATED` of the held-out
    stroke pixels right, on the boundary pixels too (or there are none: the user never
    painted both sides of a boundary), the strokes say nothing about where each decoder
    puts the boundaries; :func:`pick_best` then ranks by confidence inside the objects.
    On the development images that is exactly the case where the star missed the decoder
    best against the full truth, whose lead there is within the training-seed noise
    (``bench/decoder_seeds.py``, docs/benchmarks.md).

    Returns
    -------
    str or None
        A sentence for the user (what it means and what to do), ``None`` when the
        held-out strokes do separate the decoders.
    """
    scored = _scored(rows)
    if len(scored) < 2:
        return None
    if any(float(r["heldout"]) < SATURATED for r in scored):
        return None
    if any(r.get("boundary") is not None and float(r["boundary"]) < SATURATED
           for r in scored):
        return None
    return ("Every decoder got your held-out strokes right, so they cannot tell which "
            "one draws the best boundaries: the star only marks the most confident. "
            "Look at the compare layers at a few boundaries, or paint both sides of some "
            "boundaries and compare again.")
