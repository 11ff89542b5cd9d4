"""Drying and cracking physics of a particulate film: one core for lab samples and line parcels.

All functions are vectorised over *films* (a lab sample is one film, a line is one film
per parcel of web). The state is a frozen dataclass of arrays; `step_films` returns a
new state and never modifies its input.

Model (units in names; the fitted values live in ``configs/slurry/*.yaml``):

* Layers: a particle layer of thickness ``H`` holding ``h_s`` um of solids (as a compact
  thickness) under a clear supernatant of ``s`` um. After settling the supernatant is
  ``s0 = f (h_wet - h_thr)``. While ``s`` exceeds ``s_c`` only the supernatant evaporates;
  then the particle layer consolidates (shrinks) until its packing fraction reaches
  ``phi_c`` (end of consolidation), the supernatant thinning in proportion so that
  ``s_res`` is left at the end. When that is gone the solvent front enters the pores
  (pore emptying) and recedes at ``E / (1 - phi_c)`` until the layer is dry.
* Evaporation (mass transfer): ``m = beta (rho_v,sat(T_f) - rho_v,inf) / (1 + beta z_f / D_eff)``:
  the Antoine vapour pressure at the film temperature, a coefficient ``beta`` from the
  nozzle heat transfer by the Chilton-Colburn analogy (line) or an effective lab value,
  and a falling rate once the front is at depth ``z_f`` (vapour diffuses through the dry
  top layer, ``D_eff = D_air * pore_diffusivity_factor``).
* Heat balance: ``C dT/dt = h_heat (T_air - T_f) - m dH_vap`` (the wet-bulb temperature
  during the constant-rate period), integrated linearised-implicitly (stable at any step).
* Capillary stress: the drive ``sigma_max (1 - exp(-z_f / z_c))`` with
  ``sigma_max = 2 phi gamma(T) / d`` builds up as the front enters the pores. The binder
  network relaxes stress over a broad (power-law) spectrum of times, so the share of the
  drive the film retains grows with the front speed v:
  ``r = rho + (1 - rho) v^n / (v^n + v_half^n)``; once the front slows or the film is dry
  the stress relaxes slowly (time ``tau``) to the residual fraction ``rho``. Hotter or
  windier drying therefore gives a higher peak stress, and slowing the drying around the
  critical point (the multi-stage drying practice) avoids cracks.
* Cracking: the film cracks when ``sigma >= sigma_crit = K / (Z sqrt(H))`` (critical
  cracking thickness ``h_c = (K / (Z sigma))^2``, Z = 1.4 as in the paper); stress above the
  toughness is relieved by the cracks. After onset the 3D CIF grows with the front's progress
  to its plateau ``cif_max (1 - (h_c,min / H)^n)``; crack spacing ``k H_c``; delamination
  after a thickness-dependent delay; a bubble concentrates stress and crack volume.
* Crack precursor (a derived quantity of the current state, `surface_fields`: nothing in the
  drying or cracking reads it). Before any gap shows, the two sides of each future crack
  already move apart (the published DVC: 1-2 um per side at the end of consolidation, 2 min
  before the crack was visible). The opening is ``delta = delta_on L`` with a localisation
  ``L`` in [0, 1] along the future crack paths, driven by a *forecast* of the stress the
  film will carry, computed from its current state only (`precursor_forecast`):

  - forecast stress ratio ``F = sigma_max(T) r(v_f) / sigma_crit(H_c)``: the full capillary
    stress at the current film temperature, retained at the front speed the current
    evaporation rate gives once the front is in the pores (``v_f = E / (1 - phi_c)``, the
    speed of the pore-emptying stage), over the cracking stress of the consolidated layer
    (the thickness the film will have at the critical point; film toughness and bubble
    concentration included). ``F`` is what the stress model above reaches with the drive
    saturated (``z_f >> z_c``) under today's drying conditions.
  - solvent still to evaporate before the forecast stress reaches the cracking stress,
    ``Lambda = s + (H - H_c) + (1 - phi_c) (z* - z_f)`` um of liquid (supernatant, the rest of
    the consolidation, then the pores down to ``z* = -z_c ln(1 - 1/F)``, where the drive
    ``sigma_max (1 - exp(-z/z_c)) r`` equals the cracking stress); infinite when ``F <= 1``.
  - ``L = exp(-Lambda / Lambda_loc)`` where ``F > 1``, 0 where ``F <= 1``, and 1 from the
    onset on: ``delta`` reaches ``delta_on`` (``precursor_opening_at_onset_um``) at the onset
    and stays there beside the visible gap (the process-zone opening of the crack).

  Assumptions and sources: strain localises only in films heading for cracking (``F > 1``:
  the stress will exceed the strength; otherwise it stays diffuse), so sub-critical films
  show none; the opening grows e-fold per ``Lambda_loc`` um of solvent lost (a progressive,
  rate-independent localisation in the drying coordinate: the lead in minutes scales with
  1 / evaporation rate, ~3-4 min in the lab, seconds on a line) and is continuous in ``F``
  (``Lambda -> inf`` as ``F -> 1+``). Before the onset the opening is recoverable: when the
  forecast recedes (e.g. the web enters a cooler zone before its critical point, the
  multi-stage practice) the softened band unloads and closes, as a damaged continuum unloads
  along its secant; only the crack (onset) is permanent. ``delta_on`` and ``Lambda_loc`` are
  fitted to the published DVC of the 300 um sample (``python -m sim_line.calibrate``,
  nmc622_nmp.yaml). ``F`` uses today's evaporation rate (the falling rate once the front is
  deeper lowers the real stress by a few %, so the forecast errs early: lab films within ~2 %
  of their cracking stress show a precursor without cracking). The renderers give the
  precursor a closed-tip profile along each crack (``sin(pi s)``: largest mid-crack, as in
  the DVC) and spread it across the crack line as a strain, not a gap: each side moves by
  ``tanh(d / w)`` of ``delta / 2`` at distance d from the line, ``w = precursor_band_um``
  (the damage band of a particulate film is a few particle diameters wide), so nothing
  separates at the line (no void before the onset, none beside the gap afterwards) and
  material a few w away moves apart by the full ``delta`` (`CrackPattern.opening_displacement`).
  A DVC subvolume next to the crack therefore sees less than ``delta / 2``: ``delta_on`` is
  fitted to what the exact field shows within one subvolume width (20 um) of the crack
  (`sim_line._dvc_truth`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _properties as props
from ._config import FilmModel, SlurryConfig
from ._snapshot import DryingPhase, FilmSnapshot

__all__ = [
    "DryingEnvironment",
    "FilmState",
    "capillary_stress_max_kpa",
    "critical_thickness_um",
    "init_films",
    "precursor_forecast",
    "snapshot",
    "step_films",
]

F = NDArray[np.float64]


@dataclass(frozen=True)
class DryingEnvironment:
    """Conditions each film sees during one step (arrays broadcast over films).

    Attributes
    ----------
    air_temperature_c : array
        Air temperature over the film, C.
    heat_transfer_w_m2k : array
        Heat-transfer coefficient into the film (both sides together), W/m^2 K.
    mass_transfer_m_s : array
        Mass-transfer coefficient of solvent vapour from the free surface, m/s.
    vapour_pressure_pa : array
        Solvent partial pressure in the air far from the film, Pa.
    flux_multiplier : array
        Extra factor on the evaporation flux (lab sample edges), >= 1.
    """

    air_temperature_c: ArrayLike
    heat_transfer_w_m2k: ArrayLike
    mass_transfer_m_s: ArrayLike
    vapour_pressure_pa: ArrayLike = 0.0
    flux_multiplier: ArrayLike = 1.0


@dataclass(frozen=True)
class FilmState:
    """State of N films (arrays of shape (N,)). Times in s since coating; NaN = not yet."""

    t_s: F
    solids_um: F
    particle_layer_um: F
    supernatant_um: F
    front_depth_um: F
    consolidated_layer_um: F
    shrink_ratio: F
    temperature_c: F
    stress_pa: F
    drive_pa: F
    peak_stress_pa: F
    toughness_pa_m05: F
    spacing_um: F
    cif_3d: F
    cif_target: F
    front_at_onset_um: F
    bubble_radius_um: F
    bubble_radius0_um: F
    evaporation_g_m2_s: F
    consolidation_end_s: F
    front_entry_s: F
    onset_s: F
    dry_s: F

    @property
    def n(self) -> int:
        """Number of films."""
        return int(self.t_s.shape[0])

    @property
    def liquid_um(self) -> F:
        """Solvent left in the film as a liquid thickness, um."""
        phi_c = self.solids_um / self.consolidated_layer_um
        in_layer = np.where(
            self.front_depth_um > 0,
            (self.consolidated_layer_um - self.front_depth_um) * (1.0 - phi_c),
            self.particle_layer_um - self.solids_um,
        )
        return self.supernatant_um + np.maximum(in_layer, 0.0)

    @property
    def phase(self) -> NDArray[np.int64]:
        """Drying phase per film (`DryingPhase` values)."""
        out = np.full(self.n, int(DryingPhase.CONSOLIDATION))
        out[~np.isnan(self.front_entry_s)] = int(DryingPhase.PORE_EMPTYING)
        out[~np.isnan(self.dry_s)] = int(DryingPhase.DRY)
        return out

    @property
    def cracked(self) -> NDArray[np.bool_]:
        """True where the film has cracked."""
        return ~np.isnan(self.onset_s)


def capillary_stress_max_kpa(slurry: SlurryConfig, temperature_c: ArrayLike) -> F:
    """Full capillary stress of the consolidated film, ``2 phi gamma / d``, kPa."""
    gamma = props.surface_tension_n_m(slurry.solvent, temperature_c)
    phi = slurry.film.consolidated_packing_fraction
    return 2.0 * phi * gamma / (slurry.particle_diameter_mean_um * 1e-6) * 1e-3


def critical_thickness_um(slurry: SlurryConfig, stress_kpa: ArrayLike | None = None, *, temperature_c: float = 25.0) -> F:
    """Critical cracking thickness ``h_c = (K / (Z sigma))^2``, um.

    Parameters
    ----------
    slurry : SlurryConfig
        Formulation (toughness K, factor Z, particle size, solvent).
    stress_kpa : array, optional
        Stress in the film; default: the full capillary stress at ``temperature_c``
        (the smallest critical thickness of a fully stressed film).
    temperature_c : float
        Film temperature for the default stress, C.
    """
    if stress_kpa is None:
        stress_kpa = capillary_stress_max_kpa(slurry, temperature_c)
    sigma = np.asarray(stress_kpa, dtype=float) * 1e3
    film = slurry.film
    with np.errstate(divide="ignore"):
        return (film.fracture_toughness_pa_m05 / (film.channel_crack_factor * sigma)) ** 2 * 1e6


def initial_supernatant_um(slurry: SlurryConfig, wet_thickness_um: ArrayLike) -> F:
    """Clear solvent above the settled particles right after coating, um."""
    film = slurry.film
    h = np.asarray(wet_thickness_um, dtype=float)
    return film.settling_supernatant_fraction * np.maximum(h - film.settling_threshold_um, 0.0)


def init_films(
    slurry: SlurryConfig,
    wet_thickness_um: ArrayLike,
    *,
    temperature_c: ArrayLike,
    rng: np.random.Generator,
    bubble_radius_um: ArrayLike = 0.0,
) -> FilmState:
    """Films right after coating.

    Parameters
    ----------
    slurry : SlurryConfig
        Formulation and film model.
    wet_thickness_um : array, shape (N,)
        Wet film thickness, um.
    temperature_c : array
        Initial film temperature, C.
    rng : numpy.random.Generator
        Source of the seeded film-to-film scatter (toughness +-1 %, spacing +-5 %).
    bubble_radius_um : array
        Radius of a trapped bubble per film (0: none), um.
    """
    h_wet = np.atleast_1d(np.asarray(wet_thickness_um, dtype=float))
    if np.any(~np.isfinite(h_wet)) or np.any(h_wet <= 0):
        raise ValueError(f"wet_thickness_um: expected positive finite values, found {h_wet}")
    n = h_wet.shape[0]
    film = slurry.film
    solids = slurry.solids_volume_fraction * h_wet
    s0 = np.minimum(initial_supernatant_um(slurry, h_wet), h_wet - solids / 0.6)
    s0 = np.maximum(s0, 0.0)
    h_c = solids / film.consolidated_packing_fraction
    nan = np.full(n, np.nan)
    bubble = np.broadcast_to(np.asarray(bubble_radius_um, dtype=float), (n,)).copy()
    return FilmState(
        t_s=np.zeros(n),
        solids_um=solids,
        particle_layer_um=h_wet - s0,
        supernatant_um=s0,
        front_depth_um=np.zeros(n),
        consolidated_layer_um=h_c,
        shrink_ratio=nan.copy(),
        temperature_c=np.broadcast_to(np.asarray(temperature_c, dtype=float), (n,)).copy(),
        stress_pa=np.zeros(n),
        drive_pa=np.zeros(n),
        peak_stress_pa=np.zeros(n),
        toughness_pa_m05=film.fracture_toughness_pa_m05 * np.exp(0.01 * rng.standard_normal(n)),
        spacing_um=film.crack_spacing_per_thickness * h_c * np.exp(0.05 * rng.standard_normal(n)),
        cif_3d=np.zeros(n),
        cif_target=np.zeros(n),
        front_at_onset_um=nan.copy(),
        bubble_radius_um=bubble,
        bubble_radius0_um=bubble.copy(),
        evaporation_g_m2_s=np.zeros(n),
        consolidation_end_s=nan.copy(),
        front_entry_s=nan.copy(),
        onset_s=nan.copy(),
        dry_s=nan,
    )


def _cracking_stress_pa(slurry: SlurryConfig, toughness_pa_m05: F, thickness_um: F, bubble_radius0_um: F) -> F:
    """Stress at which each film cracks, ``K / (Z sqrt(H))``, lowered by a bubble's stress concentration, Pa.

    A film that trapped a bubble keeps the concentration after the bubble vents (it left a crack nucleus).
    """
    film = slurry.film
    concentration = np.where(bubble_radius0_um > 0, film.bubble_stress_concentration, 1.0)
    return toughness_pa_m05 / (film.channel_crack_factor * np.sqrt(thickness_um * 1e-6)) / concentration


def _retained_fraction(film: FilmModel, speed_um_s: F) -> F:
    """Share of the capillary drive the binder network retains at front speed ``speed_um_s``, 0-1."""
    sn = speed_um_s**film.stress_retention_exponent
    return film.residual_stress_fraction + (1.0 - film.residual_stress_fraction) * sn / (
        sn + film.stress_retention_speed_um_s**film.stress_retention_exponent
    )


def precursor_forecast(slurry: SlurryConfig, state: FilmState) -> tuple[F, F]:
    """Forecast of each film's critical point from its current state (drives the precursor).

    Parameters
    ----------
    slurry : SlurryConfig
        Formulation and film model.
    state : FilmState
        Current state (its temperature and evaporation rate are today's drying conditions).

    Returns
    -------
    stress_ratio : ndarray, shape (N,)
        ``F = sigma_max(T) r(v_f) / sigma_crit(H_c)``: the stress the film will carry with the
        capillary drive saturated, at the front speed ``v_f = E / (1 - phi_c)`` of the current
        evaporation rate, over the cracking stress of the consolidated layer, dimensionless.
    solvent_to_critical_um : ndarray, shape (N,)
        ``Lambda``: solvent still to evaporate (liquid thickness, um) before the forecast
        stress reaches the cracking stress; ``inf`` where ``F <= 1`` (never, at today's rate).
    """
    film = slurry.film
    porosity = 1.0 - state.solids_um / state.consolidated_layer_um
    v_f = state.evaporation_g_m2_s * 1e3 / slurry.solvent.density_kg_m3 / porosity
    sigma_f = capillary_stress_max_kpa(slurry, state.temperature_c) * 1e3 * _retained_fraction(film, v_f)
    sigma_c = _cracking_stress_pa(slurry, state.toughness_pa_m05, state.consolidated_layer_um, state.bubble_radius0_um)
    ratio = sigma_f / sigma_c
    heading = ratio > 1.0
    z_star = -film.stress_buildup_depth_um * np.log1p(-1.0 / np.where(heading, ratio, 2.0))
    solvent = (state.supernatant_um + (state.particle_layer_um - state.consolidated_layer_um)
               + porosity * (z_star - state.front_depth_um))
    return ratio, np.where(heading, np.maximum(solvent, 0.0), np.inf)


def _evaporation_kg_m2_s(slurry: SlurryConfig, state: FilmState, env: DryingEnvironment, temperature_c: F) -> F:
    solvent = slurry.solvent
    psat = props.saturation_pressure_pa(solvent, temperature_c)
    drive = props.vapour_density_kg_m3(solvent, psat, temperature_c) - props.vapour_density_kg_m3(
        solvent, env.vapour_pressure_pa, temperature_c
    )
    beta = np.asarray(env.mass_transfer_m_s, dtype=float)
    d_eff = solvent.vapour_diffusivity_in_air_m2_s * slurry.film.pore_diffusivity_factor
    resistance = 1.0 + beta * state.front_depth_um * 1e-6 / d_eff
    flux = np.asarray(env.flux_multiplier, dtype=float) * beta * np.maximum(drive, 0.0) / resistance
    settling = np.isnan(state.shrink_ratio) & (state.supernatant_um > slurry.film.consolidation_supernatant_um)
    flux = np.where(settling, slurry.film.supernatant_flux_factor * flux, flux)
    return np.where(state.liquid_um > 0.0, flux, 0.0)


def _heat_capacity_j_m2k(slurry: SlurryConfig, state: FilmState, substrate_j_m2k: ArrayLike) -> F:
    liquid = state.liquid_um * 1e-6 * slurry.solvent.density_kg_m3 * slurry.solvent.heat_capacity_j_kg_k
    solids = state.solids_um * 1e-6 * slurry.solids_density_kg_m3 * slurry.solids_heat_capacity_j_kg_k
    return liquid + solids + np.asarray(substrate_j_m2k, dtype=float)


def _remove_liquid(slurry: SlurryConfig, st: dict[str, F], loss_um: F, t_start_s: F, dt_s: float, rate_um_s: F) -> None:
    """Take ``loss_um`` of liquid out of the film layers in drying order (in place on ``st``)."""
    film = slurry.film
    remaining = loss_um.copy()
    safe_rate = np.maximum(rate_um_s, 1e-30)

    def used_time(taken: F) -> F:
        return t_start_s + np.clip((loss_um - remaining + taken) / safe_rate, 0.0, dt_s)

    # a) supernatant above the consolidation threshold (particle layer does not shrink yet)
    not_started = np.isnan(st["shrink_ratio"])
    take = np.where(not_started, np.minimum(remaining, np.maximum(st["supernatant_um"] - film.consolidation_supernatant_um, 0.0)), 0.0)
    st["supernatant_um"] -= take
    remaining -= take
    # b) consolidation: the particle layer shrinks, the supernatant thins in proportion
    consolidating = (st["particle_layer_um"] > st["consolidated_layer_um"]) & (remaining > 0)
    start = consolidating & np.isnan(st["shrink_ratio"])
    if np.any(start):
        excess = np.maximum(st["supernatant_um"] - film.residual_supernatant_um, 0.0)
        span = np.maximum(st["particle_layer_um"] - st["consolidated_layer_um"], 1e-9)
        st["shrink_ratio"] = np.where(start, excess / span, st["shrink_ratio"])
    kappa = np.nan_to_num(st["shrink_ratio"])
    room = np.maximum(st["particle_layer_um"] - st["consolidated_layer_um"], 0.0) * (1.0 + kappa)
    take = np.where(consolidating, np.minimum(remaining, room), 0.0)
    st["particle_layer_um"] -= take / (1.0 + kappa)
    st["supernatant_um"] = np.maximum(st["supernatant_um"] - take * kappa / (1.0 + kappa), 0.0)
    remaining -= take
    ended = consolidating & (take >= room - 1e-12)
    st["particle_layer_um"] = np.where(ended, st["consolidated_layer_um"], st["particle_layer_um"])
    st["consolidation_end_s"] = np.where(ended & np.isnan(st["consolidation_end_s"]), used_time(take), st["consolidation_end_s"])
    # c) the last supernatant over the consolidated layer
    consolidated = st["particle_layer_um"] <= st["consolidated_layer_um"]
    take = np.where(consolidated, np.minimum(remaining, st["supernatant_um"]), 0.0)
    st["supernatant_um"] -= take
    remaining -= take
    entered = consolidated & (st["supernatant_um"] <= 1e-12) & np.isnan(st["front_entry_s"]) & (remaining > 0)
    st["front_entry_s"] = np.where(entered, used_time(take), st["front_entry_s"])
    # d) pore emptying: the front recedes into the particle layer
    emptying = ~np.isnan(st["front_entry_s"]) & np.isnan(st["dry_s"])
    porosity = 1.0 - st["solids_um"] / st["consolidated_layer_um"]
    room = np.maximum(st["consolidated_layer_um"] - st["front_depth_um"], 0.0) * porosity
    take = np.where(emptying, np.minimum(remaining, room), 0.0)
    st["front_depth_um"] += take / porosity
    remaining -= take
    dried = emptying & (take >= room - 1e-12)
    st["front_depth_um"] = np.where(dried, st["consolidated_layer_um"], st["front_depth_um"])
    st["dry_s"] = np.where(dried, used_time(take), st["dry_s"])


def step_films(
    slurry: SlurryConfig,
    state: FilmState,
    env: DryingEnvironment,
    dt_s: float,
    *,
    substrate_heat_capacity_j_m2k: ArrayLike = 0.0,
) -> FilmState:
    """Advance films by ``dt_s`` seconds under ``env``; returns a new state.

    Parameters
    ----------
    slurry : SlurryConfig
        Formulation and film model.
    state : FilmState
        State at the start of the step (not modified).
    env : DryingEnvironment
        Conditions during the step.
    dt_s : float
        Step, s (> 0). Steps up to a few seconds keep onset times accurate to the step.
    substrate_heat_capacity_j_m2k : array
        Heat capacity of the substrate under the film, J/m^2 K.
    """
    if not dt_s > 0:
        raise ValueError(f"dt_s: expected a positive step in seconds, found {dt_s}")
    film = slurry.film
    solvent = slurry.solvent
    t_air = np.asarray(env.air_temperature_c, dtype=float)
    h_heat = np.asarray(env.heat_transfer_w_m2k, dtype=float)

    # heat balance, linearised implicit: C dT/dt = h (T_air - T) - m L
    temp = state.temperature_c
    mdot = _evaporation_kg_m2_s(slurry, state, env, temp)
    latent = props.heat_of_vaporization_j_kg(solvent, temp)
    q = h_heat * (t_air - temp) - mdot * latent
    dq_dt = -h_heat - mdot * latent * props.dln_psat_dt_per_k(solvent, temp)
    cap = _heat_capacity_j_m2k(slurry, state, substrate_heat_capacity_j_m2k)
    temp_new = temp + dt_s * q / (cap - dt_s * dq_dt)

    mdot = _evaporation_kg_m2_s(slurry, state, env, 0.5 * (temp + temp_new))
    rate_um_s = mdot / solvent.density_kg_m3 * 1e6
    loss = np.minimum(rate_um_s * dt_s, state.liquid_um)

    st = {f.name: np.array(getattr(state, f.name), dtype=float, copy=True) for f in dataclasses.fields(state)}
    _remove_liquid(slurry, st, loss, state.t_s, dt_s, rate_um_s)
    st["t_s"] = state.t_s + dt_s
    st["temperature_c"] = temp_new
    st["evaporation_g_m2_s"] = loss / dt_s * solvent.density_kg_m3 * 1e-3

    # capillary stress: the drive builds as the front enters the pores; the binder network
    # retains more of it the faster the front moves (power-law relaxation spectrum), and
    # relaxes slowly towards the residual fraction once the front slows or stops.
    sigma_max = capillary_stress_max_kpa(slurry, temp_new) * 1e3
    drive = np.where(
        st["front_depth_um"] > 0,
        sigma_max * (1.0 - np.exp(-st["front_depth_um"] / film.stress_buildup_depth_um)),
        0.0,
    )
    drive = np.where(np.isnan(state.dry_s), drive, state.drive_pa)  # dry: no more capillary drive
    speed = np.maximum(st["front_depth_um"] - state.front_depth_um, 0.0) / dt_s
    retained = _retained_fraction(film, speed)
    target = drive * retained
    relaxed = target + (state.stress_pa - target) * np.exp(-dt_s / film.stress_relaxation_time_s)
    sigma = np.maximum(np.where(target >= state.stress_pa, target, relaxed), 0.0)

    # cracking
    sigma_crit = _cracking_stress_pa(slurry, st["toughness_pa_m05"], st["particle_layer_um"], st["bubble_radius0_um"])
    new_onset = np.isnan(st["onset_s"]) & (sigma >= sigma_crit) & (st["front_depth_um"] > 0)
    st["onset_s"] = np.where(new_onset, st["t_s"], st["onset_s"])
    st["front_at_onset_um"] = np.where(new_onset, st["front_depth_um"], st["front_at_onset_um"])
    cracked = ~np.isnan(st["onset_s"])
    h_c_min = (st["toughness_pa_m05"] / (film.channel_crack_factor * sigma_max)) ** 2 * 1e6
    plateau = film.cif_max * np.clip(1.0 - (h_c_min / st["consolidated_layer_um"]) ** film.cif_thickness_exponent, 0.0, 1.0)
    plateau = plateau * np.where(st["bubble_radius0_um"] > 0, film.bubble_cif_gain, 1.0)
    st["cif_target"] = np.where(new_onset, np.minimum(plateau, 0.9), st["cif_target"])
    st["peak_stress_pa"] = np.maximum(state.peak_stress_pa, sigma)  # what the film would carry uncracked
    sigma = np.where(cracked, np.minimum(sigma, sigma_crit), sigma)  # the cracks relieve the excess
    st["stress_pa"] = sigma
    st["drive_pa"] = drive

    # crack growth follows the receding front until the binder sets
    end_depth = np.minimum(film.crack_growth_end_depth_fraction * st["consolidated_layer_um"], film.crack_growth_end_depth_um)
    z_on = np.nan_to_num(st["front_at_onset_um"])
    progress = np.where(
        cracked,
        np.clip((st["front_depth_um"] - z_on) / np.maximum(end_depth - z_on, 1e-6), 0.0, 1.0),
        0.0,
    )
    progress = np.where(cracked & (z_on >= end_depth), 1.0, progress)
    st["cif_3d"] = np.maximum(state.cif_3d, st["cif_target"] * progress)

    # bubbles grow after the onset, then vent to the surface
    since = np.where(cracked, (st["t_s"] - np.nan_to_num(st["onset_s"])) / 60.0, 0.0)
    grow = 1.0 + film.bubble_growth_fraction * np.clip(since / film.bubble_growth_min, 0.0, 1.0)
    st["bubble_radius_um"] = np.where(since > film.bubble_growth_min, 0.0, st["bubble_radius0_um"] * grow)
    return FilmState(**st)


def delamination_fraction(slurry: SlurryConfig, state: FilmState) -> F:
    """Debonded fraction of the substrate interface, 0-1 (after a thickness-dependent delay)."""
    film = slurry.film
    delay_min = film.delamination_delay_min_at_large_thickness + film.delamination_delay_excess_min * np.exp(
        -state.consolidated_layer_um / film.delamination_delay_thickness_scale_um
    )
    since_min = (state.t_s - np.nan_to_num(state.onset_s, nan=np.inf)) / 60.0 - delay_min
    return film.delamination_max_fraction * np.clip(since_min / film.delamination_growth_min, 0.0, 1.0)


def surface_fields(slurry: SlurryConfig, state: FilmState) -> dict[str, F]:
    """Derived per-film quantities (crack widths, 2D CIF, precursor, porosity, stresses).

    ``precursor_opening_um`` is ``precursor_opening_at_onset_um * L`` with the localisation
    ``L = exp(-Lambda / Lambda_loc)`` of `precursor_forecast` (0 where ``F <= 1``, 1 once
    cracked): relative opening of the two sides of a future crack of weight 1 at mid-length, um.
    """
    film = slurry.film
    cif = state.cif_3d
    top = np.minimum(film.surface_cif_ratio * cif, 0.95)
    delam = delamination_fraction(slurry, state)
    base = np.minimum(film.base_cif_ratio * cif + delam, top)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.where(cif > base + 1e-9, (top - base) / np.maximum(cif - base, 1e-9) - 1.0, 1.0)
    exponent = np.clip(exponent, 0.2, 20.0)
    sigma_crit = _cracking_stress_pa(slurry, state.toughness_pa_m05, state.particle_layer_um, state.bubble_radius0_um)
    ratio, solvent_um = precursor_forecast(slurry, state)
    localised = np.where(ratio > 1.0, np.exp(-solvent_um / film.precursor_localisation_solvent_um), 0.0)
    pre = film.precursor_opening_at_onset_um * np.where(state.cracked, 1.0, localised)
    packing = state.solids_um / state.particle_layer_um
    return {
        "packing_fraction": packing,
        "porosity": 1.0 - packing * slurry.active_volume_share,
        "critical_stress_pa": sigma_crit,
        "precursor_opening_um": pre,
        "cif_2d_top": top,
        "cif_2d_base": base,
        "cif_2d_exponent": exponent,
        "crack_width_um": top * state.spacing_um / 2.0,
        "delamination_fraction": delam,
    }


def snapshot(slurry: SlurryConfig, state: FilmState, index: int, *, seed: int = 0) -> FilmSnapshot:
    """The renderers' view (`FilmSnapshot`) of film ``index`` of ``state``."""
    f = surface_fields(slurry, state)
    i = int(index)
    return FilmSnapshot(
        t_min=float(state.t_s[i] / 60.0),
        solid_thickness_um=float(state.particle_layer_um[i]),
        solvent_level_um=float(state.supernatant_um[i]),
        packing_fraction=float(f["packing_fraction"][i]),
        porosity=float(f["porosity"][i]),
        phase=DryingPhase(int(state.phase[i])),
        capillary_stress_kpa=float(state.stress_pa[i] * 1e-3),
        critical_stress_kpa=float(f["critical_stress_pa"][i] * 1e-3),
        crack_spacing_um=float(state.spacing_um[i]),
        precursor_opening_um=float(f["precursor_opening_um"][i]),
        crack_width_um=float(f["crack_width_um"][i]),
        cif_3d=float(state.cif_3d[i]),
        cif_2d_top=float(f["cif_2d_top"][i]),
        cif_2d_base=float(f["cif_2d_base"][i]),
        cif_2d_exponent=float(f["cif_2d_exponent"][i]),
        delamination_fraction=float(f["delamination_fraction"][i]),
        delamination_gap_um=float(slurry.film.delamination_gap_um if f["delamination_fraction"][i] > 0 else 0.0),
        bubble_radius_um=float(state.bubble_radius_um[i]),
        bubble_height_frac=0.5,
        particle_diameter_min_um=slurry.particle_diameter_min_um,
        particle_diameter_max_um=slurry.particle_diameter_max_um,
        precursor_band_um=slurry.film.precursor_band_um,
        active_volume_share=slurry.active_volume_share,
        cracked=bool(state.cracked[i]),
        seed=int(seed),
    )


def take_films(state: FilmState, index: ArrayLike) -> FilmState:
    """The films ``index`` (integer or boolean array) of ``state`` as a new state."""
    return FilmState(**{f.name: np.asarray(getattr(state, f.name))[index].copy() for f in dataclasses.fields(state)})


def concat_films(*states: FilmState) -> FilmState:
    """Concatenate the films of several states (in order)."""
    return FilmState(
        **{f.name: np.concatenate([np.asarray(getattr(s, f.name)) for s in states]) for f in dataclasses.fields(FilmState)}
    )
