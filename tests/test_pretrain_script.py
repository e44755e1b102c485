"""scripts/pretrain.py builds the network the shipped weights are for (``--init`` loads them)."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import pretrain  # noqa: E402

from napari_unet_studio.core.pretrained import WEIGHTS_DIR  # noqa: E402


def test_init_loads_the_shipped_weights_strictly() -> None:
    nets = pretrain.build_nets(16, 3)
    assert all(net.config.stem == "none" for net in nets.values())
    pretrain.load_nets(nets, WEIGHTS_DIR)  # load_state_dict is strict: every key matches
    encoders = {id(net.encoder) for net in nets.values()}
    assert len(encoders) == 1  # one shared encoder
