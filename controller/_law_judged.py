"""What the supervisor knows about candidate recipes, and the texts of its decisions.

Shared by `controller._law_supervisor` (moves) and `controller._law_replan` (whole-recipe
re-planning, the web speed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ._config import ControllerConfig
from ._law_inputs import F, PlanPrediction, lel_g_m3_at
from ._law_state import Reason

__all__ = ["lel_g_m3"]


@dataclass(frozen=True)
class _Judged:
    """Candidate recipes judged by the model (worst case over thickness variants), arrays (K,)."""

    temperature_c: F  # (K, Z)
    airflow_m3_h: F
    ratio: F
    residual: F
    dry_gap_m: F  # dryer exit - where the coating is dry (worst case); -1: not dry before the exit
    surface_cif: F
    lel: F  # highest zone solvent vapour / lower explosive limit with the exhaust loop (worst case)
    plans: tuple[PlanPrediction, ...] = field(repr=False)


def lel_g_m3(config: ControllerConfig, temperature_c: ArrayLike) -> F:
    """Lower explosive limit of the solvent vapour in air at ``temperature_c``, g/m3 (ideal gas, 1 atm)."""
    sl = config.solvent_load
    return lel_g_m3_at(sl.lel_vol_pct, sl.molar_mass_g_mol, temperature_c)


#: reasons that mean cracks seen by the camera (onset declared, crack intensity above target), not a precursor
_OBSERVED = frozenset({Reason.SURFACE_ONSET, Reason.SURFACE_CIF})


def _concat(a: _Judged, b: _Judged) -> _Judged:
    return _Judged(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in
                     ("temperature_c", "airflow_m3_h", "ratio", "residual", "dry_gap_m", "surface_cif", "lel")),
                   a.plans + b.plans)


def _take(j: _Judged, i: int) -> _Judged:
    sl = slice(i, i + 1)
    return _Judged(j.temperature_c[sl], j.airflow_m3_h[sl], j.ratio[sl], j.residual[sl], j.dry_gap_m[sl], j.surface_cif[sl],
                   j.lel[sl], j.plans[sl])


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
    name, unit = {"temperature_c": ("temperature", "C"), "airflow_m3_h": ("airflow", "m3/h"),
                  "web_speed_m_min": ("speed", "m/min")}[var]
    return f"{zone} {name} {a:.4g} -> {b:.4g} {unit}"


def _risk_text(p: PlanPrediction) -> str:
    where = f"front enters the pores at {p.critical_point_m:.2f} m" if math.isfinite(p.critical_point_m) else "front not in the pores before the exit"
    air = f", zone air up to {100 * p.solvent_lel_fraction:.0f} % LEL" if p.solvent_lel_fraction > 0 else ""
    if p.zone_fresh_air_m3_h:
        air += f" with exhausts up to {max(p.zone_fresh_air_m3_h):.0f} m3/h"
    return (f"peak stress {p.peak_stress_ratio:.3f} x cracking stress in {p.peak_zone or '-'}, {where}, "
            f"exit residual {p.exit_residual_solvent_g_m2:.2f} g/m2{air}")
