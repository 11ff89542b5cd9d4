"""The physics state of one coating sample at one instant, as the renderers need it.

`FilmSnapshot` is the contract between the drying physics (`_physics.py`) and the
renderers (`_surface.py`, `_volume.py`): the physics produces it, the renderers turn
it into images and volumes with ground truth.  Everything is in physical units (um),
never pixels; the renderers convert with the pixel / voxel size they are given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

__all__ = ["DryingPhase", "FilmSnapshot"]


class DryingPhase(IntEnum):
    """Drying phase of a film.

    CONSOLIDATION: solvent above and between the particles, the solid layer shrinks.
    PORE_EMPTYING: the solvent front has entered the pore network (air intrusion).
    DRY: no free solvent left in the pores.
    """

    CONSOLIDATION = 0
    PORE_EMPTYING = 1
    DRY = 2


@dataclass(frozen=True)
class FilmSnapshot:
    """State of one drying film (lab sample or line parcel) at one time.

    Attributes
    ----------
    t_min : float
        Time since coating, minutes.
    solid_thickness_um : float
        Thickness of the particle (solid) layer, substrate to top of the particles, um.
    solvent_level_um : float
        Excess (supernatant) solvent layer above the particles, um. 0 once the
        solvent front has entered the pores.
    packing_fraction : float
        Solids volume fraction of the particle layer (all solids, CBD included), 0-1.
    porosity : float
        CT porosity: 1 - active-particle volume fraction of the particle layer (the
        carbon-binder domain counts as pore, as in the CT study), 0-1.
    phase : DryingPhase
        Drying phase.
    capillary_stress_kpa, critical_stress_kpa : float
        Capillary stress in the film and the stress at which it cracks, kPa.
    crack_spacing_um : float
        Mean spacing of the mud-crack network (cell size), um. Set from the start
        (the pattern the film *will* form), so renderers can place the future cracks.
    precursor_opening_um : float
        Relative in-plane displacement of the two sides of each future crack (weight 1,
        mid-length) before any gap is visible, um (both sides together; each side moves half
        of it); closed at the crack tips (``sin(pi s)`` profile along the crack). It grows as
        the film approaches its critical point and stays at its onset value beside the
        visible gap afterwards (see `sim_line._physics`). It is a strain, not a gap: the
        renderers spread it over a band of width ``precursor_band_um`` across the crack line.
    crack_width_um : float
        Mean visible gap width of the cracks at the top surface, um (0 before onset).
    cif_3d : float
        Crack volume / coating volume, 0-1.
    cif_2d_top, cif_2d_base : float
        Crack area fraction of the top-most and the bottom-most horizontal slice of the
        particle layer, 0-1 (their profile over height follows `cif_2d_profile`).
    cif_2d_exponent : float
        Shape of the 2D CIF profile over normalised height z/h (0 base, 1 top):
        ``cif_2d(z) = base + (top - base) * (z/h) ** exponent``.
    delamination_fraction : float
        Fraction of the substrate interface that has debonded, 0-1.
    delamination_gap_um : float
        Height of the delamination gap where debonded, um.
    bubble_radius_um : float
        Radius of a trapped air bubble in the film (0: none), um.
    bubble_height_frac : float
        Height of the bubble centre above the substrate, fraction of the solid layer.
    particle_diameter_min_um, particle_diameter_max_um : float
        Polydisperse active particle sizes, um.
    precursor_band_um : float
        Localisation width w of the precursor's strain band, um (``film.precursor_band_um``):
        the precursor part of the displacement ramps up as ``tanh(d / w)`` with the distance
        d from the crack line (`sim_line._pattern.precursor_ramp`), so nothing separates at
        the line (no void) and material a few w away moves apart by the full
        ``precursor_opening_um``.
    active_volume_share : float
        Share of the solids volume that is active material (the rest is CBD), 0-1.
    cracked : bool
        True once the film has cracked.
    seed : int
        Seed of the sample; the crack pattern and textures are deterministic per seed.
    """

    t_min: float
    solid_thickness_um: float
    solvent_level_um: float
    packing_fraction: float
    porosity: float
    phase: DryingPhase
    capillary_stress_kpa: float
    critical_stress_kpa: float
    crack_spacing_um: float
    precursor_opening_um: float
    crack_width_um: float
    cif_3d: float
    cif_2d_top: float
    cif_2d_base: float
    cif_2d_exponent: float = 5.0
    delamination_fraction: float = 0.0
    delamination_gap_um: float = 0.0
    bubble_radius_um: float = 0.0
    bubble_height_frac: float = 0.5
    particle_diameter_min_um: float = 10.0
    particle_diameter_max_um: float = 20.0
    precursor_band_um: float = 10.0
    active_volume_share: float = 0.673
    cracked: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict, compare=False)

    def cif_2d_profile(self, z_frac):
        """2D CIF at normalised height(s) ``z_frac`` (0 substrate, 1 top), 0-1."""
        import numpy as np

        z = np.clip(np.asarray(z_frac, dtype=float), 0.0, 1.0)
        return self.cif_2d_base + (self.cif_2d_top - self.cif_2d_base) * z**self.cif_2d_exponent
