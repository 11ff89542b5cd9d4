"""Lab mode: one stationary coating (a published pin sample) drying in still air."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import _properties as props
from ._config import LabConfig, SlurryConfig, load_lab
from ._physics import DryingEnvironment, FilmState, critical_thickness_um, init_films, snapshot, step_films, surface_fields
from ._snapshot import FilmSnapshot

__all__ = ["LAB_COLUMNS", "LabRun", "dry_lab_sample", "simulate_lab"]

#: Columns of the lab time series, with units in their names.
LAB_COLUMNS = (
    "t_min",
    "solid_thickness_um",
    "solvent_level_um",
    "total_thickness_um",
    "solvent_g_m2",
    "packing_fraction",
    "porosity",
    "film_temperature_c",
    "evaporation_g_m2_s",
    "phase",
    "front_depth_um",
    "capillary_stress_kpa",
    "critical_stress_kpa",
    "precursor_opening_um",
    "crack_width_um",
    "cif_3d",
    "cif_2d_top",
    "cif_2d_base",
    "delamination_fraction",
    "bubble_radius_um",
)


@dataclass(frozen=True)
class LabRun:
    """A simulated lab sample: the time series and the renderers' snapshots.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per output interval, columns `LAB_COLUMNS`; ``attrs`` hold the events
        (see `dry_lab_sample`).
    snapshots : tuple of FilmSnapshot
        One per row of ``frame``.
    """

    frame: pd.DataFrame
    snapshots: tuple[FilmSnapshot, ...]

    def snapshot_at(self, t_min: float) -> FilmSnapshot:
        """The snapshot of the row closest to ``t_min``."""
        i = int(np.argmin(np.abs(self.frame["t_min"].to_numpy() - t_min)))
        return self.snapshots[i]


def _resolve(config: LabConfig | str | Path | None) -> tuple[LabConfig, SlurryConfig]:
    if isinstance(config, tuple):
        return config
    if config is None or isinstance(config, (str, Path)):
        return load_lab(config)
    raise TypeError(f"config: expected a LabConfig path, a (LabConfig, SlurryConfig) pair or None, found {type(config).__name__}")


def _environment(lab: LabConfig, slurry: SlurryConfig, state: FilmState) -> DryingEnvironment:
    t_min = float(state.t_s[0]) / 60.0
    t_air = lab.air_temperature_c + lab.beam_heating_c
    p_env = (
        lab.enclosure_vapour_fraction_max
        * props.saturation_pressure_pa(slurry.solvent, lab.air_temperature_c)
        * (1.0 - math.exp(-t_min / lab.enclosure_time_constant_min))
    )
    thickness_um = state.particle_layer_um + state.supernatant_um
    edge = 1.0 + lab.edge_flux_factor * 4.0 * thickness_um / (lab.pin_diameter_mm * 1e3)
    return DryingEnvironment(
        air_temperature_c=t_air,
        heat_transfer_w_m2k=lab.heat_transfer_w_m2k,
        mass_transfer_m_s=lab.mass_transfer_m_s,
        vapour_pressure_pa=p_env,
        flux_multiplier=edge,
    )


def _row(slurry: SlurryConfig, state: FilmState) -> dict[str, float]:
    f = surface_fields(slurry, state)
    return {
        "t_min": state.t_s[0] / 60.0,
        "solid_thickness_um": state.particle_layer_um[0],
        "solvent_level_um": state.supernatant_um[0],
        "total_thickness_um": state.particle_layer_um[0] + state.supernatant_um[0],
        "solvent_g_m2": state.liquid_um[0] * slurry.solvent.density_kg_m3 * 1e-3,
        "packing_fraction": f["packing_fraction"][0],
        "porosity": f["porosity"][0],
        "film_temperature_c": state.temperature_c[0],
        "evaporation_g_m2_s": state.evaporation_g_m2_s[0],
        "phase": int(state.phase[0]),
        "front_depth_um": state.front_depth_um[0],
        "capillary_stress_kpa": state.stress_pa[0] * 1e-3,
        "critical_stress_kpa": f["critical_stress_pa"][0] * 1e-3,
        "precursor_opening_um": f["precursor_opening_um"][0],
        "crack_width_um": f["crack_width_um"][0],
        "cif_3d": state.cif_3d[0],
        "cif_2d_top": f["cif_2d_top"][0],
        "cif_2d_base": f["cif_2d_base"][0],
        "delamination_fraction": f["delamination_fraction"][0],
        "bubble_radius_um": state.bubble_radius_um[0],
    }


def simulate_lab(
    gap_um: float,
    config: LabConfig | tuple[LabConfig, SlurryConfig] | str | Path | None = None,
    *,
    seed: int = 0,
    bubble_radius_um: float | None = None,
    duration_min: float | None = None,
    output_interval_s: float | None = None,
) -> LabRun:
    """Simulate a lab pin sample coated with doctor-blade gap ``gap_um``.

    Parameters
    ----------
    gap_um : float
        Doctor-blade gap, um (the paper used 300, 500 and 800).
    config : path, LabConfig pair or None
        Lab configuration (default ``configs/lab_ambient.yaml``) or an already loaded
        ``(LabConfig, SlurryConfig)`` pair.
    seed : int
        Seed of the film scatter (toughness, crack spacing) and of the renderers.
    bubble_radius_um : float, optional
        Trapped bubble radius; default from the config (0: none).
    duration_min : float, optional
        Simulated time; default from the config.
    output_interval_s : float, optional
        Time between rows (and snapshots); default from the config (30 s). Rendered
        sequences at finer frame intervals want finer snapshots (e.g. 10 s).

    Returns
    -------
    LabRun
    """
    if not (isinstance(gap_um, (int, float)) and math.isfinite(gap_um) and 1.0 <= gap_um <= 5000.0):
        raise ValueError(f"gap_um: expected a doctor-blade gap between 1 and 5000 um, found {gap_um!r}")
    lab, slurry = _resolve(config)
    duration_s = 60.0 * (duration_min if duration_min is not None else lab.duration_min)
    rng = np.random.default_rng(seed)
    bubble = lab.bubble_radius_um if bubble_radius_um is None else float(bubble_radius_um)
    state = init_films(
        slurry,
        [lab.wet_thickness_um(float(gap_um))],
        temperature_c=lab.air_temperature_c + lab.beam_heating_c,
        rng=rng,
        bubble_radius_um=bubble,
    )
    dt = lab.time_step_s
    interval = lab.output_interval_s if output_interval_s is None else float(output_interval_s)
    if not (math.isfinite(interval) and interval > 0):
        raise ValueError(f"output_interval_s: expected a positive number of seconds, found {output_interval_s!r}")
    every = max(1, int(round(interval / dt)))
    n_steps = int(math.ceil(duration_s / dt))
    rows = [_row(slurry, state)]
    snaps = [snapshot(slurry, state, 0, seed=seed)]
    for k in range(1, n_steps + 1):
        state = step_films(slurry, state, _environment(lab, slurry, state), dt, substrate_heat_capacity_j_m2k=lab.substrate_heat_capacity_j_m2k)
        if k % every == 0 or k == n_steps:
            rows.append(_row(slurry, state))
            snaps.append(snapshot(slurry, state, 0, seed=seed))
    frame = pd.DataFrame(rows, columns=list(LAB_COLUMNS))
    cif = frame["cif_3d"].to_numpy()
    peak = float(cif.max())
    reach = frame["t_min"].to_numpy()[np.argmax(cif >= 0.98 * peak)] if peak > 0 else math.nan
    to_min = lambda v: float(v[0] / 60.0)  # noqa: E731  (NaN stays NaN)
    frame.attrs.update(
        gap_um=float(gap_um),
        wet_thickness_um=float(lab.wet_thickness_um(float(gap_um))),
        dry_thickness_um=float(state.consolidated_layer_um[0]),
        consolidation_end_min=to_min(state.consolidation_end_s),
        front_entry_min=to_min(state.front_entry_s),
        crack_onset_min=to_min(state.onset_s),
        dry_min=to_min(state.dry_s),
        cif_peak=peak,
        cif_peak_min=float(reach),
        peak_stress_kpa=float(state.peak_stress_pa[0] * 1e-3),
        crack_spacing_um=float(state.spacing_um[0]),
        critical_thickness_um=float(critical_thickness_um(slurry, temperature_c=float(state.temperature_c[0]))),
        seed=int(seed),
    )
    return LabRun(frame=frame, snapshots=tuple(snaps))


def dry_lab_sample(gap_um: float, config: LabConfig | str | Path | None = None, *, seed: int = 0) -> pd.DataFrame:
    """Dry a lab pin sample and return its time series.

    Parameters
    ----------
    gap_um : float
        Doctor-blade gap, um.
    config : path, (LabConfig, SlurryConfig) or None
        Default ``configs/lab_ambient.yaml`` (the published pin-sample case).
    seed : int
        Seed of the random elements (deterministic per seed).

    Returns
    -------
    pandas.DataFrame
        One row per 30 s (the config's output interval), columns `LAB_COLUMNS`:
        ``t_min``, ``solid_thickness_um``, ``solvent_level_um`` (excess solvent above the
        particles), ``porosity`` (CT porosity), ``capillary_stress_kpa``, ``cif_3d`` (0-1), ...
        ``attrs``: ``consolidation_end_min``, ``crack_onset_min`` (NaN if it never
        cracks), ``front_entry_min``, ``dry_min``, ``dry_thickness_um``, ``cif_peak``,
        ``cif_peak_min`` (first time at 98 % of the peak), ``peak_stress_kpa``,
        ``crack_spacing_um``, ``critical_thickness_um``, ``wet_thickness_um``.

    Examples
    --------
    >>> df = dry_lab_sample(300)
    >>> round(df.attrs["dry_thickness_um"])
    129
    """
    return simulate_lab(gap_um, config, seed=seed).frame
