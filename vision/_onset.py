"""Streaming crack-onset detection from 2D DIC, cumulative against a reference frame.

Before a mud crack opens, the material on its two sides already moves apart (a fraction
of a pixel, decaying over a band much wider than the future gap) while no gap is visible.
A precursor that grows a little per frame must add up, so every frame is correlated
against a reference frame (not against the previous frame); the reference moves on only
when the correlation against it degrades, carrying the accumulated field across
(`correlation.ReferenceTracker`).  `OnsetDetector` removes the background motion (camera
shake and drift, uniform shrinkage) with a robust affine fit, measures the tensile jump of
the residual field across every grid point (`correlation.opening_map`), judges it with
robust z-scores against the map's own noise (`correlation.judge_plane`), clusters hot grid
points into predicted crack sites (`correlation.find_sites`) and declares onset when a
frame holds a site (persistence 1 by default; latched).

`update_field` takes plain arrays (grid points, displacement, convergence), so the
detector can be driven by ground-truth displacement fields as well as by the DIC engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import NDArray

from correlation import (QuietNoise, ReferenceTracker, default_grid, find_sites, judge_plane, opening_map,
                         remove_background)

__all__ = ["OnsetDetector", "OnsetEstimate"]

_BACKGROUNDS = ("affine", "rigid", "translation", "none")


@dataclass(frozen=True, eq=False)
class OnsetEstimate:
    """The detector's state after one frame.

    Attributes
    ----------
    t_min : float
        Process time of the frame, min.
    score : float
        Risk score of the frame: mean robust z of the three largest opening values (0
        when nothing stands out).
    alarm : bool
        The frame alone is alarming (it holds at least one site).
    onset : bool
        Onset declared (at this or an earlier frame); stays True once declared.
    onset_time : float or None
        ``t_min`` of the frame at which onset was declared, None before.
    sites : ndarray, shape (K, 2), float
        Predicted crack sites (row, col), px in the reference frame, strongest first;
        shape (0, 2) when none.
    site_jump_px : ndarray, shape (K,), float
        Opening (tensile jump of the residual field) at each site, px.
    site_z : ndarray, shape (K,), float
        Robust z-score of each site.
    mask : ndarray, shape (H, W), bool
        Predicted crack zone (the kept hot grid cells painted onto the frame).
    background : ndarray, shape (2, 3), float
        Removed background motion ``u = B @ [1, row - row0, col - col0]``: column 0 the
        translation (px) at ``background_centre``, columns 1-2 the displacement gradient
        (px/px; uniform shrinkage shows as negative diagonal).
    background_centre : ndarray, shape (2,), float
        (row0, col0), px.
    jump_map : ndarray, shape (R, C), float
        Opening across each grid point, px (`correlation.opening_map`; NaN where no pair
        of trusted points).
    z_map : ndarray, shape (R, C), float
        Robust z-score of `jump_map`.
    residual : ndarray, shape (R, C, 2), float
        Accumulated displacement minus the background, px (NaN where not trusted).
    grid_points : ndarray, shape (R, C, 2), float
        (row, col) px of the grid points.
    z_max : float
        Largest z-score.
    n_hot : int
        Number of grid points with z and opening above threshold.
    median, scale : float
        Robust centre and scale (px) the opening was judged against.
    consecutive : int
        Number of consecutive alarming frames up to this one.
    valid_fraction : float
        Fraction of grid points with a trusted displacement.
    reference_updates : int
        Times the correlation reference moved on so far.
    max_jump_um : float or None
        Largest opening in um (None when ``um_per_px`` was not given).
    """

    t_min: float
    score: float
    alarm: bool
    onset: bool
    onset_time: float | None
    sites: NDArray[np.float64]
    site_jump_px: NDArray[np.float64]
    site_z: NDArray[np.float64]
    mask: NDArray[np.bool_]
    background: NDArray[np.float64]
    background_centre: NDArray[np.float64]
    jump_map: NDArray[np.float64]
    z_map: NDArray[np.float64]
    residual: NDArray[np.float64]
    grid_points: NDArray[np.float64]
    z_max: float
    n_hot: int
    median: float
    scale: float
    consecutive: int
    valid_fraction: float
    reference_updates: int = 0
    max_jump_um: float | None = None


def _check_frame(name: str, image: object, shape: tuple[int, int] | None = None) -> NDArray:
    """A 2D real, finite image (not copied unless needed); ValueError naming ``name``."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2D greyscale image, found an array with ndim {arr.ndim}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) \
            or arr.dtype == np.bool_:
        raise ValueError(f"{name}: expected a real (integer or float) image, found dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or inf")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name}: shape {arr.shape} does not match the reference shape {shape}")
    return arr


def _positive(name: str, value: object, *, integer: bool = False, minimum: float = 0.0,
              allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = np.isfinite(v) and (v >= minimum if allow_zero else v > minimum)
        if integer:
            ok = ok and v == int(v)
    if not ok:
        kind = "an integer" if integer else "a finite number"
        rel = ">=" if allow_zero else ">"
        raise ValueError(f"{name}: expected {kind} {rel} {minimum:g}, found {value!r}")
    return float(value)  # type: ignore[arg-type]


class OnsetDetector:
    """Streaming crack-onset detector: cumulative DIC of each frame against a reference.

    Parameters
    ----------
    reference : ndarray, shape (H, W)
        Reference frame (crack free), any real dtype; copied.
    subset_size : int, optional
        DIC subset width, px (odd, >= 7).
    step : int, optional
        DIC grid step, px.
    um_per_px : float, optional
        Pixel size, um; only used to report `OnsetEstimate.max_jump_um`.
    background : {"affine", "rigid", "translation", "none"}, optional
        Background motion removed by a robust fit before localisation: "affine" discounts
        camera shake and drift (translation, small rotation) and uniform shrinkage.
    z_threshold : float, optional
        Robust z-score above which a grid point is hot.
    min_jump_px : float, optional
        Opening a hot grid point must also exceed, px: five times the DIC noise floor of
        ~0.01 px per point.  With the default 31 px subsets a precursor opening across a
        crack, spread over a band of 20-40 px, shows as a jump of 0.35-0.9 times the
        opening between the grid points on either side.
    min_cells : int, optional
        Smallest cluster of hot grid points (8-connected) kept as a site (a crack is a
        line; isolated points are texture artefacts).
    persistence : int, optional
        Consecutive alarming frames needed to declare onset (latched afterwards).
    baselines : tuple of int, optional
        Baselines of the opening map, grid steps (even).
    along : int, optional
        Half length, grid steps, of the average of the opening along the crack line
        (`correlation.opening_map`): the noise of 7 points averages down by ~2.5.
    baseline_frames : int, optional
        Number of first quiet frames whose robust centre and scale set the caps.
    baseline_inflation : float, optional
        The caps are this multiple of the largest quiet-frame centre and scale, times the
        square root of the growth of the correlation's residual variance since then (the
        DIC random error grows with it).
    jump_floor_px : float, optional
        Lower bound of the robust scale of the opening map, px (noiseless frames).
    site_separation : float, optional
        Minimum distance between predicted sites, px; default ``subset_size``.
    update_residual_ratio : float, optional
        The reference moves on when the median ``1 - zncc`` exceeds this multiple of its
        value in the first frame (the texture changed, e.g. the drying surface; a
        half-pixel shift of real, aliased texture alone raises it up to ~4x, and every
        update adds its correlation error to the accumulated field, so updates are rare).
    update_valid_drop : float, optional
        ... or when the share of trusted points falls by more than this.

    Raises
    ------
    ValueError
        On a bad reference or option (the message names it).

    Notes
    -----
    Per frame (`update`): DIC (`vision.correlate` defaults: quintic B-splines, Gaussian
    prefilter, noise-aware gate) of the tracked grid points against the current reference,
    accumulated since the first reference; a robust affine background (Tukey IRLS) is
    removed; the opening map is the largest tensile jump across each grid point over the
    grid axes and diagonals at baselines of 2 and 4 steps, averaged over 7 grid points
    along the crack line; robust z-scores
    ``(J - median) / s`` with ``s`` the one-sided lower-half MAD, floored at
    `jump_floor_px` and, after `baseline_frames` quiet frames, the centre and scale capped
    at `baseline_inflation` times theirs, followed with the correlation's residual
    variance (a precursor network covering most of a frame must not inflate its own
    scale); hot points (z and opening above threshold) in
    clusters of >= `min_cells` hold the sites (local maxima, `site_separation` apart).
    Flicker and illumination gradients change neither the displacement nor (ZNCC being
    invariant to a gain and offset) the correlation quality.

    References
    ----------
    Dawson et al., EES Batteries (2026), DOI 10.1039/d5eb00201j (DVC of drying coatings:
    displacement above background before cracks are visible; reference scan before
    cracking, deformed scans after).

    Examples
    --------
    >>> det = OnsetDetector(reference_frame)  # doctest: +SKIP
    >>> est = det.update(frame, 39.5)  # doctest: +SKIP
    >>> est.onset, est.sites.shape  # doctest: +SKIP
    (False, (0, 2))
    """

    def __init__(self, reference: NDArray, *, subset_size: int = 31, step: int = 10,
                 um_per_px: float | None = None, background: str = "affine", z_threshold: float = 8.0,
                 min_jump_px: float = 0.05, min_cells: int = 3, persistence: int = 1,
                 baselines: tuple[int, ...] = (2, 4), along: int = 3, baseline_frames: int = 2,
                 baseline_inflation: float = 1.25, jump_floor_px: float = 0.003, site_separation: float | None = None,
                 update_residual_ratio: float = 8.0, update_valid_drop: float = 0.15) -> None:
        ref = _check_frame("reference", reference)
        subset = int(_positive("subset_size", subset_size, integer=True, minimum=7, allow_zero=True))
        if subset % 2 == 0:
            raise ValueError(f"subset_size: expected an odd integer >= 7, found {subset_size!r}")
        if min(ref.shape) < subset + 4:
            raise ValueError(f"reference: shape {ref.shape} is too small for subset_size {subset}")
        if float(np.ptp(ref)) == 0.0:
            raise ValueError("reference: the image is constant (no texture to correlate)")
        self._step = int(_positive("step", step, integer=True, minimum=1, allow_zero=True))
        self._subset = subset
        self._um_per_px = None if um_per_px is None else _positive("um_per_px", um_per_px)
        if background not in _BACKGROUNDS:
            raise ValueError(f"background: expected one of {_BACKGROUNDS}, found {background!r}")
        self._background = background
        self._z = _positive("z_threshold", z_threshold)
        self._min_jump = _positive("min_jump_px", min_jump_px, allow_zero=True)
        self._min_cells = int(_positive("min_cells", min_cells, integer=True, minimum=1, allow_zero=True))
        self._persistence = int(_positive("persistence", persistence, integer=True, minimum=1, allow_zero=True))
        try:
            self._baselines = tuple(int(b) for b in baselines)
        except (TypeError, ValueError):
            raise ValueError(f"baselines: expected even grid steps, found {baselines!r}") from None
        if not self._baselines or any(b <= 0 or b % 2 for b in self._baselines):
            raise ValueError(f"baselines: expected positive even grid steps, found {baselines!r}")
        self._along = int(_positive("along", along, integer=True, allow_zero=True))
        self._baseline_frames = int(_positive("baseline_frames", baseline_frames, integer=True, allow_zero=True))
        self._inflation = _positive("baseline_inflation", baseline_inflation, minimum=1.0, allow_zero=True)
        self._floor = _positive("jump_floor_px", jump_floor_px)
        self._separation = float(subset) if site_separation is None else _positive("site_separation",
                                                                                   site_separation)
        ratio = _positive("update_residual_ratio", update_residual_ratio, minimum=1.0)
        drop = _positive("update_valid_drop", update_valid_drop, allow_zero=True)
        self._reference = np.array(ref, copy=True)
        self._reference.setflags(write=False)
        self._points, self._grid_shape = default_grid(ref.shape, subset // 2, self._step)
        if len(self._points) < 9:
            raise ValueError(f"reference: shape {ref.shape} gives fewer than 9 grid points at step {self._step}")
        self._tracker = ReferenceTracker(self._reference, correlate=partial(_correlate, subset_size=subset,
                                                                            step=self._step),
                                         points=self._points, grid_shape=self._grid_shape,
                                         update_residual_ratio=ratio, update_valid_drop=drop)
        # streaming state
        self._n_frames = 0
        self._noise = QuietNoise(frames=self._baseline_frames, inflation=self._inflation, floor=self._floor)
        self._consecutive = 0
        self._onset_time: float | None = None
        self._last_t: float | None = None

    # ----------------------------------------------------------------- properties
    @property
    def reference(self) -> NDArray:
        """The first reference frame (read-only)."""
        return self._reference

    @property
    def onset(self) -> bool:
        """Onset declared (latched)."""
        return self._onset_time is not None

    @property
    def onset_time(self) -> float | None:
        """``t_min`` at which onset was declared, None before."""
        return self._onset_time

    @property
    def n_frames(self) -> int:
        """Number of frames processed."""
        return self._n_frames

    # ----------------------------------------------------------------- core
    def update(self, frame: NDArray, t_min: float) -> OnsetEstimate:
        """Process one frame.

        Parameters
        ----------
        frame : ndarray, shape (H, W)
            The new frame (same shape as the reference); not modified.
        t_min : float
            Process time of the frame, min (non-decreasing over calls).

        Returns
        -------
        OnsetEstimate

        Raises
        ------
        ValueError
            If `frame` is not a 2D real image of the reference shape or `t_min` is not
            finite or goes back in time.
        """
        img = _check_frame("frame", frame, self._reference.shape)
        t = self._check_time(t_min)
        tf = self._tracker.track(img)
        self._noise.observe(tf.result, tf.reference_updated)
        return self._assess(self._points, tf.displacement, tf.converged, t, self._grid_shape,
                            self._tracker.n_updates)

    def update_field(self, points: NDArray, displacement: NDArray, zncc: NDArray | None = None,
                     converged: NDArray | None = None, *, t_min: float, grid_shape: tuple[int, int]) -> OnsetEstimate:
        """Process one displacement field (DIC output or ground truth) of a frame.

        Parameters
        ----------
        points : ndarray, shape (N, 2)
            Regular grid points (row, col), px, row-major, ``N = R * C``.
        displacement : ndarray, shape (N, 2)
            Displacement relative to the reference (row, col), px; NaN where unknown.
        zncc : ndarray, shape (N,), optional
            Correlation quality; points with a NaN ZNCC are not trusted (None: all).
        converged : ndarray, shape (N,), bool, optional
            Trusted points (None: all finite ones).
        t_min : float
            Process time, min.
        grid_shape : tuple of int
            (R, C).

        Returns
        -------
        OnsetEstimate

        Raises
        ------
        ValueError
            On inconsistent shapes or a bad time (the message names the argument).
        """
        R, C = (int(v) for v in grid_shape)
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape != (R * C, 2):
            raise ValueError(f"points: expected shape ({R * C}, 2) for grid_shape {grid_shape}, found {pts.shape}")
        u = np.asarray(displacement, dtype=np.float64)
        if u.shape != pts.shape:
            raise ValueError(f"displacement: expected shape {pts.shape}, found {u.shape}")
        ok = np.ones(len(pts), dtype=bool) if converged is None else np.asarray(converged, dtype=bool).ravel()
        if ok.shape != (len(pts),):
            raise ValueError(f"converged: expected shape ({len(pts)},), found {np.shape(converged)}")
        if zncc is not None:
            q = np.asarray(zncc, dtype=np.float64).ravel()
            if q.shape != (len(pts),):
                raise ValueError(f"zncc: expected shape ({len(pts)},), found {np.shape(zncc)}")
            ok = ok & np.isfinite(q)
        t = self._check_time(t_min)
        return self._assess(pts, u, ok & np.all(np.isfinite(u), axis=1), t, (R, C), 0)

    def _check_time(self, t_min: float) -> float:
        if isinstance(t_min, bool) or not isinstance(t_min, (int, float, np.integer, np.floating)) \
                or not np.isfinite(float(t_min)):
            raise ValueError(f"t_min: expected a finite time in minutes, found {t_min!r}")
        t = float(t_min)
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"t_min: {t} goes back in time (previous frame at {self._last_t})")
        return t

    def _assess(self, pts: NDArray, disp: NDArray, valid: NDArray, t: float, grid_shape: tuple[int, int],
                n_updates: int) -> OnsetEstimate:
        n = len(pts)
        u = np.where(valid[:, None], disp, np.nan)
        params = np.zeros((2, 3))
        centre = pts.mean(axis=0) if n else np.zeros(2)
        residual = np.full((n, 2), np.nan)
        if self._background == "none":
            residual = u
        elif valid.sum() >= 8:
            fit = remove_background(pts, u, model=self._background, valid=valid)
            residual = fit.residual
            centre = fit.centre
            params[:, 0] = fit.translation
            params[:, 1:] = fit.matrix - np.eye(2)
        res_grid = residual.reshape(*grid_shape, 2)
        jump = opening_map(res_grid, plane_axes=(0, 1), baselines=self._baselines, along=self._along)
        cap, centre_cap = self._noise.caps()
        judged = judge_plane(jump, z_threshold=self._z, min_value=self._min_jump, floor=self._floor, cap=cap,
                             centre_cap=centre_cap)
        sites = find_sites(jump, judged.hot, min_cells=self._min_cells,
                           separation_cells=self._separation / self._step)
        grid = pts.reshape(*grid_shape, 2)
        site_xy = grid[tuple(sites.index.T)] if len(sites.index) else np.zeros((0, 2))
        alarm = len(sites.index) > 0
        self._last_t = t
        self._n_frames += 1
        self._noise.learn(judged, alarm)
        self._consecutive = self._consecutive + 1 if alarm else 0
        if self._onset_time is None and self._consecutive >= self._persistence:
            self._onset_time = t
        fin = np.isfinite(jump)
        max_jump = float(np.nanmax(jump)) if fin.any() else float("nan")
        zf = judged.z[np.isfinite(judged.z)]
        return OnsetEstimate(
            t_min=t, score=judged.score, alarm=alarm, onset=self.onset, onset_time=self._onset_time,
            sites=np.asarray(site_xy, dtype=np.float64).reshape(-1, 2), site_jump_px=sites.strength,
            site_z=judged.z[tuple(sites.index.T)] if len(sites.index) else np.zeros(0),
            mask=self._paint(sites.hot, grid), background=params, background_centre=np.asarray(centre, float),
            jump_map=jump, z_map=judged.z, residual=res_grid, grid_points=grid,
            z_max=float(zf.max()) if zf.size else float("nan"), n_hot=int(judged.hot.sum()),
            median=judged.median, scale=judged.scale, consecutive=self._consecutive,
            valid_fraction=float(valid.mean()) if n else 0.0, reference_updates=int(n_updates),
            max_jump_um=None if self._um_per_px is None else max_jump * self._um_per_px)

    def _paint(self, hot: NDArray, grid: NDArray) -> NDArray[np.bool_]:
        """The hot grid cells (step x step around each hot point) as a frame mask."""
        h, w = self._reference.shape
        mask = np.zeros((h, w), dtype=bool)
        if not hot.any():
            return mask
        half = self._step / 2.0
        for r, c in grid[hot]:
            mask[max(int(np.floor(r - half)), 0):int(np.ceil(r + half)),
                 max(int(np.floor(c - half)), 0):int(np.ceil(c + half))] = True
        return mask


def _correlate(reference: NDArray, frame: NDArray, *, points: NDArray, mask: NDArray | None, subset_size: int,
               step: int, initial_displacement: NDArray | None = None):
    from ._correlate import correlate

    return correlate(reference, frame, points=points, mask=mask, subset_size=subset_size, step=step,
                     initial_displacement=initial_displacement)
