"""Spatial resolution and noise floor of `vision.correlate` on a star displacement field.

Run: ``python benchmarks/star2d.py``. Prints a Markdown table.

The DIC Challenge 2.0 "star" idea: a vertical (row) displacement
``v = A cos(2 pi (r - r0) / p(c))`` whose period ``p`` grows linearly from 10 px (left) to
300 px (right). On the centre row r0 every column sits on a crest of its own period, so the
measured v / A along that row is the transfer function of the method versus period (the
analysis line of the DIC Challenge). The spatial resolution is the shortest period from
which the amplitude is recovered within 10 %; the noise floor is the standard deviation of
the measured v on the centre row where the transfer is ~1 (periods >= 200 px).
Images: analytic Gaussian speckles moved speckle by speckle (no interpolation), 2 % noise.
Baselines in the same run: OpenCV Farneback flow and DIS (medium) sampled at the same
points. Speed is measured in ``dic2d.py``.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision import correlate
from vision._speckle import render, speckles

SHAPE = (400, 1200)
ROW0 = 200.0
AMPLITUDE_PX = 0.5
NOISE = 0.02
P_MIN, P_MAX = 10.0, 300.0


def period_at(col: np.ndarray) -> np.ndarray:
    """Period (px) of the star field at image column ``col`` (linear from P_MIN to P_MAX)."""
    return P_MIN + (P_MAX - P_MIN) * np.clip(col / (SHAPE[1] - 1), 0.0, 1.0)


def star_displacement(points: np.ndarray) -> np.ndarray:
    """True (row, col) displacement at reference points (N, 2)."""
    v = AMPLITUDE_PX * np.cos(2 * np.pi * (points[:, 0] - ROW0) / period_at(points[:, 1]))
    return np.column_stack([v, np.zeros_like(v)])


def summarise(name: str, cols: np.ndarray, v_row: np.ndarray, floor: float) -> str:
    """Table row from the measured v on the centre row (columns ``cols``)."""
    periods = period_at(cols)
    ok = np.isfinite(v_row)
    gain = np.full(len(cols), np.nan)
    for i in range(len(cols)):  # +-10 px column window: averages the noise, keeps the period
        sel = ok & (np.abs(cols - cols[i]) <= 10)
        gain[i] = np.mean(v_row[sel]) / AMPLITUDE_PX if sel.any() else np.nan
    within = np.abs(gain - 1.0) <= 0.10
    res = np.nan
    for i in range(len(cols)):
        if np.all(within[i:]):
            res = periods[i]
            break
    g = [float(np.interp(p, periods, gain)) for p in (20, 40, 80, 160)]
    return (f"| {name} | {res:.0f} | {g[0]:.2f} / {g[1]:.2f} / {g[2]:.2f} / {g[3]:.2f} | "
            f"{floor:.4f} |")


REALISATIONS = 6  # independent noise draws, averaged: the transfer curve is then not noise-limited


def pair(sp, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ref, _, _ = render(SHAPE, sp)
    cur, _, _ = render(SHAPE, sp, shift=star_displacement(sp[0]))  # each speckle moved by the field at its centre
    rng = np.random.default_rng(seed)
    return ref + rng.normal(0, NOISE, SHAPE), cur + rng.normal(0, NOISE, SHAPE)


def main() -> None:
    sp = speckles(SHAPE, seed=7)
    pairs = [pair(sp, seed) for seed in range(REALISATIONS)]
    cols = np.arange(40.0, SHAPE[1] - 40.0, 2.0)
    line = np.column_stack([np.full(len(cols), ROW0), cols])
    c = line.astype(int)
    print(f"star field {SHAPE[0]}x{SHAPE[1]} px, amplitude {AMPLITUDE_PX} px, periods {P_MIN:g}-{P_MAX:g} px, "
          f"noise {NOISE}, mean of {REALISATIONS} noise draws")
    print("| method | spatial resolution: shortest period within 10 %, px | v/A at period 20 / 40 / 80 / 160 px | "
          "noise floor (one draw), px |")
    print("|---|---|---|---|")
    methods = {f"mudcrack IC-GN, subset {n}": (lambda r, d, n=n: correlate(r, d, subset_size=n, points=line).displacement[:, 0])
               for n in (21, 31, 41)}

    def farneback(r, d):
        r8 = np.clip(r * 100 + 75, 0, 255).astype(np.uint8)
        d8 = np.clip(d * 100 + 75, 0, 255).astype(np.uint8)
        flow = cv2.calcOpticalFlowFarneback(r8, d8, None, 0.5, 3, 15, 5, 5, 1.1, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
        return flow[c[:, 0], c[:, 1], 1].astype(float)

    def dis(r, d):
        r8 = np.clip(r * 100 + 75, 0, 255).astype(np.uint8)
        d8 = np.clip(d * 100 + 75, 0, 255).astype(np.uint8)
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(r8, d8, None)
        return flow[c[:, 0], c[:, 1], 1].astype(float)

    methods["OpenCV Farneback (window 15)"] = farneback
    methods["OpenCV DIS medium"] = dis
    for name, fn in methods.items():
        draws = np.array([fn(r, d) for r, d in pairs])
        periods = period_at(cols)
        floor = float(np.nanmean([np.nanstd(v[periods >= 200.0]) for v in draws]))
        print(summarise(name, cols, np.nanmean(draws, axis=0), floor))


if __name__ == "__main__":
    main()
