"""Neighbourhoods of point clouds as padded index tables."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

__all__ = ["neighbour_table", "neighbour_lists"]

#: neighbourhood radius in grid spacings: the full 3^d - 1 neighbourhood of a regular
#: grid (the cube diagonal is sqrt(3) = 1.73 spacings), not the next shell (2 spacings).
RADIUS_SPACINGS = 1.8


def neighbour_table(points: ArrayLike, *, radius: float | None = None, query: ArrayLike | None = None,
                    tree: cKDTree | None = None) -> NDArray[np.int64]:
    """Neighbours of every point within `radius` as a table padded with -1.

    Parameters
    ----------
    points : array_like, shape (N, d)
        Positions, px / voxels.
    radius : float, optional
        Neighbourhood radius; default 1.8 times the median nearest-neighbour distance
        (the 8-neighbourhood of a 2D grid, the 26-neighbourhood of a 3D grid).
    query : array_like of int, optional
        Indices of the points whose neighbourhoods are wanted (default: all).
    tree : cKDTree, optional
        A tree of `points` to reuse.

    Returns
    -------
    ndarray of int64, shape (len(query), K)
        Neighbour indices (the point itself excluded), -1 where a row has fewer than K.
    """
    pts = np.asarray(points, dtype=np.float64)
    n, d = pts.shape if pts.ndim == 2 else (0, 1)
    idx = np.arange(n) if query is None else np.asarray(query, dtype=np.int64)
    if n < 2 or len(idx) == 0:
        return np.full((len(idx), 0), -1, dtype=np.int64)
    tree = cKDTree(pts) if tree is None else tree
    if radius is None:
        nn, _ = tree.query(pts, k=2)
        radius = RADIUS_SPACINGS * float(np.median(nn[:, 1]))
    k = int(min(n, 2 * 3 ** d))
    dist, nb = tree.query(pts[idx], k=k, distance_upper_bound=radius * (1 + 1e-9))
    nb = np.where(np.isfinite(dist) & (nb != idx[:, None]), nb, -1)
    keep = np.any(nb >= 0, axis=0)
    return np.ascontiguousarray(nb[:, keep], dtype=np.int64)


def neighbour_lists(points: ArrayLike, *, radius: float | None = None) -> list[NDArray[np.int64]]:
    """`neighbour_table` as a list of index arrays (one per point)."""
    table = neighbour_table(points, radius=radius)
    return [row[row >= 0] for row in table]
