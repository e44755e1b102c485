"""Markdown tables of bench/volume3d.py's result files (every method, decoder and seed).

Run::

    .venv/bin/python bench/volume3d_report.py bench/results/volume3d_steps150.json ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOAL = 1.1


def table(path: Path) -> str:
    doc = json.loads(path.read_text())
    runs = sorted(doc["runs"], key=lambda r: (r["seed"], r["method"], r.get("decoder") or ""))
    lines = [f"`{path.name}`", "",
             "| seed | method | decoder | nucleus IoU | steps | train s | predict s | "
             "load before -> after |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        train = r.get("train_s", r.get("seconds"))
        lines.append(
            f"| {r['seed']} | {r['method']} | {r.get('decoder') or '-'} | {r['iou']:.3f} | "
            f"{r.get('steps', '-')} | {train} | {r.get('predict_s', '-')} | "
            f"{r['load_before'][0]} -> {r['load_after'][0]} |")
    lines += ["", "| seed | 3D (bilinear) | 2D | 3D / 2D | forest | 3D / forest | goal 1.1x both |",
              "|---|---|---|---|---|---|---|"]
    for seed in sorted({r["seed"] for r in runs}):
        get = {(r["method"], r.get("decoder")): r["iou"] for r in runs if r["seed"] == seed}
        d3, d2, rf = get.get(("3d", "bilinear")), get.get(("2d", None)), get.get(("forest", None))
        if d3 is None:
            continue
        r2 = f"{d3 / d2:.2f}" if d2 else "-"
        rr = f"{d3 / rf:.2f}" if rf else "-"
        met = "yes" if d2 and rf and d3 >= GOAL * d2 and d3 >= GOAL * rf else "no"
        lines.append(f"| {seed} | {d3:.3f} | {d2 if d2 is None else f'{d2:.3f}'} | {r2} | "
                     f"{rf if rf is None else f'{rf:.3f}'} | {rr} | {met} |")
    peaks = [f"{s['started']}: matmul peak {s['matmul_peak_gflops']} GFLOP/s (1 / 2 threads), "
             f"load {s['load_before'][0]} -> {s.get('load_after', ['?'])[0]}"
             for s in doc.get("sessions", {}).values()]
    return "\n".join(lines + [""] + [f"- {p}" for p in peaks]) + "\n"


def main(argv: list[str] | None = None) -> int:
    for name in argv if argv is not None else sys.argv[1:]:
        print(table(Path(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
