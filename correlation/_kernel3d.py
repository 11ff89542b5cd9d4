"""Numba IC-GN kernel for 3D subvolumes (12-parameter affine shape function).

Parameters in blocks of four per displacement component ``i`` in (z, y, x) order (see
`correlation._warp`)::

    p[4 i] = u_i,   p[4 i + 1 + j] = d u_i / d x_j   (j in z, y, x)

so the reference voxel centre + d (offset from the subvolume centre c) maps to
``c + d + u + G d`` with ``G[i, j] = p[4 i + 1 + j]``.  The deformed volume is sampled
with the tricubic or triquintic B-spline of `correlation._bspline`.

References
----------
B. Pan, B. Wang, "Digital volume correlation with improved speed and accuracy using an
inverse-compositional Gauss-Newton algorithm", Exp. Mech. 56, 1129-1141 (2016).
https://doi.org/10.1007/s11340-016-0144-3
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._bspline import SPLINE_PAD, weights3, weights5
from ._kernel_common import (FAST, MASKED, NOT_CONVERGED, OK, OUT_OF_BOUNDS, centre_reference,
                             gauss_newton_increment, hessian_inverse, znssd_residual)

__all__ = ["NPAR", "icgn3d_points"]

NPAR = 12


@njit(cache=True, inline="always")
def _sample3(coef, wz: float, wy: float, wx: float) -> float:  # pragma: no cover - compiled
    iz = int(wz)
    iy = int(wy)
    ix = int(wx)
    wa = weights3(wz - iz)
    wb = weights3(wy - iy)
    c0, c1, c2, c3 = weights3(wx - ix)
    k0 = iz - 1 + SPLINE_PAD
    j0 = iy - 1 + SPLINE_PAD
    i0 = ix - 1 + SPLINE_PAD
    v = 0.0
    for da in range(4):
        acc = 0.0
        for db in range(4):
            row = coef[k0 + da, j0 + db]
            acc += wb[db] * (c0 * row[i0] + c1 * row[i0 + 1] + c2 * row[i0 + 2] + c3 * row[i0 + 3])
        v += wa[da] * acc
    return v


@njit(cache=True, inline="always")
def _sample5(coef, wz: float, wy: float, wx: float) -> float:  # pragma: no cover - compiled
    iz = int(wz)
    iy = int(wy)
    ix = int(wx)
    wa = weights5(wz - iz)
    wb = weights5(wy - iy)
    c0, c1, c2, c3, c4, c5 = weights5(wx - ix)
    k0 = iz - 2 + SPLINE_PAD
    j0 = iy - 2 + SPLINE_PAD
    i0 = ix - 2 + SPLINE_PAD
    v = 0.0
    for da in range(6):
        acc = 0.0
        for db in range(6):
            row = coef[k0 + da, j0 + db]
            acc += wb[db] * (c0 * row[i0] + c1 * row[i0 + 1] + c2 * row[i0 + 2] + c3 * row[i0 + 3]
                             + c4 * row[i0 + 4] + c5 * row[i0 + 5])
        v += wa[da] * acc
    return v


@njit(cache=True)
def _inv3(m, out):  # pragma: no cover - compiled
    """Inverse of a 3 x 3 matrix into `out`; returns the determinant."""
    a, b, c = m[0, 0], m[0, 1], m[0, 2]
    d, e, f = m[1, 0], m[1, 1], m[1, 2]
    g, h, i = m[2, 0], m[2, 1], m[2, 2]
    A = e * i - f * h
    B = -(d * i - f * g)
    C = d * h - e * g
    det = a * A + b * B + c * C
    out[0, 0] = A / det
    out[1, 0] = B / det
    out[2, 0] = C / det
    out[0, 1] = -(b * i - c * h) / det
    out[1, 1] = (a * i - c * g) / det
    out[2, 1] = -(a * h - b * g) / det
    out[0, 2] = (b * f - c * e) / det
    out[1, 2] = -(a * f - c * d) / det
    out[2, 2] = (a * e - b * d) / det
    return det


@njit(cache=True)
def _compose(p, dp):  # pragma: no cover - compiled
    """p <- W(p) o W(dp)^-1 for the 12-parameter affine warp (in place)."""
    fd = np.empty((3, 3))
    fi = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            fd[i, j] = dp[4 * i + 1 + j] + (1.0 if i == j else 0.0)
    _inv3(fd, fi)
    ti = np.empty(3)
    for i in range(3):
        ti[i] = -(fi[i, 0] * dp[0] + fi[i, 1] * dp[4] + fi[i, 2] * dp[8])
    fp = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            fp[i, j] = p[4 * i + 1 + j] + (1.0 if i == j else 0.0)
    new_g = np.empty(3)
    for i in range(3):
        t = p[4 * i]
        for j in range(3):
            t += fp[i, j] * ti[j]
        for j in range(3):
            acc = 0.0
            for k in range(3):
                acc += fp[i, k] * fi[k, j]
            new_g[j] = acc - (1.0 if i == j else 0.0)
        p[4 * i] = t
        for j in range(3):
            p[4 * i + 1 + j] = new_g[j]


@njit(cache=True, parallel=True, fastmath=FAST)
def icgn3d_points(ref, grad_z, grad_y, grad_x, coef, order, roi, centres, init, active, half,
                  max_iter, tol, out_p, out_zncc, out_iter, out_status):  # pragma: no cover
    """IC-GN with the ZNSSD criterion on many subvolumes in parallel.

    Parameters
    ----------
    ref, grad_z, grad_y, grad_x : ndarray, shape (Z, Y, X), float64
        Reference volume and the gradient of its spline interpolant (per voxel).
    coef : ndarray
        B-spline coefficients of the deformed volume (`spline_coefficients`).
    order : int
        Spline order of `coef` (3 or 5).
    roi : ndarray, shape (Z, Y, X), uint8
        Voxels of the reference inside the region of interest (1) or not (0).
    centres : ndarray, shape (N, 3), int64
        Subvolume centres (z, y, x), voxels.
    init : ndarray, shape (N, 12), float64
        Initial shape-function parameters.
    active : ndarray, shape (N,), bool
        Points to solve; the others are left untouched.
    half : int
        Subvolume half width (size ``2 * half + 1``).
    max_iter : int
        Maximum number of Gauss-Newton iterations.
    tol : float
        Convergence threshold on the norm of the applied parameter increment, voxels
        (gradient terms scaled by `half`).
    out_p, out_zncc, out_iter, out_status : ndarray
        Outputs: parameters (N, 12), ZNCC of the last sampled subvolume pair (N,),
        iterations (N,), status code (N,).
    """
    n_pts = centres.shape[0]
    Z, Y, X = ref.shape
    size = 2 * half + 1
    n_full = size * size * size
    zmax = Z - 1.0
    ymax = Y - 1.0
    xmax = X - 1.0
    quintic = order == 5
    for k in prange(n_pts):
        if not active[k]:
            continue
        cz = centres[k, 0]
        cy = centres[k, 1]
        cx = centres[k, 2]
        out_zncc[k] = np.nan
        out_iter[k] = 0
        for q in range(NPAR):
            out_p[k, q] = np.nan
        if (cz - half < 0 or cy - half < 0 or cx - half < 0 or cz + half >= Z
                or cy + half >= Y or cx + half >= X):
            out_status[k] = OUT_OF_BOUNDS
            continue
        f = np.empty(n_full)
        off = np.empty((n_full, 3))
        grad = np.empty((n_full, 3))
        m = 0
        for a in range(-half, half + 1):
            for b in range(-half, half + 1):
                for c in range(-half, half + 1):
                    if roi[cz + a, cy + b, cx + c]:
                        f[m] = ref[cz + a, cy + b, cx + c]
                        off[m, 0] = a
                        off[m, 1] = b
                        off[m, 2] = c
                        grad[m, 0] = grad_z[cz + a, cy + b, cx + c]
                        grad[m, 1] = grad_y[cz + a, cy + b, cx + c]
                        grad[m, 2] = grad_x[cz + a, cy + b, cx + c]
                        m += 1
        if 2 * m < n_full:
            out_status[k] = MASKED
            continue
        df2 = centre_reference(f, m)
        if df2 <= 1e-20:
            out_status[k] = NOT_CONVERGED
            continue
        df = np.sqrt(df2)
        # steepest-descent images: d f / d p_q = g_i * (1, d_z, d_y, d_x)[j]
        sd = np.empty((NPAR, m))
        for t in range(m):
            for i in range(3):
                gi = grad[t, i]
                sd[4 * i, t] = gi
                sd[4 * i + 1, t] = gi * off[t, 0]
                sd[4 * i + 2, t] = gi * off[t, 1]
                sd[4 * i + 3, t] = gi * off[t, 2]
        regular, hinv = hessian_inverse(sd, m, df2)
        if not regular:
            out_status[k] = NOT_CONVERGED
            continue
        p = init[k].copy()
        dp = np.zeros(NPAR)
        g = np.empty(m)
        bvec = np.empty(NPAR)
        status = NOT_CONVERGED
        zncc = np.nan
        it = 0
        while it < max_iter:
            it += 1
            # the affine warp maps the cube to a parallelepiped: inside if its corners are
            oob = False
            for sa in (-half, half):
                for sb in (-half, half):
                    for sc in (-half, half):
                        wz = cz + sa + p[0] + p[1] * sa + p[2] * sb + p[3] * sc
                        wy = cy + sb + p[4] + p[5] * sa + p[6] * sb + p[7] * sc
                        wx = cx + sc + p[8] + p[9] * sa + p[10] * sb + p[11] * sc
                        if not (wz >= 0.0 and wz <= zmax and wy >= 0.0 and wy <= ymax
                                and wx >= 0.0 and wx <= xmax):
                            oob = True
            if oob:
                status = OUT_OF_BOUNDS
                break
            for t in range(m):
                a = off[t, 0]
                b = off[t, 1]
                c = off[t, 2]
                wz = cz + a + p[0] + p[1] * a + p[2] * b + p[3] * c
                wy = cy + b + p[4] + p[5] * a + p[6] * b + p[7] * c
                wx = cx + c + p[8] + p[9] * a + p[10] * b + p[11] * c
                g[t] = _sample5(coef, wz, wy, wx) if quintic else _sample3(coef, wz, wy, wx)
            zncc = znssd_residual(f, g, m, df)
            if not np.isfinite(zncc):
                break
            gauss_newton_increment(sd, g, hinv, m, bvec, dp)
            norm2 = dp[0] ** 2 + dp[4] ** 2 + dp[8] ** 2
            grad2 = 0.0
            for i in range(3):
                for j in range(3):
                    grad2 += dp[4 * i + 1 + j] ** 2
            norm2 += half * half * grad2
            _compose(p, dp)
            if not norm2 < 1e30:
                break
            if norm2 < tol * tol:
                status = OK
                break
        out_iter[k] = it
        out_zncc[k] = zncc
        out_status[k] = status
        for q in range(NPAR):
            out_p[k, q] = p[q]
