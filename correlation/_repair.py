"""Reliability-guided repair and outlier restart, written once for every engine.

Both work on a field of shape functions (one row per point) through two callables, so
the in-memory engines and the out-of-core driver share them:

* ``solve(idx, init) -> (params, zncc, iterations, status)`` runs IC-GN at the points
  ``idx`` from the shape functions ``init``;
* ``neighbours(idx) -> table`` gives the padded (-1) neighbour table of those points.

References
----------
B. Pan, "Reliability-guided digital image correlation for image deformation
measurement", Appl. Opt. 48, 1535-1542 (2009). https://doi.org/10.1364/AO.48.001535
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ._field import median_test_rows, nan_median_axis1
from ._status import PointStatus
from ._warp import shift_params

__all__ = ["Field", "repair", "restart_outliers"]

Solve = Callable[[NDArray[np.int64], NDArray[np.float64]], tuple]
Neighbours = Callable[[NDArray[np.int64]], NDArray[np.int64]]


class Field:
    """The mutable state of a correlated point cloud (arrays updated in place).

    Attributes
    ----------
    centres : ndarray, shape (N, d), float64
        Subset centres (integer positions).
    params, zncc, iterations, status : ndarray
        Shape functions at the centres (N, P), ZNCC (N,), IC-GN iterations (N,) and
        `PointStatus` codes (N,).
    threshold : ndarray, shape (N,)
        Per-point ZNCC gate.
    """

    def __init__(self, centres: NDArray, params: NDArray, zncc: NDArray, iterations: NDArray,
                 status: NDArray, threshold: NDArray) -> None:
        self.centres = np.asarray(centres, dtype=np.float64)
        self.params, self.zncc, self.iterations, self.status = params, zncc, iterations, status
        self.threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), zncc.shape)

    def good(self, idx=slice(None)) -> NDArray[np.bool_]:
        """Converged and above the gate."""
        return (self.status[idx] == PointStatus.OK) & (self.zncc[idx] >= self.threshold[idx])

    def update(self, idx: NDArray, p: NDArray, z: NDArray, it: NDArray, s: NDArray | None = None) -> None:
        self.params[idx], self.zncc[idx], self.iterations[idx] = p, z, it
        if s is not None:
            self.status[idx] = s

    def displacement(self) -> NDArray[np.float64]:
        """Displacement at the centres of the converged points (NaN elsewhere)."""
        d = self.centres.shape[1]
        b = self.params.shape[1] // d
        u = self.params[:, 0::b][:, :d].copy()
        u[self.status != PointStatus.OK] = np.nan
        return u


def _batches(idx: NDArray, size: int):
    for start in range(0, len(idx), size):
        yield idx[start:start + size]


def repair(field: Field, solve: Solve, neighbours: Neighbours, candidates: NDArray[np.bool_], *,
           todo: NDArray[np.bool_] | None = None, batch: int = 1 << 16) -> None:
    """Reliability-guided repair (in place): grow from good points into failed ones.

    Points that failed or sit below the gate are retried, in waves, from the shape
    function of their best (highest ZNCC) neighbour that turned good in the previous wave,
    extrapolated to the point; a retry is kept when it converges with a higher ZNCC (or
    the point had not converged).

    Parameters
    ----------
    field : Field
        The point cloud (updated in place).
    solve, neighbours : callable
        See the module docstring.
    candidates : ndarray of bool, shape (N,)
        Points that may be repaired (not masked, inside).
    todo : ndarray of bool, shape (N,), optional
        Points to retry in the first wave (default: every failed candidate).
    batch : int, optional
        Points per neighbour query (bounds the memory of the neighbour tables).
    """
    good = field.good()
    if todo is None:
        todo = candidates & ~good
    else:
        todo = todo & candidates & ~good
    if not todo.any() or not good.any():
        return
    fresh = good.copy()
    while True:
        cand, src = [], []
        for rows in _batches(np.flatnonzero(todo), batch):
            nb = neighbours(rows)
            ok = (nb >= 0) & fresh[np.where(nb >= 0, nb, 0)]
            has = ok.any(axis=1)
            if not has.any():
                continue
            z = np.where(ok, field.zncc[np.where(nb >= 0, nb, 0)], -np.inf)
            z = np.where(np.isnan(z), -np.inf, z)
            best = nb[np.arange(len(rows)), np.argmax(z, axis=1)]
            cand.append(rows[has])
            src.append(best[has])
        if not cand:
            return
        cand_a = np.concatenate(cand)
        src_a = np.concatenate(src)
        init = shift_params(field.params[src_a], field.centres[cand_a] - field.centres[src_a])
        p, z, it, s = solve(cand_a, init)
        conv = s == PointStatus.OK
        ok = conv & (z >= field.threshold[cand_a])
        better = conv & ((z > np.nan_to_num(field.zncc[cand_a], nan=-2.0))
                         | (field.status[cand_a] != PointStatus.OK))
        field.update(cand_a[better], p[better], z[better], it[better], s[better])
        todo[cand_a] = False  # tried; retried only if a neighbour turns good later
        fresh = np.zeros(len(todo), dtype=bool)
        fresh[cand_a[ok]] = True
        if not fresh.any():
            return
        good = field.good()
        for rows in _batches(np.flatnonzero(fresh), batch):
            nb = neighbours(rows).ravel()
            nb = nb[nb >= 0]
            todo[nb] |= ~good[nb] & candidates[nb]


def restart_outliers(field: Field, solve: Solve, neighbours: Neighbours, *, threshold: float,
                     noise_level: float, batch: int = 1 << 16) -> NDArray[np.bool_]:
    """Normalised-median-test outliers restart from their neighbours' median; flag the rest.

    Returns the mask of points flagged OUTLIER (their status is set in place).
    """
    n = len(field.zncc)
    disp = field.displacement()
    valid = np.flatnonzero(np.all(np.isfinite(disp), axis=1))
    bad = np.zeros(n, dtype=bool)
    for rows in _batches(valid, batch):
        bad[rows] = median_test_rows(disp, neighbours(rows), rows, threshold, noise_level)
    idx = np.flatnonzero(bad)
    if len(idx) == 0:
        return bad
    init = field.params[idx].copy()
    for start in range(0, len(idx), batch):
        rows = idx[start:start + batch]
        nb = neighbours(rows)
        use = (nb >= 0)
        safe = np.where(use, nb, 0)
        use &= np.all(np.isfinite(disp[safe]), axis=2) & ~bad[safe]
        flat_src = safe.ravel()
        flat_dst = np.repeat(rows, nb.shape[1])
        shifted = shift_params(field.params[flat_src], field.centres[flat_dst] - field.centres[flat_src])
        shifted = shifted.reshape(len(rows), nb.shape[1], -1)
        shifted[~use] = np.nan
        have = use.any(axis=1)
        if have.any():
            init[start:start + len(rows)][have] = nan_median_axis1(shifted[have])
    p, z, it, s = solve(idx, init)
    take = (s == PointStatus.OK) & (z >= field.threshold[idx])
    field.update(idx[take], p[take], z[take], it[take])
    disp = field.displacement()
    still = median_test_rows(disp, neighbours(idx), idx, threshold, noise_level)
    flagged = np.zeros(n, dtype=bool)
    flagged[idx[still]] = True
    field.status[flagged] = PointStatus.OUTLIER
    return flagged
