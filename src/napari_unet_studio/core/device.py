"""Compute-device choice, mixed precision, memory-aware batch sizes and CPU tuning.

``"auto"`` picks CUDA, then Apple MPS, then the CPU. Asking for a device that is not
there raises :class:`~napari_unet_studio.core.errors.DeviceError`; we never fall back
silently, because a user who asked for the GPU must know when it is not used.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import torch

from .anisotropy import VOLUME_CPU
from .errors import DeviceError
from .malloc import tune_malloc

__all__ = [
    "DeviceInfo",
    "resolve_device",
    "describe_devices",
    "amp_dtype",
    "cuda_batch_size",
    "is_oom",
    "prepare_runtime",
    "tune_malloc",
    "volume_defaults",
    "VOLUME_CPU",
]

_THREADS_ENV = "NAPARI_UNET_STUDIO_THREADS"
_runtime_lock = threading.Lock()
_runtime_state: dict[str, object] = {}


@dataclass(frozen=True)
class DeviceInfo:
    """One entry of the device picker.

    Attributes
    ----------
    name : str
        Value to pass as ``device`` (``"cpu"``, ``"cuda:0"``, ``"mps"``).
    label : str
        Human description, e.g. ``"NVIDIA H100 (cuda:0) - 78.0 of 79.6 GiB free"``.
    kind : str
        ``"cuda"``, ``"mps"`` or ``"cpu"``.
    total_memory : int or None
        Bytes of device memory (CUDA only).
    free_memory : int or None
        Bytes free right now (CUDA only).
    """

    name: str
    label: str
    kind: str
    total_memory: int | None = None
    free_memory: int | None = None


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's device choice into a :class:`torch.device`.

    Parameters
    ----------
    name : str, torch.device or None
        ``"auto"`` (or ``None``), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        If the requested device is not available on this computer, or the name is
        not understood.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = "auto" if name is None else str(name).strip().lower()
    if text in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise DeviceError(
                "The Apple GPU (mps) was requested but is not available here. "
                "Choose 'auto' or 'cpu'."
            )
        return torch.device("mps")
    if text == "gpu":
        text = "cuda"
    if text.startswith("cuda"):
        index_text = text[4:].lstrip(":")
        if not torch.cuda.is_available():
            raise DeviceError(
                "A CUDA GPU was requested but none is available (no NVIDIA GPU, or "
                "PyTorch was installed without CUDA support). Choose 'auto' or 'cpu'."
            )
        count = torch.cuda.device_count()
        if index_text == "":
            return torch.device("cuda", torch.cuda.current_device())
        if not index_text.isdigit() or int(index_text) >= count:
            raise DeviceError(
                f"GPU '{name}' does not exist; this computer has {count} CUDA GPU(s) "
                f"(cuda:0 to cuda:{count - 1})."
            )
        return torch.device("cuda", int(index_text))
    raise DeviceError(f"Unknown device '{name}'. Use auto, cpu, cuda, cuda:N or mps.")


def describe_devices() -> list[DeviceInfo]:
    """List the devices usable here, best first, for a device picker.

    Returns
    -------
    list of DeviceInfo
        CUDA GPUs (with total/free memory), then MPS, then the CPU (always present).
    """
    out: list[DeviceInfo] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            name = torch.cuda.get_device_name(i)
            try:
                free, total = torch.cuda.mem_get_info(i)
                mem = f" - {free / 2**30:.1f} of {total / 2**30:.1f} GiB free"
            except RuntimeError:  # pragma: no cover - depends on driver
                free = total = None
                mem = ""
            out.append(DeviceInfo(f"cuda:{i}", f"{name} (cuda:{i}){mem}", "cuda", total, free))
    if _mps_available():
        out.append(DeviceInfo("mps", "Apple GPU (mps)", "mps"))
    cores = _usable_cores()
    out.append(DeviceInfo("cpu", f"CPU ({cores} cores)", "cpu"))
    return out


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """Autocast dtype for ``device``: bf16 on CUDA where supported, else fp16; CPU/MPS: None.

    fp16 needs a :class:`torch.amp.GradScaler`; bf16 does not.
    """
    if not enabled or device.type != "cuda":
        return None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def cuda_batch_size(
    device: torch.device,
    requested: int,
    *,
    patch_size: int,
    width: int,
    in_channels: int = 1,
    dims: int = 2,
    fraction: float = 0.6,
    patch_voxels: int | None = None,
) -> int:
    """Largest batch size <= ``requested`` that should fit in free CUDA memory.

    A rough activation-memory model: a U-Net keeps about ``24 * width`` float32
    values per input pixel for the backward pass (all levels together), plus the
    input. ``patch_voxels`` (3D patches whose z edge differs) replaces
    ``patch_size**dims``. Non-CUDA devices return ``requested`` unchanged.
    """
    if device.type != "cuda":
        return requested
    try:
        free, _total = torch.cuda.mem_get_info(device)
    except RuntimeError:  # pragma: no cover - depends on driver
        return requested
    voxels = int(patch_voxels) if patch_voxels else patch_size**dims
    per_sample = 4 * voxels * (24 * width + in_channels)
    fit = int(free * fraction // max(per_sample, 1))
    return max(1, min(requested, fit))


def is_oom(exc: BaseException) -> bool:
    """True if ``exc`` is an out-of-memory error from torch (CUDA or MPS)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def prepare_runtime(threads: int | None = None) -> dict[str, object]:
    """Process set-up before training or prediction (cheap; safe to call often).

    Applies :func:`tune_malloc` once, and caps torch's CPU threads at the cores this
    process may use (containers often report more). ``NAPARI_UNET_STUDIO_THREADS=N``
    sets the thread count explicitly; with ``OMP_NUM_THREADS`` set, torch's choice is
    kept. Fewer threads than cores help when other programs keep the CPU busy: idle
    OpenMP threads spin while they wait for a core, and we measured steps ten times
    slower with two threads than with one on a loaded two-core machine.

    Parameters
    ----------
    threads : int, optional
        Torch CPU threads to use (e.g. ``cores - 1`` to keep a GUI responsive);
        ``None`` applies the policy above, also after an earlier call that asked for
        a number (a ``predict(..., threads=1)`` does not leave later training on one
        thread).

    Returns
    -------
    dict
        ``{"malloc_tuned": bool, "threads": int}`` for the training record.
    """
    with _runtime_lock:
        if "malloc_tuned" not in _runtime_state:
            _runtime_state["malloc_tuned"] = tune_malloc()
        if "default_threads" not in _runtime_state:  # torch's own choice, before ours
            _runtime_state["default_threads"] = torch.get_num_threads()
        wanted = os.environ.get(_THREADS_ENV, "").strip()
        if threads is not None and int(threads) > 0:
            target = int(threads)
        elif wanted.isdigit() and int(wanted) > 0:
            target = int(wanted)
        else:  # the default again, even after a call that asked for fewer threads
            target = int(_runtime_state["default_threads"])
            if "OMP_NUM_THREADS" not in os.environ:
                target = min(target, _usable_cores())
        if torch.get_num_threads() != target:
            torch.set_num_threads(target)
        _runtime_state["threads"] = torch.get_num_threads()
        return {k: v for k, v in _runtime_state.items() if k != "default_threads"}


# 3D training sizes. CPU: VOLUME_CPU (core/anisotropy.py). GPU: the largest cube from
# _VOLUME_PATCHES whose batch of 2 fits the free memory (cuda_batch_size's model).
_VOLUME_PATCHES = (128, 96, 64, 48, 32)


def volume_defaults(device: torch.device, *, in_channels: int = 1,
                    patch_depth_ratio: float = 1.0) -> dict[str, int]:
    """Patch edge, batch size and width for 3D training on ``device``.

    Parameters
    ----------
    device : torch.device
        Where training runs.
    in_channels : int
        Image channels.
    patch_depth_ratio : float
        ``pz / py`` of the patch (below 1 for anisotropic volumes, whose patches are
        thinner in z), so that thinner patches may be wider.

    Returns
    -------
    dict
        ``{"patch_size", "batch_size", "width"}``. CPU: :data:`VOLUME_CPU`. CUDA: width
        16 and the largest patch of 128, 96, 64, 48, 32 px for which
        :func:`cuda_batch_size` keeps a batch of at least 2 (at most 4).
    """
    if device.type != "cuda":
        return dict(VOLUME_CPU)
    width = 16
    for p in _VOLUME_PATCHES:
        voxels = int(p**3 * max(0.05, min(1.0, patch_depth_ratio)))
        batch = cuda_batch_size(device, 4, patch_size=p, width=width, in_channels=in_channels,
                                dims=3, patch_voxels=voxels)
        if batch >= 2:
            return {"patch_size": p, "batch_size": batch, "width": width}
    return {"patch_size": _VOLUME_PATCHES[-1], "batch_size": 1, "width": width}
