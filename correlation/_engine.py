"""The subset correlation pipeline, written once for images (2D) and volumes (3D).

Pipeline of `correlate`:

1. validate inputs; float64 working copies (inputs are never modified), optionally
   low-passed by a Gaussian prefilter; B-spline coefficients of the deformed data (cubic
   or quintic) and the exact spline gradient of the reference, once;
2. texture gate: subsets whose sum of squared gradients is not clearly above what the
   noise alone gives are UNTEXTURED and never iterated (they would fail slowly);
3. integer initial guess: phase correlation of the whole data (any rigid shift), refined
   at sparse seeds by normalised cross-correlation over a coarse-to-fine pyramid;
4. IC-GN (numba kernel of the dimension, parallel over points) at the seeds; their
   converged shape functions, extrapolated to first order, start every point;
5. a parallel IC-GN pass over all points;
6. noise-aware quality gate: the expected ZNCC of a well-matched subset is
   ``1 - kappa / var(subset)`` (``kappa`` the residual variance of the matched pairs,
   estimated over the field); a point whose ZNCC falls short of that by more than
   `GATE_FACTOR` times is LOW_ZNCC (a constant gate is available too);
7. reliability-guided repair: failed or poorly correlated points restart from their best
   converged neighbour, in waves;
8. outliers (normalised median test) restart from the neighbour median and are OUTLIER
   if they stay outliers; optional quality-weighted regularisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ._bspline import spline_coefficients, spline_gradients
from ._field import regularise
from ._kernel2d import icgn2d_points
from ._kernel3d import icgn3d_points
from ._neighbours import RADIUS_SPACINGS, neighbour_table
from ._repair import Field, repair, restart_outliers
from ._robust import noise_std
from ._seeds import seed_guesses, seed_points
from ._status import PointStatus
from ._warp import (SHAPE_FUNCTIONS, displacement_and_gradient, from_displacement, interpolate_params,
                    n_params, quadratic_fit_matrix, shift_params)

__all__ = ["CorrelationResult", "SubsetSolver", "correlate", "noise_aware_gate", "untextured_points", "check_data", "check_int", "check_number", "default_grid",
           "INTERPOLATIONS", "GATE_FACTOR", "GATE_FLOOR", "GATE_CEILING"]

INTERPOLATIONS = {"cubic": 3, "quintic": 5}
#: noise-aware gate: a point is LOW_ZNCC when ``1 - zncc`` exceeds this many times what
#: the noise gives a matched subset of its contrast
GATE_FACTOR = 4.0
#: the noise-aware gate never accepts below this ZNCC ...
GATE_FLOOR = 0.5
#: ... and always accepts above this one
GATE_CEILING = 0.98
#: fewer converged points than this: the gate falls back to the floor
_GATE_MIN_POINTS = 8


@dataclass(frozen=True, eq=False)
class CorrelationResult:
    """Result of a subset-based correlation (2D DIC or 3D DVC).

    Attributes
    ----------
    points : ndarray, shape (N, d), float64
        Reference positions, px / voxels ((row, col) or (z, y, x)).
    displacement : ndarray, shape (N, d), float64
        Displacement: the material at ``points`` appears at ``points + displacement`` in
        the deformed data.  NaN where the point failed (with `regularisation` > 0: the
        regularised field, filled from the neighbours; OUTLIER points carry their
        neighbours' median when `replace_outliers`).
    gradient : ndarray, shape (N, d, d), float64
        Displacement gradient ``gradient[n, i, j] = d u_i / d x_j``.
    zncc : ndarray, shape (N,), float64
        Zero-normalised cross-correlation of the final subset pair (NaN if not computed).
    iterations : ndarray, shape (N,), int64
        IC-GN iterations of the accepted solution.
    converged : ndarray, shape (N,), bool
        True where the status is OK.
    status : ndarray, shape (N,), int8
        `PointStatus` code of each point (``PointStatus(result.status[i])``).
    subset_size : int
        Subset width, px / voxels.
    step : int
        Grid step, px / voxels.
    grid_shape : tuple of int or None
        Shape of the default grid; None for user-supplied points.
    measured_displacement : ndarray, shape (N, d), float64
        The displacement before outlier replacement and regularisation.
    zncc_threshold : ndarray, shape (N,), float64
        The quality gate each point was judged against.
    texture : ndarray, shape (N,), float64
        Texture ratio of the reference subset: its smallest per-axis sum of squared
        gradients over the expectation for pure noise (1: noise only; NaN where not
        computed).
    noise_std : float
        Noise level of the data used by the texture test, grey values.
    subset_variance : ndarray, shape (N,), float64
        Grey-value variance of each reference subset (after the prefilter), the contrast
        the noise-aware gate judges the ZNCC against.
    residual_variance : float
        ``kappa``: median over the converged points of ``(1 - zncc) * subset_variance``,
        the grey-value variance per pixel the matched pairs do not explain (noise of both
        images plus interpolation error); NaN when too few points converged.
    displacement_std : ndarray, shape (N,), float64
        Predicted random error of each displacement component, px / voxels: the
        Cramer-Rao form ``sqrt(2 kappa / sum_subset (d f / d x_a)^2)`` (RMS over the axes a)
        with the reference subset's spline gradients and the residual variance of the
        matched pairs (``kappa`` estimates the noise variance of one image; NaN where not
        computed).  IC-GN reaches 1.0-1.2 times it on noisy speckles.
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
    grid_shape: tuple[int, ...] | None = None
    measured_displacement: NDArray[np.float64] | None = None
    zncc_threshold: NDArray[np.float64] | None = None
    texture: NDArray[np.float64] | None = None
    noise_std: float = float("nan")
    subset_variance: NDArray[np.float64] | None = None
    residual_variance: float = float("nan")
    displacement_std: NDArray[np.float64] | None = None

    def as_grid(self, field: str | NDArray) -> NDArray:
        """Reshape a per-point field to the grid, shape ``grid_shape + field.shape[1:]``.

        Parameters
        ----------
        field : str or ndarray, shape (N, ...)
            Name of an attribute (e.g. ``"displacement"``) or an array with one row per
            point.

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
        return arr.reshape(tuple(self.grid_shape) + arr.shape[1:])


# ----------------------------------------------------------------------------- checks


def check_data(name: str, data: ArrayLike, ndim: int) -> NDArray:
    """A real-valued finite array of `ndim` dimensions, or ValueError naming `name`."""
    arr = np.asarray(data)
    what = "a 2D (row, col) image" if ndim == 2 else "a 3D (z, y, x) volume"
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {what}, got shape {arr.shape}")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_int(name: str, value: object, low: int) -> int:
    """An int >= `low` (bool refused), or ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def check_number(name: str, value: object, *, low: float | None = None, strict: bool = False) -> float:
    """A finite float (optionally >= or > `low`), or ValueError naming `name`."""
    if low == 0:
        kind = "a positive number" if strict else "a non-negative number"
    else:
        kind = "a finite number"
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {kind}, got {value!r}") from None
    if isinstance(value, bool) or not np.isfinite(out):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if low is not None and (out <= low if strict else out < low):
        if low == 0:
            raise ValueError(f"{name} must be {'positive' if strict else 'non-negative'}, got {value!r}")
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return out


def default_grid(shape: tuple[int, ...], half: int, step: int) -> tuple[NDArray[np.float64], tuple[int, ...]]:
    """Grid points with spacing `step` at least ``half + 2`` from the border."""
    margin = half + 2
    axes = [np.arange(margin, n - margin, step) for n in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.column_stack([m.ravel() for m in mesh]).astype(np.float64)
    return pts, tuple(len(a) for a in axes)


# ----------------------------------------------------------------------------- solver


class SubsetSolver:
    """IC-GN on one pair of images / volumes: the fixed per-pair data of the kernel.

    Parameters
    ----------
    reference, deformed : ndarray, float64
        The pair (2D or 3D), already validated.
    roi : ndarray of bool
        Region of interest on the reference.
    half : int
        Subset half width.
    order : {3, 5}
        B-spline order.
    shape_function : {"affine", "quadratic"}
        Subset shape function (quadratic: 2D only).
    max_iter : int
        IC-GN iteration limit.
    tol : float
        Convergence threshold on the applied increment.
    prefilter_sigma : float, optional
        Gaussian low-pass of both inputs first (0: none); `ref` holds the filtered
        reference.

    Notes
    -----
    `run(centres, init, active=None)` returns ``(params, zncc, iterations, status)`` for
    integer subset centres (N, d) and initial shape functions (N, P).
    """

    def __init__(self, reference: NDArray, deformed: NDArray, roi: NDArray, half: int, order: int,
                 shape_function: str, max_iter: int, tol: float, prefilter_sigma: float = 0.0) -> None:
        if prefilter_sigma > 0:
            reference = ndimage.gaussian_filter(reference, prefilter_sigma, mode="mirror")
            deformed = ndimage.gaussian_filter(deformed, prefilter_sigma, mode="mirror")
        ref = reference
        self.ndim = ref.ndim
        self.ref = ref
        self.order = order
        self.grads = spline_gradients(spline_coefficients(ref, order), order)
        self.deformed = deformed
        self.coef = spline_coefficients(deformed, order)
        self.roi = roi.astype(np.uint8)
        self.half = half
        self.max_iter = max_iter
        self.tol = tol
        self.npar = n_params(self.ndim, shape_function)
        self.fit = quadratic_fit_matrix(half)

    def run(self, centres: NDArray, init: NDArray, active: NDArray | None = None) -> tuple:
        n = len(centres)
        out_p = np.full((n, self.npar), np.nan)
        out_z = np.full(n, np.nan)
        out_i = np.zeros(n, dtype=np.int64)
        out_s = np.full(n, int(PointStatus.NOT_CONVERGED), dtype=np.int64)
        if active is None:
            active = np.ones(n, dtype=bool)
        if n:
            c = np.ascontiguousarray(centres, dtype=np.int64)
            p0 = np.ascontiguousarray(init, dtype=np.float64)
            act = np.ascontiguousarray(active, dtype=np.bool_)
            if self.ndim == 2:
                icgn2d_points(self.ref, self.grads[0], self.grads[1], self.coef, self.order, self.roi, c, p0,
                              act, self.half, self.max_iter, self.tol, self.fit, out_p, out_z, out_i, out_s)
            else:
                icgn3d_points(self.ref, self.grads[0], self.grads[1], self.grads[2], self.coef, self.order,
                              self.roi, c, p0, act, self.half, self.max_iter, self.tol, out_p, out_z, out_i, out_s)
        return out_p, out_z, out_i, out_s


def _box_sums(data: NDArray, half: int, centres: NDArray) -> NDArray[np.float64]:
    """Sum of `data` over the cube of half width `half` around each centre (summed-area
    table; the centres are at least `half` from the border)."""
    table = np.asarray(data, dtype=np.float64)
    for axis in range(table.ndim):
        table = np.cumsum(table, axis=axis)
    table = np.pad(table, [(1, 0)] * table.ndim)
    d = table.ndim
    out = np.zeros(len(centres))
    for corner in range(1 << d):  # inclusion-exclusion over the 2^d corners
        idx = []
        sign = 1.0
        for axis in range(d):
            if corner >> axis & 1:
                idx.append(centres[:, axis] + half + 1)
            else:
                idx.append(centres[:, axis] - half)
                sign = -sign
        out += sign * table[tuple(idx)]
    return out


def _subset_means(data: NDArray, roi_f: NDArray | None, roi_count: NDArray, half: int,
                  centres: NDArray) -> NDArray:
    """Mean of `data` over the ROI part of each subset centred at `centres` (None: all)."""
    return _box_sums(data if roi_f is None else data * roi_f, half, centres) / np.maximum(roi_count, 1e-12)


#: scale (px / voxels) of the Gaussian derivative used by the texture test: texture at
#: the speckle scale keeps most of its gradient energy, white noise ~3 % of it
TEXTURE_SIGMA = 1.0


@lru_cache(maxsize=32)
def _texture_noise_gain(ndim: int, sigma: float) -> float:
    """Variance of a Gaussian-derivative component per unit white-noise variance."""
    n = 2 * int(np.ceil(4 * sigma)) + 9
    delta = np.zeros((n,) * ndim)
    delta[(n // 2,) * ndim] = 1.0
    order = [1] + [0] * (ndim - 1)
    g = ndimage.gaussian_filter(delta, sigma, order=order, mode="constant")
    return float(np.sum(g * g))


def texture_and_variance(ref: NDArray, roi: NDArray, half: int, centres: NDArray, noise: float,
                         prefilter_sigma: float) -> tuple[NDArray, NDArray]:
    """Texture ratio and grey-value variance of the reference subsets at `centres`.

    The texture ratio is the smallest per-axis mean squared Gaussian-derivative gradient
    (scale `TEXTURE_SIGMA`) over what white noise of standard deviation `noise` gives
    (about 1 for noise only; `ref` may already be low-passed by ``prefilter_sigma``).
    """
    if roi.all():
        roi_f, roi_count = None, np.full(len(centres), float((2 * half + 1) ** ref.ndim))
    else:
        roi_f = roi.astype(np.float64)
        roi_count = _box_sums(roi_f, half, centres)
    total = float(np.hypot(TEXTURE_SIGMA, prefilter_sigma))
    gain = _texture_noise_gain(ref.ndim, total)
    energy = None
    for axis in range(ref.ndim):
        order = [0] * ref.ndim
        order[axis] = 1
        g = ndimage.gaussian_filter(ref, TEXTURE_SIGMA, order=order, mode="mirror")
        e = _subset_means(g * g, roi_f, roi_count, half, centres)
        energy = e if energy is None else np.minimum(energy, e)
    mean = _subset_means(ref, roi_f, roi_count, half, centres)
    var = np.maximum(_subset_means(ref * ref, roi_f, roi_count, half, centres) - mean * mean, 0.0)
    return energy / (gain * max(noise, 1e-12) ** 2), var


#: a subset is UNTEXTURED only if its gradient energy is also below this share of the
#: median energy of the clearly textured subsets: a texture at the pixel scale (white
#: noise, frozen speckle) looks like noise to a single-image noise estimate
TEXTURE_RELATIVE = 0.1


def untextured_points(texture: NDArray, threshold: float) -> NDArray[np.bool_]:
    """Subsets without texture: energy consistent with noise and far below the textured ones.

    Parameters
    ----------
    texture : ndarray, shape (N,)
        Texture ratios (`texture_and_variance`), NaN where not computed.
    threshold : float
        Ratio below which a subset may be noise only (0 disables the test).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    out = np.zeros(texture.shape, dtype=bool)
    if threshold <= 0:
        return out
    fin = np.isfinite(texture)
    flat = fin & (texture <= 1e-12)
    clear = fin & (texture >= threshold)
    out |= flat
    if clear.any():
        typical = float(np.median(texture[clear]))
        out |= fin & (texture < threshold) & (texture < TEXTURE_RELATIVE * typical)
    return out


def noise_aware_gate(zncc: NDArray, variance: NDArray, ok: NDArray, *, factor: float = GATE_FACTOR,
                     floor: float = GATE_FLOOR, ceiling: float = GATE_CEILING) -> tuple[NDArray, float]:
    """Per-point ZNCC gate from the residual variance of the matched pairs.

    For a subset of grey-value variance ``v`` matched up to noise (and interpolation
    error) of variance ``kappa`` per pixel, ``1 - zncc = kappa / v``; ``kappa`` is the
    median of ``(1 - zncc) v`` over the converged points.  The gate is
    ``clip(1 - factor kappa / v, floor, ceiling)``.

    Returns the gate (N,) and kappa (NaN when fewer than 8 points converged: the gate is
    then `floor`).
    """
    use = ok & np.isfinite(zncc) & (variance > 0)
    if use.sum() < _GATE_MIN_POINTS:
        return np.full(zncc.shape, floor), float("nan")
    kappa = float(np.median((1.0 - zncc[use]) * variance[use]))
    with np.errstate(divide="ignore", invalid="ignore"):
        gate = 1.0 - factor * kappa / variance
    gate = np.where(np.isfinite(gate), gate, floor)
    return np.clip(gate, floor, ceiling), kappa


# ----------------------------------------------------------------------------- pipeline


def correlate(reference: ArrayLike, deformed: ArrayLike, *, ndim: int, subset_size: int, step: int,
              points: ArrayLike | None = None, mask: ArrayLike | None = None, shape_function: str = "affine",
              interpolation: str = "cubic", prefilter_sigma: float = 0.0, max_iterations: int = 30,
              tolerance: float = 1e-2, zncc_threshold: float | str = "auto", texture_threshold: float = 3.0,
              search_radius: int | None = None, seed_points_: ArrayLike | None = None,
              initial_displacement: ArrayLike | None = None, outlier_threshold: float | None = 2.0,
              outlier_noise: float = 0.1, replace_outliers: bool = True, regularisation: float = 0.0,
              noise_std_: float | None = None) -> CorrelationResult:
    """Subset-based correlation of two images (ndim 2) or volumes (ndim 3).

    The public faces are `vision.correlate` and `tomography.correlate`, which document
    every option with its units; this function is their shared implementation.
    """
    ref_in = check_data("reference", reference, ndim)
    def_in = check_data("deformed", deformed, ndim)
    unit = "px" if ndim == 2 else "voxels"
    if ref_in.shape != def_in.shape:
        raise ValueError(f"deformed must have the shape of reference {ref_in.shape}, got {def_in.shape}")
    subset_size = check_int("subset_size", subset_size, 7)
    if subset_size % 2 == 0:
        raise ValueError(f"subset_size must be odd, got {subset_size!r}")
    if min(ref_in.shape) <= subset_size:
        raise ValueError(f"{'images' if ndim == 2 else 'volumes'} {ref_in.shape} must be larger than "
                         f"subset_size={subset_size}")
    step = check_int("step", step, 1)
    if shape_function not in SHAPE_FUNCTIONS or (ndim == 3 and shape_function != "affine"):
        allowed = "'affine' or 'quadratic'" if ndim == 2 else "'affine'"
        raise ValueError(f"shape_function must be {allowed}, got {shape_function!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {tuple(INTERPOLATIONS)}, got {interpolation!r}")
    order = INTERPOLATIONS[interpolation]
    prefilter_sigma = check_number("prefilter_sigma", prefilter_sigma, low=0.0)
    max_iterations = check_int("max_iterations", max_iterations, 1)
    tolerance = check_number("tolerance", tolerance, low=0.0, strict=True)
    auto_gate = isinstance(zncc_threshold, str)
    if auto_gate and zncc_threshold != "auto":
        raise ValueError(f"zncc_threshold must be in [-1, 1) or 'auto', got {zncc_threshold!r}")
    if not auto_gate:
        zncc_threshold = check_number("zncc_threshold", zncc_threshold)
        if not -1.0 <= zncc_threshold < 1.0:
            raise ValueError(f"zncc_threshold must be in [-1, 1) or 'auto', got {zncc_threshold!r}")
    texture_threshold = check_number("texture_threshold", texture_threshold, low=0.0)
    if outlier_threshold is not None:
        outlier_threshold = check_number("outlier_threshold", outlier_threshold, low=0.0, strict=True)
    outlier_noise = check_number("outlier_noise", outlier_noise, low=0.0)
    regularisation = check_number("regularisation", regularisation, low=0.0)
    half = subset_size // 2
    shape = ref_in.shape

    if points is None:
        pts, grid_shape = default_grid(shape, half, step)
        if len(pts) == 0:
            raise ValueError(f"reference of shape {shape} is too small for subset_size={subset_size}: "
                             f"the default grid needs at least subset_size + 4 = {subset_size + 4} {unit} per side")
    else:
        pts = np.array(points, dtype=np.float64)
        order_txt = "(row, col)" if ndim == 2 else "(z, y, x)"
        if pts.ndim != 2 or pts.shape[1] != ndim or not np.all(np.isfinite(pts)):
            raise ValueError(f"points must be a finite (N, {ndim}) array in {order_txt} order, got shape {pts.shape}")
        grid_shape = None
    n = len(pts)
    if mask is not None:
        roi = np.asarray(mask)
        if roi.shape != shape:
            raise ValueError(f"mask must have the {'image' if ndim == 2 else 'volume'} shape {shape}, got {roi.shape}")
        roi = roi.astype(bool)
    else:
        roi = np.ones(shape, dtype=bool)
    centres = np.round(pts).astype(np.int64)
    inside = np.all((centres >= 0) & (centres < np.array(shape)), axis=1)
    masked = np.ones(n, dtype=bool)
    masked[inside] = ~roi[tuple(centres[inside].T)]

    ref = ref_in.astype(np.float64)
    defo = def_in.astype(np.float64)
    if noise_std_ is None:
        noise = noise_std(ref)
    else:
        noise = check_number("noise_std", noise_std_, low=0.0)
    if np.issubdtype(ref_in.dtype, np.integer):
        noise = max(noise, 1.0 / np.sqrt(12.0))  # quantisation
    noise = max(noise, 1e-6 * float(np.ptp(ref)) if ref.size else 0.0)
    solver = SubsetSolver(ref, defo, roi, half, order, shape_function, max_iterations, tolerance, prefilter_sigma)
    ref, defo = solver.ref, None
    npar = solver.npar

    # texture gate (points whose whole subset is inside; the others fail OUT_OF_BOUNDS)
    texture = np.full(n, np.nan)
    variance = np.full(n, np.nan)
    whole = inside & ~masked & np.all((centres >= half) & (centres < np.array(shape) - half), axis=1)
    if whole.any():
        texture[whole], variance[whole] = texture_and_variance(ref, roi, half, centres[whole], noise,
                                                               prefilter_sigma)
    untextured = whole & untextured_points(texture, texture_threshold)
    candidates = inside & ~masked & ~untextured

    seed_floor = GATE_FLOOR if auto_gate else float(zncc_threshold)
    init = np.zeros((n, npar))
    if initial_displacement is not None:
        try:
            guess = np.broadcast_to(np.asarray(initial_displacement, dtype=np.float64), (n, ndim))
        except (ValueError, TypeError):
            raise ValueError(f"initial_displacement must have shape ({ndim},) or ({n}, {ndim}), "
                             f"got {np.shape(initial_displacement)}") from None
        if not np.all(np.isfinite(guess[candidates])):
            raise ValueError("initial_displacement must be finite at the unmasked points")
        init = from_displacement(np.nan_to_num(guess), npar)
    else:
        radius = max(subset_size, 16 if ndim == 2 else 12) if search_radius is None else int(search_radius)
        if radius < 0:
            raise ValueError(f"search_radius must be >= 0, got {search_radius!r}")
        if seed_points_ is None:
            seeds = pts[seed_points(pts, candidates, subset_size, step)]
        else:
            seeds = np.array(seed_points_, dtype=np.float64).reshape(-1, ndim)
        seed_c = np.round(seeds).astype(np.int64)
        seed_c = seed_c[np.all((seed_c >= half) & (seed_c < np.array(shape) - half), axis=1)]
        seed_init = np.zeros((len(seed_c), npar))
        if len(seed_c):
            seed_init = from_displacement(seed_guesses(solver.ref, solver.deformed, seed_c.astype(np.float64),
                                                        half, radius), npar)
        sp, sz, _, ss = solver.run(seed_c, seed_init)
        good = (ss == PointStatus.OK) & (sz >= seed_floor)
        if good.any():
            init = interpolate_params(seed_c[good].astype(np.float64), sp[good], centres.astype(np.float64))
        elif len(seed_c):
            b = npar // ndim
            init[:, 0::b] = np.median(seed_init[:, 0::b], axis=0)

    par, zncc, iters, status = solver.run(centres, init, candidates)
    threshold, kappa = noise_aware_gate(zncc, variance, (status == PointStatus.OK) & candidates)
    if not auto_gate:
        threshold = np.full(n, float(zncc_threshold))
    fld = Field(centres, par, zncc, iters, status, threshold)
    spacing = float(step) if grid_shape is not None else None
    table = neighbour_table(centres.astype(np.float64),
                            radius=None if spacing is None else RADIUS_SPACINGS * spacing)

    def solve(idx: NDArray, init_p: NDArray) -> tuple:
        return solver.run(centres[idx], init_p)

    def neighbours(idx: NDArray) -> NDArray:
        return table[idx]

    repair(fld, solve, neighbours, candidates)
    status[masked] = PointStatus.MASKED
    status[~inside] = PointStatus.OUT_OF_BOUNDS
    status[untextured] = PointStatus.UNTEXTURED
    status[(status == PointStatus.OK) & ~(zncc >= threshold)] = PointStatus.LOW_ZNCC
    if outlier_threshold is not None and n > 3:
        restart_outliers(fld, solve, neighbours, threshold=outlier_threshold, noise_level=outlier_noise)

    ok = status == PointStatus.OK
    _, kappa_final = noise_aware_gate(zncc, variance, ok)
    sigma_u = np.full(n, np.nan)
    if whole.any() and np.isfinite(kappa_final):
        inv = np.mean([1.0 / np.maximum(_box_sums(g * g, half, centres[whole]), 1e-300) for g in solver.grads],
                      axis=0)
        sigma_u[whole] = np.sqrt(2.0 * kappa_final * inv)  # kappa: one image's noise variance
    at_point = shift_params(np.nan_to_num(par), pts - centres)
    disp, grad = displacement_and_gradient(at_point, ndim)
    disp = disp.copy()
    disp[~ok] = np.nan
    grad[~ok] = np.nan
    measured = disp.copy()
    if replace_outliers:
        out_idx = np.flatnonzero(status == PointStatus.OUTLIER)
        if len(out_idx):
            from ._field import neighbour_median

            med, count = neighbour_median(measured, table[out_idx])
            have = count > 0
            disp[out_idx[have]] = med[have]
    if regularisation > 0:
        w = np.where(ok, np.clip((zncc - threshold) / np.maximum(1.0 - threshold, 1e-6), 0, 1) ** 2, 0.0)
        disp = regularise(pts, measured, np.nan_to_num(w), strength=regularisation, neighbours=table)
    return CorrelationResult(points=pts, displacement=disp, gradient=grad, zncc=zncc, iterations=iters,
                             converged=ok, status=status.astype(np.int8), subset_size=subset_size, step=step,
                             grid_shape=grid_shape, measured_displacement=measured, zncc_threshold=threshold,
                             texture=texture, noise_std=float(noise), subset_variance=variance,
                             residual_variance=kappa, displacement_std=sigma_u)
