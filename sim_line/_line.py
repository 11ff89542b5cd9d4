"""Line mode: parcels of coating carried by the web through the dryer zones."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import _properties as props
from ._config import LineConfig, SlurryConfig, load_line
from ._physics import (
    DryingEnvironment,
    FilmState,
    concat_films,
    init_films,
    snapshot,
    step_films,
    surface_fields,
    take_films,
)
from ._snapshot import FilmSnapshot

__all__ = ["Line", "LineReadings", "ZoneReading", "ZoneSetpoint"]

#: Fan power at the reference airflow of a zone, kW (fan affinity law P ~ Q^3).
FAN_POWER_AT_REF_KW = 1.5


@dataclass(frozen=True)
class ZoneSetpoint:
    """Set-point of one dryer zone (``fresh_air_m3_h`` None: the exhaust keeps its set-point)."""

    temperature_c: float
    airflow_m3_h: float
    fresh_air_m3_h: float | None = None


@dataclass(frozen=True)
class ZoneReading:
    """Sensor readings of one dryer zone."""

    name: str
    temperature_c: float
    airflow_m3_h: float
    temperature_setpoint_c: float
    airflow_setpoint_m3_h: float
    heat_transfer_w_m2k: float
    solvent_concentration_g_m3: float
    heater_power_kw: float
    fan_power_kw: float
    fresh_air_m3_h: float = math.nan
    fresh_air_setpoint_m3_h: float = math.nan


@dataclass(frozen=True)
class LineReadings:
    """What the line's sensors report at one time.

    Attributes
    ----------
    t_s : float
        Line time, s.
    web_speed_m_min, wet_thickness_um, ambient_temperature_c : float
        Web speed, wet thickness at the coater, ambient temperature.
    zones : tuple of ZoneReading
        Per dryer zone (actual temperature, nozzle airflow and exhaust fresh air, set-points,
        solvent vapour concentration, power).
    position_m, residual_solvent_g_m2, surface_temperature_c : ndarray, shape (P,)
        Profiles along the web at the parcel positions (coater at 0 m).
    exit_residual_solvent_g_m2, exit_cif_3d : float
        The last parcel that left the dryer (NaN before the first one has).
    """

    t_s: float
    web_speed_m_min: float
    wet_thickness_um: float
    ambient_temperature_c: float
    zones: tuple[ZoneReading, ...]
    position_m: np.ndarray
    residual_solvent_g_m2: np.ndarray
    surface_temperature_c: np.ndarray
    exit_residual_solvent_g_m2: float
    exit_cif_3d: float

    def as_dict(self) -> dict[str, float]:
        """Flat scalar readings (for CSV time series)."""
        out: dict[str, float] = {
            "t_s": self.t_s,
            "web_speed_m_min": self.web_speed_m_min,
            "wet_thickness_um": self.wet_thickness_um,
            "ambient_temperature_c": self.ambient_temperature_c,
            "exit_residual_solvent_g_m2": self.exit_residual_solvent_g_m2,
            "exit_cif_3d": self.exit_cif_3d,
        }
        for z in self.zones:
            for key in ("temperature_c", "airflow_m3_h", "fresh_air_m3_h", "temperature_setpoint_c",
                        "airflow_setpoint_m3_h", "fresh_air_setpoint_m3_h", "solvent_concentration_g_m3",
                        "heater_power_kw", "fan_power_kw"):
                out[f"{z.name}_{key}"] = getattr(z, key)
        return out


def fresh_air_heating_kw(fresh_air_m3_h: np.ndarray, temperature_c: np.ndarray, ambient_c: float) -> np.ndarray:
    """Heater power that brings a zone's fresh (make-up) air from ambient to the zone temperature, kW.

    The recirculated nozzle air only needs the heat the web takes (small beside this on an
    NMP dryer); the energy proxy of the line is this plus the fan power.
    """
    rho = props.air_density_kg_m3(temperature_c)
    return rho * np.asarray(fresh_air_m3_h) / 3600.0 * props.AIR_CP_J_KG_K * np.maximum(temperature_c - ambient_c, 0.0) / 1e3


def fan_power_kw(airflow_m3_h: np.ndarray, airflow_ref_m3_h: float) -> np.ndarray:
    """Nozzle fan power of a zone, kW: ``FAN_POWER_AT_REF_KW`` at the reference airflow, ~ airflow^3
    (fan affinity law)."""
    return FAN_POWER_AT_REF_KW * (np.asarray(airflow_m3_h) / airflow_ref_m3_h) ** 3


def _follow(actual: np.ndarray, target: np.ndarray, dt_s: float, tau_s: float, rate_per_s: float) -> np.ndarray:
    """First-order lag towards ``target`` with a rate limit."""
    step = (target - actual) * (1.0 - math.exp(-dt_s / tau_s))
    limit = rate_per_s * dt_s
    return actual + np.clip(step, -limit, limit)


class Line:
    """A roll-to-roll coating line with a multi-zone dryer (the virtual plant).

    Parameters
    ----------
    config : path, (LineConfig, SlurryConfig) or None
        Line configuration; default ``configs/line.yaml``.
    seed : int
        Seed of the coater thickness noise and the film scatter (deterministic).

    Notes
    -----
    The web is divided into parcels ``parcel_spacing_m`` apart; each parcel is one film
    of `sim_line._physics`, drying under the zone it is in (air temperature, heat transfer
    from the zone's nozzle airflow, solvent partial pressure of the zone's recirculated air).
    Each zone's air (hood and recirculation ducts, ``zone_air_volume_m3_per_m`` per metre of
    zone) is well mixed and flushed by the zone's exhaust: its vapour relaxes towards the
    solvent evaporated in the zone over the fresh-air flow with the time constant volume /
    fresh air (10 s at 750 m3/h, 2.4 min at the 50 m3/h minimum).
    At construction the line is filled with coating dried under the initial recipe
    (steady state), so readings are meaningful from the first step.

    Examples
    --------
    >>> line = Line(seed=1)
    >>> readings = line.step(10.0, {"Z1": ZoneSetpoint(60.0, 1200.0)})
    """

    def __init__(self, config: LineConfig | tuple[LineConfig, SlurryConfig] | str | Path | None = None, *, seed: int = 0) -> None:
        if isinstance(config, tuple):
            self.config, self.slurry = config
        elif config is None or isinstance(config, (str, Path)):
            self.config, self.slurry = load_line(config)
        else:
            raise TypeError(f"config: expected a path, a (LineConfig, SlurryConfig) pair or None, found {type(config).__name__}")
        cfg = self.config
        self.seed = int(seed)
        self._rng = np.random.default_rng(seed)
        zones = cfg.dryer.zones
        self.zone_names = tuple(z.name for z in zones)
        self._zone_start_m = cfg.dryer.entry_m + np.concatenate([[0.0], np.cumsum([z.length_m for z in zones])[:-1]])
        self._zone_end_m = self._zone_start_m + np.array([z.length_m for z in zones])
        self._t_sp = np.array([z.temperature_c for z in zones], dtype=float)
        self._q_sp = np.array([z.airflow_m3_h for z in zones], dtype=float)
        self._f_sp = np.array([z.fresh_air_m3_h for z in zones], dtype=float)
        self._t_act = self._t_sp.copy()
        self._q_act = self._q_sp.copy()
        self._f_act = self._f_sp.copy()
        self._solvent_kg_s = np.zeros(len(zones))
        self._zone_air_m3 = cfg.dryer.zone_air_volume_m3_per_m * np.array([z.length_m for z in zones])
        self._conc_kg_m3 = np.zeros(len(zones))  # solvent vapour in each zone's air (well mixed)
        self._speed_sp = cfg.web.speed_m_min
        self._speed = cfg.web.speed_m_min
        self._wet_um = cfg.coater.wet_thickness_um
        self.t_s = 0.0
        self._next_id = 0
        self._exited: list[dict[str, float]] = []
        self._fill()

    # ----------------------------------------------------------------- set-up
    def _new_films(self, n: int) -> FilmState:
        noise = self.config.coater.wet_thickness_noise_um
        wet = self._wet_um + noise * self._rng.standard_normal(n)
        return init_films(self.slurry, np.maximum(wet, 1.0), temperature_c=self.config.ambient_temperature_c, rng=self._rng)

    def _fill(self) -> None:
        """Fill the web with coating dried under the initial recipe (steady state).

        A probe film is run from the coater to the end of the line; the zone solvent load
        it implies feeds the next probe run (the zone air is recirculated), until the
        load settles (3 passes).
        """
        for _ in range(3):
            self._fill_once()
            zone = self._zone_index(self.position_m)
            rate = self.films.evaporation_g_m2_s * 1e-3 * self.config.simulation.parcel_spacing_m * self.config.web.width_m
            self._solvent_kg_s = np.array([rate[zone == i].sum() for i in range(len(self.zone_names))])
            self._conc_kg_m3 = self._steady_concentration_kg_m3()

    def _fill_once(self) -> None:
        cfg = self.config
        spacing = cfg.simulation.parcel_spacing_m
        positions = np.arange(0.0, cfg.line_length_m, spacing)[::-1]
        probe = self._new_films(1)
        x = 0.0
        states: list[FilmState] = []
        targets = positions[::-1]
        k = 0
        v = self._speed / 60.0
        dt = min(cfg.simulation.max_time_step_s, spacing / v / 2.0)
        onset_x = np.nan
        while k < len(targets):
            while k < len(targets) and x >= targets[k]:
                states.append(probe)
                k += 1
            if k == len(targets):
                break
            env = self._environment(np.array([x]), probe)
            probe = step_films(self.slurry, probe, env, dt, substrate_heat_capacity_j_m2k=cfg.web.substrate_heat_capacity_j_m2k)
            if np.isnan(onset_x) and probe.cracked[0]:
                onset_x = x
            x += v * dt
        films = concat_films(*states[::-1])
        # each parcel is its own film: fresh scatter and thickness noise, same history
        fresh = self._new_films(len(positions))
        self.films = FilmState(**{**films.__dict__, "toughness_pa_m05": fresh.toughness_pa_m05, "spacing_um": fresh.spacing_um})
        self.position_m = positions.astype(float)
        self.parcel_id = np.arange(len(positions))[::-1].astype(np.int64)
        self._next_id = len(positions)
        self.onset_position_m = np.where(self.films.cracked, onset_x, np.nan)

    # ------------------------------------------------------------ environment
    def _zone_index(self, position_m: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self._zone_end_m, position_m, side="right")
        inside = (position_m >= self._zone_start_m[np.minimum(idx, len(self._zone_end_m) - 1)]) & (idx < len(self._zone_end_m))
        return np.where(inside, idx, -1)

    def _heat_transfer_top(self) -> np.ndarray:
        d = self.config.dryer
        return np.maximum(d.heat_transfer_min_w_m2k, d.heat_transfer_ref_w_m2k * (self._q_act / d.airflow_ref_m3_h) ** d.heat_transfer_exponent)

    def _steady_concentration_kg_m3(self) -> np.ndarray:
        """Solvent vapour each zone's air tends to: evaporation / exhaust flow, kg/m3."""
        return self._solvent_kg_s / np.maximum(self._f_act / 3600.0, 1e-6)

    def _zone_concentration_kg_m3(self) -> np.ndarray:
        """Solvent vapour in each zone's air (well mixed), kg/m3."""
        return self._conc_kg_m3

    def _zone_vapour_pressure_pa(self) -> np.ndarray:
        conc = self._zone_concentration_kg_m3()
        t_k = self._t_act + props.KELVIN
        return conc * props.GAS_CONSTANT_J_MOL_K * t_k / (self.slurry.solvent.molar_mass_g_mol * 1e-3)

    def _environment(self, position_m: np.ndarray, films: FilmState) -> DryingEnvironment:
        cfg = self.config
        zone = self._zone_index(position_m)
        inside = zone >= 0
        zi = np.maximum(zone, 0)
        h_top = np.where(inside, self._heat_transfer_top()[zi], cfg.dryer.heat_transfer_min_w_m2k)
        t_air = np.where(inside, self._t_act[zi], cfg.ambient_temperature_c)
        p_inf = np.where(inside, self._zone_vapour_pressure_pa()[zi], 0.0)
        h_total = h_top * np.where(inside, 1.0 + cfg.dryer.bottom_side_fraction, 1.0)
        beta = props.mass_transfer_from_heat_m_s(self.slurry.solvent, h_top, t_air)
        return DryingEnvironment(air_temperature_c=t_air, heat_transfer_w_m2k=h_total, mass_transfer_m_s=beta, vapour_pressure_pa=p_inf)

    # ---------------------------------------------------------------- control
    def _apply_setpoints(self, setpoints: Mapping[str, ZoneSetpoint | Mapping[str, float]] | None) -> None:
        if not setpoints:
            return
        for name, sp in setpoints.items():
            if name == "web_speed_m_min":
                lo, hi = self.config.web.speed_limits_m_min
                speed = float(sp)  # type: ignore[arg-type]
                if not lo <= speed <= hi:
                    raise ValueError(f"setpoints.web_speed_m_min: expected within [{lo}, {hi}] m/min, found {speed}")
                self._speed_sp = speed
                continue
            if name not in self.zone_names:
                raise ValueError(f"setpoints: unknown zone {name!r}; expected one of {list(self.zone_names)}")
            i = self.zone_names.index(name)
            zone = self.config.dryer.zones[i]
            if isinstance(sp, Mapping):
                fresh = sp.get("fresh_air_m3_h")
                sp = ZoneSetpoint(float(sp["temperature_c"]), float(sp["airflow_m3_h"]),
                                  None if fresh is None else float(fresh))
            checks = [(sp.temperature_c, zone.temperature_limits_c, "temperature_c"),
                      (sp.airflow_m3_h, zone.airflow_limits_m3_h, "airflow_m3_h")]
            if sp.fresh_air_m3_h is not None:
                checks.append((sp.fresh_air_m3_h, zone.fresh_air_limits_m3_h, "fresh_air_m3_h"))
            for value, (lo, hi), key in checks:
                if not (math.isfinite(value) and lo <= value <= hi):
                    raise ValueError(f"setpoints.{name}.{key}: expected within [{lo}, {hi}], found {value}")
            self._t_sp[i] = sp.temperature_c
            self._q_sp[i] = sp.airflow_m3_h
            if sp.fresh_air_m3_h is not None:
                self._f_sp[i] = sp.fresh_air_m3_h

    def set_wet_thickness(self, wet_thickness_um: float) -> None:
        """Change the coater's wet thickness for the coating laid from now on, um."""
        if not (math.isfinite(wet_thickness_um) and 1.0 <= wet_thickness_um <= 2000.0):
            raise ValueError(f"wet_thickness_um: expected 1-2000 um, found {wet_thickness_um}")
        self._wet_um = float(wet_thickness_um)

    # ------------------------------------------------------------------- step
    def step(self, dt_s: float, setpoints: Mapping[str, ZoneSetpoint | Mapping[str, float]] | None = None) -> LineReadings:
        """Advance the line by ``dt_s`` seconds with new set-points (optional).

        Parameters
        ----------
        dt_s : float
            Time to advance, s; split into sub-steps of at most ``max_time_step_s``.
        setpoints : mapping, optional
            ``{zone_name: ZoneSetpoint(...) or {"temperature_c": .., "airflow_m3_h": ..,
            "fresh_air_m3_h": ..}}`` (fresh air optional: absent or None keeps the exhaust's
            set-point) and optionally ``"web_speed_m_min": value``. Values outside the configured
            limits raise ValueError (nothing is applied then).

        Returns
        -------
        LineReadings
        """
        if not (isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and dt_s > 0):
            raise ValueError(f"dt_s: expected a positive number of seconds, found {dt_s!r}")
        saved = self._saved_setpoints()
        try:
            self._apply_setpoints(setpoints)
        except (ValueError, KeyError, TypeError):
            self._restore_setpoints(saved)
            raise
        n_sub = max(1, int(math.ceil(dt_s / self.config.simulation.max_time_step_s)))
        for _ in range(n_sub):
            self._substep(dt_s / n_sub)
        return self.readings()

    def _saved_setpoints(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        return self._t_sp.copy(), self._q_sp.copy(), self._f_sp.copy(), self._speed_sp

    def _restore_setpoints(self, saved: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> None:
        self._t_sp, self._q_sp, self._f_sp, self._speed_sp = saved

    def _substep(self, dt: float) -> None:
        cfg = self.config
        act = cfg.dryer.actuators
        self._t_act = _follow(self._t_act, self._t_sp, dt, act.temperature_time_constant_s, act.temperature_rate_limit_c_per_s)
        self._q_act = _follow(self._q_act, self._q_sp, dt, act.airflow_time_constant_s, act.airflow_rate_limit_m3_h_per_s)
        self._f_act = _follow(self._f_act, self._f_sp, dt, act.fresh_air_time_constant_s, act.fresh_air_rate_limit_m3_h_per_s)
        self._speed = float(_follow(np.array([self._speed]), np.array([self._speed_sp]), dt, 5.0, 2.0)[0])
        env = self._environment(self.position_m, self.films)
        before = self.films
        self.films = step_films(self.slurry, self.films, env, dt, substrate_heat_capacity_j_m2k=cfg.web.substrate_heat_capacity_j_m2k)
        newly = np.isnan(before.onset_s) & self.films.cracked
        self.onset_position_m = np.where(newly, self.position_m, self.onset_position_m)
        # solvent load per zone (kg/s) for the zone vapour pressure of the next step
        zone = self._zone_index(self.position_m)
        rate = self.films.evaporation_g_m2_s * 1e-3 * cfg.simulation.parcel_spacing_m * cfg.web.width_m
        self._solvent_kg_s = np.array([rate[zone == i].sum() for i in range(len(self.zone_names))])
        # the zone air (hood + recirculation ducts) is a well-mixed volume flushed by the exhaust:
        # dc/dt = (evaporation - fresh air x c) / V, integrated exactly over the step (stable at any flow)
        steady = self._steady_concentration_kg_m3()
        decay = np.exp(-np.maximum(self._f_act / 3600.0, 1e-6) * dt / self._zone_air_m3)
        self._conc_kg_m3 = steady + (self._conc_kg_m3 - steady) * decay
        self.position_m = self.position_m + self._speed / 60.0 * dt
        self.t_s += dt
        self._exit_parcels()
        self._coat_parcels()

    def _coat_parcels(self) -> None:
        spacing = self.config.simulation.parcel_spacing_m
        newest = float(self.position_m.min()) if self.position_m.size else spacing
        n = int(newest // spacing)
        if n <= 0:
            return
        pos = newest - spacing * np.arange(1, n + 1)
        films = self._new_films(n)
        self.films = concat_films(self.films, films)
        self.position_m = np.concatenate([self.position_m, pos])
        self.parcel_id = np.concatenate([self.parcel_id, self._next_id + np.arange(n)])
        self.onset_position_m = np.concatenate([self.onset_position_m, np.full(n, np.nan)])
        self._next_id += n

    def _exit_parcels(self) -> None:
        gone = self.position_m >= self.config.line_length_m
        if not gone.any():
            return
        out = take_films(self.films, gone)
        liquid = out.liquid_um * self.slurry.solvent.density_kg_m3 * 1e-3
        for j in range(out.n):
            self._exited.append(
                {
                    "t_s": self.t_s,
                    "parcel_id": int(self.parcel_id[gone][j]),
                    "residual_solvent_g_m2": float(liquid[j]),
                    "cif_3d": float(out.cif_3d[j]),
                    "cracked": bool(out.cracked[j]),
                    "onset_position_m": float(self.onset_position_m[gone][j]),
                    "dry_thickness_um": float(out.consolidated_layer_um[j]),
                    "peak_stress_kpa": float(out.peak_stress_pa[j] * 1e-3),
                }
            )
        keep = ~gone
        self.films = take_films(self.films, keep)
        self.position_m = self.position_m[keep]
        self.parcel_id = self.parcel_id[keep]
        self.onset_position_m = self.onset_position_m[keep]

    # --------------------------------------------------------------- outputs
    def readings(self) -> LineReadings:
        """Current sensor readings."""
        cfg = self.config
        h_top = self._heat_transfer_top()
        conc = self._zone_concentration_kg_m3() * 1e3
        heater_kw = fresh_air_heating_kw(self._f_act, self._t_act, cfg.ambient_temperature_c)
        fan_kw = fan_power_kw(self._q_act, cfg.dryer.airflow_ref_m3_h)
        zones = tuple(
            ZoneReading(name, float(self._t_act[i]), float(self._q_act[i]), float(self._t_sp[i]), float(self._q_sp[i]),
                        float(h_top[i]), float(conc[i]), float(heater_kw[i]), float(fan_kw[i]),
                        float(self._f_act[i]), float(self._f_sp[i]))
            for i, name in enumerate(self.zone_names)
        )
        order = np.argsort(self.position_m)
        liquid = self.films.liquid_um * self.slurry.solvent.density_kg_m3 * 1e-3
        last = self._exited[-1] if self._exited else None
        newest = order[0] if order.size else None
        return LineReadings(
            t_s=self.t_s,
            web_speed_m_min=self._speed,
            wet_thickness_um=float(self.films.particle_layer_um[newest] + self.films.supernatant_um[newest]) if newest is not None else self._wet_um,
            ambient_temperature_c=cfg.ambient_temperature_c,
            zones=zones,
            position_m=self.position_m[order].copy(),
            residual_solvent_g_m2=liquid[order],
            surface_temperature_c=self.films.temperature_c[order].copy(),
            exit_residual_solvent_g_m2=last["residual_solvent_g_m2"] if last else math.nan,
            exit_cif_3d=last["cif_3d"] if last else math.nan,
        )

    def parcels(self) -> pd.DataFrame:
        """State of every parcel on the web, sorted by position (coater first)."""
        f = surface_fields(self.slurry, self.films)
        df = pd.DataFrame(
            {
                "parcel_id": self.parcel_id,
                "position_m": self.position_m,
                "age_min": self.films.t_s / 60.0,
                "solid_thickness_um": self.films.particle_layer_um,
                "solvent_level_um": self.films.supernatant_um,
                "solvent_g_m2": self.films.liquid_um * self.slurry.solvent.density_kg_m3 * 1e-3,
                "porosity": f["porosity"],
                "film_temperature_c": self.films.temperature_c,
                "evaporation_g_m2_s": self.films.evaporation_g_m2_s,
                "phase": self.films.phase,
                "capillary_stress_kpa": self.films.stress_pa * 1e-3,
                "critical_stress_kpa": f["critical_stress_pa"] * 1e-3,
                "precursor_opening_um": f["precursor_opening_um"],
                "cif_3d": self.films.cif_3d,
                "cif_2d_top": f["cif_2d_top"],
                "crack_onset_position_m": self.onset_position_m,
            }
        )
        return df.sort_values("position_m").reset_index(drop=True)

    def exited(self) -> pd.DataFrame:
        """Parcels that have left the line: residual solvent, CIF, onset position."""
        return pd.DataFrame(self._exited, columns=["t_s", "parcel_id", "residual_solvent_g_m2", "cif_3d", "cracked",
                                                   "onset_position_m", "dry_thickness_um", "peak_stress_kpa"])

    def snapshot_at(self, position_m: float) -> FilmSnapshot:
        """Renderer snapshot of the parcel nearest ``position_m`` (seeded by its parcel id)."""
        i = int(np.argmin(np.abs(self.position_m - position_m)))
        return snapshot(self.slurry, self.films, i, seed=self.seed * 1_000_003 + int(self.parcel_id[i]))

    def camera_snapshot(self) -> FilmSnapshot:
        """Snapshot of the parcel under the surface camera."""
        return self.snapshot_at(self.config.camera.position_m)
