"""Headless API: train and predict from Python scripts or notebooks (no Qt, no napari).

Examples
--------
>>> import napari_unet_studio as nus
>>> model = nus.train(image, labels, steps=200)                 # doctest: +SKIP
>>> nus.save_model(model, "nuclei.pt")                          # doctest: +SKIP
>>> mask = nus.predict("nuclei.pt", other_image)                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core.checkpoint import TrainedModel, save_model
from .core.checkpoint import load_model as _load_model
from .core.config import ModelConfig, TileConfig, TrainConfig

__all__ = ["train", "predict", "load_model", "save_model"]


def train(
    pairs_or_image: Any,
    labels: Any = None,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    decoder: str | None = None,
    steps: int | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    device: str | None = None,
    init: TrainedModel | str | os.PathLike | None = None,
    reinit_head: bool = False,
    class_names: Sequence[str] | None = None,
    progress: bool = False,
    threads: int | None = None,
) -> TrainedModel:
    """Train a U-Net on painted labels and return the trained model.

    Parameters
    ----------
    pairs_or_image : array-like or sequence of (image, labels)
        One image (then give ``labels``) or a list of ``(image, labels)`` pairs.
    labels : array-like, optional
        Integer labels for a single image: 0 = not painted, 1..K = classes.
    model_config : ModelConfig, optional
        Architecture; default derived from the data (channels, classes).
    train_config : TrainConfig, optional
        Training settings; ``steps``, ``time_limit``, ``seed`` and ``device`` below
        override its fields when given.
    decoder : str, optional
        Decoder name (see ``napari_unet_studio.list_decoders()``).
    steps, time_limit, seed, device
        Shortcuts for the matching :class:`TrainConfig` fields. Giving only
        ``time_limit`` trains until the time is up.
    init : TrainedModel or path, optional
        Continue training from this model.
    reinit_head : bool
        With ``init``: train a new output layer (allows a different class count).
    class_names : sequence of str, optional
        Names of classes 1..K, stored in the model.
    progress : bool
        Show a progress bar (tqdm) on stderr.
    threads : int, optional
        Torch CPU threads (default: all cores this process may use).

    Returns
    -------
    TrainedModel
    """
    from .core.train import Trainer

    pairs = [(pairs_or_image, labels)] if labels is not None else list(pairs_or_image)
    tc = train_config or TrainConfig()
    overrides: dict[str, Any] = {}
    if steps is not None or time_limit is not None:
        overrides["steps"] = steps
        overrides["time_limit"] = time_limit
    if seed is not None:
        overrides["seed"] = int(seed)
    if device is not None:
        overrides["device"] = device
    if overrides:
        tc = dataclasses.replace(tc, **overrides)
    if isinstance(init, (str, os.PathLike)):
        init = _load_model(init)
    trainer = Trainer(
        pairs,
        model_config,
        tc,
        init=init,
        reinit_head=reinit_head,
        decoder=decoder,
        class_names=class_names,
        threads=threads,
    )
    bar = _bar(tc) if progress else None
    gen = trainer.run()
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as fin:
                return fin.value
            if bar is not None:
                bar.update((p.step if tc.steps is not None else int(p.elapsed)) - bar.n)
                bar.set_postfix(loss=f"{p.loss:.4f}", device=p.device, refresh=False)
                if p.message:
                    bar.write(p.message)
    finally:
        if bar is not None:
            bar.close()


def _bar(tc: TrainConfig):
    from tqdm.auto import tqdm

    if tc.steps is not None:
        return tqdm(total=tc.steps, unit="step", desc="training")
    return tqdm(total=int(tc.time_limit or 0), unit="s", desc="training")


def predict(
    model: TrainedModel | str | Path,
    image: Any,
    *,
    tile: TileConfig | None = None,
    probabilities: bool = False,
    device: str = "auto",
    slices: Any = None,
    threads: int | None = None,
    tta: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Predict class ids (1..K) for every pixel of ``image``.

    Parameters
    ----------
    model : TrainedModel or path
        A trained model or a model file.
    image : array-like
        numpy or dask array, ``(Y, X[, C])`` or a stack ``(Z, Y, X[, C])``.
    tile : TileConfig, optional
        Tiling settings for large images.
    probabilities : bool
        Also return float32 class probabilities ``(K, *spatial)``.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    slices : int, range, slice or None
        Stacks only: which slices to predict.
    threads : int, optional
        Torch CPU threads (default: all cores this process may use).
    tta : {1, 2, 4, 8}, optional
        Test-time augmentation (overrides ``tile.tta``): average over this many
        flips/rotations of every tile.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        Labels, or ``(labels, probabilities)`` if ``probabilities=True``.
    """
    from .core.infer import predict_image

    if not isinstance(model, TrainedModel):
        model = _load_model(model)
    if tta is not None:
        tile = dataclasses.replace(tile or TileConfig(), tta=int(tta))
    res = predict_image(
        model,
        image,
        tile=tile,
        probabilities=probabilities,
        device=device,
        slices=slices,
        threads=threads,
    )
    if probabilities:
        assert res.probabilities is not None
        return res.labels, res.probabilities
    return res.labels


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Load a model file safely (see :func:`napari_unet_studio.core.checkpoint.load_model`)."""
    return _load_model(path)
