"""core/starts.param_groups: which weights train at which share of the learning rate."""

from __future__ import annotations

import pytest
import torch

from napari_unet_studio.core import starts
from napari_unet_studio.core.config import ModelConfig, TrainConfig
from napari_unet_studio.core.model import build_model


def _scales(groups: list[dict], model: torch.nn.Module) -> dict[str, float]:
    """Parameter-name prefix ("head", "stem", "body") -> its group's lr_scale."""
    of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    out: dict[str, set[float]] = {}
    for name, p in model.named_parameters():
        part = name.split(".")[0] if name.startswith(("head.", "stem.")) else "body"
        out.setdefault(part, set()).add(of[id(p)])
    assert all(len(v) == 1 for v in out.values()), out
    return {k: v.pop() for k, v in out.items()}


@pytest.mark.parametrize("stem_scale", [1.0, 0.1, 0.0])
def test_adopted_head_groups(monkeypatch: pytest.MonkeyPatch, stem_scale: float) -> None:
    monkeypatch.setattr(starts, "ADOPTED_STEM_SCALE", stem_scale)
    model = build_model(ModelConfig(width=4, depth=2))
    tc = TrainConfig(lr=1e-3, start_lr=1e-4)
    groups = starts.param_groups(model, tc, "adopted")
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    s = _scales(groups, model)
    assert s["head"] == pytest.approx(0.1)
    assert s["body"] == pytest.approx(0.1 * starts.ADOPTED_BODY_SCALE)
    assert s["stem"] == pytest.approx(stem_scale)


def test_new_head_keeps_the_stem_at_lr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(starts, "ADOPTED_STEM_SCALE", 0.0)  # only the adopted head uses it
    model = build_model(ModelConfig(width=4, depth=2))
    s = _scales(starts.param_groups(model, TrainConfig(lr=1e-3, start_lr=1e-4), "body"), model)
    assert s == {"body": pytest.approx(0.1), "head": 1.0, "stem": 1.0}
