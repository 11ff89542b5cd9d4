"""Time series of CT scans of a simulated lab sample (the virtual in-situ CT experiment)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._dvc_truth import first_crack
from ._lab import LabRun, simulate_lab
from ._volume import VolumeRender, render_volume

__all__ = ["CTSeries", "ct_scan_series"]


@dataclass(frozen=True, eq=False)
class CTSeries:
    """Scans of one lab sample around its critical moment.

    Attributes
    ----------
    times_min : ndarray, shape (T,)
        Scan times, min.
    renders : tuple of VolumeRender
        The scans with their ground truth (labels, displacement).
    voxel_um : float
        Voxel size of every scan, um.
    origin_um : tuple of float
        In-plane position (y, x) of voxel column (0, 0), um.
    run : LabRun
        The simulated sample (time series and physics attributes).
    """

    times_min: NDArray[np.float64]
    renders: tuple[VolumeRender, ...]
    voxel_um: float
    origin_um: tuple[float, float]
    run: LabRun


def ct_scan_series(gap_um: float, *, seed: int = 0, interval_min: float = 1.0, before_min: float = 5.0,
                   after_min: float = 3.0, shape: tuple[int, int, int] = (80, 128, 128),
                   voxel_um: float = 2.0, noise_std: float = 0.02) -> CTSeries:
    """Render CT scans of a lab sample every `interval_min` around crack onset.

    The window runs from `before_min` before to `after_min` after the physics crack onset
    (for a crack-free sample: the end of consolidation), on whole minutes.  The field of
    view is centred on the crack segment of the sample's network closest to (300, 300) um,
    so the first crack opens inside it.  The voxel size is `voxel_um`, or coarser if the
    thickest (first) scan would not fit 85 % of ``shape[0]``.

    Parameters
    ----------
    gap_um : float
        Doctor-blade gap, um.
    seed : int, optional
        Sample seed (film scatter, crack network, particles, noise).
    interval_min, before_min, after_min : float, optional
        Scan interval and window, min.
    shape : tuple of int, optional
        Volume shape (Z, Y, X).
    voxel_um : float, optional
        Smallest voxel size, um.
    noise_std : float, optional
        Gaussian noise, fraction of full scale.

    Returns
    -------
    CTSeries
    """
    if not (interval_min > 0 and before_min >= 0 and after_min >= 0):
        raise ValueError("interval_min must be > 0 and before_min, after_min >= 0, got "
                         f"{interval_min!r}, {before_min!r}, {after_min!r}")
    run = simulate_lab(gap_um, seed=seed, output_interval_s=min(30.0, 30.0 * interval_min))
    attrs = run.frame.attrs
    onset = attrs["crack_onset_min"]
    centre = onset if math.isfinite(onset) else attrs["consolidation_end_min"]
    n_before = int(round(before_min / interval_min))
    n_after = int(round(after_min / interval_min))
    times = np.floor(centre) + interval_min * np.arange(-n_before, n_after + 1)
    first = run.snapshot_at(float(times[0]))
    v = max(voxel_um, (10.0 + first.solid_thickness_um + first.solvent_level_um) / (0.85 * shape[0]))
    fov = np.array(shape[1:]) * v
    pat, k = first_crack(first.crack_spacing_um, seed)
    mid = pat.midpoints_um[k]
    origin = (float(mid[0] - fov[0] / 2), float(mid[1] - fov[1] / 2))
    renders = tuple(render_volume(run.snapshot_at(float(t)), shape=shape, voxel_um=v, origin_um=origin, seed=seed,
                                  noise_std=noise_std, cif_reference="pattern") for t in times)
    return CTSeries(times_min=times, renders=renders, voxel_um=v, origin_um=origin, run=run)
