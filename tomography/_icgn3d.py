"""Numba kernel of the 3D inverse-compositional Gauss-Newton (IC-GN) subvolume solver.

Shape function: the 12-parameter affine map, in blocks of four per displacement
component ``i`` in (z, y, x) order::

    p[4 i] = u_i,   p[4 i + 1 + j] = d u_i / d x_j   (j in z, y, x)

so the reference voxel centre + d (offset from the subvolume centre c) maps to
``c + d + u + G d`` with ``G[i, j] = p[4 i + 1 + j]``.  The criterion is the
zero-normalised sum of squared differences (ZNSSD); the reference subvolume, its
steepest-descent images and the Gauss-Newton Hessian are computed once per point and the
deformed volume is sampled with the tricubic B-spline of `tomography._spline3d`.

References
----------
B. Pan, B. Wang, "Digital volume correlation with improved speed and accuracy using an
inverse-compositional Gauss-Newton algorithm", Exp. Mech. 56, 1129-1141 (2016).
https://doi.org/10.1007/s11340-016-0144-3
S. Baker, I. Matthews, "Lucas-Kanade 20 years on: a unifying framework", IJCV 56,
221-255 (2004). https://doi.org/10.1023/B:VISI.0000011205.11775.fd
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._spline3d import SPLINE_PAD, _weights

__all__ = ["NPAR", "STATUS_CODES", "icgn3d_points"]

NPAR = 12
_OK = 0
_NOT_CONVERGED = 1
_OUT_OF_BOUNDS = 3
_MASKED = 4
STATUS_CODES = {"OK": _OK, "NOT_CONVERGED": _NOT_CONVERGED, "OUT_OF_BOUNDS": _OUT_OF_BOUNDS,
                "MASKED": _MASKED}
# fast-math without the no-NaN / no-inf assumptions (NaN checks must survive)
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


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
def compose(p, dp):  # pragma: no cover - compiled
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
    for i in range(3):
        t = p[4 * i]
        for j in range(3):
            t += fp[i, j] * ti[j]
        new_g = np.empty(3)
        for j in range(3):
            acc = 0.0
            for k in range(3):
                acc += fp[i, k] * fi[k, j]
            new_g[j] = acc - (1.0 if i == j else 0.0)
        p[4 * i] = t
        for j in range(3):
            p[4 * i + 1 + j] = new_g[j]


@njit(cache=True, parallel=True, fastmath=_FAST)
def icgn3d_points(ref, grad_z, grad_y, grad_x, coef, roi, centres, init, active, half,
                  max_iter, tol, out_p, out_zncc, out_iter, out_status):  # pragma: no cover
    """IC-GN with the ZNSSD criterion on many subvolumes in parallel.

    Parameters
    ----------
    ref, grad_z, grad_y, grad_x : ndarray, shape (Z, Y, X), float64
        Reference volume and the gradient of its spline interpolant (per voxel).
    coef : ndarray
        Tricubic B-spline coefficients of the deformed volume (`spline_coefficients`).
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
        Convergence threshold on the norm of the parameter increment, voxels (gradient
        terms scaled by `half`).
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
    pad = SPLINE_PAD
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
            out_status[k] = _OUT_OF_BOUNDS
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
            out_status[k] = _MASKED
            continue
        fm = 0.0
        for t in range(m):
            fm += f[t]
        fm /= m
        df2 = 0.0
        for t in range(m):
            f[t] -= fm
            df2 += f[t] * f[t]
        if df2 <= 1e-20:
            out_status[k] = _NOT_CONVERGED
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
        hh = np.empty((NPAR, NPAR))
        for q in range(NPAR):
            for s in range(q, NPAR):
                acc = 0.0
                for t in range(m):
                    acc += sd[q, t] * sd[s, t]
                hh[q, s] = acc
                hh[s, q] = acc
        dmin = np.inf
        for q in range(NPAR):
            dmin = min(dmin, hh[q, q])
        if dmin <= 1e-12 * df2:
            out_status[k] = _NOT_CONVERGED
            continue
        hinv = np.linalg.inv(hh)
        p = init[k].copy()
        dp = np.zeros(NPAR)
        g = np.empty(m)
        bvec = np.empty(NPAR)
        status = _NOT_CONVERGED
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
                status = _OUT_OF_BOUNDS
                break
            gs = 0.0
            for t in range(m):
                a = off[t, 0]
                b = off[t, 1]
                c = off[t, 2]
                wz = cz + a + p[0] + p[1] * a + p[2] * b + p[3] * c
                wy = cy + b + p[4] + p[5] * a + p[6] * b + p[7] * c
                wx = cx + c + p[8] + p[9] * a + p[10] * b + p[11] * c
                iz = int(wz)
                iy = int(wy)
                ix = int(wx)
                a0, a1, a2, a3 = _weights(wz - iz)
                b0, b1, b2, b3 = _weights(wy - iy)
                c0, c1, c2, c3 = _weights(wx - ix)
                k0 = iz - 1 + pad
                j0 = iy - 1 + pad
                i0 = ix - 1 + pad
                v = 0.0
                for da in range(4):
                    wa = a0 if da == 0 else (a1 if da == 1 else (a2 if da == 2 else a3))
                    acc = 0.0
                    for db in range(4):
                        wb = b0 if db == 0 else (b1 if db == 1 else (b2 if db == 2 else b3))
                        acc += wb * (c0 * coef[k0 + da, j0 + db, i0]
                                     + c1 * coef[k0 + da, j0 + db, i0 + 1]
                                     + c2 * coef[k0 + da, j0 + db, i0 + 2]
                                     + c3 * coef[k0 + da, j0 + db, i0 + 3])
                    v += wa * acc
                g[t] = v
                gs += v
            gm = gs / m
            dg2 = 0.0
            fg = 0.0
            for t in range(m):
                gt = g[t] - gm
                g[t] = gt
                dg2 += gt * gt
                fg += f[t] * gt
            if not dg2 > 1e-20:
                break
            dg = np.sqrt(dg2)
            zncc = fg / (df * dg)
            ratio = df / dg
            for t in range(m):
                g[t] = f[t] - ratio * g[t]
            for q in range(NPAR):
                acc = 0.0
                for t in range(m):
                    acc += sd[q, t] * g[t]
                bvec[q] = acc
            for q in range(NPAR):
                acc = 0.0
                for s in range(NPAR):
                    acc += hinv[q, s] * bvec[s]
                dp[q] = -acc
            norm2 = dp[0] ** 2 + dp[4] ** 2 + dp[8] ** 2
            grad2 = 0.0
            for i in range(3):
                for j in range(3):
                    grad2 += dp[4 * i + 1 + j] ** 2
            norm2 += half * half * grad2
            compose(p, dp)
            if not norm2 < 1e30:
                break
            if norm2 < tol * tol:
                status = _OK
                break
        out_iter[k] = it
        out_zncc[k] = zncc
        out_status[k] = status
        for q in range(NPAR):
            out_p[k, q] = p[q]
