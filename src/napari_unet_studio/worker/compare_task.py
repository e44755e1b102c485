"""The ``compare`` job: train every selected decoder on the user's strokes, one after
another, with the same budget; score each on held-out strokes (``core/compare.py``).

Spec (``WorkerClient.submit("compare", spec, arrays)``): ``pairs`` (a list of
``[image_key, labels_key]``, arrays sent under those keys), ``decoders``,
``model_config`` and ``train_config`` (dicts), ``folds``, ``seed``, ``class_names``,
optionally ``plane`` (an array key: the plane the user looks at) and ``plane_key``.

Events: ``progress`` ``{"decoder", "index", "of", "phase", "step", "total_steps"}``;
``preview`` ``(("compare", decoder, plane_key), labels)`` (the prediction of the model
trained on all strokes, on ``plane``); ``row`` (a result row with its ``model``, a
``ModelRef``); ``done`` ``{"rows", "best", "cancelled"}``. Stop cancels: the rows of
decoders that finished are kept.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..core.config import preview_tile
from .protocol import PREVIEW, PROGRESS, to_plain
from .server import WARMUP_WAIT_S, SpecTask, model_ref, save_quick
from .shm import pack

ROW = "row"


class CompareTask(SpecTask):
    """Decoders one after another on one thread of the worker (see the module doc)."""

    doing = "Comparing decoders"

    def work(self) -> dict[str, Any]:
        self.server.warm.wait(WARMUP_WAIT_S)
        from ..core.compare import evaluate_decoder, pick_best, split_pairs, undecided
        from ..core.config import ModelConfig, TrainConfig
        from ..core.device import prepare_runtime
        from ..core.infer import predict_image

        spec = self.spec
        pairs = [(self.array(i), np.array(self.array(lab), copy=True))
                 for i, lab in spec["pairs"]]
        plane = self.array("plane") if spec.get("plane") is not None else None
        mc = ModelConfig.from_dict(spec["model_config"]) if spec.get("model_config") else None
        tc = TrainConfig.from_dict(spec["train_config"]) if spec.get("train_config") else None
        decoders = [str(d) for d in spec["decoders"]]
        threads = self.server.threads or self.server.preferred_threads or 1
        prepare_runtime(threads)
        splits = split_pairs(pairs, int(spec.get("folds", 2)), int(spec.get("seed", 0)))
        rows: list[dict[str, Any]] = []
        last = [0.0]
        for i, decoder in enumerate(decoders):
            if self.cancel.is_set():
                break

            def on_step(phase: str, p: Any, i: int = i, decoder: str = decoder) -> None:
                now = time.monotonic()
                if now - last[0] >= 0.1 or p.done:
                    last[0] = now
                    self.event(PROGRESS, {"decoder": decoder, "index": i, "of": len(decoders),
                                          "phase": phase, "step": int(p.step),
                                          "total_steps": p.total_steps})

            row, model = evaluate_decoder(
                pairs, decoder, model_config=mc, train_config=tc, splits=splits,
                threads=threads, stop=self.cancel, on_step=on_step,
                class_names=spec.get("class_names") or None)
            if row["cancelled"] or model is None:
                break
            path = self.server.session / f"compare-{self.job_id}-{i}.pt"
            save_quick(model, path)
            row = to_plain(row)
            row["model"] = model_ref(model, path)
            if plane is not None:
                tile = preview_tile(np.shape(plane), model.config.in_channels)
                res = predict_image(model, plane, tile=tile, device=str(model.record["device"]),
                                    stop=self.cancel, threads=threads)
                if not res.cancelled:
                    key = ("compare", decoder, spec.get("plane_key"))
                    self.event(PREVIEW, (key, pack(np.asarray(res.labels), self.server.owned)))
            rows.append(row)
            self.event(ROW, row)
        return {"rows": rows, "best": pick_best(rows), "undecided": undecided(rows),
                "cancelled": bool(self.cancel.is_set())}
