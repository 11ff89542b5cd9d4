"""Outputs and state of the control law: decisions with reason codes, set-points, `LawState`.

Re-exported by `controller._law`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ._law_inputs import PlanPrediction
from ._law_loops import LoopState

__all__ = [
    "DECISION_COLUMNS",
    "Action",
    "Decision",
    "LawState",
    "Mode",
    "Reason",
    "Setpoint",
    "SlowDown",
    "StepResult",
    "ZoneState",
]


# =============================================================================== outputs
class Action(StrEnum):
    """What the law did."""

    SAFE_STATE = "safe_state"
    RESUME = "resume"
    LOWER = "lower_drying_rate"
    UNLOAD = "lower_solvent_load"
    SLOW_LINE = "lower_web_speed"
    RAISE_SPEED = "raise_web_speed"
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
    SOLVENT_LOAD_TRIP = "solvent_load_trip"
    SOLVENT_LOAD_HIGH = "predicted_solvent_load_high"


@dataclass(frozen=True)
class Setpoint:
    """Set-point of one zone: air temperature, nozzle airflow, exhaust fresh air (None: not commanded)."""

    temperature_c: float
    airflow_m3_h: float
    fresh_air_m3_h: float | None = None

    def as_dict(self) -> dict[str, float]:
        """``{"temperature_c": .., "airflow_m3_h": .., "fresh_air_m3_h": ..}`` (what `sim_line.Line.step` accepts)."""
        out = {"temperature_c": self.temperature_c, "airflow_m3_h": self.airflow_m3_h}
        if self.fresh_air_m3_h is not None:
            out["fresh_air_m3_h"] = self.fresh_air_m3_h
        return out


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
class ZoneState:
    """Supervisor targets and the three loops of one zone (the fresh-air loop's target is the
    solvent-load loop's, computed at every sample)."""

    target_temperature_c: float
    target_airflow_m3_h: float
    temperature: LoopState
    airflow: LoopState
    fresh_air: LoopState


@dataclass(frozen=True)
class SlowDown:
    """How a slow-down sequences the web and the re-planned recipe.

    ``order``: ``"web"`` (the web slows first, lowered loops wait), ``"recipe"`` (the loops
    first, the web once they are there) or ``"together"`` (the web follows the measured
    progress of the zone air from ``from_temperature_c`` / ``from_airflow_m3_h`` to the new
    targets, from ``from_speed_m_min``). ``"recipe"`` and ``"together"`` last a dead time
    after the move at most; then the web slews freely.
    """

    order: str
    from_speed_m_min: float
    from_temperature_c: tuple[float, ...]
    from_airflow_m3_h: tuple[float, ...]


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
    last_replan_s: float | None = None
    transition_until_s: float | None = None  # the loops were still moving the recipe up to a dead time before this
    hold_reason: Reason | None = None
    model_margin: float = 0.0
    plan: PlanPrediction | None = None
    speed_target_m_min: float | None = None  # web speed the supervisor wants (None: speed not controlled)
    speed_command_m_min: float | None = None  # the ramped web speed set-point
    last_speed_s: float | None = None
    slow_down: SlowDown | None = None  # how the last slow-down sequences the web and the recipe


@dataclass(frozen=True)
class StepResult:
    """Result of one step: the new state, the set-points to send and the decisions taken."""

    state: LawState
    setpoints: Mapping[str, Setpoint]
    decisions: tuple[Decision, ...] = ()
    web_speed_m_min: float | None = None  # the line's speed set-point (None: the law does not command it)
