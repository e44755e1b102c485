"""What crosses the process boundary: model references, errors and message names.

Nothing here imports torch; both the napari process and the worker process use it.
Messages are plain tuples sent with :mod:`multiprocessing.connection` (pickled):

parent -> worker
    ``("train", job_id, spec)``, ``("predict", job_id, spec)``, ``("load", job_id, path)``,
    ``("save", job_id, model_ref, path)``, ``("stop", job_id)``, ``("pause", job_id)``,
    ``("resume", job_id)``, ``("labels", job_id, pair_index, region)``,
    ``("preview_source", job_id, key, packed_plane_or_None)``, ``("release", block_name)``,
    ``("shutdown",)``
worker -> parent
    ``("hello", info)``, ``("event", job_id, kind, payload)``, ``("best", job_id, model_ref)``

Arrays travel as shared-memory descriptors (:mod:`.shm`), never as pickles of big data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ModelRef",
    "WorkerError",
    "PROGRESS",
    "PREVIEW",
    "UNCERTAINTY",
    "DONE",
    "ERROR",
    "region_to_wire",
    "region_from_wire",
]

PROGRESS, PREVIEW, DONE, ERROR = "progress", "preview", "done", "error"
UNCERTAINTY = "uncertainty"  # (key, packed uint8 map) sent after each training preview


@dataclass(frozen=True)
class ModelRef:
    """A trained model living on disk, described without torch (picklable).

    Attributes
    ----------
    path : str
        A ``.pt`` file in the user's location or the worker's session folder.
    config : dict
        ``ModelConfig.to_dict()``.
    record : dict
        ``TrainedModel.record`` (steps, decoder, class_names, provenance...), plus
        ``"parameters"`` (weight count) added by the worker.
    class_names : list of str
        Names of classes 1..K.
    """

    path: str
    config: dict
    record: dict
    class_names: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One-paragraph text for the models panel (same wording as ``TrainedModel``)."""
        c, r = self.config, self.record
        kind = "U-Net" if c.get("progressive", True) else "FCN, no skips"
        lines = [
            "U-Net Studio model",
            f"  decoder:     {c.get('decoder', '?')} ({kind}, depth {c.get('depth', '?')}, "
            f"width {c.get('width', '?')}, {c.get('norm', '?')} norm, {c.get('dims', 2)}D)",
            f"  channels:    {c.get('in_channels', '?')}",
            f"  classes:     {c.get('num_classes', '?')} ({', '.join(self.class_names)})",
        ]
        if r.get("parameters"):
            lines.append(f"  parameters:  {int(r['parameters']):,}")
        if "steps" in r:
            secs = r.get("seconds")
            secs_txt = f" in {float(secs):.1f} s" if secs is not None else ""
            lines.append(f"  training:    {r['steps']} steps{secs_txt} on {r.get('device', '?')}")
        if r.get("final_loss") is not None and r.get("best_loss") is not None:
            lines.append(f"  loss:        {float(r['final_loss']):.4f} "
                         f"(best {float(r['best_loss']):.4f})")
        if r.get("data_shapes"):
            shapes = ", ".join("x".join(str(s) for s in shp) for shp in r["data_shapes"])
            lines.append(f"  data:        {shapes}")
        if "seed" in r:
            lines.append(f"  seed:        {r['seed']}")
        if r.get("init_from"):
            lines.append(f"  continued:   from {r['init_from']}")
        if "created" in r:
            lines.append(f"  created:     {r['created']}")
        return "\n".join(lines)


@dataclass(frozen=True)
class WorkerError:
    """Why a job failed, in words for the user.

    Attributes
    ----------
    kind : str
        ``"error"`` (a plain failure: bad input, out of memory caught...), ``"crashed"``
        (the worker process died) or ``"start-failed"`` (it never came up).
    message : str
        What happened and what to do; shown verbatim.
    best : ModelRef or None
        Best model so far, saved on disk, when there is one.
    detail : str
        Traceback / exit code, for logs only.
    """

    kind: str
    message: str
    best: ModelRef | None = None
    detail: str = ""


def region_to_wire(region: tuple[slice, ...] | None, shape: tuple[int, ...]) -> tuple | None:
    """A tuple of slices as plain ``(start, stop)`` pairs clipped to ``shape``."""
    if region is None:
        return None
    out = []
    for sl, n in zip(region, shape):
        start, stop, _ = sl.indices(n) if isinstance(sl, slice) else slice(sl, sl + 1).indices(n)
        out.append((int(start), int(max(start, stop))))
    return tuple(out)


def region_from_wire(wire: tuple | None) -> tuple[slice, ...] | None:
    """Inverse of :func:`region_to_wire`."""
    if wire is None:
        return None
    return tuple(slice(a, b) for a, b in wire)


def describe_exit(returncode: int | None) -> str:
    """Plain words for how a process ended (negative codes are signals on POSIX)."""
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGKILL":
            return "it was killed (SIGKILL), often because the computer ran out of memory"
        if name == "SIGSEGV":
            return "a library it uses crashed (segmentation fault, SIGSEGV)"
        return f"it was ended by {name}"
    return f"it exited with code {returncode}"


def crash_message(returncode: int | None, best_kept: bool = True) -> str:
    """The notification shown when the worker died during a job.

    ``best_kept``: a crash-safe copy of the best model so far exists (training only).
    """
    kept = "; the best model so far is kept" if best_kept else ""
    return (
        f"The training engine stopped unexpectedly ({describe_exit(returncode)}). "
        f"Your painted labels are safe{kept}. "
        "Press Train to start again (a smaller patch size, batch size or image uses "
        "less memory)."
    )


def start_failed_message(detail: str) -> str:
    """The notification shown when the worker could not be started."""
    last = [ln for ln in detail.strip().splitlines() if ln.strip()]
    hint = f" The last message was: {last[-1].strip()[:300]}" if last else ""
    return (
        "The training engine could not be started, so nothing can be trained or "
        "predicted right now. Check that napari-unet-studio and PyTorch are installed "
        "in the Python environment napari runs in (e.g. `pip install napari-unet-studio`), "
        f"then try again.{hint}"
    )


def to_plain(value: Any) -> Any:
    """Only built-in numbers, strings, lists and dicts (JSON round trip).

    Unpickling in the napari process must never import torch: ``torch.__version__`` is a
    ``str`` subclass defined in torch, numpy scalars come from numpy; both become plain.
    """
    return json.loads(json.dumps(value, default=str))
