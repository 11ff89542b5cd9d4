"""3D DVC speed and accuracy: mudcrack's `tomography.correlate` beside spam and skimage.

Run from the repository root: ``.venv/bin/python benchmarks/dvc3d.py`` (``--quick``: a
48 x 80 x 80 volume, two cases, one timing).  One process, the same volumes for every
method: an analytic particle packing (`tomography._phantom`, 80 x 128 x 128 voxels,
Gaussian-blurred polydisperse spheres, radii 2-4 voxels, ~0.5 solid fraction) rendered
at exactly mapped coordinates, with 2 % Gaussian noise on both volumes; rigid sub-voxel
shifts and one small affine field.  Every method is evaluated at the same points (the
mudcrack default grid: step 10, 21^3 subvolumes):

- mudcrack ``tomography.correlate(ref, cur, subset_size=21, step=10)`` (defaults:
  tolerance 1e-3 voxel, tricubic B-spline);
- spam ``spam.DIC.ldic`` (spam 0.9.1), half-window 11 (ldic crops one voxel, so the
  correlated subvolume is 21^3), ``deltaPhiMin=0.001`` (norm of the Phi increment),
  ``maxIterations=50``, search margin 3 (spam-ldic defaults), identity initial guess,
  ``interpolationOrder=3`` (scipy cubic spline) and ``1`` (spam's C trilinear), one
  process per core;
- scikit-image ``optical_flow_ilk`` in 3D, radius 10 (21^3 window), sampled at the points.

Numba compile time is excluded (a small warm-up call first); times are the best of
``--repeat`` runs.  The Cramer-Rao bound is sqrt(2) sigma / sqrt(sum over the subvolume
of (df/dx_i)^2), from the exact gradient of the noise-free reference.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Callable

import numpy as np
from skimage.registration import optical_flow_ilk

from tomography._phantom import add_noise, cramer_rao_bound, displacement, particles, render

NOISE = 0.02  # 2 % of the nominal [0, 1] grey range, in both volumes
SUBSET, STEP = 21, 10

try:
    from tomography import correlate as mudcrack_correlate
except ImportError as exc:  # the engine is optional here
    mudcrack_correlate = None
    MUDCRACK_MISSING = f"{exc}"
try:
    with contextlib.redirect_stdout(io.StringIO()):
        import spam.DIC
except ImportError as exc:
    spam = None
    SPAM_MISSING = f"{exc}"


def default_grid(shape: tuple[int, int, int]) -> np.ndarray:
    """The mudcrack default grid: spacing STEP, at least SUBSET // 2 + 2 from the border."""
    margin = SUBSET // 2 + 2
    axes = [np.arange(margin, n - margin, STEP) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).astype(np.float64)


def cases(shape: tuple[int, int, int], quick: bool) -> list[tuple[str, np.ndarray | None, np.ndarray]]:
    """(name, matrix, shift): rigid sub-voxel shifts and one affine field about the centre."""
    rigid = [(0.3, 0.5, 0.7), (0.25, 0.25, 0.25), (0.1, 0.9, 0.45)]
    if quick:
        rigid = rigid[:1]
    out: list[tuple[str, np.ndarray | None, np.ndarray]] = [
        (f"shift {s}", None, np.array(s)) for s in rigid]
    theta = 2e-3  # rad, about z
    rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(theta), -np.sin(theta)], [0.0, np.sin(theta), np.cos(theta)]])
    strain = np.array([[2e-3, 0.0, 1e-3], [0.0, -1e-3, 0.0], [1e-3, 0.0, 1.5e-3]])
    mat = rot @ (np.eye(3) + strain)
    centre = (np.asarray(shape) - 1) / 2.0
    u_centre = np.array([0.2, -0.3, 0.4])
    out.append(("affine (strain 1-2e-3, 2 mrad)", mat, u_centre - (mat - np.eye(3)) @ centre))
    return out


Result = tuple[np.ndarray, np.ndarray, np.ndarray]  # displacement (N, 3), converged (N,), iterations (N,)


def run_spam(ref: np.ndarray, cur: np.ndarray, points: np.ndarray, order: int) -> Result:
    """spam local DVC (return status 2 = converged on deltaPhiMin)."""
    with contextlib.redirect_stdout(io.StringIO()):  # ldic prints rich progress bars and tables
        phi, status, _, iterations, _ = spam.DIC.ldic(
            ref, cur, points.astype(np.int64), [SUBSET // 2 + 1] * 3,
            processes=os.cpu_count(), margin=[-3, 3, -3, 3, -3, 3], maxIterations=50, deltaPhiMin=0.001,
            interpolationOrder=order, updateGradient=False, applyF="all")
    return phi[:, :3, 3].copy(), status == 2, iterations


def run_ilk(ref: np.ndarray, cur: np.ndarray, points: np.ndarray) -> Result:
    flow = optical_flow_ilk(ref, cur, radius=SUBSET // 2)
    c = points.astype(np.int64)
    d = np.stack([flow[i][c[:, 0], c[:, 1], c[:, 2]] for i in range(3)], -1)
    return d, np.ones(len(points), dtype=bool), np.full(len(points), 10.0)  # num_warp=10 (fixed)


def run_mudcrack(ref: np.ndarray, cur: np.ndarray, points: np.ndarray) -> Result:
    res = mudcrack_correlate(ref, cur, subset_size=SUBSET, step=STEP)
    if not np.allclose(res.points, points):
        raise RuntimeError("mudcrack's default grid differs from the benchmark grid")
    return np.asarray(res.displacement), np.asarray(res.converged), np.asarray(res.iterations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48x80x80 volume, 2 cases, 1 timing")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per case (best is kept)")
    args = parser.parse_args()
    shape = (48, 80, 80) if args.quick else (80, 128, 128)
    repeat = args.repeat or (1 if args.quick else 2)

    parts = particles(shape, seed=7)
    ref0, gz, gy, gx = render(shape, parts)
    ref = add_noise(ref0, NOISE, seed=1).astype(np.float32)
    points = default_grid(shape)
    crb = cramer_rao_bound((gz, gy, gx), points, noise=NOISE, subset_size=SUBSET)

    methods: dict[str, Callable] = {}
    if mudcrack_correlate is not None:
        methods["mudcrack correlate (IC-GN affine, tricubic B-spline)"] = run_mudcrack
    else:
        print(f"skipped mudcrack: tomography.correlate not importable ({MUDCRACK_MISSING})")
    if spam is not None:
        methods["spam 0.9.1 ldic, cubic (order 3)"] = lambda r, c, p: run_spam(r, c, p, 3)
        methods["spam 0.9.1 ldic, linear (order 1)"] = lambda r, c, p: run_spam(r, c, p, 1)
    else:
        print(f"skipped spam: not importable ({SPAM_MISSING})")
    methods["skimage optical_flow_ilk r=10"] = run_ilk

    # warm-up: numba compile / cache load, process pools, imports
    small = (40, 40, 40)
    wref = ref[:40, :40, :40].copy()
    wpts = default_grid(small)
    for fn in methods.values():
        if fn is run_mudcrack:
            mudcrack_correlate(wref, wref, subset_size=SUBSET, step=STEP)
        else:
            fn(wref, wref, wpts)

    rows = []
    for case, matrix, shift in cases(shape, args.quick):
        cur0 = render(shape, parts, matrix=matrix, shift=shift)[0]
        cur = add_noise(cur0, NOISE, seed=2).astype(np.float32)
        truth = displacement(points, matrix=matrix, shift=shift)
        for name, fn in methods.items():
            best = np.inf
            for _ in range(repeat):
                t = time.perf_counter()
                d, ok, its = fn(ref, cur, points)
                best = min(best, time.perf_counter() - t)
            err = d - truth
            ok = ok & np.all(np.isfinite(err), axis=1)
            bias = err[ok].mean(axis=0)
            rand = err[ok].std(axis=0)
            rows.append((case, name, best, bias, rand, ok.mean(), float(np.mean(its))))

    n = len(points)
    print(f"\n{shape[0]}x{shape[1]}x{shape[2]} phantom ({len(parts)} particles), {n} points (step {STEP}, "
          f"subset {SUBSET}^3), noise {NOISE}, {os.cpu_count()} cores, best of {repeat}; "
          f"Cramer-Rao bound (z, y, x) = {crb[0]:.4f} {crb[1]:.4f} {crb[2]:.4f} voxel")
    print("| case | method | s | points/s | bias z, y, x (voxel) | random z, y, x (voxel) "
          "| random / CRB | valid | iterations |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, name, dt, bias, rand, valid, its in rows:
        print(f"| {case} | {name} | {dt:.2f} | {n / dt:,.0f} | {bias[0]:+.4f} {bias[1]:+.4f} {bias[2]:+.4f} | "
              f"{rand[0]:.4f} {rand[1]:.4f} {rand[2]:.4f} | {np.mean(rand / crb):.2f} | {valid:.3f} | {its:.1f} |")

    print("\nSummary (rigid = all shift cases; affine = the affine case)")
    print("| method | points/s (mean) | rigid max abs bias | rigid random / CRB | affine max abs bias "
          "| affine random / CRB | valid (min) |")
    print("|---|---|---|---|---|---|---|")
    for name in methods:
        mine = [r for r in rows if r[1] == name]
        rigid = [r for r in mine if r[0].startswith("shift")]
        affine = [r for r in mine if not r[0].startswith("shift")]
        pps = np.mean([n / r[2] for r in mine])
        rb = max(np.abs(r[3]).max() for r in rigid)
        rr = np.mean([np.mean(r[4] / crb) for r in rigid])
        ab = max(np.abs(r[3]).max() for r in affine)
        ar = np.mean([np.mean(r[4] / crb) for r in affine])
        print(f"| {name} | {pps:,.0f} | {rb:.4f} | {rr:.2f} | {ab:.4f} | {ar:.2f} | {min(r[5] for r in mine):.3f} |")


if __name__ == "__main__":
    main()
