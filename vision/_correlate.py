"""2D digital image correlation: subset-based IC-GN with reliability-guided repair.

`correlate` is the 2D face of the shared correlation core (`correlation.correlate_nd`):
validation, Gaussian prefilter, biquintic B-spline interpolation, texture gate, seeds
(phase correlation + coarse-to-fine template matching), IC-GN (numba, parallel over
points), noise-aware quality gate, reliability-guided repair, normalised median test.
`correlate_sequence` correlates a frame sequence against a reference that is updated
when the correlation degrades.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from correlation import CorrelationResult, PointStatus, correlate_nd

__all__ = ["DICResult", "PointStatus", "correlate", "correlate_sequence"]

#: The result of `correlate` (points (N, 2) in (row, col) order, px).
DICResult = CorrelationResult


def correlate(reference: ArrayLike, deformed: ArrayLike, *, subset_size: int = 31, step: int = 8,
              points: ArrayLike | None = None, mask: ArrayLike | None = None,
              shape_function: str = "affine", interpolation: str = "quintic",
              prefilter_sigma_px: float = 0.6, max_iterations: int = 30, tolerance: float = 1e-2,
              zncc_threshold: float | str = "auto", texture_threshold: float = 3.0,
              search_radius: int | None = None, seed_points: ArrayLike | None = None,
              initial_displacement: ArrayLike | None = None, outlier_threshold: float | None = 2.0,
              outlier_noise_px: float = 0.1, replace_outliers: bool = False,
              regularisation: float = 0.0, noise_std: float | None = None) -> DICResult:
    """Subset-based 2D DIC between a reference and a deformed image.

    Parameters
    ----------
    reference, deformed : ndarray, shape (H, W)
        Images, any real dtype (uint8, uint16, float); not modified.
    subset_size : int, optional
        Subset width, px, odd and >= 7.
    step : int, optional
        Grid spacing of the default points, px, >= 1.
    points : array_like, shape (N, 2), optional
        Reference positions (row, col), px.  Default: a grid with `step` spacing at least
        ``subset_size // 2 + 2`` px from the border.
    mask : ndarray of bool, shape (H, W), optional
        Region of interest on the reference.  Points outside it get status MASKED (kept
        in the output so the grid stays intact); subset pixels outside it are ignored,
        and subsets less than half inside are MASKED.
    shape_function : {"affine", "quadratic"}, optional
        First-order (6 parameters) or second-order (12 parameters) subset shape function.
    interpolation : {"quintic", "cubic"}, optional
        B-spline order of the deformed image's interpolant.
    prefilter_sigma_px : float, optional
        Standard deviation of a Gaussian low-pass applied to both images first, px (0:
        none).  With quintic splines, 0.6 px keeps the interpolation bias on real,
        un-blurred texture at <= 0.005 px (cubic alone: up to 0.024 px) and lowers the
        random error on noisy images (benchmarks/README.md, real2d).
    max_iterations : int, optional
        IC-GN iteration limit.
    tolerance : float, optional
        Convergence threshold on the norm of the last parameter increment, px (gradient
        terms scaled by the half subset). The increment is applied before the test, so the
        remaining error is far below it: on 2 %-noise speckles 1e-2 and 1e-3 give the same
        bias and random error while 1e-2 needs fewer samplings per point.
    zncc_threshold : "auto" or float, optional
        Quality gate.  "auto": noise-aware; a point is LOW_ZNCC when ``1 - zncc`` exceeds
        4 times what the image noise gives a matched subset of its contrast (never
        accepted below 0.5, always above 0.98).  A number: a constant gate.
    texture_threshold : float, optional
        Texture gate: subsets whose mean squared gradient (Gaussian derivative, 1 px) is
        below this multiple of what the image noise alone gives are UNTEXTURED and not
        iterated (the stage around a specimen, a flat background).  0 disables it.
    search_radius : int, optional
        Integer search radius around the global shift at the seed points, px
        (default ``max(subset_size, 16)``).
    seed_points : array_like, shape (K, 2), optional
        Reference positions to start from (default: a sparse grid of the points).
    initial_displacement : array_like, shape (2,) or (N, 2), optional
        Initial guess (row, col), px; skips the integer search.
    outlier_threshold : float or None, optional
        Normalised-median-test threshold (None disables the test); outliers restart from
        their neighbours' median and are OUTLIER if they stay outliers.
    outlier_noise_px : float, optional
        Fluctuation level epsilon of the median test, px.
    replace_outliers : bool, optional
        Give OUTLIER points the median displacement of their valid neighbours.
    regularisation : float, optional
        Strength of the quality-weighted smoothing of the field (0: none).
    noise_std : float, optional
        Noise level of the images, grey values (default: estimated from the reference).

    Returns
    -------
    DICResult
        `correlation.CorrelationResult` with points (N, 2) (row, col), px.

    Raises
    ------
    ValueError
        On bad images, sizes or options; the message names the argument.

    Notes
    -----
    Zero-normalised SSD criterion, inverse-compositional Gauss-Newton solver with the
    reference subset, its steepest-descent images and Hessian precomputed per point
    (Pan et al. 2013, Baker and Matthews 2004), B-spline interpolation of the deformed
    image (Unser 1999) after a Gaussian prefilter (Pan 2013, bias reduction).  Subsets
    straddling a discontinuity (an opening crack) decorrelate: they fail the quality gate
    and are flagged instead of spoiling their neighbours, since the repair pass only
    grows from points that pass it.

    References
    ----------
    B. Pan, K. Li, W. Tong, Exp. Mech. 53, 1277-1289 (2013).
    https://doi.org/10.1007/s11340-013-9717-6
    S. Baker, I. Matthews, IJCV 56, 221-255 (2004).
    https://doi.org/10.1023/B:VISI.0000011205.11775.fd
    B. Pan, "Reliability-guided digital image correlation for image deformation
    measurement", Appl. Opt. 48, 1535-1542 (2009). https://doi.org/10.1364/AO.48.001535
    B. Pan, "Bias error reduction of digital image correlation using Gaussian
    pre-filtering", Opt. Lasers Eng. 51, 1161-1167 (2013).
    https://doi.org/10.1016/j.optlaseng.2013.04.009

    Examples
    --------
    >>> res = correlate(ref, cur, subset_size=31, step=8)  # doctest: +SKIP
    >>> u = res.as_grid("displacement")  # (R, C, 2), px
    """
    return correlate_nd(reference, deformed, ndim=2, subset_size=subset_size, step=step, points=points,
                        mask=mask, shape_function=shape_function, interpolation=interpolation,
                        prefilter_sigma=prefilter_sigma_px, max_iterations=max_iterations, tolerance=tolerance,
                        zncc_threshold=zncc_threshold, texture_threshold=texture_threshold,
                        search_radius=search_radius, seed_points_=seed_points,
                        initial_displacement=initial_displacement, outlier_threshold=outlier_threshold,
                        outlier_noise=outlier_noise_px, replace_outliers=replace_outliers,
                        regularisation=regularisation, noise_std_=noise_std)


def correlate_sequence(frames: Sequence[ArrayLike], *, mode: str = "cumulative",
                       reference: ArrayLike | None = None, update_zncc: float = 0.7,
                       subset_size: int = 31, step: int = 8, points: ArrayLike | None = None,
                       mask: ArrayLike | None = None, **options) -> list[DICResult]:
    """Correlate a sequence of frames, displacements relative to the first reference.

    Parameters
    ----------
    frames : sequence of ndarray, shape (H, W)
        Images in time order.
    mode : {"cumulative", "incremental"}, optional
        "cumulative": each frame is correlated to the current reference, which is moved to
        the previous frame (carrying the displacement) when the median ZNCC drops below
        `update_zncc`.  "incremental": always to the previous frame.
    reference : ndarray, shape (H, W), optional
        First reference; default ``frames[0]`` (whose result is then zero displacement).
    update_zncc : float, optional
        Reference-update threshold on the median ZNCC (cumulative mode).
    subset_size, step, points, mask
        As in `correlate` (``mask`` and ``points`` refer to the first reference).
    **options
        Further keyword options of `correlate` (e.g. ``shape_function``,
        ``zncc_threshold``); unknown names raise TypeError.

    Returns
    -------
    list of DICResult
        One per frame; `points` are the positions in the first reference and
        `displacement` / `gradient` are relative to it (gradients composed through the
        reference updates).

    Raises
    ------
    ValueError
        On a bad mode or threshold, or from `correlate`.

    Notes
    -----
    `correlation.ReferenceTracker` does the tracking: after a reference update the points
    are tracked at their current positions (sub-pixel; the subset is centred on the
    nearest pixel and the shape function is evaluated at the exact point) and the total
    deformation is composed, ``F_total = F_increment @ F_previous``.
    """
    from functools import partial

    from correlation import ReferenceTracker

    if mode not in ("cumulative", "incremental"):
        raise ValueError(f"mode must be 'cumulative' or 'incremental', got {mode!r}")
    if not -1.0 <= update_zncc <= 1.0:
        raise ValueError(f"update_zncc must be in [-1, 1], got {update_zncc!r}")
    frames = list(frames)
    if not frames:
        return []
    base = frames[0] if reference is None else reference
    first = correlate(base, base, subset_size=subset_size, step=step, points=points, mask=mask, **options)
    run = partial(correlate, subset_size=subset_size, step=step, **options)
    tracker = ReferenceTracker(np.asarray(base), correlate=run, points=first.points, grid_shape=first.grid_shape,
                               mask=mask, mode=mode, update_zncc=update_zncc)
    results: list[DICResult] = []
    for idx, img in enumerate(frames):
        if reference is None and idx == 0:
            results.append(first)
            tracker.track(img)  # frame 0 is the base: sets the previous frame
            continue
        tf = tracker.track(np.asarray(img))
        res = tf.result
        results.append(DICResult(points=first.points, displacement=tf.displacement, gradient=tf.gradient,
                                 zncc=res.zncc, iterations=res.iterations, converged=tf.converged,
                                 status=tf.status, subset_size=res.subset_size, step=res.step,
                                 grid_shape=first.grid_shape, measured_displacement=tf.displacement,
                                 zncc_threshold=res.zncc_threshold, texture=res.texture,
                                 noise_std=res.noise_std))
    return results
