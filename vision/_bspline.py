"""Cubic B-spline image interpolation for sub-pixel DIC.

The coefficients of the interpolating bicubic B-spline are computed once per image
(`spline_coefficients`, a recursive prefilter, Unser 1999) and then evaluated anywhere
with the numba kernel `bspline_value`.  `spline_gradients` gives the exact gradient of
the interpolant at the pixel centres, which the inverse-compositional Gauss-Newton solver
uses for the (fixed) reference subset.

References
----------
M. Unser, "Splines: a perfect fit for signal and image processing", IEEE Signal
Processing Magazine 16(6), 22-38 (1999). https://doi.org/10.1109/79.799930
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["SPLINE_PAD", "bspline_value", "spline_coefficients", "spline_gradients"]

#: Border (px) added around the image before prefiltering; coefficient (i, j) of the image
#: pixel (i, j) is stored at ``(i + SPLINE_PAD, j + SPLINE_PAD)``.
SPLINE_PAD = 4


def spline_coefficients(image: NDArray) -> NDArray[np.float64]:
    """Bicubic B-spline coefficients of an image, padded by `SPLINE_PAD` px.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Image, any real dtype (not modified).

    Returns
    -------
    ndarray, shape (H + 2 * SPLINE_PAD, W + 2 * SPLINE_PAD), float64
        Coefficients c such that ``image[i, j] == sum c[i + k + P, j + l + P] *
        beta3(k) * beta3(l)`` (P = `SPLINE_PAD`); the image is mirror-extended so the
        interpolant is smooth up to the border.
    """
    img = np.asarray(image, dtype=np.float64)
    padded = np.pad(img, SPLINE_PAD, mode="symmetric")
    return ndimage.spline_filter(padded, order=3, mode="mirror", output=np.float64)


def spline_gradients(coefficients: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """Exact gradient of the B-spline interpolant at the pixel centres.

    Parameters
    ----------
    coefficients : ndarray, shape (H + 2P, W + 2P)
        Output of `spline_coefficients`.

    Returns
    -------
    grad_row, grad_col : ndarray, shape (H, W), float64
        d f / d row and d f / d col, intensity per px.
    """
    smooth = np.array([1.0, 4.0, 1.0]) / 6.0
    deriv = np.array([-0.5, 0.0, 0.5])
    gr = ndimage.correlate1d(ndimage.correlate1d(coefficients, deriv, axis=0), smooth, axis=1)
    gc = ndimage.correlate1d(ndimage.correlate1d(coefficients, smooth, axis=0), deriv, axis=1)
    p = SPLINE_PAD
    return (np.ascontiguousarray(gr[p:-p, p:-p]), np.ascontiguousarray(gc[p:-p, p:-p]))


@njit(cache=True, inline="always")
def _weights(t: float):  # pragma: no cover - compiled
    s = 1.0 - t
    t2 = t * t
    t3 = t2 * t
    w0 = s * s * s / 6.0
    w3 = t3 / 6.0
    w1 = 2.0 / 3.0 - t2 + 0.5 * t3
    w2 = 1.0 - w0 - w1 - w3
    return w0, w1, w2, w3


@njit(cache=True, inline="always")
def bspline_value(coef, r: float, c: float) -> float:  # pragma: no cover - compiled
    """Value of the bicubic B-spline at image position (r, c) (no bounds check).

    The caller guarantees ``-2 <= r <= H + 1`` and likewise for c.
    """
    ir = int(np.floor(r))
    ic = int(np.floor(c))
    a0, a1, a2, a3 = _weights(r - ir)
    b0, b1, b2, b3 = _weights(c - ic)
    i = ir - 1 + SPLINE_PAD
    j = ic - 1 + SPLINE_PAD
    v = 0.0
    row = coef[i]
    v += a0 * (b0 * row[j] + b1 * row[j + 1] + b2 * row[j + 2] + b3 * row[j + 3])
    row = coef[i + 1]
    v += a1 * (b0 * row[j] + b1 * row[j + 1] + b2 * row[j + 2] + b3 * row[j + 3])
    row = coef[i + 2]
    v += a2 * (b0 * row[j] + b1 * row[j + 1] + b2 * row[j + 2] + b3 * row[j + 3])
    row = coef[i + 3]
    v += a3 * (b0 * row[j] + b1 * row[j + 1] + b2 * row[j + 2] + b3 * row[j + 3])
    return v
