"""Device choice without a GPU (monkeypatched), AMP dtype, batch sizing, CPU tuning."""

from __future__ import annotations

import pytest
import torch

from napari_unet_studio.core import device as dev
from napari_unet_studio.core.errors import DeviceError, UNetStudioError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Fake GPU {i}")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (6 * 2**30, 8 * 2**30))
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


def test_auto_without_gpu_is_cpu(no_gpu):
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device(None) == torch.device("cpu")
    assert dev.resolve_device("CPU ") == torch.device("cpu")


@pytest.mark.parametrize("name, match", [("cuda", "CUDA"), ("cuda:1", "CUDA"), ("gpu", "CUDA"),
                                         ("mps", "mps"), ("tpu", "Unknown device")])
def test_asking_for_a_missing_device_never_falls_back(no_gpu, name, match):
    with pytest.raises(DeviceError, match=match) as info:
        dev.resolve_device(name)
    assert isinstance(info.value, UNetStudioError) and isinstance(info.value, RuntimeError)


def test_auto_prefers_cuda_then_mps(two_gpus, monkeypatch):
    assert dev.resolve_device("auto") == torch.device("cuda", 0)
    assert dev.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert dev.resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="2 CUDA GPU"):
        dev.resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="does not exist"):
        dev.resolve_device("cuda:x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.resolve_device("auto") == torch.device("mps")
    assert dev.resolve_device("mps") == torch.device("mps")


def test_describe_devices_lists_gpus_with_memory_then_cpu(two_gpus):
    infos = dev.describe_devices()
    assert [i.name for i in infos] == ["cuda:0", "cuda:1", "cpu"]
    assert "Fake GPU 1" in infos[1].label and "6.0 of 8.0 GiB free" in infos[1].label
    assert infos[0].total_memory == 8 * 2**30 and infos[-1].kind == "cpu"


def test_describe_devices_on_cpu_only(no_gpu):
    infos = dev.describe_devices()
    assert len(infos) == 1 and infos[0].name == "cpu" and "cores" in infos[0].label


def test_amp_dtype(monkeypatch):
    assert dev.amp_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert dev.amp_dtype(torch.device("cuda", 0)) == torch.bfloat16
    assert dev.amp_dtype(torch.device("cuda", 0), enabled=False) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert dev.amp_dtype(torch.device("cuda", 0)) == torch.float16


def test_batch_size_fits_free_cuda_memory(monkeypatch):
    cpu = torch.device("cpu")
    assert dev.cuda_batch_size(cpu, 16, patch_size=512, width=64) == 16
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (2**30, 8 * 2**30))
    small = dev.cuda_batch_size(gpu, 64, patch_size=512, width=32)
    assert 1 <= small < 64
    assert dev.cuda_batch_size(gpu, 4, patch_size=64, width=16) == 4
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (1000, 8 * 2**30))
    assert dev.cuda_batch_size(gpu, 8, patch_size=512, width=32) == 1


def test_is_oom():
    assert dev.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert dev.is_oom(RuntimeError("MPS backend out of memory"))
    assert not dev.is_oom(RuntimeError("shape mismatch"))
    assert not dev.is_oom(ValueError("out of memory"))


def test_malloc_tuning_opt_out(monkeypatch):
    monkeypatch.setenv("NAPARI_UNET_STUDIO_NO_MALLOPT", "1")
    assert dev.tune_malloc() is False


def test_prepare_runtime_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        state = dev.prepare_runtime(threads=1)
        assert state["threads"] == 1 and isinstance(state["malloc_tuned"], bool)
        monkeypatch.setenv("NAPARI_UNET_STUDIO_THREADS", "2")
        assert dev.prepare_runtime()["threads"] == 2
        monkeypatch.delenv("NAPARI_UNET_STUDIO_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(512)
        assert dev.prepare_runtime()["threads"] <= dev._usable_cores()
    finally:
        torch.set_num_threads(before)


def test_default_threads_come_back_after_an_explicit_count(monkeypatch):
    """predict(threads=1) then train() must not leave training on one thread."""
    before = torch.get_num_threads()
    monkeypatch.delenv("NAPARI_UNET_STUDIO_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(dev, "_runtime_state", {})
    monkeypatch.setattr(dev, "_usable_cores", lambda: 4)
    try:
        torch.set_num_threads(3)  # torch's own default in this process
        assert dev.prepare_runtime()["threads"] == 3
        assert dev.prepare_runtime(threads=1)["threads"] == 1
        assert torch.get_num_threads() == 1
        state = dev.prepare_runtime()
        assert state["threads"] == 3 and torch.get_num_threads() == 3
        assert set(state) == {"malloc_tuned", "threads"}
        monkeypatch.setattr(dev, "_usable_cores", lambda: 2)  # never above the cores
        assert dev.prepare_runtime()["threads"] == 2
    finally:
        torch.set_num_threads(before)
