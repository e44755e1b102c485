"""Superpixel voting of class probabilities (a probe for issue 11, item 4).

The per-pixel class probabilities of a model are averaged inside each SLIC superpixel
of the image (scikit-image), then mixed with the pixel's own: ``(1 - mix) * p + mix *
mean_superpixel(p)``. Superpixels follow colour and intensity edges, so the vote removes
scattered pixels of a wrong class inside one region and moves label boundaries onto
image edges. Used by ``bench/forest_ensemble.py --rules superpixel``; the parameters of
``RULES`` were fixed before the first run. ``python bench/superpixels.py`` sweeps the
parameters on the photos. The functions are the product's
(:mod:`napari_unet_studio.core.superpixels`, which took the setting the sweep found).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_unet_studio.core.superpixels import mean_vote, segments, vote

__all__ = ["RULES", "segments", "sweep", "vote"]

#: rule -> (mean superpixel area in pixels, mix, which model's probabilities)
RULES: dict[str, tuple[int, float, str]] = {
    "sp100": (100, 1.0, "unet"),
    "sp400": (400, 1.0, "unet"),
    "sp100-half": (100, 0.5, "unet"),
    "forest-sp100": (100, 1.0, "forest"),
}


# ------------------------------------------------------------------- parameter sweep
SWEEP_AREAS = (25, 50, 100, 200)
SWEEP_COMPACTNESS = (3.0, 10.0, 30.0)
SWEEP_MIX = (0.5, 0.75, 1.0)


def sweep(cases: list[str], seeds: list[int], steps: int, cache: Path, out: Path) -> int:
    """Score every (area, compactness, mix) of the grid above, and the mean of the
    areas 50/100/200, on the U-Net's probabilities of each case and seed (trained once,
    kept in ``cache``); write the rows to ``out`` and print the mean and smallest ratio
    to the forest per setting."""
    import json
    import statistics

    import realistic as rl
    import realistic_cases as rc
    from ablate import forest_rows

    forest = forest_rows()
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in cases:
        for seed in seeds:
            case, data = rc.build(name, seed)
            images = [img for _, img, _ in data["eval"]]
            f = cache / f"{name}_s{seed}_{steps}.npz"
            if f.exists():
                probs = list(np.load(f)["p"])
            else:
                probs, _ = rl.unet(data["train"], images, seed, "pretrained", steps, None,
                                   None, threads=1, probabilities=True)
                np.savez_compressed(f, p=np.stack(probs))
            if (name, seed) in forest:
                ref = forest[(name, seed)]["miou"]
            else:  # a seed the committed suite did not run: train the forest here
                ids, _ = rl.forest(data["train"], images, case.rgb, seed)
                ref = rl.score(ids, data["eval"], case.foreground)["miou"]
            print(f"{name} {seed}: forest {ref:.4f}", flush=True)
            settings: dict[str, list[np.ndarray]] = {"none": [p.argmax(0) + 1 for p in probs]}
            for comp in SWEEP_COMPACTNESS:
                segs = [{a: segments(img, a, comp) for a in SWEEP_AREAS} for img in images]
                for area in SWEEP_AREAS:
                    for mix in SWEEP_MIX:
                        settings[f"a{area}-c{comp:g}-m{mix:g}"] = [
                            vote(p, s[area], mix).argmax(0) + 1 for p, s in zip(probs, segs)]
                settings[f"a50+100+200-c{comp:g}-m1"] = [
                    mean_vote(p, [s[a] for a in (50, 100, 200)]).argmax(0) + 1
                    for p, s in zip(probs, segs)]
            for key, preds in settings.items():
                sc = rl.score(preds, data["eval"], case.foreground)
                rows.append({"case": name, "seed": seed, "setting": key, **sc,
                             "ratio": round(sc["miou"] / ref, 4)})
            print(f"{name} {seed}: none {rows[-len(settings)]['ratio']:.3f}, best "
                  + max((r for r in rows[-len(settings):]), key=lambda r: r["ratio"])["setting"],
                  flush=True)
    out.write_text(json.dumps({"steps": steps, "rows": rows}, indent=1) + "\n")
    keys = list(dict.fromkeys(r["setting"] for r in rows))
    table = []
    for key in keys:
        rs = [r["ratio"] for r in rows if r["setting"] == key]
        table.append((statistics.fmean(rs), min(rs), key))
    for mean, low, key in sorted(table, reverse=True)[:15] + [t for t in table if t[2] == "none"]:
        print(f"{key:24s} mean ratio {mean:.3f}  smallest {low:.3f}")
    return 0


if __name__ == "__main__":
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    ap = argparse.ArgumentParser(description="sweep the superpixel vote's parameters")
    ap.add_argument("--cases", nargs="+", default=["arc2017", "voc", "voc-third"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/unet_studio_sp_cache"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results"
                    / "superpixel_sweep.json")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    raise SystemExit(sweep(a.cases, a.seeds, a.steps, a.cache, a.out))
