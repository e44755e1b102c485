"""Model files are data, never code; saving never destroys the previous good file.

Files crafted to run code when unpickled (``__reduce__`` calling ``exec`` or
``os.system``), as plain pickles, legacy torch files, zip-format torch files and a real
model archive with its ``data.pkl`` swapped, are refused with a clear error by
``load_model``, the headless API, the CLI and the napari reader, and the marker file
their code would create never appears.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from rel_helpers import load_tiny_model, scribbles, textured, tiny_trained_model, wait_idle

import napari_unet_studio as nus
from napari_unet_studio import _reader, cli
from napari_unet_studio.core import checkpoint
from napari_unet_studio.core.errors import ModelFileError
from napari_unet_studio.gui import models as models_io

EVIL_KINDS = ["plain_pickle_exec", "plain_pickle_system", "torch_zip_exec",
              "torch_zip_inside_a_real_model", "torch_legacy_format", "zip_with_swapped_data_pkl"]


@pytest.mark.parametrize("kind", EVIL_KINDS)
def test_load_model_refuses_code(evil_files, kind):
    marker, files = evil_files
    with pytest.raises(ModelFileError) as info:
        nus.load_model(files[kind])
    text = str(info.value)
    assert files[kind].name in text
    assert "not a U-Net Studio model" in text or "damaged" in text
    if kind.startswith(("torch_zip", "zip_with")):
        assert "Python code" in text and "refused" in text
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["torch_zip_exec", "zip_with_swapped_data_pkl"])
def test_api_predict_and_continue_refuse_code(evil_files, kind):
    marker, files = evil_files
    with pytest.raises(ModelFileError):
        nus.predict(files[kind], textured((16, 16)))
    with pytest.raises(ModelFileError):
        nus.train(textured((16, 16)), scribbles((16, 16)), steps=1, init=files[kind])
    assert not marker.exists()


@pytest.mark.parametrize("kind", EVIL_KINDS)
def test_cli_refuses_code(evil_files, kind, tmp_path, capsys):
    marker, files = evil_files
    for argv in (["info", files[kind]],
                 ["predict", "--model", files[kind], "--image", "x.tif", "--out",
                  tmp_path / "p.tif", "--quiet"]):
        code = cli.main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USER_ERROR
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert files[kind].name in err
    assert not marker.exists()


def test_napari_reader_refuses_code(evil_files, studio, notes, qtbot):
    """The reader claims files with our marker and hands them to the dock; the dock's
    worker refuses to load them, in plain words; nothing runs, in either process."""
    _, widget = studio
    marker, files = evil_files
    for kind in EVIL_KINDS:
        notes.errors.clear()
        reader = _reader.get_reader(str(files[kind]))
        if reader is None:  # not claimed: no marker
            assert kind.startswith(("plain", "torch_legacy")), kind
            continue
        assert reader(str(files[kind])) == [(None,)]
        wait_idle(qtbot, widget)
        assert len(notes.errors) == 1 and files[kind].name in notes.errors[-1], (kind, notes)
        assert "refused" in notes.errors[-1] or "damaged" in notes.errors[-1], kind
        assert widget.model is None, kind
        assert not models_io.pending_paths()
        assert not marker.exists(), kind


def test_dropping_an_evil_file_on_napari(make_napari_viewer, evil_files, notes, qtbot):
    """viewer.open through npe2 and our reader contribution: an error, no layer, no code."""
    marker, files = evil_files
    viewer = make_napari_viewer()
    viewer.open(str(files["torch_zip_exec"]), plugin="napari-unet-studio")
    qtbot.waitUntil(lambda: bool(notes.errors), timeout=60000)
    assert len(viewer.layers) == 0
    assert "refused" in notes.errors[-1]
    assert not marker.exists()
    for dock in models_io.open_docks():
        dock.shutdown()


def test_evil_file_in_a_fresh_interpreter(evil_files):
    """Nothing imported or patched beforehand: load_model and the CLI refuse every file,
    and the marker is absent."""
    marker, files = evil_files
    code = textwrap.dedent(f"""
        from napari_unet_studio.cli import main
        from napari_unet_studio.core.checkpoint import load_model
        from napari_unet_studio.core.errors import ModelFileError
        for p in {[str(p) for p in files.values()]!r}:
            try:
                load_model(p)
            except ModelFileError:
                assert main(['info', p]) == 2  # the command line too, one line on stderr
                continue
            raise SystemExit('loaded ' + p)
        print('all refused')
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, NAPARI_UNET_STUDIO_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "all refused" in proc.stdout
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(files) and all(e.startswith("unet-studio: error:") for e in errors)
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


# ------------------------------------------------------------------------ atomic save
def _crash_after_partial_write(exc: BaseException):
    real_save = torch.save

    def save(obj, fh, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        fh.write(data[: len(data) // 2])  # half the file is on disk when the "crash" comes
        fh.flush()
        raise exc

    return save


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.pt"
    tiny_trained_model(1, 2, seed=1).save(path)
    return path, path.read_bytes()


def _only(path):
    return sorted(os.listdir(path.parent)) == [path.name]


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"),
                                 KeyboardInterrupt(), RuntimeError("disk went away")],
                         ids=["disk_full", "ctrl_c", "runtime_error"])
def test_crash_mid_save_keeps_the_previous_file(saved, monkeypatch, exc):
    path, before = saved
    monkeypatch.setattr(torch, "save", _crash_after_partial_write(exc))
    with pytest.raises(type(exc)):
        nus.save_model(tiny_trained_model(1, 2, seed=2), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _only(path), os.listdir(path.parent)  # no temp file left
    assert checkpoint.load_model(path).record["steps"] == 1


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_failing_rename_or_fsync_keeps_the_previous_file(saved, monkeypatch, target):
    path, before = saved

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(checkpoint.os, target, broken)
    with pytest.raises(OSError):
        tiny_trained_model(1, 2, seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _only(path), os.listdir(path.parent)


def test_killed_process_mid_save_keeps_the_previous_file(saved):
    """A hard kill (no cleanup runs) mid-write: the previous model is still intact and
    loadable; the only leftover is a hidden ``.model.pt.*.tmp`` file, never a ``.pt``."""
    path, before = saved
    code = textwrap.dedent(f"""
        import io, os, sys, torch
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from rel_helpers import tiny_trained_model
        real = torch.save
        def save(obj, fh, *a, **k):
            buf = io.BytesIO(); real(obj, buf, *a, **k)
            fh.write(buf.getvalue()[:1000]); fh.flush()
            os._exit(9)
        torch.save = save
        tiny_trained_model(1, 2, seed=3).save({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, NAPARI_UNET_STUDIO_THREADS="1"))
    assert proc.returncode == 9, proc.stderr
    assert path.read_bytes() == before
    leftovers = [n for n in os.listdir(path.parent) if n != path.name]
    assert all(n.startswith(".model.pt.") and n.endswith(".tmp") for n in leftovers), leftovers
    assert checkpoint.load_model(path).record["steps"] == 1


def test_cli_crash_mid_save_keeps_the_previous_file(saved, monkeypatch, capsys, tmp_path):
    import tifffile

    path, before = saved
    img, lab = tmp_path / "img.tif", tmp_path / "lab.tif"
    tifffile.imwrite(img, textured((16, 16)))
    tifffile.imwrite(lab, scribbles((16, 16)))
    monkeypatch.setattr(torch, "save", _crash_after_partial_write(OSError(28, "No space left")))
    code = cli.main(["train", "--image", str(img), "--labels", str(lab), "--out", str(path),
                     "--steps", "1", "--patch-size", "32", "--width", "4", "--depth", "2",
                     "--quiet"])
    err = capsys.readouterr().err
    monkeypatch.undo()
    assert code == cli.EXIT_USER_ERROR and "No space left" in err
    assert len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == sorted(["img.tif", "lab.tif", "model.pt"])


def test_saving_through_the_dock_replaces_or_refuses_cleanly(studio, saved, monkeypatch,
                                                              notes, qtbot):
    """Saving over a model through the dock's worker replaces it in one piece (no
    leftover); a save that cannot be done is explained and leaves the files as they were."""
    from qtpy.QtWidgets import QFileDialog

    path, before = saved
    _, widget = studio
    load_tiny_model(qtbot, widget, path.parent, 1, 2, seed=4)
    other = path.parent / "tiny_1_2_4.pt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    widget.models_panel.save_button.click()
    wait_idle(qtbot, widget)
    assert not notes.errors, notes.errors
    assert path.read_bytes() != before
    written, source = checkpoint.load_model(path), checkpoint.load_model(other)
    assert all(torch.equal(written.state_dict[k], v) for k, v in source.state_dict.items())
    assert sorted(os.listdir(path.parent)) == ["model.pt", "tiny_1_2_4.pt"]
    now = path.read_bytes()
    inside_a_file = path / "copy.pt"  # its folder is a file: cannot be written
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(inside_a_file), ""))
    widget.models_panel.save_button.click()
    wait_idle(qtbot, widget)
    assert len(notes.errors) == 1 and "copy.pt" in notes.errors[-1], notes.errors
    assert "Traceback" not in notes.errors[-1]
    assert path.read_bytes() == now
    assert sorted(os.listdir(path.parent)) == ["model.pt", "tiny_1_2_4.pt"]


def test_saved_model_is_readable_like_any_new_file(tmp_path):
    """Atomic saving goes through a temporary file; mkstemp makes it owner-only (0o600),
    which would leave colleagues unable to read a model saved in a shared folder."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = tmp_path / "model.pt"
    tiny_trained_model().save(path)
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    os.chmod(path, 0o640)  # overwriting keeps the permissions the file had
    tiny_trained_model(seed=3).save(path)
    assert path.stat().st_mode & 0o777 == 0o640
