"""Streaming crack-onset prediction from DVC between CT scans of a drying coating.

Before a mud crack opens, the particle layer on its two sides already moves apart (a
fraction of a voxel to a few voxels, over a band much wider than the future gap) while
no gap is visible in the grey values.  `OnsetDetector` correlates every new scan with
the previous one (default; or with the first reference), removes the background motion
(stage drift, rotation) with a robust rigid-body fit, and maps the in-plane
displacement jump across each DVC point (two grid steps).  Hot spots (robust z-score against
the rest of the scan and an absolute jump above the DVC noise) are projected onto the
coating plane, clustered into predicted crack sites and painted into a plane mask.

Points whose subvolume carries no texture (air, a solvent film, the substrate) are left
out: a point is kept when the grey-value standard deviation of its reference subvolume
exceeds `texture_snr` times the noise level estimated from the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ._dvc import DVCResult, check_volume, correlate, default_grid
from ._dvc_post import remove_background

__all__ = ["CTOnsetEstimate", "OnsetDetector"]

_MAD_TO_SIGMA = 1.4826
_MODES = ("previous", "reference")


@dataclass(frozen=True, eq=False)
class CTOnsetEstimate:
    """The detector's state after one scan.

    Attributes
    ----------
    t_min : float
        Process time of the scan, min.
    score : float
        Risk score: mean robust z-score of the hottest plane cells (see Notes of
        `OnsetDetector`); 0 when nothing stands out.
    alarm : bool
        This scan alone is alarming (score and jump above threshold, >= one site).
    onset : bool
        Onset declared at this or an earlier scan (latched).
    onset_time : float or None
        ``t_min`` of the scan at which onset was declared.
    sites : ndarray, shape (K, 3), float
        Predicted crack sites (z, y, x), voxels of this scan's reference, strongest first.
    site_jump_vox : ndarray, shape (K,), float
        Largest in-plane displacement jump at each site, voxels.
    mask : ndarray, shape (Y, X), bool
        Predicted crack zone on the coating plane (hot grid cells painted at the grid
        spacing).
    jump_plane : ndarray, shape (ny, nx), float
        Evidence: max over height of the in-plane jump of the residual field per grid
        column, voxels (NaN where no trusted point).
    z_plane : ndarray, shape (ny, nx), float
        Robust z-score of `jump_plane`.
    residual : ndarray, shape (nz, ny, nx, 3), float
        Displacement minus the background, voxels, on the DVC grid (NaN if not trusted).
    grid_points : ndarray, shape (nz, ny, nx, 3), float
        Grid positions (z, y, x), voxels.
    background_matrix, background_translation : ndarray
        The removed affine background (3 x 3 map and translation at the fit centre,
        voxels): uniform shrinkage of the layer shows as a diagonal below 1.
    valid_fraction : float
        Share of the textured grid points with a trusted displacement.
    median_zncc : float
        Median ZNCC of the trusted points.
    dvc : DVCResult
        The raw DVC result of this scan.
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
    dvc: DVCResult


def _positive(name: str, value: object, *, integer: bool = False, minimum: float = 0.0,
              strict: bool = True) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value) == int(value)
    if ok:
        v = float(value)
        ok = np.isfinite(v) and (v > minimum if strict else v >= minimum)
    if not ok:
        kind = "an int" if integer else "a number"
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be {kind} {rel} {minimum}, got {value!r}")
    return float(value)


def noise_sigma(volume: NDArray) -> float:
    """Gaussian noise level of a volume from the median absolute Laplacian residual.

    Uses the 3D analogue of Immerkaer's operator: the difference between a voxel and the
    mean of its 6 neighbours, whose standard deviation is ``sigma * sqrt(1 + 1/6)`` for
    white noise, estimated robustly (MAD) so that edges barely bias it.
    """
    v = np.asarray(volume, dtype=np.float32)
    nb = ndimage.uniform_filter1d(v, 3, axis=0) + ndimage.uniform_filter1d(v, 3, axis=1) \
        + ndimage.uniform_filter1d(v, 3, axis=2)
    lap = v - (nb * 3.0 - 3.0 * v) / 6.0  # v - mean of the 6 face neighbours
    r = lap[1:-1, 1:-1, 1:-1].ravel()
    mad = float(np.median(np.abs(r - np.median(r))))
    return _MAD_TO_SIGMA * mad / np.sqrt(1.0 + 1.0 / 6.0)


def textured_top(reference: NDArray, snr: float, *, window: int = 5) -> int:
    """Index of the highest slice of the textured layer (the coating top), voxels.

    A voxel is textured when the grey-value std of its ``window``-cube exceeds ``snr``
    times the noise level; the top is the highest slice in which most voxels are.
    Returns -1 when no slice is.
    """
    v = np.asarray(reference, dtype=np.float32)
    mean = ndimage.uniform_filter(v, window, mode="reflect")
    sq = ndimage.uniform_filter(v * v, window, mode="reflect")
    sigma = max(noise_sigma(v), 1e-12)
    frac = np.mean((sq - mean * mean) > (snr * sigma) ** 2, axis=(1, 2))
    rows = np.flatnonzero(frac > 0.5)
    return int(rows[-1]) if len(rows) else -1


def textured_points(reference: NDArray, centres: NDArray, half: int, snr: float) -> NDArray[np.bool_]:
    """Points whose subvolume lies below the coating top and carries texture.

    A point is kept when the grey-value std of its subvolume exceeds ``snr`` times the
    noise level and the subvolume does not reach above `textured_top` (a subvolume that
    holds the moving top surface and the air or solvent film above it measures the
    surface's subsidence, not the layer's motion).
    """
    v = np.asarray(reference, dtype=np.float32)
    size = 2 * half + 1
    mean = ndimage.uniform_filter(v, size, mode="reflect")
    sq = ndimage.uniform_filter(v * v, size, mode="reflect")
    c = np.round(centres).astype(int)
    c = np.clip(c, 0, np.array(v.shape) - 1)
    var = (sq - mean * mean)[tuple(c.T)]
    sigma = noise_sigma(v)
    top = textured_top(v, snr)
    return (np.sqrt(np.maximum(var, 0.0)) > snr * max(sigma, 1e-12)) & (c[:, 0] + half <= top)


def _inplane_jump(res: NDArray) -> NDArray:
    """In-plane displacement jump across each grid point, voxels.

    ``max over the in-plane axes of |u_inplane(i + 1) - u_inplane(i - 1)|`` (central,
    two grid steps): a crack between two grid points is straddled by the subvolumes of
    both, which each see an average of the two sides, so the full opening shows only
    between the points one step further out.  Edge points use the one-sided difference.
    """
    u = res[..., 1:]
    out = np.full(res.shape[:3], np.nan)
    for axis in (1, 2):
        n = u.shape[axis]
        if n < 2:
            continue
        idx = np.arange(n)
        lo = np.clip(idx - 1, 0, n - 1)
        hi = np.clip(idx + 1, 0, n - 1)
        d = np.linalg.norm(np.take(u, hi, axis=axis) - np.take(u, lo, axis=axis), axis=-1)
        out = np.where(np.isnan(out), d, np.fmax(out, d))
    return out


class OnsetDetector:
    """Streaming crack-onset detector for CT scans (DVC-based).

    Parameters
    ----------
    reference : ndarray, shape (Z, Y, X)
        First scan (z the coating normal, substrate at low z), any real dtype.
    subset_size : int, optional
        DVC subvolume width, voxels.
    step : int, optional
        DVC grid spacing, voxels.
    mode : {"previous", "reference"}, optional
        Correlate each scan with an earlier recent scan (robust to structural change
        during consolidation, where particles rearrange; see `lag_min`) or always with
        `reference`.
    lag_min : float, optional
        "previous" mode: the scan is correlated with the newest earlier scan taken at
        least `lag_min` minutes before it (with scans every 2 min: the previous one; every
        0.5 min: the one 2 scans back), so the precursor motion accumulated over a fixed
        time is judged whatever the scan interval.  0: always the previous scan.
    reference_t_min : float, optional
        Time of `reference`, min (default: older than any lag).
    background : {"rigid", "translation", "affine"}, optional
        Background motion model removed before localisation.  Rigid (stage drift and
        rotation) by default: an affine fit absorbs part of a crack opening that splits
        the field of view in two (as a uniform strain), while uniform in-plane shrinkage
        of 0.3 % changes the two-step jump by only ~0.05 voxel.
    z_threshold : float, optional
        Robust z-score a plane cell must exceed to be hot.
    min_jump_vox : float, optional
        Absolute in-plane jump (across two grid steps) a hot cell must also exceed,
        voxels: well above the DVC random error (~0.01 voxel) and the artefacts of pore
        emptying, whose change of contrast gives jumps up to ~0.37 voxel on simulated
        crack-free scans (cracks 1-2 scans before they are segmented: 0.8-1.2).
    min_cells : int, optional
        Smallest cluster of hot plane cells kept as a site (a crack is a line; single
        cells are texture artefacts).
    texture_snr : float, optional
        Texture gate: subvolume std / noise level.
    mad_floor_vox : float, optional
        Lower bound of the robust scale of the jump map, voxels (a perfectly still scan
        must not turn noise into large z-scores).
    persistence : int, optional
        Consecutive alarming scans needed to declare onset (scans are minutes apart).
    zncc_threshold : float, optional
        DVC quality gate.

    Notes
    -----
    Per scan: DVC (defaults of `tomography.correlate` apart from `subset_size`, `step`
    and `zncc_threshold`) at textured grid points, robust background removal (rigid by default),
    in-plane displacement jump across each point (two grid steps), max over height per grid
    column (the crack plane is vertical, so its evidence stacks up), robust z-score
    ``(j - median) / max(min(s, 3 x median s of the quiet scans so far),
    mad_floor_vox)`` over the plane, s the one-sided (lower-half) 1.4826 MAD (the cap keeps a crack that spans much of the field of
    view from inflating its own scale), hot cells
    (z and jump above threshold), connected clusters of >= `min_cells` cells -> sites (the jump-weighted centre
    of each cluster, at the height of its largest jump).  The score is the mean z of the
    (up to) three hottest cells.
    """

    def __init__(self, reference: ArrayLike, *, subset_size: int = 21, step: int = 8,
                 mode: str = "previous", background: str = "rigid", z_threshold: float = 8.0,
                 min_jump_vox: float = 0.5, min_cells: int = 3, texture_snr: float = 2.0,
                 mad_floor_vox: float = 0.02, persistence: int = 1,
                 zncc_threshold: float = 0.6, lag_min: float = 1.0,
                 reference_t_min: float | None = None) -> None:
        ref = check_volume("reference", reference)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if background not in ("affine", "rigid", "translation"):
            raise ValueError(f"background must be 'affine', 'rigid' or 'translation', got {background!r}")
        self._subset = int(_positive("subset_size", subset_size, integer=True, minimum=6))
        if self._subset % 2 == 0:
            raise ValueError(f"subset_size must be odd, got {subset_size!r}")
        self._step = int(_positive("step", step, integer=True, minimum=0))
        self._z_thr = _positive("z_threshold", z_threshold)
        self._min_jump = _positive("min_jump_vox", min_jump_vox, strict=False)
        self._min_cells = int(_positive("min_cells", min_cells, integer=True, minimum=0))
        self._snr = _positive("texture_snr", texture_snr, strict=False)
        self._mad_floor = _positive("mad_floor_vox", mad_floor_vox)
        self._persistence = int(_positive("persistence", persistence, integer=True, minimum=0))
        if not -1.0 <= zncc_threshold < 1.0:
            raise ValueError(f"zncc_threshold must be in [-1, 1), got {zncc_threshold!r}")
        self._zncc_thr = float(zncc_threshold)
        self._mode = mode
        self._lag = _positive("lag_min", lag_min, strict=False)
        t_ref = -np.inf if reference_t_min is None else _positive("reference_t_min", reference_t_min,
                                                                   strict=False, minimum=-np.inf)
        self._background = background
        half = self._subset // 2
        if min(ref.shape) < self._subset + 4:
            raise ValueError(f"reference of shape {ref.shape} is too small for subset_size={self._subset}")
        self._grid, self._grid_shape = default_grid(ref.shape, half, self._step)
        self._reference = ref
        self._history: list[tuple[float, NDArray]] = [(t_ref, ref)]  # (t_min, scan), oldest first
        self._last_t = None if reference_t_min is None else t_ref
        self._textured = textured_points(ref, self._grid, half, self._snr)
        self._onset_time: float | None = None
        self._baseline: list[float] = []  # robust scales of the quiet scans so far
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
        if self._mode == "previous":
            # the newest stored scan at least lag_min older (else the oldest): the motion
            # between the two accumulates over >= lag_min whatever the scan interval
            older = [k for k, (tk, _) in enumerate(self._history) if tk <= t - self._lag]
            k_ref = older[-1] if older else 0
            del self._history[:k_ref]
            ref = self._history[0][1]
        else:
            ref = self._reference
        textured = self._textured
        if ref is not self._reference:
            textured = textured_points(ref, self._grid, self._subset // 2, self._snr)
        res = correlate(ref, vol, subset_size=self._subset, step=self._step,
                        points=self._grid[textured] if textured.any() else self._grid[:1],
                        zncc_threshold=self._zncc_thr)
        est = self._assess(res, textured, t)
        self._last_t = t
        self._n += 1
        if self._mode == "previous":
            self._history.append((t, vol))
        return est

    def _assess(self, res: DVCResult, textured: NDArray, t: float) -> CTOnsetEstimate:
        n_all = len(self._grid)
        disp = np.full((n_all, 3), np.nan)
        zncc = np.full(n_all, np.nan)
        if textured.any():
            disp[textured] = res.displacement
            zncc[textured] = res.zncc
            ok = np.zeros(n_all, dtype=bool)
            ok[textured] = res.converged
        else:
            ok = np.zeros(n_all, dtype=bool)
        disp[~ok] = np.nan
        matrix, trans = np.eye(3), np.zeros(3)
        residual = np.full_like(disp, np.nan)
        need = {"translation": 1, "rigid": 3, "affine": 4}[self._background]
        if ok.sum() >= max(need, 8):
            fit = remove_background(self._grid, disp, model=self._background, valid=ok)
            residual = fit.residual
            matrix, trans = fit.matrix, fit.translation
        gs = self._grid_shape
        res_grid = residual.reshape(gs + (3,))
        jump = _inplane_jump(res_grid)
        with np.errstate(all="ignore"):
            jump_plane = np.where(np.all(np.isnan(jump), axis=0), np.nan,
                                  np.nanmax(np.where(np.isnan(jump), -np.inf, jump), axis=0))
        finite = np.isfinite(jump_plane)
        z_plane = np.full(jump_plane.shape, np.nan)
        if finite.sum() >= 4:
            vals = jump_plane[finite]
            med = float(np.median(vals))
            # one-sided scale from the cells at or below the median: crack evidence is an
            # upper tail and must not inflate the noise scale it is judged against
            mad = _MAD_TO_SIGMA * float(np.median(med - vals[vals <= med]))
            scale = mad
            if self._baseline:  # a crack that fills much of the view must not inflate the scale
                scale = min(scale, 3.0 * float(np.median(self._baseline)))
            scale = max(scale, self._mad_floor)
            z_plane[finite] = (vals - med) / scale
        hot = finite & (np.nan_to_num(z_plane, nan=-np.inf) > self._z_thr) & (jump_plane > self._min_jump)
        labels, n_lab = ndimage.label(hot, structure=np.ones((3, 3)))
        sites, site_jump = [], []
        grid = self._grid.reshape(gs + (3,))
        for lab in range(1, n_lab + 1):
            cells = np.argwhere(labels == lab)
            if len(cells) < self._min_cells:
                hot[labels == lab] = False
                continue
            w = jump_plane[cells[:, 0], cells[:, 1]]
            yx = (grid[0, cells[:, 0], cells[:, 1], 1:] * w[:, None]).sum(0) / w.sum()
            best = cells[np.argmax(w)]
            col = jump[:, best[0], best[1]]
            kz = int(np.nanargmax(np.where(np.isnan(col), -np.inf, col)))
            sites.append([grid[kz, best[0], best[1], 0], yx[0], yx[1]])
            site_jump.append(float(w.max()))
        order = np.argsort(site_jump)[::-1]
        sites_a = np.array(sites, dtype=np.float64).reshape(-1, 3)[order]
        jump_a = np.array(site_jump, dtype=np.float64)[order]
        zs = np.sort(z_plane[finite])[::-1][:3] if finite.any() else np.zeros(1)
        score = float(max(np.mean(zs), 0.0)) if len(zs) else 0.0
        alarm = bool(len(sites_a) > 0)
        if not alarm and finite.sum() >= 4:
            self._baseline.append(mad)
        self._consecutive = self._consecutive + 1 if alarm else 0
        if self._onset_time is None and self._consecutive >= self._persistence:
            self._onset_time = t
        n_tex = int(textured.sum())
        return CTOnsetEstimate(
            t_min=t, score=score, alarm=alarm, onset=self.onset, onset_time=self._onset_time,
            sites=sites_a, site_jump_vox=jump_a, mask=self._paint(hot), jump_plane=jump_plane,
            z_plane=z_plane, residual=res_grid, grid_points=grid,
            background_matrix=matrix, background_translation=trans,
            valid_fraction=float(ok.sum() / n_tex) if n_tex else 0.0,
            median_zncc=float(np.nanmedian(zncc[ok])) if ok.any() else float("nan"), dvc=res)

    def _paint(self, hot: NDArray) -> NDArray[np.bool_]:
        shape = self._reference.shape[1:]
        out = np.zeros(shape, dtype=bool)
        grid = self._grid.reshape(self._grid_shape + (3,))
        h = self._step // 2 + 1
        for iy, ix in np.argwhere(hot):
            y, x = int(grid[0, iy, ix, 1]), int(grid[0, iy, ix, 2])
            out[max(y - h, 0):y + h + 1, max(x - h, 0):x + h + 1] = True
        return out
