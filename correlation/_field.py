"""Operations on measured point clouds: outlier test, regularisation (no correlation).

References
----------
J. Westerweel, F. Scarano, "Universal outlier detection for PIV data", Exp. Fluids 39,
1096-1100 (2005). https://doi.org/10.1007/s00348-005-0016-6
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.sparse.linalg import spsolve

from ._neighbours import neighbour_table

__all__ = ["normalised_median_test", "regularise", "neighbour_median", "nan_median_axis1"]


def nan_median_axis1(values: NDArray) -> NDArray[np.float64]:
    """Median over axis 1 ignoring NaN (NaN where a slice has no finite value).

    A sort-based replacement of ``np.nanmedian(values, axis=1)`` that is several times
    faster on the small neighbourhoods (axis 1 of length 8-26) of displacement fields.
    """
    v = np.sort(np.asarray(values, dtype=np.float64), axis=1)  # NaN sort last
    count = np.sum(np.isfinite(v), axis=1, keepdims=True)
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.maximum(count // 2, 0)
    hi = np.where(count > 0, np.minimum(hi, v.shape[1] - 1), 0)
    med = 0.5 * (np.take_along_axis(v, lo, axis=1) + np.take_along_axis(v, hi, axis=1))
    med = np.squeeze(med, axis=1)
    return np.where(np.squeeze(count, axis=1) > 0, med, np.nan)


def _check_cloud(points: ArrayLike, displacement: ArrayLike) -> tuple[NDArray, NDArray]:
    pts = np.asarray(points, dtype=np.float64)
    disp = np.asarray(displacement, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"points must be an (N, 2) or (N, 3) array, got shape {pts.shape}")
    if disp.shape != pts.shape:
        raise ValueError(f"displacement must have the shape of points {pts.shape}, got {disp.shape}")
    return pts, disp


def _table(neighbours, n: int) -> NDArray[np.int64]:
    """A padded (n, K) table from a table or a list of index arrays."""
    if isinstance(neighbours, np.ndarray):
        return neighbours
    k = max((len(nb) for nb in neighbours), default=0)
    out = np.full((n, k), -1, dtype=np.int64)
    for i, nb in enumerate(neighbours):
        out[i, :len(nb)] = nb
    return out


def neighbour_median(values: NDArray, table: NDArray[np.int64], min_count: int = 1
                     ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per-row median of the finite neighbour values and the number of them.

    Parameters
    ----------
    values : ndarray, shape (N, c)
        Values (NaN rows are not counted).
    table : ndarray of int, shape (M, K)
        Neighbour indices per row, -1 padded.
    min_count : int
        Rows with fewer valid neighbours get NaN.

    Returns
    -------
    median : ndarray, shape (M, c)
    count : ndarray, shape (M,)
    """
    vals = np.asarray(values, dtype=np.float64)
    good = np.all(np.isfinite(vals), axis=1)
    nb = np.where(table >= 0, table, 0)
    ok = (table >= 0) & good[nb]
    count = ok.sum(axis=1)
    gathered = np.where(ok[..., None], vals[nb], np.nan)
    out = np.full((len(table), vals.shape[1]), np.nan)
    rows = count >= max(min_count, 1)
    if rows.any():
        out[rows] = nan_median_axis1(gathered[rows])
    return out, count


def normalised_median_test(points: ArrayLike, displacement: ArrayLike, *, threshold: float = 2.0,
                           noise_level: float = 0.1, neighbours=None) -> NDArray[np.bool_]:
    """Universal outlier detection (normalised median test) of a displacement field.

    Parameters
    ----------
    points : array_like, shape (N, d)
        Positions, px / voxels.
    displacement : array_like, shape (N, d)
        Displacements; NaN rows are ignored (never outliers, never neighbours).
    threshold : float, optional
        Residual threshold (Westerweel and Scarano recommend 2).
    noise_level : float, optional
        Acceptable fluctuation level epsilon, px / voxels (0.1 for PIV; the measurement
        noise).
    neighbours : ndarray (N, K) or list of ndarray, optional
        Precomputed `neighbour_table` (or lists).

    Returns
    -------
    ndarray of bool, shape (N,)
        True where any component's normalised residual
        ``|u - median(u_nb)| / (median(|u_nb - median(u_nb)|) + eps)`` exceeds `threshold`
        (points with fewer than 3 valid neighbours are not judged).
    """
    pts, disp = _check_cloud(points, displacement)
    if not threshold > 0 or not noise_level >= 0:
        raise ValueError(f"threshold must be > 0 and noise_level >= 0, got {threshold}, {noise_level}")
    table = neighbour_table(pts) if neighbours is None else _table(neighbours, len(pts))
    return median_test_rows(disp, table, np.arange(len(pts)), threshold, noise_level)


def median_test_rows(disp: NDArray, table: NDArray[np.int64], rows: NDArray[np.int64], threshold: float,
                     eps: float) -> NDArray[np.bool_]:
    """`normalised_median_test` of the points `rows` whose neighbour table is `table`
    (``table[k]`` belongs to ``rows[k]``; indices into `disp`)."""
    out = np.zeros(len(rows), dtype=bool)
    if table.shape[1] == 0 or len(rows) == 0:
        return out
    valid = np.all(np.isfinite(disp), axis=1)
    nb = np.where(table >= 0, table, 0)
    ok = (table >= 0) & valid[nb]
    judge = valid[rows] & (ok.sum(axis=1) >= 3)
    if not judge.any():
        return out
    g = np.where(ok[judge][..., None], disp[nb[judge]], np.nan)
    med = nan_median_axis1(g)
    res = nan_median_axis1(np.abs(g - med[:, None, :]))
    r = np.abs(disp[rows[judge]] - med) / (res + eps)
    out[judge] = np.any(r > threshold, axis=1)
    return out


def regularise(points: ArrayLike, displacement: ArrayLike, weights: ArrayLike, *,
               strength: float, neighbours=None) -> NDArray[np.float64]:
    """Quality-weighted smoothing of a displacement field on its neighbour graph.

    Minimises ``sum_i w_i |v_i - u_i|^2 + strength * sum_(i,j) |v_i - v_j|^2`` over the
    neighbour pairs (a graph-Laplacian Tikhonov penalty), so points measured with a low
    correlation quality (small weight) follow their neighbours and good points stay close
    to their measurement.

    Parameters
    ----------
    points : array_like, shape (N, d)
        Positions, px / voxels.
    displacement : array_like, shape (N, d)
        Measured displacements; NaN rows get weight 0 (filled from neighbours).
    weights : array_like, shape (N,)
        Data weights >= 0 (e.g. from the ZNCC).
    strength : float
        Smoothing strength >= 0 (0 returns the input with NaN kept).
    neighbours : ndarray (N, K) or list of ndarray, optional
        Precomputed `neighbour_table` (or lists).

    Returns
    -------
    ndarray, shape (N, d)
        Regularised displacements; NaN only for points with no path to a measured point.
    """
    pts, disp = _check_cloud(points, displacement)
    w = np.asarray(weights, dtype=np.float64).copy()
    if w.shape != (len(pts),) or np.any(~(w >= 0)):
        raise ValueError(f"weights must be a non-negative ({len(pts)},) array")
    if not strength >= 0:
        raise ValueError(f"strength must be >= 0, got {strength!r}")
    if strength == 0 or len(pts) == 0:
        return disp.copy()
    valid = np.all(np.isfinite(disp), axis=1)
    w[~valid] = 0.0
    table = neighbour_table(pts) if neighbours is None else _table(neighbours, len(pts))
    rows, cols = np.nonzero(table >= 0)
    cols = table[rows, cols]
    n = len(pts)
    adj = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    lap = sparse.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    a = (sparse.diags(w) + strength * lap).tocsc()
    # components without any weight are singular: pin them (result NaN)
    n_comp, comp = sparse.csgraph.connected_components(adj, directed=False)
    has_data = np.zeros(n_comp, dtype=bool)
    has_data[comp[w > 0]] = True
    orphan = ~has_data[comp]
    a = a + sparse.diags(orphan.astype(np.float64))
    rhs = np.where(valid[:, None], disp, 0.0) * w[:, None]
    out = np.column_stack([spsolve(a, rhs[:, i]) for i in range(disp.shape[1])])
    out[orphan] = np.nan
    return out
