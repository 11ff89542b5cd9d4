"""Cumulative correlation of a sequence against a reference that moves only when needed.

A precursor that grows a little per frame must add up: every new frame is correlated
against the current reference (not the previous frame), so the measured field is the
accumulated one.  The reference moves to the previous frame only when the correlation
against it degrades (the material's texture changed too much), and the accumulated field
is carried across the move: the tracked points are correlated at their current positions
in the new reference and the deformation is composed, ``F_total = F_increment F_before``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import map_coordinates

from ._engine import CorrelationResult
from ._status import PointStatus

__all__ = ["TrackedField", "ReferenceTracker", "warp_mask"]

Correlate = Callable[..., CorrelationResult]


def warp_mask(mask: NDArray, points: NDArray, displacement: NDArray,
              grid_shape: tuple[int, ...] | None) -> NDArray[np.bool_]:
    """Carry a reference ROI mask along with the material into a later reference.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W) or (Z, Y, X)
        ROI on the first reference.
    points : ndarray, shape (N, d)
        Points on the first reference.
    displacement : ndarray, shape (N, d)
        Displacement of the points into the later frame (NaN where lost).
    grid_shape : tuple of int or None
        Grid of `points` (then the field is interpolated multilinearly); None: the ROI is
        moved by the median displacement.

    Returns
    -------
    ndarray of bool, same shape as `mask`
        ``mask_new(y) = mask(y - u(y))`` (the displacement evaluated at y; fine for small
        displacement gradients).
    """
    mask = np.asarray(mask, dtype=bool)
    d = mask.ndim
    good = np.all(np.isfinite(displacement), axis=1)
    if not good.any():
        return mask.copy()
    med = np.median(displacement[good], axis=0)
    coords = np.indices(mask.shape, dtype=np.float64)
    if grid_shape is not None and all(n >= 2 for n in grid_shape):
        u = np.where(good[:, None], displacement, med).reshape(tuple(grid_shape) + (d,))
        grid = points.reshape(tuple(grid_shape) + (d,))
        origin = grid[(0,) * d]
        spacing = [grid[tuple(1 if a == ax else 0 for a in range(d))][ax] - origin[ax] for ax in range(d)]
        gc = np.array([(coords[ax] - origin[ax]) / spacing[ax] for ax in range(d)])
        shift = np.array([map_coordinates(u[..., ax], gc, order=1, mode="nearest") for ax in range(d)])
    else:
        shift = np.array([np.full(mask.shape, med[ax]) for ax in range(d)])
    src = coords - shift
    return map_coordinates(mask.astype(np.float64), src, order=0, mode="constant", cval=0.0) > 0.5


@dataclass(frozen=True, eq=False)
class TrackedField:
    """One frame tracked against the base reference.

    Attributes
    ----------
    result : CorrelationResult
        The correlation of the frame against the current reference (its `points` are the
        tracked positions in that reference).
    displacement : ndarray, shape (N, d)
        Accumulated displacement of the base points (NaN where lost).
    gradient : ndarray, shape (N, d, d)
        Accumulated displacement gradient ``F_total - I``.
    converged : ndarray, shape (N,), bool
        Tracked through every reference so far and OK in this frame.
    status : ndarray, shape (N,), int8
        `PointStatus` (NOT_CONVERGED for points lost in an earlier reference).
    reference_updated : bool
        The reference moved to the previous frame for this frame.
    n_updates : int
        Reference moves so far.
    """

    result: CorrelationResult
    displacement: NDArray[np.float64]
    gradient: NDArray[np.float64]
    converged: NDArray[np.bool_]
    status: NDArray[np.int8]
    reference_updated: bool
    n_updates: int


class ReferenceTracker:
    """Correlate frames cumulatively, moving the reference only when correlation degrades.

    Parameters
    ----------
    base : ndarray
        The first reference (image or volume).
    correlate : callable
        ``correlate(reference, frame, points=..., mask=..., initial_displacement=...) ->
        CorrelationResult`` with the engine options already bound (e.g. a
        `functools.partial` of `vision.correlate`); `initial_displacement` is passed only
        for warm starts.
    points : ndarray, shape (N, d)
        Points on `base` to track.
    grid_shape : tuple of int or None
        Grid of `points` (used to warp `mask`).
    mask : ndarray of bool, optional
        ROI on `base`; carried along with the material into later references.
    mode : {"cumulative", "incremental"}, optional
        "incremental": always correlate against the previous frame (the reference moves
        every frame).
    update_zncc : float, optional
        Move the reference when the median ZNCC drops below this.
    update_residual_ratio : float, optional
        Move the reference when the median ``1 - zncc`` exceeds this multiple of its value
        in the first tracked frame (noise-independent: the texture changed).
    update_valid_drop : float, optional
        Move the reference when the share of converged points falls by more than this
        below its value in the first tracked frame.
    warm_start : bool, optional
        Start each frame from the previous frame's displacement against the same
        reference (no seed search); the seeded correlation is run instead when the warm
        start converges at more than 5 % fewer points than the previous frame.
    """

    def __init__(self, base: NDArray, *, correlate: Correlate, points: NDArray, grid_shape: tuple[int, ...] | None,
                 mask: NDArray | None = None, mode: str = "cumulative", update_zncc: float | None = None,
                 update_residual_ratio: float | None = None, update_valid_drop: float | None = None,
                 warm_start: bool = True) -> None:
        if mode not in ("cumulative", "incremental"):
            raise ValueError(f"mode must be 'cumulative' or 'incremental', got {mode!r}")
        self._correlate = correlate
        self._base = base
        self._pts = np.asarray(points, dtype=np.float64)
        self._grid_shape = grid_shape
        self._mask = None if mask is None else np.asarray(mask, dtype=bool)
        self._mode = mode
        self._update_zncc = update_zncc
        self._ratio = update_residual_ratio
        self._drop = update_valid_drop
        self._warm_start = bool(warm_start)
        n, d = self._pts.shape
        eye = np.eye(d)
        # the current reference: image, positions of the base points in it, total F, trusted
        self._cur = (base, np.zeros((n, d)), np.broadcast_to(eye, (n, d, d)).copy(), np.ones(n, dtype=bool))
        self._prev: tuple | None = None
        self._baseline: tuple[float, float] | None = None  # (median 1 - zncc, converged share)
        self._n_updates = 0
        self._warm: NDArray | None = None  # last increment against the current reference

    @property
    def reference(self) -> NDArray:
        """The current reference frame."""
        return self._cur[0]

    @property
    def n_updates(self) -> int:
        """Reference moves so far."""
        return self._n_updates

    def _track(self, state: tuple, image: NDArray, warm: NDArray | None = None) -> tuple:
        ref_img, disp0, f0, ok0 = state
        where = self._pts + np.nan_to_num(disp0)
        mask = self._mask
        if mask is not None and ref_img is not self._base:
            mask = warp_mask(mask, self._pts, disp0, self._grid_shape)
        res = None
        if warm is not None and np.isfinite(warm).all(axis=1).mean() > 0.5:
            # warm start from the previous frame's increment: no seed search; kept only
            # if it converges about as well as the previous frame did
            guess = np.where(np.isfinite(warm), warm, np.nanmedian(warm, axis=0))
            res = self._correlate(ref_img, image, points=where, mask=mask, initial_displacement=guess)
            prev_share = float(np.mean(np.isfinite(warm).all(axis=1)))
            if np.mean(res.converged) < prev_share - 0.05:
                res = None
        if res is None:
            res = self._correlate(ref_img, image, points=where, mask=mask)
        d = self._pts.shape[1]
        f_inc = np.eye(d) + res.gradient
        disp = disp0 + res.displacement
        f_tot = np.einsum("nij,njk->nik", f_inc, f0)
        ok = res.converged & ok0
        disp[~ok] = np.nan
        f_tot[~ok] = np.nan
        return res, disp, f_tot, ok

    def _degraded(self, res: CorrelationResult, ok0: NDArray) -> bool:
        z = res.zncc[ok0 & np.isfinite(res.zncc)]
        share = float(np.mean(res.converged[ok0])) if ok0.any() else 0.0
        if self._update_zncc is not None and not (z.size and np.median(z) >= self._update_zncc):
            return True
        if self._baseline is None:
            return False
        resid0, share0 = self._baseline
        if self._ratio is not None and z.size and (1.0 - np.median(z)) > self._ratio * max(resid0, 1e-6):
            return True
        return self._drop is not None and share < share0 - self._drop

    def track(self, image: NDArray) -> TrackedField:
        """Correlate one frame; returns the field accumulated since the base reference."""
        updated = False
        if self._mode == "incremental" and self._prev is not None:
            self._cur = self._prev
            updated = True
            self._n_updates += 1
        warm = None if updated else self._warm
        res, disp, f_tot, ok = self._track(self._cur, image, warm)
        if (self._mode == "cumulative" and self._prev is not None and self._prev[0] is not self._cur[0]
                and self._degraded(res, self._cur[3])):
            self._cur = self._prev
            updated = True
            self._n_updates += 1
            res, disp, f_tot, ok = self._track(self._cur, image)
        inc = np.where(res.converged[:, None], res.displacement, np.nan)
        self._warm = inc if self._warm_start else None
        if self._baseline is None:
            z = res.zncc[res.converged]
            self._baseline = (float(1.0 - np.median(z)) if z.size else 1.0, float(np.mean(res.converged)))
        self._prev = (image, disp, f_tot, ok)
        # lost in an earlier reference but fine now: not trackable, report NOT_CONVERGED
        status = np.where(ok | (res.status != PointStatus.OK), res.status, PointStatus.NOT_CONVERGED)
        d = self._pts.shape[1]
        return TrackedField(result=res, displacement=disp, gradient=f_tot - np.eye(d), converged=ok,
                            status=status.astype(np.int8), reference_updated=updated, n_updates=self._n_updates)
