"""Interpolating B-splines of order 3 (cubic) and 5 (quintic) on images and volumes.

The coefficients of the interpolating B-spline are computed once per image or volume
(`spline_coefficients`, the recursive prefilter of Unser 1999 along every axis) and then
evaluated anywhere by the numba IC-GN kernels (`weights3`, `weights5`).
`spline_gradients` gives the exact gradient of the interpolant at the pixel / voxel
centres, which the inverse-compositional Gauss-Newton solver uses for the fixed
reference subset.

Why two orders: the interpolation bias of a B-spline grows with the image content near
the Nyquist frequency.  On blurred synthetic speckles cubic splines are exact to ~0.001
px, but on real, un-blurred ("frozen") texture their bias reaches a few hundredths of a
pixel at sub-pixel shifts; quintic splines cut it by about an order of magnitude at about
twice the cost per sample in 2D (36 instead of 16 taps; 3.4x in 3D).

References
----------
M. Unser, "Splines: a perfect fit for signal and image processing", IEEE Signal
Processing Magazine 16(6), 22-38 (1999). https://doi.org/10.1109/79.799930
H. W. Schreier, J. R. Braasch, M. A. Sutton, "Systematic errors in digital image
correlation caused by intensity interpolation", Opt. Eng. 39, 2915-2921 (2000).
https://doi.org/10.1117/1.1314593
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["ORDERS", "SPLINE_PAD", "spline_coefficients", "spline_gradients", "weights3", "weights5"]

#: Supported spline orders.
ORDERS = (3, 5)

#: Border (pixels / voxels) added around the data before prefiltering; the coefficient of
#: element ``idx`` is stored at ``idx + SPLINE_PAD`` along every axis.  Enough for the
#: quintic taps (offsets -2..3) at any position inside the data.
SPLINE_PAD = 4

# B-spline values and derivatives at the integers (offsets -k..k): the interpolant's value
# and gradient at a grid point are these correlated with the coefficients.
_SMOOTH = {3: np.array([1.0, 4.0, 1.0]) / 6.0, 5: np.array([1.0, 26.0, 66.0, 26.0, 1.0]) / 120.0}
_DERIV = {3: np.array([-0.5, 0.0, 0.5]), 5: np.array([-5.0, -50.0, 0.0, 50.0, 5.0]) / 120.0}


def _check_order(order: int) -> int:
    if order not in ORDERS:
        raise ValueError(f"interpolation order must be one of {ORDERS}, got {order!r}")
    return int(order)


def spline_coefficients(data: NDArray, order: int = 3) -> NDArray[np.float64]:
    """B-spline coefficients of an image or volume, padded by `SPLINE_PAD` on every side.

    Parameters
    ----------
    data : ndarray, shape (H, W) or (Z, Y, X)
        Grey values, any real dtype (not modified).
    order : {3, 5}, optional
        Spline order (cubic or quintic).

    Returns
    -------
    ndarray, shape ``data.shape + 2 * SPLINE_PAD``, float64
        Coefficients c with ``data[idx] == sum_k c[idx + k + P] beta(k)`` (P =
        `SPLINE_PAD`, beta the centred B-spline of that order); the data are
        mirror-extended so that the interpolant is smooth up to the border.
    """
    order = _check_order(order)
    padded = np.pad(np.asarray(data, dtype=np.float64), SPLINE_PAD, mode="symmetric")
    return ndimage.spline_filter(padded, order=order, mode="mirror", output=np.float64)


def spline_gradients(coefficients: NDArray[np.float64], order: int = 3) -> tuple[NDArray, ...]:
    """Exact gradient of the B-spline interpolant at the pixel / voxel centres.

    Parameters
    ----------
    coefficients : ndarray
        Output of `spline_coefficients` (same `order`).
    order : {3, 5}, optional
        Spline order.

    Returns
    -------
    tuple of ndarray, each of the unpadded shape, float64
        The partial derivative along each axis (axis order of the data), grey value per
        pixel / voxel.
    """
    order = _check_order(order)
    r = order // 2  # half width of the integer-sampled kernels
    p = SPLINE_PAD
    core = tuple(slice(p - r, n - p + r) for n in coefficients.shape)
    c = coefficients[core]
    out = []
    for axis in range(c.ndim):
        g = c
        for ax in range(c.ndim):
            g = ndimage.correlate1d(g, _DERIV[order] if ax == axis else _SMOOTH[order], axis=ax,
                                    mode="nearest")
        out.append(np.ascontiguousarray(g[(slice(r, -r),) * c.ndim]))
    return tuple(out)


@lru_cache(maxsize=32)
def gradient_noise_gain(ndim: int, order: int, prefilter_sigma: float) -> float:
    """Variance of one gradient component of the interpolant per unit white-noise variance.

    The chain (optional Gaussian prefilter, spline prefilter, derivative) is linear, so the
    gain is the sum of squares of its impulse response.  Used by the texture test: a
    subset of m pixels of pure noise of standard deviation s has an expected sum of squared
    gradients of ``m * gain * s**2`` per axis.
    """
    n = 41 if ndim == 2 else 25
    delta = np.zeros((n,) * ndim)
    delta[(n // 2,) * ndim] = 1.0
    if prefilter_sigma > 0:
        delta = ndimage.gaussian_filter(delta, prefilter_sigma, mode="constant")
    g = spline_gradients(spline_coefficients(delta, order), order)[0]
    return float(np.sum(g * g))


@njit(cache=True, inline="always")
def weights3(t: float):  # pragma: no cover - compiled
    """Cubic B-spline weights of the taps at offsets -1, 0, 1, 2 for a fraction t in [0, 1]."""
    s = 1.0 - t
    t2 = t * t
    t3 = t2 * t
    w0 = s * s * s / 6.0
    w3 = t3 / 6.0
    w1 = 2.0 / 3.0 - t2 + 0.5 * t3
    w2 = 1.0 - w0 - w1 - w3
    return w0, w1, w2, w3


@njit(cache=True, inline="always")
def _b5_inner(x: float) -> float:  # pragma: no cover - compiled
    """beta5(x) for 0 <= x <= 1."""
    x2 = x * x
    return 11.0 / 20.0 - 0.5 * x2 + 0.25 * x2 * x2 - x2 * x2 * x / 12.0


@njit(cache=True, inline="always")
def _b5_mid(x: float) -> float:  # pragma: no cover - compiled
    """beta5(x) for 1 <= x <= 2."""
    x2 = x * x
    return (17.0 / 40.0 + 0.625 * x - 1.75 * x2 + 1.25 * x2 * x - 0.375 * x2 * x2
            + x2 * x2 * x / 24.0)


@njit(cache=True, inline="always")
def weights5(t: float):  # pragma: no cover - compiled
    """Quintic B-spline weights of the taps at offsets -2..3 for a fraction t in [0, 1]."""
    s = 1.0 - t
    s2 = s * s
    t2 = t * t
    w0 = s2 * s2 * s / 120.0
    w5 = t2 * t2 * t / 120.0
    w1 = _b5_mid(1.0 + t)
    w2 = _b5_inner(t)
    w3 = _b5_inner(s)
    w4 = 1.0 - w0 - w1 - w2 - w3 - w5
    return w0, w1, w2, w3, w4, w5
