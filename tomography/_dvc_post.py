"""Post-processing of DVC point clouds: outliers, regularisation, background motion.

All functions take points (N, 3) and displacements (N, 3) in (z, y, x) voxel order and
return new arrays (inputs are never modified).

References
----------
J. Westerweel, F. Scarano, "Universal outlier detection for PIV data", Exp. Fluids 39,
1096-1100 (2005). https://doi.org/10.1007/s00348-005-0016-6
W. Kabsch, "A solution for the best rotation to relate two sets of vectors", Acta Cryst.
A32, 922-923 (1976). https://doi.org/10.1107/S0567739476001873
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

__all__ = ["BackgroundFit", "neighbour_lists", "normalised_median_test", "regularise",
           "remove_background"]

_MODELS = ("translation", "rigid", "affine")


def _check_cloud(points: ArrayLike, displacement: ArrayLike) -> tuple[NDArray, NDArray]:
    pts = np.asarray(points, dtype=np.float64)
    disp = np.asarray(displacement, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be an (N, 3) array, got shape {pts.shape}")
    if disp.shape != pts.shape:
        raise ValueError(f"displacement must have the shape of points {pts.shape}, got {disp.shape}")
    return pts, disp


def neighbour_lists(points: ArrayLike, *, radius: float | None = None) -> list[NDArray]:
    """Neighbours of every point within `radius` (default 1.8x the median nearest spacing).

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Positions, voxels.
    radius : float, optional
        Neighbourhood radius, voxels; the default takes the 26-neighbourhood of a regular
        grid (diagonal sqrt(3) = 1.73 spacings).

    Returns
    -------
    list of ndarray
        Indices of the neighbours of each point (the point itself excluded).
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 2:
        return [np.zeros(0, dtype=np.int64) for _ in range(len(pts))]
    tree = cKDTree(pts)
    if radius is None:
        d, _ = tree.query(pts, k=2)
        radius = 1.8 * float(np.median(d[:, 1]))
    return [np.array([j for j in row if j != i], dtype=np.int64)
            for i, row in enumerate(tree.query_ball_point(pts, r=radius))]


def normalised_median_test(points: ArrayLike, displacement: ArrayLike, *, threshold: float = 2.0,
                           noise_level_vox: float = 0.1,
                           neighbours: list[NDArray] | None = None) -> NDArray[np.bool_]:
    """Universal outlier detection (normalised median test) of a displacement field.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Positions, voxels.
    displacement : array_like, shape (N, 3)
        Displacements, voxels; NaN rows are ignored (never outliers, never neighbours).
    threshold : float, optional
        Residual threshold (Westerweel and Scarano recommend 2).
    noise_level_vox : float, optional
        Acceptable fluctuation level epsilon, voxels (0.1 for PIV; the measurement noise).
    neighbours : list of ndarray, optional
        Precomputed `neighbour_lists`.

    Returns
    -------
    ndarray of bool, shape (N,)
        True where any component's normalised residual
        ``|u - median(u_nb)| / (median(|u_nb - median(u_nb)|) + eps)`` exceeds `threshold`
        (points with fewer than 3 valid neighbours are not judged).
    """
    pts, disp = _check_cloud(points, displacement)
    if threshold <= 0 or noise_level_vox < 0:
        raise ValueError(f"threshold must be > 0 and noise_level_vox >= 0, got {threshold}, {noise_level_vox}")
    nbrs = neighbour_lists(pts) if neighbours is None else neighbours
    valid = np.all(np.isfinite(disp), axis=1)
    out = np.zeros(len(pts), dtype=bool)
    for i in np.flatnonzero(valid):
        nb = nbrs[i][valid[nbrs[i]]]
        if len(nb) < 3:
            continue
        u = disp[nb]
        med = np.median(u, axis=0)
        res = np.median(np.abs(u - med), axis=0)
        r = np.abs(disp[i] - med) / (res + noise_level_vox)
        out[i] = bool(np.any(r > threshold))
    return out


def regularise(points: ArrayLike, displacement: ArrayLike, weights: ArrayLike, *,
               strength: float, neighbours: list[NDArray] | None = None) -> NDArray[np.float64]:
    """Quality-weighted smoothing of a displacement field on its neighbour graph.

    Minimises ``sum_i w_i |v_i - u_i|^2 + strength * sum_(i,j) |v_i - v_j|^2`` over the
    neighbour pairs (a graph-Laplacian Tikhonov penalty), so points measured with a low
    correlation quality (small weight) follow their neighbours and good points stay close
    to their measurement.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Positions, voxels.
    displacement : array_like, shape (N, 3)
        Measured displacements, voxels; NaN rows get weight 0 (filled from neighbours).
    weights : array_like, shape (N,)
        Data weights >= 0 (e.g. from the ZNCC).
    strength : float
        Smoothing strength >= 0 (0 returns the input with NaN kept).
    neighbours : list of ndarray, optional
        Precomputed `neighbour_lists`.

    Returns
    -------
    ndarray, shape (N, 3)
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
    nbrs = neighbour_lists(pts) if neighbours is None else neighbours
    rows = np.concatenate([np.full(len(nb), i) for i, nb in enumerate(nbrs)]) if len(pts) else []
    cols = np.concatenate(nbrs) if len(pts) else []
    adj = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(pts),) * 2).tocsr()
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
    out = np.column_stack([spsolve(a, rhs[:, i]) for i in range(3)])
    out[orphan] = np.nan
    return out


@dataclass(frozen=True, eq=False)
class BackgroundFit:
    """A background motion fitted to a displacement field and the residual.

    Attributes
    ----------
    model : str
        "translation", "rigid" or "affine".
    translation : ndarray, shape (3,)
        Translation (z, y, x), voxels, of the fitted map at `centre`.
    matrix : ndarray, shape (3, 3)
        Linear part F of the map ``x -> centre + F (x - centre) + translation`` applied
        to the reference positions (identity for "translation", a rotation for "rigid").
    centre : ndarray, shape (3,)
        Centre of the fit (mean of the used points), voxels.
    background : ndarray, shape (N, 3)
        Fitted background displacement at every point.
    residual : ndarray, shape (N, 3)
        Displacement minus background (NaN where the input is NaN).
    inlier_weight : ndarray, shape (N,)
        Final robust (Tukey) weights of the points, 0 for outliers and NaN inputs.
    """

    model: str
    translation: NDArray[np.float64]
    matrix: NDArray[np.float64]
    centre: NDArray[np.float64]
    background: NDArray[np.float64]
    residual: NDArray[np.float64]
    inlier_weight: NDArray[np.float64]


def _weighted_fit(model: str, x: NDArray, y: NDArray, w: NDArray) -> tuple[NDArray, NDArray]:
    """Map (matrix, translation) with y ~ matrix x + translation, x and y centred."""
    sw = w.sum()
    mx = (w[:, None] * x).sum(0) / sw
    my = (w[:, None] * y).sum(0) / sw
    xc, yc = x - mx, y - my
    if model == "translation":
        mat = np.eye(3)
    elif model == "rigid":  # Kabsch: rotation maximising sum w y . R x
        cov = (w[:, None] * yc).T @ xc
        u, _, vt = np.linalg.svd(cov)
        d = np.sign(np.linalg.det(u @ vt))
        mat = u @ np.diag([1.0, 1.0, d]) @ vt
    else:
        a = (w[:, None] * xc).T @ xc
        b = (w[:, None] * xc).T @ yc
        mat = np.linalg.lstsq(a, b, rcond=None)[0].T
    return mat, my - mat @ mx


def remove_background(points: ArrayLike, displacement: ArrayLike, *, model: str = "rigid",
                      valid: ArrayLike | None = None, max_iterations: int = 20) -> BackgroundFit:
    """Fit and subtract a background (rigid-body or affine) motion, robustly.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Reference positions (z, y, x), voxels.
    displacement : array_like, shape (N, 3)
        Displacements, voxels (NaN rows are ignored).
    model : {"rigid", "translation", "affine"}, optional
        Rigid body (translation + rotation: sample stage motion), pure translation, or
        a full affine map (adds homogeneous strain such as drying shrinkage).
    valid : array_like of bool, shape (N,), optional
        Points allowed in the fit (default: all finite ones).
    max_iterations : int, optional
        Iteratively reweighted least-squares iterations (Tukey biweight, c = 4.685 sigma,
        sigma from the median residual norm), so local events such as an opening crack do not bias
        the background.

    Returns
    -------
    BackgroundFit

    Raises
    ------
    ValueError
        On bad shapes, an unknown model or fewer points than the model needs.
    """
    pts, disp = _check_cloud(points, displacement)
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    ok = np.all(np.isfinite(disp), axis=1)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != ok.shape:
            raise ValueError(f"valid must have shape {ok.shape}, got {v.shape}")
        ok &= v
    need = {"translation": 1, "rigid": 3, "affine": 4}[model]
    if ok.sum() < need:
        raise ValueError(f"model {model!r} needs at least {need} valid points, got {int(ok.sum())}")
    x = pts[ok]
    y = pts[ok] + disp[ok]
    w = np.ones(len(x))
    for _ in range(max_iterations):
        mat, t = _weighted_fit(model, x, y, w)
        r = np.linalg.norm(y - (x @ mat.T + t), axis=1)
        # r is the norm of a 3-vector: for Gaussian errors of std s per component its
        # median is 1.538 s (chi distribution, 3 degrees of freedom)
        sigma = float(np.median(r)) / 1.538
        c = 4.685 * max(sigma, 1e-3)
        w_new = np.where(r < c, (1 - (r / c) ** 2) ** 2, 0.0)
        if w_new.sum() < need:
            break
        if np.allclose(w_new, w, atol=1e-4):
            w = w_new
            break
        w = w_new
    mat, t = _weighted_fit(model, x, y, np.maximum(w, 1e-12))
    centre = (w[:, None] * x).sum(0) / max(w.sum(), 1e-12)
    background = pts @ mat.T + t - pts
    weight = np.zeros(len(pts))
    weight[ok] = w
    return BackgroundFit(model=model, translation=centre @ mat.T + t - centre, matrix=mat,
                         centre=centre, background=background, residual=disp - background,
                         inlier_weight=weight)
