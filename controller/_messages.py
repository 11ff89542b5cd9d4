"""MQTT topics and payloads of a mudcrack line: typed messages, strict decoding.

Pure code, no network: the daemon, the vision node and the virtual line build topic
strings with `Topics`, turn messages into bytes with `encode` and bytes into validated,
frozen messages with `decode`. Every rejection is a `MessageError` carrying a `Reason`
code, so a receiver can log it, count it per reason and carry on.

Payloads are compact UTF-8 JSON; units are in the key names; every message carries
``schema_version``, ``timestamp_s`` (seconds since the Unix epoch, UTC, on the sender's
clock), ``source`` and ``seq``. Camera frames are binary (`controller._frames`). The
topic tree, QoS/retain, examples and rejection reasons are documented in ``docs/mqtt.md``.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from ._frames import Frame

__all__ = [
    "EXAMPLE_TIMESTAMP_S", "POLICY", "SCHEMA_VERSION", "ControllerStatus", "CrackEstimate", "Decision", "Limits",
    "LineCommand", "LineSensors", "Message", "MessageError", "MessageKind", "Metrics", "Policy", "Reason", "TopicInfo",
    "Topics", "ZoneCommand", "ZoneSensors", "decode", "encode", "examples", "parse_topic",
]

#: Version of the payload schema written by `encode` and the only one `decode` accepts.
SCHEMA_VERSION = 1
#: Timestamp of the documented examples (2026-01-01T00:00:00Z).
EXAMPLE_TIMESTAMP_S = 1_767_225_600.0

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_NAME = re.compile(NAME_PATTERN)
_KEY = re.compile(r"[a-z][a-z0-9_.]{0,63}")  # keys of evidence / inputs / counters maps
_MAX_SAFE_INT = 2**53 - 1  # largest integer every JSON reader keeps exactly


class Reason(enum.Enum):
    """Why a message was rejected (one counter per member in the daemon's metrics)."""

    OVERSIZED = "oversized"            # payload above the size limit (checked before parsing)
    MALFORMED_JSON = "malformed_json"  # not UTF-8 JSON, NaN/Infinity literals, duplicate keys, too deep
    SCHEMA = "schema"                  # not an object, bad schema_version, inconsistent fields
    MISSING_KEY = "missing_key"        # a required key is absent
    UNKNOWN_KEY = "unknown_key"        # a key the schema does not define
    TYPE = "type"                      # wrong JSON type (bools are not numbers), non-finite number
    RANGE = "range"                    # outside the plausible bounds, bad name, too long, too many items
    STALE = "stale"                    # timestamp older than the allowed age
    FUTURE = "future"                  # timestamp ahead of the receiver's clock beyond the allowed skew
    TOPIC = "topic"                    # unknown topic, bad line id / zone, topic and payload disagree
    FRAME = "frame"                    # frame envelope, size, shape or image decoding problem


class MessageError(ValueError):
    """A message was rejected.

    Parameters
    ----------
    reason : Reason
        Rejection code.
    detail : str
        What was expected and what was found.
    topic : str
        Topic the payload arrived on (or a description when encoding).
    key : str, optional
        Payload key at fault.
    """

    def __init__(self, reason: Reason, detail: str, *, topic: str, key: str | None = None) -> None:
        self.reason = reason
        self.topic = topic
        self.key = key
        where = f"{_short(topic, 120)}: " + (f"key {key!r}: " if key is not None else "")
        super().__init__(f"{where}{detail} [{reason.value}]")


def _short(value: object, n: int = 60) -> str:
    """``repr`` cut to ``n`` characters (attacker-sized values and control characters stay out of logs)."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass(frozen=True)
class Limits:
    """Size, range and age limits applied by `decode` (and by `encode`, except ages).

    Ranges are inclusive ``(low, high)`` bounds of physically plausible values, wide on
    purpose: they catch garbage and unit mix-ups, not process excursions (the control
    law and the safety layer own the operating limits). Ages are seconds; ``None``
    disables the check.
    """

    max_payload_bytes: int = 64 * 1024
    max_frame_bytes: int = 64 * 1024 * 1024
    max_frame_pixels: int = 8192 * 8192
    max_text_chars: int = 512
    max_items: int = 256
    temperature_c: tuple[float, float] = (-40.0, 400.0)
    airflow_m3_h: tuple[float, float] = (0.0, 100_000.0)
    solvent_concentration_g_m3: tuple[float, float] = (0.0, 1000.0)
    power_kw: tuple[float, float] = (0.0, 10_000.0)
    speed_m_min: tuple[float, float] = (0.0, 500.0)
    thickness_um: tuple[float, float] = (0.0, 5000.0)
    residual_solvent_g_m2: tuple[float, float] = (0.0, 1000.0)
    position_m: tuple[float, float] = (0.0, 100_000.0)
    um_per_px: tuple[float, float] = (1e-3, 1e4)
    site_um: tuple[float, float] = (-1e7, 1e7)
    score: tuple[float, float] = (-1e6, 1e6)
    risk: tuple[float, float] = (0.0, 1.0)
    timestamp_s: tuple[float, float] = (0.0, 1e11)
    duration_s: tuple[float, float] = (0.0, 1e10)
    max_age_sensors_s: float | None = 30.0
    max_age_frame_s: float | None = 30.0
    max_age_surface_estimate_s: float | None = 120.0
    max_age_lab_estimate_s: float | None = 7 * 86_400.0
    max_age_setpoint_s: float | None = None
    max_age_status_s: float | None = None
    max_age_controller_s: float | None = 300.0
    max_future_s: float = 5.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                if not (len(value) == 2 and all(math.isfinite(v) for v in value) and value[0] < value[1]):
                    raise ValueError(f"Limits.{f.name}: expected finite (low, high) with low < high, found {value!r}")
            elif value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"Limits.{f.name}: expected a positive number, found {value!r}")


DEFAULT_LIMITS = Limits()


# ----------------------------------------------------------------------------- topics
class MessageKind(enum.Enum):
    """Message kinds; the value is the topic below ``mudcrack/<line_id>/``."""

    ZONE_SENSORS = "sensors/zone"
    LINE_SENSORS = "sensors/line"
    FRAME = "camera/frame"
    FRAME_META = "camera/frame/meta"
    SURFACE_ESTIMATE = "estimates/surface"
    LAB_ESTIMATE = "estimates/lab"
    ZONE_SETPOINT = "setpoints/zone"
    LINE_SETPOINT = "setpoints/line"
    STATUS = "controller/status"
    DECISION = "controller/decision"
    METRICS = "controller/metrics"

    @property
    def per_zone(self) -> bool:
        """The topic ends with a zone name."""
        return self in (MessageKind.ZONE_SENSORS, MessageKind.ZONE_SETPOINT)


@dataclass(frozen=True)
class Policy:
    """How a kind is published: MQTT QoS, retain flag, and the `Limits` age attribute."""

    qos: int
    retain: bool
    max_age: str


_K = MessageKind
#: QoS / retain per kind: retained state (set-points, status, last lab result), QoS 1 for
#: commands and low-rate results, QoS 0 for high-rate telemetry.
POLICY: Mapping[MessageKind, Policy] = {
    _K.ZONE_SENSORS: Policy(0, False, "max_age_sensors_s"),
    _K.LINE_SENSORS: Policy(0, False, "max_age_sensors_s"),
    _K.FRAME: Policy(0, False, "max_age_frame_s"),
    _K.FRAME_META: Policy(0, False, "max_age_frame_s"),
    _K.SURFACE_ESTIMATE: Policy(1, False, "max_age_surface_estimate_s"),
    _K.LAB_ESTIMATE: Policy(1, True, "max_age_lab_estimate_s"),
    _K.ZONE_SETPOINT: Policy(1, True, "max_age_setpoint_s"),
    _K.LINE_SETPOINT: Policy(1, True, "max_age_setpoint_s"),
    _K.STATUS: Policy(1, True, "max_age_status_s"),
    _K.DECISION: Policy(1, False, "max_age_controller_s"),
    _K.METRICS: Policy(0, False, "max_age_controller_s"),
}
_BY_SUFFIX = {k.value: k for k in MessageKind if not k.per_zone}
_ATTR = {_K.LINE_SENSORS: "line_sensors", _K.FRAME: "frame", _K.FRAME_META: "frame_meta",
         _K.SURFACE_ESTIMATE: "surface_estimate", _K.LAB_ESTIMATE: "lab_estimate", _K.LINE_SETPOINT: "line_setpoint",
         _K.STATUS: "status", _K.DECISION: "decision", _K.METRICS: "metrics"}


@dataclass(frozen=True)
class TopicInfo:
    """A parsed topic: line id, message kind and zone (``None`` unless per zone)."""

    line_id: str
    kind: MessageKind
    zone: str | None = None


def _check_name(what: str, name: object, topic: str) -> str:
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        raise MessageError(Reason.TOPIC, f"{what}: expected a name matching {NAME_PATTERN}, found {_short(name)}",
                           topic=str(topic))
    return name


def parse_topic(topic: str, *, root: str = "mudcrack") -> TopicInfo:
    """Parse and validate a topic string.

    Parameters
    ----------
    topic : str
        E.g. ``"mudcrack/pilot-1/sensors/zone/Z1"``.
    root : str
        First topic level.

    Returns
    -------
    TopicInfo

    Raises
    ------
    MessageError
        Reason ``TOPIC``: another root, an unknown kind, a bad line id or zone name.

    Examples
    --------
    >>> parse_topic("mudcrack/pilot-1/setpoints/zone/Z2").zone
    'Z2'
    """
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) < 3 or parts[0] != root:
        raise MessageError(Reason.TOPIC, f"expected '{root}/<line_id>/<kind>'", topic=str(topic))
    line_id = _check_name("line id", parts[1], topic)
    rest = "/".join(parts[2:])
    if rest in _BY_SUFFIX:
        return TopicInfo(line_id, _BY_SUFFIX[rest])
    if len(parts) == 5 and "/".join(parts[2:4]) in (_K.ZONE_SENSORS.value, _K.ZONE_SETPOINT.value):
        return TopicInfo(line_id, MessageKind("/".join(parts[2:4])), _check_name("zone", parts[4], topic))
    kinds = ", ".join(k.value + ("/<zone>" if k.per_zone else "") for k in MessageKind)
    raise MessageError(Reason.TOPIC, f"unknown kind {_short(rest)}; expected one of {kinds}", topic=topic)


@dataclass(frozen=True)
class Topics:
    """Topic builder and parser for one line.

    Parameters
    ----------
    line_id : str
        Line id (``[A-Za-z0-9][A-Za-z0-9_-]{0,63}``); raises MessageError if invalid.
    root : str
        First topic level (tests use a unique root per test).

    Attributes
    ----------
    line_sensors, frame, frame_meta, surface_estimate, lab_estimate, line_setpoint, status, decision, metrics : str
        The topics of the kinds that are not per zone (`zone_sensors` and
        `zone_setpoint` build the per-zone ones).

    Examples
    --------
    >>> t = Topics("pilot-1")
    >>> t.zone_sensors("Z1"), t.filter(MessageKind.ZONE_SETPOINT)
    ('mudcrack/pilot-1/sensors/zone/Z1', 'mudcrack/pilot-1/setpoints/zone/+')
    """

    line_id: str
    root: str = "mudcrack"
    line_sensors: str = field(init=False, repr=False)
    frame: str = field(init=False, repr=False)
    frame_meta: str = field(init=False, repr=False)
    surface_estimate: str = field(init=False, repr=False)
    lab_estimate: str = field(init=False, repr=False)
    line_setpoint: str = field(init=False, repr=False)
    status: str = field(init=False, repr=False)
    decision: str = field(init=False, repr=False)
    metrics: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_name("line id", self.line_id, f"{self.root}/{self.line_id}")
        if not (isinstance(self.root, str) and self.root and not set(self.root) & set("/+#$")):
            raise ValueError(f"root: expected one topic level without '/', '+', '#' or '$', found {self.root!r}")
        for kind in MessageKind:
            if not kind.per_zone:
                object.__setattr__(self, _ATTR[kind], self.topic(kind))

    def topic(self, kind: MessageKind, zone: str | None = None) -> str:
        """Topic of ``kind`` (``zone`` required exactly for the per-zone kinds)."""
        base = f"{self.root}/{self.line_id}/{kind.value}"
        if kind.per_zone:
            return f"{base}/{_check_name('zone', zone, base + '/<zone>')}"
        if zone is not None:
            raise ValueError(f"zone: {kind.value} is not a per-zone topic, found zone={zone!r}")
        return base

    def filter(self, kind: MessageKind) -> str:
        """Subscription filter of ``kind`` (``+`` for the zone level)."""
        return f"{self.root}/{self.line_id}/{kind.value}" + ("/+" if kind.per_zone else "")

    def parse(self, topic: str) -> TopicInfo:
        """`parse_topic`, also requiring this line's id."""
        info = parse_topic(topic, root=self.root)
        if info.line_id != self.line_id:
            raise MessageError(Reason.TOPIC, f"line id: expected {self.line_id!r}, found {info.line_id!r}", topic=topic)
        return info

    def zone_sensors(self, zone: str) -> str:
        """Topic of the sensor readings of ``zone``."""
        return self.topic(_K.ZONE_SENSORS, zone)

    def zone_setpoint(self, zone: str) -> str:
        """Topic of the set-points of ``zone``."""
        return self.topic(_K.ZONE_SETPOINT, zone)


# ----------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class _Spec:
    kind: str  # any float int bool name text choice points profile zone_map number_map count_map
    limit: str | None = None  # Limits attribute holding (low, high)
    bounds: tuple[float, float] | None = None  # fixed bounds
    choices: tuple[str, ...] = ()


def _s(kind: str, limit: str | None = None, *, bounds: tuple[float, float] | None = None,
       choices: tuple[str, ...] = ()) -> dict[str, _Spec]:
    """Field metadata: how `decode` checks the field (``limit`` names a `Limits` range)."""
    return {"spec": _Spec(kind, limit, bounds, choices)}


_CLASSES: dict[MessageKind, type[Message]] = {}  # filled as message classes are defined


@dataclass(frozen=True, kw_only=True)
class Message:
    """Envelope shared by every JSON message.

    Attributes
    ----------
    timestamp_s : float
        Seconds since the Unix epoch (UTC) on the sender's clock: when the reading was
        taken, the estimate computed or the decision made.
    source : str
        Sender id (e.g. ``"sim-line"``, ``"vision-node"``, ``"controller"``).
    seq : int
        Per-sender message counter (duplicates under QoS 1, gaps, restarts).
    schema_version : int
        `SCHEMA_VERSION`.
    """

    KIND: ClassVar[tuple[MessageKind, ...]] = ()
    timestamp_s: float = field(metadata=_s("float", "timestamp_s"))
    source: str = field(metadata=_s("name"))
    seq: int = field(metadata=_s("int", bounds=(0, _MAX_SAFE_INT)))
    schema_version: int = field(default=SCHEMA_VERSION, metadata=_s("int"))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES.update({kind: cls for kind in cls.KIND})

    @classmethod
    def _check_values(cls, values: dict[str, Any], ctx: _Ctx) -> None:
        """Checks across fields after each field passed (may canonicalise ``values``)."""


@dataclass(frozen=True, kw_only=True)
class ZoneSensors(Message):
    """Readings of one dryer zone (``sensors/zone/<zone>``); ``None``: no reading.

    ``airflow_m3_h`` is the nozzle (supply fan) airflow, ``fresh_air_m3_h`` the exhaust flow
    (replaced by fresh air), ``solvent_concentration_g_m3`` the solvent vapour in the zone air.
    """

    KIND: ClassVar = (_K.ZONE_SENSORS,)
    zone: str = field(metadata=_s("name"))
    temperature_c: float = field(metadata=_s("float", "temperature_c"))
    airflow_m3_h: float = field(metadata=_s("float", "airflow_m3_h"))
    fresh_air_m3_h: float | None = field(default=None, metadata=_s("float", "airflow_m3_h"))
    solvent_concentration_g_m3: float | None = field(default=None, metadata=_s("float", "solvent_concentration_g_m3"))
    heater_power_kw: float | None = field(default=None, metadata=_s("float", "power_kw"))
    fan_power_kw: float | None = field(default=None, metadata=_s("float", "power_kw"))
    temperature_setpoint_c: float | None = field(default=None, metadata=_s("float", "temperature_c"))
    airflow_setpoint_m3_h: float | None = field(default=None, metadata=_s("float", "airflow_m3_h"))
    fresh_air_setpoint_m3_h: float | None = field(default=None, metadata=_s("float", "airflow_m3_h"))


@dataclass(frozen=True, kw_only=True)
class LineSensors(Message):
    """Line-wide readings (``sensors/line``); ``exit_residual_solvent_g_m2`` is the last
    coating that left the dryer (``None`` before any has)."""

    KIND: ClassVar = (_K.LINE_SENSORS,)
    web_speed_m_min: float = field(metadata=_s("float", "speed_m_min"))
    wet_thickness_um: float | None = field(default=None, metadata=_s("float", "thickness_um"))
    ambient_temperature_c: float | None = field(default=None, metadata=_s("float", "temperature_c"))
    exit_residual_solvent_g_m2: float | None = field(default=None, metadata=_s("float", "residual_solvent_g_m2"))


@dataclass(frozen=True, kw_only=True)
class CrackEstimate(Message):
    """Crack estimate (``estimates/surface`` from the vision node, ``estimates/lab`` from CT).

    ``kind`` (``surface`` or ``lab``) must match the topic. ``score`` is the detector's
    score (robust z units, `vision.OnsetEstimate.score`); ``risk`` the normalised onset
    risk in [0, 1] that the control law uses (also per zone in ``zone_risk`` and along
    the web in ``web_risk``, ``(position_m, risk)`` with increasing positions);
    ``onset_timestamp_s`` is set exactly when ``onset``; ``sites_um`` are predicted
    crack sites, strongest first, µm in the frame (row, col) or the scan (z, y, x);
    ``evidence`` summarises the evidence (units in the keys). See docs/mqtt.md.
    """

    KIND: ClassVar = (_K.SURFACE_ESTIMATE, _K.LAB_ESTIMATE)
    kind: str = field(metadata=_s("choice", choices=("surface", "lab")))
    score: float = field(metadata=_s("float", "score"))
    risk: float = field(metadata=_s("float", "risk"))
    alarm: bool = field(metadata=_s("bool"))
    onset: bool = field(metadata=_s("bool"))
    onset_timestamp_s: float | None = field(default=None, metadata=_s("float", "timestamp_s"))
    sample_timestamp_s: float | None = field(default=None, metadata=_s("float", "timestamp_s"))
    position_m: float | None = field(default=None, metadata=_s("float", "position_m"))
    frame_id: int | None = field(default=None, metadata=_s("int", bounds=(0, _MAX_SAFE_INT)))
    sites_um: tuple[tuple[float, ...], ...] = field(default=(), metadata=_s("points", "site_um"))
    zone_risk: dict[str, float] = field(default_factory=dict, metadata=_s("zone_map", "risk"))
    web_risk: tuple[tuple[float, float], ...] = field(default=(), metadata=_s("profile"))
    evidence: dict[str, float] = field(default_factory=dict, metadata=_s("number_map"))

    @classmethod
    def _check_values(cls, values: dict[str, Any], ctx: _Ctx) -> None:
        onset, when = values["onset"], values.get("onset_timestamp_s")
        if onset != (when is not None):
            raise ctx.err(Reason.SCHEMA, "onset_timestamp_s", f"expected a time exactly when onset is true, "
                                                              f"found onset={onset} and {when!r}")
        dim = 2 if values["kind"] == "surface" else 3
        if any(len(p) != dim for p in values.get("sites_um", ())):
            raise ctx.err(Reason.RANGE, "sites_um", f"expected {dim} coordinates per {values['kind']} site")


@dataclass(frozen=True, kw_only=True)
class ZoneCommand(Message):
    """Set-points of one dryer zone (``setpoints/zone/<zone>``, retained, QoS 1).

    ``fresh_air_m3_h``: the zone's exhaust flow (``None``: not commanded, the exhaust keeps
    its own set-point).
    """

    KIND: ClassVar = (_K.ZONE_SETPOINT,)
    zone: str = field(metadata=_s("name"))
    temperature_c: float = field(metadata=_s("float", "temperature_c"))
    airflow_m3_h: float = field(metadata=_s("float", "airflow_m3_h"))
    fresh_air_m3_h: float | None = field(default=None, metadata=_s("float", "airflow_m3_h"))


@dataclass(frozen=True, kw_only=True)
class LineCommand(Message):
    """Web speed set-point (``setpoints/line``, retained, QoS 1)."""

    KIND: ClassVar = (_K.LINE_SETPOINT,)
    speed_m_min: float = field(metadata=_s("float", "speed_m_min"))


@dataclass(frozen=True, kw_only=True)
class ControllerStatus(Message):
    """Controller state (``controller/status``, retained; the last will says ``offline``).

    ``state``: ``online`` (controlling), ``safe`` (holding the configured safe state),
    ``offline`` (stopped, or the last will after a lost connection).
    """

    KIND: ClassVar = (_K.STATUS,)
    state: str = field(metadata=_s("choice", choices=("online", "safe", "offline")))
    detail: str | None = field(default=None, metadata=_s("text"))
    version: str | None = field(default=None, metadata=_s("text"))


@dataclass(frozen=True, kw_only=True)
class Decision(Message):
    """One decision of the control law with its reason (``controller/decision``).

    ``action`` is an identifier (``hold``, ``lower_drying_rate``, ``safe_state``, ...);
    ``inputs`` / ``outputs`` the numbers behind it, units in the keys; ``zone`` ``None``
    for line-wide decisions.
    """

    KIND: ClassVar = (_K.DECISION,)
    action: str = field(metadata=_s("name"))
    reason: str = field(metadata=_s("text"))
    zone: str | None = field(default=None, metadata=_s("name"))
    inputs: dict[str, float] = field(default_factory=dict, metadata=_s("number_map"))
    outputs: dict[str, float] = field(default_factory=dict, metadata=_s("number_map"))


@dataclass(frozen=True, kw_only=True)
class Metrics(Message):
    """Daemon health (``controller/metrics``): monotonic counters and gauges."""

    KIND: ClassVar = (_K.METRICS,)
    uptime_s: float = field(metadata=_s("float", "duration_s"))
    counters: dict[str, int] = field(default_factory=dict, metadata=_s("count_map"))
    gauges: dict[str, float] = field(default_factory=dict, metadata=_s("number_map"))


# ----------------------------------------------------------------------------- validation
class _Ctx:
    def __init__(self, topic: str, limits: Limits) -> None:
        self.topic, self.limits = topic, limits

    def err(self, reason: Reason, key: str | None, detail: str) -> MessageError:
        return MessageError(reason, detail, topic=self.topic, key=key)


def _number(v: object, ctx: _Ctx, key: str, bounds: tuple[float, float] | None) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ctx.err(Reason.TYPE, key, f"expected a number, found {type(v).__name__} {_short(v)}")
    span = "a number within float range" if bounds is None else f"within [{bounds[0]:g}, {bounds[1]:g}]"
    try:
        x = float(v)
    except OverflowError:  # an integer beyond float range
        raise ctx.err(Reason.RANGE, key, f"expected {span}, found {_short(v)}") from None
    if not math.isfinite(x):
        raise ctx.err(Reason.TYPE, key, f"expected a finite number, found {x!r}")
    if bounds is not None and not bounds[0] <= x <= bounds[1]:
        raise ctx.err(Reason.RANGE, key, f"expected {span}, found {_short(v)}")
    return x


def _integer(v: object, ctx: _Ctx, key: str, bounds: tuple[float, float] | None) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ctx.err(Reason.TYPE, key, f"expected an integer, found {type(v).__name__} {_short(v)}")
    if bounds is not None and not bounds[0] <= v <= bounds[1]:
        raise ctx.err(Reason.RANGE, key, f"expected within [{bounds[0]:g}, {bounds[1]:g}], found {_short(v)}")
    return int(v)


def _items(v: object, ctx: _Ctx, key: str, container: type) -> Any:
    what = "a list" if container is list else "an object"
    if not isinstance(v, (list, tuple) if container is list else Mapping):
        raise ctx.err(Reason.TYPE, key, f"expected {what}, found {type(v).__name__}")
    if len(v) > ctx.limits.max_items:
        raise ctx.err(Reason.RANGE, key, f"expected at most {ctx.limits.max_items} items, found {len(v)}")
    return v


def _check(spec: _Spec, v: object, ctx: _Ctx, key: str) -> Any:
    """Validate one value against its spec; returns the canonical Python value."""
    lim = ctx.limits
    bounds = getattr(lim, spec.limit) if spec.limit else spec.bounds
    if isinstance(bounds, int):  # a size limit: 0..limit
        bounds = (0, bounds)
    kind = spec.kind
    if kind == "any":  # checked by the class's _check_values
        return v
    if kind == "float":
        return _number(v, ctx, key, bounds)
    if kind == "int":
        return _integer(v, ctx, key, bounds)
    if kind == "bool":
        if not isinstance(v, (bool, np.bool_)):
            raise ctx.err(Reason.TYPE, key, f"expected true or false, found {type(v).__name__} {_short(v)}")
        return bool(v)
    if kind in ("name", "text", "choice"):
        if not isinstance(v, str):
            raise ctx.err(Reason.TYPE, key, f"expected a string, found {type(v).__name__} {_short(v)}")
        if kind == "name" and not _NAME.fullmatch(v):
            raise ctx.err(Reason.RANGE, key, f"expected a name matching {NAME_PATTERN}, found {_short(v)}")
        if kind == "choice" and v not in spec.choices:
            raise ctx.err(Reason.RANGE, key, f"expected one of {list(spec.choices)}, found {_short(v)}")
        if kind == "text" and (len(v) > lim.max_text_chars or not v.isprintable()):
            raise ctx.err(Reason.RANGE, key, f"expected printable text of at most {lim.max_text_chars} characters, "
                                             f"found {len(v)} characters {_short(v)}")
        return v
    if kind == "points":
        pts = tuple(tuple(_number(c, ctx, key, bounds) for c in _items(p, ctx, key, list))
                    for p in _items(v, ctx, key, list))
        if any(len(p) not in (2, 3) or len(p) != len(pts[0]) for p in pts):
            raise ctx.err(Reason.RANGE, key, "expected points of 2 or 3 coordinates, all alike")
        return pts
    if kind == "profile":
        prof = []
        for p in _items(v, ctx, key, list):
            if not (isinstance(p, (list, tuple)) and len(p) == 2):
                raise ctx.err(Reason.TYPE, key, f"expected [position_m, risk] pairs, found {_short(p)}")
            prof.append((_number(p[0], ctx, key, lim.position_m), _number(p[1], ctx, key, lim.risk)))
        if any(b[0] <= a[0] for a, b in itertools.pairwise(prof)):
            raise ctx.err(Reason.RANGE, key, "expected strictly increasing positions")
        return tuple(prof)
    # maps: zone_map, number_map, count_map
    out = {}
    pattern = _NAME if kind == "zone_map" else _KEY
    for k, x in _items(v, ctx, key, dict).items():
        if not (isinstance(k, str) and pattern.fullmatch(k)):
            raise ctx.err(Reason.RANGE, key, f"expected keys matching {pattern.pattern}, found {_short(k)}")
        sub = f"{key}.{k}"
        out[k] = _integer(x, ctx, sub, (0, 2**63 - 1)) if kind == "count_map" else _number(x, ctx, sub, bounds)
    return out


def _validate(cls: type[Message], obj: Mapping[str, Any], ctx: _Ctx) -> dict[str, Any]:
    """Check keys and values of a payload object; returns canonical field values."""
    version = obj.get("schema_version", MISSING)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ctx.err(Reason.SCHEMA, "schema_version", f"expected {SCHEMA_VERSION}, found {_short(version)}")
    specs = {f.name: f for f in fields(cls)}
    unknown = sorted(k for k in obj if k not in specs)
    if unknown:
        shown = ", ".join(_short(k, 40) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ctx.err(Reason.UNKNOWN_KEY, None, f"unknown keys {shown} for {cls.__name__}; "
                                                f"expected {sorted(specs)}")
    values: dict[str, Any] = {}
    for name, f in specs.items():
        if name not in obj:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ctx.err(Reason.MISSING_KEY, name, f"required by {cls.__name__}")
            continue
        v = obj[name]
        if v is None and f.default is None:
            values[name] = None
        else:
            values[name] = _check(f.metadata["spec"], v, ctx, name)
    cls._check_values(values, ctx)
    return values


def _class_for(kind: MessageKind) -> type[Message]:
    if kind not in _CLASSES:
        from . import _frames  # noqa: F401  (defines FrameMeta; builds on this module)
    return _CLASSES[kind]


def _check_time(timestamp_s: float, kind: MessageKind, now_s: float | None, ctx: _Ctx) -> None:
    if now_s is None:
        return
    if not math.isfinite(now_s):
        raise ValueError(f"now_s: expected a finite time in seconds or None, found {now_s!r}")
    max_age = getattr(ctx.limits, POLICY[kind].max_age)
    if max_age is not None and now_s - timestamp_s > max_age:
        raise ctx.err(Reason.STALE, "timestamp_s", f"expected at most {max_age:g} s old, "
                                                   f"found {now_s - timestamp_s:.3f} s old")
    if timestamp_s - now_s > ctx.limits.max_future_s:
        raise ctx.err(Reason.FUTURE, "timestamp_s", f"expected at most {ctx.limits.max_future_s:g} s ahead of the "
                                                    f"receiver's clock, found {timestamp_s - now_s:.3f} s ahead")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate keys")
    return out


def _loads(payload: bytes, ctx: _Ctx) -> Any:
    try:
        return json.loads(bytes(payload).decode("utf-8"), parse_constant=_reject_constant,
                          object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ctx.err(Reason.MALFORMED_JSON, None, f"expected a UTF-8 JSON object: {_short(str(exc), 100)}") from exc


def _decode_json(info: TopicInfo, topic: str, payload: bytes, now_s: float | None, limits: Limits) -> Message:
    ctx = _Ctx(topic, limits)
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ctx.err(Reason.TYPE, None, f"expected a bytes payload, found {type(payload).__name__}")
    if len(payload) > limits.max_payload_bytes:
        raise ctx.err(Reason.OVERSIZED, None, f"expected at most {limits.max_payload_bytes} bytes, found {len(payload)}")
    obj = _loads(payload, ctx)
    if not isinstance(obj, dict):
        raise ctx.err(Reason.SCHEMA, None, f"expected a JSON object, found {type(obj).__name__}")
    cls = _class_for(info.kind)
    values = _validate(cls, obj, ctx)
    if info.zone is not None and values["zone"] != info.zone:
        raise ctx.err(Reason.TOPIC, "zone", f"expected {info.zone!r} as in the topic, found {values['zone']!r}")
    if cls is CrackEstimate and info.kind.value != f"estimates/{values['kind']}":
        raise ctx.err(Reason.TOPIC, "kind", f"expected {info.kind.value.split('/')[1]!r} as in the topic, "
                                            f"found {values['kind']!r}")
    _check_time(values["timestamp_s"], info.kind, now_s, ctx)
    return cls(**values)


def decode(topic: str, payload: bytes, *, now_s: float | None, limits: Limits = DEFAULT_LIMITS,
           line_id: str | None = None) -> Message | Frame:
    """Validate a received payload and return the typed message.

    Parameters
    ----------
    topic : str
        Topic the payload arrived on; selects the message class.
    payload : bytes
        The MQTT payload.
    now_s : float or None
        Receiver's clock, seconds since the epoch (the daemon's injected clock); ``None``
        skips the age checks (replay of recorded logs).
    limits : Limits
        Size, range and age limits.
    line_id : str, optional
        Require this line id in the topic.

    Returns
    -------
    Message or Frame
        The message class of the topic (`controller._frames.Frame` for ``camera/frame``).

    Raises
    ------
    MessageError
        With `Reason` ``OVERSIZED`` (checked before parsing), ``MALFORMED_JSON``,
        ``SCHEMA``, ``MISSING_KEY``, ``UNKNOWN_KEY``, ``TYPE``, ``RANGE``, ``STALE``,
        ``FUTURE``, ``TOPIC`` or ``FRAME``; a payload never raises anything else.
    ValueError
        ``now_s`` is not finite (a bug of the caller, not of the sender).

    Examples
    --------
    >>> topic, msg = examples()[0]
    >>> decode(topic, encode(msg), now_s=msg.timestamp_s) == msg
    True
    """
    info = parse_topic(topic) if line_id is None else Topics(line_id).parse(topic)
    if info.kind is MessageKind.FRAME:
        from ._frames import decode_frame  # _frames builds on this module

        return decode_frame(topic, payload, now_s=now_s, limits=limits)
    return _decode_json(info, topic, payload, now_s, limits)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def encode(msg: Message | Frame, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Serialise a message: compact UTF-8 JSON with sorted keys (deterministic).

    The message goes through the same checks as `decode` (except the age and topic
    checks), so what is published is what receivers accept.

    Parameters
    ----------
    msg : Message or Frame
        A frame becomes the binary envelope of `controller._frames`.
    limits : Limits
        Limits to check against.

    Returns
    -------
    bytes

    Raises
    ------
    MessageError
        The message would be rejected by a receiver using ``limits``.
    TypeError
        ``msg`` is not a message.
    """
    if not isinstance(msg, Message):
        from ._frames import Frame, encode_frame

        if isinstance(msg, Frame):
            return encode_frame(msg, limits=limits)
        raise TypeError(f"msg: expected a Message or Frame, found {type(msg).__name__}")
    ctx = _Ctx(f"<encode {type(msg).__name__}>", limits)
    obj = {f.name: _plain(getattr(msg, f.name)) for f in fields(msg)}
    values = _validate(type(msg), obj, ctx)
    text = json.dumps({k: _plain(v) for k, v in values.items()}, sort_keys=True, separators=(",", ":"),
                      allow_nan=False, ensure_ascii=False)
    data = text.encode("utf-8")
    if len(data) > limits.max_payload_bytes:
        raise ctx.err(Reason.OVERSIZED, None, f"expected at most {limits.max_payload_bytes} bytes, found {len(data)}")
    return data


def examples(line_id: str = "pilot-1") -> list[tuple[str, Message]]:
    """One complete example of every JSON message, with its topic (the ones in docs/mqtt.md).

    All are stamped `EXAMPLE_TIMESTAMP_S`, the receiver's ``now_s`` in the docs tests.
    """
    t, ts = Topics(line_id), EXAMPLE_TIMESTAMP_S
    frame_meta: Any = _class_for(_K.FRAME_META)
    env: dict[str, Any] = {"timestamp_s": ts, "seq": 1042}
    return [
        (t.zone_sensors("Z1"), ZoneSensors(**env, source="sim-line", zone="Z1", temperature_c=59.8,
                                           airflow_m3_h=1203.5, fresh_air_m3_h=301.2, solvent_concentration_g_m3=4.21,
                                           heater_power_kw=3.9, fan_power_kw=0.76, temperature_setpoint_c=60.0,
                                           airflow_setpoint_m3_h=1200.0, fresh_air_setpoint_m3_h=300.0)),
        (t.line_sensors, LineSensors(**env, source="sim-line", web_speed_m_min=3.0, wet_thickness_um=180.2,
                                     ambient_temperature_c=22.0, exit_residual_solvent_g_m2=0.42)),
        (t.frame_meta, frame_meta(**env, source="sim-line", frame_id=311, shape=(512, 512), dtype="uint8",
                                 encoding="raw-u8", byte_count=262144, um_per_px=5.0, position_m=7.0)),
        (t.surface_estimate, CrackEstimate(
            **env, source="vision-node", kind="surface", score=4.7, risk=0.62, alarm=True, onset=False,
            sample_timestamp_s=ts - 1.5, position_m=7.0, frame_id=311,
            sites_um=((1210.0, 845.5), (302.5, 1990.0)), zone_risk={"Z3": 0.62},
            web_risk=((6.5, 0.2), (7.0, 0.62)),
            evidence={"z_max": 6.1, "n_hot": 5, "valid_fraction": 0.97, "consecutive": 2, "max_jump_um": 1.8})),
        (t.lab_estimate, CrackEstimate(
            **env, source="ct-lab", kind="lab", score=9.3, risk=1.0, alarm=True, onset=True,
            onset_timestamp_s=ts - 600.0, sample_timestamp_s=ts - 3600.0, position_m=7.0,
            sites_um=((40.0, 812.0, 1304.0),), zone_risk={"Z3": 1.0},
            evidence={"valid_fraction": 0.91, "median_zncc": 0.94, "max_jump_um": 3.2})),
        (t.zone_setpoint("Z3"), ZoneCommand(**env, source="controller", zone="Z3", temperature_c=105.0,
                                            airflow_m3_h=2200.0, fresh_air_m3_h=640.0)),
        (t.line_setpoint, LineCommand(**env, source="controller", speed_m_min=3.5)),
        (t.status, ControllerStatus(**env, source="controller", state="online", detail="closed loop, 4 zones",
                                    version="0.1.0")),
        (t.status, ControllerStatus(**env, source="controller", state="offline", detail="last will")),
        (t.decision, Decision(**env, source="controller", action="lower_drying_rate", zone="Z3",
                              reason="surface risk 0.62 above 0.5 in Z3; exit solvent 0.42 g/m2 below 1.0 limit",
                              inputs={"risk": 0.62, "exit_residual_solvent_g_m2": 0.42},
                              outputs={"temperature_c": 105.0, "airflow_m3_h": 2200.0})),
        (t.metrics, Metrics(**env, source="controller", uptime_s=3600.0,
                            counters={"received": 18231, "rejected.stale": 3, "published.setpoints": 240},
                            gauges={"loop_latency_s": 0.084})),
    ]
