"""GUI responsiveness while training: event-loop stalls and time to the first overlay.

napari opens (under Xvfb when there is no screen), the U-Net Studio dock is added through
the plugin manifest, the nuclei sample is opened from *File > Open Sample*, and the Train
button is pressed with the widget's default settings (steps raised so that training lasts
the whole measurement). A ``QTimer`` heartbeat every 10 ms records when the event loop
got to run; a gap between two ticks longer than 10 ms is a stall of the GUI (nothing
repaints, no mouse or key events are handled). While training runs the script paints a
dab of background every second into the scribbles layer (``--no-paint`` to skip), as a
user does: the widget then hands the new labels to the trainer.

Reports: longest stall, p50/p99 of the tick intervals, stalls over 50 / 100 / 250 ms
(a 100 ms pause is noticeable), time from pressing Train to the first prediction overlay
and how many overlays arrived, training steps done, time to stop, time to open the dock.

Run: ``flock /tmp/bench.lock xvfb-run -a python bench/gui_latency.py`` (``--seconds 60``
default; ``NAPARI_UNET_STUDIO_THREADS=1`` to compare with one training thread). Writes
``bench/results/gui_latency[_TAG].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measurement after Train")
    p.add_argument("--interval", type=int, default=10, help="heartbeat period, ms")
    p.add_argument("--no-paint", action="store_true")
    p.add_argument("--tag", default="")
    p.add_argument("--trace-stalls", action="store_true",
                   help="sample the GUI thread's stack while it stalls (> 100 ms)")
    p.add_argument("--trace-depth", type=int, default=6)
    p.add_argument("--constrained-loss-plot", action="store_true",
                   help="re-enable the loss plot's constrained layout (the state before)")
    args = p.parse_args()

    t_start = time.perf_counter()
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    t_import = time.perf_counter()
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    t_viewer = time.perf_counter()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
    app.processEvents()
    t_dock = time.perf_counter()
    viewer.open_sample("napari-unet-studio", "nuclei")
    app.processEvents()
    image_layer = viewer.layers["nuclei"]
    labels = viewer.layers["scribbles"]
    row = widget.data_panel.rows[0]
    if row.image.layer() is None or row.labels.layer() is None:
        row.image.set_layer(image_layer)
        row.labels.set_layer(labels)
    widget.model_panel.steps.setValue(1_000_000)  # train for the whole measurement
    if args.constrained_loss_plot:  # the loss plot as it was before the fixed margins
        widget.train_panel.loss_plot.figure.set_layout_engine("constrained")

    from _common import nuclei_data

    truth = nuclei_data()[2]
    ys, xs = np.nonzero(truth == 1)
    rng = np.random.default_rng(0)

    ticks: list[float] = []
    state: dict = {"pressed": None, "first_overlay": None, "stop_pressed": None,
                   "stopped": None, "paints": 0, "phase": "idle"}

    def tick() -> None:
        now = time.perf_counter()
        ticks.append(now)
        if state["pressed"] is not None and state["first_overlay"] is None \
                and widget.state.previews > 0:
            state["first_overlay"] = now

    heart = QTimer()
    heart.setInterval(args.interval)
    heart.timeout.connect(tick)

    def paint() -> None:
        if state["phase"] != "training":
            return
        i = int(rng.integers(len(ys)))
        labels.paint((int(ys[i]), int(xs[i])), 1, refresh=True)
        state["paints"] += 1

    painter = QTimer()
    painter.setInterval(1000)
    painter.timeout.connect(paint)

    def press_train() -> None:
        state["pressed"] = time.perf_counter()
        state["phase"] = "training"
        widget.train_panel.train_button.click()
        if not args.no_paint:
            painter.start()

    def press_stop() -> None:
        state["phase"] = "stopping"
        painter.stop()
        state["stop_pressed"] = time.perf_counter()
        widget.train_panel.stop_button.click()

    def check_done() -> None:
        if state["phase"] == "stopping" and widget.state.train_worker is None:
            state["stopped"] = time.perf_counter()
            state["phase"] = "done"
            heart.stop()
            app.quit()

    watcher = QTimer()
    watcher.setInterval(50)
    watcher.timeout.connect(check_done)

    stacks: dict[str, int] = {}
    if args.trace_stalls:  # a watchdog thread samples the GUI thread's stack during stalls
        import threading
        import traceback

        main_id = threading.get_ident()
        done = threading.Event()

        def watchdog() -> None:
            while not done.wait(0.02):
                if ticks and time.perf_counter() - ticks[-1] > 0.1:
                    frame = sys._current_frames().get(main_id)
                    if frame is None:
                        continue
                    summary = traceback.extract_stack(frame)[-args.trace_depth:]
                    key = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                      for f in reversed(summary))
                    stacks[key] = stacks.get(key, 0) + 1

        threading.Thread(target=watchdog, daemon=True).start()

    warm = 2.0
    heart.start()
    watcher.start()
    QTimer.singleShot(int(warm * 1000), press_train)
    QTimer.singleShot(int((warm + args.seconds) * 1000), press_stop)
    QTimer.singleShot(int((warm + args.seconds + 120) * 1000), app.quit)  # safety net
    app.exec_() if hasattr(app, "exec_") else app.exec()

    if args.trace_stalls:
        done.set()
    t_press, t_stop = state["pressed"], state["stop_pressed"]
    arr = np.asarray(ticks)
    gaps = np.diff(arr) * 1000
    mid = arr[1:]
    idle = gaps[mid < t_press]
    train = gaps[(mid > t_press) & (mid <= t_stop)]
    stall = np.maximum(train - args.interval, 0)
    worst = np.argsort(train)[::-1][:5]
    worst_at = [(round(float(mid[(mid > t_press) & (mid <= t_stop)][i] - t_press), 2),
                 round(float(train[i]), 1)) for i in worst]
    job_steps = None
    if widget.model is not None:
        job_steps = widget.model.record.get("steps")
    res = {
        "seconds": args.seconds,
        "interval_ms": args.interval,
        "paint": not args.no_paint,
        "paints": state["paints"],
        "threads_env": os.environ.get("NAPARI_UNET_STUDIO_THREADS"),
        "constrained_loss_plot": args.constrained_loss_plot,
        "import_napari_s": round(t_import - t_start, 2),
        "viewer_s": round(t_viewer - t_import, 2),
        "dock_widget_s": round(t_dock - t_viewer, 3),
        "idle_max_gap_ms": round(float(idle.max()), 1) if idle.size else None,
        "idle_p99_ms": round(percentile(list(idle), 99), 1),
        "train_ticks": int(train.size),
        "train_expected_ticks": int(args.seconds * 1000 / args.interval),
        "max_interval_ms": round(float(train.max()), 1),
        "max_stall_ms": round(float(stall.max()), 1),
        "p50_interval_ms": round(percentile(list(train), 50), 1),
        "p99_interval_ms": round(percentile(list(train), 99), 1),
        "p999_interval_ms": round(percentile(list(train), 99.9), 1),
        "stalls_over_50ms": int((train > 50).sum()),
        "stalls_over_100ms": int((train > 100).sum()),
        "stalls_over_250ms": int((train > 250).sum()),
        "worst_intervals_at_s_ms": worst_at,
        "first_overlay_s": (round(state["first_overlay"] - t_press, 2)
                            if state["first_overlay"] else None),
        "overlays": int(widget.state.previews),
        "labels_pushes": int(widget.state.labels_pushes),
        "steps": job_steps,
        "stop_to_idle_s": (round(state["stopped"] - t_stop, 2) if state["stopped"] else None),
        "loadavg": os.getloadavg(),
    }
    if stacks:
        top = sorted(stacks.items(), key=lambda kv: -kv[1])[:12]
        res["stall_stacks_20ms_samples"] = [{"samples": n, "stack": k} for k, n in top]
    try:
        from _common import machine_description

        res["machine"] = machine_description()
    except Exception as exc:  # noqa: BLE001 - the numbers matter more than the header
        res["machine"] = str(exc)
    try:
        viewer.close()
    except RuntimeError:  # Qt already deleted the window when the loop ended
        pass

    print(f"{args.seconds:g} s of training from the widget, heartbeat {args.interval} ms, "
          f"painting {'on' if res['paint'] else 'off'}, threads env "
          f"{res['threads_env'] or '(default)'}")
    for key in ("dock_widget_s", "idle_max_gap_ms", "max_interval_ms", "p50_interval_ms",
                "p99_interval_ms", "p999_interval_ms", "stalls_over_50ms",
                "stalls_over_100ms", "stalls_over_250ms", "worst_intervals_at_s_ms",
                "first_overlay_s", "overlays", "labels_pushes", "steps", "stop_to_idle_s"):
        print(f"  {key:26s} {res[key]}")
    for item in res.get("stall_stacks_20ms_samples", []):
        print(f"  stalled {20 * item['samples']:5d} ms in: {item['stack']}")
    RESULTS.mkdir(exist_ok=True)
    name = f"gui_latency{'_' + args.tag if args.tag else ''}.json"
    (RESULTS / name).write_text(json.dumps(res, indent=1))
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
