"""GUI responsiveness while training, measured against napari's own floor in the same run.

napari opens (under Xvfb when there is no screen) with the nuclei sample (512 x 512). A
``QTimer`` heartbeat every 10 ms records when the event loop got to run; a gap between
two ticks longer than 10 ms is a stall (nothing repaints, no mouse or key events).

1. **Floor**: a worker-free stand-in only updates a layer, as the dock does with live
   previews (a 512 x 512 plane written in place + ``refresh()`` every preview interval),
   while a stroke is painted every second. This is what napari itself costs.
2. **Dock**: the U-Net Studio dock is opened through the plugin manifest (timed: "dock
   opening"), the worker becomes warm, Train is pressed with the dock's defaults (steps
   raised so that training lasts the measurement) and a stroke is painted every second;
   after ``--first`` + ``--window`` seconds Stop is pressed (timed until the dock is idle).
3. Optional variants (``--variants nice19 paint1``) repeat 2 with the worker at nice 19 or
   with one torch thread while the user paints, in the same run.
4. **CLI**: ``unet-studio train`` with the same settings for ``--cli-seconds`` on the same
   image, for the training speed the GUI should reach (steps per training minute).

Windows: "first" = the first ``--first`` s after Train (start-up, first step, first
overlay), "paint" = the following ``--window`` s. Goal (issue 12): per window, p99 gap
<= 1.3 x floor p99 + 5 ms and longest gap <= 1.5 x floor longest; first overlay <= 3 s;
GUI steps/min >= 90 % of the CLI's; dock opening <= 0.5 s; Stop <= 1 s.

Run: ``flock /tmp/bench.lock xvfb-run -a python bench/gui_latency.py`` (about 5 min, plus
85 s per variant; ``--dock client`` drives the worker client directly instead of the
dock). The thread-based dock of before the worker process is measured with the same
script by putting that version's package first on the path::

    git archive 85bf5f2 src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src xvfb-run -a python bench/gui_latency.py --cli-seconds 0 \
        --tag before-threads

Writes ``bench/results/gui_latency[_TAG].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from _gui_drivers import (  # noqa: E402 - after the sys.path line
    DOCK_PLUGIN,
    VARIANTS,
    ClientDriver,
    DockDriver,
    FloorDriver,
    Painter,
    dock_class,
    gap_stats,
    wait,
    wait_until,
)


def measure_training(driver: Any, painter: Any, paint_layer: Any, heart: list[float],
                     args: argparse.Namespace) -> dict[str, Any]:
    """Press Train, paint every second, press Stop; windows from the heartbeat."""
    on_paint = getattr(driver, "on_paint", None)
    pushes0 = driver.labels_pushes if hasattr(driver, "labels_pushes") else 0
    strokes0 = painter.count
    t_press = time.perf_counter()
    driver.press_train()
    if not args.no_paint:
        painter.start(paint_layer, on_paint)
    first = wait_until(lambda: driver.previews > 0, args.first + args.window)
    left = args.first + args.window - (time.perf_counter() - t_press)
    if left > 0:
        wait(left)
    painter.stop()
    t_stop = time.perf_counter()
    driver.press_stop()
    stop_s = wait_until(lambda: not driver.running(), 60.0)
    wait(0.5)
    ticks = np.asarray(heart)
    record = driver.record()
    steps, secs = record.get("steps"), record.get("seconds")
    out = {
        "first": gap_stats(ticks, t_press, t_press + args.first, args.interval),
        "paint": gap_stats(ticks, t_press + args.first, t_stop, args.interval),
        "first_overlay_s": round(first, 2) if first is not None else None,
        "overlays": int(driver.previews),
        "strokes": painter.count - strokes0,
        "labels_pushes": (driver.labels_pushes - pushes0
                          if hasattr(driver, "labels_pushes") else None),
        "stop_s": round(stop_s, 2) if stop_s is not None else None,
        "steps": steps, "train_seconds": secs,
        "steps_per_min": round(60.0 * steps / secs, 1) if steps and secs else None,
        "train_config": record.get("train_config"), "runtime": record.get("runtime"),
        "loadavg_after": os.getloadavg(),
    }
    out["_config"] = driver.config()
    return out


def cli_speed(image: np.ndarray, labels: np.ndarray, tc: dict, config: dict,
              seconds: float, threads: str = "default") -> dict[str, Any]:
    """``unet-studio train`` for ``seconds`` with the dock's settings; steps per minute."""
    import tifffile

    with tempfile.TemporaryDirectory() as tmp:
        img, lab, out = (os.path.join(tmp, n) for n in ("img.tif", "lab.tif", "m.pt"))
        tifffile.imwrite(img, image)
        tifffile.imwrite(lab, labels)
        cmd = [sys.executable, "-m", "napari_unet_studio", "train", "--image", img,
               "--labels", lab, "--out", out, "--time-limit", str(seconds), "--quiet",
               "--seed", str(tc.get("seed", 0)), "--patch-size", str(tc.get("patch_size")),
               "--batch-size", str(tc.get("batch_size")), "--lr", str(tc.get("lr"))]
        if config:
            cmd += ["--decoder", str(config["decoder"]), "--depth", str(config["depth"]),
                    "--width", str(config["width"])]
        if not tc.get("augment", True):
            cmd.append("--no-augment")
        elif tc.get("cutmix") is not None:
            cmd += ["--cutmix", str(tc["cutmix"])]
        helptext = subprocess.run(cmd[:4] + ["--help"], capture_output=True, text=True).stdout
        start = tc.get("start")
        if start and "--start" in helptext:
            cmd += ["--start", str(start)]
        env = dict(os.environ)
        if threads != "default":
            env["NAPARI_UNET_STUDIO_THREADS"] = threads
        t0 = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if run.returncode != 0:
            return {"error": run.stderr[-2000:], "cmd": " ".join(cmd)}
        code = ("import json,sys; from napari_unet_studio.core.checkpoint import load_model; "
                "r=load_model(sys.argv[1]).record; print(json.dumps({'steps': r['steps'], "
                "'seconds': r['seconds'], 'runtime': r.get('runtime')}))")
        rec = json.loads(subprocess.run([sys.executable, "-c", code, out], capture_output=True,
                                        text=True, check=True).stdout)
    return {"steps": rec["steps"], "train_seconds": rec["seconds"], "wall_s": round(wall, 1),
            "steps_per_min": round(60.0 * rec["steps"] / rec["seconds"], 1),
            "runtime": rec["runtime"], "cmd": " ".join(cmd[2:])}


def goals(floor: dict, run: dict, cli: dict | None, dock_open: float | None) -> dict:
    """Issue 12's goal, checked per window (None where a number is missing)."""
    out: dict[str, Any] = {}
    for w in ("first", "paint"):
        f, d = floor.get(w, {}), run.get(w, {})
        if f.get("ticks") and d.get("ticks"):
            out[f"{w}_p99"] = d["p99_ms"] <= 1.3 * f["p99_ms"] + 5
            out[f"{w}_longest"] = d["max_ms"] <= 1.5 * f["max_ms"]
    fo = run.get("first_overlay_s")
    out["first_overlay"] = fo is not None and fo <= 3.0
    if cli and cli.get("steps_per_min") and run.get("steps_per_min"):
        out["speed"] = run["steps_per_min"] >= 0.9 * cli["steps_per_min"]
    out["dock_open"] = dock_open is not None and dock_open <= 0.5
    out["stop"] = run.get("stop_s") is not None and run["stop_s"] <= 1.0
    return out


class TorchWatch:
    """Import hook that remembers who imported torch first (the napari process must not)."""

    def __init__(self) -> None:
        self.stack: str | None = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "torch" and self.stack is None:
            self.stack = "".join(traceback.format_stack(limit=25)[:-1])
        return None


def main() -> None:
    watch = TorchWatch()
    sys.meta_path.insert(0, watch)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--first", type=float, default=20.0, help="first window after Train, s")
    p.add_argument("--window", type=float, default=60.0, help="painting window after it, s")
    p.add_argument("--interval", type=int, default=10, help="heartbeat period, ms")
    p.add_argument("--dock", choices=("real", "client"), default="real")
    p.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS))
    p.add_argument("--no-floor", action="store_true")
    p.add_argument("--no-paint", action="store_true")
    p.add_argument("--cli-seconds", type=float, default=60.0, help="0: no CLI run")
    p.add_argument("--cli-threads", nargs="*", default=["default", "1"],
                   help="CLI runs: the engine's default thread count and/or N threads")
    p.add_argument("--tag", default="")
    p.add_argument("--trace-stalls", action="store_true",
                   help="sample the GUI thread's stack while it stalls (> 100 ms)")
    args = p.parse_args()
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    import napari
    from _common import nuclei_data
    from qtpy.QtCore import Qt, QTimer

    viewer = napari.Viewer(show=True)
    t_viewer = time.perf_counter()
    heart: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(args.interval)
    timer.timeout.connect(lambda: heart.append(time.perf_counter()))
    timer.start()
    stacks: dict[str, int] = {}
    if args.trace_stalls:
        main_id = threading.get_ident()

        def watchdog() -> None:
            while True:
                time.sleep(0.02)
                if heart and time.perf_counter() - heart[-1] > 0.1:
                    frame = sys._current_frames().get(main_id)
                    if frame is not None:
                        key = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                          for f in reversed(traceback.extract_stack(frame)[-6:]))
                        stacks[key] = stacks.get(key, 0) + 1

        threading.Thread(target=watchdog, daemon=True).start()
    viewer.open_sample("napari-unet-studio", "nuclei")
    wait(1.0)
    image, scribbles = viewer.layers["nuclei"], viewer.layers["scribbles"]
    truth = nuclei_data()[2]
    painter = Painter(truth)
    import napari_unet_studio

    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    res: dict[str, Any] = {"args": vars(args), "loadavg_before": load_before,
                           "package": str(Path(napari_unet_studio.__file__).parent),
                           "bench_commit": commit,
                           "viewer_s": round(t_viewer - t_start, 2)}
    interval = 4.0
    floor: dict[str, Any] = {}
    if not args.no_floor:
        fd = FloorDriver(viewer, image, truth, interval)
        wait(1.0)  # adding its layers stalls the loop; that gap is not the floor's
        floor = measure_training(fd, painter, fd.scribbles, heart, args)
        fd.close()
        res["floor"] = {k: v for k, v in floor.items() if k in ("first", "paint", "strokes")}
        wait(1.0)
    # ---------------------------------------------------------------- the dock
    runs: dict[str, Any] = {}
    t0 = time.perf_counter()
    if args.dock == "real":
        _, widget = viewer.window.add_plugin_dock_widget(*DOCK_PLUGIN)
    wait(0.0)
    dock_open = time.perf_counter() - t0 if args.dock == "real" else None
    res["dock_open_s"] = round(dock_open, 3) if dock_open is not None else None
    res["torch_in_napari_after_dock"] = "torch" in sys.modules
    for name in ["default", *args.variants]:
        saved = {k: os.environ.get(k) for k in VARIANTS[name]}
        os.environ.update(VARIANTS[name])
        try:
            if args.dock == "client":
                driver = ClientDriver(viewer, image, scribbles, 1_000_000, interval)
            elif name == "default":
                driver = DockDriver(viewer, widget, image, scribbles, 1_000_000)
            else:
                driver = DockDriver(viewer, dock_class()(viewer), image, scribbles, 1_000_000)
                viewer.window.add_dock_widget(driver.widget, name=f"U-Net Studio ({name})")
            warm = wait_until(driver.warm, 120.0, poll_ms=50)
            wait(1.0)
            run = measure_training(driver, painter, scribbles, heart, args)
            run["warm_s"] = round(warm, 2) if warm is not None else None
            runs[name] = run
            driver.close()
            wait(1.0)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    res["torch_in_napari_at_end"] = "torch" in sys.modules
    res["torch_imported_by"] = watch.stack
    timer.stop()
    base = runs["default"]
    clis: dict[str, Any] = {}
    if args.cli_seconds > 0 and base.get("train_config"):
        for threads in args.cli_threads:
            clis[threads] = cli_speed(np.asarray(image.data), np.asarray(scribbles.data),
                                      base["train_config"], base.get("_config", {}),
                                      args.cli_seconds, threads)
    cli = clis.get("default") or next(iter(clis.values()), None)
    for run in runs.values():
        run.pop("_config", None)
        run["goals"] = goals(floor, run, cli, dock_open)
    res.update(runs=runs, cli=clis, loadavg_after=os.getloadavg())
    if stacks:
        top = sorted(stacks.items(), key=lambda kv: -kv[1])[:12]
        res["stall_stacks_20ms_samples"] = [{"samples": n, "stack": k} for k, n in top]
    try:
        from _common import machine_description

        res["machine"] = machine_description()
    except Exception as exc:  # noqa: BLE001 - the numbers matter more than the header
        res["machine"] = str(exc)
    report(res)
    RESULTS.mkdir(exist_ok=True)
    name = f"gui_latency{'_' + args.tag if args.tag else ''}.json"
    (RESULTS / name).write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {RESULTS / name}")
    try:
        viewer.close()
    except RuntimeError:
        pass


def report(res: dict) -> None:
    print(f"load average before {res['loadavg_before']}, after {res['loadavg_after']}")
    print(f"dock opening {res['dock_open_s']} s; torch in the napari process: after the "
          f"dock {res['torch_in_napari_after_dock']}, at the end {res['torch_in_napari_at_end']}")
    rows = [("floor", res.get("floor", {}))] + list(res["runs"].items())
    print(f"{'run':10s} {'window':6s} {'p50':>6s} {'p99':>6s} {'max':>6s} {'>100':>5s}")
    for name, run in rows:
        for w in ("first", "paint"):
            s = run.get(w, {})
            if s.get("ticks"):
                print(f"{name:10s} {w:6s} {s['p50_ms']:6.1f} {s['p99_ms']:6.1f} "
                      f"{s['max_ms']:6.1f} {s['over_100ms']:5d}")
    for name, run in res["runs"].items():
        print(f"{name}: first overlay {run['first_overlay_s']} s, {run['overlays']} overlays, "
              f"stop {run['stop_s']} s, {run['steps']} steps in {run['train_seconds']} s "
              f"({run['steps_per_min']}/min), {run['strokes']} strokes, "
              f"{run['labels_pushes']} label pushes, warm {run.get('warm_s')} s")
        print(f"  goals: {run['goals']}")
    for threads, cli in (res.get("cli") or {}).items():
        print(f"CLI ({threads} threads): {cli}")
    for item in res.get("stall_stacks_20ms_samples", []):
        print(f"  stalled {20 * item['samples']:5d} ms in: {item['stack']}")


if __name__ == "__main__":
    main()
