"""Numba kernels of the inverse-compositional Gauss-Newton (IC-GN) subset solver.

Shape-function parameters, (row, col) convention, offsets (dr, dc) from the subset centre:

* affine (6): ``p = (u, u_r, u_c, v, v_r, v_c)``; the reference pixel centre + (dr, dc)
  maps to ``centre + (dr + u + u_r dr + u_c dc, dc + v + v_r dr + v_c dc)``, u along rows.
* quadratic (12): ``p = (u, u_r, u_c, u_rr, u_rc, u_cc, v, v_r, v_c, v_rr, v_rc, v_cc)``
  with the extra terms ``0.5 u_rr dr^2 + u_rc dr dc + 0.5 u_cc dc^2`` (likewise v).

The criterion is the zero-normalised sum of squared differences (ZNSSD); the reference
subset, its steepest-descent images and the Gauss-Newton Hessian are computed once per
point; the deformed image is sampled with the bicubic B-spline of `vision._bspline`.

References
----------
B. Pan, K. Li, W. Tong, "Fast, robust and accurate digital image correlation calculation
without redundant computations", Exp. Mech. 53, 1277-1289 (2013).
https://doi.org/10.1007/s11340-013-9717-6
S. Baker, I. Matthews, "Lucas-Kanade 20 years on: a unifying framework", IJCV 56,
221-255 (2004). https://doi.org/10.1023/B:VISI.0000011205.11775.fd
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._bspline import SPLINE_PAD, _weights

__all__ = ["STATUS_CODES", "icgn_points", "quadratic_fit_matrix"]

# kernel status codes, mirrored by vision._correlate.PointStatus
_OK = 0
_NOT_CONVERGED = 1
_OUT_OF_BOUNDS = 3
_MASKED = 4
# fast-math without the no-NaN / no-inf assumptions (NaN checks must survive)
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
STATUS_CODES = {"OK": _OK, "NOT_CONVERGED": _NOT_CONVERGED, "OUT_OF_BOUNDS": _OUT_OF_BOUNDS,
                "MASKED": _MASKED}


def quadratic_fit_matrix(half: int) -> np.ndarray:
    """Least-squares operator fitting a quadratic displacement to 3 x 3 sample offsets.

    Parameters
    ----------
    half : int
        Subset half width, px (sample offsets are -half, 0, half).

    Returns
    -------
    ndarray, shape (6, 9)
        Maps the displacements at the samples (row-major 3 x 3) to the coefficients
        ``(a, a_r, a_c, a_rr, a_rc, a_cc)`` of ``a + a_r r + a_c c + 0.5 a_rr r^2 +
        a_rc r c + 0.5 a_cc c^2``.
    """
    s = np.array([-half, 0.0, half], dtype=np.float64)
    r, c = np.meshgrid(s, s, indexing="ij")
    r = r.ravel()
    c = c.ravel()
    basis = np.column_stack([np.ones(9), r, c, 0.5 * r * r, r * c, 0.5 * c * c])
    return np.linalg.pinv(basis)


@njit(cache=True, inline="always")
def _quad_disp(p, off: int, r: float, c: float) -> float:  # pragma: no cover - compiled
    return (p[off] + p[off + 1] * r + p[off + 2] * c + 0.5 * p[off + 3] * r * r
            + p[off + 4] * r * c + 0.5 * p[off + 5] * c * c)


@njit(cache=True)
def _compose_affine(p, dp):  # pragma: no cover - compiled
    """p <- W(p) o W(dp)^-1 for the affine warp (in place)."""
    a = 1.0 + dp[1]
    b = dp[2]
    c = dp[4]
    d = 1.0 + dp[5]
    det = a * d - b * c
    ia = d / det
    ib = -b / det
    ic = -c / det
    id_ = a / det
    itr = -(ia * dp[0] + ib * dp[3])
    itc = -(ic * dp[0] + id_ * dp[3])
    m00 = 1.0 + p[1]
    m01 = p[2]
    m10 = p[4]
    m11 = 1.0 + p[5]
    n00 = m00 * ia + m01 * ic
    n01 = m00 * ib + m01 * id_
    n10 = m10 * ia + m11 * ic
    n11 = m10 * ib + m11 * id_
    tr = m00 * itr + m01 * itc + p[0]
    tc = m10 * itr + m11 * itc + p[3]
    p[0] = tr
    p[1] = n00 - 1.0
    p[2] = n01
    p[3] = tc
    p[4] = n10
    p[5] = n11 - 1.0


@njit(cache=True)
def _compose_quadratic(p, dp, half, fit):  # pragma: no cover - compiled
    """p <- W(p) o W(dp)^-1 for the quadratic warp, fitted on 3 x 3 samples (in place).

    The inverse of the increment warp is found by fixed-point iteration; the composition is
    projected back on the quadratic family by least squares.  Both approximations vanish as
    dp -> 0, so the converged solution is unaffected.
    """
    du = np.empty(9)
    dv = np.empty(9)
    k = 0
    for a in range(3):
        for b in range(3):
            r = (a - 1.0) * half
            c = (b - 1.0) * half
            er = r
            ec = c
            for _ in range(4):
                nr = r - _quad_disp(dp, 0, er, ec)
                nc = c - _quad_disp(dp, 6, er, ec)
                er = nr
                ec = nc
            du[k] = er + _quad_disp(p, 0, er, ec) - r
            dv[k] = ec + _quad_disp(p, 6, er, ec) - c
            k += 1
    for i in range(6):
        su = 0.0
        sv = 0.0
        for k in range(9):
            su += fit[i, k] * du[k]
            sv += fit[i, k] * dv[k]
        p[i] = su
        p[6 + i] = sv


@njit(cache=True, parallel=True, fastmath=_FAST)
def icgn_points(ref, grad_r, grad_c, coef, roi, centres, init, active, half, max_iter, tol,
                fit, out_p, out_zncc, out_iter, out_status):  # pragma: no cover - compiled
    """IC-GN with the ZNSSD criterion on many subsets in parallel.

    Parameters
    ----------
    ref, grad_r, grad_c : ndarray, shape (H, W), float64
        Reference image and its gradients (px^-1).
    coef : ndarray
        B-spline coefficients of the deformed image (`spline_coefficients`).
    roi : ndarray, shape (H, W), uint8
        Pixels of the reference that belong to the region of interest (1) or not (0).
    centres : ndarray, shape (N, 2), int64
        Subset centres (row, col), px.
    init : ndarray, shape (N, P), float64
        Initial shape-function parameters (P = 6 affine, 12 quadratic).
    active : ndarray, shape (N,), bool
        Points to solve; the others are left untouched.
    half : int
        Subset half width (subset size ``2 * half + 1``).
    max_iter : int
        Maximum number of Gauss-Newton iterations.
    tol : float
        Convergence threshold on the parameter increment norm, px (gradient terms scaled
        by `half`, second-order terms by ``half ** 2 / 2``).
    fit : ndarray, shape (6, 9)
        `quadratic_fit_matrix` (unused for the affine warp).
    out_p, out_zncc, out_iter, out_status : ndarray
        Outputs: parameters (N, P), ZNCC (N,) of the last sampled subset, iterations (N,),
        status code (N,).
    """
    n_pts = centres.shape[0]
    H, W = ref.shape
    npar = init.shape[1]
    quad = npar == 12
    size = 2 * half + 1
    n_full = size * size
    hmax = H - 1.0
    wmax = W - 1.0
    pad = SPLINE_PAD
    for k in prange(n_pts):
        if not active[k]:
            continue
        cr = centres[k, 0]
        cc = centres[k, 1]
        out_zncc[k] = np.nan
        out_iter[k] = 0
        for q in range(npar):
            out_p[k, q] = np.nan
        if cr - half < 0 or cc - half < 0 or cr + half >= H or cc + half >= W:
            out_status[k] = _OUT_OF_BOUNDS
            continue
        # reference subset (ROI pixels only)
        f = np.empty(n_full)
        dr = np.empty(n_full)
        dc = np.empty(n_full)
        gr = np.empty(n_full)
        gc = np.empty(n_full)
        m = 0
        for i in range(-half, half + 1):
            for j in range(-half, half + 1):
                if roi[cr + i, cc + j]:
                    f[m] = ref[cr + i, cc + j]
                    dr[m] = i
                    dc[m] = j
                    gr[m] = grad_r[cr + i, cc + j]
                    gc[m] = grad_c[cr + i, cc + j]
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
        # steepest-descent images (one row per parameter) and Hessian
        sd = np.empty((npar, m))
        nb = npar // 2
        for t in range(m):
            a = dr[t]
            b = dc[t]
            sd[0, t] = gr[t]
            sd[1, t] = gr[t] * a
            sd[2, t] = gr[t] * b
            sd[nb, t] = gc[t]
            sd[nb + 1, t] = gc[t] * a
            sd[nb + 2, t] = gc[t] * b
            if quad:
                sd[3, t] = 0.5 * gr[t] * a * a
                sd[4, t] = gr[t] * a * b
                sd[5, t] = 0.5 * gr[t] * b * b
                sd[9, t] = 0.5 * gc[t] * a * a
                sd[10, t] = gc[t] * a * b
                sd[11, t] = 0.5 * gc[t] * b * b
        hh = np.empty((npar, npar))
        for q in range(npar):
            for s in range(q, npar):
                acc = 0.0
                for t in range(m):
                    acc += sd[q, t] * sd[s, t]
                hh[q, s] = acc
                hh[s, q] = acc
        # scale-invariant singularity check
        dmin = np.inf
        for q in range(npar):
            dmin = min(dmin, hh[q, q])
        if dmin <= 1e-12 * df2:
            out_status[k] = _NOT_CONVERGED
            continue
        hinv = np.linalg.inv(hh)
        p = init[k].copy()
        dp = np.zeros(npar)
        g = np.empty(m)
        bvec = np.empty(npar)
        status = _NOT_CONVERGED
        zncc = np.nan
        it = 0
        h2 = 0.5 * half * half
        while it < max_iter:
            it += 1
            # sample the deformed subset (bicubic B-spline, inlined). An affine warp maps
            # the subset square to a parallelogram: if its 4 corners are inside the image,
            # every pixel is, and the per-pixel bounds test can be skipped.
            oob = False
            check = quad
            if not quad:
                for sa in (-half, half):
                    for sb in (-half, half):
                        wr = cr + sa + p[0] + p[1] * sa + p[2] * sb
                        wc = cc + sb + p[3] + p[4] * sa + p[5] * sb
                        if not (wr >= 0.0 and wr <= hmax and wc >= 0.0 and wc <= wmax):
                            oob = True
            if oob:
                status = _OUT_OF_BOUNDS
                break
            gs = 0.0
            for t in range(m):
                a = dr[t]
                b = dc[t]
                if quad:
                    wr = cr + a + _quad_disp(p, 0, a, b)
                    wc = cc + b + _quad_disp(p, 6, a, b)
                else:
                    wr = cr + a + p[0] + p[1] * a + p[2] * b
                    wc = cc + b + p[3] + p[4] * a + p[5] * b
                if check and not (wr >= 0.0 and wr <= hmax and wc >= 0.0 and wc <= wmax):
                    oob = True
                    break
                ir = int(wr)
                ic = int(wc)
                a0, a1, a2, a3 = _weights(wr - ir)
                b0, b1, b2, b3 = _weights(wc - ic)
                i0 = ir - 1 + pad
                j0 = ic - 1 + pad
                v = (a0 * (b0 * coef[i0, j0] + b1 * coef[i0, j0 + 1] + b2 * coef[i0, j0 + 2]
                           + b3 * coef[i0, j0 + 3])
                     + a1 * (b0 * coef[i0 + 1, j0] + b1 * coef[i0 + 1, j0 + 1]
                             + b2 * coef[i0 + 1, j0 + 2] + b3 * coef[i0 + 1, j0 + 3])
                     + a2 * (b0 * coef[i0 + 2, j0] + b1 * coef[i0 + 2, j0 + 1]
                             + b2 * coef[i0 + 2, j0 + 2] + b3 * coef[i0 + 2, j0 + 3])
                     + a3 * (b0 * coef[i0 + 3, j0] + b1 * coef[i0 + 3, j0 + 1]
                             + b2 * coef[i0 + 3, j0 + 2] + b3 * coef[i0 + 3, j0 + 3]))
                g[t] = v
                gs += v
            if oob:
                status = _OUT_OF_BOUNDS
                break
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
            for q in range(npar):
                acc = 0.0
                for t in range(m):
                    acc += sd[q, t] * g[t]
                bvec[q] = acc
            for q in range(npar):
                acc = 0.0
                for s in range(npar):
                    acc += hinv[q, s] * bvec[s]
                dp[q] = -acc
            if quad:
                norm2 = (dp[0] ** 2 + dp[6] ** 2
                         + half * half * (dp[1] ** 2 + dp[2] ** 2 + dp[7] ** 2 + dp[8] ** 2)
                         + h2 * h2 * (dp[3] ** 2 + dp[4] ** 2 + dp[5] ** 2
                                      + dp[9] ** 2 + dp[10] ** 2 + dp[11] ** 2))
                _compose_quadratic(p, dp, half, fit)
            else:
                norm2 = (dp[0] ** 2 + dp[3] ** 2
                         + half * half * (dp[1] ** 2 + dp[2] ** 2 + dp[4] ** 2 + dp[5] ** 2))
                _compose_affine(p, dp)
            if not norm2 < 1e30:
                break
            if norm2 < tol * tol:
                status = _OK
                break
        out_iter[k] = it
        out_zncc[k] = zncc
        out_status[k] = status
        for q in range(npar):
            out_p[k, q] = p[q]
