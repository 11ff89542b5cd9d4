"""Robust background motion of a displacement field: translation, rigid body or affine.

References
----------
W. Kabsch, "A solution for the best rotation to relate two sets of vectors", Acta Cryst.
A32, 922-923 (1976). https://doi.org/10.1107/S0567739476001873
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._robust import chi_median, tukey_weights

__all__ = ["BACKGROUND_MODELS", "BackgroundFit", "remove_background"]

BACKGROUND_MODELS = ("translation", "rigid", "affine")
_TUKEY = 4.685


@dataclass(frozen=True, eq=False)
class BackgroundFit:
    """A background motion fitted to a displacement field and the residual.

    Attributes
    ----------
    model : str
        "translation", "rigid" or "affine".
    translation : ndarray, shape (d,)
        Translation of the fitted map at `centre`, px / voxels.
    matrix : ndarray, shape (d, d)
        Linear part F of the map ``x -> centre + F (x - centre) + translation`` applied
        to the reference positions (identity for "translation", a rotation for "rigid";
        ``F - I`` is the background displacement gradient).
    centre : ndarray, shape (d,)
        Centre of the fit (weighted mean of the used points).
    background : ndarray, shape (N, d)
        Fitted background displacement at every point.
    residual : ndarray, shape (N, d)
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
    """Map (matrix, translation) with y ~ matrix x + translation."""
    d = x.shape[1]
    sw = w.sum()
    mx = (w[:, None] * x).sum(0) / sw
    my = (w[:, None] * y).sum(0) / sw
    xc, yc = x - mx, y - my
    if model == "translation":
        mat = np.eye(d)
    elif model == "rigid":  # Kabsch: rotation maximising sum w y . R x
        u, _, vt = np.linalg.svd((w[:, None] * yc).T @ xc)
        fix = np.ones(d)
        fix[-1] = np.sign(np.linalg.det(u @ vt))
        mat = u @ np.diag(fix) @ vt
    else:
        a = (w[:, None] * xc).T @ xc
        b = (w[:, None] * xc).T @ yc
        mat = np.linalg.lstsq(a, b, rcond=None)[0].T
    return mat, my - mat @ mx


def remove_background(points: ArrayLike, displacement: ArrayLike, *, model: str = "rigid",
                      valid: ArrayLike | None = None, max_iterations: int = 20,
                      noise_floor: float = 1e-3) -> BackgroundFit:
    """Fit and subtract a background (translation, rigid-body or affine) motion, robustly.

    Parameters
    ----------
    points : array_like, shape (N, d)
        Reference positions, px / voxels (d = 2: (row, col); d = 3: (z, y, x)).
    displacement : array_like, shape (N, d)
        Displacements (NaN rows are ignored).
    model : {"rigid", "translation", "affine"}, optional
        Rigid body (translation + rotation: camera shake, sample stage motion), pure
        translation, or a full affine map (adds homogeneous strain such as drying
        shrinkage).
    valid : array_like of bool, shape (N,), optional
        Points allowed in the fit (default: all finite ones).
    max_iterations : int, optional
        Iteratively reweighted least-squares iterations (Tukey biweight, c = 4.685 sigma,
        sigma from the median residual norm over the chi median of d degrees of freedom),
        so local events such as an opening crack do not bias the background.
    noise_floor : float, optional
        Lower bound of sigma (px / voxels), so a noiseless field keeps its points.

    Returns
    -------
    BackgroundFit

    Raises
    ------
    ValueError
        On bad shapes, an unknown model or fewer valid points than the model needs.
    """
    pts = np.asarray(points, dtype=np.float64)
    disp = np.asarray(displacement, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"points must be an (N, 2) or (N, 3) array, got shape {pts.shape}")
    if disp.shape != pts.shape:
        raise ValueError(f"displacement must have the shape of points {pts.shape}, got {disp.shape}")
    if model not in BACKGROUND_MODELS:
        raise ValueError(f"model must be one of {BACKGROUND_MODELS}, got {model!r}")
    d = pts.shape[1]
    ok = np.all(np.isfinite(disp), axis=1) & np.all(np.isfinite(pts), axis=1)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != ok.shape:
            raise ValueError(f"valid must have shape {ok.shape}, got {v.shape}")
        ok &= v
    need = {"translation": 1, "rigid": d, "affine": d + 1}[model]
    if ok.sum() < need:
        raise ValueError(f"model {model!r} needs at least {need} valid points, got {int(ok.sum())}")
    x = pts[ok]
    y = pts[ok] + disp[ok]
    w = np.ones(len(x))
    norm = chi_median(d)
    for _ in range(max(int(max_iterations), 1)):
        mat, t = _weighted_fit(model, x, y, w)
        r = np.linalg.norm(y - (x @ mat.T + t), axis=1)
        sigma = float(np.median(r)) / norm
        w_new = tukey_weights(r, _TUKEY * max(sigma, noise_floor))
        if w_new.sum() < need or np.count_nonzero(w_new) < need:
            break
        converged = np.allclose(w_new, w, atol=1e-4)
        w = w_new
        if converged:
            break
    mat, t = _weighted_fit(model, x, y, np.maximum(w, 1e-12))
    centre = (w[:, None] * x).sum(0) / max(w.sum(), 1e-12)
    background = pts @ mat.T + t - pts
    weight = np.zeros(len(pts))
    weight[ok] = w
    return BackgroundFit(model=model, translation=centre @ mat.T + t - centre, matrix=mat,
                         centre=centre, background=background, residual=disp - background,
                         inlier_weight=weight)
