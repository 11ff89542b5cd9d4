"""Accuracy and speed of the surface crack analytics against sim_line ground truth.

Run from the repository root: ``.venv/bin/python benchmarks/cracks2d.py [--seeds N]``.
Prints three markdown tables:

1. segmentation accuracy per rendering condition over seeds and times (IoU with
   ``frame.crack_mask``, |surface CIF error|, skeleton length error, false-positive
   pixels on crack-free precursor frames);
2. first visible time from `first_visible_time` vs the physics crack onset, per gap;
3. runtime of `segment_cracks` + `crack_metrics` per 512^2 and 1024^2 frame.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sim_line
from vision._cracks import analyse_sequence, crack_metrics, first_visible_time, segment_cracks

CONDITIONS = {
    "nominal (grad 0.3, 1 %, 8 bit, 5 um/px)": dict(),
    "grad 0.5, noise 3 %": dict(illumination_gradient=0.5, noise_std=0.03),
    "grad 0, noise 0.5 %, 16 bit": dict(illumination_gradient=0.0, noise_std=0.005, bit_depth=16),
    "flicker 0.8, noise 2 %": dict(flicker_gain=0.8, noise_std=0.02),
    "flicker 1.2, grad 0.4": dict(flicker_gain=1.2, illumination_gradient=0.4),
    "2 um/px, noise 2 %": dict(um_per_px=2.0, noise_std=0.02),
    "8 um/px": dict(um_per_px=8.0),
    "8 um/px, grad 0.5, noise 3 %": dict(um_per_px=8.0, illumination_gradient=0.5, noise_std=0.03),
}
TIMES_MIN = (42.0, 45.0, 50.0, 60.0, 75.0)
PRECURSOR_MIN = (30.0, 38.0, 40.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def accuracy_table(seeds: range) -> None:
    print("| condition | t (min) | mean IoU | min IoU | mean abs CIF err | max abs CIF err "
          "| mean length err | FP px on precursor frames |")
    print("|---|---|---|---|---|---|---|---|")
    runs = {s: sim_line.simulate_lab(300, seed=s) for s in seeds}
    for name, kw in CONDITIONS.items():
        fp = 0
        for s in seeds:
            for t in PRECURSOR_MIN:
                f = sim_line.render_surface(runs[s].snapshot_at(t), seed=s, **kw)
                fp += int(segment_cracks(f.image, um_per_px=f.um_per_px).sum())
        for t in TIMES_MIN:
            ious, errs, lens = [], [], []
            for s in seeds:
                f = sim_line.render_surface(runs[s].snapshot_at(t), seed=s, **kw)
                mask = segment_cracks(f.image, um_per_px=f.um_per_px)
                ious.append(iou(mask, f.crack_mask))
                errs.append(abs(mask.mean() - f.surface_cif))
                got = crack_metrics(mask, um_per_px=f.um_per_px).total_length_um
                ref = crack_metrics(f.crack_mask, um_per_px=f.um_per_px).total_length_um
                lens.append((got - ref) / ref if ref else np.nan)
            print(f"| {name} | {t:g} | {np.mean(ious):.3f} | {np.min(ious):.3f} | "
                  f"{np.mean(errs):.4f} | {np.max(errs):.4f} | {np.nanmean(lens):+.1%} | {fp} |")


def onset_table(seeds: range) -> None:
    print("| gap (um) | condition | seed | physics onset (min) | first visible (min) | lag (min) |")
    print("|---|---|---|---|---|---|")
    for gap in (300, 500, 800):
        for name in ("nominal (grad 0.3, 1 %, 8 bit, 5 um/px)", "grad 0.5, noise 3 %",
                     "2 um/px, noise 2 %", "8 um/px"):
            kw = CONDITIONS[name]
            for s in seeds:
                run = sim_line.simulate_lab(gap, seed=s)
                onset = float(run.frame.attrs["crack_onset_min"])
                times = np.arange(np.floor(onset) - 2.0, np.floor(onset) + 6.01, 0.5)
                frames = [sim_line.render_surface(run.snapshot_at(t), seed=s, **kw).image
                          for t in times]
                df = analyse_sequence(frames, times, um_per_px=kw.get("um_per_px", 5.0))
                t_vis = first_visible_time(df)
                print(f"| {gap} | {name} | {s} | {onset:.2f} | {t_vis:.1f} | {t_vis - onset:+.2f} |")


def speed_table() -> None:
    print("| frame | segment_cracks (s) | crack_metrics (s) | render_surface (s, for scale) |")
    print("|---|---|---|---|")
    snap = sim_line.simulate_lab(300, seed=0).snapshot_at(60.0)
    for n in (512, 1024):
        t0 = time.perf_counter()
        f = sim_line.render_surface(snap, seed=0, shape_px=(n, n))
        t_render = time.perf_counter() - t0
        seg, met = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            mask = segment_cracks(f.image, um_per_px=5.0)
            seg.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            crack_metrics(mask, um_per_px=5.0)
            met.append(time.perf_counter() - t0)
        print(f"| {n}^2 | {min(seg):.3f} | {min(met):.3f} | {t_render:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    args = parser.parse_args()
    seeds = range(args.seeds)
    speed_table()
    print()
    accuracy_table(seeds)
    print()
    onset_table(seeds)


if __name__ == "__main__":
    main()
