"""Streaming crack-onset detection from DIC against a reference frame.

Before a mud crack opens, the material on its two sides already moves apart (a fraction
of a pixel, over a band much wider than the future gap) while no gap is visible.  DIC of
every new frame against a reference frame sees that motion.  `OnsetDetector` removes the
rigid / uniform background motion (camera shake, uniform shrinkage) with a robust affine
fit, builds a localisation map from the residual field (displacement jump between
neighbouring grid points, maximum principal strain, ZNCC drop), scores it with robust
z-scores against the rest of the frame, clusters the hot grid points into predicted crack
sites and declares onset after ``persistence`` consecutive alarming frames (latched).

The detector core (`assess_field`) works on plain arrays (grid points, displacement,
ZNCC, convergence), so it can be driven by ground-truth displacement fields as well as
by the DIC engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["OnsetDetector", "OnsetEstimate", "FieldEvidence", "assess_field", "fit_affine_background"]

_MAD_TO_SIGMA = 1.4826
_Z_CAP = 1.0e3  # z-scores are clipped to +-_Z_CAP (a dead-flat reference cannot give inf)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class FieldEvidence:
    """Localisation evidence of one displacement field (one frame against the reference).

    Attributes
    ----------
    z_map : ndarray, shape (R, C), float
        Combined robust z-score per grid point (NaN where no evidence).
    jump_map : ndarray, shape (R, C), float
        Max over the 4-neighbourhood of ``|u_i - u_j|`` of the residual field, px.
    strain_map : ndarray, shape (R, C), float
        Maximum principal (small) strain of the residual field, dimensionless.
    zncc_drop_map : ndarray, shape (R, C), float
        ``median(zncc) - zncc`` per grid point (>= 0 where worse than typical).
    residual : ndarray, shape (R, C, 2), float
        Displacement after removing the affine background, px (NaN where invalid).
    valid : ndarray, shape (R, C), bool
        Grid points with a trusted displacement (converged, finite, ZNCC above the gate).
    hot : ndarray, shape (R, C), bool
        Grid points in a kept cluster (z above threshold, cluster of >= ``min_points``).
    sites : ndarray, shape (K, 2), float
        Predicted crack sites (row, col), px, strongest first.
    site_z : ndarray, shape (K,), float
        Combined z at each site.
    background : ndarray, shape (2, 3), float
        Affine background ``u = B @ [1, row - row0, col - col0]`` removed, px and px/px.
    background_centre : ndarray, shape (2,), float
        (row0, col0) of the background fit, px.
    score : float
        Risk score: mean of the ``min_points`` largest z-scores (a soft max that one
        outlier cannot drive).
    z_max : float
        Largest combined z.
    n_hot : int
        Number of grid points with z above the threshold.
    median, mad : ndarray, shape (3,), float
        Median and the robust scale used (1.4826 MAD, floored and capped) of the jump,
        strain and ZNCC-drop maps, in that order.
    raw_mad : ndarray, shape (3,), float
        1.4826 MAD of the three maps before floor and cap.
    alarm : bool
        The frame alone is alarming (score above threshold and >= ``min_sites`` sites).
    """

    z_map: NDArray[np.float64]
    jump_map: NDArray[np.float64]
    strain_map: NDArray[np.float64]
    zncc_drop_map: NDArray[np.float64]
    residual: NDArray[np.float64]
    valid: NDArray[np.bool_]
    hot: NDArray[np.bool_]
    sites: NDArray[np.float64]
    site_z: NDArray[np.float64]
    background: NDArray[np.float64]
    background_centre: NDArray[np.float64]
    score: float
    z_max: float
    n_hot: int
    median: NDArray[np.float64]
    mad: NDArray[np.float64]
    raw_mad: NDArray[np.float64]
    alarm: bool


@dataclass(frozen=True, eq=False)
class OnsetEstimate:
    """The detector's state after one frame.

    Attributes
    ----------
    t_min : float
        Process time of the frame, min.
    score : float
        Risk score of the frame (robust z units; see `FieldEvidence.score`).
    alarm : bool
        The frame alone is alarming (before the persistence rule).
    onset : bool
        Onset declared (at this or an earlier frame); stays True once declared.
    onset_time : float or None
        ``t_min`` of the frame at which onset was declared, None before.
    sites : ndarray, shape (K, 2), float
        Predicted crack sites (row, col), px in the frame, strongest first; shape (0, 2)
        when none.
    site_z : ndarray, shape (K,), float
        Combined z-score of each site.
    mask : ndarray, shape (H, W), bool
        Predicted crack zone (the kept hot grid cells painted onto the frame).
    background : ndarray, shape (2, 3), float
        Removed affine background motion ``u = B @ [1, row - row0, col - col0]``:
        column 0 the translation (px) at ``background_centre``, columns 1-2 the
        displacement gradient (px/px; uniform shrinkage shows as negative diagonal).
    background_centre : ndarray, shape (2,), float
        (row0, col0), px.
    jump_map, strain_map, zncc_drop_map, z_map : ndarray, shape (R, C), float
        Evidence on the DIC grid (see `FieldEvidence`).
    grid_points : ndarray, shape (R, C, 2), float
        (row, col) px of the grid points.
    z_max : float
        Largest combined z-score.
    n_hot : int
        Number of grid points with z above the threshold.
    median, mad : ndarray, shape (3,), float
        Robust centre and scale (jump px, strain, ZNCC drop).
    consecutive : int
        Number of consecutive alarming frames up to this one.
    valid_fraction : float
        Fraction of grid points with a trusted displacement.
    max_jump_um : float or None
        Largest residual jump in um (None when ``um_per_px`` was not given).
    """

    t_min: float
    score: float
    alarm: bool
    onset: bool
    onset_time: float | None
    sites: NDArray[np.float64]
    site_z: NDArray[np.float64]
    mask: NDArray[np.bool_]
    background: NDArray[np.float64]
    background_centre: NDArray[np.float64]
    jump_map: NDArray[np.float64]
    strain_map: NDArray[np.float64]
    zncc_drop_map: NDArray[np.float64]
    z_map: NDArray[np.float64]
    grid_points: NDArray[np.float64]
    z_max: float
    n_hot: int
    median: NDArray[np.float64]
    mad: NDArray[np.float64]
    consecutive: int
    valid_fraction: float
    max_jump_um: float | None = field(default=None)


# --------------------------------------------------------------------------- core maths


def fit_affine_background(points: NDArray, displacement: NDArray, *, weights: NDArray | None = None,
                          n_iter: int = 10, tuning: float = 4.685
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Robust affine fit ``u = B @ [1, row - row0, col - col0]`` (Tukey-biweight IRLS).

    Parameters
    ----------
    points : ndarray, shape (N, 2)
        (row, col), px.
    displacement : ndarray, shape (N, 2)
        Displacement (row, col), px; NaN rows are ignored.
    weights : ndarray, shape (N,), optional
        Prior weights (0 excludes a point).
    n_iter : int, optional
        IRLS iterations.
    tuning : float, optional
        Tukey biweight constant, in robust standard deviations of the residual norm.

    Returns
    -------
    params : ndarray, shape (2, 3)
        B, px (column 0) and px/px (columns 1-2).
    centre : ndarray, shape (2,)
        (row0, col0), px (the mean of the used points).
    w : ndarray, shape (N,)
        Final robust weights (0 for ignored points).

    Notes
    -----
    Starts from the least-squares fit on the points with a finite displacement; each
    iteration reweights with the Tukey biweight of the residual norm scaled by 1.4826
    times its median (floored at 1e-3 px), so crack bands (a minority of the points)
    and DIC outliers do not bias the background.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    u = np.asarray(displacement, dtype=np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(u), axis=1) & np.all(np.isfinite(pts), axis=1)
    if u.shape != pts.shape:
        raise ValueError(f"displacement: expected shape {pts.shape} like points, found {u.shape}")
    w0 = np.ones(len(pts)) if weights is None else np.asarray(weights, dtype=np.float64).ravel().copy()
    if w0.shape != (len(pts),):
        raise ValueError(f"weights: expected shape ({len(pts)},), found {w0.shape}")
    w0[~ok] = 0.0
    params = np.zeros((2, 3))
    if np.count_nonzero(w0 > 0) < 3:
        centre = np.nanmean(pts, axis=0) if len(pts) else np.zeros(2)
        if np.any(ok):
            params[:, 0] = np.median(u[ok], axis=0)
        return params, centre, w0
    centre = np.average(pts[w0 > 0], axis=0)
    design = np.column_stack([np.ones(len(pts)), pts - centre])
    uu = np.where(ok[:, None], u, 0.0)
    w = w0.copy()
    for _ in range(max(int(n_iter), 1)):
        sw = np.sqrt(w)[:, None]
        sol, *_ = np.linalg.lstsq(design * sw, uu * sw, rcond=None)
        params = sol.T
        res = np.linalg.norm(uu - design @ sol, axis=1)
        used = w0 > 0
        scale = max(_MAD_TO_SIGMA * float(np.median(res[used])), 1e-3)
        r = res / (tuning * scale)
        w = w0 * np.where(r < 1.0, (1.0 - r * r) ** 2, 0.0)
        if np.count_nonzero(w > 0) < 3:
            w = w0 * (r < 3.0)
    return params, centre, w


def _jump(u: NDArray) -> tuple[NDArray, NDArray]:
    """Max over the 4-neighbourhood of |u_i - u_j| and the argmax neighbour offset."""
    R, C = u.shape[:2]
    best = np.full((R, C), np.nan)
    off = np.zeros((R, C, 2))
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = np.full_like(u, np.nan)
        rs = slice(max(dr, 0), R + min(dr, 0))
        rd = slice(max(-dr, 0), R + min(-dr, 0))
        cs = slice(max(dc, 0), C + min(dc, 0))
        cd = slice(max(-dc, 0), C + min(-dc, 0))
        nb[rd, cd] = u[rs, cs]
        d = np.linalg.norm(nb - u, axis=-1)
        better = np.isfinite(d) & ~(d <= best)  # NaN best counts as smaller
        best = np.where(better, d, best)
        off[better] = (dr, dc)
    return best, off


def _max_principal_strain(u: NDArray, spacing: tuple[float, float]) -> NDArray:
    """Maximum principal small strain of a grid displacement field (NaN-aware)."""
    dr, dc = spacing
    R, C = u.shape[:2]
    if R < 2 or C < 2:
        return np.full((R, C), np.nan)
    dur = np.gradient(u, dr, axis=0)  # d u / d row, (R, C, 2)
    duc = np.gradient(u, dc, axis=1)
    exx = dur[..., 0]
    eyy = duc[..., 1]
    exy = 0.5 * (duc[..., 0] + dur[..., 1])
    mean = 0.5 * (exx + eyy)
    return mean + np.sqrt((0.5 * (exx - eyy)) ** 2 + exy**2)


def _robust_z(values: NDArray, floor: float, cap: float) -> tuple[NDArray, float, float, float]:
    """(x - median) / clip(1.4826 MAD, floor, cap) over the finite values.

    Returns z, the median, the scale used and the raw (unclipped) scaled MAD.
    """
    fin = values[np.isfinite(values)]
    if fin.size == 0:
        return np.full(values.shape, np.nan), float("nan"), float(floor), float("nan")
    med = float(np.median(fin))
    raw = _MAD_TO_SIGMA * float(np.median(np.abs(fin - med)))
    scale = max(min(raw, float(cap)), float(floor))
    z = np.clip((values - med) / scale, -_Z_CAP, _Z_CAP)
    return z, med, scale, raw


def _grid_spacing(grid: NDArray) -> tuple[float, float]:
    R, C = grid.shape[:2]
    dr = float(np.median(np.diff(grid[:, :, 0], axis=0))) if R > 1 else 1.0
    dc = float(np.median(np.diff(grid[:, :, 1], axis=1))) if C > 1 else 1.0
    return (dr if dr > 0 else 1.0), (dc if dc > 0 else 1.0)


def assess_field(points: NDArray, displacement: NDArray, zncc: NDArray | None = None,
                 converged: NDArray | None = None, *, grid_shape: tuple[int, int],
                 z_threshold: float = 6.0, min_points: int = 3, min_sites: int = 1,
                 site_separation: float = 31.0, min_zncc: float = 0.5,
                 jump_floor_px: float = 0.02, strain_floor: float = 0.002,
                 zncc_floor: float = 0.01, weights: tuple[float, float, float] = (0.5, 1.0, 0.5),
                 background: str = "affine", scale_cap: NDArray | None = None) -> FieldEvidence:
    """Localisation evidence of crack precursors in one displacement field.

    Parameters
    ----------
    points : ndarray, shape (N, 2)
        Grid points (row, col), px, in row-major order of a regular grid ``grid_shape``.
    displacement : ndarray, shape (N, 2)
        Displacement (row, col), px (NaN where unknown).
    zncc : ndarray, shape (N,), optional
        Correlation quality per point; None means perfect (ground truth).
    converged : ndarray, shape (N,), bool, optional
        DIC convergence per point; None means all converged.
    grid_shape : tuple of int
        (R, C) with ``R * C == N``.
    z_threshold : float, optional
        Combined z above which a grid point is hot.
    min_points : int, optional
        Smallest cluster (8-connected hot grid points) kept as a crack candidate; also
        the number of top z-scores averaged into the score.
    min_sites : int, optional
        Sites needed for an alarming frame.
    site_separation : float, optional
        Minimum distance between two sites, px (non-maximum suppression).
    min_zncc : float, optional
        Displacements of points below this ZNCC are not trusted (their ZNCC drop still
        counts as evidence).
    jump_floor_px, strain_floor, zncc_floor : float, optional
        Floors of the robust scales of the three maps (noise floors; they keep the
        z-scores finite on a noiseless or flickering sequence).
    weights : tuple of 3 float, optional
        Weights of the jump, strain and ZNCC-drop z-scores in the combined z: the
        combined z is ``max(w_j z_j, w_s z_s, w_z z_z)``.
    background : {"affine", "rigid", "none"}, optional
        Background motion removed before the maps are built.
    scale_cap : array_like of 3 float, optional
        Upper bounds of the robust scales (jump, strain, ZNCC drop), e.g. a multiple of
        the noise measured on crack-free frames.  A dense precursor network covers most
        of the frame and inflates the frame's MAD; the cap keeps the z-scores in units of
        the measurement noise.  None: no cap.

    Returns
    -------
    FieldEvidence

    Raises
    ------
    ValueError
        On inconsistent shapes (the message names the argument).
    """
    R, C = (int(v) for v in grid_shape)
    n = R * C
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (n, 2):
        raise ValueError(f"points: expected shape ({n}, 2) for grid_shape {grid_shape}, found {pts.shape}")
    u = np.asarray(displacement, dtype=np.float64)
    if u.shape != (n, 2):
        raise ValueError(f"displacement: expected shape ({n}, 2), found {u.shape}")
    q = np.ones(n) if zncc is None else np.asarray(zncc, dtype=np.float64).ravel()
    if q.shape != (n,):
        raise ValueError(f"zncc: expected shape ({n},), found {np.shape(zncc)}")
    cv = np.ones(n, dtype=bool) if converged is None else np.asarray(converged, dtype=bool).ravel()
    if cv.shape != (n,):
        raise ValueError(f"converged: expected shape ({n},), found {np.shape(converged)}")
    if background not in ("affine", "rigid", "none"):
        raise ValueError(f"background: expected 'affine', 'rigid' or 'none', found {background!r}")

    valid = cv & np.all(np.isfinite(u), axis=1) & np.isfinite(q) & (q >= min_zncc)
    uv = np.where(valid[:, None], u, np.nan)
    if background == "affine":
        params, centre, _ = fit_affine_background(pts, uv)
    else:
        centre = np.nanmean(pts, axis=0)
        params = np.zeros((2, 3))
        if background == "rigid" and np.any(valid):
            params[:, 0] = np.median(u[valid], axis=0)
    model = np.column_stack([np.ones(n), pts - centre]) @ params.T
    res = (uv - model).reshape(R, C, 2)
    grid = pts.reshape(R, C, 2)

    jump, off = _jump(res)
    strain = _max_principal_strain(res, _grid_spacing(grid))
    qg = np.where(np.isfinite(q), q, np.nan).reshape(R, C)
    q_med = float(np.nanmedian(qg)) if np.any(np.isfinite(qg)) else 1.0
    drop = q_med - qg

    caps = np.full(3, np.inf) if scale_cap is None else np.asarray(scale_cap, dtype=np.float64).ravel()
    if caps.shape != (3,):
        raise ValueError(f"scale_cap: expected 3 values (jump, strain, ZNCC drop), found {np.shape(scale_cap)}")
    caps = np.where(np.isfinite(caps), caps, np.inf)
    zj, mj, sj, rj = _robust_z(jump, jump_floor_px, caps[0])
    zs, ms, ss, rs = _robust_z(strain, strain_floor, caps[1])
    zq, mq, sq, rq = _robust_z(drop, zncc_floor, caps[2])
    wj, ws, wq = weights
    stack = np.stack([wj * zj, ws * zs, wq * zq])
    with np.errstate(invalid="ignore"):
        z = np.nanmax(np.where(np.isfinite(stack), stack, -np.inf), axis=0)
    z[~np.isfinite(z)] = np.nan

    zf = np.where(np.isfinite(z), z, -np.inf)
    above = zf > z_threshold
    lab, nlab = ndimage.label(above, structure=np.ones((3, 3), dtype=bool))
    if nlab:
        sizes = np.bincount(lab.ravel(), minlength=nlab + 1)
        keep = sizes >= max(int(min_points), 1)
        keep[0] = False
        hot = keep[lab]
    else:
        hot = np.zeros((R, C), dtype=bool)

    # sites: local maxima of z inside kept clusters, refined to the middle of the jump
    dr, dc = _grid_spacing(grid)
    rad = max(int(np.floor(site_separation / max(min(dr, dc), 1e-9))), 0)
    size = 2 * rad + 1
    peak = (zf == ndimage.maximum_filter(zf, size=size, mode="constant", cval=-np.inf)) & hot
    idx = np.argwhere(peak)
    order = np.argsort(-zf[peak], kind="stable")
    idx = idx[order]
    sites_l: list[NDArray] = []
    zs_l: list[float] = []
    for i, j in idx:
        di, dj = off[i, j]
        p = grid[i, j].copy()
        ni, nj = int(i + di), int(j + dj)
        if (di or dj) and 0 <= ni < R and 0 <= nj < C and np.isfinite(jump[i, j]):
            p = 0.5 * (grid[i, j] + grid[ni, nj])
        if any(np.hypot(*(p - s)) < site_separation for s in sites_l):
            continue
        sites_l.append(p)
        zs_l.append(float(zf[i, j]))
    sites = np.array(sites_l, dtype=np.float64).reshape(-1, 2)
    site_z = np.array(zs_l, dtype=np.float64)

    fin = zf[np.isfinite(zf)]
    k = max(int(min_points), 1)
    if fin.size:
        top = np.sort(fin)[-k:]
        score = float(np.mean(top))
        z_max = float(fin.max())
    else:
        score = z_max = float("nan")
    n_hot = int(np.count_nonzero(above))
    alarm = bool(np.isfinite(score) and score > z_threshold and len(sites) >= max(int(min_sites), 1))
    return FieldEvidence(z_map=z, jump_map=jump, strain_map=strain, zncc_drop_map=drop, residual=res,
                         valid=valid.reshape(R, C), hot=hot, sites=sites, site_z=site_z,
                         background=params, background_centre=np.asarray(centre, dtype=np.float64),
                         score=score, z_max=z_max, n_hot=n_hot, median=np.array([mj, ms, mq]),
                         mad=np.array([sj, ss, sq]), raw_mad=np.array([rj, rs, rq]), alarm=alarm)


# --------------------------------------------------------------------------- detector


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
    """Streaming crack-onset detector: DIC of each frame against a reference frame.

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
    background : {"affine", "rigid", "none"}, optional
        Background motion removed by a robust fit before localisation: "affine" discounts
        camera shake (translation, small rotation) and uniform shrinkage / stretch.
    z_threshold : float, optional
        Robust z-score above which a grid point is hot and a frame's score is alarming.
    min_points : int, optional
        Smallest cluster of hot grid points (8-connected) kept as a crack candidate.
    min_sites : int, optional
        Number of candidate sites a frame needs to be alarming.
    persistence : int, optional
        Consecutive alarming frames needed to declare onset (latched afterwards).
    baseline_frames : int, optional
        Number of first frames whose robust scales (noise level of the three maps) set
        the scale cap for the later frames.
    baseline_inflation : float, optional
        The scale cap is this multiple of the largest baseline scale (the floors still
        apply below the cap).
    jump_floor_px, strain_floor, zncc_floor : float, optional
        Noise floors of the robust scales (px, strain, ZNCC).
    weights : tuple of 3 float, optional
        Weights of the jump, strain and ZNCC-drop z-scores (combined z is their max).
    min_zncc : float, optional
        ZNCC quality gate of the DIC (points below it carry no displacement).
    site_separation : float, optional
        Minimum distance between predicted sites, px; default ``subset_size``.

    Raises
    ------
    ValueError
        On a bad reference or option (the message names it).

    Notes
    -----
    Per frame (`update`): DIC on a regular grid against the reference; a Tukey-biweight
    IRLS affine fit of the displacement is removed (camera shake, uniform shrinkage,
    like the uniform 5 um artefact discounted in the CT study); from the residual field
    three maps are built: the displacement jump (max over the 4-neighbourhood of
    ``|u_i - u_j|``), the maximum principal strain (finite differences), and the ZNCC
    drop below the frame's median ZNCC.  Each is turned into a robust z-score
    ``(x - median) / s`` with ``s = 1.4826 MAD`` over the frame, floored by a noise floor
    and, after ``baseline_frames`` frames, capped at ``baseline_inflation`` times the
    baseline scale (a precursor network covers most of a densely cracking frame and
    would otherwise inflate the MAD).  The combined z is the max of the weighted
    z-scores.  Hot points (z > ``z_threshold``) in clusters of >= ``min_points`` are
    candidate crack zones; sites are the local maxima of z (at least
    ``site_separation`` apart), each moved to the middle between the point and the
    neighbour across its largest jump.  The score is the mean of the ``min_points``
    largest z.  A frame is alarming when the score exceeds ``z_threshold`` with at least
    ``min_sites`` sites; onset is declared after ``persistence`` consecutive alarming
    frames and stays declared.

    The precursor is a tensile line (positive maximum principal strain) between two
    compressed cells; flicker changes neither the displacement nor (ZNCC being
    gain-invariant) the ZNCC, and the ZNCC drop is relative to the frame's median with a
    floored scale, so uniform decorrelation (noise, blur) does not raise it.

    References
    ----------
    Dawson et al., EES Batteries (2026), DOI 10.1039/d5eb00201j (DVC of drying coatings:
    displacement above background before cracks are visible).

    Examples
    --------
    >>> det = OnsetDetector(reference_frame)  # doctest: +SKIP
    >>> est = det.update(frame, 39.5)  # doctest: +SKIP
    >>> est.onset, est.sites.shape  # doctest: +SKIP
    (False, (0, 2))
    """

    def __init__(self, reference: NDArray, *, subset_size: int = 31, step: int = 10,
                 um_per_px: float | None = None, background: str = "affine",
                 z_threshold: float = 6.0, min_points: int = 3, min_sites: int = 1,
                 persistence: int = 2, baseline_frames: int = 2, baseline_inflation: float = 2.0,
                 jump_floor_px: float = 0.02, strain_floor: float = 0.002, zncc_floor: float = 0.01,
                 weights: tuple[float, float, float] = (0.5, 1.0, 0.5), min_zncc: float = 0.5,
                 site_separation: float | None = None) -> None:
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
        if background not in ("affine", "rigid", "none"):
            raise ValueError(f"background: expected 'affine', 'rigid' or 'none', found {background!r}")
        self._background = background
        self._z = _positive("z_threshold", z_threshold)
        self._min_points = int(_positive("min_points", min_points, integer=True, minimum=1, allow_zero=True))
        self._min_sites = int(_positive("min_sites", min_sites, integer=True, minimum=1, allow_zero=True))
        self._persistence = int(_positive("persistence", persistence, integer=True, minimum=1, allow_zero=True))
        self._baseline_frames = int(_positive("baseline_frames", baseline_frames, integer=True, allow_zero=True))
        self._inflation = _positive("baseline_inflation", baseline_inflation, minimum=1.0, allow_zero=True)
        self._floors = (_positive("jump_floor_px", jump_floor_px), _positive("strain_floor", strain_floor),
                        _positive("zncc_floor", zncc_floor))
        try:
            w = tuple(float(v) for v in weights)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"weights: expected 3 non-negative numbers, found {weights!r}") from exc
        if len(w) != 3 or not all(np.isfinite(v) and v >= 0 for v in w) or sum(w) == 0:
            raise ValueError(f"weights: expected 3 non-negative numbers (not all 0), found {weights!r}")
        self._weights = w
        if not (isinstance(min_zncc, (int, float)) and -1.0 <= float(min_zncc) < 1.0):
            raise ValueError(f"min_zncc: expected a number in [-1, 1), found {min_zncc!r}")
        self._min_zncc = float(min_zncc)
        self._separation = float(subset) if site_separation is None else _positive("site_separation", site_separation)
        self._reference = np.array(ref, copy=True)
        self._reference.setflags(write=False)
        # streaming state
        self._n_frames = 0
        self._baseline: list[NDArray] = []
        self._cap: NDArray | None = None
        self._consecutive = 0
        self._onset_time: float | None = None
        self._last_t: float | None = None

    # ----------------------------------------------------------------- properties
    @property
    def reference(self) -> NDArray:
        """The reference frame (read-only)."""
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
    def _correlate(self, frame: NDArray):
        from ._correlate import correlate

        res = correlate(self._reference, frame, subset_size=self._subset, step=self._step,
                        zncc_threshold=self._min_zncc)
        return res.points, res.displacement, res.zncc, res.converged, res.grid_shape

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
        points, disp, zncc, conv, grid_shape = self._correlate(img)
        return self.update_field(points, disp, zncc, conv, t_min=t, grid_shape=grid_shape)

    def _check_time(self, t_min: float) -> float:
        if isinstance(t_min, bool) or not isinstance(t_min, (int, float, np.integer, np.floating)) \
                or not np.isfinite(float(t_min)):
            raise ValueError(f"t_min: expected a finite time in minutes, found {t_min!r}")
        t = float(t_min)
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"t_min: {t} goes back in time (previous frame at {self._last_t})")
        return t

    def update_field(self, points: NDArray, displacement: NDArray, zncc: NDArray | None = None,
                     converged: NDArray | None = None, *, t_min: float,
                     grid_shape: tuple[int, int]) -> OnsetEstimate:
        """Process one displacement field (DIC output or ground truth) of a frame.

        Parameters
        ----------
        points : ndarray, shape (N, 2)
            Regular grid points (row, col), px, row-major, ``N = R * C``.
        displacement : ndarray, shape (N, 2)
            Displacement relative to the reference (row, col), px; NaN where unknown.
        zncc : ndarray, shape (N,), optional
            Correlation quality (None: perfect).
        converged : ndarray, shape (N,), bool, optional
            DIC status (None: all converged).
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
        t = self._check_time(t_min)
        ev = assess_field(points, displacement, zncc, converged, grid_shape=grid_shape,
                          z_threshold=self._z, min_points=self._min_points, min_sites=self._min_sites,
                          site_separation=self._separation, min_zncc=self._min_zncc,
                          jump_floor_px=self._floors[0], strain_floor=self._floors[1],
                          zncc_floor=self._floors[2], weights=self._weights,
                          background=self._background, scale_cap=self._cap)
        self._last_t = t
        self._n_frames += 1
        if self._cap is None and self._baseline_frames > 0 and not ev.alarm:
            self._baseline.append(np.where(np.isfinite(ev.raw_mad), ev.raw_mad, 0.0))
            if len(self._baseline) >= self._baseline_frames:
                self._cap = self._inflation * np.max(self._baseline, axis=0)
        self._consecutive = self._consecutive + 1 if ev.alarm else 0
        if self._onset_time is None and self._consecutive >= self._persistence:
            self._onset_time = t
        grid = np.asarray(points, dtype=np.float64).reshape(*grid_shape, 2)
        mask = self._paint(ev.hot, grid)
        max_jump = float(np.nanmax(ev.jump_map)) if np.any(np.isfinite(ev.jump_map)) else float("nan")
        return OnsetEstimate(
            t_min=t, score=ev.score, alarm=ev.alarm, onset=self.onset, onset_time=self._onset_time,
            sites=ev.sites, site_z=ev.site_z, mask=mask, background=ev.background,
            background_centre=ev.background_centre, jump_map=ev.jump_map, strain_map=ev.strain_map,
            zncc_drop_map=ev.zncc_drop_map, z_map=ev.z_map, grid_points=grid, z_max=ev.z_max,
            n_hot=ev.n_hot, median=ev.median, mad=ev.mad, consecutive=self._consecutive,
            valid_fraction=float(ev.valid.mean()) if ev.valid.size else 0.0,
            max_jump_um=None if self._um_per_px is None else max_jump * self._um_per_px)

    def _paint(self, hot: NDArray, grid: NDArray) -> NDArray[np.bool_]:
        """The hot grid cells (step x step around each hot point) as a frame mask."""
        h, w = self._reference.shape
        mask = np.zeros((h, w), dtype=bool)
        if not hot.any():
            return mask
        R, C = hot.shape
        dr, dc = _grid_spacing(grid)
        r0, c0 = grid[0, 0]
        rows = np.arange(h)
        cols = np.arange(w)
        ir = np.rint((rows - r0) / dr).astype(int)
        ic = np.rint((cols - c0) / dc).astype(int)
        okr = (ir >= 0) & (ir < R) & (np.abs(rows - (r0 + np.clip(ir, 0, R - 1) * dr)) <= 0.5 * dr)
        okc = (ic >= 0) & (ic < C) & (np.abs(cols - (c0 + np.clip(ic, 0, C - 1) * dc)) <= 0.5 * dc)
        sub = hot[np.clip(ir, 0, R - 1)][:, np.clip(ic, 0, C - 1)]
        mask[:] = sub & okr[:, None] & okc[None, :]
        return mask
