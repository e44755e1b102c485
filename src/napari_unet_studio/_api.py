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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core.checkpoint import TrainedModel, save_model
from .core.checkpoint import load_model as _load_model
from .core.config import ModelConfig, TileConfig, TrainConfig

__all__ = ["train", "train_config_from", "predict", "load_model", "save_model", "pretrained_info",
           "export_model", "uncertainty"]


def train_config_from(train_config: TrainConfig | None = None, **fields: Any) -> TrainConfig:
    """``train_config`` (or the defaults) with every field given (not ``None``) replaced.

    The one place where the API and the CLI apply their overrides. ``steps`` and
    ``time_limit`` go together: giving either sets both, so giving only ``time_limit``
    trains until the time is up.

    Raises
    ------
    ValueError
        An unknown field name or an invalid value.
    """
    tc = train_config or TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
    overrides = {k: v for k, v in fields.items() if v is not None}
    if fields.get("steps") is not None or fields.get("time_limit") is not None:
        overrides["steps"] = fields.get("steps")
        overrides["time_limit"] = fields.get("time_limit")
    if "seed" in overrides:
        overrides["seed"] = int(overrides["seed"])
    if "start" in overrides:
        overrides["start"] = str(overrides["start"])
    return dataclasses.replace(tc, **overrides) if overrides else tc


def train(
    pairs_or_image: Any,
    labels: Any = None,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    decoder: str | None = None,
    arch: dict[str, Any] | None = None,
    steps: int | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    device: str | None = None,
    start: str | os.PathLike | None = None,
    init: TrainedModel | str | os.PathLike | None = None,
    reinit_head: bool = False,
    class_names: Sequence[str] | None = None,
    progress: bool = False,
    threads: int | None = None,
    keep_on_interrupt: bool = False,
    dims: int | None = None,
    spacing: Sequence[float] | None = None,
    **settings: Any,
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
        Training settings; ``steps``, ``time_limit``, ``seed``, ``device``, ``start`` and
        ``settings`` override its fields when given.
    decoder : str, optional
        Decoder name (see ``napari_unet_studio.list_decoders()``).
    arch : dict, optional
        Other :class:`ModelConfig` fields, e.g. ``{"depth": 2, "width": 8}`` (the
        shipped pretrained weights fit the default depth and width only).
    steps, time_limit, seed, device
        Shortcuts for the matching :class:`TrainConfig` fields. Giving only
        ``time_limit`` trains until the time is up.
    start : str or path, optional
        ``"pretrained"`` (the default of :class:`TrainConfig`: the shipped starting
        weights, see docs/pretraining.md), ``"scratch"`` (random weights) or the path of
        a model file whose weights to start from.
    init : TrainedModel or path, optional
        Continue training from this model (overrides ``start``).
    reinit_head : bool
        With ``init``: train a new output layer (allows a different class count).
    class_names : sequence of str, optional
        Names of classes 1..K, stored in the model.
    progress : bool
        Show a progress bar (tqdm) on stderr.
    threads : int, optional
        Torch CPU threads (default: all cores this process may use).
    keep_on_interrupt : bool
        On Ctrl+C after at least one step, return the best model so far (its record
        says ``"interrupted": True``) instead of raising ``KeyboardInterrupt``.
    dims : {2, 3}, optional
        3: a 3D U-Net on volumes ``(Z, Y, X)`` (3D patches around the painted voxels;
        strokes on a few slices are enough). Unless given, the patch size, batch size
        and width then come from :func:`~napari_unet_studio.core.device.volume_defaults`.
    spacing : sequence of 3 float, optional
        3D: voxel size ``(Z, Y, X)``; when z is much coarser the first levels pool only
        in y/x (:mod:`napari_unet_studio.core.anisotropy`).
    **settings
        Other :class:`TrainConfig` fields, e.g. ``lr=1e-3, patch_size=96``.

    Returns
    -------
    TrainedModel
    """
    from .core.train import Trainer

    pairs = [(pairs_or_image, labels)] if labels is not None else list(pairs_or_image)
    if dims is not None or spacing is not None:
        arch = {**(arch or {}), **({"dims": int(dims)} if dims is not None else {}),
                **({"spacing": tuple(spacing)} if spacing is not None else {})}
    if int((arch or {}).get("dims", getattr(model_config, "dims", 2))) == 3:
        from .core.volume import volume_settings

        arch, settings = volume_settings(arch, settings, model_config, train_config, device)
    tc = train_config_from(train_config, steps=steps, time_limit=time_limit, seed=seed,
                           device=device, start=start, **settings)
    if isinstance(init, (str, os.PathLike)):
        init = _load_model(init)
    trainer = Trainer(pairs, model_config, tc, init=init, reinit_head=reinit_head,
                      decoder=decoder, arch=arch, class_names=class_names, threads=threads)
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
                    bar.write(p.message, file=sys.stderr)
    except KeyboardInterrupt:
        if not keep_on_interrupt or trainer.steps_done == 0:
            raise
        model = trainer.result()
        model.record["interrupted"] = True
        return model
    finally:
        if bar is not None:
            bar.close()


def _bar(tc: TrainConfig):
    from tqdm import tqdm

    if tc.steps is not None:
        return tqdm(total=tc.steps, unit="step", desc="training", file=sys.stderr)
    return tqdm(total=int(tc.time_limit or 0), unit="s", desc="training", file=sys.stderr)


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
    progress: bool = False,
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
    progress : bool
        Show a progress bar of the tiles (tqdm) on stderr.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        Labels, or ``(labels, probabilities)`` if ``probabilities=True``.
    """
    from .core.infer import iter_predict

    if not isinstance(model, TrainedModel):
        model = _load_model(model)
    if tta is not None:
        tile = dataclasses.replace(tile or TileConfig(), tta=int(tta))
    gen = iter_predict(model, image, tile=tile, probabilities=probabilities, device=device,
                       slices=slices, threads=threads)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="tile", desc="predicting", file=sys.stderr)
    try:
        while True:
            try:
                prog = next(gen)
            except StopIteration as fin:
                res = fin.value
                break
            if bar is not None:
                bar.total = prog.total
                bar.update(prog.done - bar.n)
    finally:
        if bar is not None:
            bar.close()
    if probabilities:
        assert res.probabilities is not None
        return res.labels, res.probabilities
    return res.labels


def uncertainty(
    model: TrainedModel | str | Path,
    image: Any,
    *,
    method: str = "entropy",
    tile: TileConfig | None = None,
    device: str = "auto",
    slices: Any = None,
    threads: int | None = None,
) -> np.ndarray:
    """Per-pixel uncertainty of the prediction of ``image``, float32 in [0, 1].

    The map the dock's uncertainty layer shows (docs/user-guide.md, annotation
    assistant): high where the model hesitates, where painting more helps most.

    Parameters
    ----------
    model : TrainedModel or path
    image : array-like
        As for :func:`predict`.
    method : {"entropy", "margin", "flips"}
        Normalised entropy of the class probabilities, ``1 - (p_first - p_second)``, or
        the entropy of the prediction averaged with its left-right and top-bottom
        mirrored versions plus their disagreement (3 predictions).
    tile, device, slices, threads
        As for :func:`predict`.

    Returns
    -------
    numpy.ndarray
        The spatial shape of the prediction.
    """
    from .core.uncertainty import predict_uncertainty

    if not isinstance(model, TrainedModel):
        model = _load_model(model)
    return predict_uncertainty(model, image, method=method, tile=tile, device=device,
                               slices=slices, threads=threads)[1]


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Load a model file safely (see :func:`napari_unet_studio.core.checkpoint.load_model`).

    A bioimage.io package (``.zip``) exported by napari-unet-studio opens too
    (:func:`napari_unet_studio.export.load_package`); packages of other programs are
    refused with a message that says so.
    """
    if _is_zip_package(path):
        from .export.importer import load_package

        return load_package(path)
    return _load_model(path)


def _is_zip_package(path: str | os.PathLike) -> bool:
    """A ``.zip`` file that is not a torch checkpoint (those are zips too)."""
    import zipfile

    p = Path(path)
    if p.suffix.lower() != ".zip" or not p.is_file():
        return False
    try:
        with zipfile.ZipFile(p) as zf:
            return not any(n.endswith("/data.pkl") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return True  # load_package says what is wrong with it


def export_model(model: TrainedModel | str | os.PathLike, out: str | os.PathLike,
                 **kwargs: Any) -> Any:
    """Export a model as a bioimage.io package, TorchScript or ONNX file.

    See :func:`napari_unet_studio.export.exporter.export_model` for the keyword
    arguments (``format``, ``image``, ``name``, ``authors``...). Needs the ``export``
    extra: ``pip install "napari-unet-studio[export]"``.

    Returns
    -------
    napari_unet_studio.export.ExportReport
    """
    from .export.exporter import export_model as _export

    return _export(model, out, **kwargs)


def pretrained_info() -> str:
    """Description of the shipped pretrained weights: architecture, decoders, provenance."""
    from .core.pretrained import provenance_text

    return provenance_text()
