"""Ground-truth DVC numbers of a simulated lab sample: the displacement next to its first crack.

The published DVC (Dawson et al. 2026, science.md "DVC result") compared CT scans of a
300 um sample at 37, 39 and 42 min with a reference scan at 34 min and reported, after
discounting a uniform artefact, the displacement of the material next to the future first
crack: 1-2 um at 37 min (before the crack was visible), 7 (smallest crack) to 10 um
(largest) at 39 min, hot spots of 13 um at 42 min, largest at the middle of a crack's
length, z motion <= 5 um and always downward.

`crack_displacement_truth` measures the same quantities on the *exact* displacement
fields of `render_volume` (no correlation error), so the simulator's precursor law can be
checked against the paper independently of any DVC engine.

"Next to the crack" means within one DVC subvolume width (``SUBVOLUME_UM`` = 20 um, the
upper end of the 10-20 um subvolumes of a CT DVC at 1.3-5 um voxels) of the crack line:
the largest exact displacement there is the most a subvolume beside the crack (centred
within one width of it, not straddling it) can report. The precursor part of the field is
continuous across the line (a strain band, ``tanh(d / precursor_band_um)``): it is 0 at the
line and peaks ~2 ``precursor_band_um`` (~20 um) away, so the value right at the line (one
voxel) would miss most of it. The subvolume-averaged field (box of 20 um, centres 10-20 um
from the line) reads 3-5 % lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._lab import LabRun
from ._pattern import CrackPattern, crack_pattern
from ._volume import render_volume

__all__ = ["SUBVOLUME_UM", "CrackDisplacement", "crack_displacement_truth", "first_crack"]

#: Extent of the pattern in which the first crack is chosen (the `ct_scan_series` convention), um.
_PATTERN_EXTENT_UM = (600.0, 600.0)
_FIRST_CRACK_NEAR_UM = 300.0
#: DVC subvolume width: material within this distance of a crack is "next to" it, um.
SUBVOLUME_UM = 20.0


@dataclass(frozen=True)
class CrackDisplacement:
    """Displacement next to the first crack in one scan relative to the reference scan.

    Attributes
    ----------
    t_min, reference_min : float
        Time of the scan and of the reference scan (simulated clock), min.
    mid_um : float
        Largest in-plane displacement magnitude of the material next to the crack (within
        ``next_to_um`` of it, default one DVC subvolume width, `SUBVOLUME_UM`) over the
        middle fifth of its length (0.4-0.6), uniform part (median over the top slice)
        removed, um.
    tips_um : float
        The same over the 10 % of the length at either tip (0-0.1 and 0.9-1), um.
    z_down_um : float
        Largest downward (towards the substrate) z displacement anywhere in the layer, um (>= 0).
    z_up_um : float
        Largest upward z displacement anywhere in the layer, um (0: all motion is downward).
    precursor_opening_um, crack_width_um : float
        The snapshot's precursor opening and visible gap width at ``t_min``, um.
    segment_weight : float
        Opening factor of the first crack (`CrackPattern.weights`, 0.7-1.3).
    """

    t_min: float
    reference_min: float
    mid_um: float
    tips_um: float
    z_down_um: float
    z_up_um: float
    precursor_opening_um: float
    crack_width_um: float
    segment_weight: float


def first_crack(spacing_um: float, seed: int) -> tuple[CrackPattern, int]:
    """The crack network of a sample and the index of its first crack.

    The first crack is the segment whose mid point is closest to (300, 300) um in a
    600 x 600 um pattern: the crack `ct_scan_series` centres its field of view on.

    Parameters
    ----------
    spacing_um : float
        Crack spacing of the sample, um.
    seed : int
        Sample seed.

    Returns
    -------
    pattern : CrackPattern
    index : int
        Index of the first crack in ``pattern.segments_um``.
    """
    pattern = crack_pattern(spacing_um=spacing_um, extent_um=_PATTERN_EXTENT_UM, seed=seed)
    index = int(np.argmin(np.linalg.norm(pattern.midpoints_um - _FIRST_CRACK_NEAR_UM, axis=1)))
    return pattern, index


def crack_displacement_truth(run: LabRun, times_min, reference_min: float, *, voxel_um: float = 3.0,
                             next_to_um: float | None = None,
                             substrate_um: float = 10.0) -> tuple[CrackDisplacement, ...]:
    """Exact DVC numbers next to the first crack of a lab run, relative to a reference scan.

    Parameters
    ----------
    run : LabRun
        A simulated lab sample; its snapshots closest to the requested times are rendered
        (simulate with ``output_interval_s=5`` for scans on the exact times).
    times_min : sequence of float
        Times of the deformed scans (simulated clock), min.
    reference_min : float
        Time of the reference scan, min.
    voxel_um : float
        Voxel size of the rendered volumes, um.
    next_to_um : float, optional
        Distance from the crack within which material counts as next to it, um; default
        one DVC subvolume width, `SUBVOLUME_UM` (20 um).
    substrate_um : float
        Substrate thickness in the volumes, um.

    Returns
    -------
    tuple of CrackDisplacement
        One per entry of ``times_min``.

    Notes
    -----
    Every scan is rendered by `render_volume` on the same grid (field of view centred on
    the first crack, large enough for the whole segment plus 20 voxels or ``next_to_um``
    plus 5 voxels, whichever is larger), so the difference of two displacement fields at a
    voxel is the motion of the same material point between the two scans.  In-plane values are read in the topmost voxel slice inside the layer of
    every scan; z values over the layer of the deformed scan.
    """
    if not (math.isfinite(voxel_um) and voxel_um > 0):
        raise ValueError(f"voxel_um: expected a positive voxel size in um, found {voxel_um!r}")
    near = float(SUBVOLUME_UM if next_to_um is None else next_to_um)
    if not (math.isfinite(near) and near > 0):
        raise ValueError(f"next_to_um: expected a positive distance in um, found {next_to_um!r}")
    times = [float(t) for t in np.atleast_1d(np.asarray(times_min, dtype=float))]
    ref = run.snapshot_at(float(reference_min))
    pattern, k = first_crack(ref.crack_spacing_um, ref.seed)
    seg = pattern.segments_um[k]
    margin = max(20.0 * voxel_um, near + 5.0 * voxel_um)
    lo = seg.min(axis=0) - margin
    n_plane = np.ceil((seg.max(axis=0) + margin - lo) / voxel_um).astype(int)
    snaps = [run.snapshot_at(t) for t in times]
    tallest = max(s.solid_thickness_um + s.solvent_level_um for s in [ref, *snaps])
    nz = int(np.ceil((substrate_um + tallest) / voxel_um)) + 2
    kw = dict(shape=(nz, int(n_plane[0]), int(n_plane[1])), voxel_um=voxel_um, origin_um=(float(lo[0]), float(lo[1])),
              substrate_um=substrate_um, noise_std=0.0, cif_reference="pattern", dtype="uint8")
    r_ref = render_volume(ref, **kw)

    # which columns are next to the first crack, and where along it
    ny, nx = kw["shape"][1:]
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    grid = np.column_stack([lo[0] + jj.ravel() * voxel_um, lo[1] + ii.ravel() * voxel_um])
    q = pattern.nearest(grid)
    beside = (q.index == k) & (q.distance_um <= near)
    mid = (beside & (q.position >= 0.4) & (q.position <= 0.6)).reshape(ny, nx)
    tips = (beside & ((q.position <= 0.1) | (q.position >= 0.9))).reshape(ny, nx)

    rows = []
    for t, snap in zip(times, snaps):
        r = render_volume(snap, **kw)
        top = min(r.coating_top_vox, r_ref.coating_top_vox) - 1
        d = (r.displacement_vox[top, :, :, 1:] - r_ref.displacement_vox[top, :, :, 1:]).astype(float) * voxel_um
        d -= np.median(d.reshape(-1, 2), axis=0)  # the uniform (background) part
        mag = np.linalg.norm(d, axis=-1)
        layer = slice(r.substrate_top_vox, r.coating_top_vox)
        dz = (r.displacement_vox[layer, :, :, 0] - r_ref.displacement_vox[layer, :, :, 0]).astype(float) * voxel_um
        rows.append(CrackDisplacement(
            t_min=float(snap.t_min), reference_min=float(ref.t_min),
            mid_um=float(mag[mid].max()) if mid.any() else math.nan,
            tips_um=float(mag[tips].max()) if tips.any() else math.nan,
            z_down_um=float(max(-dz.min(), 0.0)), z_up_um=float(max(dz.max(), 0.0)),
            precursor_opening_um=float(snap.precursor_opening_um), crack_width_um=float(snap.crack_width_um),
            segment_weight=float(pattern.weights[k]),
        ))
    return tuple(rows)
