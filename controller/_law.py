"""Crack-aware drying control law: a pure, replayable step function.

``ControlLaw(config, predictor).step(state, inputs, t_s) -> StepResult(state, setpoints, decisions)``
never mutates its arguments and reads no clock, file or global: the same states, inputs and
times always give the same results, so a recorded log can be replayed (`replay`).

Structure (a cascade)
---------------------
* **Inner loops** (every ``zones[].sample_time_s``): per zone a PID loop on the zone air
  temperature and one on the airflow (simple-pid). Each loop's command (the set-point sent to
  the zone's heater / fan drive) is ``reference + PID trim``: the reference is the
  supervisor's target ramped at the zone's slew limit, the PID trims the command so that the
  *measured* zone air follows the reference (heater offsets, faults). Output limits = the
  zone's bounds; the command is slew-limited; fixed sample time; anti-windup by conditional
  integration: the integral is clamped to the output limits (simple-pid) and not integrated
  while the output is saturated in the error's direction, while the slew limit holds the
  command or while the reference ramps; derivative on measurement; bumpless auto/manual
  transfer (``Inputs.manual``) and a restart after the safe state from the measured zone air
  (bumpless for the plant: a short sensor dropout does not cool the dryer for minutes). The state of each
  loop (integral, last input, P/I/D terms) lives in the immutable `LoopState`; a simple-pid
  `PID` is rebuilt from it at every sample.
* **Solvent load** (every zone sample): a third loop per zone drives the zone's exhaust
  (fresh air). Its target dilutes the solvent the zone evaporates to
  ``solvent_load.target_lel_pct`` of the lower explosive limit (LEL) at the zone's air
  temperature: measured load (vapour concentration x measured fresh air) over the target
  concentration, and while a supervisor move takes effect (until ``estimate_dead_time_s``
  after the move and after the loops reached it) at least the fresh air the model predicts
  for the plan (feedforward: heaters lag, the zone air takes its volume / fresh air to show
  a new load); within the exhaust's limits, with the same PID trim, slew limit (closing
  slower than opening), anti-windup and manual mode as the other loops.
* **Supervisor** (every ``supervisor.period_s``): a drying model (the `Predictor`, the same
  physics as `sim_line`) predicts, for the current plan (the targets) and for the measured
  state, where the coating's critical point lies (the solvent front entering the pores at
  the end of consolidation), the peak capillary / cracking stress ratio and where it occurs,
  and the residual solvent at the dryer exit; every recipe is judged worst-case over the wet
  thickness +- ``thickness_uncertainty_um`` (robust to the critical point shifting across a
  zone boundary). The crack risk is high when the predicted stress ratio (plus a model
  margin) reaches ``stress_ratio_up``, when the camera / CT risk score or onset says so, or
  when a crack intensity exceeds the target (``target_surface_cif``, 0 by default); it is
  low when all of them are below their ``*_down`` thresholds (hysteresis).

  - Risk high -> lower the drying rate where the stress peaks (at or after the critical
    point): the candidate moves are one step of airflow down / airflow and temperature down
    / airflow down and temperature up (slower drying, warmer film: lower surface tension) /
    temperature down, on that zone or on it and the zones after it, each alone or with a
    compensating raise of another zone (or of all zones before the critical one); plus
    multi-stage moves (the electrode-drying practice: fast while the film shrinks, slow from
    the critical point on): the zones from a boundary on several airflow steps down
    (optionally warmer), the zones before it faster. The model picks the candidate with the
    lowest stress ratio (or the crack intensity closest to a non-zero target) that keeps the
    predicted exit residual below ``limit - margin``; no such candidate -> a HOLD decision
    suggesting a slower line.
  - Every move must keep the predicted solvent load within what the exhaust can dilute to
    ``solvent_load.plan_limit_lel_pct`` (the model's zone loads, the exhaust loop's steady
    state); a plan that does not (thicker coating, an exhaust limit) is first moved to the
    candidate with the lowest load that keeps the exit dry and the crack risk no higher.
  - Plan predicted wet at the exit -> raise the drying rate first (one step, the candidate
    that dries without raising the crack risk).
  - Risk low for ``raise_hold_s`` -> one step back towards the nominal recipe, only if the
    model predicts the risk stays low and the exit dry (else a HOLD decision).
  - Moves wait ``lower_hold_s`` and until the zones reached the plan (or
    ``estimate_dead_time_s``); no lowering while the measured state is predicted wet at the
    exit; while a raised loop is still ramping, lowered loops keep their reference
    (dry-first sequencing, so that transitions do not leave the coating wet). Camera / CT
    estimates see coating that passed the critical zone before the last move, so they count
    only ``estimate_dead_time_s`` after it and after the zones reached the moved recipe (at
    most two dead times after the move): coating dried during a transition says nothing
    about the recipe; if they then show a risk the model did not predict, the model margin
    grows by ``model_margin_step``.
  - Re-planning: with each lowering move (at most every ``replan_hold_s``) the whole recipe
    is also re-planned on the model (`_Supervisor._replan`: staged recipes, then a pattern
    search, at most ``replan_evaluations`` recipes, fewer on a slower web); the jump is taken
    when it beats the best local move by ``replan_min_improvement``. Every recipe is judged
    worst case over the thickness and over +- ``temperature_uncertainty_c`` of zone air, and
    must dry ``exit_dry_margin_m`` before the exit.
  - Web speed (``web_speed.control``), the last resort: when cracks are predicted (worst
    case >= ``slow_above_stress_ratio``) or seen and no recipe move helps (nor dries a wet
    exit), the fastest slower speed whose re-planned recipe is predicted crack-free
    (bisection over ``max_steps`` speeds); one step back up after ``raise_hold_s`` of low
    risk; the command ramps at ``slew_m_min_per_s``; camera / CT dead times scale with
    nominal / measured speed. Sequencing: slowing down, the states in between are judged
    (`_Replanner._slowing_order`): the web first (lowered loops keep their reference until
    it has) when the old recipe on the slower web is predicted crack-free and dry, else the
    recipe first when the new recipe on the current web is, else both together when the
    model predicts their intermediate states safe (the web follows the measured progress of
    the zone air, `_progress`), else the web first; recipe-first and together last a dead
    time after the move at most. Speeding up, the recipe's loops reach their targets first
    and the web follows.
* **Safety**: missing or stale inputs (zone solvent readings included when
  ``solvent_load.required``) -> the configured safe state (no prediction, no guess), with a
  decision naming the inputs. Interlock: a zone's measured vapour at or above
  ``solvent_load.trip_lel_pct`` of the LEL -> the safe state (heaters down, fans and exhausts
  purging) until every zone is back below ``target_lel_pct``.

Every decision has a machine-readable `Action` and `Reason` and a human text.

Layout: this module holds `ControlLaw` (step, safety, operator, inner-loop scheduling) and
`replay`, and re-exports the public names of ``_law_inputs`` (inputs, `Predictor`),
``_law_state`` (decisions, set-points, state), ``_law_loops`` (PID loops),
``_law_supervisor`` (supervisor mixin) and ``_law_replay`` (logs and decision CSVs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ._config import ControllerConfig, ZoneConfig
from ._law_inputs import (
    LOOPS,
    ExhaustControl,
    Inputs,
    LabEstimate,
    LineConditions,
    ManualOverride,
    PlanPrediction,
    Prediction,
    Predictor,
    Reading,
    SurfaceEstimate,
    ZoneMeasurement,
    _finite,
    lel_g_m3_at,
)
from ._law_loops import LoopState, _hold, _pid, _restart, _resume
from ._law_replay import decisions_frame, inputs_from_row, write_decisions_csv
from ._law_state import (DECISION_COLUMNS, Action, Decision, LawState, Mode, Reason, Setpoint, SlowDown, StepResult,
                         ZoneState)
from ._law_supervisor import _Supervisor

__all__ = [
    "DECISION_COLUMNS",
    "Action",
    "ControlLaw",
    "Decision",
    "ExhaustControl",
    "Inputs",
    "LabEstimate",
    "LawState",
    "LineConditions",
    "ManualOverride",
    "Mode",
    "PlanPrediction",
    "Prediction",
    "Predictor",
    "Reading",
    "Reason",
    "Setpoint",
    "StepResult",
    "SurfaceEstimate",
    "ZoneMeasurement",
    "decisions_frame",
    "inputs_from_row",
    "replay",
    "write_decisions_csv",
]


# =============================================================================== the law
class ControlLaw(_Supervisor):
    """Crack-aware drying control law (pure step function; see the module docstring).

    Parameters
    ----------
    config : ControllerConfig
        Validated controller configuration.
    predictor : Predictor
        Drying model; its ``zone_names`` must equal the configuration's.

    Examples
    --------
    >>> law = ControlLaw(config, predictor)                      # doctest: +SKIP
    >>> state = law.initial_state(inputs)                        # doctest: +SKIP
    >>> result = law.step(state, inputs, t_s=1.0)                # doctest: +SKIP
    >>> result.setpoints["Z3"].temperature_c, result.decisions   # doctest: +SKIP
    """

    def __init__(self, config: ControllerConfig, predictor: Predictor) -> None:
        names = tuple(getattr(predictor, "zone_names", ()))
        if names != config.zone_names:
            raise ValueError(f"predictor.zone_names: expected the configured zones {list(config.zone_names)}, found {list(names)}")
        self.config = config
        self.predictor = predictor
        self._names = config.zone_names
        self._nominal_t = np.array([z.nominal_temperature_c for z in config.zones])
        self._nominal_q = np.array([z.nominal_airflow_m3_h for z in config.zones])
        sl = config.solvent_load
        self._exhaust = ExhaustControl(sl.lel_vol_pct, sl.molar_mass_g_mol, sl.target_lel_pct / 100.0,
                                       tuple(z.fresh_air_limits_m3_h for z in config.zones))

    # ------------------------------------------------------------------ state
    def initial_state(self, inputs: Inputs | None = None) -> LawState:
        """Targets at the nominal recipe; commands start from the measured zone values (bumpless)."""
        zones = []
        for z in self.config.zones:
            m = inputs.zones.get(z.name) if inputs is not None else None
            t_cmd = float(np.clip(m.temperature_c if m else z.nominal_temperature_c, *z.temperature_limits_c))
            q_cmd = float(np.clip(m.airflow_m3_h if m else z.nominal_airflow_m3_h, *z.airflow_limits_m3_h))
            f = m.fresh_air_m3_h if m is not None and m.fresh_air_m3_h is not None else z.nominal_fresh_air_m3_h
            f_cmd = float(np.clip(f, *z.fresh_air_limits_m3_h))
            zones.append(ZoneState(z.nominal_temperature_c, z.nominal_airflow_m3_h, LoopState(True, t_cmd, t_cmd),
                                   LoopState(True, q_cmd, q_cmd), LoopState(True, f_cmd, f_cmd)))
        speed = None
        ws = self.config.web_speed
        if ws.control:  # start from the measured speed (bumpless), within the limits
            measured = inputs.web_speed_m_min if inputs is not None else None
            speed = float(np.clip(measured.value if measured is not None else ws.nominal_m_min, *ws.limits_m_min))
        return LawState(t_s=None, mode=Mode.AUTO, zones=tuple(zones), speed_target_m_min=speed, speed_command_m_min=speed)

    # ------------------------------------------------------------------- step
    def step(self, state: LawState, inputs: Inputs, t_s: float) -> StepResult:
        """Advance the law to time ``t_s`` with ``inputs``; pure (no clock, no mutation).

        Parameters
        ----------
        state : LawState
            From `initial_state` or the previous step.
        inputs : Inputs
            Latest measurements and estimates (each with its own timestamp).
        t_s : float
            Controller time, s (never decreasing).

        Returns
        -------
        StepResult

        Raises
        ------
        ValueError
            If ``t_s`` is not finite or earlier than the state's time.
        """
        _finite("t_s", t_s)
        if state.t_s is not None and t_s < state.t_s:
            raise ValueError(f"t_s: expected a time >= the state's time {state.t_s}, found {t_s}")
        problems = self._input_problems(inputs, t_s) or self._solvent_trip(state, inputs)
        if problems:
            return self._safe_state(state, problems, t_s)
        decisions: list[Decision] = []
        if state.mode is Mode.SAFE:
            tripped = any(n.endswith(".solvent_lel") for n in state.safe_inputs)
            zones = []
            for z, zs in zip(self.config.zones, state.zones):
                m = inputs.zones[z.name]
                zones.append(replace(zs, temperature=_resume(zs.temperature, m.temperature_c, z.temperature_limits_c),
                                     airflow=_resume(zs.airflow, m.airflow_m3_h, z.airflow_limits_m3_h),
                                     fresh_air=_resume(zs.fresh_air, m.fresh_air_m3_h, z.fresh_air_limits_m3_h)))
            state = replace(state, mode=Mode.AUTO, safe_inputs=(), risk_low_since_s=None, zones=tuple(zones))
            text = ("every zone's solvent vapour below the target again" if tripped else "all inputs fresh again")
            decisions.append(Decision(t_s, Action.RESUME, Reason.INPUTS_RESTORED,
                                      f"{text}: leaving the safe state, ramping back to the plan"))
        state = self._operator(state, inputs, t_s, decisions)
        last = state.last_supervisor_s
        if last is None or t_s - last >= self.config.supervisor.period_s - 1e-9:
            state = self._supervise(replace(state, last_supervisor_s=t_s), inputs, t_s, decisions)
        state = self._loops(state, inputs, t_s)
        return StepResult(replace(state, t_s=t_s), self._setpoints(state), tuple(decisions), state.speed_command_m_min)

    # ----------------------------------------------------------------- safety
    def _input_problems(self, inputs: Inputs, t_s: float) -> list[tuple[str, Reason]]:
        limit = self.config.safe_state.stale_after_s
        out: list[tuple[str, Reason]] = []

        def check(name: str, stamp: float | None, max_age: float) -> None:
            if stamp is None:
                out.append((name, Reason.INPUT_MISSING))
            elif abs(t_s - stamp) > max_age:  # too old, or from a clock far in the future
                out.append((name, Reason.INPUT_STALE))

        for name in self._names:
            m = inputs.zones.get(name)
            check(f"{name}.temperature_c", m.temperature_t_s if m else None, limit)
            check(f"{name}.airflow_m3_h", m.airflow_t_s if m else None, limit)
        if self.config.solvent_load.required:
            for name in self._names:
                m = inputs.zones.get(name)
                if m is not None:  # a missing zone is named above
                    check(f"{name}.solvent_concentration_g_m3",
                          m.temperature_t_s if m.solvent_concentration_g_m3 is not None else None, limit)
        check("web_speed_m_min", inputs.web_speed_m_min.t_s if inputs.web_speed_m_min else None, limit)
        check("wet_thickness_um", inputs.wet_thickness_um.t_s if inputs.wet_thickness_um else None, limit)
        surface_limit = self.config.safe_state.surface_estimate_stale_after_s
        if surface_limit is not None:
            check("surface_estimate", inputs.surface.t_s if inputs.surface else None, surface_limit)
        return out

    def _measured_lel(self, inputs: Inputs) -> dict[str, float]:
        """Measured solvent vapour / LEL at the zone's air temperature, per zone that reports it."""
        sl = self.config.solvent_load
        out = {}
        for name in self._names:
            m = inputs.zones.get(name)
            if m is not None and m.solvent_concentration_g_m3 is not None:
                lel = float(lel_g_m3_at(sl.lel_vol_pct, sl.molar_mass_g_mol, m.temperature_c))
                out[name] = m.solvent_concentration_g_m3 / lel
        return out

    def _solvent_trip(self, state: LawState, inputs: Inputs) -> list[tuple[str, Reason]]:
        """Interlock: zones at or above the trip level; latched (naming the zones that tripped it) until
        every zone is below the target."""
        sl = self.config.solvent_load
        lel = self._measured_lel(inputs)
        tripped = {n.split(".")[0] for n in state.safe_inputs if n.endswith(".solvent_lel")} \
            if state.mode is Mode.SAFE else set()
        names = {n for n, f in lel.items() if 100.0 * f >= sl.trip_lel_pct}
        if tripped and any(100.0 * f >= sl.target_lel_pct for f in lel.values()):
            names |= tripped
        return [(f"{n}.solvent_lel", Reason.SOLVENT_LOAD_TRIP) for n in self._names if n in names]

    def _safe_state(self, state: LawState, problems: list[tuple[str, Reason]], t_s: float) -> StepResult:
        safe = self.config.safe_state.zones
        zones = []
        for z, zs in zip(self.config.zones, state.zones):
            s = safe[z.name]
            zones.append(replace(zs, temperature=_hold(zs.temperature, s.temperature_c),
                                 airflow=_hold(zs.airflow, s.airflow_m3_h), fresh_air=_hold(zs.fresh_air, s.fresh_air_m3_h)))
        names = tuple(n for n, _ in problems)
        decisions: tuple[Decision, ...] = ()
        if state.mode is not Mode.SAFE or names != state.safe_inputs:
            if any(r is Reason.SOLVENT_LOAD_TRIP for _, r in problems):
                sl = self.config.solvent_load
                reason = Reason.SOLVENT_LOAD_TRIP
                text = (f"interlock: solvent vapour at or above {sl.trip_lel_pct:g} % of the LEL in "
                        + ", ".join(n.split(".")[0] for n in names)
                        + f": applying the configured safe state (heaters down, fans and exhausts purging) "
                          f"until every zone is below {sl.target_lel_pct:g} %")
            else:
                reason = Reason.INPUT_STALE if any(r is Reason.INPUT_STALE for _, r in problems) else Reason.INPUT_MISSING
                text = ("missing or stale inputs (" + ", ".join(f"{n}: {r.value.split('_')[-1]}" for n, r in problems)
                        + "): applying the configured safe state to every zone")
            decisions = (Decision(t_s, Action.SAFE_STATE, reason, text, inputs=names),)
        new = replace(state, t_s=t_s, mode=Mode.SAFE, zones=tuple(zones), safe_inputs=names, risk_low_since_s=None)
        return StepResult(new, self._setpoints(new), decisions, new.speed_command_m_min)  # the speed is held

    # --------------------------------------------------------------- operator
    def _operator(self, state: LawState, inputs: Inputs, t_s: float, decisions: list[Decision]) -> LawState:
        wanted: dict[tuple[str, str], ManualOverride] = {}
        for m in inputs.manual:
            if m.zone not in self._names:
                raise ValueError(f"manual.zone: expected one of {list(self._names)}, found {m.zone!r}")
            wanted[(m.zone, m.loop)] = m
        zones = list(state.zones)
        for i, z in enumerate(self.config.zones):
            zs = zones[i]
            for loop in LOOPS:
                ls: LoopState = getattr(zs, loop)
                lo, hi = getattr(z, {"temperature": "temperature_limits_c", "airflow": "airflow_limits_m3_h",
                                     "fresh_air": "fresh_air_limits_m3_h"}[loop])
                unit = "C" if loop == "temperature" else "m3/h"
                m = wanted.get((z.name, loop))
                if m is not None:
                    out = ls.command if m.output is None else float(np.clip(m.output, lo, hi))
                    if ls.auto:
                        held = "holding the last command" if m.output is None else "operator output"
                        decisions.append(Decision(t_s, Action.MANUAL, Reason.OPERATOR, zone=z.name,
                                                  text=f"{z.name} {loop}: manual, {held} {out:.4g} {unit}"))
                    ls = replace(ls, auto=False, command=out, last_input=None, last_update_t_s=t_s)
                elif not ls.auto:
                    decisions.append(Decision(t_s, Action.AUTO, Reason.OPERATOR, zone=z.name,
                                              text=f"{z.name} {loop}: back to auto, starting from the manual output "
                                                   f"{ls.command:.4g} {unit}"))
                    ls = replace(_restart(ls), auto=True)
                    if loop != "fresh_air":  # the fresh-air loop's target is the solvent-load loop's
                        target = "target_temperature_c" if loop == "temperature" else "target_airflow_m3_h"
                        zs = replace(zs, **{target: ls.command})
                zs = replace(zs, **{loop: ls})
            zones[i] = zs
        return replace(state, zones=tuple(zones))

    # ------------------------------------------------------------ inner loops
    def _loops(self, state: LawState, inputs: Inputs, t_s: float) -> LawState:
        if state.mode is Mode.SAFE:
            return state
        dt = 0.0 if state.t_s is None else t_s - state.t_s
        # dry-first sequencing: a lowered loop keeps its reference while raises elsewhere take effect, and
        # while the web still slows down (a gentle recipe on a fast web would leave the coating wet) unless
        # the slow-down was planned recipe first or together
        dead_s = self._dead_time_s(inputs)
        sd = state.slow_down
        paced = sd is not None and sd.order != "web" and state.last_speed_s is not None \
            and t_s - state.last_speed_s < dead_s
        wait = self._raise_pending(state, inputs, t_s) or (self._slowing(state, inputs) is True and not paced)
        if not self._settled(state, inputs):  # the recipe still moves: the zone loads follow for a dead time after
            state = replace(state, transition_until_s=t_s + dead_s)
        zones = []
        for z, zs in zip(self.config.zones, state.zones):
            m = inputs.zones[z.name]
            t_target = max(zs.target_temperature_c, zs.temperature.reference) if wait else zs.target_temperature_c
            q_target = max(zs.target_airflow_m3_h, zs.airflow.reference) if wait else zs.target_airflow_m3_h
            temp = _pid(zs.temperature, t_target, m.temperature_c, z.temperature_pid,
                        z.temperature_limits_c, z.temperature_slew_c_per_s, z.sample_time_s, t_s, dt)
            air = _pid(zs.airflow, q_target, m.airflow_m3_h, z.airflow_pid,
                       z.airflow_limits_m3_h, z.airflow_slew_m3_h_per_s, z.sample_time_s, t_s, dt)
            fresh_measured = m.fresh_air_m3_h if m.fresh_air_m3_h is not None else zs.fresh_air.command
            fresh = _pid(zs.fresh_air, self._fresh_air_target(state, z, zs, m, t_s, dead_s), fresh_measured,
                         z.fresh_air_pid, z.fresh_air_limits_m3_h, z.fresh_air_slew_m3_h_per_s, z.sample_time_s, t_s, dt,
                         slew_down_per_s=z.fresh_air_close_slew_m3_h_per_s)
            zones.append(replace(zs, temperature=temp, airflow=air, fresh_air=fresh))
        state = replace(state, zones=tuple(zones))
        if state.speed_target_m_min is not None and state.speed_command_m_min is not None:
            step = self.config.web_speed.slew_m_min_per_s * dt
            recipe_there = self._settled(state, inputs, speed=False)
            up = step if recipe_there and not wait else 0.0  # faster once the recipe is there
            goal = state.speed_target_m_min
            if paced and not recipe_there and sd is not None and goal < state.speed_command_m_min:
                # slower: recipe first, the web waits; together, the web follows the zone air's progress
                done = self._progress(state, inputs, sd) if sd.order == "together" else 0.0
                goal = max(goal, sd.from_speed_m_min + done * (goal - sd.from_speed_m_min))
            cmd = state.speed_command_m_min + float(np.clip(goal - state.speed_command_m_min, -step, up))
            state = replace(state, speed_command_m_min=cmd)
        return state

    def _progress(self, state: LawState, inputs: Inputs, sd: SlowDown) -> float:
        """How far the zone air got from where a slow-down started to its new targets, 0..1 (the slowest loop;
        loops that move less than their settle tolerance do not count)."""
        done = 1.0
        for i, kind, _, target, value, tol in self._recipe_loops(state, inputs):
            start = (sd.from_temperature_c, sd.from_airflow_m3_h)[kind][i]
            if abs(target - start) > tol:
                done = min(done, float(np.clip((value - start) / (target - start), 0.0, 1.0)))
        return done

    def _fresh_air_target(self, state: LawState, z: ZoneConfig, zs: ZoneState, m: ZoneMeasurement, t_s: float,
                          dead_s: float) -> float:
        """The solvent-load loop: fresh air that dilutes the zone's load to the target % LEL, m3/h."""
        wanted = []
        if m.solvent_concentration_g_m3 is not None:
            fresh_now = m.fresh_air_m3_h if m.fresh_air_m3_h is not None else zs.fresh_air.command
            load_g_h = m.solvent_concentration_g_m3 * fresh_now
            target_g_m3 = self._exhaust.target_lel_fraction * float(self._exhaust.lel_g_m3(m.temperature_c))
            wanted.append(load_g_h / target_g_m3)
        plan = state.plan
        moving = (state.last_move_s is not None and t_s - state.last_move_s < dead_s) or (
            state.transition_until_s is not None and t_s < state.transition_until_s)
        if plan is not None and plan.zone_fresh_air_m3_h and (moving or not wanted):
            wanted.append(plan.zone_fresh_air_m3_h[self._names.index(z.name)])
        if not wanted:
            return zs.fresh_air.reference  # nothing measured or predicted: hold
        return float(np.clip(max(wanted), *z.fresh_air_limits_m3_h))

    def _raise_pending(self, state: LawState, inputs: Inputs, t_s: float) -> bool:
        """True while a loop still ramps up to a raised target (bounded by the dead time after a move)."""
        if state.last_move_s is None or t_s - state.last_move_s >= self._dead_time_s(inputs):
            return False
        return any(ls.auto and target > ls.reference - tol and (target > ls.reference + 1e-9 or value < ls.reference - tol)
                   for _, _, ls, target, value, tol in self._recipe_loops(state, inputs))

    def _setpoints(self, state: LawState) -> dict[str, Setpoint]:
        return {n: Setpoint(zs.temperature.command, zs.airflow.command, zs.fresh_air.command)
                for n, zs in zip(self._names, state.zones)}


def replay(log_csv: str | Path, config: ControllerConfig, predictor: Predictor) -> pd.DataFrame:
    """Run the control law over a recorded log and return the decisions it would have made.

    Parameters
    ----------
    log_csv : path
        One row per control step, in time order. Columns (units in the names; an empty cell
        is a missing reading; ``*_t_s`` columns are optional and default to the row's
        ``t_s``): ``t_s``; ``web_speed_m_min``, ``wet_thickness_um``; per zone
        ``<Z>_temperature_c``, ``<Z>_airflow_m3_h``, ``<Z>_solvent_concentration_g_m3``
        and ``<Z>_fresh_air_m3_h`` (optional); ``surface_risk_score``, ``surface_onset``, ``surface_cif``,
        ``surface_sites_m`` (positions along the web, ``;``-separated), ``surface_t_s``;
        ``lab_risk_score``, ``lab_onset``, ``lab_cif_3d``, ``lab_t_s``; manual overrides
        ``<Z>_temperature_manual_c`` / ``<Z>_airflow_manual_m3_h`` /
        ``<Z>_fresh_air_manual_m3_h`` (a value or ``hold``).
        The virtual line's ``timeseries.csv`` has this layout.
    config : ControllerConfig
    predictor : Predictor

    Returns
    -------
    pandas.DataFrame
        `DECISION_COLUMNS`, one row per decision; ``attrs["steps"]`` is the number of steps.
    """
    log = pd.read_csv(log_csv, dtype=object, keep_default_na=False)
    law = ControlLaw(config, predictor)
    state = None
    decisions: list[Decision] = []
    for row in log.to_dict("records"):
        t, inputs = inputs_from_row(row, config.zone_names)
        if state is None:
            state = law.initial_state(inputs)
        result = law.step(state, inputs, t)
        state = result.state
        decisions.extend(result.decisions)
    df = decisions_frame(decisions)
    df.attrs["steps"] = len(log)
    return df
