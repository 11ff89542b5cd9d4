"""Tricubic B-spline interpolation of volumes for sub-voxel DVC.

The coefficients of the interpolating tricubic B-spline are computed once per volume (a
recursive prefilter along each axis, Unser 1999) and evaluated anywhere by the numba IC-GN
kernel.  `spline_gradients` gives the exact gradient of the interpolant at the voxel
centres, used for the (fixed) reference subvolume.

This is the 3D counterpart of ``vision._bspline``; `tomography` depends on no other
package of ours (architecture.md), so the six-line weight function is repeated here.

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

__all__ = ["SPLINE_PAD", "spline_coefficients", "spline_gradients", "spline_value"]

#: Border (voxels) added around the volume before prefiltering; the coefficient of voxel
#: (k, j, i) is stored at ``(k + SPLINE_PAD, j + SPLINE_PAD, i + SPLINE_PAD)``.
SPLINE_PAD = 3


def spline_coefficients(volume: NDArray) -> NDArray[np.float64]:
    """Tricubic B-spline coefficients of a volume, padded by `SPLINE_PAD` voxels.

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Grey values, any real dtype (not modified).

    Returns
    -------
    ndarray, shape (Z + 2P, Y + 2P, X + 2P), float64
        Coefficients c with ``volume[k, j, i] == sum c[k + a + P, j + b + P, i + d + P]
        beta3(a) beta3(b) beta3(d)`` over a, b, d in {-1, 0, 1} (P = `SPLINE_PAD`); the
        volume is mirror-extended so that the interpolant is smooth up to the border.
    """
    vol = np.asarray(volume, dtype=np.float64)
    padded = np.pad(vol, SPLINE_PAD, mode="symmetric")
    return ndimage.spline_filter(padded, order=3, mode="mirror", output=np.float64)


def spline_gradients(coefficients: NDArray[np.float64]) -> tuple[NDArray, NDArray, NDArray]:
    """Exact gradient of the tricubic B-spline interpolant at the voxel centres.

    Parameters
    ----------
    coefficients : ndarray, shape (Z + 2P, Y + 2P, X + 2P)
        Output of `spline_coefficients`.

    Returns
    -------
    grad_z, grad_y, grad_x : ndarray, shape (Z, Y, X), float64
        Partial derivatives of the interpolant, grey value per voxel.
    """
    smooth = np.array([1.0, 4.0, 1.0]) / 6.0
    deriv = np.array([-0.5, 0.0, 0.5])
    p = SPLINE_PAD
    core = (slice(p - 1, -p + 1),) * 3
    c = coefficients[core]  # one voxel of margin is enough for the 3-tap filters
    out = []
    for axis in range(3):
        g = c
        for ax in range(3):
            g = ndimage.correlate1d(g, deriv if ax == axis else smooth, axis=ax, mode="nearest")
        out.append(np.ascontiguousarray(g[1:-1, 1:-1, 1:-1]))
    return out[0], out[1], out[2]


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
def spline_value(coef, z: float, y: float, x: float) -> float:  # pragma: no cover - compiled
    """Value of the tricubic B-spline at volume position (z, y, x) (no bounds check).

    The caller guarantees ``-1 <= z <= Z`` and likewise for y and x.
    """
    iz = int(np.floor(z))
    iy = int(np.floor(y))
    ix = int(np.floor(x))
    a0, a1, a2, a3 = _weights(z - iz)
    b0, b1, b2, b3 = _weights(y - iy)
    c0, c1, c2, c3 = _weights(x - ix)
    k0 = iz - 1 + SPLINE_PAD
    j0 = iy - 1 + SPLINE_PAD
    i0 = ix - 1 + SPLINE_PAD
    v = 0.0
    for a in range(4):
        wa = a0 if a == 0 else (a1 if a == 1 else (a2 if a == 2 else a3))
        plane = coef[k0 + a]
        acc = 0.0
        for b in range(4):
            wb = b0 if b == 0 else (b1 if b == 1 else (b2 if b == 2 else b3))
            row = plane[j0 + b]
            acc += wb * (c0 * row[i0] + c1 * row[i0 + 1] + c2 * row[i0 + 2] + c3 * row[i0 + 3])
        v += wa * acc
    return v
