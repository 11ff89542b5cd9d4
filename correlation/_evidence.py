"""Crack-precursor evidence on displacement grids, shared by the 2D and 3D onset detectors.

Before a mud crack opens, the material on its two sides moves apart (the precursor) by a
fraction of a pixel / voxel, decaying away from the future crack.  On a correlation grid
that shows as a tensile jump of the (background-free) displacement between grid points
on the two sides.  `opening_map` measures that jump across every grid point, `judge_plane`
turns a map into robust z-scores against the noise of the map and the quiet frames seen
so far, and `find_sites` clusters the hot cells into predicted crack sites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ._robust import Z_CAP, lower_scale

__all__ = ["opening_map", "PlaneJudgement", "judge_plane", "Sites", "find_sites", "matched_residual", "QuietNoise"]

_DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))  # in-plane grid directions (a, b)


def _shifted(arr: NDArray, offsets: tuple[int, ...]) -> NDArray:
    """``arr[i + offset]`` with NaN where that leaves the array (no wrap-around)."""
    out = np.full(arr.shape, np.nan)
    src, dst = [], []
    for n, o in zip(arr.shape, offsets + (0,) * (arr.ndim - len(offsets))):
        if abs(o) >= n:
            return out
        src.append(slice(max(o, 0), n + min(o, 0)))
        dst.append(slice(max(-o, 0), n - max(o, 0)))
    out[tuple(dst)] = arr[tuple(src)]
    return out


def _along(values: NDArray, step: tuple[int, ...], half: int) -> NDArray[np.float64]:
    """NaN-aware mean of ``values`` over ``i + k step`` for k in [-half, half] (at least
    ``half + 1`` finite values, else NaN)."""
    if half <= 0:
        return values
    total = np.zeros(values.shape)
    count = np.zeros(values.shape)
    for k in range(-half, half + 1):
        v = _shifted(values, tuple(k * s for s in step))
        ok = np.isfinite(v)
        total += np.where(ok, v, 0.0)
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= half + 1, total / count, np.nan)


def opening_map(residual: NDArray, *, plane_axes: tuple[int, int], baselines: tuple[int, ...] = (2, 4),
                along: int = 2) -> NDArray[np.float64]:
    """Largest tensile jump of a displacement grid across each grid point, averaged along the crack.

    For every grid point, every in-plane direction n (the two grid axes and the two
    diagonals) and every baseline L (an even number of grid steps), the jump is the
    displacement difference between the grid points ``L / 2`` steps on either side,
    projected on n: ``(u(i + L/2 n) - u(i - L/2 n)) . n / |n|``.  Positive values are an
    opening (the two sides move apart).  A crack between two grid points is straddled by
    the subsets of both, each seeing an average of the two sides, so the opening shows in
    full only between points farther out: hence several baselines.  A crack is a line
    across n, so the jump is then averaged over the ``2 along + 1`` grid points along the
    line through the point perpendicular to n (the noise of independent points averages
    down, the opening of a straight stretch of crack does not).

    Parameters
    ----------
    residual : ndarray, shape grid_shape + (d,)
        Displacement after removing the background (NaN where not trusted), px / voxels,
        components in the grid's axis order.
    plane_axes : tuple of 2 int
        The grid axes spanning the plane of the cracks ((0, 1) for an image grid, (1, 2)
        for a (z, y, x) volume grid: cracks are vertical).
    baselines : tuple of int, optional
        Even baselines in grid steps.
    along : int, optional
        Half length of the average along the crack, grid steps (0: none).

    Returns
    -------
    ndarray, shape grid_shape
        The largest (averaged) opening over directions and baselines, px / voxels (NaN
        where no pair of trusted points).
    """
    res = np.asarray(residual, dtype=np.float64)
    grid_nd = res.ndim - 1
    a_ax, b_ax = plane_axes
    best = np.full(res.shape[:-1], -np.inf)
    seen = np.zeros(res.shape[:-1], dtype=bool)
    for L in baselines:
        if L <= 0 or L % 2:
            raise ValueError(f"baselines must be positive even numbers of grid steps, got {baselines!r}")
        h = L // 2
        for da, db in _DIRECTIONS:
            off = [0] * grid_nd
            off[a_ax], off[b_ax] = h * da, h * db
            plus = _shifted(res, tuple(off))
            minus = _shifted(res, tuple(-o for o in off))
            norm = np.hypot(da, db)
            jump = ((plus[..., a_ax] - minus[..., a_ax]) * da + (plus[..., b_ax] - minus[..., b_ax]) * db) / norm
            tangent = [0] * grid_nd
            tangent[a_ax], tangent[b_ax] = -db, da
            jump = _along(jump, tuple(tangent), along)
            ok = np.isfinite(jump)
            seen |= ok
            best = np.where(ok & (jump > best), jump, best)
    return np.where(seen, best, np.nan)


@dataclass(frozen=True, eq=False)
class PlaneJudgement:
    """Robust judgement of an evidence map.

    Attributes
    ----------
    z : ndarray
        ``(value - median) / scale`` per cell (NaN where no evidence), clipped to +-1000.
    hot : ndarray of bool
        Cells with z above the threshold and a value above the absolute minimum.
    median, scale, raw_scale : float
        Centre and the scale used (one-sided lower-half MAD, floored and capped), and the
        uncapped, unfloored scale.
    score : float
        Mean of the `top` largest z (a soft maximum one outlier cannot drive; 0 when
        nothing stands out).
    """

    z: NDArray[np.float64]
    hot: NDArray[np.bool_]
    median: float
    scale: float
    raw_scale: float
    score: float


def judge_plane(values: NDArray, *, z_threshold: float, min_value: float, floor: float,
                cap: float | None = None, centre_cap: float | None = None, top: int = 3) -> PlaneJudgement:
    """Robust z-scores of an evidence map against its own noise.

    The scale is the one-sided robust scale of the values at or below the median
    (`lower_scale`: evidence of a crack is an upper tail and must not inflate the noise it
    is judged against), floored by `floor` (a perfectly still frame must not turn noise
    into large z) and capped by `cap` (a precursor network covering most of the view must
    not inflate its own scale; the detectors cap at a multiple of the quiet frames' scale,
    followed with the noise level of the current correlation).

    Parameters
    ----------
    values : ndarray
        The evidence map (NaN where none).
    z_threshold : float
        z a cell must exceed to be hot.
    min_value : float
        Value a hot cell must also exceed (an absolute floor in the map's units).
    floor : float
        Lower bound of the scale.
    cap : float, optional
        Upper bound of the scale.
    centre_cap : float, optional
        Upper bound of the centre (the median rises too when a precursor network covers
        most of the view).
    top : int, optional
        Number of largest z averaged into the score.

    Returns
    -------
    PlaneJudgement
    """
    v = np.asarray(values, dtype=np.float64)
    fin = np.isfinite(v)
    z = np.full(v.shape, np.nan)
    if fin.sum() < 4:
        return PlaneJudgement(z=z, hot=np.zeros(v.shape, bool), median=float("nan"), scale=float(floor),
                              raw_scale=float("nan"), score=0.0)
    med, raw = lower_scale(v[fin])
    if centre_cap is not None:
        med = min(med, centre_cap)
    scale = raw if cap is None else min(raw, cap)
    scale = max(scale, floor)
    z[fin] = np.clip((v[fin] - med) / scale, -Z_CAP, Z_CAP)
    hot = fin & (np.nan_to_num(z, nan=-np.inf) > z_threshold) & (np.nan_to_num(v, nan=-np.inf) > min_value)
    best = np.sort(z[fin])[::-1][:max(int(top), 1)]
    return PlaneJudgement(z=z, hot=hot, median=med, scale=scale, raw_scale=raw,
                          score=float(max(np.mean(best), 0.0)))


@dataclass(frozen=True, eq=False)
class Sites:
    """Predicted crack sites from an evidence plane.

    Attributes
    ----------
    index : ndarray of int, shape (K, 2)
        Plane cells of the sites, strongest first.
    strength : ndarray, shape (K,)
        Evidence value at each site.
    hot : ndarray of bool
        The hot cells of the kept clusters.
    """

    index: NDArray[np.int64]
    strength: NDArray[np.float64]
    hot: NDArray[np.bool_]


def find_sites(values: NDArray, hot: NDArray, *, min_cells: int, separation_cells: float) -> Sites:
    """Cluster hot cells (8-connected) into sites: local maxima of the evidence.

    Clusters smaller than `min_cells` are dropped (a crack is a line; isolated cells are
    texture artefacts).  In each kept cluster the local maxima of `values`, at least
    `separation_cells` apart (non-maximum suppression across the whole plane), are sites.

    Parameters
    ----------
    values : ndarray, shape (R, C)
        Evidence plane (NaN where none).
    hot : ndarray of bool, shape (R, C)
        Hot cells.
    min_cells : int
        Smallest cluster kept.
    separation_cells : float
        Minimum distance between two sites, cells.

    Returns
    -------
    Sites
    """
    v = np.where(np.isfinite(values), values, -np.inf)
    labels, n = ndimage.label(hot, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return Sites(np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(hot.shape, bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= max(int(min_cells), 1)
    keep[0] = False
    kept = keep[labels]
    rad = max(int(np.floor(separation_cells)), 0)
    peak = (v == ndimage.maximum_filter(v, size=2 * rad + 1, mode="constant", cval=-np.inf)) & kept
    idx = np.argwhere(peak)
    idx = idx[np.argsort(-v[peak], kind="stable")]
    chosen: list[NDArray] = []
    for cell in idx:
        if all(np.hypot(*(cell - c)) >= separation_cells for c in chosen):
            chosen.append(cell)
    index = np.array(chosen, dtype=np.int64).reshape(-1, 2)
    return Sites(index=index, strength=v[tuple(index.T)] if len(index) else np.zeros(0), hot=kept)


def matched_residual(result) -> float:
    """Lower quartile of ``(1 - zncc) * subset_variance`` over the converged points.

    The grey-value variance the matched subsets away from any crack do not explain: it
    follows the noise and the decorrelation of the whole view (sensor noise, aliasing at
    sub-pixel shifts, texture change) but not a precursor, whose discontinuity
    decorrelates only the subsets that straddle a crack (a minority of them).  NaN when
    fewer than 8 points converged.
    """
    ok = result.converged & np.isfinite(result.zncc) & np.isfinite(result.subset_variance)
    if ok.sum() < 8:
        return float("nan")
    return float(np.percentile((1.0 - result.zncc[ok]) * result.subset_variance[ok], 25))


class QuietNoise:
    """The noise an evidence map is judged against: learnt on quiet frames, then followed.

    The first `frames` quiet (non-alarming) frames set the centre and scale of the
    evidence map when nothing is there; afterwards the map's own centre and scale are
    capped at `inflation` times those, grown with the square root of the correlation's
    residual variance (`matched_residual`; the correlation's random error grows with it).
    Until then (a series whose first scans already carry a precursor) the caps follow the
    engine's predicted random error (`CorrelationResult.displacement_std`): on quiet
    frames the opening map's lower-half scale is 0.85-1.0 times the median predicted
    error and its median ~1.5 times that.  After a reference update the errors of every
    hop add, so the variances of the frames that became references are summed.

    Parameters
    ----------
    frames : int
        Quiet frames to learn from (0: never learn; the predicted error caps throughout).
    inflation : float
        Margin of the caps over the learnt values (>= 1).
    floor : float
        Lower bound of the learnt scale (noiseless data).
    """

    #: margin of the caps over the predicted random error (before quiet frames are learnt)
    MODEL_SCALE = 1.5
    MODEL_CENTRE = 2.0

    def __init__(self, *, frames: int, inflation: float, floor: float) -> None:
        self._frames = int(frames)
        self._inflation = float(inflation)
        self._floor = float(floor)
        self._seen: list[tuple[float, float, float]] = []
        self._quiet: tuple[float, float, float] | None = None
        self._prev: tuple[float, float] | None = None
        self._carried = (0.0, 0.0)  # summed (kappa, predicted error variance) of the references
        self.kappa = float("nan")
        self.sigma = float("nan")

    def observe(self, result, reference_updated: bool) -> float:
        """Record the correlation of a new frame; returns the residual variance of its chain."""
        kappa = matched_residual(result)
        std = getattr(result, "displacement_std", None)
        ok = result.converged
        var = float(np.nanmedian(std[ok]) ** 2) if std is not None and ok.any() and np.isfinite(
            std[ok]).any() else float("nan")
        if reference_updated and self._prev is not None:  # the previous frame became the reference
            self._carried = tuple(c + (p if np.isfinite(p) else 0.0) for c, p in zip(self._carried, self._prev))
        self._prev = (kappa, var)
        self.kappa = self._carried[0] + kappa
        self.sigma = float(np.sqrt(self._carried[1] + var)) if np.isfinite(var) else float("nan")
        return self.kappa

    def caps(self) -> tuple[float | None, float | None]:
        """(scale cap, centre cap) for the current frame (None when nothing is known)."""
        if self._quiet is None:
            if not np.isfinite(self.sigma):
                return None, None
            s = max(self.sigma, self._floor)
            return self.MODEL_SCALE * s, self.MODEL_CENTRE * self.MODEL_SCALE * s
        scale0, centre0, kappa0 = self._quiet
        grow = 1.0
        if np.isfinite(self.kappa) and np.isfinite(kappa0) and kappa0 > 0:
            grow = max(float(np.sqrt(self.kappa / kappa0)), 1.0)
        return self._inflation * scale0 * grow, self._inflation * centre0 * grow

    def learn(self, judged: PlaneJudgement, alarm: bool) -> None:
        """Take a judged frame into the quiet statistics (while learning, if quiet)."""
        if self._quiet is not None or self._frames <= 0 or alarm or not np.isfinite(judged.raw_scale):
            return
        self._seen.append((max(judged.raw_scale, self._floor), judged.median, self.kappa))
        if len(self._seen) >= self._frames:
            b = np.array(self._seen)
            kappa0 = float(np.nanmedian(b[:, 2])) if np.isfinite(b[:, 2]).any() else float("nan")
            self._quiet = (float(np.max(b[:, 0])), float(np.max(b[:, 1])), kappa0)
