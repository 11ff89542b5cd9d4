"""Local packing of the particle phase: particle labelling and kernel maps.

Follows the CT study's method (its Fig. S5): segment the particles (binary), take the
Euclidean distance transform, smooth it, use its local maxima as markers and split the
particle phase by a watershed into labelled particles; then an 18 x 18 x 18 voxel
kernel gives, per voxel, the number of distinct particles and the particle volume
within it.  `packing_near_cracks` compares these maps next to cracks and far from them
(crack growth compresses the neighbouring material).

References
----------
Dawson et al., EES Batteries 2026, 2, 572, DOI 10.1039/d5eb00201j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from ._analytics import check_int, check_mask, check_volume, check_voxel

__all__ = ["PackingComparison", "PackingMaps", "ParticleLabels", "label_particles", "packing_maps",
           "packing_near_cracks"]


def _check_bool_volume(mask: NDArray, name: str) -> NDArray[np.bool_]:
    arr = check_volume(mask, name)
    return arr if arr.dtype == bool else arr != 0


# ---------------------------------------------------------------- labelling
@dataclass(frozen=True, eq=False)
class ParticleLabels:
    """Labelled particles.

    Attributes
    ----------
    labels : ndarray, shape (Z, Y, X), int32
        Particle id per voxel (1..count), 0 outside the particle phase.
    count : int
        Number of particles.
    volumes_vox : ndarray, shape (count,), int64
        Voxels of particle ``i + 1`` at index ``i``.
    """

    labels: NDArray[np.int32]
    count: int
    volumes_vox: NDArray[np.int64]


def label_particles(particles: NDArray, *, smooth_sigma: float = 1.0, min_distance: int = 3,
                    min_peak_vox: float = 1.0) -> ParticleLabels:
    """Split the particle phase into individual particles (distance-transform watershed).

    Parameters
    ----------
    particles : ndarray, shape (Z, Y, X), bool
        Particle phase (e.g. ``phases == Phase.PARTICLE``).
    smooth_sigma : float, optional
        Gaussian smoothing of the distance transform, voxels (0: none); suppresses the
        spurious maxima of touching and overlapping particles.
    min_distance : int, optional
        Smallest distance between two markers, voxels (about the smallest particle
        radius).
    min_peak_vox : float, optional
        Smallest (smoothed) distance-transform value of a marker, voxels.

    Returns
    -------
    ParticleLabels

    Raises
    ------
    ValueError
        On a bad argument (the message names it).

    Notes
    -----
    Connected pieces of the particle phase without a marker (smaller than
    ``min_peak_vox``) get a label of their own, so every particle voxel is labelled.
    """
    mask = _check_bool_volume(particles, "particles")
    if not np.isfinite(smooth_sigma) or smooth_sigma < 0:
        raise ValueError(f"smooth_sigma must be >= 0 and finite, got {smooth_sigma!r}")
    mind = check_int(min_distance, "min_distance", 1)
    if not np.isfinite(min_peak_vox) or min_peak_vox < 0:
        raise ValueError(f"min_peak_vox must be >= 0 and finite, got {min_peak_vox!r}")
    dist = ndi.distance_transform_edt(mask).astype(np.float32)
    if smooth_sigma > 0:
        dist = ndi.gaussian_filter(dist, smooth_sigma, output=np.float32)
        dist[~mask] = 0.0
    peaks = peak_local_max(dist, min_distance=mind, threshold_abs=float(min_peak_vox), labels=mask.view(np.uint8),
                           exclude_border=False)
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    # pieces without a marker: one marker each, at their deepest voxel
    pieces, n_pieces = ndi.label(mask)
    if n_pieces:
        marked = np.zeros(n_pieces + 1, dtype=bool)
        marked[pieces[markers > 0]] = True
        missing = np.flatnonzero(~marked[1:]) + 1
        if len(missing):
            where = ndi.maximum_position(dist + mask, pieces, missing)
            base = len(peaks)
            for j, pos in enumerate(where, start=1):
                markers[pos] = base + j
    del pieces
    labels = watershed(-dist, markers, mask=mask).astype(np.int32, copy=False)
    count = int(markers.max())
    volumes = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.int64)
    return ParticleLabels(labels=labels, count=count, volumes_vox=volumes)


# ---------------------------------------------------------------- kernel maps
@dataclass(frozen=True, eq=False)
class PackingMaps:
    """Per-voxel local packing within a cubic kernel.

    Attributes
    ----------
    count : ndarray, shape (Z, Y, X), uint16
        Distinct particles intersecting the kernel window centred on the voxel.
    density_per_mm3 : ndarray, shape (Z, Y, X), float32
        ``count`` per volume of material in the window, 1/mm^3 (NaN without material).
    volume_fraction : ndarray, shape (Z, Y, X), float32
        Particle volume in the window / material volume in the window, 0-1 (NaN without
        material).
    kernel : int
        Kernel side, voxels.
    voxel_um : float
        Voxel size, um.
    """

    count: NDArray[np.uint16]
    density_per_mm3: NDArray[np.float32]
    volume_fraction: NDArray[np.float32]
    kernel: int
    voxel_um: float


def _window_sum(mask: NDArray[np.bool_], kernel: int) -> NDArray[np.float32]:
    """Number of True voxels in the kernel window around each voxel (zero outside)."""
    out = mask.astype(np.float32)
    for axis in range(3):
        ndi.uniform_filter1d(out, kernel, axis=axis, output=out, mode="constant")
    out *= np.float32(kernel**3)
    return out


def packing_maps(particles: ParticleLabels | NDArray, voxel_um: float, *, kernel: int = 18,
                 material: NDArray | None = None) -> PackingMaps:
    """Local particle count density and particle volume fraction in a moving kernel.

    Parameters
    ----------
    particles : ParticleLabels or ndarray, shape (Z, Y, X), integer
        Labelled particles (`label_particles` or a label array, 0 = no particle).
    voxel_um : float
        Voxel size, um.
    kernel : int, optional
        Side of the cubic window, voxels (18 in the CT study; an even side covers
        offsets ``-kernel/2 .. kernel/2 - 1``).
    material : ndarray, shape (Z, Y, X), bool, optional
        Voxels that count as material in the denominators (e.g. the coating layer
        without cracks and bubbles, so that a void in the window does not dilute the
        packing).  None: every voxel of the volume.

    Returns
    -------
    PackingMaps

    Raises
    ------
    ValueError
        On a bad argument (the message names it).

    Notes
    -----
    The count is exact: a particle counts in every window that holds at least one of
    its voxels (each particle's indicator is max-filtered with the window).  Windows
    are clipped at the volume's faces.
    """
    if isinstance(particles, ParticleLabels):
        labels = particles.labels
    else:
        labels = check_volume(particles, "particles")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"particles must be a ParticleLabels or an integer label array, got dtype {labels.dtype}")
    v = check_voxel(voxel_um)
    k = check_int(kernel, "kernel", 1)
    mat = None if material is None else check_mask(material, labels.shape, "material")
    count = np.zeros(labels.shape, dtype=np.uint16)
    half = k // 2
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(s.start - half, 0), min(s.stop + half, n)) for s, n in zip(sl, labels.shape))
        local = (labels[box] == i).view(np.uint8)
        count[box] += ndi.maximum_filter(local, size=k, mode="constant")
    present = labels > 0
    if mat is not None:
        present &= mat
    part = _window_sum(present, k)
    if mat is None:
        w = [ndi.uniform_filter1d(np.ones(n, np.float32), k, mode="constant") * k for n in labels.shape]
        denom = w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]
    else:
        denom = _window_sum(mat, k)
    denom = np.rint(denom)  # window sums are integers; remove the filter's rounding
    np.rint(part, out=part)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(denom > 0, part / denom, np.nan).astype(np.float32)
        dens = np.where(denom > 0, count / (denom * np.float32(v**3 * 1e-9)), np.nan).astype(np.float32)
    return PackingMaps(count=count, density_per_mm3=dens, volume_fraction=frac, kernel=k, voxel_um=v)


# ---------------------------------------------------------------- near vs far from cracks
@dataclass(frozen=True, eq=False)
class PackingComparison:
    """Packing maps next to cracks and far from them.

    Attributes
    ----------
    fraction_edges : ndarray, shape (B + 1,)
        Bin edges of the volume fraction.
    fraction_near, fraction_far : ndarray, shape (B,)
        Share of the near / far voxels per volume-fraction bin (each sums to 1).
    count_edges : ndarray, shape (C + 1,)
        Bin edges of the particle count (unit bins centred on the integers).
    count_near, count_far : ndarray, shape (C,)
        Share of the near / far voxels per particle-count bin.
    mean_fraction_near, mean_fraction_far : float
        Mean volume fraction near / far.
    mean_count_near, mean_count_far : float
        Mean particle count near / far.
    n_near, n_far : int
        Voxels in the two regions.
    """

    fraction_edges: NDArray[np.float64]
    fraction_near: NDArray[np.float64]
    fraction_far: NDArray[np.float64]
    count_edges: NDArray[np.float64]
    count_near: NDArray[np.float64]
    count_far: NDArray[np.float64]
    mean_fraction_near: float
    mean_fraction_far: float
    mean_count_near: float
    mean_count_far: float
    n_near: int
    n_far: int


def _share(values: NDArray, edges: NDArray) -> NDArray[np.float64]:
    h, _ = np.histogram(values, bins=edges)
    return h / max(h.sum(), 1)


def packing_near_cracks(maps: PackingMaps, cracks: NDArray, *, near_um: float | None = None,
                        far_um: float | None = None, within: NDArray | None = None,
                        fraction_bins: int = 20) -> PackingComparison:
    """Histograms of the packing maps next to cracks versus far from them.

    Parameters
    ----------
    maps : PackingMaps
        From `packing_maps`.
    cracks : ndarray, shape (Z, Y, X), bool
        Crack voxels (e.g. `segment_cracks_3d(...).mask`).
    near_um : float, optional
        Voxels at most this far from a crack (and not in it) are "near"; None: half the
        kernel side.
    far_um : float, optional
        Voxels farther than this from any crack are "far"; None: twice the kernel side.
    within : ndarray, shape (Z, Y, X), bool, optional
        Voxels to consider (e.g. the coating layer); None: all.
    fraction_bins : int, optional
        Bins of the volume-fraction histograms over [0, 1].

    Returns
    -------
    PackingComparison

    Raises
    ------
    ValueError
        On a bad argument, or when one region is empty.

    Notes
    -----
    Distances are Euclidean, in um, from the voxel centres to the nearest crack voxel.
    With a crack-free volume every voxel is far.
    """
    if not isinstance(maps, PackingMaps):
        raise ValueError(f"maps must be a PackingMaps, got {type(maps).__name__}")
    shape = maps.count.shape
    crk = check_mask(cracks, shape, "cracks")
    sel = None if within is None else check_mask(within, shape, "within")
    v = maps.voxel_um
    near = 0.5 * maps.kernel * v if near_um is None else check_voxel(near_um, "near_um")
    far = 2.0 * maps.kernel * v if far_um is None else check_voxel(far_um, "far_um")
    if far < near:
        raise ValueError(f"far_um must be >= near_um, got far_um={far}, near_um={near}")
    nb = check_int(fraction_bins, "fraction_bins", 1)
    if crk.any():
        dist = ndi.distance_transform_edt(~crk, sampling=v).astype(np.float32)
    else:
        dist = np.full(shape, np.inf, dtype=np.float32)
    valid = np.isfinite(maps.volume_fraction) & ~crk
    if sel is not None:
        valid &= sel
    near_m = valid & (dist <= near)
    far_m = valid & (dist > far)
    if not near_m.any() or not far_m.any():
        raise ValueError(f"empty region: {int(near_m.sum())} voxels within near_um={near} of cracks, "
                         f"{int(far_m.sum())} beyond far_um={far}")
    fe = np.linspace(0.0, 1.0, nb + 1)
    cmax = int(maps.count[near_m | far_m].max())
    ce = np.arange(cmax + 2, dtype=np.float64) - 0.5
    fn, ff = maps.volume_fraction[near_m], maps.volume_fraction[far_m]
    cn, cf = maps.count[near_m], maps.count[far_m]
    return PackingComparison(fraction_edges=fe, fraction_near=_share(fn, fe), fraction_far=_share(ff, fe),
                             count_edges=ce, count_near=_share(cn, ce), count_far=_share(cf, ce),
                             mean_fraction_near=float(fn.mean(dtype=np.float64)),
                             mean_fraction_far=float(ff.mean(dtype=np.float64)),
                             mean_count_near=float(cn.mean(dtype=np.float64)),
                             mean_count_far=float(cf.mean(dtype=np.float64)),
                             n_near=int(near_m.sum()), n_far=int(far_m.sum()))
