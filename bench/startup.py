"""Start-up cost: importing the package, napari start-up with and without the plugin, the dock.

1. ``python -X importtime -c "import napari_unet_studio"`` in a fresh interpreter: the
   cumulative import time of the package, and proof that torch is not imported (the
   module list, and ``"torch" in sys.modules`` afterwards).
2. napari start-up: a fresh interpreter until ``napari.Viewer(show=False)`` returns, with
   the plugin enabled and with it disabled through
   ``npe2.PluginManager.instance().disable("napari-unet-studio")``; repeats interleaved;
   napari settings go to a temporary ``NAPARI_CONFIG`` so the user's are never touched.
   Also whether torch or our widget code were imported by start-up.
3. Opening the dock widget (``viewer.window.add_plugin_dock_widget``) in a fresh viewer:
   torch stays out of the napari process (the dock starts the worker process).

Qt runs with ``QT_QPA_PLATFORM=offscreen`` (no screen needed).

Run: ``flock /tmp/bench.lock python bench/startup.py`` (``--repeats 5`` default).
Writes ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
PLUGIN = "napari-unet-studio"

VIEWER_SNIPPET = """
import sys, time, json
t0 = time.perf_counter()
if {disable!r}:
    import npe2
    npe2.PluginManager.instance().disable({plugin!r})
import napari
viewer = napari.Viewer(show=False)
t1 = time.perf_counter()
out = {{"viewer_s": t1 - t0,
        "torch_imported": "torch" in sys.modules,
        "widget_imported": "napari_unet_studio.gui.dock" in sys.modules,
        "package_imported": "napari_unet_studio" in sys.modules}}
if {dock!r}:
    t2 = time.perf_counter()
    viewer.window.add_plugin_dock_widget({plugin!r}, "U-Net Studio")
    out["dock_s"] = time.perf_counter() - t2
    out["torch_after_dock"] = "torch" in sys.modules
viewer.close()
print("RESULT " + json.dumps(out))
"""


def run_py(code: str, env: dict, args: list[str] | None = None) -> tuple[float, str, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *(args or []), "-c", code], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"subprocess failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, proc.stdout, proc.stderr


def importtime(env: dict) -> dict:
    """Cumulative import time of napari_unet_studio and the modules it pulled in."""
    _, out, err = run_py("import napari_unet_studio, sys; print('torch' in sys.modules)",
                         env, ["-X", "importtime"])
    total_us, modules = None, []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [s.strip() for s in line[len("import time:"):].split("|")]
        if not parts[0].isdigit():
            continue
        name = parts[2]
        modules.append(name.strip())
        if name.strip() == "napari_unet_studio":
            total_us = int(parts[1])
    top = [m for m in modules if m.split(".")[0] == "torch"]
    return {"import_ms": total_us / 1000 if total_us else None,
            "modules_imported": len(modules), "torch_modules": len(top),
            "torch_in_sys_modules": out.strip() == "True"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dock-repeats", type=int, default=3)
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="unet_studio_startup_")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               NAPARI_CONFIG=str(Path(tmp) / "settings.yaml"))
    env.pop("NAPARI_UNET_STUDIO_THREADS", None)

    imports = [importtime(env) for _ in range(args.repeats)]
    imp_ms = [r["import_ms"] for r in imports]
    torch_free = not any(r["torch_in_sys_modules"] or r["torch_modules"] for r in imports)

    rows: dict[str, list[dict]] = {"enabled": [], "disabled": []}
    _ = run_py(VIEWER_SNIPPET.format(disable=False, plugin=PLUGIN, dock=False), env)  # warm
    for _ in range(args.repeats):
        for mode in ("enabled", "disabled"):
            code = VIEWER_SNIPPET.format(disable=mode == "disabled", plugin=PLUGIN, dock=False)
            wall, out, _ = run_py(code, env)
            res = json.loads([s for s in out.splitlines() if s.startswith("RESULT ")][-1][7:])
            res["process_s"] = wall
            rows[mode].append(res)
    docks = []
    for _ in range(args.dock_repeats):
        wall, out, _ = run_py(VIEWER_SNIPPET.format(disable=False, plugin=PLUGIN, dock=True), env)
        docks.append(json.loads([s for s in out.splitlines() if s.startswith("RESULT ")][-1][7:]))

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[mode])

    summary = {
        "import_ms_median": statistics.median(imp_ms),
        "import_ms_all": imp_ms,
        "import_pulls_torch": not torch_free,
        "viewer_s_enabled": med("enabled", "viewer_s"),
        "viewer_s_disabled": med("disabled", "viewer_s"),
        "process_s_enabled": med("enabled", "process_s"),
        "process_s_disabled": med("disabled", "process_s"),
        "startup_imports_torch": any(r["torch_imported"] for r in rows["enabled"]),
        "startup_imports_widget": any(r["widget_imported"] for r in rows["enabled"]),
        "dock_s_median": statistics.median(d["dock_s"] for d in docks),
        "dock_s_all": [d["dock_s"] for d in docks],
        "torch_after_dock": all(d["torch_after_dock"] for d in docks),
    }
    summary["plugin_adds_s"] = summary["viewer_s_enabled"] - summary["viewer_s_disabled"]
    print(f"import napari_unet_studio: {summary['import_ms_median']:.1f} ms (median of "
          f"{args.repeats}); torch imported: {'yes' if not torch_free else 'no'}")
    print(f"napari.Viewer(show=False) from a fresh interpreter, median of {args.repeats}:")
    print(f"  plugin enabled  {summary['viewer_s_enabled']:.2f} s  (whole process "
          f"{summary['process_s_enabled']:.2f} s)")
    print(f"  plugin disabled {summary['viewer_s_disabled']:.2f} s  (whole process "
          f"{summary['process_s_disabled']:.2f} s)")
    print(f"  the plugin adds {1000 * summary['plugin_adds_s']:+.0f} ms; start-up imports "
          f"torch: {summary['startup_imports_torch']}, our widget code: "
          f"{summary['startup_imports_widget']}")
    print(f"open the dock widget (imports torch): {summary['dock_s_median']:.2f} s median of "
          f"{args.dock_repeats}")
    from _common import machine_description

    RESULTS.mkdir(exist_ok=True)
    out = {"args": vars(args), "machine": machine_description(), "loadavg": os.getloadavg(),
           "summary": summary, "runs": rows, "docks": docks, "imports": imports}
    (RESULTS / "startup.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS / 'startup.json'}")


if __name__ == "__main__":
    main()
