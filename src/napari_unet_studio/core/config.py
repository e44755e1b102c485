"""Plain configuration dataclasses (no torch import) shared by core, CLI and GUI.

Every config round-trips through a JSON-compatible ``dict`` so that a checkpoint can
rebuild exactly the model it was saved from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

NORMS = ("batch", "instance", "group", "none")
STEMS = ("none", "pixel", "project", "both")  # core/stem.py (same tuple)
SUPERPIXEL_MODES = ("auto", "on", "off")  # core/superpixels.py
EDGE_MODES = ("auto", "on", "off")  # core/edges.py

_C = TypeVar("_C", bound="_DictConfig")


class _DictConfig:
    """Mixin: ``to_dict`` / ``from_dict`` with unknown-key and type checks."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible copy of the fields."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build from a dict, rejecting keys this version does not know.

        Raises
        ------
        ValueError
            If ``data`` is not a dict or holds unknown keys.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} needs a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown settings {unknown}")
        values = dict(data)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        return cls(**values)


@dataclass(frozen=True)
class ModelConfig(_DictConfig):
    """Architecture of a U-Net.

    Parameters
    ----------
    decoder : str
        Name of a registered upsampling decoder (``unet-studio decoders`` lists them).
    depth : int
        Number of 2x poolings (and of decoder up-steps). The bottleneck is at
        ``1 / 2**depth`` of the input resolution.
    width : int
        Channels of the first encoder level; each deeper level doubles it.
    norm : str
        ``"batch"``, ``"instance"``, ``"group"`` or ``"none"``.
    dims : int
        2 for images (Y, X), 3 for volumes (Z, Y, X).
    spacing : tuple of float or None
        3D only: voxel size (Z, Y, X) in any unit. When z is much coarser than y/x the
        first levels pool (and upsample) only in y/x (:mod:`~.anisotropy`); ``None``:
        isotropic, 2x on every axis at every level.
    in_channels : int
        Image channels (1 for grayscale, 3 for RGB).
    num_classes : int
        Number of classes K; label value ``k`` (1..K) is output channel ``k - 1``.
    progressive : bool
        ``True``: U-Net, upsample one level at a time and concatenate the skip
        features. ``False``: FCN-style, upsample the bottleneck to full resolution in
        one step with no skips (kept to show why the U-Net wins).
    stem : str
        Fixed multi-scale filters (Gaussian, gradient, Hessian; sigma 1-16, the random
        forest's features) fed to the network (:mod:`~.stem`): ``"pixel"`` (a per-pixel
        MLP on them added to the logits), ``"project"`` (added to the first encoder
        level), ``"both"`` (default) or ``"none"`` (models saved before the stem load
        as ``"none"``). The trainable parts start at zero, so a pretrained start gives
        the same output at step 0 (docs/pretraining.md).
    """

    decoder: str = "bilinear"
    depth: int = 3
    width: int = 16
    norm: str = "batch"
    dims: int = 2
    in_channels: int = 1
    num_classes: int = 2
    progressive: bool = True
    stem: str = "both"
    spacing: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if self.spacing is not None:
            if self.dims != 3:
                raise ValueError("spacing is for 3D models (dims=3)")
            values = tuple(float(v) for v in self.spacing)
            if len(values) != 3 or not all(v > 0 and v < float("inf") for v in values):
                raise ValueError(f"spacing needs 3 positive numbers (Z, Y, X), got {self.spacing}")
            object.__setattr__(self, "spacing", values)
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 1 <= int(self.depth) <= 6:
            raise ValueError(f"depth must be between 1 and 6, got {self.depth}")
        if int(self.width) < 1:
            raise ValueError(f"width must be positive, got {self.width}")
        if int(self.in_channels) < 1:
            raise ValueError(f"in_channels must be positive, got {self.in_channels}")
        if int(self.num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")


@dataclass(frozen=True)
class TrainConfig(_DictConfig):
    """How to train. Defaults aim at a useful first result without tuning.

    Parameters
    ----------
    steps : int or None
        Maximum optimiser steps (``None``: only the time limit counts).
    time_limit : float or None
        Maximum wall-clock seconds (``None``: only ``steps`` counts).
    batch_size : int
        Patches per step (on CUDA it may be lowered to fit memory).
    patch_size : int
        Edge length of the square (or cubic) training patches, in pixels.
    lr : float
        Peak learning rate of AdamW (one-cycle schedule).
    weight_decay : float
        AdamW weight decay.
    dice_weight : float
        Weight of the soft Dice term added to the masked cross-entropy.
    entropy_weight : float
        Weight of the mean prediction entropy over the *unpainted* pixels of every
        patch, added to the loss (entropy minimisation): the network is asked to be sure
        everywhere, so the boundaries settle where the image changes, in the gaps the
        strokes leave around every object, instead of wherever the strokes' shape puts
        them (0 = off; default 2, measured against 1 on the whole realistic suite in
        docs/pretraining.md).
    entropy_ramp : float
        Fraction of the run over which the entropy term is brought in: its weight is 0
        over the first half of that fraction and rises linearly to ``entropy_weight`` at
        its end (the network first learns the strokes, then is asked to be sure between
        them), and "lowest loss" snapshot tracking restarts there (the loss before it is
        on another scale). 0 (default): the full weight from the first step
        (:func:`~.losses.entropy_weight_at`; measured in docs/pretraining.md).
    seed : int
        Seed for patch sampling, augmentation and weight initialisation.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    amp : bool
        Mixed precision on CUDA (bf16 where supported, else fp16 + grad scaler).
    augment : bool
        Random flips, 90-degree rotations and intensity jitter (and CutMix).
    cutmix : float
        With ``augment``: probability that a training patch gets a square of another
        patch pasted in, image and labels together, so that painted pixels sit next to
        other classes' texture. Corrects objects that grow past their boundaries when the
        strokes stay away from the boundaries (0 = off; see docs/benchmarks.md).
    start : str
        Where the weights start from. ``"pretrained"`` (default): the starting weights
        shipped with napari-unet-studio (trained on generated scenes, public photos and
        BBBC007 nuclei; docs/pretraining.md) where they fit the task: 2 classes whose
        strokes the pretrained object/background head already separates (nuclei-like
        objects on a background; its output layer too where it gets at most 5 % of the
        painted pixels wrong, a new one otherwise for 2D models); otherwise random
        weights, and the model record and the first progress message say why.
        ``"pretrained-features"``: the shipped weights for any task (1-4 channels, any
        class count, a new output layer); measured worse than random weights on photos.
        ``"scratch"``: random weights. A path to a saved model (``.pt``): start from that
        model's weights (its architecture and normalisation; a new output layer if the
        classes differ). The shipped weights fit the default depth, width and norm
        (every decoder); other architectures fall back to random weights.
    start_lr : float or None
        With a pretrained or model-file start: peak learning rate of the weights that
        come from the start, while a new output layer trains with ``lr``. Lower than
        ``lr`` so that a few steps on a few strokes adapt the start instead of washing
        it out (docs/pretraining.md). ``None``: ``lr`` for every weight.
    freeze_norm : bool
        With a pretrained or model-file start: batch norm keeps the start's statistics
        (its scale and shift still train) instead of re-estimating them on the training
        patches, which sit mostly on the strokes and would shift every feature.
    pixel_fit : int
        With a per-pixel filter stem (``ModelConfig.stem``): full-batch optimiser steps
        that fit the stem's per-pixel classifier on all painted pixels before the U-Net
        trains, as a random forest would (0 = off). Not done when the pretrained
        object/background head was adopted: there the pretrained network leads and the
        branch trains with it from zero (docs/pretraining.md).
    holdout : float
        Fraction of every class's strokes (whole strokes, never split) held out of
        training to pick the snapshot with the lowest loss on them instead of the
        lowest training loss (0 = off: the training loss picks; core/holdout.py).
    """

    steps: int | None = 300
    time_limit: float | None = None
    batch_size: int = 4
    patch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dice_weight: float = 0.5
    entropy_weight: float = 2.0
    entropy_ramp: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    augment: bool = True
    cutmix: float = 0.5
    start: str = "pretrained"
    start_lr: float | None = 3e-4
    freeze_norm: bool = True
    pixel_fit: int = 200
    holdout: float = 0.0

    def __post_init__(self) -> None:
        if int(self.pixel_fit) < 0 or not 0.0 <= float(self.holdout) < 1.0:
            raise ValueError("pixel_fit must be >= 0 and holdout in [0, 1)")
        if not float(self.entropy_weight) >= 0.0:
            raise ValueError(f"entropy_weight must be >= 0, got {self.entropy_weight}")
        if not 0.0 <= float(self.entropy_ramp) <= 1.0:
            raise ValueError(f"entropy_ramp must be between 0 and 1, got {self.entropy_ramp}")
        if not isinstance(self.start, str) or not self.start.strip():
            raise ValueError(
                "start must be 'pretrained', 'scratch' or the path of a model file (.pt)")
        if self.start_lr is not None and not float(self.start_lr) > 0:
            raise ValueError(f"start_lr must be positive, got {self.start_lr}")
        if not 0.0 <= float(self.cutmix) <= 1.0:
            raise ValueError(f"cutmix must be between 0 and 1, got {self.cutmix}")
        if self.steps is None and self.time_limit is None:
            raise ValueError("give a step count, a time limit, or both")
        if self.steps is not None and int(self.steps) < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.time_limit is not None and float(self.time_limit) <= 0:
            raise ValueError(f"time_limit must be positive, got {self.time_limit}")
        if int(self.batch_size) < 1 or int(self.patch_size) < 8:
            raise ValueError("batch_size must be >= 1 and patch_size >= 8")


@dataclass(frozen=True)
class TileConfig(_DictConfig):
    """Tiled sliding-window prediction.

    Parameters
    ----------
    tile : int
        Tile edge in pixels (per spatial axis).
    overlap : float
        Fraction of the tile shared with each neighbour, in ``[0, 0.5)``.
    batch_size : int
        Tiles per forward pass.
    tta : int
        Test-time augmentation: average the class probabilities over 1 (off), 2, 4 or
        8 flips/90-degree rotations of every tile (8 costs 8x the time; measured +0.01
        nucleus IoU on the nuclei sample, see docs/benchmarks.md).
    superpixels : str
        Average the class probabilities over superpixels of the image (core/superpixels.py):
        "auto" on colour (RGB) images, "on" on every 2D image, "off". Measured +0.01-0.10
        mean IoU on colour photos; it harms small gray nuclei, hence "auto".
    edges : str
        Snap each object's boundary to the image's edge (core/edges.py): a threshold in
        0.3-0.7 per object where its contour has the most image gradient. "auto" on 2D
        one-channel two-class models, "on" on every 2D two-class model, "off". Measured
        on gray nuclei from gap strokes: higher mean IoU on 28 of 36 case-seeds (up to
        +0.021), at most 0.010 lower on the others. Labels only; probabilities unchanged.
    """

    tile: int = 256
    overlap: float = 0.25
    batch_size: int = 4
    tta: int = 1
    superpixels: str = "auto"
    edges: str = "auto"

    def __post_init__(self) -> None:
        if int(self.tile) < 8:
            raise ValueError(f"tile must be at least 8 pixels, got {self.tile}")
        if not 0.0 <= float(self.overlap) < 0.5:
            raise ValueError(f"overlap must be in [0, 0.5), got {self.overlap}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if int(self.tta) not in (1, 2, 4, 8):
            raise ValueError(f"tta must be 1, 2, 4 or 8, got {self.tta}")
        if self.superpixels not in SUPERPIXEL_MODES:
            raise ValueError(f"superpixels must be one of {SUPERPIXEL_MODES}, "
                             f"got {self.superpixels!r}")
        if self.edges not in EDGE_MODES:
            raise ValueError(f"edges must be one of {EDGE_MODES}, got {self.edges!r}")


def preview_tile(shape: tuple[int, ...], in_channels: int,
                 superpixels: str = "off", edges: str = "off") -> TileConfig:
    """Tiles for previews and comparisons: the whole plane in one tile up to 1024 px,
    else 512 px.

    The default prediction tiles (256 px, 25 % overlap) compute a 512 x 512 plane 2.25
    times over; one tile is 2.4x faster (0.33 s instead of 0.8 s on one thread) and has no
    seams. Memory stays small at this size (a few hundred MB on the CPU). The superpixel
    vote is off by default: a live preview comes every few seconds during training, and
    the vote (about 0.8 s on a 480 x 640 photo) would take that time from the training.
    Edge snapping (core/edges.py) is off by default for the same reason.
    """
    spatial = shape[:-1] if in_channels > 1 and len(shape) >= 3 else shape
    side = max(int(n) for n in spatial[-2:])
    if side <= 1024:
        return TileConfig(tile=max(16, -(-side // 16) * 16), overlap=0.0, batch_size=1,
                          superpixels=superpixels, edges=edges)
    return TileConfig(tile=512, overlap=0.125, batch_size=1, superpixels=superpixels,
                      edges=edges)
