"""Numba IC-GN kernel for 2D subsets (affine or quadratic shape function).

Shape-function parameters, (row, col) convention, offsets (dr, dc) from the subset centre
(see `correlation._warp`):

* affine (6): ``p = (u, u_r, u_c, v, v_r, v_c)``; the reference pixel centre + (dr, dc)
  maps to ``centre + (dr + u + u_r dr + u_c dc, dc + v + v_r dr + v_c dc)``, u along rows.
* quadratic (12): ``p = (u, u_r, u_c, u_rr, u_rc, u_cc, v, v_r, v_c, v_rr, v_rc, v_cc)``
  with the extra terms ``0.5 u_rr dr^2 + u_rc dr dc + 0.5 u_cc dc^2`` (likewise v).

The deformed image is sampled with the bicubic or biquintic B-spline of
`correlation._bspline`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._bspline import SPLINE_PAD, weights3, weights5
from ._kernel_common import (FAST, MASKED, NOT_CONVERGED, OK, OUT_OF_BOUNDS, centre_reference,
                             gauss_newton_increment, hessian_inverse, znssd_residual)

__all__ = ["icgn2d_points"]


@njit(cache=True, inline="always")
def _quad_disp(p, off: int, r: float, c: float) -> float:  # pragma: no cover - compiled
    return (p[off] + p[off + 1] * r + p[off + 2] * c + 0.5 * p[off + 3] * r * r
            + p[off + 4] * r * c + 0.5 * p[off + 5] * c * c)


@njit(cache=True, inline="always")
def _sample3(coef, wr: float, wc: float) -> float:  # pragma: no cover - compiled
    ir = int(wr)
    ic = int(wc)
    a0, a1, a2, a3 = weights3(wr - ir)
    b0, b1, b2, b3 = weights3(wc - ic)
    i0 = ir - 1 + SPLINE_PAD
    j0 = ic - 1 + SPLINE_PAD
    return (a0 * (b0 * coef[i0, j0] + b1 * coef[i0, j0 + 1] + b2 * coef[i0, j0 + 2] + b3 * coef[i0, j0 + 3])
            + a1 * (b0 * coef[i0 + 1, j0] + b1 * coef[i0 + 1, j0 + 1] + b2 * coef[i0 + 1, j0 + 2]
                    + b3 * coef[i0 + 1, j0 + 3])
            + a2 * (b0 * coef[i0 + 2, j0] + b1 * coef[i0 + 2, j0 + 1] + b2 * coef[i0 + 2, j0 + 2]
                    + b3 * coef[i0 + 2, j0 + 3])
            + a3 * (b0 * coef[i0 + 3, j0] + b1 * coef[i0 + 3, j0 + 1] + b2 * coef[i0 + 3, j0 + 2]
                    + b3 * coef[i0 + 3, j0 + 3]))


@njit(cache=True, inline="always")
def _row5(row, j0, b0, b1, b2, b3, b4, b5) -> float:  # pragma: no cover - compiled
    return (b0 * row[j0] + b1 * row[j0 + 1] + b2 * row[j0 + 2] + b3 * row[j0 + 3] + b4 * row[j0 + 4]
            + b5 * row[j0 + 5])


@njit(cache=True, inline="always")
def _sample5(coef, wr: float, wc: float) -> float:  # pragma: no cover - compiled
    ir = int(wr)
    ic = int(wc)
    a0, a1, a2, a3, a4, a5 = weights5(wr - ir)
    b0, b1, b2, b3, b4, b5 = weights5(wc - ic)
    i0 = ir - 2 + SPLINE_PAD
    j0 = ic - 2 + SPLINE_PAD
    return (a0 * _row5(coef[i0], j0, b0, b1, b2, b3, b4, b5) + a1 * _row5(coef[i0 + 1], j0, b0, b1, b2, b3, b4, b5)
            + a2 * _row5(coef[i0 + 2], j0, b0, b1, b2, b3, b4, b5)
            + a3 * _row5(coef[i0 + 3], j0, b0, b1, b2, b3, b4, b5)
            + a4 * _row5(coef[i0 + 4], j0, b0, b1, b2, b3, b4, b5)
            + a5 * _row5(coef[i0 + 5], j0, b0, b1, b2, b3, b4, b5))


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
    tr = m00 * itr + m01 * itc + p[0]
    tc = m10 * itr + m11 * itc + p[3]
    p[0] = tr
    p[1] = m00 * ia + m01 * ic - 1.0
    p[2] = m00 * ib + m01 * id_
    p[3] = tc
    p[4] = m10 * ia + m11 * ic
    p[5] = m10 * ib + m11 * id_ - 1.0


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


@njit(cache=True, parallel=True, fastmath=FAST)
def icgn2d_points(ref, grad_r, grad_c, coef, order, roi, centres, init, active, half, max_iter, tol,
                  fit, out_p, out_zncc, out_iter, out_status):  # pragma: no cover - compiled
    """IC-GN with the ZNSSD criterion on many 2D subsets in parallel.

    Parameters
    ----------
    ref, grad_r, grad_c : ndarray, shape (H, W), float64
        Reference image and the gradient of its spline interpolant (per px).
    coef : ndarray
        B-spline coefficients of the deformed image (`spline_coefficients`).
    order : int
        Spline order of `coef` (3 or 5).
    roi : ndarray, shape (H, W), uint8
        Pixels of the reference inside the region of interest (1) or not (0).
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
        Convergence threshold on the norm of the applied parameter increment, px
        (gradient terms scaled by `half`, second-order terms by ``half ** 2 / 2``).
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
    quintic = order == 5
    size = 2 * half + 1
    n_full = size * size
    hmax = H - 1.0
    wmax = W - 1.0
    h2 = 0.5 * half * half
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
            out_status[k] = OUT_OF_BOUNDS
            continue
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
            out_status[k] = MASKED
            continue
        df2 = centre_reference(f, m)
        if df2 <= 1e-20:
            out_status[k] = NOT_CONVERGED
            continue
        df = np.sqrt(df2)
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
        regular, hinv = hessian_inverse(sd, m, df2)
        if not regular:
            out_status[k] = NOT_CONVERGED
            continue
        p = init[k].copy()
        dp = np.zeros(npar)
        g = np.empty(m)
        bvec = np.empty(npar)
        status = NOT_CONVERGED
        zncc = np.nan
        it = 0
        while it < max_iter:
            it += 1
            # An affine warp maps the subset square to a parallelogram: if its 4 corners are
            # inside the image, every pixel is and the per-pixel bounds test is skipped.
            oob = False
            if not quad:
                for sa in (-half, half):
                    for sb in (-half, half):
                        wr = cr + sa + p[0] + p[1] * sa + p[2] * sb
                        wc = cc + sb + p[3] + p[4] * sa + p[5] * sb
                        if not (wr >= 0.0 and wr <= hmax and wc >= 0.0 and wc <= wmax):
                            oob = True
            if oob:
                status = OUT_OF_BOUNDS
                break
            for t in range(m):
                a = dr[t]
                b = dc[t]
                if quad:
                    wr = cr + a + _quad_disp(p, 0, a, b)
                    wc = cc + b + _quad_disp(p, 6, a, b)
                    if not (wr >= 0.0 and wr <= hmax and wc >= 0.0 and wc <= wmax):
                        oob = True
                        break
                else:
                    wr = cr + a + p[0] + p[1] * a + p[2] * b
                    wc = cc + b + p[3] + p[4] * a + p[5] * b
                g[t] = _sample5(coef, wr, wc) if quintic else _sample3(coef, wr, wc)
            if oob:
                status = OUT_OF_BOUNDS
                break
            zncc = znssd_residual(f, g, m, df)
            if not np.isfinite(zncc):
                break
            gauss_newton_increment(sd, g, hinv, m, bvec, dp)
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
                status = OK
                break
        out_iter[k] = it
        out_zncc[k] = zncc
        out_status[k] = status
        for q in range(npar):
            out_p[k, q] = p[q]
