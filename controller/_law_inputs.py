"""Inputs of the control law: the `Predictor` protocol and its data, and the measurements.

Validated, frozen dataclasses the daemon builds and `controller._law.ControlLaw` reads;
re-exported by `controller._law`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ExhaustControl",
    "Inputs",
    "LabEstimate",
    "LineConditions",
    "ManualOverride",
    "PlanPrediction",
    "Prediction",
    "Predictor",
    "Reading",
    "SurfaceEstimate",
    "ZoneMeasurement",
    "lel_g_m3_at",
]

F = NDArray[np.float64]
Loop = Literal["temperature", "airflow", "fresh_air"]
LOOPS: tuple[Loop, ...] = ("temperature", "airflow", "fresh_air")

#: Ideal-gas constants of `lel_g_m3_at`.
_GAS_CONSTANT_J_MOL_K = 8.314_462_618
_ATMOSPHERE_PA = 101_325.0


def lel_g_m3_at(lel_vol_pct: float, molar_mass_g_mol: float, temperature_c: ArrayLike) -> F:
    """Lower explosive limit of a solvent vapour in air at ``temperature_c``, g/m3 (ideal gas, 1 atm).

    Examples
    --------
    >>> round(float(lel_g_m3_at(1.3, 99.13, 25.0)), 1)   # NMP at 25 C
    52.5
    """
    t_k = np.asarray(temperature_c, dtype=float) + 273.15
    return lel_vol_pct / 100.0 * _ATMOSPHERE_PA * molar_mass_g_mol / (_GAS_CONSTANT_J_MOL_K * t_k)


@dataclass(frozen=True)
class ExhaustControl:
    """The steady state of the exhaust (solvent-load) loop, as the predictor needs it.

    The loop sets each zone's fresh air so that the solvent the zone evaporates is diluted
    to ``target_lel_fraction`` of the LEL at the zone's air temperature, within the
    exhaust's limits.

    Parameters
    ----------
    lel_vol_pct, molar_mass_g_mol : float
        The solvent's lower explosive limit in air (vol %) and molar mass.
    target_lel_fraction : float
        Target vapour concentration / LEL (0.2: 20 % LEL).
    fresh_air_limits_m3_h : tuple of (low, high)
        Per zone, in the zones' order.
    """

    lel_vol_pct: float
    molar_mass_g_mol: float
    target_lel_fraction: float
    fresh_air_limits_m3_h: tuple[tuple[float, float], ...]

    def lel_g_m3(self, temperature_c: ArrayLike) -> F:
        """Lower explosive limit at ``temperature_c``, g/m3."""
        return lel_g_m3_at(self.lel_vol_pct, self.molar_mass_g_mol, temperature_c)

    def fresh_air_m3_h(self, load_kg_s: ArrayLike, temperature_c: ArrayLike) -> F:
        """Fresh air the loop settles at for zone solvent loads (kg/s), arrays (..., Z), m3/h."""
        lim = np.asarray(self.fresh_air_limits_m3_h, dtype=float)
        target_g_m3 = self.target_lel_fraction * self.lel_g_m3(temperature_c)
        wanted = np.maximum(np.asarray(load_kg_s, dtype=float), 0.0) * 1e3 / target_g_m3 * 3600.0
        return np.clip(wanted, lim[:, 0], lim[:, 1])


# =============================================================================== predictor
@dataclass(frozen=True)
class LineConditions:
    """Measured line state handed to the predictor (zones in the configuration's order)."""

    web_speed_m_min: float
    wet_thickness_um: float
    temperature_c: tuple[float, ...]
    airflow_m3_h: tuple[float, ...]
    solvent_concentration_g_m3: tuple[float, ...] | None = None
    fresh_air_m3_h: tuple[float, ...] | None = None  # measured exhaust flows (None: not measured)


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
    #: (K, Z) solvent vapour in each zone's air at the candidate's steady state, g/m3 (None: the
    #: model does not predict it; the solvent-load limit then only acts on measurements)
    zone_solvent_g_m3: F | None = None
    #: (K, Z) each zone's fresh air at that steady state (the exhaust loop's, if one was given), m3/h
    zone_fresh_air_m3_h: F | None = None


class Predictor(Protocol):
    """What the law needs from a drying model (`controller._predictor.LinePredictor`; fakes in tests)."""

    zone_names: tuple[str, ...]

    def predict(self, conditions: LineConditions, *, temperature_c: ArrayLike | None = None,
                airflow_m3_h: ArrayLike | None = None, wet_thickness_um: ArrayLike | None = None,
                exhaust: ExhaustControl | None = None) -> Prediction:
        """Predict for K candidate recipes (arrays (K, Z)) and wet thicknesses (K,).

        ``exhaust``: the zones' fresh air follows this loop (None: it stays as measured).
        """
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
    solvent_lel_fraction: float = 0.0  # highest zone solvent load / lower explosive limit
    #: per zone, the most fresh air the exhaust loop needs for this recipe (over the thickness variants), m3/h
    zone_fresh_air_m3_h: tuple[float, ...] = ()


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
    """Measured air temperature and airflow of one zone, each with its timestamp (s).

    ``solvent_concentration_g_m3`` (the zone's solvent vapour) and ``fresh_air_m3_h`` (its
    exhaust flow) come with the temperature (same message, ``temperature_t_s``); None: not
    measured.
    """

    temperature_c: float
    airflow_m3_h: float
    temperature_t_s: float
    airflow_t_s: float
    solvent_concentration_g_m3: float | None = None
    fresh_air_m3_h: float | None = None

    def __post_init__(self) -> None:
        _finite("temperature_c", self.temperature_c, lo=-273.15)
        _finite("airflow_m3_h", self.airflow_m3_h, lo=0.0)
        _finite("temperature_t_s", self.temperature_t_s)
        _finite("airflow_t_s", self.airflow_t_s)
        if self.solvent_concentration_g_m3 is not None:
            _finite("solvent_concentration_g_m3", self.solvent_concentration_g_m3, lo=0.0)
        if self.fresh_air_m3_h is not None:
            _finite("fresh_air_m3_h", self.fresh_air_m3_h, lo=0.0)


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
        if self.loop not in LOOPS:
            raise ValueError(f"loop: expected one of {list(LOOPS)}, found {self.loop!r}")
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
