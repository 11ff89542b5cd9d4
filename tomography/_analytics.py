"""CT analytics of a drying coating on (Z, Y, X) phase volumes with an explicit voxel size.

Axes follow numpy, z the coating normal with the substrate at low z.  Voxel ``(k, j, i)``
spans ``[k v, (k + 1) v)`` along z (v the voxel size, um) and likewise in-plane, so its
centre is at ``((k + 0.5) v, (j + 0.5) v, (i + 0.5) v)`` from the volume's corner.

Everything here works on a *phase* volume (`Phase` codes, uint8), as `segment_phases` or
`PhaseClassifier.predict` return it, plus Boolean masks (cracks, exclusions).  The
coating layer ("envelope") of a column runs from the substrate top to the coating top;
columns whose top lies below the median top (cracks, dips) are filled up to the median,
so the envelope contains the crack voids (see `coating_layer`).

References
----------
Dawson et al., EES Batteries 2026, 2, 572, DOI 10.1039/d5eb00201j (definitions of 3D
and 2D CIF, porosity profile, delamination).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

__all__ = ["CifProfile", "Delamination", "HeightMap", "Phase", "PorosityProfile", "SolventLevel",
           "cif_profile", "coating_layer", "crack_intensity_3d", "detect_delamination", "height_map",
           "porosity_profile", "solvent_level"]


class Phase(IntEnum):
    """Phase code of a voxel, in order of increasing X-ray attenuation.

    AIR: empty space (above the coating, cracks, bubbles, gaps).  SOLVENT: free liquid
    (a layer above the solids during consolidation).  PORE: the pore space of the
    particle layer as CT resolves it (carbon-binder domain counts as pore).  PARTICLE:
    active particles.  SUBSTRATE: the current collector / pin.
    """

    AIR = 0
    SOLVENT = 1
    PORE = 2
    PARTICLE = 3
    SUBSTRATE = 4


# ---------------------------------------------------------------- argument checks
def check_volume(volume: NDArray, name: str = "volume") -> NDArray:
    """Return ``volume`` as an ndarray after checking it is a non-empty 3D numeric array."""
    arr = np.asarray(volume)
    if arr.ndim != 3 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 3D (Z, Y, X) array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def check_phases(phases: NDArray, name: str = "phases") -> NDArray:
    """Return a 3D integer phase volume after checking it."""
    arr = check_volume(phases, name)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer Phase codes, got dtype {arr.dtype}")
    return arr


def check_mask(mask: NDArray, shape: tuple[int, ...], name: str) -> NDArray[np.bool_]:
    """Return a Boolean mask of ``shape`` (no copy when already bool)."""
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have the volume's shape {tuple(shape)}, got {arr.shape}")
    return arr if arr.dtype == bool else arr != 0


def check_voxel(voxel_um: float, name: str = "voxel_um") -> float:
    """Return ``voxel_um`` as a float after checking it is positive and finite."""
    try:
        v = float(voxel_um)
    except (TypeError, ValueError):
        v = np.nan
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be positive and finite, got {voxel_um!r}")
    return v


def check_int(value: int, name: str, minimum: int = 1) -> int:
    """Return ``value`` after checking it is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _is_coating(sl: NDArray) -> NDArray[np.bool_]:
    return (sl == Phase.PORE) | (sl == Phase.PARTICLE)


def _is_void(sl: NDArray) -> NDArray[np.bool_]:
    return (sl == Phase.AIR) | (sl == Phase.SOLVENT)


# ---------------------------------------------------------------- heights
@dataclass(frozen=True, eq=False)
class HeightMap:
    """Top surface of the coating.

    Attributes
    ----------
    height_um : ndarray, shape (Y, X), float32
        Height of the coating top above the substrate top, um; NaN in columns without
        coating (through-cracks).
    mean_height_um, median_height_um : float
        Mean and median of ``height_um`` over the columns with coating, um (the median is
        the coating thickness next to cracks; the mean includes the lower tops inside them).
    coverage : float
        Share of the columns with coating, 0-1.
    substrate_top_vox : ndarray, shape (Y, X), int32
        Index of the first voxel above the substrate per column.
    top_vox : ndarray, shape (Y, X), int32
        Index of the first voxel above the coating per column (= substrate_top_vox where
        there is no coating).
    envelope_top_vox : ndarray, shape (Y, X), int32
        Top of the coating layer used for fractions: ``max(top_vox, median top)``.
    voxel_um : float
        Voxel size, um.
    """

    height_um: NDArray[np.float32]
    mean_height_um: float
    median_height_um: float
    coverage: float
    substrate_top_vox: NDArray[np.int32]
    top_vox: NDArray[np.int32]
    envelope_top_vox: NDArray[np.int32]
    voxel_um: float


def height_map(phases: NDArray, voxel_um: float, *, substrate_top_vox: int | None = None) -> HeightMap:
    """Top-surface height map and coating thickness above the substrate.

    Parameters
    ----------
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes.  The coating is PORE or PARTICLE; the substrate is SUBSTRATE.
    voxel_um : float
        Voxel size, um.
    substrate_top_vox : int, optional
        Index of the first voxel above the substrate, for all columns.  None: per column,
        one above the highest SUBSTRATE voxel (columns without one take the median).

    Returns
    -------
    HeightMap

    Raises
    ------
    ValueError
        On a bad argument, or without substrate (and ``substrate_top_vox``) or coating.

    Notes
    -----
    The top of a column is the upper face of its highest run of at least two coating
    voxels (a lone coating voxel above it, e.g. noise in a solvent layer, is ignored;
    columns with lone voxels only take the highest), the substrate top the upper face of
    its highest substrate voxel, so heights are quantised to the voxel size (error
    within +-1 voxel against the true interfaces).

    Examples
    --------
    >>> ph = np.full((10, 4, 4), Phase.AIR, np.uint8)
    >>> ph[:2] = Phase.SUBSTRATE; ph[2:7] = Phase.PORE
    >>> height_map(ph, 2.0).mean_height_um
    10.0
    """
    phases = check_phases(phases)
    v = check_voxel(voxel_um)
    nz, ny, nx = phases.shape
    sub = np.full((ny, nx), -1, dtype=np.int32)
    top = np.full((ny, nx), -1, dtype=np.int32)
    top1 = np.full((ny, nx), -1, dtype=np.int32)
    prev = np.zeros((ny, nx), dtype=bool)
    for k in range(nz):  # slice-wise: no full-volume temporaries
        sl = phases[k]
        sub[sl == Phase.SUBSTRATE] = k
        cur = _is_coating(sl)
        top1[cur] = k
        top[cur & prev] = k  # the top of a run of >= 2 voxels: isolated noise voxels above are ignored
        prev = cur
    top = np.where(top >= 0, top, top1)
    if substrate_top_vox is None:
        found = sub >= 0
        if not found.any():
            raise ValueError("phases has no SUBSTRATE voxels; pass substrate_top_vox")
        sub += 1
        sub[~found] = int(np.median(sub[found]))
    else:
        if check_int(substrate_top_vox, "substrate_top_vox", 0) >= nz:
            raise ValueError(f"substrate_top_vox must be an int in [0, {nz}), got {substrate_top_vox!r}")
        sub[:] = int(substrate_top_vox)
    top += 1
    has = top > sub
    if not has.any():
        raise ValueError("phases has no coating (PORE or PARTICLE) above the substrate")
    top[~has] = sub[~has]
    height = ((top - sub) * v).astype(np.float32)
    height[~has] = np.nan
    med_top = int(np.round(np.median(top[has] - sub[has])))
    envelope = np.maximum(top, sub + med_top).astype(np.int32)
    np.minimum(envelope, nz, out=envelope)
    return HeightMap(height_um=height, mean_height_um=float(np.mean(height[has], dtype=np.float64)),
                     median_height_um=float(np.median(height[has])), coverage=float(has.mean()),
                     substrate_top_vox=sub, top_vox=top, envelope_top_vox=envelope, voxel_um=v)


def _heights(phases: NDArray, voxel_um: float, heights: HeightMap | None) -> HeightMap:
    if heights is None:
        return height_map(phases, voxel_um)
    if not isinstance(heights, HeightMap):
        raise ValueError(f"heights must be a HeightMap, got {type(heights).__name__}")
    if heights.height_um.shape != phases.shape[1:]:
        raise ValueError(f"heights must match the volume's (Y, X) {phases.shape[1:]}, got {heights.height_um.shape}")
    return heights


def coating_layer(phases: NDArray, *, voxel_um: float = 1.0, heights: HeightMap | None = None) -> NDArray[np.bool_]:
    """Boolean mask of the coating layer (the envelope the fractions refer to).

    Parameters
    ----------
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes.
    voxel_um : float, optional
        Voxel size, um (only to compute ``heights`` when None; the mask does not use it).
    heights : HeightMap, optional
        A precomputed `height_map` of ``phases``.

    Returns
    -------
    ndarray, shape (Z, Y, X), bool
        True from the substrate top up to ``heights.envelope_top_vox`` in each column:
        pores, particles, and the voids inside the layer (cracks, bubbles, gaps).

    Notes
    -----
    The envelope fills columns whose top lies below the median top up to the median, so
    it assumes that more than half of the columns reach the coating top (surface 2D CIF
    below 50 %) and that the coating is flat on the scale of the field of view.
    """
    phases = check_phases(phases)
    h = _heights(phases, voxel_um, heights)
    k = np.arange(phases.shape[0], dtype=np.int32)[:, None, None]
    return (k >= h.substrate_top_vox) & (k < h.envelope_top_vox)


# ---------------------------------------------------------------- solvent
@dataclass(frozen=True, eq=False)
class SolventLevel:
    """Free solvent above the solids.

    Attributes
    ----------
    thickness_um : ndarray, shape (Y, X), float32
        Solvent directly above the coating layer per column, um (0 where none).
    mean_thickness_um : float
        Mean thickness, um.
    top_um : float
        Mean height of the solvent top above the substrate top, um (top of the coating
        layer plus solvent thickness; the coating height where there is no solvent).
    coverage : float
        Share of the columns that carry solvent, 0-1.
    """

    thickness_um: NDArray[np.float32]
    mean_thickness_um: float
    top_um: float
    coverage: float


def solvent_level(phases: NDArray, voxel_um: float, *, heights: HeightMap | None = None) -> SolventLevel:
    """Height and thickness of the liquid layer above the particle layer.

    Parameters
    ----------
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes.
    voxel_um : float
        Voxel size, um.
    heights : HeightMap, optional
        A precomputed `height_map` of ``phases``.

    Returns
    -------
    SolventLevel

    Notes
    -----
    Counts the contiguous SOLVENT voxels directly above the top of the coating layer
    (``heights.envelope_top_vox``: a column's own top, or the median top over a crack),
    so solvent inside cracks and pores is not counted: +-1 voxel per interface.
    """
    phases = check_phases(phases)
    v = check_voxel(voxel_um)
    h = _heights(phases, v, heights)
    nz = phases.shape[0]
    start = h.envelope_top_vox
    count = np.zeros(start.shape, dtype=np.int32)
    active = np.ones(start.shape, dtype=bool)
    for k in range(int(start.min()), nz):
        run = active & (k >= start)
        if not run.any() and k >= start.max():
            break
        is_solv = phases[k] == Phase.SOLVENT
        count[run & is_solv] += 1
        active &= ~(run & ~is_solv)
    thick = (count * v).astype(np.float32)
    top = (start - h.substrate_top_vox + count) * v
    return SolventLevel(thickness_um=thick, mean_thickness_um=float(np.mean(thick, dtype=np.float64)),
                        top_um=float(np.mean(top, dtype=np.float64)), coverage=float(np.mean(count > 0)))


# ---------------------------------------------------------------- profiles over normalised height
def _binned(phases: NDArray, h: HeightMap, n_bins: int, numerator, exclude: NDArray | None):
    """Counts of envelope voxels and of ``numerator(k)`` voxels per normalised-height bin."""
    lo = h.substrate_top_vox
    hi = h.envelope_top_vox
    thick = np.maximum(hi - lo, 1).astype(np.float32)
    total = np.zeros(n_bins, dtype=np.int64)
    hits = np.zeros(n_bins, dtype=np.int64)
    for k in range(int(lo.min()), int(hi.max())):
        inside = (k >= lo) & (k < hi)
        if exclude is not None:
            inside &= ~exclude[k]
        if not inside.any():
            continue
        zeta = (np.float32(k + 0.5) - lo) / thick
        b = np.clip((zeta * n_bins).astype(np.int64), 0, n_bins - 1)
        total += np.bincount(b[inside], minlength=n_bins)
        hits += np.bincount(b[inside & numerator(k)], minlength=n_bins)
    return total, hits


def _centres(n_bins: int) -> NDArray[np.float64]:
    return (np.arange(n_bins) + 0.5) / n_bins


@dataclass(frozen=True, eq=False)
class PorosityProfile:
    """Total porosity of the coating and its profile over normalised height.

    Attributes
    ----------
    porosity : float
        ``1 - particle voxels / coating-layer voxels`` (excluded voxels left out), 0-1.
    z_frac : ndarray, shape (n_bins,)
        Bin centres of normalised height (0 substrate top, 1 coating top).
    profile : ndarray, shape (n_bins,)
        Porosity per bin (NaN for an empty bin).
    voxels : ndarray, shape (n_bins,), int64
        Coating-layer voxels per bin.
    """

    porosity: float
    z_frac: NDArray[np.float64]
    profile: NDArray[np.float64]
    voxels: NDArray[np.int64]


def porosity_profile(phases: NDArray, *, n_bins: int = 10, exclude: NDArray | None = None,
                     voxel_um: float = 1.0, heights: HeightMap | None = None) -> PorosityProfile:
    """Total CT porosity and the porosity profile over normalised height.

    Parameters
    ----------
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes.
    n_bins : int, optional
        Number of height bins between substrate top (0) and coating top (1).
    exclude : ndarray, shape (Z, Y, X), bool, optional
        Voxels to leave out (e.g. cracks and bubbles, for the porosity of the material
        between them).  None counts every voxel of the layer, voids included.
    voxel_um : float, optional
        Voxel size, um (only to compute ``heights`` when None).
    heights : HeightMap, optional
        A precomputed `height_map` of ``phases``.

    Returns
    -------
    PorosityProfile

    Notes
    -----
    Porosity is the non-active-particle volume fraction (the carbon-binder domain counts
    as pore), as in the CT study.  Each voxel is binned by the normalised height of its
    centre in its own column, so a tilted or uneven substrate is followed.
    """
    phases = check_phases(phases)
    n_bins = check_int(n_bins, "n_bins")
    if exclude is not None:
        exclude = check_mask(exclude, phases.shape, "exclude")
    h = _heights(phases, voxel_um, heights)
    total, hits = _binned(phases, h, n_bins, lambda k: phases[k] == Phase.PARTICLE, exclude)
    if total.sum() == 0:
        raise ValueError("the coating layer is empty after exclusion")
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.where(total > 0, 1.0 - hits / np.maximum(total, 1), np.nan)
    return PorosityProfile(porosity=float(1.0 - hits.sum() / total.sum()), z_frac=_centres(n_bins),
                           profile=prof, voxels=total)


# ---------------------------------------------------------------- crack intensity
def crack_intensity_3d(cracks: NDArray, phases: NDArray, *, voxel_um: float = 1.0,
                       heights: HeightMap | None = None) -> float:
    """3D crack intensity factor: crack volume / coating-layer volume (see `cif_profile`).

    Parameters
    ----------
    cracks : ndarray, shape (Z, Y, X), bool
        Crack voxels (e.g. `segment_cracks_3d(...).mask`).
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes (define the coating layer, see `coating_layer`).
    voxel_um, heights : optional
        As in `cif_profile`.

    Returns
    -------
    float
        3D CIF, 0-1.
    """
    return cif_profile(cracks, phases, n_bins=1, voxel_um=voxel_um, heights=heights).cif_3d


@dataclass(frozen=True, eq=False)
class CifProfile:
    """2D crack intensity factor over normalised height.

    Attributes
    ----------
    z_frac : ndarray, shape (n_bins,)
        Bin centres (0 substrate top, 1 coating top).
    cif : ndarray, shape (n_bins,)
        Crack area fraction of the horizontal slices in each bin, 0-1.
    cif_3d : float
        The volume-weighted mean (3D CIF).
    """

    z_frac: NDArray[np.float64]
    cif: NDArray[np.float64]
    cif_3d: float


def cif_profile(cracks: NDArray, phases: NDArray, *, n_bins: int = 10, voxel_um: float = 1.0,
                heights: HeightMap | None = None) -> CifProfile:
    """2D CIF (crack area fraction per slice) as a profile over normalised height.

    Parameters
    ----------
    cracks : ndarray, shape (Z, Y, X), bool
        Crack voxels.
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes (define the coating layer).
    n_bins : int, optional
        Number of height bins; one bin per voxel layer of the coating reproduces the
        slice-by-slice 2D CIF of the CT study.
    voxel_um : float, optional
        Voxel size, um (only to compute ``heights`` when None).
    heights : HeightMap, optional
        A precomputed `height_map` of ``phases``.

    Returns
    -------
    CifProfile

    Notes
    -----
    A high value at 0 relative to the profile above it is the delamination signature;
    the value at 1 is the surface crack area fraction.
    """
    phases = check_phases(phases)
    cracks = check_mask(cracks, phases.shape, "cracks")
    n_bins = check_int(n_bins, "n_bins")
    h = _heights(phases, voxel_um, heights)
    total, hits = _binned(phases, h, n_bins, lambda k: cracks[k], None)
    with np.errstate(invalid="ignore", divide="ignore"):
        cif = np.where(total > 0, hits / np.maximum(total, 1), np.nan)
    return CifProfile(z_frac=_centres(n_bins), cif=cif, cif_3d=float(hits.sum() / max(total.sum(), 1)))


# ---------------------------------------------------------------- delamination
@dataclass(frozen=True, eq=False)
class Delamination:
    """Gap between the substrate and the coating.

    Attributes
    ----------
    gap_um : ndarray, shape (Y, X), float32
        Height of the void directly on the substrate under the coating, um (0 where
        bonded; NaN in columns without coating, i.e. through-cracks).
    fraction : float
        Share of the substrate area debonded under coating (gap >= ``min_gap_um``), 0-1.
    mean_gap_um : float
        Mean gap over the debonded columns, um (0 when none).
    exposed_fraction : float
        Share of the substrate area with void directly on it: debonded columns plus
        through-cracks (the base 2D CIF including the gap), 0-1.
    """

    gap_um: NDArray[np.float32]
    fraction: float
    mean_gap_um: float
    exposed_fraction: float


def _gap_vox(phases: NDArray, h: HeightMap) -> NDArray[np.int32]:
    """Contiguous void voxels from the substrate top up in columns with coating above."""
    lo, top = h.substrate_top_vox, h.top_vox
    has = top > lo
    gap = np.zeros(lo.shape, dtype=np.int32)
    active = has.copy()
    for k in range(int(lo.min()), int(top.max())):
        run = active & (k >= lo)
        if not run.any():
            continue
        void = _is_void(phases[k])
        gap[run & void] += 1
        active &= ~(run & ~void)
        if not active.any():
            break
    return gap


def detect_delamination(phases: NDArray, voxel_um: float, *, min_gap_um: float | None = None,
                        heights: HeightMap | None = None) -> Delamination:
    """Delamination at the substrate: debonded area fraction and gap height.

    Parameters
    ----------
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes.
    voxel_um : float
        Voxel size, um.
    min_gap_um : float, optional
        Smallest gap counted as debonded, um; None: one voxel.
    heights : HeightMap, optional
        A precomputed `height_map` of ``phases``.

    Returns
    -------
    Delamination

    Notes
    -----
    A column is debonded when void (AIR or SOLVENT) lies directly on the substrate with
    coating above it; the gap is the run of void voxels (+-1 voxel).
    """
    phases = check_phases(phases)
    v = check_voxel(voxel_um)
    min_gap = v if min_gap_um is None else check_voxel(min_gap_um, "min_gap_um")
    h = _heights(phases, v, heights)
    has = h.top_vox > h.substrate_top_vox
    gap = _gap_vox(phases, h)
    gap_um = (gap * v).astype(np.float32)
    gap_um[~has] = np.nan
    debonded = has & (gap * v >= min_gap - 1e-9 * v)
    exposed = (has & (gap > 0)) | ~has
    return Delamination(gap_um=gap_um, fraction=float(debonded.mean()),
                        mean_gap_um=float(gap_um[debonded].mean(dtype=np.float64)) if debonded.any() else 0.0,
                        exposed_fraction=float(exposed.mean()))
