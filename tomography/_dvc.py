"""3D digital volume correlation: subvolume IC-GN with reliability-guided repair.

Pipeline of `correlate`:

1. validate inputs, convert to float64 (inputs never modified), tricubic B-spline
   prefilter of the deformed volume (once), exact spline gradients of the reference (once);
2. integer initial guess: FFT phase correlation of block-averaged volumes (any rigid
   shift), refined at sparse seed points by FFT normalised cross-correlation over a
   coarse-to-fine pyramid within `search_radius`;
3. IC-GN (`tomography._icgn3d`, numba, parallel over points) at the seeds; their converged
   shape functions, extrapolated to first order, start every point;
4. a parallel IC-GN pass over all points, then reliability-guided repair: failed or poorly
   correlated points restart from their best converged neighbour, in waves;
5. quality gate (ZNCC), then outlier detection (normalised median test): outliers restart
   from the neighbour median and are flagged OUTLIER if they stay outliers;
6. optional quality-weighted regularisation of the field (`regularisation` > 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import fft as sfft
from scipy.spatial import cKDTree
from skimage.feature import match_template
from skimage.transform import downscale_local_mean

from ._dvc_post import neighbour_lists, normalised_median_test, regularise
from ._icgn3d import NPAR, STATUS_CODES, icgn3d_points
from ._spline3d import spline_coefficients, spline_gradients

__all__ = ["DVCResult", "PointStatus", "correlate"]


class PointStatus(IntEnum):
    """Outcome of the correlation of one point."""

    OK = 0
    NOT_CONVERGED = 1
    LOW_ZNCC = 2
    OUT_OF_BOUNDS = 3
    MASKED = 4
    OUTLIER = 5


assert all(PointStatus[name] == code for name, code in STATUS_CODES.items())


@dataclass(frozen=True, eq=False)
class DVCResult:
    """Result of a 3D DVC analysis.

    Attributes
    ----------
    points : ndarray, shape (N, 3), float64
        Reference positions (z, y, x), voxels.
    displacement : ndarray, shape (N, 3), float64
        Displacement (z, y, x), voxels: the material at ``points`` is at ``points +
        displacement`` in the deformed volume.  NaN where the point failed (with
        `regularisation` > 0: the regularised field, filled from the neighbours; OUTLIER
        points carry their neighbours' median when `replace_outliers`).
    gradient : ndarray, shape (N, 3, 3), float64
        Displacement gradient ``gradient[n, i, j] = d u_i / d x_j`` ((z, y, x) order).
    zncc : ndarray, shape (N,), float64
        Zero-normalised cross-correlation of the final subvolume pair.
    iterations : ndarray, shape (N,), int64
        IC-GN iterations of the accepted solution.
    converged : ndarray, shape (N,), bool
        True where the status is OK.
    status : ndarray, shape (N,), int8
        `PointStatus` code of each point (``PointStatus(result.status[i])``).
    subset_size : int
        Subvolume width, voxels.
    step : int
        Grid step, voxels.
    grid_shape : tuple of int or None
        (nz, ny, nx) of the default grid; None for user-supplied points.
    measured_displacement : ndarray, shape (N, 3), float64
        The displacement before regularisation (equal to `displacement` without it).
    """

    points: NDArray[np.float64]
    displacement: NDArray[np.float64]
    gradient: NDArray[np.float64]
    zncc: NDArray[np.float64]
    iterations: NDArray[np.int64]
    converged: NDArray[np.bool_]
    status: NDArray[np.int8]
    subset_size: int
    step: int
    grid_shape: tuple[int, int, int] | None
    measured_displacement: NDArray[np.float64]

    def as_grid(self, field: str | NDArray) -> NDArray:
        """Reshape a per-point field to the grid, shape (nz, ny, nx, ...).

        Raises
        ------
        ValueError
            If the result has no grid or the field has the wrong length.
        """
        if self.grid_shape is None:
            raise ValueError("as_grid needs a result on the default grid (grid_shape is None)")
        arr = np.asarray(getattr(self, field) if isinstance(field, str) else field)
        if arr.shape[0] != len(self.points):
            raise ValueError(f"field has {arr.shape[0]} rows, expected {len(self.points)}")
        return arr.reshape(self.grid_shape + arr.shape[1:])


def check_volume(name: str, volume: ArrayLike) -> NDArray:
    """A 3D real-valued finite array, or ValueError naming `name`."""
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be a 3D (z, y, x) array, got shape {arr.shape}")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def default_grid(shape: tuple[int, ...], half: int, step: int) -> tuple[NDArray, tuple[int, int, int]]:
    """Grid points with spacing `step` at least ``half + 2`` voxels from the border."""
    margin = half + 2
    axes = [np.arange(margin, n - margin, step) for n in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.column_stack([m.ravel() for m in mesh]).astype(np.float64)
    return pts, (len(axes[0]), len(axes[1]), len(axes[2]))


def _phase_shift(ref: NDArray, mov: NDArray) -> NDArray:
    """Integer shift (z, y, x) of `mov` relative to `ref` by FFT phase correlation."""
    win = np.ones(ref.shape)
    for ax, n in enumerate(ref.shape):
        shape = [1, 1, 1]
        shape[ax] = n
        win = win * np.hanning(n).reshape(shape)
    fa = sfft.rfftn((ref - ref.mean()) * win)
    fb = sfft.rfftn((mov - mov.mean()) * win)
    cross = np.conj(fa) * fb
    cross /= np.abs(cross) + 1e-12
    corr = sfft.irfftn(cross, s=ref.shape)
    peak = np.array(np.unravel_index(np.argmax(corr), corr.shape), dtype=np.float64)
    size = np.array(ref.shape, dtype=np.float64)
    peak[peak > size / 2] -= size[peak > size / 2]
    return peak


def _match(ref: NDArray, mov: NDArray, centre: NDArray, guess: NDArray, half: int,
           radius: int) -> tuple[NDArray, float]:
    """Integer displacement of one subvolume by FFT normalised cross-correlation."""
    c = centre.astype(int)
    tpl = ref[c[0] - half:c[0] + half + 1, c[1] - half:c[1] + half + 1, c[2] - half:c[2] + half + 1]
    t = c + guess.astype(int)
    lo = np.maximum(t - half - radius, 0)
    hi = np.minimum(t + half + radius + 1, np.array(mov.shape))
    if np.any(hi - lo < np.array(tpl.shape)) or tpl.max() == tpl.min():
        return guess.copy(), -1.0
    win = mov[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    score = match_template(win, tpl)
    best = np.array(np.unravel_index(np.argmax(score), score.shape))
    return (lo + best + half - c).astype(np.float64), float(score[tuple(best)])


def _seed_guesses(ref: NDArray, mov: NDArray, seeds: NDArray, half: int, radius: int) -> NDArray:
    """Integer displacement guesses at the seeds, coarse to fine (block-mean pyramid)."""
    levels = 0  # halve until the residual radius is small, keeping >= 2 coarse subvolumes
    while radius >> levels > 3 and min(ref.shape) >> (levels + 1) >= 2 * (2 * max(half >> (levels + 1), 3) + 1):
        levels += 1
    pyr_ref, pyr_mov = [ref], [mov]
    for _ in range(max(levels, 2)):
        pyr_ref.append(downscale_local_mean(pyr_ref[-1], (2, 2, 2)))
        pyr_mov.append(downscale_local_mean(pyr_mov[-1], (2, 2, 2)))
    lev_g = min(2, len(pyr_ref) - 1)
    while lev_g > 0 and min(pyr_ref[lev_g].shape) < 8:
        lev_g -= 1
    g0 = _phase_shift(pyr_ref[lev_g], pyr_mov[lev_g]) * 2 ** lev_g
    out = np.empty((len(seeds), 3))
    for k, pt in enumerate(np.round(seeds)):
        guess = np.round(g0 / 2 ** levels)
        rad = max(int(np.ceil(radius / 2 ** levels)), 2)
        for lev in range(levels, -1, -1):
            scale = 2 ** lev
            lh = max(half // scale, 3) if lev else half
            shape = np.array(pyr_ref[lev].shape)
            centre = np.clip(np.round(pt / scale), lh, shape - lh - 1)
            guess, _ = _match(pyr_ref[lev], pyr_mov[lev], centre, guess, lh, rad)
            if lev:
                guess = guess * 2
                rad = 2
        out[k] = guess
    return out


def _seed_points(points: NDArray, valid: NDArray, subset_size: int, step: int) -> NDArray:
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return idx
    spacing = max(2 * subset_size, step)
    key = np.floor(points[idx] / spacing).astype(np.int64)
    _, first = np.unique(key, axis=0, return_index=True)
    return idx[np.sort(first)]


def _shift_params(params: NDArray, delta: NDArray) -> NDArray:
    """Shape functions re-centred by `delta` (z, y, x) voxels (affine: exact)."""
    out = params.copy()
    for i in range(3):
        out[:, 4 * i] += np.einsum("nj,nj->n", params[:, 4 * i + 1:4 * i + 4], delta)
    return out


def _interpolate_params(src_pts: NDArray, src_par: NDArray, dst_pts: NDArray) -> NDArray:
    """Inverse-distance blend of the nearest seeds' shape functions, extrapolated."""
    k = min(4, len(src_pts))
    dist, idx = cKDTree(src_pts).query(dst_pts, k=k)
    dist = dist.reshape(len(dst_pts), k)
    idx = idx.reshape(len(dst_pts), k)
    wts = 1.0 / (dist + 1e-6) ** 2
    wts /= wts.sum(axis=1, keepdims=True)
    out = np.zeros((len(dst_pts), src_par.shape[1]))
    for j in range(k):
        out += wts[:, j:j + 1] * _shift_params(src_par[idx[:, j]], dst_pts - src_pts[idx[:, j]])
    return out


class _Solver:
    """The fixed per-call data of the IC-GN kernel."""

    def __init__(self, ref: NDArray, deformed: NDArray, roi: NDArray, half: int, max_iter: int,
                 tol: float) -> None:
        self.ref = ref
        self.grads = spline_gradients(spline_coefficients(ref))
        self.coef = spline_coefficients(deformed)
        self.roi = roi.astype(np.uint8)
        self.half = half
        self.max_iter = max_iter
        self.tol = tol

    def run(self, centres: NDArray, init: NDArray, active: NDArray | None = None) -> tuple:
        n = len(centres)
        out_p = np.full((n, NPAR), np.nan)
        out_z = np.full(n, np.nan)
        out_i = np.zeros(n, dtype=np.int64)
        out_s = np.full(n, int(PointStatus.NOT_CONVERGED), dtype=np.int64)
        if active is None:
            active = np.ones(n, dtype=bool)
        if n:
            gz, gy, gx = self.grads
            icgn3d_points(self.ref, gz, gy, gx, self.coef, self.roi,
                          np.ascontiguousarray(centres, dtype=np.int64), np.ascontiguousarray(init),
                          np.ascontiguousarray(active), self.half, self.max_iter, self.tol,
                          out_p, out_z, out_i, out_s)
        return out_p, out_z, out_i, out_s


def _repair(solver: _Solver, centres: NDArray, nbrs: list[NDArray], par: NDArray, zncc: NDArray,
            iters: NDArray, status: NDArray, candidates: NDArray, thr: float) -> None:
    """Reliability-guided repair (in place): grow from good points into failed ones."""
    good = (status == PointStatus.OK) & (zncc >= thr)
    todo = candidates & ~good
    if not todo.any() or not good.any():
        return
    fresh = good.copy()
    while True:
        cand, src = [], []
        for i in np.flatnonzero(todo):
            nb = nbrs[i][fresh[nbrs[i]]]
            if len(nb):
                cand.append(i)
                src.append(nb[np.argmax(zncc[nb])])
        if not cand:
            return
        cand_a = np.array(cand)
        src_a = np.array(src)
        init = _shift_params(par[src_a], centres[cand_a] - centres[src_a])
        p, z, it, s = solver.run(centres[cand_a], init)
        ok = (s == PointStatus.OK) & (z >= thr)
        better = (s == PointStatus.OK) & ((z > np.nan_to_num(zncc[cand_a], nan=-2.0))
                                         | (status[cand_a] != PointStatus.OK))
        upd = cand_a[better]
        par[upd], zncc[upd], iters[upd], status[upd] = p[better], z[better], it[better], s[better]
        fresh = np.zeros_like(good)
        fresh[cand_a[ok]] = True
        todo[cand_a] = False
        for i in np.flatnonzero(fresh):
            nb = nbrs[i]
            todo[nb] |= ~((status[nb] == PointStatus.OK) & (zncc[nb] >= thr)) & candidates[nb]
        if not fresh.any():
            return


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def correlate(reference: ArrayLike, deformed: ArrayLike, *, subset_size: int = 21, step: int = 10,
              points: ArrayLike | None = None, mask: ArrayLike | None = None,
              max_iterations: int = 30, tolerance: float = 1e-3, zncc_threshold: float = 0.8,
              search_radius: int | None = None, initial_displacement: ArrayLike | None = None,
              outlier_threshold: float | None = 2.0, outlier_noise_vox: float = 0.1,
              replace_outliers: bool = True, regularisation: float = 0.0) -> DVCResult:
    """Subvolume-based 3D DVC between a reference and a deformed volume.

    Parameters
    ----------
    reference, deformed : ndarray, shape (Z, Y, X)
        Volumes (z, y, x), any real dtype (uint8, uint16, float32, ...); not modified.
    subset_size : int, optional
        Subvolume width, voxels, odd and >= 7.
    step : int, optional
        Spacing of the default grid of points, voxels.
    points : array_like, shape (N, 3), optional
        Reference positions (z, y, x), voxels.  Default: a grid with spacing `step` at
        least ``subset_size // 2 + 2`` voxels from the border.
    mask : ndarray of bool, shape (Z, Y, X), optional
        Region of interest on the reference; points outside are MASKED, subvolume voxels
        outside are ignored, subvolumes less than half inside are MASKED.
    max_iterations : int, optional
        IC-GN iteration limit.
    tolerance : float, optional
        Convergence threshold on the norm of the last parameter increment, voxels
        (gradient terms scaled by the half subvolume).
    zncc_threshold : float, optional
        Quality gate: points with a lower final ZNCC are LOW_ZNCC and NaN.
    search_radius : int, optional
        Integer search radius around the global shift at the seeds, voxels (default
        ``max(subset_size, 12)``).
    initial_displacement : array_like, shape (3,) or (N, 3), optional
        Initial guess (z, y, x), voxels; skips the integer search.
    outlier_threshold : float or None, optional
        Normalised-median-test threshold (None disables the test).
    outlier_noise_vox : float, optional
        Fluctuation level epsilon of the median test, voxels.
    replace_outliers : bool, optional
        Give OUTLIER points the median displacement of their valid neighbours (they stay
        ``converged == False``; `measured_displacement` keeps NaN there).
    regularisation : float, optional
        Strength of the quality-weighted smoothing (0: none).  The data weight of a point
        is ``((zncc - zncc_threshold) / (1 - zncc_threshold))^2`` (0 for failed points).

    Returns
    -------
    DVCResult

    Raises
    ------
    ValueError
        On bad volumes, sizes or options; the message names the argument.

    Notes
    -----
    Zero-normalised SSD, inverse-compositional Gauss-Newton with the 12-parameter affine
    shape function, tricubic B-spline interpolation with coefficients computed once (Pan
    and Wang 2016), FFT integer initial guess on a coarse-to-fine pyramid,
    reliability-guided repair (Pan 2009) and the normalised median test (Westerweel and
    Scarano 2005).

    References
    ----------
    B. Pan, B. Wang, Exp. Mech. 56, 1129-1141 (2016). https://doi.org/10.1007/s11340-016-0144-3
    B. Pan, Appl. Opt. 48, 1535-1542 (2009). https://doi.org/10.1364/AO.48.001535
    J. Westerweel, F. Scarano, Exp. Fluids 39, 1096-1100 (2005).
    https://doi.org/10.1007/s00348-005-0016-6

    Examples
    --------
    >>> res = correlate(ref, cur, subset_size=21, step=10)  # doctest: +SKIP
    >>> u = res.as_grid("displacement")  # (nz, ny, nx, 3), voxels
    """
    ref_in = check_volume("reference", reference)
    def_in = check_volume("deformed", deformed)
    if ref_in.shape != def_in.shape:
        raise ValueError(f"deformed must have the shape of reference {ref_in.shape}, got {def_in.shape}")
    subset_size = _check_int("subset_size", subset_size, 7)
    if subset_size % 2 == 0:
        raise ValueError(f"subset_size must be odd, got {subset_size}")
    if min(ref_in.shape) <= subset_size:
        raise ValueError(f"volumes {ref_in.shape} must be larger than subset_size={subset_size}")
    step = _check_int("step", step, 1)
    max_iterations = _check_int("max_iterations", max_iterations, 1)
    try:
        tolerance = float(tolerance)
    except (TypeError, ValueError):
        raise ValueError(f"tolerance must be a positive number, got {tolerance!r}") from None
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be positive, got {tolerance!r}")
    if not -1.0 <= zncc_threshold < 1.0:
        raise ValueError(f"zncc_threshold must be in [-1, 1), got {zncc_threshold!r}")
    if outlier_threshold is not None and not outlier_threshold > 0:
        raise ValueError(f"outlier_threshold must be > 0 or None, got {outlier_threshold!r}")
    if not regularisation >= 0:
        raise ValueError(f"regularisation must be >= 0, got {regularisation!r}")
    half = subset_size // 2
    shape = ref_in.shape

    if points is None:
        pts, grid_shape = default_grid(shape, half, step)
        if len(pts) == 0:
            raise ValueError(f"reference of shape {shape} is too small for subset_size={subset_size}: "
                             f"the default grid needs at least {subset_size + 4} voxels per side")
    else:
        pts = np.array(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
            raise ValueError(f"points must be a finite (N, 3) array in (z, y, x) order, got shape {pts.shape}")
        grid_shape = None
    n = len(pts)
    if mask is not None:
        roi = np.asarray(mask)
        if roi.shape != shape:
            raise ValueError(f"mask must have the volume shape {shape}, got {roi.shape}")
        roi = roi.astype(bool)
    else:
        roi = np.ones(shape, dtype=bool)
    centres = np.round(pts).astype(np.int64)
    inside = np.all((centres >= 0) & (centres < np.array(shape)), axis=1)
    masked = np.ones(n, dtype=bool)
    masked[inside] = ~roi[tuple(centres[inside].T)]
    candidates = ~masked

    ref = ref_in.astype(np.float64)
    defo = def_in.astype(np.float64)
    solver = _Solver(ref, defo, roi, half, max_iterations, tolerance)
    init = np.zeros((n, NPAR))
    if initial_displacement is not None:
        try:
            guess = np.broadcast_to(np.asarray(initial_displacement, dtype=np.float64), (n, 3))
        except (ValueError, TypeError):
            raise ValueError(f"initial_displacement must have shape (3,) or ({n}, 3), "
                             f"got {np.shape(initial_displacement)}") from None
        if not np.all(np.isfinite(guess[candidates])):
            raise ValueError("initial_displacement must be finite at the unmasked points")
        init[:, 0::4] = guess
    else:
        radius = max(subset_size, 12) if search_radius is None else int(search_radius)
        if radius < 0:
            raise ValueError(f"search_radius must be >= 0, got {search_radius!r}")
        seed_idx = _seed_points(pts, candidates & inside, subset_size, step)
        seed_c = centres[seed_idx]
        ok_seed = np.all((seed_c >= half) & (seed_c < np.array(shape) - half), axis=1)
        seed_c = seed_c[ok_seed]
        seed_init = np.zeros((len(seed_c), NPAR))
        if len(seed_c):
            seed_init[:, 0::4] = _seed_guesses(ref.astype(np.float32), defo.astype(np.float32),
                                               seed_c.astype(np.float64), half, radius)
        sp, sz, _, ss = solver.run(seed_c, seed_init)
        good = (ss == PointStatus.OK) & (sz >= zncc_threshold)
        if good.any():
            init = _interpolate_params(seed_c[good].astype(np.float64), sp[good],
                                       centres.astype(np.float64))
        elif len(seed_c):
            init[:, 0::4] = np.median(seed_init[:, 0::4], axis=0)

    par, zncc, iters, status = solver.run(centres, init, candidates)
    nbrs = neighbour_lists(centres.astype(np.float64), radius=1.8 * step) if n > 1 else [
        np.zeros(0, dtype=np.int64)] * n
    _repair(solver, centres.astype(np.float64), nbrs, par, zncc, iters, status, candidates,
            zncc_threshold)
    status[masked] = PointStatus.MASKED
    status[~inside] = PointStatus.OUT_OF_BOUNDS
    status[(status == PointStatus.OK) & ~(zncc >= zncc_threshold)] = PointStatus.LOW_ZNCC

    if outlier_threshold is not None and n > 3:
        _outliers(solver, centres, nbrs, par, zncc, iters, status, zncc_threshold,
                  outlier_threshold, outlier_noise_vox)

    ok = status == PointStatus.OK
    at_point = _shift_params(np.nan_to_num(par), pts - centres)
    disp = at_point[:, 0::4].copy()
    grad = np.stack([at_point[:, 4 * i + 1:4 * i + 4] for i in range(3)], axis=1)
    disp[~ok] = np.nan
    grad[~ok] = np.nan
    measured = disp.copy()
    if replace_outliers:
        for i in np.flatnonzero(status == PointStatus.OUTLIER):
            nb = nbrs[i][np.all(np.isfinite(measured[nbrs[i]]), axis=1)]
            if len(nb):
                disp[i] = np.median(measured[nb], axis=0)
    if regularisation > 0:
        w = np.where(ok, np.clip((zncc - zncc_threshold) / (1.0 - zncc_threshold), 0, 1) ** 2, 0.0)
        disp = regularise(pts, measured, np.nan_to_num(w), strength=regularisation, neighbours=nbrs)
    return DVCResult(points=pts, displacement=disp, gradient=grad, zncc=zncc, iterations=iters,
                     converged=ok, status=status.astype(np.int8), subset_size=subset_size,
                     step=step, grid_shape=grid_shape, measured_displacement=measured)


def _outliers(solver: _Solver, centres: NDArray, nbrs: list[NDArray], par: NDArray,
              zncc: NDArray, iters: NDArray, status: NDArray, thr: float, threshold: float,
              eps: float) -> None:
    """Median-test outliers restart from the neighbour median; flag those that stay (in place)."""
    def current() -> NDArray:
        d = par[:, 0::4].copy()
        d[status != PointStatus.OK] = np.nan
        return d

    pts = centres.astype(np.float64)
    bad = normalised_median_test(pts, current(), threshold=threshold, noise_level_vox=eps,
                                 neighbours=nbrs)
    if not bad.any():
        return
    idx = np.flatnonzero(bad)
    d = current()
    init = np.zeros((len(idx), NPAR))
    for row, i in enumerate(idx):
        nb = nbrs[i][np.all(np.isfinite(d[nbrs[i]]), axis=1) & ~bad[nbrs[i]]]
        if len(nb):
            init[row] = np.median(_shift_params(par[nb], pts[i] - pts[nb]), axis=0)
        else:
            init[row] = par[i]
    p, z, it, s = solver.run(centres[idx], init)
    take = (s == PointStatus.OK) & (z >= thr)
    par[idx[take]], zncc[idx[take]], iters[idx[take]] = p[take], z[take], it[take]
    still = normalised_median_test(pts, current(), threshold=threshold, noise_level_vox=eps,
                                   neighbours=nbrs)
    status[still & bad] = PointStatus.OUTLIER
