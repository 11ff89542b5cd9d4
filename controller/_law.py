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
  transfer (``Inputs.manual``) and bumpless restart after the safe state. The state of each
  loop (integral, last input, P/I/D terms) lives in the immutable `LoopState`; a simple-pid
  `PID` is rebuilt from it at every sample.
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
  - Plan predicted wet at the exit -> raise the drying rate first (one step, the candidate
    that dries without raising the crack risk).
  - Risk low for ``raise_hold_s`` -> one step back towards the nominal recipe, only if the
    model predicts the risk stays low and the exit dry (else a HOLD decision).
  - Moves wait ``lower_hold_s`` and until the zones reached the plan (or
    ``estimate_dead_time_s``); no lowering while the measured state is predicted wet at the
    exit; while a raised loop is still ramping, lowered loops keep their reference
    (dry-first sequencing, so that transitions do not leave the coating wet). Camera / CT
    estimates see coating that passed the critical zone before the last move, so they count
    only ``estimate_dead_time_s`` after it; if they then show a risk the model did not
    predict, the model margin grows by ``model_margin_step``.
* **Safety**: missing or stale inputs -> the configured safe state (no prediction, no
  guess), with a decision naming the inputs.

Every decision has a machine-readable `Action` and `Reason` and a human text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import product
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from simple_pid import PID

from ._config import ControllerConfig, PidGains

__all__ = [
    "DECISION_COLUMNS",
    "Action",
    "ControlLaw",
    "Decision",
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

F = NDArray[np.float64]
Loop = Literal["temperature", "airflow"]


# =============================================================================== predictor
@dataclass(frozen=True)
class LineConditions:
    """Measured line state handed to the predictor (zones in the configuration's order)."""

    web_speed_m_min: float
    wet_thickness_um: float
    temperature_c: tuple[float, ...]
    airflow_m3_h: tuple[float, ...]
    solvent_concentration_g_m3: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Prediction:
    """Predicted drying of the coating for K recipes; every field has shape (K,).

    Positions are along the web (coater at 0), m; NaN: not reached before the dryer exit.
    Zone indices are -1 outside the dryer.
    """

    consolidation_end_m: F
    critical_point_m: F  # the solvent front enters the pores: capillary stress jumps
    critical_zone: NDArray[np.int64]
    peak_stress_ratio: F  # peak capillary stress / cracking stress (>= 1: cracks)
    peak_stress_m: F
    peak_zone: NDArray[np.int64]
    dry_position_m: F
    exit_residual_solvent_g_m2: F  # at the dryer exit
    crack_probability: F
    cif_3d: F  # expected 3D crack intensity
    surface_cif: F  # expected surface (2D top) crack intensity


class Predictor(Protocol):
    """What the law needs from a drying model (`controller._predictor.LinePredictor`; fakes in tests)."""

    zone_names: tuple[str, ...]

    def predict(self, conditions: LineConditions, *, temperature_c: ArrayLike | None = None,
                airflow_m3_h: ArrayLike | None = None, wet_thickness_um: ArrayLike | None = None) -> Prediction:
        """Predict for K candidate recipes (arrays (K, Z)) and wet thicknesses (K,)."""
        ...


@dataclass(frozen=True)
class PlanPrediction:
    """The model's view of one recipe (worst case over the thickness variants)."""

    critical_point_m: float
    critical_zone: str | None
    peak_stress_ratio: float
    peak_stress_m: float
    peak_zone: str | None
    dry_position_m: float
    exit_residual_solvent_g_m2: float
    crack_probability: float
    surface_cif: float


# =============================================================================== inputs
def _finite(name: str, value: float, *, lo: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, found {value!r}")
    if lo is not None and value < lo:
        raise ValueError(f"{name}: expected a number >= {lo}, found {value!r}")


@dataclass(frozen=True)
class Reading:
    """One timestamped scalar measurement (value in the unit named by the field holding it)."""

    value: float
    t_s: float

    def __post_init__(self) -> None:
        _finite("value", self.value)
        _finite("t_s", self.t_s)


@dataclass(frozen=True)
class ZoneMeasurement:
    """Measured air temperature and airflow of one zone, each with its timestamp (s)."""

    temperature_c: float
    airflow_m3_h: float
    temperature_t_s: float
    airflow_t_s: float
    solvent_concentration_g_m3: float | None = None

    def __post_init__(self) -> None:
        _finite("temperature_c", self.temperature_c, lo=-273.15)
        _finite("airflow_m3_h", self.airflow_m3_h, lo=0.0)
        _finite("temperature_t_s", self.temperature_t_s)
        _finite("airflow_t_s", self.airflow_t_s)
        if self.solvent_concentration_g_m3 is not None:
            _finite("solvent_concentration_g_m3", self.solvent_concentration_g_m3, lo=0.0)


@dataclass(frozen=True)
class SurfaceEstimate:
    """Latest surface crack estimate (vision onset detector on the camera frames)."""

    t_s: float
    risk_score: float
    onset: bool = False
    surface_cif: float | None = None
    site_positions_m: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _finite("t_s", self.t_s)
        _finite("risk_score", self.risk_score)
        if self.surface_cif is not None:
            _finite("surface_cif", self.surface_cif, lo=0.0)
        for i, x in enumerate(self.site_positions_m):
            _finite(f"site_positions_m[{i}]", x)


@dataclass(frozen=True)
class LabEstimate:
    """Latest lab CT estimate (tomography onset detector); optional input."""

    t_s: float
    risk_score: float
    onset: bool = False
    cif_3d: float | None = None

    def __post_init__(self) -> None:
        _finite("t_s", self.t_s)
        _finite("risk_score", self.risk_score)
        if self.cif_3d is not None:
            _finite("cif_3d", self.cif_3d, lo=0.0)


@dataclass(frozen=True)
class ManualOverride:
    """The operator holds one loop in manual: ``output`` (None: hold the last command)."""

    zone: str
    loop: Loop
    output: float | None = None

    def __post_init__(self) -> None:
        if self.loop not in ("temperature", "airflow"):
            raise ValueError(f"loop: expected 'temperature' or 'airflow', found {self.loop!r}")
        if self.output is not None:
            _finite("output", self.output)


@dataclass(frozen=True)
class Inputs:
    """Everything the law reads at one step (validated objects; the daemon builds them)."""

    zones: Mapping[str, ZoneMeasurement]
    web_speed_m_min: Reading | None
    wet_thickness_um: Reading | None
    surface: SurfaceEstimate | None = None
    lab: LabEstimate | None = None
    manual: tuple[ManualOverride, ...] = ()


# =============================================================================== outputs
class Action(StrEnum):
    """What the law did."""

    SAFE_STATE = "safe_state"
    RESUME = "resume"
    LOWER = "lower_drying_rate"
    RAISE = "raise_drying_rate"
    DRY_EXIT = "raise_for_dry_exit"
    HOLD = "hold"
    MANUAL = "manual"
    AUTO = "auto"


class Reason(StrEnum):
    """Why (machine-readable)."""

    INPUT_MISSING = "input_missing"
    INPUT_STALE = "input_stale"
    INPUTS_RESTORED = "inputs_restored"
    PREDICTED_STRESS = "predicted_stress_ratio_high"
    PREDICTED_CIF = "predicted_cif_above_target"
    SURFACE_RISK = "surface_risk_high"
    SURFACE_ONSET = "surface_onset"
    SURFACE_CIF = "surface_cif_above_target"
    LAB_RISK = "lab_risk_high"
    RISK_LOW = "risk_low_for_hold_time"
    EXIT_WET = "predicted_exit_residual_high"
    NO_FEASIBLE_MOVE = "no_feasible_move"
    RAISE_BLOCKED = "raise_blocked_by_prediction"
    PREDICTOR_FAILED = "predictor_failed"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Setpoint:
    """Set-point of one zone."""

    temperature_c: float
    airflow_m3_h: float

    def as_dict(self) -> dict[str, float]:
        """``{"temperature_c": .., "airflow_m3_h": ..}`` (what `sim_line.Line.step` accepts)."""
        return {"temperature_c": self.temperature_c, "airflow_m3_h": self.airflow_m3_h}


@dataclass(frozen=True)
class Decision:
    """One decision of the law, with its reason code and a human text."""

    t_s: float
    action: Action
    reason: Reason
    text: str
    zone: str | None = None
    changes: tuple[tuple[str, str, float, float], ...] = ()  # (zone, variable, old, new)
    stress_ratio: float = math.nan  # predicted peak stress ratio of the plan after the decision
    exit_residual_g_m2: float = math.nan
    critical_point_m: float = math.nan
    inputs: tuple[str, ...] = ()  # missing / stale inputs

    def as_row(self) -> dict[str, object]:
        """One row of the decisions CSV (`DECISION_COLUMNS`)."""
        return {
            "t_s": self.t_s, "action": str(self.action), "reason": str(self.reason), "zone": self.zone or "",
            "changes": "; ".join(f"{z}.{v} {a:.6g}->{b:.6g}" for z, v, a, b in self.changes),
            "stress_ratio": self.stress_ratio, "exit_residual_g_m2": self.exit_residual_g_m2,
            "critical_point_m": self.critical_point_m, "inputs": ";".join(self.inputs), "text": self.text,
        }


DECISION_COLUMNS = ["t_s", "action", "reason", "zone", "changes", "stress_ratio", "exit_residual_g_m2",
                    "critical_point_m", "inputs", "text"]


# =============================================================================== state
class Mode(StrEnum):
    """Operating mode of the law."""

    AUTO = "auto"
    SAFE = "safe"


@dataclass(frozen=True)
class LoopState:
    """One PID loop: reference (ramped target), last command, PID memory, P/I/D terms."""

    auto: bool
    reference: float
    command: float
    integral: float = 0.0
    last_input: float | None = None
    last_update_t_s: float | None = None
    bumpless: bool = True  # next update starts from ``command`` (start, resume, manual -> auto)
    p_term: float = 0.0
    i_term: float = 0.0
    d_term: float = 0.0


@dataclass(frozen=True)
class ZoneState:
    """Supervisor targets and the two loops of one zone."""

    target_temperature_c: float
    target_airflow_m3_h: float
    temperature: LoopState
    airflow: LoopState


@dataclass(frozen=True)
class LawState:
    """Immutable state of the control law (everything `step` needs besides its inputs)."""

    t_s: float | None
    mode: Mode
    zones: tuple[ZoneState, ...]
    safe_inputs: tuple[str, ...] = ()
    risk_high: bool = False
    risk_reason: Reason | None = None
    risk_low_since_s: float | None = None
    last_supervisor_s: float | None = None
    last_lower_s: float | None = None
    last_raise_s: float | None = None
    last_move_s: float | None = None
    hold_reason: Reason | None = None
    model_margin: float = 0.0
    plan: PlanPrediction | None = None


@dataclass(frozen=True)
class StepResult:
    """Result of one step: the new state, the set-points to send and the decisions taken."""

    state: LawState
    setpoints: Mapping[str, Setpoint]
    decisions: tuple[Decision, ...] = ()


@dataclass(frozen=True)
class _Judged:
    """Candidate recipes judged by the model (worst case over thickness variants), arrays (K,)."""

    temperature_c: F  # (K, Z)
    airflow_m3_h: F
    ratio: F
    residual: F
    surface_cif: F
    plans: tuple[PlanPrediction, ...] = field(repr=False)


# =============================================================================== the law
class ControlLaw:
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

    # ------------------------------------------------------------------ state
    def initial_state(self, inputs: Inputs | None = None) -> LawState:
        """Targets at the nominal recipe; commands start from the measured zone values (bumpless)."""
        zones = []
        for z in self.config.zones:
            m = inputs.zones.get(z.name) if inputs is not None else None
            t_cmd = float(np.clip(m.temperature_c if m else z.nominal_temperature_c, *z.temperature_limits_c))
            q_cmd = float(np.clip(m.airflow_m3_h if m else z.nominal_airflow_m3_h, *z.airflow_limits_m3_h))
            zones.append(ZoneState(z.nominal_temperature_c, z.nominal_airflow_m3_h,
                                   LoopState(True, t_cmd, t_cmd), LoopState(True, q_cmd, q_cmd)))
        return LawState(t_s=None, mode=Mode.AUTO, zones=tuple(zones))

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
        problems = self._input_problems(inputs, t_s)
        if problems:
            return self._safe_state(state, problems, t_s)
        decisions: list[Decision] = []
        if state.mode is Mode.SAFE:
            state = replace(state, mode=Mode.AUTO, safe_inputs=(), risk_low_since_s=None, zones=tuple(
                replace(zs, temperature=_restart(zs.temperature), airflow=_restart(zs.airflow)) for zs in state.zones))
            decisions.append(Decision(t_s, Action.RESUME, Reason.INPUTS_RESTORED,
                                      "all inputs fresh again: leaving the safe state, ramping back to the plan"))
        state = self._operator(state, inputs, t_s, decisions)
        last = state.last_supervisor_s
        if last is None or t_s - last >= self.config.supervisor.period_s - 1e-9:
            state = self._supervise(replace(state, last_supervisor_s=t_s), inputs, t_s, decisions)
        state = self._loops(state, inputs, t_s)
        return StepResult(replace(state, t_s=t_s), self._setpoints(state), tuple(decisions))

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
        check("web_speed_m_min", inputs.web_speed_m_min.t_s if inputs.web_speed_m_min else None, limit)
        check("wet_thickness_um", inputs.wet_thickness_um.t_s if inputs.wet_thickness_um else None, limit)
        surface_limit = self.config.safe_state.surface_estimate_stale_after_s
        if surface_limit is not None:
            check("surface_estimate", inputs.surface.t_s if inputs.surface else None, surface_limit)
        return out

    def _safe_state(self, state: LawState, problems: list[tuple[str, Reason]], t_s: float) -> StepResult:
        safe = self.config.safe_state.zones
        zones = []
        for z, zs in zip(self.config.zones, state.zones):
            s = safe[z.name]
            zones.append(replace(zs, temperature=_hold(zs.temperature, s.temperature_c),
                                 airflow=_hold(zs.airflow, s.airflow_m3_h)))
        names = tuple(n for n, _ in problems)
        decisions: tuple[Decision, ...] = ()
        if state.mode is not Mode.SAFE or names != state.safe_inputs:
            reason = Reason.INPUT_STALE if any(r is Reason.INPUT_STALE for _, r in problems) else Reason.INPUT_MISSING
            text = ("missing or stale inputs (" + ", ".join(f"{n}: {r.value.split('_')[-1]}" for n, r in problems)
                    + "): applying the configured safe state to every zone")
            decisions = (Decision(t_s, Action.SAFE_STATE, reason, text, inputs=names),)
        new = replace(state, t_s=t_s, mode=Mode.SAFE, zones=tuple(zones), safe_inputs=names, risk_low_since_s=None)
        return StepResult(new, self._setpoints(new), decisions)

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
            for loop in ("temperature", "airflow"):
                ls: LoopState = getattr(zs, loop)
                lo, hi = z.temperature_limits_c if loop == "temperature" else z.airflow_limits_m3_h
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
        wait = self._raise_pending(state, inputs, t_s)
        zones = []
        for z, zs in zip(self.config.zones, state.zones):
            m = inputs.zones[z.name]
            # dry-first sequencing: a lowered loop keeps its reference while raises elsewhere take effect
            t_target = max(zs.target_temperature_c, zs.temperature.reference) if wait else zs.target_temperature_c
            q_target = max(zs.target_airflow_m3_h, zs.airflow.reference) if wait else zs.target_airflow_m3_h
            temp = _pid(zs.temperature, t_target, m.temperature_c, z.temperature_pid,
                        z.temperature_limits_c, z.temperature_slew_c_per_s, z.sample_time_s, t_s, dt)
            air = _pid(zs.airflow, q_target, m.airflow_m3_h, z.airflow_pid,
                       z.airflow_limits_m3_h, z.airflow_slew_m3_h_per_s, z.sample_time_s, t_s, dt)
            zones.append(replace(zs, temperature=temp, airflow=air))
        return replace(state, zones=tuple(zones))

    def _raise_pending(self, state: LawState, inputs: Inputs, t_s: float) -> bool:
        """True while a loop still ramps up to a raised target (bounded by the dead time after a move)."""
        sup = self.config.supervisor
        if state.last_move_s is None or t_s - state.last_move_s >= sup.estimate_dead_time_s:
            return False
        for z, zs in zip(self.config.zones, state.zones):
            m = inputs.zones[z.name]
            for ls, target, value, tol in (
                (zs.temperature, zs.target_temperature_c, m.temperature_c, sup.settle_tolerance_c),
                (zs.airflow, zs.target_airflow_m3_h, m.airflow_m3_h, sup.settle_tolerance_fraction * max(zs.target_airflow_m3_h, 1.0)),
            ):
                if ls.auto and target > ls.reference - tol and (target > ls.reference + 1e-9 or value < ls.reference - tol):
                    return True
        return False

    def _setpoints(self, state: LawState) -> dict[str, Setpoint]:
        return {n: Setpoint(zs.temperature.command, zs.airflow.command) for n, zs in zip(self._names, state.zones)}

    # -------------------------------------------------------------- supervisor
    def _conditions(self, inputs: Inputs) -> LineConditions:
        ms = [inputs.zones[n] for n in self._names]
        conc = [m.solvent_concentration_g_m3 for m in ms]
        return LineConditions(
            web_speed_m_min=inputs.web_speed_m_min.value,  # type: ignore[union-attr]
            wet_thickness_um=inputs.wet_thickness_um.value,  # type: ignore[union-attr]
            temperature_c=tuple(m.temperature_c for m in ms),
            airflow_m3_h=tuple(m.airflow_m3_h for m in ms),
            solvent_concentration_g_m3=None if any(c is None for c in conc) else tuple(conc),  # type: ignore[arg-type]
        )

    def _judge(self, cond: LineConditions, temps: F, flows: F) -> _Judged:
        """Predict K recipes for each thickness variant and keep the worst case per recipe."""
        du = self.config.supervisor.thickness_uncertainty_um
        variants = np.array([cond.wet_thickness_um] if du == 0 else
                            [cond.wet_thickness_um - du, cond.wet_thickness_um, cond.wet_thickness_um + du])
        variants = np.maximum(variants, 1.0)
        k, v = temps.shape[0], len(variants)
        p = self.predictor.predict(cond, temperature_c=np.repeat(temps, v, axis=0), airflow_m3_h=np.repeat(flows, v, axis=0),
                                   wet_thickness_um=np.tile(variants, k))
        ratio = np.asarray(p.peak_stress_ratio, dtype=float).reshape(k, v)
        resid = np.nan_to_num(np.asarray(p.exit_residual_solvent_g_m2, dtype=float), nan=np.inf).reshape(k, v)
        cif = np.asarray(p.surface_cif, dtype=float).reshape(k, v)
        worst = np.argmax(np.nan_to_num(ratio, nan=np.inf), axis=1)
        mid = v // 2
        plans = []
        for i in range(k):
            w, c = i * v + worst[i], i * v + mid
            plans.append(PlanPrediction(
                critical_point_m=float(p.critical_point_m[c]), critical_zone=self._zone_name(p.critical_zone[c]),
                peak_stress_ratio=float(ratio[i].max()), peak_stress_m=float(p.peak_stress_m[w]),
                peak_zone=self._zone_name(p.peak_zone[w]), dry_position_m=float(np.max(p.dry_position_m[i * v:(i + 1) * v])),
                exit_residual_solvent_g_m2=float(resid[i].max()), crack_probability=float(np.max(p.crack_probability[i * v:(i + 1) * v])),
                surface_cif=float(cif[i].max()),
            ))
        return _Judged(temps, flows, ratio.max(axis=1), resid.max(axis=1), cif.max(axis=1), tuple(plans))

    def _zone_name(self, index: int) -> str | None:
        i = int(index)
        return self._names[i] if 0 <= i < len(self._names) else None

    def _objective(self, j: _Judged) -> F:
        target = self.config.supervisor.target_surface_cif
        return j.ratio if target == 0 else np.abs(j.surface_cif - target)

    def _supervise(self, state: LawState, inputs: Inputs, t_s: float, decisions: list[Decision]) -> LawState:
        sup = self.config.supervisor
        cond = self._conditions(inputs)
        targets_t = np.array([zs.target_temperature_c for zs in state.zones])
        targets_q = np.array([zs.target_airflow_m3_h for zs in state.zones])
        measured_t, measured_q = np.array(cond.temperature_c), np.array(cond.airflow_m3_h)
        try:
            both = self._judge(cond, np.stack([targets_t, measured_t]), np.stack([targets_q, measured_q]))
        except (ValueError, FloatingPointError) as exc:
            if state.hold_reason is not Reason.PREDICTOR_FAILED:
                decisions.append(Decision(t_s, Action.HOLD, Reason.PREDICTOR_FAILED,
                                          f"the drying model failed ({exc}); keeping the current targets"))
            return replace(state, hold_reason=Reason.PREDICTOR_FAILED)
        judged = _take(both, 0)
        plan, now = both.plans
        target = sup.target_surface_cif
        # -- risk: the model's view of the plan
        margin = state.model_margin
        if target == 0:
            pred_high = plan.peak_stress_ratio + margin >= sup.stress_ratio_up
            pred_low = plan.peak_stress_ratio + margin <= sup.stress_ratio_down
        else:
            pred_high = plan.surface_cif > target + sup.cif_band
            pred_low = plan.surface_cif < target
        # -- risk: what the camera / CT see (they see coating that passed the critical zone earlier)
        obs_high, obs_low, obs_reason = self._observed_risk(inputs, t_s)
        seen = state.last_move_s is None or t_s - state.last_move_s >= sup.estimate_dead_time_s
        obs_effective = obs_high and seen
        notes = []
        if obs_effective and not pred_high and margin < sup.model_margin_max:
            margin = min(margin + sup.model_margin_step, sup.model_margin_max)
            notes.append(f"observed crack risk the model did not predict: model margin now {margin:.2f}")
        if pred_high:
            cause = Reason.PREDICTED_STRESS if target == 0 else Reason.PREDICTED_CIF
        elif obs_effective:
            cause = obs_reason
        else:
            cause = state.risk_reason
        risk_high = pred_high or obs_effective or (state.risk_high and not (pred_low and obs_low))
        low = pred_low and obs_low
        low_since = (state.risk_low_since_s if state.risk_low_since_s is not None else t_s) if low else None
        state = replace(state, plan=plan, model_margin=margin, risk_high=risk_high,
                        risk_reason=cause if risk_high else None, risk_low_since_s=low_since)
        exit_limit = sup.exit_residual_solvent_limit_g_m2 - sup.exit_residual_margin_g_m2
        # the next move waits for the plant to reach the plan (or for the dead time at most)
        moved_ok = state.last_move_s is None or (t_s - state.last_move_s >= sup.lower_hold_s and (
            self._settled(state, inputs) or t_s - state.last_move_s >= sup.estimate_dead_time_s))
        if plan.exit_residual_solvent_g_m2 > exit_limit and moved_ok:
            return self._move(state, cond, judged, t_s, decisions, "dry", Reason.EXIT_WET, notes)
        now_dry = now.exit_residual_solvent_g_m2 <= sup.exit_residual_solvent_limit_g_m2
        if (risk_high and now_dry and moved_ok
                and (state.last_lower_s is None or t_s - state.last_lower_s >= sup.lower_hold_s)):
            return self._move(state, cond, judged, t_s, decisions, "lower", cause or Reason.PREDICTED_STRESS, notes,
                              observed_zone=self._site_zone(inputs))
        at_nominal = np.allclose(targets_t, self._nominal_t) and np.allclose(targets_q, self._nominal_q)
        if (low and not at_nominal and t_s - low_since >= sup.raise_hold_s  # type: ignore[operator]
                and (state.last_raise_s is None or t_s - state.last_raise_s >= sup.raise_hold_s)):
            return self._move(state, cond, judged, t_s, decisions, "raise", Reason.RISK_LOW, notes)
        return state

    def _settled(self, state: LawState, inputs: Inputs) -> bool:
        """True when every auto loop's reference reached its target and the measurement its reference."""
        sup = self.config.supervisor
        for z, zs in zip(self.config.zones, state.zones):
            m = inputs.zones[z.name]
            for ls, target, value, tol in (
                (zs.temperature, zs.target_temperature_c, m.temperature_c, sup.settle_tolerance_c),
                (zs.airflow, zs.target_airflow_m3_h, m.airflow_m3_h, sup.settle_tolerance_fraction * max(zs.target_airflow_m3_h, 1.0)),
            ):
                if ls.auto and (abs(ls.reference - target) > tol or abs(value - ls.reference) > tol):
                    return False
        return True

    def _observed_risk(self, inputs: Inputs, t_s: float) -> tuple[bool, bool, Reason | None]:
        sup = self.config.supervisor
        target = sup.target_surface_cif
        high, low, reason = False, True, None
        s = inputs.surface
        if s is not None:
            if target == 0:
                if s.onset:
                    high, reason = True, Reason.SURFACE_ONSET
                elif s.risk_score >= sup.surface_risk_up:
                    high, reason = True, Reason.SURFACE_RISK
                low = not s.onset and s.risk_score <= sup.surface_risk_down
            if s.surface_cif is not None:
                if s.surface_cif > target + sup.cif_band:
                    high, reason = True, reason or Reason.SURFACE_CIF
                low = low and s.surface_cif <= (target + sup.cif_band if target == 0 else target - sup.cif_band)
        lab = inputs.lab
        if lab is not None and abs(t_s - lab.t_s) <= sup.lab_estimate_valid_s and target == 0:
            if lab.onset or lab.risk_score >= sup.lab_risk_up:
                high, reason = True, reason or Reason.LAB_RISK
            low = low and not lab.onset and lab.risk_score <= sup.lab_risk_down
        return high, low, reason

    def _site_zone(self, inputs: Inputs) -> int | None:
        s = inputs.surface
        if s is None or not s.site_positions_m:
            return None
        x = float(np.median(s.site_positions_m))
        for i, start in enumerate(self.config.zone_start_m()):
            if start <= x < start + self.config.zones[i].length_m:
                return i
        return None

    # ----------------------------------------------------------------- moves
    def _move(self, state: LawState, cond: LineConditions, current: _Judged, t_s: float, decisions: list[Decision],
              kind: str, reason: Reason, notes: list[str], observed_zone: int | None = None) -> LawState:
        sup = self.config.supervisor
        t0, q0 = current.temperature_c[0], current.airflow_m3_h[0]
        plan = current.plans[0]
        focus = _index(self._names, plan.peak_zone) if plan.peak_zone else _index(self._names, plan.critical_zone)
        if focus is None:
            focus = observed_zone if observed_zone is not None else len(self._names) - 1
        free = self._free_mask(state)
        if kind == "lower":
            cands = self._lowering(t0, q0, focus, free)
        elif kind == "raise":
            cands = self._raising(t0, q0, free)
        else:
            cands = self._drying(t0, q0, focus, free)
        if not cands:
            return self._hold(state, t_s, decisions, Reason.NO_FEASIBLE_MOVE if kind != "raise" else Reason.RAISE_BLOCKED,
                              "no move left within the bounds (or the loops are in manual)")
        temps = np.array([c[0] for c in cands])
        flows = np.array([c[1] for c in cands])
        judged = self._judge(cond, temps, flows)
        exit_limit = sup.exit_residual_solvent_limit_g_m2 - sup.exit_residual_margin_g_m2
        dry = judged.residual <= exit_limit
        obj = self._objective(judged)
        now = float(self._objective(current)[0])
        if kind == "dry":
            ok = dry & (obj <= max(now, sup.stress_ratio_up - state.model_margin if sup.target_surface_cif == 0 else now))
            pick = int(np.flatnonzero(ok)[np.argmin(obj[ok])]) if ok.any() else int(np.argmin(judged.residual))
            if judged.residual[pick] >= current.residual[0] - 1e-9:
                return self._hold(state, t_s, decisions, Reason.NO_FEASIBLE_MOVE,
                                  f"the coating would leave wet ({plan.exit_residual_solvent_g_m2:.2f} g/m2) and no move dries it")
        elif kind == "lower":
            ok = dry & (obj <= now - sup.min_improvement)
            if not ok.any():
                return self._hold(state, t_s, decisions, Reason.NO_FEASIBLE_MOVE,
                                  f"crack risk ({_risk_text(plan)}) but no move in {self._names[focus]} or elsewhere "
                                  f"lowers it while keeping the exit dry; consider a slower line")
            pick = int(np.flatnonzero(ok)[np.argmin(obj[ok])])
        else:
            if sup.target_surface_cif == 0:
                safe = judged.ratio + state.model_margin <= sup.stress_ratio_down
            else:
                safe = judged.surface_cif <= sup.target_surface_cif + sup.cif_band
            ok = dry & safe
            if not ok.any():
                return self._hold(state, t_s, decisions, Reason.RAISE_BLOCKED,
                                  "risk low, but every step back towards the nominal recipe is predicted to raise the "
                                  "crack risk or wet the exit")
            pick = int(np.flatnonzero(ok)[np.argmin(obj[ok])])
        new_t, new_q = temps[pick], flows[pick]
        after = judged.plans[pick]
        changes = _changes(self._names, t0, q0, new_t, new_q)
        zones = tuple(replace(zs, target_temperature_c=float(new_t[i]), target_airflow_m3_h=float(new_q[i]))
                      for i, zs in enumerate(state.zones))
        action = {"lower": Action.LOWER, "raise": Action.RAISE, "dry": Action.DRY_EXIT}[kind]
        what = {"lower": f"lowered the drying rate where the stress peaks ({self._names[focus]})",
                "raise": "risk low for the hold time: stepped back towards the nominal recipe",
                "dry": "raised the drying rate to keep the coating dry at the exit"}[kind]
        text = (f"{what}: " + ", ".join(_change_text(c) for c in changes) + f"; before: {_risk_text(plan)}; "
                f"predicted after: {_risk_text(after)}" + "".join(f"; {n}" for n in notes))
        decisions.append(Decision(t_s, action, reason, text, zone=self._names[focus] if kind == "lower" else None,
                                  changes=changes, stress_ratio=after.peak_stress_ratio,
                                  exit_residual_g_m2=after.exit_residual_solvent_g_m2, critical_point_m=after.critical_point_m))
        state = replace(state, zones=zones, plan=after, last_move_s=t_s, hold_reason=None)
        if kind == "lower":
            state = replace(state, last_lower_s=t_s)
        elif kind == "raise":
            state = replace(state, last_raise_s=t_s, risk_low_since_s=t_s)
        return state

    def _hold(self, state: LawState, t_s: float, decisions: list[Decision], reason: Reason, text: str) -> LawState:
        if state.hold_reason is not reason:
            plan = state.plan
            decisions.append(Decision(t_s, Action.HOLD, reason, text,
                                      stress_ratio=plan.peak_stress_ratio if plan else math.nan,
                                      exit_residual_g_m2=plan.exit_residual_solvent_g_m2 if plan else math.nan,
                                      critical_point_m=plan.critical_point_m if plan else math.nan))
        stamp = {"last_lower_s": t_s} if reason is Reason.NO_FEASIBLE_MOVE else {"last_raise_s": t_s}
        return replace(state, hold_reason=reason, **stamp)

    def _free_mask(self, state: LawState) -> NDArray[np.bool_]:
        """(Z, 2): which targets the supervisor may move (loops in auto)."""
        return np.array([[zs.temperature.auto, zs.airflow.auto] for zs in state.zones])

    def _bounded(self, t: F, q: F) -> tuple[F, F]:
        zs = self.config.zones
        return (np.clip(t, [z.temperature_limits_c[0] for z in zs], [z.temperature_limits_c[1] for z in zs]),
                np.clip(q, [z.airflow_limits_m3_h[0] for z in zs], [z.airflow_limits_m3_h[1] for z in zs]))

    def _collect(self, t0: F, q0: F, free: NDArray[np.bool_], moves: Iterable[tuple[F, F]]) -> list[tuple[F, F]]:
        out, seen = [], set()
        for dt_, fq in moves:
            t, q = self._bounded(t0 + np.where(free[:, 0], dt_, 0.0), q0 * np.where(free[:, 1], fq, 1.0))
            key = (tuple(np.round(t, 6)), tuple(np.round(q, 6)))
            if key in seen or (np.allclose(t, t0) and np.allclose(q, q0)):
                continue
            seen.add(key)
            out.append((t, q))
        return out

    def _lowering(self, t0: F, q0: F, k: int, free: NDArray[np.bool_]) -> list[tuple[F, F]]:
        sup, nz = self.config.supervisor, len(self._names)
        st, down, up = sup.temperature_step_c, 1.0 - sup.airflow_step_fraction, 1.0 / (1.0 - sup.airflow_step_fraction)
        moves = []
        for span in {(k,), tuple(range(k, nz))}:
            sel = np.isin(np.arange(nz), span)
            for d_t, f_q in ((0.0, down), (-st, down), (st, down), (-st, 1.0)):
                base_t, base_q = np.where(sel, d_t, 0.0), np.where(sel, f_q, 1.0)
                moves.append((base_t, base_q))
                for j in range(nz):  # compensate in one other zone
                    if sel[j]:
                        continue
                    one = np.arange(nz) == j
                    moves.append((base_t + np.where(one, st, 0.0), base_q))
                    moves.append((base_t, base_q * np.where(one, up, 1.0)))
                before = np.arange(nz) < k  # or in every zone before the critical zone (earlier consolidation)
                if before.sum() > 1:
                    moves.append((base_t + np.where(before, st, 0.0), base_q))
                    moves.append((base_t, base_q * np.where(before, up, 1.0)))
        # multi-stage moves (dry fast while the film shrinks, slow from the critical point on): zones from
        # a boundary b on several airflow steps down (optionally warmer), the zones before it faster
        for b in range(1, nz):
            slow = np.arange(nz) >= b
            for n_slow, n_warm, n_fast, n_hot in product((2, 5), (0, 2), (0, 3), (0, 2)):
                moves.append((np.where(slow, n_warm * st, n_hot * st), np.where(slow, down**n_slow, up**n_fast)))
        return self._collect(t0, q0, free, moves)

    def _drying(self, t0: F, q0: F, k: int, free: NDArray[np.bool_]) -> list[tuple[F, F]]:
        sup, nz = self.config.supervisor, len(self._names)
        st, up = sup.temperature_step_c, 1.0 / (1.0 - sup.airflow_step_fraction)
        moves = []
        for j in range(nz):
            one = np.arange(nz) == j
            moves.append((np.where(one, st, 0.0), np.ones(nz)))
            moves.append((np.zeros(nz), np.where(one, up, 1.0)))
        moves.append((np.full(nz, st), np.ones(nz)))
        return self._collect(t0, q0, free, moves)

    def _raising(self, t0: F, q0: F, free: NDArray[np.bool_]) -> list[tuple[F, F]]:
        sup, nz = self.config.supervisor, len(self._names)
        out = []
        for j in range(nz):
            if free[j, 0] and not math.isclose(t0[j], self._nominal_t[j]):
                t = t0.copy()
                t[j] += float(np.clip(self._nominal_t[j] - t0[j], -sup.temperature_step_c, sup.temperature_step_c))
                out.append((t, q0.copy()))
            if free[j, 1] and not math.isclose(q0[j], self._nominal_q[j]):
                q = q0.copy()
                f = 1.0 / (1.0 - sup.airflow_step_fraction)
                q[j] = min(q0[j] * f, self._nominal_q[j]) if self._nominal_q[j] > q0[j] else max(q0[j] / f, self._nominal_q[j])
                out.append((t0.copy(), q))
        return out


# =============================================================================== PID loops
def _restart(ls: LoopState) -> LoopState:
    """Restart a loop bumplessly from its last command (reference = command)."""
    return replace(ls, reference=ls.command, integral=0.0, last_input=None, last_update_t_s=None, bumpless=True)


def _hold(ls: LoopState, value: float) -> LoopState:
    """Safe state: the command jumps to ``value``; the loop restarts from it later."""
    return replace(ls, command=value, reference=value, integral=0.0, last_input=None, last_update_t_s=None,
                   bumpless=True, p_term=0.0, i_term=0.0, d_term=0.0)


def _pid(ls: LoopState, target: float, measured: float, gains: PidGains, limits: tuple[float, float],
         slew_per_s: float, sample_time_s: float, t_s: float, dt_s: float) -> LoopState:
    """One update of a loop: ramp the reference, run the PID (simple-pid) if due, limit the command."""
    lo, hi = limits
    if not ls.auto:
        return ls
    ref = ls.reference + float(np.clip(target - ls.reference, -slew_per_s * dt_s, slew_per_s * dt_s))
    ref = float(np.clip(ref, lo, hi))
    if ls.last_update_t_s is not None and t_s - ls.last_update_t_s < sample_time_s - 1e-9:
        return replace(ls, reference=ref)  # fixed sample time: hold the command between samples
    h = sample_time_s if ls.last_update_t_s is None else t_s - ls.last_update_t_s
    error = ref - measured
    integral = ls.integral
    if ls.bumpless:  # start from the last command: P + I (+ D = 0) equals command - reference
        integral = (ls.command - ref) - gains.kp * error - gains.ki * error * h
    pid = PID(gains.kp, 0.0, gains.kd, setpoint=ref, sample_time=None, output_limits=(lo - ref, hi - ref),
              starting_output=integral, differential_on_measurement=True, time_fn=lambda: t_s)
    if ls.last_input is not None and not ls.bumpless:
        pid(ls.last_input, dt=1.0)  # primes the derivative memory; Ki = 0 leaves the integral alone
    pid.tunings = (gains.kp, gains.ki, gains.kd)
    pid(measured, dt=h)
    p_term, i_term, d_term = (float(c) for c in pid.components)
    # anti-windup (conditional integration): keep the integral while the output is saturated in the
    # direction of the error, while the reference ramps (the lag behind it is the feedforward's job)
    raw = p_term + i_term + d_term
    saturated = (raw > hi - ref and error > 0) or (raw < lo - ref and error < 0)
    ramping = abs(target - ref) > 1e-9
    if (saturated or ramping) and not ls.bumpless:
        i_term = float(np.clip(integral, lo - ref, hi - ref))
    wanted = ref + float(np.clip(p_term + i_term + d_term, lo - ref, hi - ref))
    step = slew_per_s * h
    command = float(np.clip(ls.command + np.clip(wanted - ls.command, -step, step), lo, hi))
    if abs(command - wanted) > 1e-9 and np.sign(error) == np.sign(wanted - command) and not ls.bumpless:
        i_term = float(np.clip(integral, lo - ref, hi - ref))  # ... and while the slew limit holds the command
    return LoopState(auto=True, reference=ref, command=command, integral=i_term, last_input=measured,
                     last_update_t_s=t_s, bumpless=False, p_term=p_term, i_term=i_term, d_term=d_term)


# =============================================================================== helpers
def _take(j: _Judged, i: int) -> _Judged:
    sl = slice(i, i + 1)
    return _Judged(j.temperature_c[sl], j.airflow_m3_h[sl], j.ratio[sl], j.residual[sl], j.surface_cif[sl], j.plans[sl])


def _index(names: Sequence[str], name: str | None) -> int | None:
    return names.index(name) if name in names else None


def _changes(names: Sequence[str], t0: F, q0: F, t1: F, q1: F) -> tuple[tuple[str, str, float, float], ...]:
    out = []
    for i, n in enumerate(names):
        if not math.isclose(t0[i], t1[i]):
            out.append((n, "temperature_c", float(t0[i]), float(t1[i])))
        if not math.isclose(q0[i], q1[i]):
            out.append((n, "airflow_m3_h", float(q0[i]), float(q1[i])))
    return tuple(out)


def _change_text(c: tuple[str, str, float, float]) -> str:
    zone, var, a, b = c
    return f"{zone} {'temperature' if var == 'temperature_c' else 'airflow'} {a:.4g} -> {b:.4g} " + (
        "C" if var == "temperature_c" else "m3/h")


def _risk_text(p: PlanPrediction) -> str:
    where = f"front enters the pores at {p.critical_point_m:.2f} m" if math.isfinite(p.critical_point_m) else "front not in the pores before the exit"
    return (f"peak stress {p.peak_stress_ratio:.3f} x cracking stress in {p.peak_zone or '-'}, {where}, "
            f"exit residual {p.exit_residual_solvent_g_m2:.2f} g/m2")


# =============================================================================== replay
def _cell(row: Mapping[str, object], key: str) -> float | None:
    v = row.get(key)
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _flag(row: Mapping[str, object], key: str) -> bool:
    v = row.get(key)
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes")
    return bool(v) and not (isinstance(v, float) and math.isnan(v))


def inputs_from_row(row: Mapping[str, object], zone_names: Sequence[str]) -> tuple[float, Inputs]:
    """One row of a recorded log as ``(t_s, Inputs)`` (columns: see `replay`).

    Raises
    ------
    ValueError
        If ``t_s`` is missing or a value is invalid.
    """
    t = _cell(row, "t_s")
    if t is None:
        raise ValueError(f"t_s: expected the step time in every row, found {row.get('t_s')!r}")

    def stamp(key: str) -> float:
        s = _cell(row, key)
        return t if s is None else s

    zones = {}
    for z in zone_names:
        temp, air = _cell(row, f"{z}_temperature_c"), _cell(row, f"{z}_airflow_m3_h")
        if temp is not None and air is not None:
            zones[z] = ZoneMeasurement(temp, air, stamp(f"{z}_temperature_t_s"), stamp(f"{z}_airflow_t_s"),
                                       _cell(row, f"{z}_solvent_concentration_g_m3"))
    speed, wet = _cell(row, "web_speed_m_min"), _cell(row, "wet_thickness_um")
    surface = None
    score = _cell(row, "surface_risk_score")
    if score is not None:
        sites = row.get("surface_sites_m")
        pos = tuple(float(x) for x in str(sites).split(";") if x.strip()) if isinstance(sites, str) else ()
        surface = SurfaceEstimate(stamp("surface_t_s"), score, _flag(row, "surface_onset"), _cell(row, "surface_cif"), pos)
    lab = None
    lab_score = _cell(row, "lab_risk_score")
    if lab_score is not None:
        lab = LabEstimate(stamp("lab_t_s"), lab_score, _flag(row, "lab_onset"), _cell(row, "lab_cif_3d"))
    manual = []
    for z in zone_names:
        for loop, key in (("temperature", f"{z}_temperature_manual_c"), ("airflow", f"{z}_airflow_manual_m3_h")):
            v = row.get(key)
            if isinstance(v, str) and v.strip().lower() == "hold":
                manual.append(ManualOverride(z, loop, None))  # type: ignore[arg-type]
            elif _cell(row, key) is not None:
                manual.append(ManualOverride(z, loop, _cell(row, key)))  # type: ignore[arg-type]
    return t, Inputs(zones=zones, web_speed_m_min=None if speed is None else Reading(speed, stamp("web_speed_t_s")),
                     wet_thickness_um=None if wet is None else Reading(wet, stamp("wet_thickness_t_s")),
                     surface=surface, lab=lab, manual=tuple(manual))


def decisions_frame(decisions: Iterable[Decision]) -> pd.DataFrame:
    """Decisions as a DataFrame with the `DECISION_COLUMNS` schema."""
    return pd.DataFrame([d.as_row() for d in decisions], columns=DECISION_COLUMNS)


def write_decisions_csv(decisions: Iterable[Decision] | pd.DataFrame, path: str | Path) -> Path:
    """Write decisions (objects or a `decisions_frame`) to a CSV file; returns the path."""
    df = decisions if isinstance(decisions, pd.DataFrame) else decisions_frame(decisions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def replay(log_csv: str | Path, config: ControllerConfig, predictor: Predictor) -> pd.DataFrame:
    """Run the control law over a recorded log and return the decisions it would have made.

    Parameters
    ----------
    log_csv : path
        One row per control step, in time order. Columns (units in the names; an empty cell
        is a missing reading; ``*_t_s`` columns are optional and default to the row's
        ``t_s``): ``t_s``; ``web_speed_m_min``, ``wet_thickness_um``; per zone
        ``<Z>_temperature_c``, ``<Z>_airflow_m3_h``, ``<Z>_solvent_concentration_g_m3``
        (optional); ``surface_risk_score``, ``surface_onset``, ``surface_cif``,
        ``surface_sites_m`` (positions along the web, ``;``-separated), ``surface_t_s``;
        ``lab_risk_score``, ``lab_onset``, ``lab_cif_3d``, ``lab_t_s``; manual overrides
        ``<Z>_temperature_manual_c`` / ``<Z>_airflow_manual_m3_h`` (a value or ``hold``).
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

