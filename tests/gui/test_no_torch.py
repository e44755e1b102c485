"""The napari process never imports torch: opening the dock and talking to the worker
leaves ``torch`` out of ``sys.modules`` (the worker process imports it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from widget_support import pid_gone

SCRIPT = r"""
import json, sys, time
import napari
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer(show=False)
dock, widget = viewer.window.add_plugin_dock_widget("napari-unet-studio", "U-Net Studio")
app = QApplication.instance()
deadline = time.monotonic() + 120
while len(widget.model_panel.decoders()) < 2 and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.02)
pid = widget.client.pid
print(json.dumps({
    "torch": "torch" in sys.modules,
    "core_modules": sorted(m for m in sys.modules if m.startswith("napari_unet_studio.core")),
    "hello": widget.client.info() is not None,
    "decoders": widget.model_panel.decoders(),
    "worker_pid": pid,
    "info": widget.client.info(),
}))
viewer.close()
"""


def test_opening_the_dock_imports_no_torch():
    env = {**os.environ, "NAPARI_UNET_STUDIO_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["hello"], res.stderr[-3000:]
    assert out["torch"] is False
    assert set(out["core_modules"]) <= {"napari_unet_studio.core",
                                        "napari_unet_studio.core.anisotropy",  # numpy only
                                        "napari_unet_studio.core.uncertainty",  # numpy only
                                        # stdlib only: the worker's environment, no mallopt
                                        "napari_unet_studio.core.malloc",
                                        "napari_unet_studio.core.config",
                                        "napari_unet_studio.core.errors"}
    assert len(out["decoders"]) >= 5 and "bilinear" in out["decoders"]
    pid = out["worker_pid"]
    assert pid and pid_gone(pid, timeout=3.0), "the worker outlived napari"
