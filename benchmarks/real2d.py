"""2D DIC on real images: `vision.correlate` beside OpenCV baselines (issue 12, part 4).

Run from the repository root: ``.venv/bin/python benchmarks/real2d.py`` (~3 min on 2
idle cores; ``--quick`` < 1 min; ``--parts ac`` for a subset).  The images are read in
place from the shared data folder (``<repo>/../shared/data/real2d``, or ``--data`` /
$MUDCRACK_REAL2D; see its SOURCES.md); without it the script says so and exits 0.  To
measure another copy of the engine (e.g. the committed one: ``git archive HEAD vision |
tar -x -C /tmp/head``), run with ``PYTHONPATH=/tmp/head``; the header says which copy
was imported.

Parts (every method row runs at the same points):

- (a) frozen real texture: 448 x 448 crops of the 8 printed speckle patterns of the real
  stage photos (real camera texture: not re-blurred), moved by exact sub-pixel amounts
  (s, s), s = 0.0-1.0 px in 0.1 px steps, in Fourier space (DIC Challenge 1.0 Samples
  1-3 style: mirrored 64 px margin, phase ramps; the generator's own error implies
  < 1e-4 px).  Noise-free: bias = mean error, systematic scatter = std.  Then Gaussian
  noise of ``--noise`` (default 2 %) of full scale on both images: random error = std
  and its ratio to the Cramer-Rao bound sqrt(2) sigma / sqrt(sum_subset (df/dx_i)^2)
  (spectral gradient of the noise-free reference; RMS over the points).
- (b) real stage-move pairs (2048 x 1536, rigid move ~(0.5, 4.5) px with a small
  rotation): full-frame grid (step 8, subset 31), points/s, share of untextured points
  (subset grey std < ``--untextured-std`` of full scale), valid shares; the printed sheet
  (detected as the textured box at the frame centre) moves rigidly: a robust rigid fit
  (Kabsch, iterative 4-sigma trimming) on its valid points and their residuals; off the
  sheet, the share of valid points that follow the sheet's motion within 0.2 px (the
  stage ring moves with it, the frame corners may not); for per-point rows also speed,
  iterations and status of the sheet / textured off-sheet / untextured points (speed
  from a run on those points alone).
- (c) DIC Challenge 1.0 Sample 12 (real tensile test, frames 0 and 4) against OpenCorr's
  FFTCC + IC-GN result (33 px subsets) at OpenCorr's points.
- (d) DIC Challenge 2.0 Star images (v = 0.5 cos(2 pi (r - 250) / (10 + 290 c / 4000))):
  transfer v / A on the centre row, spatial resolution (shortest period from which v / A
  stays within 10 % of 1) and noise floor (std about a linear trend for periods >= 200 px).

Methods: the list `METHODS` of (label, callable, keyword options) rows; add a row (e.g. a
fixed engine with new options) to compare it in every part.  Each callable takes
``(ref, cur, points, *, subset_size, **options)`` and returns an `Out`.  Numba compile is
excluded (warm-up first).  Timings on a shared 2-core machine are indicative only: the
load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import uniform_filter

from _realdata import (DataMissing, crb_per_point, engine_text, fourier_gradient, fourier_shift, grid, load_text,
                       read_gray, real2d_dir)

import vision

FULL_SCALE = 255.0
SUBSET, STEP = 31, 8
MARGIN = 64  # mirrored margin of the Fourier shift, px (cut off afterwards)


# ---------------------------------------------------------------------------------- methods


@dataclass
class Out:
    disp: np.ndarray  # (N, 2) (row, col), px; NaN where failed
    valid: np.ndarray  # (N,) bool
    iterations: np.ndarray | None = None
    status: np.ndarray | None = None
    zncc: np.ndarray | None = None


def run_mudcrack(ref, cur, points, *, subset_size=SUBSET, **options) -> Out:
    """`vision.correlate` at the given points (options passed through)."""
    res = vision.correlate(ref, cur, subset_size=subset_size, points=points, **options)
    if len(res.points) != len(points) or not np.allclose(res.points, points):
        raise RuntimeError("vision.correlate returned other points than it was given")
    d = np.asarray(res.displacement, dtype=float)
    ok = np.asarray(res.converged, dtype=bool) & np.all(np.isfinite(d), axis=1)
    status = np.array([int(s) for s in res.status])
    return Out(d, ok, np.asarray(res.iterations), status, np.asarray(res.zncc, dtype=float))


run_mudcrack.per_point = True  # type: ignore[attr-defined]  # cost scales with the points; has iterations


def _u8(img):
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _sample(flow, points):
    c = np.round(points).astype(int)
    d = np.stack([flow[c[:, 0], c[:, 1], 1], flow[c[:, 0], c[:, 1], 0]], axis=-1).astype(float)
    return Out(d, np.all(np.isfinite(d), axis=1))


def run_dis(ref, cur, points, *, subset_size=None, preset="medium", **setters) -> Out:
    """OpenCV DIS optical flow (8-bit input), sampled at the points.

    ``preset="fine"``: the medium preset with finest scale 0 (full resolution, medium
    stops at half resolution) and patch stride 2; extra ``setters`` e.g.
    ``{"PatchSize": 12}`` call ``setPatchSize(12)``.
    """
    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(presets[preset])
    if preset == "fine":
        dis.setFinestScale(0)
        dis.setPatchStride(2)
    for k, v in setters.items():
        getattr(dis, f"set{k}")(v)
    return _sample(dis.calc(_u8(ref), _u8(cur), None), points)


run_dis.uses_subset = False  # type: ignore[attr-defined]


def run_farneback(ref, cur, points, *, subset_size=SUBSET, winsize=None, levels=3, iterations=5, poly_n=7,
                  poly_sigma=1.5, **_) -> Out:
    """OpenCV Farneback dense flow (float32 input), window = subset size unless given."""
    flow = cv2.calcOpticalFlowFarneback(np.float32(ref), np.float32(cur), None, 0.5, levels,
                                        int(winsize or subset_size), iterations, poly_n, poly_sigma, 0)
    return _sample(flow, points)


def run_template(ref, cur, points, *, subset_size=SUBSET, search=8, gate=0.8, **_) -> Out:
    """OpenCV matchTemplate (TM_CCOEFF_NORMED) per point over +-search px, 3-point parabola per axis."""
    ref32, cur32 = np.float32(ref), np.float32(cur)
    h, (H, W) = subset_size // 2, ref.shape
    n = len(points)
    d = np.full((n, 2), np.nan)
    peak = np.full(n, np.nan)
    for i, (r, c) in enumerate(np.round(points).astype(int)):
        if r - h < 0 or c - h < 0 or r + h >= H or c + h >= W:
            continue
        tpl = ref32[r - h:r + h + 1, c - h:c + h + 1]
        if tpl.std() == 0:
            continue
        r0, r1 = max(r - h - search, 0), min(r + h + search + 1, H)
        c0, c1 = max(c - h - search, 0), min(c + h + search + 1, W)
        res = cv2.matchTemplate(cur32[r0:r1, c0:c1], tpl, cv2.TM_CCOEFF_NORMED)
        _, mx, _, (ix, iy) = cv2.minMaxLoc(res)
        if not (0 < iy < res.shape[0] - 1 and 0 < ix < res.shape[1] - 1):
            continue  # peak on the edge of the search window
        den_y = res[iy - 1, ix] - 2 * res[iy, ix] + res[iy + 1, ix]
        den_x = res[iy, ix - 1] - 2 * res[iy, ix] + res[iy, ix + 1]
        dy = 0.5 * (res[iy - 1, ix] - res[iy + 1, ix]) / den_y if den_y < 0 else 0.0
        dx = 0.5 * (res[iy, ix - 1] - res[iy, ix + 1]) / den_x if den_x < 0 else 0.0
        d[i] = (r0 + iy + dy - (r - h), c0 + ix + dx - (c - h))
        peak[i] = mx
    ok = np.isfinite(d).all(axis=1) & (peak >= gate)
    d[~ok] = np.nan
    return Out(d, ok, zncc=peak)


run_template.per_point = True  # type: ignore[attr-defined]

# (label, callable, keyword options): add rows here (e.g. a fixed engine, other options).
METHODS: list[tuple[str, Callable[..., Out], dict]] = [
    ("mudcrack vision.correlate (engine defaults)", run_mudcrack, {}),
    ("OpenCV DIS medium", run_dis, {"preset": "medium"}),
    ("OpenCV DIS fine (medium, finest scale 0, stride 2)", run_dis, {"preset": "fine"}),
    ("OpenCV Farneback (window = subset)", run_farneback, {}),
    ("OpenCV matchTemplate NCC + parabola", run_template, {}),
]


def call(row, ref, cur, points, subset_size):
    label, fn, opts = row
    return fn(ref, cur, points, subset_size=subset_size, **opts)


def timed(row, ref, cur, points, subset_size, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = call(row, ref, cur, points, subset_size)
        best = min(best, time.perf_counter() - t)
    return out, best


def status_name(code: int) -> str:
    try:
        return vision.PointStatus(code).name
    except (ValueError, AttributeError):
        return str(code)


def max_iterations(row) -> int:
    opts = row[2]
    if "max_iterations" in opts:
        return int(opts["max_iterations"])
    try:
        return int(inspect.signature(vision.correlate).parameters["max_iterations"].default)
    except (KeyError, TypeError, ValueError):
        return -1


def subset_std(img, points, subset_size):
    m = uniform_filter(img, subset_size)
    s = np.sqrt(np.maximum(uniform_filter(img * img, subset_size) - m * m, 0.0))
    c = np.round(points).astype(int)
    return s[c[:, 0], c[:, 1]]


def f(x, fmt="{:.4f}"):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


# ---------------------------------------------------------------------------------- (a) frozen texture

# (photo, centre (row, col), pattern): quadrant centres of the two stage photos (reference frames)
CROPS = [("real_test_pattern1-4_ref.png", (507, 764), "pattern 1"),
         ("real_test_pattern1-4_ref.png", (507, 1287), "pattern 2"),
         ("real_test_pattern1-4_ref.png", (1028, 764), "pattern 3"),
         ("real_test_pattern1-4_ref.png", (1028, 1287), "pattern 4"),
         ("real_test_pattern5-8_ref.png", (507, 764), "pattern 5"),
         ("real_test_pattern5-8_ref.png", (507, 1287), "pattern 6"),
         ("real_test_pattern5-8_ref.png", (1028, 764), "pattern 7"),
         ("real_test_pattern5-8_ref.png", (1028, 1287), "pattern 8")]
HALF = 224


def part_a(data, methods, args):
    shifts = np.round(np.arange(0.0, 1.0001, 0.1), 1)
    crops = CROPS if not args.quick else [CROPS[0], CROPS[5]]
    sigma = args.noise * FULL_SCALE
    # results[label][shift] -> lists over crops of (err_nf, err_noisy, crb, valid_nf, valid_noisy)
    res = {row[0]: {s: [] for s in shifts} for row in methods}
    per_crop = {row[0]: {} for row in methods}
    cost = {row[0]: [0.0, 0] for row in methods}
    images = {}
    for ci, (photo, (r0, c0), pattern) in enumerate(crops):
        if photo not in images:
            images[photo] = read_gray(data / photo)
        img = images[photo]
        region = img[r0 - HALF - MARGIN:r0 + HALF + MARGIN, c0 - HALF - MARGIN:c0 + HALF + MARGIN]
        ref = fourier_shift(region, (0.0, 0.0), margin=MARGIN)
        grads = fourier_gradient(region, margin=MARGIN)
        pts = grid(ref.shape, SUBSET, STEP)
        crb = crb_per_point(grads, pts, noise=sigma, subset_size=SUBSET)
        rng = np.random.default_rng(100 + ci)
        for s in shifts:
            cur = fourier_shift(region, (s, s), margin=MARGIN)
            ref_n = ref + rng.normal(0.0, sigma, ref.shape)
            cur_n = cur + rng.normal(0.0, sigma, cur.shape)
            for row in methods:
                o_nf = call(row, ref, cur, pts, SUBSET)
                t = time.perf_counter()
                o_n = call(row, ref_n, cur_n, pts, SUBSET)
                cost[row[0]][0] += time.perf_counter() - t
                cost[row[0]][1] += len(pts)
                res[row[0]][s].append((o_nf.disp - s, o_n.disp - s, crb, o_nf.valid, o_n.valid))
                b = np.nanmean(np.where(o_nf.valid[:, None], o_nf.disp - s, np.nan), axis=0)
                per_crop[row[0]].setdefault(pattern, []).append(np.nanmax(np.abs(b)))
    print(f"\n## (a) frozen real texture, Fourier-shifted by (s, s): {len(crops)} crops of {2 * HALF}x{2 * HALF} px "
          f"({', '.join(c[2] for c in crops)}), {len(grid((2 * HALF, 2 * HALF), SUBSET, STEP))} points each "
          f"(step {STEP}, subset {SUBSET}); noise for the random error {args.noise:.3f} of full scale "
          f"(sigma {sigma:.2f} GL) on both images. DIS gets the images rounded to 8 bit.\n")
    print("Noise-free bias (mean error), row / col, px:\n")
    print("| shift, px | " + " | ".join(r[0] for r in methods) + " |")
    print("|---|" + "---|" * len(methods))
    summary = {}
    for s in shifts:
        cells = []
        for row in methods:
            e = np.concatenate([x[0][x[3]] for x in res[row[0]][s]])
            b = e.mean(axis=0) if len(e) else np.array([np.nan, np.nan])
            cells.append(f"{b[0]:+.4f} / {b[1]:+.4f}")
        print(f"| {s:.1f} | " + " | ".join(cells) + " |")
    for row in methods:
        lab = row[0]
        bias_nf, sd_nf, bias_n, sd_n, ratio, noise_ratio, valid = [], [], [], [], [], [], []
        for s in shifts:
            e_nf = np.concatenate([x[0][x[3]] for x in res[lab][s]])
            ok_n = [x[4] for x in res[lab][s]]
            e_n = np.concatenate([x[1][v] for x, v in zip(res[lab][s], ok_n)])
            both = [x[3] & x[4] for x in res[lab][s]]
            e_d = np.concatenate([(x[1] - x[0])[v] for x, v in zip(res[lab][s], both)])
            crb_rms = np.sqrt(np.mean(np.concatenate([x[2][v] for x, v in zip(res[lab][s], ok_n)]) ** 2, axis=0))
            bias_nf.append(np.abs(e_nf.mean(axis=0)).max())
            sd_nf.append(e_nf.std(axis=0).mean())
            bias_n.append(np.abs(e_n.mean(axis=0)).max())
            sd_n.append(e_n.std(axis=0).mean())
            ratio.append(np.mean(e_n.std(axis=0) / crb_rms))
            noise_ratio.append(np.mean(e_d.std(axis=0) / crb_rms))
            valid.append(np.mean(np.concatenate(ok_n)))
        crb_all = np.sqrt(np.mean(np.concatenate([x[2] for x in res[lab][shifts[0]]]) ** 2))
        summary[lab] = (max(bias_nf), np.mean(bias_nf), np.mean(sd_nf), max(bias_n), np.mean(sd_n), np.mean(ratio),
                        max(ratio), np.mean(noise_ratio), min(valid), cost[lab][1] / cost[lab][0], crb_all)
    print(f"\nSummary over the 11 shifts (CRB, RMS over points and axes: {summary[methods[0][0]][-1]:.4f} px):\n")
    print("| method | noise-free max abs bias, px | noise-free mean abs bias | noise-free scatter (std), px | "
          "noisy max abs bias | noisy random (std), px | random / CRB (mean, max) | noise part / CRB | "
          "valid (min) | points/s (448^2 crops) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for lab, v in summary.items():
        print(f"| {lab} | {v[0]:.4f} | {v[1]:.4f} | {v[2]:.4f} | {v[3]:.4f} | {v[4]:.4f} | {v[5]:.2f}, {v[6]:.2f} | "
              f"{v[7]:.2f} | {v[8]:.3f} | {v[9]:,.0f} |")
    print("\nNoise-free max abs bias over shifts and axes, per crop, px:\n")
    print("| crop | " + " | ".join(r[0] for r in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for pattern in per_crop[methods[0][0]]:
        print(f"| {pattern} | " + " | ".join(f"{max(per_crop[r[0]][pattern]):.4f}" for r in methods) + " |")
    print("\n(noise part = std of (noisy - noise-free) error, i.e. without the texture-dependent systematic "
          "scatter; a method's bias curve is antisymmetric about 0.5 px for a symmetric interpolant)")


# ---------------------------------------------------------------------------------- (b) stage-move pairs


def rigid_fit(pts, disp, sel, thr_floor=0.01, rounds=10):
    """Robust 2D rigid fit x' = R x + t on the selected points; returns (pred disp, inliers, angle, t_centre)."""
    x, y = pts, pts + disp
    inl = sel.copy()
    centre = pts.mean(axis=0)
    pred = np.zeros_like(disp)
    ang = np.nan
    for _ in range(rounds):
        if inl.sum() < 3:
            break
        a, b = x[inl] - x[inl].mean(axis=0), y[inl] - y[inl].mean(axis=0)
        u, _, vt = np.linalg.svd(b.T @ a)
        rot = u @ np.diag([1.0, np.linalg.det(u @ vt)]) @ vt
        t = y[inl].mean(axis=0) - rot @ x[inl].mean(axis=0)
        pred = x @ rot.T + t - x
        r = np.abs(disp - pred)
        thr = max(4 * 1.4826 * np.median(r[inl], axis=0).max(), thr_floor)
        new = sel & np.all(r < thr, axis=1)
        ang = np.arctan2(rot[1, 0], rot[0, 0])
        if np.array_equal(new, inl):
            break
        inl = new
    t_c = (centre @ rot.T + t - centre) if np.isfinite(ang) else np.full(2, np.nan)
    return pred, inl, ang, t_c


def sheet_box(img, subset_size):
    """(r0, r1, c0, c1): the printed sheet (textured box around the frame centre), shrunk by a half subset."""
    m = uniform_filter(img, 31)
    tex = np.sqrt(np.maximum(uniform_filter(img * img, 31) - m * m, 0.0)) > 0.06 * FULL_SCALE
    H, W = img.shape
    rows = tex[:, W // 2 - 200:W // 2 + 200].mean(axis=1) > 0.9
    cols = tex[H // 2 - 200:H // 2 + 200].mean(axis=0) > 0.9

    def extent(mask, centre):
        lo = hi = centre
        while lo > 0 and mask[lo - 1]:
            lo -= 1
        while hi < len(mask) - 1 and mask[hi + 1]:
            hi += 1
        return lo, hi

    (r0, r1), (c0, c1) = extent(rows, H // 2), extent(cols, W // 2)
    h = subset_size // 2 + 16  # the box filter widens the textured area by 15 px
    return r0 + h, r1 - h, c0 + h, c1 - h


def part_b(data, methods, args):
    thr = args.untextured_std * FULL_SCALE
    pairs = [("real_test_pattern1-4", "patterns 1-4"), ("real_test_pattern5-8", "patterns 5-8")]
    if args.quick:
        pairs = pairs[:1]
    repeat = 1 if args.quick else args.repeat
    rows, detail, boxes = [], [], []
    for stem, name in pairs:
        ref, cur = read_gray(data / f"{stem}_ref.png"), read_gray(data / f"{stem}_tar.png")
        pts = grid(ref.shape, SUBSET, STEP)
        std = subset_std(ref, pts, SUBSET)
        untex = std < thr
        r0, r1, c0, c1 = sheet_box(ref, SUBSET)
        boxes.append(f"{name}: rows {r0}-{r1}, cols {c0}-{c1}")
        sheet = (pts[:, 0] >= r0) & (pts[:, 0] <= r1) & (pts[:, 1] >= c0) & (pts[:, 1] <= c1)
        for row in methods:
            o, dt = timed(row, ref, cur, pts, SUBSET, repeat)
            sel = o.valid & sheet
            pred, inl, ang, t_c = rigid_fit(pts, np.nan_to_num(o.disp), sel)
            resid = np.abs(o.disp - pred).max(axis=1)
            rstd = (o.disp - pred)[inl].std(axis=0).mean() if inl.any() else np.nan
            r95 = np.percentile(resid[sel], 95) if sel.any() else np.nan
            out_v = o.valid & ~sheet & ~untex
            out_u = o.valid & untex
            near_t = np.mean(resid[out_v] < 0.2) if out_v.any() else np.nan
            near_u = np.mean(resid[out_u] < 0.2) if out_u.any() else np.nan
            rows.append((name, row[0], dt, len(pts) / dt, untex.mean(), sheet.mean(), o.valid.mean(),
                         o.valid[sheet].mean(), o.valid[~sheet & ~untex].mean(),
                         o.valid[untex].mean() if untex.any() else np.nan, t_c, ang, rstd, r95, near_t, near_u))
            if getattr(row[1], "per_point", False) and o.iterations is not None:
                mi = max_iterations(row)
                for part, m in (("sheet", sheet), ("textured, off the sheet", ~sheet & ~untex),
                                ("untextured", untex)):
                    if not m.any():
                        continue
                    _, dt_part = timed(row, ref, cur, pts[m], SUBSET, 1)
                    st = o.status[m]
                    counts = ", ".join(f"{status_name(c)} {np.mean(st == c):.1%}" for c in np.unique(st))
                    it = o.iterations[m]
                    detail.append((name, row[0], part, m.sum(), m.sum() / dt_part, it.mean(), np.median(it),
                                   np.mean(it >= mi) if mi > 0 else np.nan, counts))
    print(f"\n## (b) real stage-move pairs, full frame 2048x1536: {len(grid((1536, 2048), SUBSET, STEP))} points "
          f"(step {STEP}, subset {SUBSET}); untextured = subset grey std < {args.untextured_std:.3f} of full scale "
          f"({thr:.1f} GL); the printed sheet (detected; {'; '.join(boxes)}) moves rigidly: robust rigid fit "
          f"(Kabsch, 4-sigma trimming) on its valid points; best of {repeat} timings\n")
    print("| pair | method | s per frame | points/s | untextured share | sheet share | valid: all / sheet / textured "
          "off sheet / untextured | rigid fit: t at centre (row, col) px, rotation mrad | sheet residual std "
          "(inliers), px | sheet 95 % abs residual, px | within 0.2 px of the sheet motion: valid textured off "
          "sheet / valid untextured |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, lab, dt, pps, ush, shs, va, vs, vo, vu, t_c, ang, rstd, r95, nt, nu) in rows:
        print(f"| {name} | {lab} | {dt:.2f} | {pps:,.0f} | {ush:.3f} | {shs:.3f} | {va:.3f} / {vs:.3f} / {vo:.3f} / "
              f"{f(vu, '{:.3f}')} | ({t_c[0]:+.3f}, {t_c[1]:+.3f}), {ang * 1e3:+.3f} | {f(rstd)} | {f(r95)} | "
              f"{f(nt, '{:.3f}')} / {f(nu, '{:.3f}')} |")
    if detail:
        print("\nPer-point methods by region (iterations and status from the full-frame run; points/s from a run "
              "on those points alone):\n")
        print("| pair | method | points | n | points/s alone | iterations mean / median | at max_iterations | status |")
        print("|---|---|---|---|---|---|---|---|")
        for (name, lab, part, n, pps, itm, itmed, atmax, counts) in detail:
            print(f"| {name} | {lab} | {part} | {n} | {pps:,.0f} | {itm:.1f} / {itmed:.0f} | {f(atmax, '{:.1%}')} | "
                  f"{counts} |")


# ---------------------------------------------------------------------------------- (c) Sample 12 vs OpenCorr


def part_c(data, methods, args):
    import pandas as pd

    ref = read_gray(data / "dic_challenge1_sample12_0.png")
    cur = read_gray(data / "dic_challenge1_sample12_4.png")
    oc = pd.read_csv(data / "opencorr_sample12_fftcc_icgn1_r16_step8.csv")
    pts = oc[["y", "x"]].to_numpy(float)
    ocd = oc[["v", "u"]].to_numpy(float)  # (row, col)
    oc_max_it = int(oc["iteration"].max())
    oc_ok = (oc["ZNCC"].to_numpy() >= 0.8) & (oc["iteration"].to_numpy() < oc_max_it) & \
        (oc["convergence"].to_numpy() < 1e-3)
    subset = 33  # OpenCorr radius 16
    print(f"\n## (c) DIC Challenge 1.0 Sample 12 (frames 0 -> 4, {ref.shape[1]}x{ref.shape[0]} px) against OpenCorr "
          f"FFTCC + IC-GN (1st order, subset {subset}): {len(pts)} OpenCorr points, OpenCorr valid "
          f"(ZNCC >= 0.8, converged before its {oc_max_it} iterations) {oc_ok.mean():.3f}; |difference| where both "
          f"are valid; OpenCorr median displacement (row, col) = ({np.median(ocd[oc_ok, 0]):+.3f}, "
          f"{np.median(ocd[oc_ok, 1]):+.3f}) px\n")
    print("| method | s | valid | valid where OpenCorr valid | median abs diff row / col, px | 95 % abs diff row / col "
          "| max abs diff (both valid) |")
    print("|---|---|---|---|---|---|---|")
    for row in methods:
        o, dt = timed(row, ref, cur, pts, subset, 1 if args.quick else args.repeat)
        both = o.valid & oc_ok
        dd = np.abs(o.disp[both] - ocd[both])
        med, p95 = (np.median(dd, axis=0), np.percentile(dd, 95, axis=0)) if len(dd) else ([np.nan] * 2,) * 2
        print(f"| {row[0]} | {dt:.3f} | {o.valid.mean():.3f} | {o.valid[oc_ok].mean():.3f} | {med[0]:.4f} / "
              f"{med[1]:.4f} | {p95[0]:.4f} / {p95[1]:.4f} | {f(dd.max() if len(dd) else np.nan)} |")


# ---------------------------------------------------------------------------------- (d) Star


STAR_A, STAR_R0 = 0.5, 250.0


def star_period(col, width):
    return 10.0 + 290.0 * col / width


def part_d(data, methods, args):
    ref = read_gray(data / "dic_challenge2_star_noise_ref.png")
    cur = read_gray(data / "dic_challenge2_star_noise_def.png")
    width = ref.shape[1]
    cols = np.arange(40.0, width - 40.0, 2.0)
    line = np.column_stack([np.full(len(cols), STAR_R0), cols])
    periods = star_period(cols, width)
    print(f"\n## (d) DIC Challenge 2.0 Star ({width}x{ref.shape[0]} px, noisy 8-bit images), amplitude {STAR_A} px, "
          f"periods 10-300 px; centre row, {len(cols)} points (every 2 px); v/A averaged over +-10 columns\n")
    print("| method | subset / window | spatial resolution (10 %), px | v/A at period 20 / 40 / 80 / 160 px | "
          "noise floor, px | col displacement std at periods >= 200 px (true 0), px |")
    print("|---|---|---|---|---|---|")
    for row in methods:
        subsets = (21, 31, 41) if getattr(row[1], "uses_subset", True) else (None,)
        if args.quick and len(subsets) > 1:
            subsets = (31,)
        for sub in subsets:
            o = call(row, ref, cur, line, sub or SUBSET)
            v = np.where(o.valid, o.disp[:, 0], np.nan)
            gain = np.array([np.nanmean(v[np.abs(cols - c) <= 10]) / STAR_A for c in cols])
            within = np.abs(gain - 1.0) <= 0.10
            res = next((periods[i] for i in range(len(cols)) if np.all(within[i:])), np.nan)
            g = [float(np.interp(p, periods, gain)) for p in (20, 40, 80, 160)]
            big = (periods >= 200) & np.isfinite(v)
            trend = np.polyval(np.polyfit(cols[big], v[big], 1), cols[big]) if big.sum() > 2 else np.nan
            floor = float(np.std(v[big] - trend)) if big.sum() > 2 else np.nan
            ustd = float(np.nanstd(np.where(o.valid, o.disp[:, 1], np.nan)[periods >= 200]))
            print(f"| {row[0]} | {sub or '-'} | {f(res, '{:.0f}')} | "
                  f"{g[0]:.2f} / {g[1]:.2f} / {g[2]:.2f} / {g[3]:.2f} | "
                  f"{f(floor)} | {f(ustd)} |")


# ---------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 crops, one stage pair, one subset on Star, 1 timing")
    parser.add_argument("--data", default=None,
                        help="folder of the real 2D images (default <repo>/../shared/data/real2d)")
    parser.add_argument("--parts", default="abcd", help="which parts to run, e.g. 'ab' (default abcd)")
    parser.add_argument("--noise", type=float, default=0.02, help="noise std for part (a), fraction of full scale")
    parser.add_argument("--untextured-std", type=float, default=0.02,
                        help="subset grey std below which a subset is untextured, fraction of full scale")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs in parts b and c (best kept)")
    parser.add_argument("--only", default=None, help="run only the method rows whose label contains this text")
    args = parser.parse_args()
    try:
        data = real2d_dir(args.data)
        for name in ("real_test_pattern1-4_ref.png", "dic_challenge1_sample12_0.png"):
            if not (data / name).is_file():
                raise DataMissing(f"{data / name} is missing")
    except DataMissing as exc:
        print(f"real2d benchmark skipped: {exc}")
        return 0
    methods = [m for m in METHODS if args.only is None or args.only in m[0]]
    t0 = time.perf_counter()
    print(f"# real2d: {data}; {engine_text(vision)}; {load_text()} at start")
    warm = read_gray(data / "dic_challenge1_sample12_0.png")[:200, :200]
    for row in methods:  # numba compile / cache load, OpenCV init
        call(row, warm, warm, grid(warm.shape, SUBSET, 16), SUBSET)
    parts = {"a": part_a, "b": part_b, "c": part_c, "d": part_d}
    for key in (k for k in args.parts if k in parts):
        t = time.perf_counter()
        parts[key](data, methods, args)
        print(f"\n(part {key}: {time.perf_counter() - t:.0f} s)")
    print(f"\n{load_text()} at the end; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
