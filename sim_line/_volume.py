"""Synthetic X-ray CT volumes of a drying coating, with labels and DVC ground truth.

Volumes are (z, y, x) with z the coating normal and the substrate at low z.  Voxel
``(k, j, i)`` is centred on the physical point ``((k + 0.5) v, origin_y + j v,
origin_x + i v)`` (um) of the reference configuration, v the voxel size: z = 0 is the
bottom face of the volume, the in-plane convention is the surface renderer's.

The particles are a Boolean model of polydisperse spheres seeded per lattice tile of
the (y, x) plane, so volumes of the same sample share them wherever they overlap; each
sphere is drawn analytically at its displaced centre.  Cracks follow `crack_pattern`
with the same seed, spacing and origin logic as `render_surface`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ._pattern import (STREAM_PARTICLES_3D, check_cif_reference, check_pair, check_snapshot, crack_pattern,
                       resolve_seed, tile_generators)
from ._snapshot import DryingPhase, FilmSnapshot
from ._surface import noise_generator

__all__ = ["VolumeLabel", "VolumeRender", "render_volume"]

_TILE_UM = 128.0
_FILL = 0.85  # with voxel_um=None the stack fills this share of shape[0]
_MAX_Z_DISP_UM = 5.0
_Z_PER_OPENING = 0.25  # downward z displacement per um of in-plane displacement
_LEVEL = {"air": 0.05, "solvent": 0.17, "pore": 0.28, "particle": 0.72, "substrate": 0.95}
_DTYPES = ("uint8", "uint16", "float32")


class VolumeLabel(IntEnum):
    """Ground-truth class of a voxel (CBD counts as pore, as in the CT study)."""

    AIR = 0
    SOLVENT = 1
    PORE = 2
    PARTICLE = 3
    CRACK = 4
    BUBBLE = 5
    SUBSTRATE = 6
    DELAMINATION = 7


@dataclass(frozen=True, eq=False)
class VolumeRender:
    """One rendered CT volume with its ground truth.

    Attributes
    ----------
    volume : ndarray, shape (Z, Y, X), uint8, uint16 or float32
        Grey values (float32: fraction of full scale).
    labels : ndarray, shape (Z, Y, X), uint8
        `VolumeLabel` of each voxel (by its centre).
    displacement_vox : ndarray, shape (Z, Y, X, 3), float32
        Displacement (z, y, x), voxels, on the reference grid: material at reference
        voxel X appears at X + u(X).  Zero in the substrate; above the particle layer
        (solvent, air) it continues the value at the top surface.
    voxel_um : float
        Voxel size, um.
    substrate_top_vox : int
        Index of the first voxel above the substrate (centre above ``substrate_um``).
    coating_top_vox : int
        Index of the first voxel above the particle layer (may equal Z when clipped).
    crack_sites_vox : ndarray, shape (K, 3), float
        (z, y, x) voxel coordinates of the top-surface mid points of the crack segments
        whose mid point lies in the field of view.
    crack_scale_top_um : float
        Width scale A at the top: the channel of segment k is ``A(z) w_k taper(s)`` wide.
    """

    volume: NDArray
    labels: NDArray[np.uint8]
    displacement_vox: NDArray[np.float32]
    voxel_um: float
    substrate_top_vox: int
    coating_top_vox: int
    crack_sites_vox: NDArray[np.float64]
    crack_scale_top_um: float


@njit(cache=True)
def _splat_spheres(occ, centres, radii, k_lo, k_hi):
    """Anti-aliased sphere occupancy, max-composited, restricted to z slices [k_lo, k_hi)."""
    nz, ny, nx = occ.shape
    for p in range(centres.shape[0]):
        cz = centres[p, 0]
        cy = centres[p, 1]
        cx = centres[p, 2]
        rad = radii[p]
        k0 = max(int(np.floor(cz - rad - 1.0)), k_lo)
        k1 = min(int(np.ceil(cz + rad + 1.0)), k_hi - 1)
        j0 = max(int(np.floor(cy - rad - 1.0)), 0)
        j1 = min(int(np.ceil(cy + rad + 1.0)), ny - 1)
        i0 = max(int(np.floor(cx - rad - 1.0)), 0)
        i1 = min(int(np.ceil(cx + rad + 1.0)), nx - 1)
        for k in range(k0, k1 + 1):
            dz2 = (k - cz) ** 2
            for j in range(j0, j1 + 1):
                dzy2 = dz2 + (j - cy) ** 2
                if dzy2 > (rad + 0.5) ** 2:
                    continue
                for i in range(i0, i1 + 1):
                    a = rad - np.sqrt(dzy2 + (i - cx) ** 2) + 0.5
                    if a > 0.0:
                        a = min(a, 1.0)
                        if a > occ[k, j, i]:
                            occ[k, j, i] = a


def _interval_overlap(lo: NDArray, hi: NDArray, a: float, b: float) -> NDArray:
    """Length of [lo, hi] inside [a, b], elementwise."""
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)


def _z_down(inplane_um: NDArray) -> NDArray:
    """Downward z displacement (um, <= 0) for an in-plane displacement magnitude (um)."""
    return -_MAX_Z_DISP_UM * np.tanh(_Z_PER_OPENING * inplane_um / _MAX_Z_DISP_UM)


def render_volume(snapshot: FilmSnapshot, *, shape: tuple[int, int, int] = (128, 128, 128),
                  voxel_um: float | None = None, origin_um: tuple[float, float] = (0.0, 0.0),
                  substrate_um: float = 10.0, noise_std: float = 0.02, seed: int | None = None,
                  dtype: str = "uint16", band_um: float | None = None,
                  cif_reference: str = "view") -> VolumeRender:
    """Render a CT volume of the film: substrate, particle layer, solvent, air, cracks.

    Parameters
    ----------
    snapshot : FilmSnapshot
        Physics state (thicknesses, porosity, phase, crack spacing/opening/width, 2D CIF
        profile, delamination, bubble, particle sizes, seed).
    shape : tuple of int, optional
        Volume shape (Z, Y, X), voxels.
    voxel_um : float, optional
        Voxel size, um.  None fits substrate + particle layer + solvent into 85% of Z
        (air above).  A given size that does not fit clips the top of the stack.
    origin_um : tuple of float, optional
        In-plane position (y, x), um, of voxel column (0, 0).
    substrate_um : float, optional
        Thickness of the (very bright) substrate at the bottom, um.
    noise_std : float, optional
        Gaussian noise, fraction of full scale.
    seed : int, optional
        Seed of particles and cracks; None uses ``snapshot.seed``.
    dtype : {"uint16", "uint8", "float32"}, optional
        Grey value type (float32 in [0, 1] before noise).
    band_um : float, optional
        Decay length of the opening displacement, um; None gives crack_spacing_um / 4.
    cif_reference : {"view", "pattern"}, optional
        "view": crack widths set so that each slice of this field of view has the crack
        area fraction of the profile; "pattern": widths from the network's mean crack
        density, identical in every view (overlapping volumes agree exactly).

    Returns
    -------
    VolumeRender

    Raises
    ------
    ValueError
        On a bad argument (the message names it).

    Notes
    -----
    * Particles: spheres with diameters uniform in [min, max], centres uniform over the
      layer (grown by the largest radius), number set so that the union fills
      ``1 - porosity`` of the layer (Boolean model, ``1 - exp(-n E[V])``); clipped to
      the layer; a fixed count per tile, drawn as a prefix of one stream, so a change of
      porosity or thickness keeps the earlier particles (heights scale with the layer).
    * Cracks (only when ``crack_width_um > 0``): vertical channels through the particle
      layer, ``A(z) w_k taper(s)`` wide, with A(z) set so that the crack area fraction of
      each slice of the field of view is ``snapshot.cif_2d_profile(z / h)``; the crack
      voxel fraction of the layer is then the profile's mean (= cif_3d for a consistent
      snapshot).  They are air, or solvent during CONSOLIDATION.
    * Delamination: a gap of ``delamination_gap_um`` carved from the base of the
      particle layer (the coating is not lifted) in the columns closest to the cracks,
      ``delamination_fraction`` of the field of view.
    * Bubble: an air sphere of ``bubble_radius_um`` at the centre of the field of view,
      ``bubble_height_frac`` of the layer above the substrate.
    * Displacement: the in-plane crack opening of `render_surface` (the gap part jumps at
      the crack, the precursor part is continuous: ``tanh(d / precursor_band_um)`` ramp
      across the line, see `CrackPattern.opening_displacement`) scaled over height by
      ``cif_2d_profile(z/h) / cif_2d_top`` (``(z/h)**exponent`` before cracking), plus a
      downward z displacement ``-5 tanh(0.25 |u_inplane| / 5)`` um (<= 5 um).
    """
    check_snapshot(snapshot)
    try:
        nz, ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape must be three positive ints, got {shape!r}") from exc
    if min(nz, ny, nx) <= 0:
        raise ValueError(f"shape must be three positive ints, got {shape!r}")
    origin = np.asarray(check_pair("origin_um", origin_um, positive=False))
    if not np.isfinite(substrate_um) or substrate_um < 0:
        raise ValueError(f"substrate_um must be >= 0 and finite, got {substrate_um!r}")
    if not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be >= 0 and finite, got {noise_std!r}")
    try:
        dtype_name = np.dtype(dtype).name
    except TypeError as exc:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}") from exc
    if dtype_name not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    h_um = float(snapshot.solid_thickness_um)
    if h_um <= 0:
        raise ValueError(f"snapshot.solid_thickness_um must be > 0, got {h_um}")
    if snapshot.porosity >= 1.0:
        raise ValueError(f"snapshot.porosity must be < 1, got {snapshot.porosity}")
    check_cif_reference(cif_reference)
    seed = resolve_seed(seed, snapshot)
    spacing = float(snapshot.crack_spacing_um)
    band = 0.25 * spacing if band_um is None else float(band_um)
    if not np.isfinite(band) or band <= 0:
        raise ValueError(f"band_um must be positive and finite, got {band_um!r}")
    z_sub = float(substrate_um)
    z_top = z_sub + h_um
    z_solv = z_top + float(snapshot.solvent_level_um)
    if voxel_um is None:
        v = z_solv / (_FILL * nz)
    else:
        v = float(voxel_um)
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"voxel_um must be positive and finite, got {voxel_um!r}")

    consolidating = snapshot.phase == DryingPhase.CONSOLIDATION
    gap_level = _LEVEL["solvent"] if consolidating else _LEVEL["air"]
    gap_label = VolumeLabel.CRACK
    precursor = float(snapshot.precursor_opening_um)
    pre_band = float(snapshot.precursor_band_um)
    gap_opening = float(snapshot.crack_width_um)
    opening = precursor + gap_opening
    dmin = float(snapshot.particle_diameter_min_um)
    dmax = float(snapshot.particle_diameter_max_um)
    rmax = 0.5 * dmax

    # in-plane geometry (reference configuration), um
    lo = origin - 0.5 * v
    hi = origin + (np.array([ny, nx]) - 0.5) * v
    reach = 2.0 * opening + dmax + 4.0 * v
    cover = 5.0 * band + reach
    pattern = crack_pattern(spacing_um=spacing, extent_um=tuple(hi - lo + 2 * cover),
                            seed=seed, origin_um=tuple(lo - cover))
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    grid_um = np.column_stack([origin[0] + jj.ravel() * v, origin[1] + ii.ravel() * v])
    u2 = pattern.opening_displacement(grid_um, opening_um=gap_opening, band_um=band,
                                   precursor_um=precursor, precursor_band_um=pre_band)

    # height profiles over voxel centres
    zc = (np.arange(nz) + 0.5) * v
    zeta = (zc - z_sub) / h_um
    in_layer = (zc >= z_sub) & (zc < z_top)
    top = float(snapshot.cif_2d_top)
    expo = float(snapshot.cif_2d_exponent)

    def height_factor(z_frac):
        z_frac = np.clip(z_frac, 0.0, 1.0)
        if top > 0:
            return np.asarray(snapshot.cif_2d_profile(z_frac)) / top
        return z_frac**expo

    # ---------------------------------------------------------------- particles
    phi = float(1.0 - snapshot.porosity)
    mean_vol = np.pi / 6.0 * (dmax**4 - dmin**4) / (4.0 * (dmax - dmin)) if dmax > dmin else np.pi / 6 * dmin**3
    lam = -np.log1p(-min(phi, 0.98)) / mean_vol
    occ = np.zeros((nz, ny, nx), dtype=np.float32)
    k_lo = int(np.searchsorted(zc, z_sub, side="left"))
    k_hi = int(np.searchsorted(zc, z_top, side="left"))
    if phi > 0 and k_hi > k_lo:
        n_tile = int(round(lam * _TILE_UM**2 * (h_um + dmax)))
        chunks = []
        for corner, rng in tile_generators(seed, STREAM_PARTICLES_3D, lo - reach, hi + reach, _TILE_UM):
            r = rng.random((n_tile, 4))  # y, x, height fraction, diameter
            chunks.append(np.column_stack([corner + r[:, :2] * _TILE_UM, r[:, 2:]]))
        parts = np.concatenate(chunks)
        keep = np.all((parts[:, :2] > lo - reach) & (parts[:, :2] < hi + reach), axis=1)
        parts = parts[keep]
        zp = z_sub - rmax + parts[:, 2] * (h_um + dmax)
        dp = dmin + (dmax - dmin) * parts[:, 3]
        up = pattern.opening_displacement(parts[:, :2], opening_um=gap_opening, band_um=band,
                                          precursor_um=precursor, precursor_band_um=pre_band)
        fp = height_factor((zp - z_sub) / h_um)[:, None]
        up = up * fp
        uzp = _z_down(np.linalg.norm(up, axis=1))
        centres = np.column_stack([(zp + uzp) / v - 0.5, (parts[:, :2] + up - origin) / v])
        _splat_spheres(occ, np.ascontiguousarray(centres), dp / (2.0 * v), k_lo, k_hi)

    # ---------------------------------------------------------------- layers, labels
    labels = np.zeros((nz, ny, nx), dtype=np.uint8)
    labels[zc < z_sub] = VolumeLabel.SUBSTRATE
    labels[in_layer] = VolumeLabel.PORE
    labels[(zc >= z_top) & (zc < z_solv)] = VolumeLabel.SOLVENT
    labels[occ >= 0.5] = VolumeLabel.PARTICLE  # occ is zero outside the layer
    lo_z, hi_z = zc - 0.5 * v, zc + 0.5 * v
    f_sub = _interval_overlap(lo_z, hi_z, -np.inf, z_sub) / v
    f_lay = _interval_overlap(lo_z, hi_z, z_sub, z_top) / v
    f_sol = _interval_overlap(lo_z, hi_z, z_top, z_solv) / v
    f_air = 1.0 - f_sub - f_lay - f_sol
    bg = (f_sub * _LEVEL["substrate"] + f_lay * _LEVEL["pore"] + f_sol * _LEVEL["solvent"]
          + f_air * _LEVEL["air"]).astype(np.float32)
    vol = occ
    vol *= _LEVEL["particle"] - _LEVEL["pore"]
    vol *= f_lay.astype(np.float32)[:, None, None]
    vol += bg[:, None, None]

    # ---------------------------------------------------------------- cracks
    scale_top = 0.0
    if snapshot.crack_width_um > 0:
        weighted = pattern.taper_length_in(lo, hi, reference=cif_reference)
        if weighted > 0:
            area = float(np.prod(hi - lo))
            scales = np.asarray(snapshot.cif_2d_profile(zeta)) * area / weighted
            scales[~in_layer] = 0.0
            scale_top = float(snapshot.cif_2d_top) * area / weighted
            if scales.max() > 0:
                ratio, _ = pattern.width_ratio(
                    grid_um, max_half_width_um=0.5 * scales.max() * pattern.weights.max() + v)
                ratio = ratio.reshape(ny, nx)
                for k in np.flatnonzero(scales > 0):
                    gap = ratio < scales[k]
                    labels[k][gap] = gap_label
                    vol[k][gap] = gap_level

    if snapshot.delamination_fraction > 0 and snapshot.delamination_gap_um > 0:
        dist = pattern.nearest(grid_um).distance_um.reshape(ny, nx)
        limit = np.quantile(dist, min(float(snapshot.delamination_fraction), 1.0))
        cols = dist <= limit
        band_z = np.flatnonzero(in_layer & (zc < z_sub + float(snapshot.delamination_gap_um)))
        for k in band_z:
            sel = cols & (labels[k] != VolumeLabel.CRACK)
            labels[k][sel] = VolumeLabel.DELAMINATION
            vol[k][sel] = gap_level

    if snapshot.bubble_radius_um > 0:
        rb = float(snapshot.bubble_radius_um) / v
        cb = np.array([(z_sub + float(snapshot.bubble_height_frac) * h_um) / v - 0.5,
                       0.5 * (ny - 1), 0.5 * (nx - 1)])
        sl = tuple(slice(max(int(np.floor(c - rb - 1)), 0), max(int(np.ceil(c + rb + 2)), 0))
                   for c in cb)
        kk, yy, xx = np.ogrid[sl]
        dist = np.sqrt((kk - cb[0]) ** 2 + (yy - cb[1]) ** 2 + (xx - cb[2]) ** 2)
        sub_lab = labels[sl]
        inside = (dist < rb) & (sub_lab != VolumeLabel.SUBSTRATE)
        sub_lab[inside] = VolumeLabel.BUBBLE
        alpha = np.clip(rb - dist + 0.5, 0.0, 1.0).astype(np.float32)
        alpha[sub_lab == VolumeLabel.SUBSTRATE] = 0.0
        sub_vol = vol[sl]
        sub_vol *= 1.0 - alpha
        sub_vol += alpha * _LEVEL["air"]

    # ---------------------------------------------------------------- displacement
    disp = np.zeros((nz, ny, nx, 3), dtype=np.float32)
    if opening > 0:
        u2v = (u2 / v).reshape(ny, nx, 2).astype(np.float32)
        mag = np.linalg.norm(u2, axis=1).reshape(ny, nx)
        fz = np.where(zc < z_sub, 0.0, np.where(in_layer, height_factor(zeta), 1.0))
        for k in np.flatnonzero(fz > 0):
            disp[k, :, :, 1:] = u2v * np.float32(fz[k])
            disp[k, :, :, 0] = _z_down(mag * fz[k]) / v

    # ---------------------------------------------------------------- noise, dtype
    if noise_std > 0:
        rng = noise_generator(seed, snapshot.t_min, *origin, v, 3.0)
        for k in range(nz):  # slice-wise keeps the float64 temporaries small
            vol[k] += rng.normal(0.0, float(noise_std), size=(ny, nx)).astype(np.float32)
    if dtype_name == "float32":
        volume = vol
    else:
        full = float(np.iinfo(dtype_name).max)
        np.clip(vol, 0.0, 1.0, out=vol)
        vol *= full
        volume = np.rint(vol).astype(dtype_name)

    mids = pattern.midpoints_um
    mids_v = (mids - origin) / v
    inside = np.all((mids_v >= -0.5) & (mids_v < np.array([ny, nx]) - 0.5), axis=1)
    sites = np.column_stack([np.full(inside.sum(), z_top / v - 0.5), mids_v[inside]])
    return VolumeRender(volume=volume, labels=labels, displacement_vox=disp, voxel_um=v,
                        substrate_top_vox=int(np.searchsorted(zc, z_sub, side="left")),
                        coating_top_vox=k_hi, crack_sites_vox=sites,
                        crack_scale_top_um=scale_top)
