"""Recorded logs and decision CSVs: log rows -> `Inputs`, decisions -> DataFrame / CSV.

`controller._law.replay` drives `ControlLaw` over a log with these; all are re-exported by
`controller._law`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ._law_inputs import Inputs, LabEstimate, ManualOverride, Reading, SurfaceEstimate, ZoneMeasurement
from ._law_state import DECISION_COLUMNS, Decision

__all__ = ["decisions_frame", "inputs_from_row", "write_decisions_csv"]


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
                                       _cell(row, f"{z}_solvent_concentration_g_m3"), _cell(row, f"{z}_fresh_air_m3_h"))
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
        for loop, key in (("temperature", f"{z}_temperature_manual_c"), ("airflow", f"{z}_airflow_manual_m3_h"),
                          ("fresh_air", f"{z}_fresh_air_manual_m3_h")):
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
