"""The observer/predictor of the drying line: `sim_line`'s film physics marched along the dryer.

This module is the WIRING side of the controller: it may import `sim_line` (the control law
in `controller._law` may not; it only sees the `Predictor` protocol defined there).

For the line's current conditions (web speed, wet thickness, zone air temperatures and
airflows, zone solvent load) and for a batch of K candidate recipes at once, a probe film
is carried from the coater through the dryer under frozen (steady) conditions with
`sim_line._physics.step_films`, vectorised over the K candidates. The march records where
the coating ends consolidation and where the solvent front enters the pores (the critical
point, when the capillary stress jumps), the peak of capillary / cracking stress and where
it occurs, where the coating is dry, and the residual solvent at the dryer exit.

Notes
-----
* The probe film is made uncrackable (toughness x 1e6) so that its capillary stress evolves
  as in an intact film; the ratio to the cracking stress of the nominal toughness is the
  *peak stress ratio*: >= 1 means the coating cracks (`sim_line` draws each parcel's
  toughness with a log-normal scatter of 1 %, so the crack probability is
  ``Phi(ln(ratio) / 0.01)``; the expected crack intensity is that probability times the
  model's plateau CIF).
* Zone air carries solvent (it is recirculated; the zone's exhaust / fresh air carries it
  away: vapour concentration = load / fresh air). Each candidate's fresh air is either the
  measured one (the line config's without a measurement) or, given an `ExhaustControl`,
  what the exhaust loop sets for the load. With measured zone solvent concentrations the
  march uses the measured load (kg/s) for every candidate (one pass: measurement feedback;
  on the virtual line it predicts the cracks of nearby recipes better than the model's own
  load); without them it iterates twice from clean air (two passes), like `sim_line.Line`'s
  fill. Leave the concentrations out for conditions far from the measured ones (another web
  speed: the load scales with it, and an exhaust at its minimum then leaves the air drier
  than the loop's target). The reported zone vapour is the candidate's own load over the
  fresh air it leads to.
* Time steps: ``time_step_s`` (the line's own step, 1 s) from shortly before the front
  enters the pores until the film is dry, where the stress and the exit residual are
  sensitive to the step; elsewhere steps of 1, 2, 4 .. ``time_step_s`` after each zone
  boundary (the film temperature settles) up to ``coarse_time_step_s``. Steps end on zone
  boundaries; the march stops once every candidate is dry. All K candidates share one step
  schedule, so a candidate's result in a batch agrees with its single prediction to within
  the step (ratio ~0.01), not bit for bit. Cost ~0.3-0.5 ms per step whatever K: 25 ms for
  one recipe, 40 ms for 336 (default recipe, 3 m/min, a loaded 2-core machine).
* Accuracy against `sim_line.Line` (tests/controller/test_predictor.py): critical point
  within ~0.1 m, stress ratio within ~0.01-0.03 (the line's parcels step on a fixed grid),
  dry / wet exit and cracks / no cracks agree on the default, the gentle and a wet recipe.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from sim_line import _properties as props
from sim_line._config import LineConfig, SlurryConfig, load_line
from sim_line._physics import (
    DryingEnvironment,
    FilmState,
    _cracking_stress_pa,
    capillary_stress_max_kpa,
    init_films,
    step_films,
)

from ._config import PredictorConfig
from ._law import LineConditions, Prediction
from ._law_inputs import ExhaustControl

__all__ = ["LinePredictor"]

F = NDArray[np.float64]

#: Log-normal scatter of the film toughness between parcels in `sim_line.init_films`.
TOUGHNESS_SCATTER = 0.01


class LinePredictor:
    """Drying-model predictor of a coating line (implements `controller._law.Predictor`).

    Parameters
    ----------
    line, slurry : LineConfig, SlurryConfig, optional
        The line and slurry model; default ``configs/line.yaml`` and its slurry.
    time_step_s : float
        Step around the critical point and during pore emptying, s.
    coarse_time_step_s : float
        Step while the film is far from its critical point, s.
    toughness_scatter : float
        Log-normal scatter of the film toughness (crack probability), default 0.01.

    Examples
    --------
    >>> from controller._law import LineConditions
    >>> pred = LinePredictor()
    >>> c = LineConditions(web_speed_m_min=3.0, wet_thickness_um=180.0,
    ...                    temperature_c=(50, 70, 120, 120), airflow_m3_h=(1000, 1500, 2500, 2000))
    >>> p = pred.predict(c)
    >>> bool(p.peak_stress_ratio[0] > 1.0), pred.zone_names[p.critical_zone[0]]
    (True, 'Z3')
    """

    def __init__(
        self,
        line: LineConfig | None = None,
        slurry: SlurryConfig | None = None,
        *,
        time_step_s: float = 1.0,
        coarse_time_step_s: float = 2.0,
        toughness_scatter: float = TOUGHNESS_SCATTER,
    ) -> None:
        if line is None or slurry is None:
            line, slurry = load_line()
        for name, value in (("time_step_s", time_step_s), ("coarse_time_step_s", coarse_time_step_s),
                            ("toughness_scatter", toughness_scatter)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a positive number, found {value!r}")
        self.line, self.slurry = line, slurry
        self.time_step_s = float(time_step_s)
        self.coarse_time_step_s = max(float(coarse_time_step_s), self.time_step_s)
        self.toughness_scatter = float(toughness_scatter)
        d = line.dryer
        self.zone_names: tuple[str, ...] = tuple(z.name for z in d.zones)
        lengths = np.array([z.length_m for z in d.zones], dtype=float)
        self.zone_start_m: F = d.entry_m + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        self.zone_end_m: F = self.zone_start_m + lengths
        self.dryer_exit_m = float(self.zone_end_m[-1])

    @classmethod
    def from_config(cls, config: PredictorConfig) -> LinePredictor:
        """Build from the ``predictor`` section of the controller configuration."""
        line, slurry = load_line(Path(config.line_config))
        return cls(line, slurry, time_step_s=config.time_step_s, coarse_time_step_s=config.coarse_time_step_s)

    # ------------------------------------------------------------------ public
    def zone_of(self, position_m: ArrayLike) -> NDArray[np.int64]:
        """Index of the zone containing each position (-1 outside the dryer or NaN)."""
        x = np.asarray(position_m, dtype=float)
        idx = np.searchsorted(self.zone_end_m, np.nan_to_num(x, nan=-1.0), side="right")
        inside = np.isfinite(x) & (x >= self.zone_start_m[0]) & (idx < len(self.zone_names))
        return np.where(inside, idx, -1).astype(np.int64)

    def predict(
        self,
        conditions: LineConditions,
        *,
        temperature_c: ArrayLike | None = None,
        airflow_m3_h: ArrayLike | None = None,
        wet_thickness_um: ArrayLike | None = None,
        exhaust: ExhaustControl | None = None,
    ) -> Prediction:
        """Predict the drying of the coating for the current conditions and K candidate recipes.

        Parameters
        ----------
        conditions : LineConditions
            Measured line state: web speed, wet thickness, zone air temperature and airflow
            (and optionally the zone solvent concentration).
        temperature_c, airflow_m3_h : array, shape (K, Z) or (Z,), optional
            Candidate zone air temperatures (C) and airflows (m3/h); default: the measured
            ones (K = 1).
        wet_thickness_um : array, shape (K,), optional
            Wet thickness of each candidate's coating, um; default: the measured one.
        exhaust : ExhaustControl, optional
            The zones' fresh air follows this loop (the solvent-load control); default: the
            measured fresh air (``conditions.fresh_air_m3_h``, else the line config's) for
            every candidate.

        Returns
        -------
        Prediction
            Arrays of shape (K,).
        """
        nz = len(self.zone_names)
        meas_t = _zone_vector(conditions.temperature_c, nz, "conditions.temperature_c")
        meas_q = _zone_vector(conditions.airflow_m3_h, nz, "conditions.airflow_m3_h")
        t_air = _candidates(meas_t if temperature_c is None else temperature_c, nz, "temperature_c")
        q_air = _candidates(meas_q if airflow_m3_h is None else airflow_m3_h, nz, "airflow_m3_h")
        if t_air.shape[0] != q_air.shape[0]:
            raise ValueError(f"temperature_c, airflow_m3_h: expected the same number of candidates, "
                             f"found {t_air.shape[0]} and {q_air.shape[0]}")
        speed = float(conditions.web_speed_m_min)
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"conditions.web_speed_m_min: expected a positive speed, found {speed}")
        wet = np.asarray(conditions.wet_thickness_um if wet_thickness_um is None else wet_thickness_um, dtype=float)
        try:
            wet = np.broadcast_to(wet, (t_air.shape[0],)).copy()
        except ValueError:
            raise ValueError(f"wet_thickness_um: expected one value or {t_air.shape[0]} values, found shape {wet.shape}") from None
        if not np.all(np.isfinite(wet) & (wet > 0)):
            raise ValueError(f"wet_thickness_um: expected positive thicknesses, found {wet.tolist()}")
        if conditions.fresh_air_m3_h is not None:
            fresh_meas = _zone_vector(conditions.fresh_air_m3_h, nz, "conditions.fresh_air_m3_h")
        else:
            fresh_meas = np.array([z.fresh_air_m3_h for z in self.line.dryer.zones], dtype=float)

        def fresh_for(load_kg_s: F) -> F:
            if exhaust is None:
                return np.broadcast_to(fresh_meas, t_air.shape).copy()
            return exhaust.fresh_air_m3_h(load_kg_s, t_air)

        if conditions.solvent_concentration_g_m3 is not None:
            conc = _zone_vector(conditions.solvent_concentration_g_m3, nz, "conditions.solvent_concentration_g_m3")
            load = np.broadcast_to(np.maximum(conc, 0.0) * 1e-3 * fresh_meas / 3600.0, t_air.shape).copy()
            march = self._march(t_air, q_air, speed, wet, load, fresh_for(load))
        else:
            first = self._march(t_air, q_air, speed, wet, np.zeros_like(t_air), fresh_for(np.zeros_like(t_air)), coarse=True)
            march = self._march(t_air, q_air, speed, wet, first["load_kg_s"], fresh_for(first["load_kg_s"]))
        fresh = fresh_for(march["load_kg_s"])
        march["zone_fresh_air_m3_h"] = fresh
        march["zone_solvent_g_m3"] = march["load_kg_s"] * 1e3 / np.maximum(fresh / 3600.0, 1e-9)
        return self._prediction(march)

    # ---------------------------------------------------------------- internals
    def _march(self, t_air: F, q_air: F, speed_m_min: float, wet_um: F, load_kg_s: F, fresh_air_m3_h: F, *,
               coarse: bool = False) -> dict[str, F]:
        line, slurry, d = self.line, self.slurry, self.line.dryer
        k, nz = t_air.shape
        rows = np.arange(k)
        h_top = np.maximum(d.heat_transfer_min_w_m2k, d.heat_transfer_ref_w_m2k * (q_air / d.airflow_ref_m3_h) ** d.heat_transfer_exponent)
        beta = props.mass_transfer_from_heat_m_s(slurry.solvent, h_top, t_air)
        fresh = np.maximum(fresh_air_m3_h / 3600.0, 1e-6)
        p_inf = load_kg_s / fresh * props.GAS_CONSTANT_J_MOL_K * (t_air + props.KELVIN) / (slurry.solvent.molar_mass_g_mol * 1e-3)
        amb = line.ambient_temperature_c
        amb_env = DryingEnvironment(
            air_temperature_c=np.full(k, amb),
            heat_transfer_w_m2k=np.full(k, d.heat_transfer_min_w_m2k),
            mass_transfer_m_s=props.mass_transfer_from_heat_m_s(slurry.solvent, np.full(k, d.heat_transfer_min_w_m2k), amb),
            vapour_pressure_pa=np.zeros(k),
        )
        k_nominal = np.full(k, slurry.film.fracture_toughness_pa_m05)
        films = init_films(slurry, wet_um, temperature_c=amb, rng=np.random.default_rng(0))
        films = dataclasses.replace(films, toughness_pa_m05=k_nominal * 1e6, spacing_um=np.ones(k))
        v = speed_m_min / 60.0
        bounds = np.concatenate([[0.0, d.entry_m], self.zone_end_m])
        new_load = np.zeros((k, nz))
        ratio_peak, peak_x, peak_temp = np.zeros(k), np.full(k, np.nan), np.full(k, amb)
        x, seg, since_boundary = 0.0, 0, 0
        liquid_exit = None
        substrate = line.web.substrate_heat_capacity_j_m2k
        while seg < len(bounds) - 1:
            end = bounds[seg + 1]
            remaining_s = (end - x) / v
            if remaining_s <= 1e-9:
                seg += 1
                since_boundary = 0
                continue
            fine = not coarse and self._near_critical(films)
            # the film temperature settles within seconds of a zone boundary: steps grow 1, 2, 4 .. x fine
            dt = self.time_step_s if fine else min(self.coarse_time_step_s, self.time_step_s * 2.0**since_boundary)
            since_boundary += 1
            if remaining_s < dt * 1.2:
                dt = remaining_s
            zone = seg - 1
            if zone < 0:
                env = amb_env
            else:
                env = DryingEnvironment(
                    air_temperature_c=t_air[:, zone],
                    heat_transfer_w_m2k=h_top[:, zone] * (1.0 + d.bottom_side_fraction),
                    mass_transfer_m_s=beta[:, zone],
                    vapour_pressure_pa=p_inf[:, zone],
                )
            films = step_films(slurry, films, env, dt, substrate_heat_capacity_j_m2k=substrate)
            x = x + v * dt if dt < remaining_s else end
            if zone >= 0:
                new_load[rows, zone] += films.evaporation_g_m2_s * 1e-3 * v * dt * line.web.width_m
            sigma_crit = _cracking_stress_pa(slurry, k_nominal, films.particle_layer_um, films.bubble_radius0_um)
            ratio = films.stress_pa / sigma_crit
            up = ratio > ratio_peak
            ratio_peak = np.where(up, ratio, ratio_peak)
            peak_x = np.where(up, x, peak_x)
            peak_temp = np.where(up, films.temperature_c, peak_temp)
            if np.all(~np.isnan(films.dry_s)):
                liquid_exit = np.zeros(k)
                break
        if liquid_exit is None:
            liquid_exit = films.liquid_um
        return {
            "films": films,  # type: ignore[dict-item]
            "speed_m_s": np.array(v),
            "load_kg_s": new_load,
            "ratio": ratio_peak,
            "peak_x": peak_x,
            "peak_temp": peak_temp,
            "liquid_exit_um": liquid_exit,
        }

    def _near_critical(self, films: FilmState) -> bool:
        """True while a film empties its pores, or its front enters them within ~2.5 coarse steps."""
        waiting = np.isnan(films.front_entry_s)
        if np.any(~waiting & np.isnan(films.dry_s)):
            return True
        pore_liquid = films.consolidated_layer_um - films.solids_um
        to_entry_um = films.liquid_um - pore_liquid
        rate_um_s = films.evaporation_g_m2_s * 1e3 / self.slurry.solvent.density_kg_m3
        soon = waiting & (to_entry_um <= rate_um_s * 2.5 * self.coarse_time_step_s)
        return bool(np.any(soon))

    def _prediction(self, m: dict) -> Prediction:
        films: FilmState = m["films"]
        slurry = self.slurry
        v = float(m["speed_m_s"])
        entry_m = v * films.front_entry_s
        cons_m = v * films.consolidation_end_s
        dry_m = v * films.dry_s
        ratio = m["ratio"]
        with np.errstate(divide="ignore"):
            p_crack = ndtr(np.log(np.maximum(ratio, 1e-12)) / self.toughness_scatter)
        film = slurry.film
        sigma_max = capillary_stress_max_kpa(slurry, m["peak_temp"]) * 1e3
        h_c_min = (film.fracture_toughness_pa_m05 / (film.channel_crack_factor * sigma_max)) ** 2 * 1e6
        plateau = film.cif_max * np.clip(1.0 - (h_c_min / films.consolidated_layer_um) ** film.cif_thickness_exponent, 0.0, 1.0)
        cif_3d = p_crack * np.minimum(plateau, 0.9)
        return Prediction(
            consolidation_end_m=cons_m,
            critical_point_m=entry_m,
            critical_zone=self.zone_of(entry_m),
            peak_stress_ratio=ratio,
            peak_stress_m=m["peak_x"],
            peak_zone=self.zone_of(m["peak_x"]),
            dry_position_m=dry_m,
            exit_residual_solvent_g_m2=m["liquid_exit_um"] * slurry.solvent.density_kg_m3 * 1e-3,
            crack_probability=p_crack,
            cif_3d=cif_3d,
            surface_cif=np.minimum(film.surface_cif_ratio * cif_3d, 0.95),
            zone_solvent_g_m3=m["zone_solvent_g_m3"],
            zone_fresh_air_m3_h=m["zone_fresh_air_m3_h"],
        )


def _zone_vector(values: Sequence[float] | ArrayLike, nz: int, name: str) -> F:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (nz,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected {nz} finite values (one per zone), found {arr.tolist()}")
    return arr


def _candidates(values: ArrayLike, nz: int, name: str) -> F:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != nz or arr.shape[0] < 1 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected shape (K, {nz}) of finite values, found shape {arr.shape}")
    return arr
