"""Disturbance scenarios of the virtual line: a validated YAML file of timed events.

A scenario is a list of events, each active from ``at_s`` (line time, seconds since the
start of the run) for ``duration_s`` seconds (``null`` / absent: until the end of the run):

======================  ==============================================================
``coating_thickness``   the coater lays ``wet_thickness_um`` (back to the previous
                        thickness when the event ends)
``bubbles``             a fraction ``fraction`` of the coating laid during the event
                        traps a bubble of ``radius_um`` (stress concentration, more
                        crack volume: `sim_line._physics`)
``web_speed``           web speed set-point ``speed_m_min`` (the previous set-point
                        comes back when the event ends, unless a set-point received
                        over MQTT replaced it meanwhile)
``heater_fault``        the heater of ``zone`` cannot heat the air above
                        ``max_temperature_c`` (absent: heater power lost, the air cools
                        towards ambient through the heater lag); the set-point is kept
``exhaust_fault``       the exhaust of ``zone`` cannot move more than
                        ``max_fresh_air_m3_h`` of fresh air (a stuck damper or a weak
                        exhaust fan: the solvent vapour builds up); the set-point is kept
``sensor_dropout``      ``sensor`` (a zone name, ``line`` or ``camera``) publishes
                        nothing
``camera_flicker``      camera frames are ``gain`` times brighter (illumination gain)
======================  ==============================================================

Example (``configs/scenarios/default.yaml``)::

    name: thicker-coating
    description: the coater lays 220 um instead of 180 um from t = 60 s
    events:
      - {kind: coating_thickness, at_s: 60, wet_thickness_um: 220}

`load_scenario` reads a file (``yaml.safe_load``) into frozen dataclasses; every problem
is a `ConfigError` ``FILE: events[2].zone: expected ..., found ...``. `ScenarioPlayer`
applies a scenario to a `sim_line.Line` step by step and tells the publisher which
sensors are silent and the camera gain.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from ._config import LineConfig
from ._line import Line, LineReadings, ZoneSetpoint
from ._schema import ConfigError, _build, bounded, check_fields

__all__ = [
    "EVENT_KINDS",
    "Bubbles",
    "CameraFlicker",
    "CoatingThickness",
    "Event",
    "ExhaustFault",
    "HeaterFault",
    "Scenario",
    "ScenarioPlayer",
    "SensorDropout",
    "WebSpeed",
    "load_scenario",
    "parse_scenario",
]

#: Sensor names of `SensorDropout` besides the zone names.
LINE_SENSOR = "line"
CAMERA_SENSOR = "camera"


@dataclass(frozen=True, kw_only=True)
class _EventBase:
    at_s: float = bounded(lo=0.0, hi=1e7, doc="start, s of line time since the start of the run")
    duration_s: float | None = bounded(None, gt=0.0, hi=1e7, doc="how long; null: until the end of the run")

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def end_s(self) -> float:
        """End of the event, s (``inf`` when it lasts until the end of the run)."""
        return math.inf if self.duration_s is None else self.at_s + self.duration_s

    def active(self, t_s: float) -> bool:
        """The event is on at line time ``t_s``."""
        return self.at_s <= t_s < self.end_s

    @property
    def target(self) -> str:
        """What the event acts on (two events of a kind may not overlap on one target)."""
        return ""


@dataclass(frozen=True, kw_only=True)
class CoatingThickness(_EventBase):
    """The coater lays a different wet thickness (thicker coating cracks more)."""

    kind: Literal["coating_thickness"] = "coating_thickness"
    wet_thickness_um: float = bounded(lo=1.0, hi=2000.0)


@dataclass(frozen=True, kw_only=True)
class Bubbles(_EventBase):
    """A fraction of the coating laid during the event traps a bubble."""

    kind: Literal["bubbles"] = "bubbles"
    fraction: float = bounded(gt=0.0, hi=1.0)
    radius_um: float = bounded(gt=0.0, hi=1000.0)


@dataclass(frozen=True, kw_only=True)
class WebSpeed(_EventBase):
    """Web speed set-point change (an operator's command)."""

    kind: Literal["web_speed"] = "web_speed"
    speed_m_min: float = bounded(gt=0.0, hi=500.0)


@dataclass(frozen=True, kw_only=True)
class HeaterFault(_EventBase):
    """The heater of a zone cannot heat above ``max_temperature_c`` (None: no heating at all)."""

    kind: Literal["heater_fault"] = "heater_fault"
    zone: str
    max_temperature_c: float | None = bounded(None, lo=-40.0, hi=400.0)

    @property
    def target(self) -> str:
        return self.zone


@dataclass(frozen=True, kw_only=True)
class ExhaustFault(_EventBase):
    """The exhaust of a zone cannot move more than ``max_fresh_air_m3_h`` (stuck damper, weak fan)."""

    kind: Literal["exhaust_fault"] = "exhaust_fault"
    zone: str
    max_fresh_air_m3_h: float = bounded(gt=0.0, hi=1e6)

    @property
    def target(self) -> str:
        return self.zone


@dataclass(frozen=True, kw_only=True)
class SensorDropout(_EventBase):
    """A sensor stops publishing: a zone's sensors (zone name), ``line`` or ``camera``."""

    kind: Literal["sensor_dropout"] = "sensor_dropout"
    sensor: str

    @property
    def target(self) -> str:
        return self.sensor


@dataclass(frozen=True, kw_only=True)
class CameraFlicker(_EventBase):
    """Camera frames are ``gain`` times brighter (illumination flicker)."""

    kind: Literal["camera_flicker"] = "camera_flicker"
    gain: float = bounded(gt=0.0, hi=10.0)


Event = CoatingThickness | Bubbles | WebSpeed | HeaterFault | ExhaustFault | SensorDropout | CameraFlicker
#: Event classes by their ``kind``.
EVENT_KINDS: Mapping[str, type[_EventBase]] = {
    cls.kind: cls for cls in (CoatingThickness, Bubbles, WebSpeed, HeaterFault, ExhaustFault, SensorDropout,
                              CameraFlicker)  # type: ignore[misc]
}


@dataclass(frozen=True)
class Scenario:
    """A named list of disturbance events (in file order).

    Attributes
    ----------
    name : str
        Scenario name.
    events : tuple of Event
        The events, in the order of the file (error messages index them).
    description : str
        Free text.
    source : str
        File the scenario came from (error messages), ``"<scenario>"`` if built in code.
    """

    name: str
    events: tuple[Event, ...] = ()
    description: str = ""
    source: str = "<scenario>"

    def check_line(self, config: LineConfig) -> None:
        """Check the events against a line: zone names, speed limits.

        Raises
        ------
        ConfigError
            ``SOURCE: events[i].key: expected ..., found ...``.
        """
        zones = [z.name for z in config.dryer.zones]
        for i, ev in enumerate(self.events):
            where = f"{self.source}: events[{i}]"
            if isinstance(ev, (HeaterFault, ExhaustFault)) and ev.zone not in zones:
                raise ConfigError(f"{where}.zone: expected one of the line's zones {zones}, found {ev.zone!r}")
            if isinstance(ev, SensorDropout) and ev.sensor not in (*zones, LINE_SENSOR, CAMERA_SENSOR):
                raise ConfigError(f"{where}.sensor: expected one of {[*zones, LINE_SENSOR, CAMERA_SENSOR]}, "
                                  f"found {ev.sensor!r}")
            if isinstance(ev, WebSpeed):
                lo, hi = config.web.speed_limits_m_min
                if not lo <= ev.speed_m_min <= hi:
                    raise ConfigError(f"{where}.speed_m_min: expected within the line's speed_limits_m_min "
                                      f"[{lo}, {hi}], found {ev.speed_m_min}")


def parse_scenario(data: Any, *, source: str = "<scenario>") -> Scenario:
    """Build a validated `Scenario` from parsed YAML.

    Parameters
    ----------
    data : mapping
        ``{name: str, description: str (optional), events: [ {kind: ..., at_s: ..., ...}, ... ]}``.
    source : str
        Name used in error messages (the file).

    Raises
    ------
    ConfigError
        ``SOURCE: key.path: expected ..., found ...``: not a mapping, unknown or missing
        keys, an unknown ``kind``, a value out of range, two events of one kind
        overlapping on the same target.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with keys ['description', 'events', 'name'], "
                          f"found {type(data).__name__}")
    allowed = {"name", "description", "events"}
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown key; expected one of {sorted(allowed)}")
    for key in ("name", "events"):
        if key not in data:
            raise ConfigError(f"{source}: {key}: required key is missing")
    name, description, raw = data["name"], data.get("description", ""), data["events"]
    if not (isinstance(name, str) and name):
        raise ConfigError(f"{source}: name: expected a non-empty string, found {name!r}")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description: expected a string, found {description!r}")
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: events: expected a list of events, found {type(raw).__name__}")
    events: list[Event] = []
    for i, item in enumerate(raw):
        where = f"{source}: events[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with a 'kind' key, found {type(item).__name__}")
        kind = item.get("kind")
        if not (isinstance(kind, str) and kind in EVENT_KINDS):
            found = "nothing" if "kind" not in item else repr(kind)
            raise ConfigError(f"{where}.kind: expected one of {sorted(EVENT_KINDS)}, found {found}")
        events.append(_build(EVENT_KINDS[kind], item, where, None))  # type: ignore[arg-type]
    for i, ev in enumerate(events):
        for j in range(i):
            other = events[j]
            if (other.kind == ev.kind and other.target == ev.target
                    and ev.at_s < other.end_s and other.at_s < ev.end_s):
                on = f" on {ev.target!r}" if ev.target else ""
                raise ConfigError(f"{source}: events[{i}]: {ev.kind}{on} from {ev.at_s:g} s overlaps events[{j}] "
                                  f"({other.at_s:g} s to {other.end_s:g} s); expected one {ev.kind} at a time")
    return Scenario(name=name, events=tuple(events), description=description, source=source)


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario YAML file (``yaml.safe_load``).

    Raises
    ------
    ConfigError
        Missing file, invalid YAML or a schema problem; the message names the file and the key.

    Examples
    --------
    >>> load_scenario("configs/scenarios/default.yaml").events[0].kind  # doctest: +SKIP
    'coating_thickness'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the scenario file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from exc
    return parse_scenario(data, source=str(path))


class ScenarioPlayer:
    """Applies a scenario to a line as it runs.

    Parameters
    ----------
    scenario : Scenario or None
        The events (None: no disturbance).
    line : Line
        The line to disturb (its time ``line.t_s`` is the scenario's clock).
    seed : int
        Seed of the bubble draws.

    Notes
    -----
    Events are evaluated at the start of each `step` at the line's time, so their
    resolution is the step. The heater fault caps the heater's target temperature
    during the step (the air follows through the heater lag), the exhaust fault the
    exhaust's target fresh air, while the reported set-points stay the commanded ones; it reaches into the line's private actuator
    state (same package).

    Examples
    --------
    >>> player = ScenarioPlayer(load_scenario(path), Line())  # doctest: +SKIP
    >>> readings = player.step(1.0, {"Z1": ZoneSetpoint(60.0, 1200.0)})  # doctest: +SKIP
    >>> player.publishes("Z2"), player.camera_gain()  # doctest: +SKIP
    (True, 1.0)
    """

    def __init__(self, scenario: Scenario | None, line: Line, *, seed: int = 0) -> None:
        self.scenario = scenario if scenario is not None else Scenario(name="none")
        self.scenario.check_line(line.config)
        self.line = line
        self._rng = np.random.default_rng([int(seed), 0x5CE1])
        self._started: set[int] = set()
        self._ended: set[int] = set()
        self._restore: dict[int, float] = {}
        self._last_parcel = int(line.parcel_id.max()) if line.parcel_id.size else -1
        self.log: list[tuple[float, str]] = []  # (line time, "start"/"end" + event description)

    # ------------------------------------------------------------ queries
    def active(self, t_s: float | None = None) -> tuple[Event, ...]:
        """Events on at ``t_s`` (default: the line's time)."""
        t = self.line.t_s if t_s is None else t_s
        return tuple(ev for ev in self.scenario.events if ev.active(t))

    def publishes(self, sensor: str, t_s: float | None = None) -> bool:
        """Whether ``sensor`` (zone name, ``"line"`` or ``"camera"``) reports at ``t_s``."""
        return not any(isinstance(ev, SensorDropout) and ev.sensor == sensor for ev in self.active(t_s))

    def camera_gain(self, t_s: float | None = None) -> float:
        """Brightness gain of the camera at ``t_s`` (1 without flicker)."""
        return math.prod(ev.gain for ev in self.active(t_s) if isinstance(ev, CameraFlicker))

    def heater_caps(self, t_s: float | None = None) -> dict[str, float]:
        """Highest air temperature each faulty zone's heater can reach, C."""
        ambient = self.line.config.ambient_temperature_c
        caps: dict[str, float] = {}
        for ev in self.active(t_s):
            if isinstance(ev, HeaterFault):
                cap = ambient if ev.max_temperature_c is None else ev.max_temperature_c
                caps[ev.zone] = min(caps.get(ev.zone, math.inf), cap)
        return caps

    def exhaust_caps(self, t_s: float | None = None) -> dict[str, float]:
        """Most fresh air each faulty zone's exhaust can move, m3/h."""
        caps: dict[str, float] = {}
        for ev in self.active(t_s):
            if isinstance(ev, ExhaustFault):
                caps[ev.zone] = min(caps.get(ev.zone, math.inf), ev.max_fresh_air_m3_h)
        return caps

    # ------------------------------------------------------------ stepping
    def _transitions(self) -> dict[str, float]:
        """Start / end events due at the line's time; returns the set-points they imply."""
        line, t = self.line, self.line.t_s
        extra: dict[str, float] = {}
        for i, ev in enumerate(self.scenario.events):
            if i not in self._started and t >= ev.at_s:
                self._started.add(i)
                self.log.append((t, f"start {ev.kind} {ev.target}".rstrip()))
                if isinstance(ev, CoatingThickness):
                    self._restore[i] = float(line._wet_um)
                    line.set_wet_thickness(ev.wet_thickness_um)
                elif isinstance(ev, WebSpeed):
                    self._restore[i] = float(line._speed_sp)
                    extra["web_speed_m_min"] = ev.speed_m_min
            if i in self._started and i not in self._ended and t >= ev.end_s:
                self._ended.add(i)
                self.log.append((t, f"end {ev.kind} {ev.target}".rstrip()))
                if isinstance(ev, CoatingThickness):
                    line.set_wet_thickness(self._restore[i])
                elif isinstance(ev, WebSpeed) and line._speed_sp == ev.speed_m_min:  # not replaced meanwhile
                    extra["web_speed_m_min"] = self._restore[i]
        return extra

    def step(self, dt_s: float, setpoints: Mapping[str, ZoneSetpoint | Mapping[str, float] | float] | None = None
             ) -> LineReadings:
        """Advance the line by ``dt_s`` seconds under the scenario.

        Parameters
        ----------
        dt_s : float
            Step, s.
        setpoints : mapping, optional
            As `Line.step` (zone set-points and ``"web_speed_m_min"``); applied before the
            scenario's own web speed changes of this step.

        Returns
        -------
        LineReadings
            Readings after the step (reported set-points are the commanded ones).

        Raises
        ------
        ValueError
            A set-point outside the line's limits (nothing is applied, the line does not step).
        """
        line = self.line
        merged: dict[str, Any] = dict(setpoints or {})
        merged.update(self._transitions())
        saved = line._saved_setpoints()
        try:
            line._apply_setpoints(merged)
        except (ValueError, KeyError, TypeError):
            line._restore_setpoints(saved)
            raise
        heat, exhaust = self.heater_caps(), self.exhaust_caps()
        commanded = (line._t_sp.copy(), line._f_sp.copy())
        if heat:
            line._t_sp = np.minimum(line._t_sp, [heat.get(name, math.inf) for name in line.zone_names])
        if exhaust:
            line._f_sp = np.minimum(line._f_sp, [exhaust.get(name, math.inf) for name in line.zone_names])
        try:
            line.step(dt_s)
        finally:
            line._t_sp, line._f_sp = commanded
        self._add_bubbles()
        return line.readings()

    def _add_bubbles(self) -> None:
        line = self.line
        new = line.parcel_id > self._last_parcel
        if line.parcel_id.size:
            self._last_parcel = max(self._last_parcel, int(line.parcel_id.max()))
        events = [ev for ev in self.active() if isinstance(ev, Bubbles)]
        if not events or not new.any():
            return
        films = line.films
        radius = films.bubble_radius_um.copy()
        radius0 = films.bubble_radius0_um.copy()
        for ev in events:
            hit = new & (self._rng.random(new.shape[0]) < ev.fraction)
            radius[hit] = ev.radius_um
            radius0[hit] = ev.radius_um
        line.films = dataclasses.replace(films, bubble_radius_um=radius, bubble_radius0_um=radius0)
