"""Robust statistics shared by the engines and the onset detectors.

References
----------
J. Immerkaer, "Fast noise variance estimation", Computer Vision and Image Understanding
64, 300-302 (1996). https://doi.org/10.1006/cviu.1996.0060
P. J. Huber, E. M. Ronchetti, "Robust Statistics", 2nd ed., Wiley (2009) (MAD, Tukey's
biweight).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = ["MAD_TO_SIGMA", "Z_CAP", "robust_centre_scale", "robust_z", "lower_scale", "tukey_weights",
           "noise_std", "chi_median"]

#: 1.4826: the MAD of a normal distribution times this is its standard deviation.
MAD_TO_SIGMA = 1.4826
#: at most this many elements enter the noise estimate's median
_NOISE_SAMPLES = 1 << 17
#: z-scores are clipped to +-Z_CAP (a dead-flat field cannot give inf).
Z_CAP = 1.0e3


def robust_centre_scale(values: ArrayLike) -> tuple[float, float]:
    """Median and 1.4826 MAD of the finite values (NaN, NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(fin))
    return med, MAD_TO_SIGMA * float(np.median(np.abs(fin - med)))


def lower_scale(values: ArrayLike) -> tuple[float, float]:
    """Median and a one-sided robust scale from the values at or below the median.

    Evidence of a local event (a crack) is an upper tail; this scale, 1.4826 times the
    median distance of the lower half from the median, is not inflated by it.
    """
    v = np.asarray(values, dtype=np.float64)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(fin))
    return med, MAD_TO_SIGMA * float(np.median(med - fin[fin <= med]))


def robust_z(values: ArrayLike, *, centre: float, scale: float) -> NDArray[np.float64]:
    """``(values - centre) / scale`` clipped to +-`Z_CAP` (NaN stays NaN)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((v - centre) / scale, -Z_CAP, Z_CAP)


def tukey_weights(residual: ArrayLike, c: float) -> NDArray[np.float64]:
    """Tukey biweight ``(1 - (r / c)^2)^2`` for ``|r| < c``, else 0."""
    r = np.abs(np.asarray(residual, dtype=np.float64)) / c
    return np.where(r < 1.0, (1.0 - r * r) ** 2, 0.0)


def chi_median(ndim: int) -> float:
    """Median of the norm of an ``ndim``-vector of unit normal errors (chi distribution)."""
    from scipy.stats import chi2

    return float(np.sqrt(chi2.ppf(0.5, ndim)))


def noise_std(data: ArrayLike) -> float:
    """Standard deviation of additive white noise in an image or volume (robust).

    The difference between each element and the mean of its ``2 d`` face neighbours has a
    standard deviation of ``sigma sqrt(1 + 1 / (2 d))`` for white noise (Immerkaer's
    operator in 2D, its analogue in 3D); its 1.4826 MAD over the data, scaled back, is the
    estimate.  Smooth texture barely contributes; texture at the pixel scale does (the
    estimate is then an upper bound).
    """
    v = np.asarray(data, dtype=np.float32)
    d = v.ndim
    nb = sum(ndimage.uniform_filter1d(v, 3, axis=a, mode="reflect") for a in range(d))
    lap = v - (3.0 * nb - d * v) / (2 * d)
    core = lap[(slice(1, -1),) * d].ravel()
    if core.size == 0:
        return 0.0
    if core.size > _NOISE_SAMPLES:  # a strided sample is as good for a median, and faster
        core = core[::core.size // _NOISE_SAMPLES]
    med = float(np.median(core))
    mad = float(np.median(np.abs(core - med)))
    return MAD_TO_SIGMA * mad / float(np.sqrt(1.0 + 1.0 / (2 * d)))
