"""GUI-thread time of one loss-plot update (append a point + a synchronous repaint).

Usage: ``python scripts/loss_plot_cost.py [--points 300 3000 30000] [--repeats 200]``.
Prints milliseconds per update (median and 95th percentile) for curves of several
lengths. ``QT_QPA_PLATFORM=offscreen`` works without a display.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, nargs="+", default=[300, 3000, 30000])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    from qtpy.QtWidgets import QApplication

    from napari_unet_studio.gui.plot import LossPlot

    app = QApplication.instance() or QApplication([])
    plot = LossPlot()
    plot.resize(360, 120)
    plot.show()
    app.processEvents()
    for n in args.points:
        plot.clear()
        for step in range(1, n + 1):
            plot.steps.append(step)
            plot.losses.append(1.0 / step)
        times = []
        for k in range(args.repeats):
            start = time.perf_counter()
            plot.add(n + k + 1, 1.0 / (n + k + 1))
            plot.repaint()  # synchronous paint: the whole cost lands here
            times.append(1000.0 * (time.perf_counter() - start))
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        print(f"{n:>6} points: {statistics.median(times):.3f} ms median, "
              f"{p95:.3f} ms p95 per update ({args.repeats} updates)")
    plot.close()


if __name__ == "__main__":
    main()
