"""Strain from a gridded DIC displacement field (local least-squares plane fits).

Conventions: images are indexed (row, col); the strain components are reported with
x = column (to the right) and y = row (downwards):

* ``exx = E_cc``, ``eyy = E_rr``, ``exy = E_rc`` (tensor shear, half the engineering
  shear), Green-Lagrange ``E = (F^T F - I) / 2`` with ``F = I + grad u``;
* principal strains ``e1 >= e2``; ``angle`` is the direction of e1, radians, measured
  from +x (columns) towards +y (rows), in (-pi/2, pi/2].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

__all__ = ["StrainResult", "strain_field"]


@dataclass(frozen=True, eq=False)
class StrainResult:
    """Green-Lagrange strain on the DIC grid.

    Attributes
    ----------
    exx, eyy, exy : ndarray, shape (R, C)
        Strain components (x = column, y = row; exy is the tensor shear).
    e1, e2 : ndarray, shape (R, C)
        Principal strains, ``e1 >= e2``.
    angle : ndarray, shape (R, C)
        Direction of e1, radians from +x (columns) towards +y (rows).
    gradient : ndarray, shape (R, C, 2, 2)
        Fitted displacement gradient ``d u_i / d x_j``, (row, col) order.
    window : int
        Fit window, grid points.
    step_px : float
        Grid spacing, px.
    """

    exx: NDArray[np.float64]
    eyy: NDArray[np.float64]
    exy: NDArray[np.float64]
    e1: NDArray[np.float64]
    e2: NDArray[np.float64]
    angle: NDArray[np.float64]
    gradient: NDArray[np.float64]
    window: int
    step_px: float


@njit(cache=True, parallel=True)
def _plane_fit(u, half, min_valid, out):  # pragma: no cover - compiled
    """Least-squares planes of both components over (2 half + 1)^2 windows (NaN-aware)."""
    rows, cols = u.shape[0], u.shape[1]
    for i in prange(rows):
        for j in range(cols):
            n = 0
            sr = sc = srr = scc = src = 0.0
            s0 = np.zeros(2)
            s_r = np.zeros(2)
            s_c = np.zeros(2)
            for a in range(max(i - half, 0), min(i + half + 1, rows)):
                for b in range(max(j - half, 0), min(j + half + 1, cols)):
                    if np.isnan(u[a, b, 0]) or np.isnan(u[a, b, 1]):
                        continue
                    x = a - i
                    y = b - j
                    n += 1
                    sr += x
                    sc += y
                    srr += x * x
                    scc += y * y
                    src += x * y
                    for q in range(2):
                        s0[q] += u[a, b, q]
                        s_r[q] += x * u[a, b, q]
                        s_c[q] += y * u[a, b, q]
            if n < min_valid:
                for q in range(2):
                    out[i, j, q, 0] = np.nan
                    out[i, j, q, 1] = np.nan
                continue
            # normal equations of u = c0 + c1 x + c2 y, solved by Cramer's rule
            m = np.array([[n, sr, sc], [sr, srr, src], [sc, src, scc]], dtype=np.float64)
            det = np.linalg.det(m)
            if abs(det) < 1e-9:
                for q in range(2):
                    out[i, j, q, 0] = np.nan
                    out[i, j, q, 1] = np.nan
                continue
            minv = np.linalg.inv(m)
            for q in range(2):
                rhs0 = s0[q]
                rhs1 = s_r[q]
                rhs2 = s_c[q]
                out[i, j, q, 0] = minv[1, 0] * rhs0 + minv[1, 1] * rhs1 + minv[1, 2] * rhs2
                out[i, j, q, 1] = minv[2, 0] * rhs0 + minv[2, 1] * rhs1 + minv[2, 2] * rhs2


def strain_field(result_or_grid_displacement, *, window: int = 5,
                 step_px: float | None = None) -> StrainResult:
    """Green-Lagrange strain by local plane fits of a gridded displacement field.

    Parameters
    ----------
    result_or_grid_displacement : DICResult or ndarray, shape (R, C, 2)
        A `DICResult` on the default grid, or grid displacements (row, col), px (NaN for
        missing points).
    window : int, optional
        Odd fit window, grid points (``window x window`` neighbourhood), >= 3.
    step_px : float, optional
        Grid spacing, px.  Default: ``result.step`` for a DICResult; required for arrays.

    Returns
    -------
    StrainResult

    Raises
    ------
    ValueError
        On a result without a grid, a bad array shape, window or step.

    Notes
    -----
    Each point's gradient is the least-squares plane ``u_i = a + b r + c col`` over the
    valid points of its window (at least 6 are needed, else NaN), which smooths the
    per-point DIC noise (virtual strain gauge of ``(window - 1) * step_px + subset`` px).
    """
    if hasattr(result_or_grid_displacement, "as_grid"):
        res = result_or_grid_displacement
        if res.grid_shape is None:
            raise ValueError("strain_field needs a DICResult on the default grid (grid_shape is None)")
        disp = res.as_grid("displacement")
        step = float(res.step) if step_px is None else float(step_px)
    else:
        disp = np.asarray(result_or_grid_displacement, dtype=np.float64)
        if disp.ndim != 3 or disp.shape[2] != 2:
            raise ValueError(f"grid displacement must have shape (R, C, 2), got {disp.shape}")
        if step_px is None:
            raise ValueError("step_px is required for a grid displacement array")
        step = float(step_px)
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"step_px must be positive, got {step_px!r}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3 \
            or window % 2 == 0:
        raise ValueError(f"window must be an odd int >= 3, got {window!r}")
    grad = np.empty(disp.shape[:2] + (2, 2))
    _plane_fit(np.ascontiguousarray(disp, dtype=np.float64), int(window) // 2, 6, grad)
    grad /= step
    f = grad + np.eye(2)
    e = 0.5 * (np.einsum("...ki,...kj->...ij", f, f) - np.eye(2))  # (row, col) components
    err, ecc, erc = e[..., 0, 0], e[..., 1, 1], e[..., 0, 1]
    exx, eyy, exy = ecc, err, erc
    mean = 0.5 * (exx + eyy)
    rad = np.sqrt((0.5 * (exx - eyy)) ** 2 + exy ** 2)
    angle = 0.5 * np.arctan2(2.0 * exy, exx - eyy)
    return StrainResult(exx=exx, eyy=eyy, exy=exy, e1=mean + rad, e2=mean - rad, angle=angle,
                        gradient=grad, window=int(window), step_px=step)
