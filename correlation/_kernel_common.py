"""Numba building blocks shared by the 2D and 3D IC-GN kernels.

The criterion is the zero-normalised sum of squared differences (ZNSSD); the reference
subset, its steepest-descent images and the Gauss-Newton Hessian are computed once per
point (inverse-compositional Gauss-Newton, Baker and Matthews 2004; Pan et al. 2013).

References
----------
S. Baker, I. Matthews, "Lucas-Kanade 20 years on: a unifying framework", IJCV 56,
221-255 (2004). https://doi.org/10.1023/B:VISI.0000011205.11775.fd
B. Pan, K. Li, W. Tong, "Fast, robust and accurate digital image correlation calculation
without redundant computations", Exp. Mech. 53, 1277-1289 (2013).
https://doi.org/10.1007/s11340-013-9717-6
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._status import PointStatus

__all__ = ["FAST", "OK", "NOT_CONVERGED", "OUT_OF_BOUNDS", "MASKED", "centre_reference", "hessian_inverse",
           "znssd_residual", "gauss_newton_increment"]

OK = int(PointStatus.OK)
NOT_CONVERGED = int(PointStatus.NOT_CONVERGED)
OUT_OF_BOUNDS = int(PointStatus.OUT_OF_BOUNDS)
MASKED = int(PointStatus.MASKED)
#: fast-math without the no-NaN / no-inf assumptions (NaN checks must survive)
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True, inline="always")
def centre_reference(f, m):  # pragma: no cover - compiled
    """Subtract the mean of the m reference samples in place; returns sum of squares."""
    fm = 0.0
    for t in range(m):
        fm += f[t]
    fm /= m
    df2 = 0.0
    for t in range(m):
        f[t] -= fm
        df2 += f[t] * f[t]
    return df2


@njit(cache=True, inline="always")
def hessian_inverse(sd, m, df2):  # pragma: no cover - compiled
    """Inverse Gauss-Newton Hessian of the steepest-descent images (None if singular)."""
    npar = sd.shape[0]
    hh = np.empty((npar, npar))
    for q in range(npar):
        for s in range(q, npar):
            acc = 0.0
            for t in range(m):
                acc += sd[q, t] * sd[s, t]
            hh[q, s] = acc
            hh[s, q] = acc
    dmin = np.inf  # scale-invariant singularity check
    for q in range(npar):
        dmin = min(dmin, hh[q, q])
    ok = dmin > 1e-12 * df2
    if not ok:
        return ok, hh
    return ok, np.linalg.inv(hh)


@njit(cache=True, inline="always")
def znssd_residual(f, g, m, df):  # pragma: no cover - compiled
    """Turn the sampled deformed subset g into the ZNSSD residual in place; returns ZNCC.

    Returns NaN (g untouched beyond centring) when the deformed subset is flat.
    """
    gs = 0.0
    for t in range(m):
        gs += g[t]
    gm = gs / m
    dg2 = 0.0
    fg = 0.0
    for t in range(m):
        gt = g[t] - gm
        g[t] = gt
        dg2 += gt * gt
        fg += f[t] * gt
    if not dg2 > 1e-20:
        return np.nan
    dg = np.sqrt(dg2)
    ratio = df / dg
    for t in range(m):
        g[t] = f[t] - ratio * g[t]
    return fg / (df * dg)


@njit(cache=True, inline="always")
def gauss_newton_increment(sd, g, hinv, m, bvec, dp):  # pragma: no cover - compiled
    """dp = -H^-1 (SD^T residual)."""
    npar = sd.shape[0]
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
