"""Command line: train/predict/info/decoders on small TIFFs; errors are one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_unet_studio.cli import main
from napari_unet_studio.core.decoders import list_decoders

FAST = ["--patch-size", "16", "--batch-size", "2", "--depth", "1", "--width", "4",
        "--device", "cpu", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    disk = (yy - 24) ** 2 + (xx - 24) ** 2 < 144
    image = (rng.normal(100, 20, (48, 48)) + 150 * disk).astype(np.uint16)
    labels = np.zeros((48, 48), np.uint8)
    labels[::5, ::4] = np.where(disk[::5, ::4], 2, 1)
    names = ("img", "lab", "flat", "ones", "nan", "odd")
    paths = {name: tmp_path / f"{name}.tif" for name in names}
    tifffile.imwrite(paths["img"], image)
    tifffile.imwrite(paths["lab"], labels)
    tifffile.imwrite(paths["flat"], np.zeros((48, 48), np.uint8))
    tifffile.imwrite(paths["ones"], np.ones((48, 48), np.uint8))
    bad = image.astype(np.float32)
    bad[3, 3] = np.nan
    tifffile.imwrite(paths["nan"], bad)
    tifffile.imwrite(paths["odd"], image[:40])
    paths["dir"] = tmp_path
    return paths


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("unet-studio: ")
    return err


def test_train_predict_info_end_to_end(files, capsys):
    model = files["dir"] / "model.pt"
    code = main(["train", "--image", str(files["img"]), "--labels", str(files["lab"]),
                 "--out", str(model), "--time-limit", "1.5", "--seed", "1", *FAST])
    assert code == 0 and model.is_file()
    assert "Saved" in capsys.readouterr().out
    pred, prob = files["dir"] / "pred.tif", files["dir"] / "prob.tif"
    code = main(["predict", "--model", str(model), "--image", str(files["img"]),
                 "--out", str(pred), "--probabilities", str(prob), "--tile", "32", "--quiet"])
    assert code == 0
    mask = tifffile.imread(pred)
    assert mask.shape == (48, 48) and mask.dtype == np.uint8
    assert mask.min() >= 1 and mask.max() <= 2
    probs = tifffile.imread(prob)
    assert probs.shape == (2, 48, 48) and np.allclose(probs.sum(0), 1, atol=1e-5)
    assert main(["predict", "--model", str(model), "--image", str(files["img"]),
                 "--out", str(pred), "--tile", "32", "--tta", "4", "--quiet"]) == 0
    assert set(np.unique(tifffile.imread(pred))) <= {1, 2}
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "decoder" in out and "classes:     2" in out and "48x48" in out
    again = files["dir"] / "again.pt"
    code = main(["train", "--image", str(files["img"]), "--labels", str(files["lab"]),
                 "--out", str(again), "--steps", "2", "--from", str(model), "--quiet"])
    assert code == 0 and again.is_file()


def test_train_predict_on_a_real_nuclei_crop(tmp_path, capsys):
    """The shipped DSB2018 image (a 128 x 128 crop) and its scribbles: a few seconds of
    CLI training give a mask that finds the nuclei of the real ground truth."""
    from napari_unet_studio._sample_data import load_nuclei

    image, scribbles, truth = (a[192:320, 0:128] for a in load_nuclei())
    assert {1, 2} <= set(np.unique(scribbles))
    img, lab = tmp_path / "nuclei.tif", tmp_path / "scribbles.tif"
    tifffile.imwrite(img, image)
    tifffile.imwrite(lab, scribbles)
    model, pred = tmp_path / "nuclei.pt", tmp_path / "nuclei_mask.tif"
    code = main(["train", "--image", str(img), "--labels", str(lab), "--out", str(model),
                 "--steps", "60", "--time-limit", "30", "--seed", "0", "--patch-size", "64",
                 "--batch-size", "4", "--depth", "2", "--width", "8", "--device", "cpu",
                 "--quiet"])
    assert code == 0 and model.is_file()
    code = main(["predict", "--model", str(model), "--image", str(img), "--out", str(pred),
                 "--quiet"])
    assert code == 0
    mask = tifffile.imread(pred)
    assert mask.shape == image.shape and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {1, 2}
    nucleus, true_nucleus = mask == 2, truth == 2
    iou = (nucleus & true_nucleus).sum() / (nucleus | true_nucleus).sum()
    assert iou > 0.6, f"nucleus IoU {iou:.3f} against the shipped ground truth"
    assert (mask[scribbles > 0] == scribbles[scribbles > 0]).mean() > 0.9


def test_decoders_lists_names_and_descriptions(capsys):
    assert main(["decoders"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list_decoders()
    assert all(len(line.split(None, 1)) == 2 for line in lines)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--image", "{dir}/missing.tif", "--labels", "{lab}"], "missing.tif"),
        (["--image", "{odd}", "--labels", "{lab}"], "shape"),
        (["--image", "{img}", "--labels", "{flat}"], "No labels are painted"),
        (["--image", "{img}", "--labels", "{ones}"], "Only one class"),
        (["--image", "{img}", "--labels", "{img}"], "instance segmentation"),
        (["--image", "{nan}", "--labels", "{lab}"], "NaN"),
        (["--image", "{img}", "--labels", "{lab}", "--steps", "0"], "steps"),
        (["--image", "{img}", "--labels", "{lab}", "--cutmix", "2"], "cutmix"),
        (["--image", "{img}", "--labels", "{lab}", "--device", "cuda:7"], "GPU|CUDA"),
        (["--image", "{img}", "--labels", "{lab}", "--decoder", "nope"], "nope"),
        (["--image", "{img}", "--image", "{img}", "--labels", "{lab}"], "--labels"),
        (["--image", "{img}", "--labels", "{lab}", "--from", "{img}"], "not a U-Net Studio"),
    ],
)
def test_train_errors_are_one_line(files, capsys, args, match):
    args = [a.format(**files) for a in args]
    code = main(["train", *FAST, *args, "--out", str(files["dir"] / "m.pt")])
    assert code != 0
    assert __import__("re").search(match, _one_line_error(capsys))
    assert not (files["dir"] / "m.pt").exists()


def test_predict_and_info_errors_are_one_line(files, capsys):
    foreign = files["dir"] / "foreign.pt"
    torch.save({"w": torch.zeros(2)}, foreign)
    assert main(["info", str(foreign)]) != 0
    assert "not a U-Net Studio model" in _one_line_error(capsys)
    assert main(["predict", "--model", str(files["img"]), "--image", str(files["img"]),
                 "--out", str(files["dir"] / "p.tif")]) != 0
    assert "not a U-Net Studio model" in _one_line_error(capsys)
    assert main(["info", str(files["dir"] / "nothing.pt")]) != 0
    assert "No model file" in _one_line_error(capsys)


def test_unexpected_errors_hint_at_debug(files, capsys, monkeypatch):
    import napari_unet_studio.cli as cli

    def boom(args):
        raise KeyError("internal")

    monkeypatch.setitem(cli._COMMANDS, "decoders", boom)
    assert main(["decoders"]) != 0
    assert "--debug" in _one_line_error(capsys)
    with pytest.raises(KeyError):
        main(["--debug", "decoders"])


def test_python_dash_m_works_without_traceback(files):
    env = {**os.environ, "NAPARI_UNET_STUDIO_THREADS": "1"}
    helped = subprocess.run([sys.executable, "-m", "napari_unet_studio", "--help"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0 and "train" in helped.stdout
    failed = subprocess.run(
        [sys.executable, "-m", "napari_unet_studio", "predict", "--model",
         str(files["dir"] / "none.pt"), "--image", str(files["img"]), "--out", "x.tif"],
        capture_output=True, text=True, env=env, timeout=120)
    assert failed.returncode != 0
    assert failed.stderr.strip().count("\n") == 0 and "Traceback" not in failed.stderr


def test_predict_stack_from_compressed_and_plain_tiffs(files, capsys):
    model = files["dir"] / "model.pt"
    assert main(["train", "--image", str(files["img"]), "--labels", str(files["lab"]),
                 "--out", str(model), "--steps", "2", *FAST]) == 0
    stack = np.stack([tifffile.imread(files["img"])] * 3)
    for name, compression in [("plain", None), ("zlib", "zlib")]:
        src, out = files["dir"] / f"{name}.tif", files["dir"] / f"{name}_pred.tif"
        tifffile.imwrite(src, stack, compression=compression)
        assert main(["predict", "--model", str(model), "--image", str(src), "--out", str(out),
                     "--quiet"]) == 0
        pred = tifffile.imread(out)
        assert pred.shape == (3, 48, 48) and pred.min() >= 1 and pred.max() <= 2
        assert (pred[0] == pred[2]).all()


def test_ctrl_c_during_training_saves_the_best_model(files, capsys, monkeypatch):
    from napari_unet_studio.core.train import Trainer

    original = Trainer._train_step
    calls = {"n": 0}

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Trainer, "_train_step", interrupted)
    model = files["dir"] / "m.pt"
    code = main(["train", "--image", str(files["img"]), "--labels", str(files["lab"]),
                 "--out", str(model), "--steps", "50", *FAST])
    assert code == 130 and model.is_file()
    assert "saving the best model" in capsys.readouterr().err
    from napari_unet_studio.core.checkpoint import load_model

    assert load_model(model).record["steps"] == 3


def test_start_choice_and_pretrained_info(files, capsys):
    model = files["dir"] / "scratch.pt"
    code = main(["train", "--image", str(files["img"]), "--labels", str(files["lab"]),
                 "--out", str(model), "--steps", "2", "--start", "scratch", *FAST])
    assert code == 0 and "start: scratch" in capsys.readouterr().out
    from napari_unet_studio.core.checkpoint import load_model

    assert load_model(model).record["start"] == "scratch"
    code = main(["train", "--image", str(files["img"]), "--labels", str(files["lab"]),
                 "--out", str(files["dir"] / "b.pt"), "--steps", "1", "--start", str(model),
                 "--start-lr", "1e-4", "--quiet"])
    assert code == 0 and f"start: model file {model}" in capsys.readouterr().out
    assert main(["info", str(model)]) == 0
    assert "start:       scratch" in capsys.readouterr().out
    assert main(["info", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert "Pretrained starting weights" in out and "commit" in out
    code = main(["train", "--image", str(files["img"]), "--labels", str(files["lab"]),
                 "--out", str(files["dir"] / "c.pt"), "--start", str(files["dir"] / "no.pt"),
                 "--quiet"])
    assert code == 2 and "No model file" in _one_line_error(capsys)


def test_predict_superpixels_option_reaches_the_tile_settings():
    from napari_unet_studio.cli import build_parser
    from napari_unet_studio.cli.predict import _tile

    base = ["predict", "--model", "m.pt", "--image", "i.tif", "--out", "o.tif"]
    assert _tile(build_parser().parse_args(base)).superpixels == "auto"
    args = build_parser().parse_args([*base, "--superpixels", "off", "--tta", "2"])
    assert (_tile(args).superpixels, _tile(args).tta) == ("off", 2)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--superpixels", "always"])
    assert _tile(build_parser().parse_args(base)).edges == "auto"
    assert _tile(build_parser().parse_args([*base, "--edges", "off"])).edges == "off"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--edges", "always"])
