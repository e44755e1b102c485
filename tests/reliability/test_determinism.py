"""Same seed, same data, same CPU (and thread count) -> identical weights and predictions.

Two runs in this process, and one in a fresh interpreter, must agree bit for bit; a
different seed must give different weights (so the comparison can fail).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from rel_helpers import ARCH, TINY_TRAIN, drain, textured

from napari_unet_studio.core.checkpoint import load_model
from napari_unet_studio.core.config import TileConfig
from napari_unet_studio.core.infer import predict_image
from napari_unet_studio.core.train import Trainer

TC = dataclasses.replace(TINY_TRAIN, steps=4, seed=7)
TILE = TileConfig(tile=32, overlap=0.25, batch_size=2)


def _data():
    image = textured((40, 48), seed=3)
    labels = np.zeros((40, 48), np.uint8)
    labels[5:8, 4:30] = 1
    labels[25:28, 10:40] = 2
    return image, labels


def _train(seed=7, decoder="bilinear"):
    image, labels = _data()
    tc = dataclasses.replace(TC, seed=seed)
    model = drain(Trainer([(image, labels)], None, tc, arch=ARCH, decoder=decoder,
                          threads=1).run())
    pred = predict_image(model, image, tile=TILE, probabilities=True, device="cpu", threads=1)
    return model, pred


def _same_weights(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("decoder", ["bilinear", "transposed", "unpool", "pixelshuffle",
                                     "nearest"])
def test_two_runs_in_one_process_are_identical(decoder):
    m1, p1 = _train(decoder=decoder)
    m2, p2 = _train(decoder=decoder)
    assert _same_weights(m1.state_dict, m2.state_dict)
    assert np.array_equal(p1.labels, p2.labels)
    assert np.array_equal(p1.probabilities, p2.probabilities)
    assert m1.record["best_step"] == m2.record["best_step"]


def test_another_seed_gives_other_weights():
    (m1, _), (m2, _) = _train(seed=7), _train(seed=8)
    assert not _same_weights(m1.state_dict, m2.state_dict)


def test_global_random_state_does_not_leak_in():
    """Users' own seeding (or none) around training must not change the result."""
    m1, _ = _train()
    torch.manual_seed(12345)
    np.random.seed(999)  # noqa: NPY002 - the legacy global state users may set
    torch.rand(100)
    m2, _ = _train()
    assert _same_weights(m1.state_dict, m2.state_dict)


def test_a_fresh_interpreter_gives_the_same_model(tmp_path):
    model, pred = _train()
    out = tmp_path / "sub.pt"
    code = textwrap.dedent(f"""
        import sys
        import torch
        torch.set_num_threads(1)  # as here (reliability_one_thread): the same thread count
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_determinism import _train
        model, _ = _train()
        model.save({str(out)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(__file__),
                          env=dict(os.environ, NAPARI_UNET_STUDIO_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    other = load_model(out)
    assert _same_weights(model.state_dict, other.state_dict)
    again = predict_image(other, _data()[0], tile=TILE, device="cpu", threads=1)
    assert np.array_equal(pred.labels, again.labels)
