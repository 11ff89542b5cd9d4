"""3D digital volume correlation: subvolume IC-GN with reliability-guided repair.

`correlate` is the 3D face of the shared correlation core (`correlation.correlate_nd`):
validation, optional Gaussian prefilter, tricubic / triquintic B-spline interpolation,
texture gate, seeds (FFT phase correlation + coarse-to-fine template matching), IC-GN
(numba, parallel over points), noise-aware quality gate, reliability-guided repair,
normalised median test and optional regularisation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from correlation import CorrelationResult, PointStatus, check_data, correlate_nd, default_grid

__all__ = ["DVCResult", "PointStatus", "correlate", "check_volume", "default_grid"]

#: The result of `correlate` (points (N, 3) in (z, y, x) order, voxels).
DVCResult = CorrelationResult


def check_volume(name: str, volume: ArrayLike) -> NDArray:
    """A 3D real-valued finite array, or ValueError naming `name`."""
    return check_data(name, volume, 3)


def correlate(reference: ArrayLike, deformed: ArrayLike, *, subset_size: int = 21, step: int = 10,
              points: ArrayLike | None = None, mask: ArrayLike | None = None,
              interpolation: str = "quintic", prefilter_sigma_vox: float = 0.6,
              max_iterations: int = 30, tolerance: float = 1e-3, zncc_threshold: float | str = "auto",
              texture_threshold: float = 3.0, search_radius: int | None = None,
              initial_displacement: ArrayLike | None = None, outlier_threshold: float | None = 2.0,
              outlier_noise_vox: float = 0.1, replace_outliers: bool = True, regularisation: float = 0.0,
              noise_std: float | None = None) -> DVCResult:
    """Subvolume-based 3D DVC between a reference and a deformed volume.

    Parameters
    ----------
    reference, deformed : ndarray, shape (Z, Y, X)
        Volumes (z, y, x), any real dtype (uint8, uint16, float32, ...); not modified.
    subset_size : int, optional
        Subvolume width, voxels, odd and >= 7.
    step : int, optional
        Spacing of the default grid of points, voxels.
    points : array_like, shape (N, 3), optional
        Reference positions (z, y, x), voxels.  Default: a grid with spacing `step` at
        least ``subset_size // 2 + 2`` voxels from the border.
    mask : ndarray of bool, shape (Z, Y, X), optional
        Region of interest on the reference; points outside are MASKED, subvolume voxels
        outside are ignored, subvolumes less than half inside are MASKED.
    interpolation : {"quintic", "cubic"}, optional
        B-spline order of the deformed volume's interpolant.
    prefilter_sigma_vox : float, optional
        Standard deviation of a Gaussian low-pass applied to both volumes first, voxels
        (0: none).  With quintic splines, 0.6 voxel removes most of the interpolation bias
        on real, un-blurred CT texture, lowers the random error on noisy volumes and
        converges in fewer iterations (benchmarks/README.md, dvc3d and real3d).
    max_iterations : int, optional
        IC-GN iteration limit.
    tolerance : float, optional
        Convergence threshold on the norm of the last parameter increment, voxels
        (gradient terms scaled by the half subvolume).
    zncc_threshold : "auto" or float, optional
        Quality gate.  "auto": noise-aware; a point is LOW_ZNCC when ``1 - zncc`` exceeds
        4 times what the volume noise gives a matched subvolume of its contrast (never
        accepted below 0.5, always above 0.98).  A number: a constant gate.
    texture_threshold : float, optional
        Texture gate: subvolumes whose mean squared gradient (Gaussian derivative, 1
        voxel) is below this multiple of what the noise alone gives, and far below the
        textured ones, are UNTEXTURED and not iterated (air, a solvent film, the
        substrate).  0 disables it.
    search_radius : int, optional
        Integer search radius around the global shift at the seeds, voxels (default
        ``max(subset_size, 12)``).
    initial_displacement : array_like, shape (3,) or (N, 3), optional
        Initial guess (z, y, x), voxels; skips the integer search.
    outlier_threshold : float or None, optional
        Normalised-median-test threshold (None disables the test).
    outlier_noise_vox : float, optional
        Fluctuation level epsilon of the median test, voxels.
    replace_outliers : bool, optional
        Give OUTLIER points the median displacement of their valid neighbours (they stay
        ``converged == False``; `measured_displacement` keeps NaN there).
    regularisation : float, optional
        Strength of the quality-weighted smoothing (0: none).  The data weight of a point
        is ``((zncc - gate) / (1 - gate))^2`` (0 for failed points).
    noise_std : float, optional
        Noise level of the volumes, grey values (default: estimated from the reference).

    Returns
    -------
    DVCResult
        `correlation.CorrelationResult` with points (N, 3) (z, y, x), voxels.

    Raises
    ------
    ValueError
        On bad volumes, sizes or options; the message names the argument.

    Notes
    -----
    Zero-normalised SSD, inverse-compositional Gauss-Newton with the 12-parameter affine
    shape function, B-spline interpolation with coefficients computed once (Pan and Wang
    2016), FFT integer initial guess on a coarse-to-fine pyramid, reliability-guided
    repair (Pan 2009) and the normalised median test (Westerweel and Scarano 2005).

    References
    ----------
    B. Pan, B. Wang, Exp. Mech. 56, 1129-1141 (2016). https://doi.org/10.1007/s11340-016-0144-3
    B. Pan, Appl. Opt. 48, 1535-1542 (2009). https://doi.org/10.1364/AO.48.001535
    J. Westerweel, F. Scarano, Exp. Fluids 39, 1096-1100 (2005).
    https://doi.org/10.1007/s00348-005-0016-6

    Examples
    --------
    >>> res = correlate(ref, cur, subset_size=21, step=10)  # doctest: +SKIP
    >>> u = res.as_grid("displacement")  # (nz, ny, nx, 3), voxels
    """
    return correlate_nd(reference, deformed, ndim=3, subset_size=subset_size, step=step, points=points,
                        mask=mask, interpolation=interpolation, prefilter_sigma=prefilter_sigma_vox,
                        max_iterations=max_iterations, tolerance=tolerance, zncc_threshold=zncc_threshold,
                        texture_threshold=texture_threshold, search_radius=search_radius,
                        initial_displacement=initial_displacement, outlier_threshold=outlier_threshold,
                        outlier_noise=outlier_noise_vox, replace_outliers=replace_outliers,
                        regularisation=regularisation, noise_std_=noise_std)
