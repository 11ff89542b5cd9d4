"""Per-point outcome codes shared by the 2D and 3D engines (and their numba kernels)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["PointStatus"]


class PointStatus(IntEnum):
    """Outcome of the correlation of one point.

    OK
        Converged and passed the quality gate.
    NOT_CONVERGED
        IC-GN did not converge within the iteration limit (or diverged).
    LOW_ZNCC
        Converged, but the correlation quality is too low for its noise level (the
        subset decorrelated, e.g. it straddles an opening crack).
    OUT_OF_BOUNDS
        The subset (or its warped copy) leaves the image / volume.
    MASKED
        The point or most of its subset lies outside the region of interest.
    OUTLIER
        Disagrees with its neighbours (normalised median test) even after a restart.
    UNTEXTURED
        The subset carries no texture above the noise (rejected before correlation).
    """

    OK = 0
    NOT_CONVERGED = 1
    LOW_ZNCC = 2
    OUT_OF_BOUNDS = 3
    MASKED = 4
    OUTLIER = 5
    UNTEXTURED = 6
