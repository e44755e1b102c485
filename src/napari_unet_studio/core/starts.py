"""Where training starts: random weights, the shipped pretrained ones, or a saved model.

:class:`~.train.Trainer` calls these while it sets up; they know nothing about the loop.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .checkpoint import TrainedModel
from .config import ModelConfig, TrainConfig
from .data import TrainingData
from .errors import DataError
from .pretrained import Pretrained, start_state

__all__ = [
    "START_CHOICES", "adopt_head", "apply_start", "load_init", "param_groups", "resolve_config",
    "start_kind",
]

START_CHOICES = ("pretrained", "pretrained-features", "scratch")  # or a model file


def start_kind(start: str, init: TrainedModel | None) -> tuple[str, TrainedModel | None]:
    """Classify ``TrainConfig.start``; load the model file it names.

    Returns
    -------
    (str, TrainedModel or None)
        ``"init"`` (an explicit ``init`` model wins), ``"pretrained"``, ``"scratch"`` or
        ``"file"``, and the model to initialise from (``init``, or the loaded file).

    Raises
    ------
    ModelFileError
        If ``start`` names a file that is not a usable model.
    """
    if init is not None:
        return "init", init
    if start in START_CHOICES:
        return start, None
    from .checkpoint import load_model

    return "file", load_model(start)


def resolve_config(
    cfg: ModelConfig | None, init: TrainedModel | None, reinit_head: bool,
    decoder: str | None, data_c: int, data_k: int,
) -> ModelConfig:
    """The architecture to train: ``cfg``, else ``init``'s, else defaults from the data.

    Raises
    ------
    DataError
        Class or channel counts that do not fit.
    """
    if init is not None:
        base = cfg or init.config
        if reinit_head:
            k = max(data_k, cfg.num_classes if cfg else data_k, 2)
            base = dataclasses.replace(base, num_classes=k)
        elif data_k > base.num_classes:
            raise DataError(
                f"The model you continue from knows {base.num_classes} classes but the "
                f"labels use class {data_k}. Re-initialise the output layer (reinit head) "
                "to train with the new classes, or start a new model."
            )
    elif cfg is None:
        base = ModelConfig(in_channels=data_c, num_classes=max(2, data_k))
    else:
        base = cfg
        if base.num_classes < data_k:
            raise DataError(
                f"The labels use class {data_k} but the model is set to "
                f"{base.num_classes} classes. Increase the number of classes."
            )
    if decoder:
        base = dataclasses.replace(base, decoder=decoder)
    if base.in_channels != data_c:
        raise DataError(
            f"The model expects {base.in_channels} image channel(s) but the training "
            f"images have {data_c}. Use images like the ones the model was made for."
        )
    return base

def load_init(model: torch.nn.Module, init: TrainedModel, reinit_head: bool) -> None:
    """Load ``init``'s weights into ``model`` (all, or all but the head)."""
    own = model.state_dict()
    src = init.state_dict
    fits = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    if reinit_head:  # a fresh output layer even when the class count is unchanged
        # the class-dependent layers: the head and the stem's per-pixel output (stem.py)
        fits = {k: v for k, v in fits.items() if not k.startswith(("head.", "stem.pixel.2."))}
    if not reinit_head and (len(fits) != len(own) or len(src) != len(own)):
        raise DataError(
            "The model you continue from has a different architecture (decoder, depth, "
            "width or classes) than the one requested; continue with its own settings."
        )
    if reinit_head and not fits:
        raise DataError("None of the weights of the model you continue from fit; start anew.")
    model.load_state_dict(fits, strict=not reinit_head)


def apply_start(
    model: torch.nn.Module, config: ModelConfig, kind: str, start: str
) -> tuple[Pretrained | None, str, str]:
    """Apply a training start to a freshly built ``model`` (what the Trainer calls).

    Parameters
    ----------
    kind : str
        ``"pretrained"``, ``"scratch"``, ``"file"`` (a model file was loaded as the
        initial weights already) or ``"init"`` (continuing from a given model).
    start : str
        ``TrainConfig.start`` as given (the path for ``"file"``).

    Returns
    -------
    (Pretrained or None, str, str)
        The shipped weights used (if any), the description for the model record
        (``record["start"]``) and the first progress message (``""``: none).
    """
    if kind == "init":
        return None, "continued from a model", ""
    if kind == "file":
        return None, f"model file {start}", f"Starting from the model {start}."
    if kind == "scratch":
        return None, "scratch", ""
    # "pretrained" / "pretrained-features"
    pre, reason = start_state(model, config)
    if pre is None:
        return None, f"scratch ({reason})", f"Starting from random weights: {reason}."
    return pre, pre.label, "Starting from the pretrained weights."


ADOPTED_BODY_SCALE = 0.1  # body lr / start_lr when the pretrained head already fits
ADOPTED_STEM_SCALE = 1.0  # the filter stem's lr / lr with the adopted head (an ablation knob)


def param_groups(model: torch.nn.Module, tc: TrainConfig, started_from: str) -> list[dict]:
    """AdamW parameter groups; ``"lr_scale"`` multiplies the schedule's learning rate.

    Parameters
    ----------
    started_from : {"none", "body", "all", "adopted"}
        Which weights came from a start: none (scratch, continuing: everything at
        ``lr``); every weight but a new output layer ("body": pretrained weights or a
        model file with a new head; they train at ``start_lr``, the head at ``lr``); all
        of them ("all": a model file with its own head, all at ``start_lr``); or all with
        the pretrained object/background head adopted because it already fits the
        strokes ("adopted": the head at ``start_lr``, the rest at ``start_lr / 10``, so
        the fine-tune nudges a start that already segments instead of fitting the
        strokes' shape; docs/pretraining.md).
    """
    if started_from == "none" or tc.start_lr is None:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
    scale = float(tc.start_lr) / float(tc.lr)
    named = list(model.named_parameters())
    head = [p for n, p in named if n.startswith("head.")]
    body = [p for n, p in named if not n.startswith(("head.", "stem."))]
    # the filter stem's branches start at zero in every start: they train at ``lr``
    # (times ADOPTED_STEM_SCALE with the adopted head)
    stem_scale = ADOPTED_STEM_SCALE if started_from == "adopted" else 1.0
    stem = [{"params": [p for n, p in named if n.startswith("stem.")], "lr_scale": stem_scale}]
    stem = stem if stem[0]["params"] else []
    if started_from == "all":
        return [{"params": body + head, "lr_scale": scale}, *stem]
    if started_from == "adopted":
        return [{"params": body, "lr_scale": scale * ADOPTED_BODY_SCALE},
                {"params": head, "lr_scale": scale}, *stem]
    return [{"params": body, "lr_scale": scale}, {"params": head, "lr_scale": 1.0}, *stem]


def adopt_head(model: torch.nn.Module, pre: Pretrained, data: TrainingData, tc: TrainConfig,
               device: torch.device) -> tuple[str, str]:
    """Try the pretrained object/background head on 4 batches of painted patches
    (:func:`~.pretrained.semantic_head`; its own seeded generator, so training's random
    stream is untouched).

    Returns
    -------
    (str, str)
        ``"adopted"`` (head loaded), ``"features"`` (object-like task, head new, the
        pretrained features kept) or ``"new"``; and the text for ``record["head_start"]``.
    """
    from .pretrained import HEAD_THRESHOLD, SEMANTIC_THRESHOLD, semantic_head
    from .volume import make_sampler

    cfg = getattr(model, "config", None)
    sampler = make_sampler(data, tc.patch_size, augment=False, label_fraction=1.0,
                           spacing=getattr(cfg, "spacing", None),
                           depth=int(getattr(cfg, "depth", 3)))
    rng = np.random.default_rng([tc.seed, 2])
    draws = [sampler.draw(int(tc.batch_size), rng) for _ in range(4)]
    batches = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
               for x, y in draws]
    # 3D models adopt the head from SEMANTIC_THRESHOLD: with a new head a 3D model
    # collapsed on one of two seeds of the volume benchmark (nucleus IoU 0.17 vs 0.84)
    adopt = HEAD_THRESHOLD if int(getattr(cfg, "dims", 2)) == 2 else SEMANTIC_THRESHOLD
    kind, score = semantic_head(model, pre, batches, SEMANTIC_THRESHOLD, adopt)
    if kind == "new":
        return kind, f"new (pretrained object head: balanced accuracy {score:.2f} on the strokes)"
    if kind == "features":
        return kind, (f"new, pretrained features kept (pretrained object head: balanced "
                      f"accuracy {score:.2f} on the strokes, below {HEAD_THRESHOLD})")
    return "adopted", (f"pretrained object head, {kind} (balanced accuracy {score:.2f} on "
                       f"the strokes)")
