"""Validated, frozen configuration of the crack-aware dryer controller (``configs/controller.yaml``).

The YAML file is read once with ``yaml.safe_load`` and built into the frozen dataclasses
below. Every field carries its limits in the field metadata (``lo``/``hi`` inclusive, ``gt``
exclusive); unknown keys, missing keys, wrong types and out-of-range values are errors
reported as ``FILE: key.path: expected ..., found ...`` (the same convention as
``sim_line``'s configuration, re-implemented here because the control law must not import
the simulator).

Sections
--------
line_id        MQTT topic level of the line (``mudcrack/<line_id>/...``)
dryer_entry_m  coater to dryer entry, m (maps crack-site positions to zones)
zones          per dryer zone: geometry, nominal recipe, bounds, slew limits, PID gains, sample time
supervisor     crack-risk thresholds, step sizes, hold times, target surface CIF, exit residual limit
solvent_load   the solvent vapour in the zone air against its lower explosive limit: the exhaust
               loop's target, the planning limit of the moves, the interlock
web_speed      the web speed as the supervisor's last resort (off unless ``control: true``)
safe_state     set-points applied when inputs are missing or stale (or the interlock trips), and
               after which staleness
mqtt           broker connection for the daemon (credentials from the file or the environment)
predictor      the drying model the daemon wires in (the law itself never reads it)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "ConfigError",
    "ControllerConfig",
    "MqttConfig",
    "PidGains",
    "PredictorConfig",
    "SafeStateConfig",
    "SolventLoadConfig",
    "SupervisorConfig",
    "WebSpeedConfig",
    "TlsConfig",
    "ZoneConfig",
    "ZoneSafeState",
    "build_controller_config",
    "default_controller_config_path",
    "load_controller_config",
]

T = TypeVar("T")

#: Environment variables that supply (and override) the MQTT credentials of the file.
ENV_USERNAME = "MUDCRACK_MQTT_USERNAME"
ENV_PASSWORD = "MUDCRACK_MQTT_PASSWORD"


class ConfigError(ValueError):
    """The controller configuration does not match its schema."""


def _num(default: Any = dataclasses.MISSING, *, lo: float | None = None, hi: float | None = None,
         gt: float | None = None) -> Any:
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi, "gt": gt})


# --------------------------------------------------------------------------- schema
@dataclass(frozen=True, kw_only=True)
class PidGains:
    """Gains of one PID loop (output units per unit of error; ``ki`` per s, ``kd`` s)."""

    kp: float = _num(lo=0.0, hi=1e3)
    ki: float = _num(0.0, lo=0.0, hi=1e3)
    kd: float = _num(0.0, lo=0.0, hi=1e4)


@dataclass(frozen=True, kw_only=True)
class ZoneConfig:
    """One dryer zone as the controller sees it.

    Three loops per zone: air temperature (heater), nozzle airflow (supply fan) and fresh air
    (the exhaust, which carries the solvent vapour away; its target comes from the
    solvent-load loop, see `SolventLoadConfig`). ``nominal_fresh_air_m3_h`` is the fixed
    recipe's exhaust (the loop starts from the measured value). The exhaust opens at
    ``fresh_air_slew_m3_h_per_s`` and closes at ``fresh_air_close_slew_m3_h_per_s``: the
    zone air needs its volume / fresh air (10 s to minutes) to follow a smaller exhaust, and
    a fast closing would overshoot the vapour before the measurement shows it.
    """

    name: str
    length_m: float = _num(gt=0.0, hi=100.0)
    nominal_temperature_c: float = _num(lo=-20.0, hi=400.0)
    nominal_airflow_m3_h: float = _num(lo=0.0, hi=1e6)
    nominal_fresh_air_m3_h: float = _num(gt=0.0, hi=1e6)
    temperature_limits_c: tuple[float, float]
    airflow_limits_m3_h: tuple[float, float]
    fresh_air_limits_m3_h: tuple[float, float]
    temperature_slew_c_per_s: float = _num(gt=0.0, hi=100.0)
    airflow_slew_m3_h_per_s: float = _num(gt=0.0, hi=1e5)
    fresh_air_slew_m3_h_per_s: float = _num(gt=0.0, hi=1e5)
    fresh_air_close_slew_m3_h_per_s: float = _num(gt=0.0, hi=1e5)
    temperature_pid: PidGains
    airflow_pid: PidGains
    fresh_air_pid: PidGains
    sample_time_s: float = _num(1.0, gt=0.0, hi=3600.0)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", self.name):
            raise ConfigError(f"name: expected 1-32 letters, digits, '-' or '_', found {self.name!r}")
        if not self.fresh_air_limits_m3_h[0] > 0:
            raise ConfigError(f"fresh_air_limits_m3_h: expected a positive low limit (the exhaust never closes), "
                              f"found {self.fresh_air_limits_m3_h[0]}")
        for key, (lo, hi), value in (
            ("temperature_limits_c", self.temperature_limits_c, self.nominal_temperature_c),
            ("airflow_limits_m3_h", self.airflow_limits_m3_h, self.nominal_airflow_m3_h),
            ("fresh_air_limits_m3_h", self.fresh_air_limits_m3_h, self.nominal_fresh_air_m3_h),
        ):
            if not lo < hi:
                raise ConfigError(f"{key}: expected [low, high] with low < high, found [{lo}, {hi}]")
            nominal = "nominal_" + key.replace("_limits", "")
            if not lo <= value <= hi:
                raise ConfigError(f"{nominal}: expected a value within {key} [{lo}, {hi}], found {value}")


@dataclass(frozen=True, kw_only=True)
class SupervisorConfig:
    """The crack-aware supervisory layer (outer loop, runs every ``period_s``)."""

    period_s: float = _num(10.0, gt=0.0, hi=3600.0)
    surface_risk_up: float = _num(6.0, gt=0.0)
    surface_risk_down: float = _num(3.0, lo=0.0)
    lab_risk_up: float = _num(6.0, gt=0.0)
    lab_risk_down: float = _num(3.0, lo=0.0)
    lab_estimate_valid_s: float = _num(3600.0, gt=0.0)
    stress_ratio_up: float = _num(0.97, gt=0.0, hi=2.0)
    stress_ratio_down: float = _num(0.95, gt=0.0, hi=2.0)
    target_surface_cif: float = _num(0.0, lo=0.0, hi=0.9)
    cif_band: float = _num(0.02, gt=0.0, hi=0.5)
    exit_residual_solvent_limit_g_m2: float = _num(1.0, gt=0.0)
    exit_residual_margin_g_m2: float = _num(0.2, lo=0.0)
    exit_dry_margin_m: float = _num(0.75, lo=0.0, hi=100.0)
    temperature_step_c: float = _num(5.0, gt=0.0, hi=100.0)
    airflow_step_fraction: float = _num(0.13, gt=0.0, hi=0.9)
    lower_hold_s: float = _num(20.0, lo=0.0)
    raise_hold_s: float = _num(300.0, lo=0.0)
    estimate_dead_time_s: float = _num(180.0, lo=0.0)
    min_improvement: float = _num(0.001, lo=0.0)
    thickness_uncertainty_um: float = _num(10.0, lo=0.0, hi=500.0)
    temperature_uncertainty_c: float = _num(2.0, lo=0.0, hi=50.0)
    settle_tolerance_c: float = _num(2.0, gt=0.0)
    settle_tolerance_fraction: float = _num(0.05, gt=0.0, hi=1.0)
    model_margin_step: float = _num(0.01, lo=0.0, hi=0.5)
    model_margin_max: float = _num(0.1, lo=0.0, hi=1.0)
    replan_evaluations: int = _num(1500, lo=0, hi=100_000)
    replan_hold_s: float = _num(120.0, lo=0.0)
    replan_min_improvement: float = _num(0.01, lo=0.0)

    def __post_init__(self) -> None:
        for up, down in (("surface_risk_up", "surface_risk_down"), ("lab_risk_up", "lab_risk_down"),
                         ("stress_ratio_up", "stress_ratio_down")):
            if not getattr(self, down) < getattr(self, up):
                raise ConfigError(f"{down}: expected a value below {up} ({getattr(self, up)}), found {getattr(self, down)}")
        if self.exit_residual_margin_g_m2 >= self.exit_residual_solvent_limit_g_m2:
            raise ConfigError(
                f"exit_residual_margin_g_m2: expected a value below exit_residual_solvent_limit_g_m2 "
                f"({self.exit_residual_solvent_limit_g_m2}), found {self.exit_residual_margin_g_m2}"
            )


@dataclass(frozen=True, kw_only=True)
class SolventLoadConfig:
    """Solvent vapour in the zone air against its lower explosive limit (LEL).

    * **Exhaust loop** (every zone sample): the zone's fresh air is set so that the solvent
      the zone evaporates (measured concentration x measured fresh air; while a move takes
      effect, at least the model's prediction for the plan) is diluted to
      ``target_lel_pct`` of the LEL at the zone's air temperature, within the exhaust's limits.
    * **Planning limit**: the supervisor takes no move whose predicted solvent load would
      need more than the exhaust's maximum to stay at ``plan_limit_lel_pct`` (and moves
      away from a plan that does).
    * **Interlock**: a measured zone at or above ``trip_lel_pct`` drives the configured safe
      state (heaters down, fans and exhaust purging) until every zone is back below
      ``target_lel_pct`` (NFPA 86: at most 25 % of the LEL, or 50 % with continuous
      monitoring and interlocks, as here).
    * ``required``: zone solvent concentration readings are required inputs (missing or
      stale -> safe state), as the exhaust loop and the interlock act on them.
    """

    lel_vol_pct: float = _num(1.3, gt=0.0, hi=100.0)
    molar_mass_g_mol: float = _num(99.13, gt=0.0, hi=1000.0)
    target_lel_pct: float = _num(20.0, gt=0.0, hi=100.0)
    plan_limit_lel_pct: float = _num(25.0, gt=0.0, hi=100.0)
    trip_lel_pct: float = _num(50.0, gt=0.0, hi=100.0)
    required: bool = True

    def __post_init__(self) -> None:
        if not self.target_lel_pct <= self.plan_limit_lel_pct < self.trip_lel_pct:
            raise ConfigError(f"plan_limit_lel_pct: expected target_lel_pct ({self.target_lel_pct}) <= plan_limit_lel_pct "
                              f"< trip_lel_pct ({self.trip_lel_pct}), found {self.plan_limit_lel_pct}")


@dataclass(frozen=True, kw_only=True)
class WebSpeedConfig:
    """The web speed as the supervisor's last resort.

    With ``control: true`` the law owns the line's speed set-point (``setpoints/line``):
    when no recipe move (nor a re-planned recipe) keeps the coating crack-free, dry and
    within the exhaust's reach, it slows the web to the fastest of up to ``max_steps``
    speeds ``step_fraction`` apart whose re-planned recipe is predicted crack-free (found by
    bisection, slower being safer: ~log2(max_steps) re-plans); after
    ``raise_hold_s`` of low risk it tries one step back up (re-planned, predicted safe)
    towards ``nominal_m_min``. The command ramps at ``slew_m_min_per_s``. Throughput is
    only given up for cracks: the model predicts them (worst-case stress ratio plus model
    margin at or above ``slow_above_stress_ratio``) or the camera / CT sees them, not for a
    recipe that is merely short of the ``stress_ratio_up`` margin. Camera / CT estimates
    count ``estimate_dead_time_s x nominal / measured speed`` after a move.
    """

    control: bool = False
    nominal_m_min: float = _num(3.0, gt=0.0, hi=1000.0)
    limits_m_min: tuple[float, float] = (0.5, 10.0)
    step_fraction: float = _num(0.15, gt=0.0, hi=0.9)
    max_steps: int = _num(10, lo=1, hi=50)
    slew_m_min_per_s: float = _num(0.05, gt=0.0, hi=100.0)
    raise_hold_s: float = _num(600.0, lo=0.0)
    slow_above_stress_ratio: float = _num(1.0, gt=0.0, hi=2.0)

    def __post_init__(self) -> None:
        lo, hi = self.limits_m_min
        if not 0 < lo < hi:
            raise ConfigError(f"limits_m_min: expected [low, high] with 0 < low < high, found [{lo}, {hi}]")
        if not lo <= self.nominal_m_min <= hi:
            raise ConfigError(f"nominal_m_min: expected a value within limits_m_min [{lo}, {hi}], found {self.nominal_m_min}")


@dataclass(frozen=True, kw_only=True)
class ZoneSafeState:
    """Set-points of one zone in the safe state."""

    temperature_c: float = _num(lo=-20.0, hi=400.0)
    airflow_m3_h: float = _num(lo=0.0, hi=1e6)
    fresh_air_m3_h: float = _num(gt=0.0, hi=1e6)


@dataclass(frozen=True, kw_only=True)
class SafeStateConfig:
    """What to do when inputs are missing or stale."""

    stale_after_s: float = _num(gt=0.0, hi=3600.0)
    surface_estimate_stale_after_s: float | None = _num(None, gt=0.0, hi=86400.0)
    zones: Mapping[str, ZoneSafeState] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    """TLS files of the MQTT connection (paths relative to the configuration file)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("cert_file: expected cert_file and key_file together (client certificate), found only one")


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    """Broker connection of the daemon.

    ``username``/``password`` come from the file or from the environment variables
    ``MUDCRACK_MQTT_USERNAME`` / ``MUDCRACK_MQTT_PASSWORD``, which override the file.
    """

    host: str = "localhost"
    port: int = _num(1883, lo=1, hi=65535)
    client_id: str = "mudcrack-controller"
    keepalive_s: int = _num(30, lo=1, hi=65535)
    topic_prefix: str = "mudcrack"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("host: expected a host name, found ''")
        if not re.fullmatch(r"[A-Za-z0-9_/-]{1,64}", self.topic_prefix) or "//" in self.topic_prefix \
                or self.topic_prefix.startswith("/") or self.topic_prefix.endswith("/"):
            raise ConfigError(f"topic_prefix: expected topic levels of letters, digits, '-', '_' joined by '/', "
                              f"found {self.topic_prefix!r}")
        if self.password is not None and self.username is None:
            raise ConfigError(f"password: expected a username with the password (file or {ENV_USERNAME}), found none")


@dataclass(frozen=True, kw_only=True)
class PredictorConfig:
    """The drying model the daemon wires in as the law's predictor (not read by the law)."""

    line_config: Path
    time_step_s: float = _num(1.0, gt=0.0, hi=30.0)
    coarse_time_step_s: float = _num(2.0, gt=0.0, hi=120.0)


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    """The crack-aware drying controller of one line."""

    line_id: str
    dryer_entry_m: float = _num(0.0, lo=0.0, hi=1000.0)
    zones: tuple[ZoneConfig, ...]
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    solvent_load: SolventLoadConfig = field(default_factory=SolventLoadConfig)
    web_speed: WebSpeedConfig = field(default_factory=WebSpeedConfig)
    safe_state: SafeStateConfig
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    predictor: PredictorConfig | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.line_id):
            raise ConfigError(f"line_id: expected 1-64 letters, digits, '-' or '_' (an MQTT topic level), found {self.line_id!r}")
        if not 1 <= len(self.zones) <= 12:
            raise ConfigError(f"zones: expected 1 to 12 dryer zones, found {len(self.zones)}")
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ConfigError(f"zones: expected unique zone names, found {names}")
        safe = self.safe_state.zones
        if sorted(safe) != sorted(names):
            raise ConfigError(f"safe_state.zones: expected one entry per zone {names}, found {sorted(safe)}")
        for z in self.zones:
            s = safe[z.name]
            for key, value, (lo, hi) in (("temperature_c", s.temperature_c, z.temperature_limits_c),
                                         ("airflow_m3_h", s.airflow_m3_h, z.airflow_limits_m3_h),
                                         ("fresh_air_m3_h", s.fresh_air_m3_h, z.fresh_air_limits_m3_h)):
                if not lo <= value <= hi:
                    raise ConfigError(f"safe_state.zones.{z.name}.{key}: expected a value within the zone's limits "
                                      f"[{lo}, {hi}], found {value}")

    @property
    def zone_names(self) -> tuple[str, ...]:
        """Zone names in web order."""
        return tuple(z.name for z in self.zones)

    def zone_start_m(self) -> tuple[float, ...]:
        """Start of each zone along the web (coater at 0), m."""
        out, x = [], self.dryer_entry_m
        for z in self.zones:
            out.append(x)
            x += z.length_m
        return tuple(out)


# --------------------------------------------------------------------------- loader
def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text[:57] + '...' if len(text) > 60 else text} ({type(value).__name__})"


def _check_range(value: float, meta: Mapping[str, Any], where: str) -> None:
    lo, hi, gt = meta.get("lo"), meta.get("hi"), meta.get("gt")
    if gt is not None and not value > gt:
        raise ConfigError(f"{where}: expected a number > {gt}, found {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: expected a number >= {lo}, found {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: expected a number <= {hi}, found {value!r}")


def _convert(tp: Any, value: Any, where: str, meta: Mapping[str, Any], base: Path | None) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _convert(args[0], value, where, meta, base)
        raise TypeError(f"unsupported union at {where}")  # programming error
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {_describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]", meta, base) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} items, found {len(value)} items")
        return tuple(_convert(a, v, f"{where}[{i}]", meta, base) for i, (a, v) in enumerate(zip(args, value)))
    if origin in (Mapping, dict, typing.Mapping):
        _, vt = get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of names to values, found {_describe(value)}")
        return types.MappingProxyType({str(k): _convert(vt, v, f"{where}.{k}", meta, base) for k, v in value.items()})
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, base)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, found {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, found {_describe(value)}")
        _check_range(value, meta, where)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, found {_describe(value)}")
        _check_range(float(value), meta, where)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, found {_describe(value)}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a file path string, found {_describe(value)}")
        path = Path(value)
        return path if path.is_absolute() or base is None else base / path
    raise TypeError(f"unsupported schema type {tp!r} at {where}")  # programming error


def _build(cls: type[T], data: Any, where: str, base: Path | None) -> T:
    prefix = where if where.endswith(": ") else f"{where}."
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip(': ') if where.endswith(': ') else where}: expected a mapping of keys to values, "
                          f"found {_describe(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; expected one of {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{prefix}{name}: required key is missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], f"{prefix}{name}", f.metadata, base)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def _apply_environment(data: Any, environ: Mapping[str, str]) -> Any:
    user, password = environ.get(ENV_USERNAME), environ.get(ENV_PASSWORD)
    if not isinstance(data, dict) or (user is None and password is None):
        return data
    mqtt = data.get("mqtt", {})
    if not isinstance(mqtt, dict):
        return data  # reported by the schema
    mqtt = dict(mqtt)
    if user is not None:
        mqtt["username"] = user
    if password is not None:
        mqtt["password"] = password
    return {**data, "mqtt": mqtt}


def build_controller_config(data: Any, *, source: str = "<config>", base: Path | None = None,
                            environ: Mapping[str, str] | None = None) -> ControllerConfig:
    """Build and validate a `ControllerConfig` from a parsed mapping.

    Parameters
    ----------
    data : mapping
        Parsed YAML.
    source : str
        Name used in error messages (usually the file name).
    base : Path, optional
        Directory that relative paths are resolved against.
    environ : mapping, optional
        Environment for the MQTT credentials (default ``os.environ``); empty mapping: none.

    Raises
    ------
    ConfigError
        ``SOURCE: key.path: expected ..., found ...``.
    """
    data = _apply_environment(data, os.environ if environ is None else environ)
    return _build(ControllerConfig, data, f"{source}: ", base)


def default_controller_config_path() -> Path:
    """``configs/controller.yaml`` next to the package."""
    return Path(__file__).resolve().parent.parent / "configs" / "controller.yaml"


def load_controller_config(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> ControllerConfig:
    """Load ``configs/controller.yaml`` (or ``path``) with ``yaml.safe_load`` into a `ControllerConfig`.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML or does not match the schema; the message
        names the file and the key path.

    Examples
    --------
    >>> cfg = load_controller_config()
    >>> cfg.zone_names
    ('Z1', 'Z2', 'Z3', 'Z4')
    """
    path = Path(path) if path is not None else default_controller_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from exc
    return build_controller_config(data if data is not None else {}, source=str(path), base=path.parent, environ=environ)
