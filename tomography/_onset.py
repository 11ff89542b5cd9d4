"""Streaming crack-onset prediction from DVC between CT scans of a drying coating.

Before a mud crack opens, the particle layer on its two sides already moves apart (a
fraction of a voxel to a few voxels, decaying away from the future crack) while no gap
is visible in the grey values.  As in the published DVC (reference scan before cracking,
every later scan correlated against it), `OnsetDetector` correlates every new scan
cumulatively against a reference scan that moves on only when the correlation degrades,
carrying the accumulated field across (`correlation.ReferenceTracker`); a precursor that
grows a little per scan therefore adds up.  It removes the background motion (stage
drift and rotation, uniform artefact shifts) with a robust rigid-body fit, measures the
in-plane tensile jump of the residual field across every DVC point
(`correlation.opening_map`, averaged along the crack line), takes the largest over height
per grid column (the crack plane is vertical, so its evidence stacks up), judges it with
robust z-scores against the plane's own noise and that of the quiet scans
(`correlation.judge_plane`), clusters hot columns into predicted sites
(`correlation.find_sites`) and paints them into a plane mask.

Points whose subvolume carries no texture are UNTEXTURED in the engine; points whose
subvolume reaches above the coating's textured top (the moving top surface during
consolidation, and the air or solvent film above it) or below its textured bottom (a
subvolume straddling the rigid substrate and the compacting film) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from correlation import (CorrelationResult, QuietNoise, ReferenceTracker, default_grid, find_sites, judge_plane,
                         noise_std, opening_map, remove_background)

from ._dvc import check_volume, correlate

__all__ = ["CTOnsetEstimate", "OnsetDetector", "textured_layer"]

_BACKGROUNDS = ("rigid", "translation", "affine")


@dataclass(frozen=True, eq=False)
class CTOnsetEstimate:
    """The detector's state after one scan.

    Attributes
    ----------
    t_min : float
        Process time of the scan, min.
    score : float
        Risk score: mean robust z-score of the three hottest plane cells (0 when nothing
        stands out).
    alarm : bool
        This scan alone is alarming (at least one site).
    onset : bool
        Onset declared at this or an earlier scan (latched).
    onset_time : float or None
        ``t_min`` of the scan at which onset was declared.
    sites : ndarray, shape (K, 3), float
        Predicted crack sites (z, y, x), voxels of the first reference, strongest first.
    site_jump_vox : ndarray, shape (K,), float
        In-plane opening at each site, voxels.
    mask : ndarray, shape (Y, X), bool
        Predicted crack zone on the coating plane (hot grid cells painted at the grid
        spacing).
    jump_plane : ndarray, shape (ny, nx), float
        Evidence: largest over height of the in-plane opening per grid column, voxels
        (NaN where no trusted point).
    z_plane : ndarray, shape (ny, nx), float
        Robust z-score of `jump_plane`.
    residual : ndarray, shape (nz, ny, nx, 3), float
        Accumulated displacement minus the background, voxels, on the DVC grid (NaN if
        not trusted).
    grid_points : ndarray, shape (nz, ny, nx, 3), float
        Grid positions (z, y, x), voxels.
    background_matrix, background_translation : ndarray
        The removed background (3 x 3 map and translation at the fit centre, voxels).
    valid_fraction : float
        Share of the tracked grid points with a trusted displacement.
    median_zncc : float
        Median ZNCC of the trusted points.
    reference_updates : int
        Times the correlation reference moved on so far.
    dvc : CorrelationResult
        The DVC of this scan against the current reference.
    """

    t_min: float
    score: float
    alarm: bool
    onset: bool
    onset_time: float | None
    sites: NDArray[np.float64]
    site_jump_vox: NDArray[np.float64]
    mask: NDArray[np.bool_]
    jump_plane: NDArray[np.float64]
    z_plane: NDArray[np.float64]
    residual: NDArray[np.float64]
    grid_points: NDArray[np.float64]
    background_matrix: NDArray[np.float64]
    background_translation: NDArray[np.float64]
    valid_fraction: float
    median_zncc: float
    reference_updates: int
    dvc: CorrelationResult


def _positive(name: str, value: object, *, integer: bool = False, minimum: float = 0.0,
              strict: bool = True) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value) == int(value)  # type: ignore[arg-type]
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = np.isfinite(v) and (v > minimum if strict else v >= minimum)
    if not ok:
        kind = "an int" if integer else "a number"
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be {kind} {rel} {minimum}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def textured_layer(volume: NDArray, snr: float = 2.0, *, window: int = 5) -> tuple[int, int]:
    """Indices of the lowest and highest slices of the textured layer (the coating), voxels.

    A voxel is textured when the grey-value std of its ``window``-cube exceeds ``snr``
    times the noise level (`correlation.noise_std`); the layer spans the slices in which
    most voxels are.  Returns ``(-1, -1)`` when no slice is.
    """
    v = np.asarray(volume, dtype=np.float32)
    mean = ndimage.uniform_filter(v, window, mode="reflect")
    sq = ndimage.uniform_filter(v * v, window, mode="reflect")
    sigma = max(noise_std(v), 1e-12)
    frac = np.mean((sq - mean * mean) > (snr * sigma) ** 2, axis=(1, 2))
    rows = np.flatnonzero(frac > 0.5)
    return (int(rows[0]), int(rows[-1])) if len(rows) else (-1, -1)


class OnsetDetector:
    """Streaming crack-onset detector for CT scans (cumulative DVC against a reference).

    Parameters
    ----------
    reference : ndarray, shape (Z, Y, X)
        First scan (z the coating normal, substrate at low z), any real dtype.
    subset_size : int, optional
        DVC subvolume width, voxels.  17 (not the engine's 21) halves the cost per scan
        and follows a precursor band more closely; the DVC random error (~0.005 voxel)
        stays far below the opening to detect.
    step : int, optional
        DVC grid spacing, voxels.
    background : {"rigid", "translation", "affine"}, optional
        Background motion model removed before localisation.  Rigid (stage drift and
        rotation, uniform reconstruction artefacts) by default: an affine fit absorbs
        part of a crack opening that splits the field of view in two (as a uniform
        strain).
    z_threshold : float, optional
        Robust z-score a plane cell must exceed to be hot.
    min_jump_vox : float, optional
        In-plane opening a hot cell must also exceed, voxels: ten times the DVC noise floor
        (~0.01 voxel; 0.003-0.005 on 2 %-noise scans) and twice the opening of a film that
        comes close to cracking without cracking.  The renderer's precursor bands show as
        0.4-0.9 of the opening between the grid points on either side, so a growing
        precursor is declared at 0.1-0.25 voxel of opening.
    min_cells : int, optional
        Smallest cluster of hot plane cells kept as a site.
    texture_snr : float, optional
        Texture level (grey-value std over the noise) that marks the coating's top.
    top_margin_vox : float, optional
        Subvolumes must stay this far inside the coating's textured layer: below its top
        (the top moves down while the layer consolidates) and above the substrate.
    persistence : int, optional
        Consecutive alarming scans needed to declare onset.
    baselines : tuple of int, optional
        Baselines of the opening map, grid steps (even).
    along : int, optional
        Half length of the average along the crack line, grid steps.
    baseline_scans : int, optional
        First quiet scans whose robust centre and scale set the caps.
    baseline_inflation : float, optional
        The caps are this multiple of the quiet scans' centre and scale, times the square
        root of the growth of the correlation's residual variance.
    jump_floor_vox : float, optional
        Lower bound of the robust scale of the evidence plane, voxels.
    reference_t_min : float, optional
        Time of `reference`, min.
    update_residual_ratio, update_valid_drop : float, optional
        The reference moves on when the median ``1 - zncc`` exceeds this multiple of its
        value in the first scan, or the share of trusted points falls by more than this.

    Notes
    -----
    Per scan: DVC (`tomography.correlate` defaults, noise-aware gate, texture gate) of the
    tracked grid points against the current reference, accumulated since the first
    reference; robust background removal; the opening map (in-plane tensile jump across
    each point over the grid axes and diagonals at baselines of 2 and 4 steps, averaged
    over 5 points along the crack line); largest over height per grid column; robust
    z-score ``(j - median) / s`` over the plane, s the lower-half 1.4826 MAD, floored at
    `jump_floor_vox` and, after `baseline_scans` quiet scans, centre and scale capped at
    `baseline_inflation` times theirs (followed with the correlation's residual variance
    and the errors carried across reference updates); hot cells (z and opening above
    threshold) in clusters of >= `min_cells` hold the sites (local maxima, at the height
    of the largest opening in their column).

    References
    ----------
    Dawson et al., EES Batteries (2026), DOI 10.1039/d5eb00201j.
    """

    def __init__(self, reference: ArrayLike, *, subset_size: int = 17, step: int = 8, background: str = "rigid",
                 z_threshold: float = 8.0, min_jump_vox: float = 0.1, min_cells: int = 3,
                 texture_snr: float = 2.0, top_margin_vox: float = 2.0, persistence: int = 1,
                 baselines: tuple[int, ...] = (2, 4), along: int = 2, baseline_scans: int = 2,
                 baseline_inflation: float = 1.25, jump_floor_vox: float = 0.003,
                 reference_t_min: float | None = None, update_residual_ratio: float = 8.0,
                 update_valid_drop: float = 0.15) -> None:
        ref = check_volume("reference", reference)
        if background not in _BACKGROUNDS:
            raise ValueError(f"background must be 'affine', 'rigid' or 'translation', got {background!r}")
        self._subset = int(_positive("subset_size", subset_size, integer=True, minimum=6))
        if self._subset % 2 == 0:
            raise ValueError(f"subset_size must be odd, got {subset_size!r}")
        self._step = int(_positive("step", step, integer=True, minimum=0))
        self._z_thr = _positive("z_threshold", z_threshold)
        self._min_jump = _positive("min_jump_vox", min_jump_vox, strict=False)
        self._min_cells = int(_positive("min_cells", min_cells, integer=True, minimum=0))
        self._snr = _positive("texture_snr", texture_snr, strict=False)
        self._top_margin = _positive("top_margin_vox", top_margin_vox, strict=False)
        self._persistence = int(_positive("persistence", persistence, integer=True, minimum=0))
        try:
            self._baselines = tuple(int(b) for b in baselines)
        except (TypeError, ValueError):
            raise ValueError(f"baselines must be positive even grid steps, got {baselines!r}") from None
        if not self._baselines or any(b <= 0 or b % 2 for b in self._baselines):
            raise ValueError(f"baselines must be positive even grid steps, got {baselines!r}")
        self._along = int(_positive("along", along, integer=True, strict=False))
        self._baseline_scans = int(_positive("baseline_scans", baseline_scans, integer=True, strict=False))
        self._inflation = _positive("baseline_inflation", baseline_inflation, minimum=1.0, strict=False)
        self._floor = _positive("jump_floor_vox", jump_floor_vox)
        ratio = _positive("update_residual_ratio", update_residual_ratio, minimum=1.0)
        drop = _positive("update_valid_drop", update_valid_drop, strict=False)
        self._background = background
        half = self._subset // 2
        if min(ref.shape) < self._subset + 4:
            raise ValueError(f"reference of shape {ref.shape} is too small for subset_size={self._subset}")
        self._grid, self._grid_shape = default_grid(ref.shape, half, self._step)
        self._reference = ref
        self._last_t = None if reference_t_min is None else _positive("reference_t_min", reference_t_min,
                                                                       strict=False, minimum=-np.inf)
        bottom, top = textured_layer(ref, self._snr)
        self._tracked = ((self._grid[:, 0] + half + self._top_margin <= top)
                         & (self._grid[:, 0] - half - self._top_margin >= bottom))
        if not self._tracked.any():
            self._tracked = np.ones(len(self._grid), dtype=bool)
        self._tracker = ReferenceTracker(ref, correlate=partial(_correlate, subset_size=self._subset,
                                                                step=self._step),
                                         points=self._grid[self._tracked], grid_shape=None,
                                         update_residual_ratio=ratio, update_valid_drop=drop)
        self._onset_time: float | None = None
        self._noise = QuietNoise(frames=self._baseline_scans, inflation=self._inflation, floor=self._floor)
        self._consecutive = 0
        self._n = 0

    @property
    def onset(self) -> bool:
        """True once onset has been declared."""
        return self._onset_time is not None

    @property
    def onset_time(self) -> float | None:
        """Time (min) at which onset was declared, or None."""
        return self._onset_time

    @property
    def n_scans(self) -> int:
        """Number of scans processed by `update`."""
        return self._n

    def update(self, volume: ArrayLike, t_min: float) -> CTOnsetEstimate:
        """Process one scan.

        Parameters
        ----------
        volume : ndarray, shape (Z, Y, X)
            The new scan, same shape as the reference.
        t_min : float
            Process time of the scan, min (strictly increasing).

        Returns
        -------
        CTOnsetEstimate

        Raises
        ------
        ValueError
            On a bad volume or a time that does not increase.
        """
        vol = check_volume("volume", volume)
        if vol.shape != self._reference.shape:
            raise ValueError(f"volume must have the reference shape {self._reference.shape}, got {vol.shape}")
        t = _positive("t_min", t_min, strict=False, minimum=-np.inf)
        if self._last_t is not None and not t > self._last_t:
            raise ValueError(f"t_min must increase: got {t} after {self._last_t}")
        tf = self._tracker.track(vol)
        self._noise.observe(tf.result, tf.reference_updated)
        n_all = len(self._grid)
        disp = np.full((n_all, 3), np.nan)
        ok = np.zeros(n_all, dtype=bool)
        disp[self._tracked] = tf.displacement
        ok[self._tracked] = tf.converged
        # the top moves down while the layer consolidates: subvolumes now reaching above it
        # hold the surface's subsidence (or air), not the layer's motion; those reaching
        # into the substrate straddle a rigid base and a compacting film
        bottom, top = textured_layer(vol, self._snr)
        if top >= 0:
            now_z = self._grid[:, 0] + np.nan_to_num(disp[:, 0])
            half = self._subset // 2
            ok &= (now_z + half + self._top_margin <= top) & (now_z - half - self._top_margin >= bottom)
        disp[~ok] = np.nan
        zncc = np.full(n_all, np.nan)
        zncc[self._tracked] = tf.result.zncc
        est = self._assess(disp, ok, zncc, t, tf)
        self._last_t = t
        self._n += 1
        return est

    def _assess(self, disp: NDArray, ok: NDArray, zncc: NDArray, t: float, tf) -> CTOnsetEstimate:
        matrix, trans = np.eye(3), np.zeros(3)
        residual = np.full_like(disp, np.nan)
        if ok.sum() >= 8:
            fit = remove_background(self._grid, disp, model=self._background, valid=ok)
            residual = np.where(ok[:, None], fit.residual, np.nan)
            matrix, trans = fit.matrix, fit.translation
        gs = self._grid_shape
        res_grid = residual.reshape(gs + (3,))
        jump = opening_map(res_grid, plane_axes=(1, 2), baselines=self._baselines, along=self._along)
        with np.errstate(all="ignore"):
            jump_plane = np.where(np.all(np.isnan(jump), axis=0), np.nan,
                                  np.nanmax(np.where(np.isnan(jump), -np.inf, jump), axis=0))
        cap, centre_cap = self._noise.caps()
        judged = judge_plane(jump_plane, z_threshold=self._z_thr, min_value=self._min_jump, floor=self._floor,
                             cap=cap, centre_cap=centre_cap)
        sites = find_sites(jump_plane, judged.hot, min_cells=self._min_cells, separation_cells=2.0)
        grid = self._grid.reshape(gs + (3,))
        out_sites = []
        for iy, ix in sites.index:
            col = jump[:, iy, ix]
            kz = int(np.nanargmax(np.where(np.isnan(col), -np.inf, col)))
            out_sites.append(grid[kz, iy, ix])
        sites_a = np.array(out_sites, dtype=np.float64).reshape(-1, 3)
        alarm = bool(len(sites_a) > 0)
        self._noise.learn(judged, alarm)
        self._consecutive = self._consecutive + 1 if alarm else 0
        if self._onset_time is None and self._consecutive >= self._persistence:
            self._onset_time = t
        n_tr = int(self._tracked.sum())
        return CTOnsetEstimate(
            t_min=t, score=judged.score, alarm=alarm, onset=self.onset, onset_time=self._onset_time,
            sites=sites_a, site_jump_vox=sites.strength, mask=self._paint(sites.hot), jump_plane=jump_plane,
            z_plane=judged.z, residual=res_grid, grid_points=grid, background_matrix=matrix,
            background_translation=trans, valid_fraction=float(ok.sum() / n_tr) if n_tr else 0.0,
            median_zncc=float(np.nanmedian(zncc[ok])) if ok.any() else float("nan"),
            reference_updates=tf.n_updates, dvc=tf.result)

    def _paint(self, hot: NDArray) -> NDArray[np.bool_]:
        shape = self._reference.shape[1:]
        out = np.zeros(shape, dtype=bool)
        grid = self._grid.reshape(self._grid_shape + (3,))
        h = self._step // 2 + 1
        for iy, ix in np.argwhere(hot):
            y, x = int(grid[0, iy, ix, 1]), int(grid[0, iy, ix, 2])
            out[max(y - h, 0):y + h + 1, max(x - h, 0):x + h + 1] = True
        return out


def _correlate(reference: NDArray, volume: NDArray, *, points: NDArray, mask: NDArray | None, subset_size: int,
               step: int, initial_displacement: NDArray | None = None) -> CorrelationResult:
    return correlate(reference, volume, points=points, mask=mask, subset_size=subset_size, step=step,
                     initial_displacement=initial_displacement)
