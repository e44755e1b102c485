"""glibc allocator settings (core/malloc.py): child environments and the opt-out."""

from __future__ import annotations

import sys

import pytest

from napari_unet_studio.core import malloc


def test_child_environ_adds_one_arena(monkeypatch):
    monkeypatch.delenv(malloc.NO_MALLOPT_ENV, raising=False)
    env = malloc.child_environ({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "MALLOC_ARENA_MAX": "1"}


def test_child_environ_keeps_the_users_setting(monkeypatch):
    monkeypatch.delenv(malloc.NO_MALLOPT_ENV, raising=False)
    assert malloc.child_environ({"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"


def test_child_environ_defaults_to_this_process(monkeypatch):
    monkeypatch.delenv(malloc.NO_MALLOPT_ENV, raising=False)
    monkeypatch.setenv("UNET_STUDIO_TEST_MARK", "x")
    env = malloc.child_environ()
    assert env["UNET_STUDIO_TEST_MARK"] == "x" and env["MALLOC_ARENA_MAX"] == "1"


def test_opt_out_changes_nothing(monkeypatch):
    monkeypatch.setenv(malloc.NO_MALLOPT_ENV, "1")
    assert malloc.child_environ({"A": "b"}) == {"A": "b"}
    assert malloc.tune_malloc() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_malloc_applies_on_glibc(monkeypatch):
    monkeypatch.delenv(malloc.NO_MALLOPT_ENV, raising=False)
    assert malloc.tune_malloc() is True


def test_malloc_module_imports_no_torch():
    import subprocess

    code = "import sys, napari_unet_studio.core.malloc; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
