"""Subset shape functions in n dimensions: parameter layout, re-centring, interpolation.

Layout (any dimension ``d``), in blocks of ``b`` parameters per displacement component
``i`` (axis order of the data: (row, col) or (z, y, x)):

* affine, ``b = d + 1``: ``p[b i] = u_i`` and ``p[b i + 1 + j] = d u_i / d x_j``;
* quadratic (2D only), ``b = 6``: ``(u, u_r, u_c, u_rr, u_rc, u_cc)`` per component, the
  second-order terms entering as ``0.5 u_rr dr^2 + u_rc dr dc + 0.5 u_cc dc^2``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

__all__ = ["SHAPE_FUNCTIONS", "n_params", "block", "from_displacement", "shift_params",
           "interpolate_params", "displacement_and_gradient", "quadratic_fit_matrix"]

SHAPE_FUNCTIONS = ("affine", "quadratic")


def block(ndim: int, shape_function: str) -> int:
    """Parameters per displacement component."""
    return 6 if shape_function == "quadratic" else ndim + 1


def n_params(ndim: int, shape_function: str) -> int:
    """Number of shape-function parameters of one subset."""
    return ndim * block(ndim, shape_function)


def from_displacement(displacement: NDArray, npar: int) -> NDArray[np.float64]:
    """Shape functions of pure translations ``displacement`` (N, d)."""
    disp = np.asarray(displacement, dtype=np.float64)
    n, d = disp.shape
    out = np.zeros((n, npar))
    out[:, 0::npar // d] = disp
    return out


def shift_params(params: NDArray, delta: NDArray) -> NDArray[np.float64]:
    """Shape functions re-centred by ``delta`` (N, d): exact for affine and quadratic maps.

    Parameters
    ----------
    params : ndarray, shape (N, P)
        Shape functions at their centres.
    delta : ndarray, shape (N, d)
        New centre minus old centre, px / voxels.

    Returns
    -------
    ndarray, shape (N, P)
    """
    delta = np.asarray(delta, dtype=np.float64)
    d = delta.shape[1]
    b = params.shape[1] // d
    out = np.array(params, dtype=np.float64, copy=True)
    for i in range(d):
        base = b * i
        out[:, base] += np.einsum("nj,nj->n", params[:, base + 1:base + 1 + d], delta)
        if b == 6:  # quadratic (2D)
            p = params
            out[:, base] += (0.5 * p[:, base + 3] * delta[:, 0] ** 2 + p[:, base + 4] * delta[:, 0] * delta[:, 1]
                             + 0.5 * p[:, base + 5] * delta[:, 1] ** 2)
            out[:, base + 1] += p[:, base + 3] * delta[:, 0] + p[:, base + 4] * delta[:, 1]
            out[:, base + 2] += p[:, base + 4] * delta[:, 0] + p[:, base + 5] * delta[:, 1]
    return out


def interpolate_params(src_points: NDArray, src_params: NDArray, dst_points: NDArray) -> NDArray[np.float64]:
    """Initial shape functions at ``dst_points``: inverse-distance blend of the nearest sources.

    Each of the (up to) 4 nearest sources' shape functions is extrapolated to the point
    (`shift_params`) before blending, so a homogeneous affine field is reproduced exactly.
    """
    k = min(4, len(src_points))
    dist, idx = cKDTree(src_points).query(dst_points, k=k)
    dist = dist.reshape(len(dst_points), k)
    idx = idx.reshape(len(dst_points), k)
    wts = 1.0 / (dist + 1e-6) ** 2
    wts /= wts.sum(axis=1, keepdims=True)
    out = np.zeros((len(dst_points), src_params.shape[1]))
    for j in range(k):
        out += wts[:, j:j + 1] * shift_params(src_params[idx[:, j]], dst_points - src_points[idx[:, j]])
    return out


def displacement_and_gradient(params: NDArray, ndim: int) -> tuple[NDArray, NDArray]:
    """Displacement (N, d) and displacement gradient (N, d, d) of shape functions."""
    b = params.shape[1] // ndim
    disp = np.ascontiguousarray(params[:, 0::b][:, :ndim])
    grad = np.stack([params[:, b * i + 1:b * i + 1 + ndim] for i in range(ndim)], axis=1)
    return disp, grad


def quadratic_fit_matrix(half: int) -> NDArray[np.float64]:
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
