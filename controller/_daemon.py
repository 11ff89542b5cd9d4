"""The controller daemon (``mudcrack daemon``): MQTT in, the control law, set-points out.

`run_daemon` connects to the broker with ``aiomqtt`` and runs four named tasks in a
TaskGroup:

``daemon.<line>.mqtt``
    Connects (TLS and username/password from the configuration or the environment, last
    will ``offline`` on ``controller/status``, retained), subscribes to the zone and line
    sensors, the surface and lab crack estimates and the zone set-points (echo), publishes
    a retained ``online`` status, then every set-point (retained, QoS 1) and the queued
    decisions. Every payload is validated with `controller._messages.decode` against the
    injected clock: a malformed, oversized, out-of-range, stale, out-of-order or unknown
    message is logged with its reason, counted (``rejected.<reason>``) and ignored. After a
    broker loss it reconnects with exponential backoff and jitter and subscribes again.
``daemon.<line>.control``
    Every sample time (the shortest ``zones[].sample_time_s``, on the clock) runs
    ``ControlLaw.step`` in a worker thread on the latest validated inputs (the law decides
    the safe state on missing or stale inputs; samples missed because a step ran late are
    skipped and counted) and queues its set-points, decisions and status change.
``daemon.<line>.publish``
    Publishes what the control task queued: the set-points (retained, QoS 1, each
    acknowledged), the decisions with their reasons (QoS 1) and ``safe`` / ``online``
    status changes (retained), so a slow broker never delays a control step. While
    disconnected, the set-points stay queued (the latest per zone) and the decisions are
    kept (bounded, dropped past their max age); both go out after the reconnection, which
    republishes every set-point, so the retained set-points on the broker are the
    daemon's latest.
``daemon.<line>.metrics``
    Publishes ``controller/metrics`` (counters and gauges of `controller._metrics`) every
    ``metrics_interval_s``; optionally also a Prometheus text endpoint (``metrics_port``).

Stopping (``stop_event``, SIGTERM / SIGINT in `main_daemon`): the control task ends, the
configured safe-state set-points are published (retained, QoS 1, acknowledged), then a
``safe_state`` decision and the retained status ``offline``, then the client disconnects
cleanly (the will does not fire). If the broker is unreachable at that moment the daemon
keeps trying until ``shutdown_timeout_s``.

Time: every timestamp and age uses the injected clock (`SystemClock`, `ScaledClock` for
accelerated demos, or any object with ``now_s()`` and ``async sleep_until(t_s)`` such as
`controller._sim_node.FakeClock` in tests). Backoff, publish timeouts and latencies are real
seconds. Logs are ``key=value`` lines (`main_daemon` can write JSON lines instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import ssl
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from ._config import ConfigError, ControllerConfig, TlsConfig, load_controller_config
from ._law import (
    ControlLaw,
    Inputs,
    LabEstimate,
    LawState,
    Mode,
    Predictor,
    Reading,
    StepResult,
    SurfaceEstimate,
    ZoneMeasurement,
)
from ._law import Decision as LawDecision
from ._mqtt import (Clock, ScaledClock, SystemClock, backoff_delay_s, cancel_and_wait, clock_consume,
                    clock_delivered, clock_forget, clock_hold, clock_sent, parse_broker_url, receive_until,
                    stop_on_signals)
from ._messages import (
    DEFAULT_LIMITS,
    POLICY,
    ControllerStatus,
    CrackEstimate,
    Decision,
    Limits,
    LineCommand,
    LineSensors,
    Message,
    MessageError,
    MessageKind,
    Topics,
    ZoneCommand,
    ZoneSensors,
    decode,
    encode,
)
from ._metrics import (
    DaemonMetrics,
    JsonLinesFormatter,
    KeyValueFormatter,
    configure_logging,
    log_event,
    metric_key,
    serve_prometheus,
)

__all__ = ["Clock", "ControllerDaemon", "DaemonSummary", "JsonLinesFormatter", "KeyValueFormatter", "ScaledClock",
           "SystemClock", "main_daemon", "run_daemon"]

log = logging.getLogger(__name__)

_ROOT = "mudcrack"  # root of the canonical topics that `decode` parses
_SUBSCRIBED = (MessageKind.ZONE_SENSORS, MessageKind.LINE_SENSORS, MessageKind.SURFACE_ESTIMATE,
               MessageKind.LAB_ESTIMATE, MessageKind.ZONE_SETPOINT)
_SITE_RISK = 0.5  # web / zone risk at which a position counts as a crack site for the law


# ----------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class DaemonSummary:
    """What a `run_daemon` run did.

    Attributes
    ----------
    line_id : str
    steps : int
        Control steps taken (``steps_skipped``: samples missed because the loop ran late).
    safe_steps : int
        Steps that ended in the safe state.
    messages_received, messages_rejected : int
        Payloads received; payloads rejected (logged with their reason).
    accepted_by_kind, rejected_by_reason : dict
        Accepted payloads by `MessageKind` value; rejections by reason (`Reason` values and
        ``out_of_order``).
    setpoints_published, decisions_published, decisions_dropped : int
        Acknowledged set-point and decision publications; decisions dropped (queue full or
        older than their max age when the broker came back).
    connections, reconnects : int
        Successful connections; connections after the first.
    setpoints : dict
        The daemon's latest set-point per zone, ``{zone: (temperature_c, airflow_m3_h, fresh_air_m3_h)}``
        (after a graceful stop: the configured safe state).
    safe_state_published : bool
        The safe state and ``offline`` were acknowledged by the broker at the stop.
    counters : dict
        Every counter of `controller._metrics.DaemonMetrics`.
    """

    line_id: str
    steps: int
    steps_skipped: int
    safe_steps: int
    messages_received: int
    messages_rejected: int
    accepted_by_kind: dict[str, int]
    rejected_by_reason: dict[str, int]
    setpoints_published: int
    decisions_published: int
    decisions_dropped: int
    connections: int
    reconnects: int
    setpoints: dict[str, tuple[float, float, float | None]]
    safe_state_published: bool
    counters: dict[str, int]

    def text(self) -> str:
        """One paragraph for the console."""
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected_by_reason.items())) or "none"
        return (f"daemon {self.line_id}: {self.steps} steps ({self.safe_steps} in the safe state, {self.steps_skipped} "
                f"skipped); received {self.messages_received}, rejected {self.messages_rejected} ({rejected}); "
                f"published {self.setpoints_published} set-points, {self.decisions_published} decisions; "
                f"connections {self.connections}; safe state at stop "
                f"{'published' if self.safe_state_published else 'NOT confirmed'}")


# ----------------------------------------------------------------------------- helpers
def _text(value: str, n: int = 512) -> str:
    """Printable text of at most ``n`` characters (the messages' ``text`` fields)."""
    out = "".join(c if c.isprintable() else " " for c in value)
    return out if len(out) <= n else out[: n - 3] + "..."


def tls_context(tls: TlsConfig | None) -> ssl.SSLContext | None:
    """An SSL context for the ``mqtt.tls`` section (None: plain TCP).

    Raises
    ------
    ConfigError
        A CA, certificate or key file cannot be read.
    """
    if tls is None:
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None and tls.key_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt.tls: cannot load the TLS files ({exc})") from exc
    return ctx


def with_broker_url(config: ControllerConfig, url: str) -> ControllerConfig:
    """``config`` with host, port, TLS and credentials from ``mqtt[s]://[user[:password]@]host[:port]``.

    Raises
    ------
    ValueError
        Another scheme, no host or a bad port.
    """
    addr = parse_broker_url(url)
    mqtt = dataclasses.replace(config.mqtt, host=addr.host, port=addr.port,
                               tls=(config.mqtt.tls or TlsConfig()) if addr.tls else None)
    if addr.username:
        mqtt = dataclasses.replace(mqtt, username=addr.username, password=addr.password or mqtt.password)
    return dataclasses.replace(config, mqtt=mqtt)


def _decision_message(d: LawDecision, *, source: str, seq: int) -> Decision:
    inputs = {k: float(v) for k, v in (("stress_ratio", d.stress_ratio), ("exit_residual_g_m2", d.exit_residual_g_m2),
                                       ("critical_point_m", d.critical_point_m)) if math.isfinite(v)}
    outputs = {metric_key(f"{zone}.{var}"): float(new) for zone, var, _, new in d.changes if math.isfinite(new)}
    return Decision(timestamp_s=d.t_s, source=source, seq=seq, action=str(d.action),
                    reason=_text(f"{d.reason}: {d.text}"), zone=d.zone, inputs=inputs, outputs=outputs)


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("mudcrack")
    except Exception:  # noqa: BLE001  (not installed: no version)
        return None


# ----------------------------------------------------------------------------- the daemon
class ControllerDaemon:
    """One controller daemon run (see the module docstring); `run_daemon` builds and runs one.

    The attributes `metrics`, `setpoint_payloads`, `acked_setpoint_payloads`, `mode` and
    `connected` may be read while it runs (tests, embedding).
    """

    def __init__(self, config: ControllerConfig, *, predictor: Predictor | None = None, clock: Clock | None = None,
                 limits: Limits = DEFAULT_LIMITS, source: str = "controller", reconnect_initial_s: float = 0.5,
                 reconnect_max_s: float = 30.0, publish_timeout_s: float = 5.0, shutdown_timeout_s: float = 10.0,
                 metrics_interval_s: float = 10.0, metrics_port: int | None = None,
                 metrics_host: str = "127.0.0.1", startup_grace_s: float | None = None,
                 max_queued_decisions: int = 1000, seed: int | None = None) -> None:
        for name, value in (("reconnect_initial_s", reconnect_initial_s), ("reconnect_max_s", reconnect_max_s),
                            ("publish_timeout_s", publish_timeout_s), ("shutdown_timeout_s", shutdown_timeout_s),
                            ("metrics_interval_s", metrics_interval_s)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a positive number of seconds, found {value!r}")
        if startup_grace_s is not None and not (math.isfinite(startup_grace_s) and startup_grace_s >= 0):
            raise ValueError(f"startup_grace_s: expected a number of seconds >= 0 or None, found {startup_grace_s!r}")
        if clock is None:
            clock = SystemClock()
        elif not isinstance(clock, Clock):
            raise TypeError(f"clock: expected an object with now_s() and sleep_until(t_s), found {type(clock).__name__}")
        try:
            self.topics = Topics(config.line_id)
        except MessageError as exc:
            raise ConfigError(f"line_id: {exc}") from None
        if predictor is None:
            predictor = default_predictor(config)
        self.config, self.clock, self.limits, self.source = config, clock, limits, source
        self.law = ControlLaw(config, predictor)
        self.line_id = config.line_id
        self.prefix = config.mqtt.topic_prefix
        self.period_s = min(z.sample_time_s for z in config.zones)
        self.reconnect_initial_s, self.reconnect_max_s = float(reconnect_initial_s), float(reconnect_max_s)
        self.publish_timeout_s, self.shutdown_timeout_s = float(publish_timeout_s), float(shutdown_timeout_s)
        self.metrics_interval_s = float(metrics_interval_s)
        self.metrics_port, self.metrics_host = metrics_port, metrics_host
        self.startup_grace_s = config.safe_state.stale_after_s if startup_grace_s is None else float(startup_grace_s)
        self.tls = tls_context(config.mqtt.tls)
        self.version = _version()
        self.metrics = DaemonMetrics()
        self.mode: Mode | None = None  # None until the first step
        self.connected = False
        self.safe_state_published = False
        self.metrics_server: asyncio.Server | None = None
        # inputs (latest validated)
        self._zones: dict[str, ZoneMeasurement] = {}
        self._speed: Reading | None = None
        self._wet: Reading | None = None
        self._line_t: float | None = None
        self._surface: SurfaceEstimate | None = None
        self._lab: LabEstimate | None = None
        self._state: LawState | None = None
        # outputs
        self.setpoint_payloads: dict[str, bytes] = {}  # wire topic -> latest payload
        self.acked_setpoint_payloads: dict[str, bytes] = {}  # wire topic -> last payload the broker acknowledged
        self._setpoint_values: dict[str, tuple[float, float, float | None]] = {}
        self._speed_setpoint: float | None = None  # the web speed set-point last queued
        self._dirty: set[str] = set()
        self._recent: dict[str, deque[bytes]] = {}  # wire topic -> our last payloads (echo detection)
        self._decisions: deque[tuple[float, bytes]] = deque(maxlen=max_queued_decisions)
        self._status: tuple[str, str] = ("online", "waiting for inputs")
        self._status_sent: tuple[str, str] | None = None
        self._seq: dict[str, int] = {}
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._shutdown = asyncio.Event()
        self._wake = asyncio.Event()
        self._rng = random.Random(seed)

    # ------------------------------------------------------------------ topics
    def wire(self, kind: MessageKind, zone: str | None = None) -> str:
        """Topic on the wire (``<topic_prefix>/<line_id>/...``)."""
        return self.prefix + self.topics.topic(kind, zone)[len(_ROOT):]

    def _wire_filter(self, kind: MessageKind) -> str:
        return self.prefix + self.topics.filter(kind)[len(_ROOT):]

    def _canonical(self, topic: str) -> str | None:
        return _ROOT + topic[len(self.prefix):] if topic.startswith(self.prefix + "/") else None

    def _next_seq(self, topic: str) -> int:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        return seq

    # ------------------------------------------------------------------ receiving
    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.metrics.inc("rejected.total")
        self.metrics.inc(f"rejected.{reason}")
        log_event(log, logging.WARNING, "rejected", reason=reason, topic=topic[:160], detail=detail)

    def handle(self, topic: str, payload: object, *, retain: bool = False) -> None:
        """Validate one received payload and update the latest inputs (never raises on a bad payload)."""
        self.metrics.inc("received.total")
        clock_delivered(self.clock, f"daemon:{self.config.mqtt.client_id}", topic)
        canonical = self._canonical(topic)
        if canonical is None:
            self._reject("topic", topic, f"expected a topic below {self.prefix}/{self.line_id}/")
            return
        if not isinstance(payload, (bytes, bytearray)):
            self._reject("type", topic, f"expected a bytes payload, found {type(payload).__name__}")
            return
        try:
            msg = decode(canonical, bytes(payload), now_s=self.clock.now_s(), limits=self.limits, line_id=self.line_id)
        except MessageError as exc:
            self._reject(exc.reason.value, topic, str(exc))
            return
        try:
            kind = self._apply(topic, msg, bytes(payload), retain)
        except ValueError as exc:  # the law's own input checks
            self._reject("range", topic, str(exc))
            return
        if kind is not None:
            self.metrics.inc(f"accepted.{kind.value.replace('/', '_')}")

    def _apply(self, topic: str, msg: Message | Any, payload: bytes, retain: bool) -> MessageKind | None:
        if isinstance(msg, ZoneSensors):
            if msg.zone not in self.config.zone_names:
                self._reject("topic", topic, f"zone: expected one of {list(self.config.zone_names)}, found {msg.zone!r}")
                return None
            prev = self._zones.get(msg.zone)
            if prev is not None and msg.timestamp_s < prev.temperature_t_s:
                self._reject("out_of_order", topic, f"timestamp_s {msg.timestamp_s:.3f} older than the latest "
                                                    f"reading {prev.temperature_t_s:.3f}")
                return None
            self._zones[msg.zone] = ZoneMeasurement(msg.temperature_c, msg.airflow_m3_h, msg.timestamp_s,
                                                    msg.timestamp_s, msg.solvent_concentration_g_m3, msg.fresh_air_m3_h)
            return MessageKind.ZONE_SENSORS
        if isinstance(msg, LineSensors):
            if self._line_t is not None and msg.timestamp_s < self._line_t:
                self._reject("out_of_order", topic, f"timestamp_s {msg.timestamp_s:.3f} older than the latest "
                                                    f"reading {self._line_t:.3f}")
                return None
            self._line_t = msg.timestamp_s
            self._speed = Reading(msg.web_speed_m_min, msg.timestamp_s)
            if msg.wet_thickness_um is not None:
                self._wet = Reading(msg.wet_thickness_um, msg.timestamp_s)
            if msg.exit_residual_solvent_g_m2 is not None:
                self.metrics.set("exit_residual_solvent_g_m2", msg.exit_residual_solvent_g_m2)
            return MessageKind.LINE_SENSORS
        if isinstance(msg, CrackEstimate):
            prev_t = (self._surface if msg.kind == "surface" else self._lab)
            if prev_t is not None and msg.timestamp_s < prev_t.t_s:
                self._reject("out_of_order", topic, f"timestamp_s {msg.timestamp_s:.3f} older than the latest "
                                                    f"estimate {prev_t.t_s:.3f}")
                return None
            if msg.kind == "surface":
                self._surface = SurfaceEstimate(msg.timestamp_s, msg.score, msg.onset, msg.evidence.get("surface_cif"),
                                                self._site_positions(msg))
                return MessageKind.SURFACE_ESTIMATE
            self._lab = LabEstimate(msg.timestamp_s, msg.score, msg.onset, msg.evidence.get("cif_3d"))
            return MessageKind.LAB_ESTIMATE
        if isinstance(msg, ZoneCommand):
            if payload in self._recent.get(topic, ()):
                self.metrics.inc("setpoints.echo")
            elif retain:
                self.metrics.inc("setpoints.retained")
                log_event(log, logging.INFO, "retained_setpoint", topic=topic, zone=msg.zone, source=msg.source,
                          temperature_c=msg.temperature_c, airflow_m3_h=msg.airflow_m3_h, fresh_air_m3_h=msg.fresh_air_m3_h)
            else:  # another client wrote our set-point topic: the ACL is missing or wrong
                self.metrics.inc("setpoints.foreign")
                log_event(log, logging.WARNING, "foreign_setpoint", topic=topic, zone=msg.zone, source=msg.source,
                          temperature_c=msg.temperature_c, airflow_m3_h=msg.airflow_m3_h, fresh_air_m3_h=msg.fresh_air_m3_h)
            return MessageKind.ZONE_SETPOINT
        return None  # not subscribed

    def _site_positions(self, msg: CrackEstimate) -> tuple[float, ...]:
        """Crack sites along the web for the law: high-risk web positions, else high-risk zone centres,
        else the camera position when the estimate alarms."""
        sites = tuple(x for x, r in msg.web_risk if r >= _SITE_RISK)
        if sites:
            return sites
        starts = dict(zip(self.config.zone_names, self.config.zone_start_m()))
        lengths = {z.name: z.length_m for z in self.config.zones}
        sites = tuple(starts[z] + lengths[z] / 2 for z, r in msg.zone_risk.items() if r >= _SITE_RISK and z in starts)
        if sites:
            return sites
        return (msg.position_m,) if (msg.alarm or msg.onset) and msg.position_m is not None else ()

    def inputs(self) -> Inputs:
        """The latest validated inputs."""
        return Inputs(zones=dict(self._zones), web_speed_m_min=self._speed, wet_thickness_um=self._wet,
                      surface=self._surface, lab=self._lab)

    def _inputs_present(self) -> bool:
        need_surface = self.config.safe_state.surface_estimate_stale_after_s is not None
        return (all(z in self._zones for z in self.config.zone_names) and self._speed is not None
                and self._wet is not None and (self._surface is not None or not need_surface))

    # ------------------------------------------------------------------ publishing
    def _set_setpoint(self, zone: str, temperature_c: float, airflow_m3_h: float, fresh_air_m3_h: float | None,
                      t_s: float) -> None:
        topic = self.wire(MessageKind.ZONE_SETPOINT, zone)
        fresh = None if fresh_air_m3_h is None else float(fresh_air_m3_h)
        msg = ZoneCommand(timestamp_s=t_s, source=self.source, seq=self._next_seq(topic), zone=zone,
                          temperature_c=float(temperature_c), airflow_m3_h=float(airflow_m3_h), fresh_air_m3_h=fresh)
        try:
            payload = encode(msg, limits=self.limits)
        except MessageError as exc:  # outside the message limits: a configuration bug; keep the last one
            self.metrics.inc("errors.encode")
            log_event(log, logging.ERROR, "setpoint_not_encoded", topic=topic, detail=str(exc))
            return
        if topic in self._dirty:
            self.metrics.inc("setpoints.superseded")  # queued one replaced by a newer one (latest per zone)
        self.setpoint_payloads[topic] = payload
        self._setpoint_values[zone] = (float(temperature_c), float(airflow_m3_h), fresh)
        self._dirty.add(topic)

    def _set_line_setpoint(self, speed_m_min: float, t_s: float) -> None:
        """Queue the web speed set-point (retained, QoS 1) when it changed (the law ramps it)."""
        topic = self.wire(MessageKind.LINE_SETPOINT)
        if self._speed_setpoint is not None and abs(self._speed_setpoint - speed_m_min) < 1e-6:
            return
        msg = LineCommand(timestamp_s=t_s, source=self.source, seq=self._next_seq(topic), speed_m_min=float(speed_m_min))
        try:
            payload = encode(msg, limits=self.limits)
        except MessageError as exc:
            self.metrics.inc("errors.encode")
            log_event(log, logging.ERROR, "setpoint_not_encoded", topic=topic, detail=str(exc))
            return
        self.setpoint_payloads[topic] = payload
        self._speed_setpoint = float(speed_m_min)
        self._dirty.add(topic)

    def _queue_decision(self, msg: Decision) -> None:
        if len(self._decisions) == self._decisions.maxlen:
            self.metrics.inc("decisions.dropped")
        self._decisions.append((msg.timestamp_s, encode(msg, limits=self.limits)))

    async def _publish(self, client: aiomqtt.Client, kind: MessageKind, topic: str, payload: bytes) -> None:
        policy = POLICY[kind]
        clock_sent(self.clock, topic)
        try:
            await client.publish(topic, payload, qos=policy.qos, retain=policy.retain, timeout=self.publish_timeout_s)
        except BaseException:
            clock_sent(self.clock, topic, -1)
            raise

    async def _flush(self, client: aiomqtt.Client | None = None, *, republish: bool = False) -> None:
        """Send the queued set-points (all with ``republish``), decisions and a status change.

        Raises MqttError on a broker problem (the queues keep what was not acknowledged).
        """
        client = client or self._client
        if client is None:
            return
        async with self._lock:
            topics = list(self.setpoint_payloads) if republish else sorted(self._dirty)
            # one publish per zone topic, all in flight at once (MQTT orders per topic only)
            results = await asyncio.gather(*(self._publish_setpoint(client, t) for t in topics), return_exceptions=True)
            for exc in results:
                if isinstance(exc, BaseException):
                    raise exc
            max_age = self.limits.max_age_controller_s
            while self._decisions:
                t_s, payload = self._decisions[0]
                if max_age is not None and self.clock.now_s() - t_s > max_age:
                    self._decisions.popleft()
                    self.metrics.inc("decisions.dropped")
                    continue
                await self._publish(client, MessageKind.DECISION, self.wire(MessageKind.DECISION), payload)
                self._decisions.popleft()
                self.metrics.inc("published.decisions")
            if self._status_sent is None or self._status != self._status_sent:
                await self._publish_status(client, *self._status)

    async def _publish_setpoint(self, client: aiomqtt.Client, topic: str) -> None:
        payload = self.setpoint_payloads[topic]
        self._recent.setdefault(topic, deque(maxlen=16)).append(payload)
        kind = MessageKind.LINE_SETPOINT if topic == self.wire(MessageKind.LINE_SETPOINT) else MessageKind.ZONE_SETPOINT
        await self._publish(client, kind, topic, payload)
        self.acked_setpoint_payloads[topic] = payload
        self.metrics.inc("published.setpoints")
        if self.setpoint_payloads[topic] is payload:
            self._dirty.discard(topic)

    async def _publish_status(self, client: aiomqtt.Client, state: str, detail: str) -> None:
        topic = self.wire(MessageKind.STATUS)
        msg = ControllerStatus(timestamp_s=self.clock.now_s(), source=self.source, seq=self._next_seq(topic),
                               state=state, detail=_text(detail), version=self.version)
        await self._publish(client, MessageKind.STATUS, topic, encode(msg, limits=self.limits))
        self._status_sent = (state, detail)
        self.metrics.inc("published.status")
        log_event(log, logging.INFO, "status", state=state, detail=detail)

    async def _publish_metrics(self, client: aiomqtt.Client | None = None) -> None:
        client = client or self._client
        if client is None:
            return
        now = self.clock.now_s()
        ages = [now - m.temperature_t_s for m in self._zones.values()]
        self.metrics.set("oldest_zone_reading_age_s", max(ages) if ages else math.nan)
        topic = self.wire(MessageKind.METRICS)
        msg = self.metrics.message(timestamp_s=now, source=self.source, seq=self._next_seq(topic))
        try:
            await self._publish(client, MessageKind.METRICS, topic, encode(msg, limits=self.limits))
        except aiomqtt.MqttError as exc:
            log_event(log, logging.DEBUG, "metrics_not_published", detail=str(exc))
        else:
            self.metrics.inc("published.metrics")

    # ------------------------------------------------------------------ control task
    async def _control(self) -> None:
        """Step the law every sample time on the clock and publish what it decides."""
        start = t_next = self.clock.now_s()
        waiting_logged = False
        while True:
            await self.clock.sleep_until(t_next)
            t = self.clock.now_s()
            missed = max(math.floor((t - t_next) / self.period_s + 1e-9), 0)
            if missed:
                self.metrics.inc("steps.skipped", missed)
            t_next += self.period_s * (missed + 1)
            inputs = self.inputs()
            if self._state is None:
                if not self._inputs_present() and t - start < self.startup_grace_s:
                    if not waiting_logged:
                        log_event(log, logging.INFO, "waiting_for_inputs", grace_s=self.startup_grace_s)
                        waiting_logged = True
                    continue
                self._state = self.law.initial_state(inputs)
            with clock_hold(self.clock):  # a lockstep clock waits for this step and its set-points
                await self._step(inputs, t)

    async def _step(self, inputs: Inputs, t: float) -> None:
        t0 = time.perf_counter()
        try:
            result = await asyncio.to_thread(self.law.step, self._state, inputs, t)
        except Exception as exc:  # noqa: BLE001  (a law bug must not leave the dryer uncontrolled)
            self.metrics.inc("errors.step")
            log_event(log, logging.ERROR, "step_failed", exc_info=True, t_s=t, detail=str(exc))
            self._apply_safe_state(t, f"controller error: {exc}", code="controller_error")
        else:
            latency = time.perf_counter() - t0
            self.metrics.inc("steps")
            self.metrics.set("last_step_latency_s", latency)
            self._emit(result, t)
        self._wake.set()  # the publisher task sends it: the loop never waits for the network
        if self._client is not None and getattr(self.clock, "hold", None) is not None:
            await asyncio.sleep(0)  # lockstep: let the publisher take the set-points under this hold

    def _emit(self, result: StepResult, t_s: float) -> None:
        self._state = result.state
        for zone, sp in result.setpoints.items():
            self._set_setpoint(zone, sp.temperature_c, sp.airflow_m3_h, sp.fresh_air_m3_h, t_s)
        if result.web_speed_m_min is not None:
            self._set_line_setpoint(result.web_speed_m_min, t_s)
        for d in result.decisions:
            self.metrics.inc(f"decisions.{metric_key(str(d.action))}")
            log_event(log, logging.INFO, "decision", t_s=d.t_s, action=str(d.action), reason=str(d.reason),
                      zone=d.zone or "-", text=d.text)
            self._queue_decision(_decision_message(d, source=self.source, seq=self._next_seq(self.wire(MessageKind.DECISION))))
        self.mode = result.state.mode
        safe = self.mode is Mode.SAFE
        if safe:
            self.metrics.inc("steps.safe")
            if self._status[0] != "safe":
                text = next((d.text for d in result.decisions if str(d.action) == "safe_state"), "safe state")
                self._status = ("safe", text)
        elif self._status != ("online", self._online_detail()):
            self._status = ("online", self._online_detail())
        self.metrics.set("safe", 1.0 if safe else 0.0)

    def _online_detail(self) -> str:
        return f"closed loop, {len(self.config.zones)} zones"

    def _apply_safe_state(self, t_s: float, why: str, *, code: str) -> None:
        safe = self.config.safe_state.zones
        for zone in self.config.zone_names:
            self._set_setpoint(zone, safe[zone].temperature_c, safe[zone].airflow_m3_h, safe[zone].fresh_air_m3_h, t_s)
        outputs = {metric_key(f"{z}.{k}"): v for z in self.config.zone_names
                   for k, v in (("temperature_c", safe[z].temperature_c), ("airflow_m3_h", safe[z].airflow_m3_h),
                                ("fresh_air_m3_h", safe[z].fresh_air_m3_h))}
        self._queue_decision(Decision(timestamp_s=t_s, source=self.source, seq=self._next_seq(self.wire(MessageKind.DECISION)),
                                      action="safe_state", reason=_text(f"{code}: {why}"), outputs=outputs))
        self._status = ("safe", why)

    async def _publisher(self) -> None:
        """Send what the control task queued; while disconnected, keep it queued (latest per zone)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._client is None:
                if self._dirty:
                    self.metrics.inc("setpoints.queued", len(self._dirty))
                continue
            try:
                with clock_hold(self.clock):
                    await self._flush()
            except aiomqtt.MqttError as exc:  # the connection task notices the loss and reconnects
                self.metrics.inc("setpoints.queued", len(self._dirty))
                log_event(log, logging.WARNING, "publish_failed", detail=str(exc), queued_setpoints=len(self._dirty))

    async def _metrics_loop(self) -> None:
        t_next = self.clock.now_s() + self.metrics_interval_s
        while True:
            await self.clock.sleep_until(t_next)
            t = self.clock.now_s()
            t_next += self.metrics_interval_s * (max(int((t - t_next) // self.metrics_interval_s), 0) + 1)
            await self._publish_metrics()

    # ------------------------------------------------------------------ connection task
    def _client_for(self, will_t_s: float) -> aiomqtt.Client:
        mq = self.config.mqtt
        topic = self.wire(MessageKind.STATUS)
        will = ControllerStatus(timestamp_s=will_t_s, source=self.source, seq=self._next_seq(topic), state="offline",
                                detail="last will", version=self.version)
        return aiomqtt.Client(
            mq.host, mq.port, username=mq.username, password=mq.password, identifier=mq.client_id,
            keepalive=mq.keepalive_s, tls_context=self.tls, timeout=self.publish_timeout_s,
            will=aiomqtt.Will(topic, encode(will, limits=self.limits), qos=1, retain=True),
            max_queued_incoming_messages=10_000, logger=log.getChild("client"))

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.handle(str(message.topic), message.payload, retain=bool(message.retain))
        raise aiomqtt.MqttError("message stream ended")

    async def _connection(self) -> None:
        """Connect, subscribe, publish, receive; reconnect with exponential backoff and jitter."""
        attempt = 0
        mq = self.config.mqtt
        while True:
            try:
                async with self._client_for(self.clock.now_s()) as client:
                    for kind in _SUBSCRIBED:
                        await client.subscribe(self._wire_filter(kind), qos=POLICY[kind].qos)
                    clock_consume(self.clock, f"daemon:{mq.client_id}",  # inputs (set-points are our echo)
                                  [self._wire_filter(k) for k in _SUBSCRIBED if k is not MessageKind.ZONE_SETPOINT])
                    self.metrics.inc("connections")
                    if self.metrics.counters["connections"] > 1:
                        self.metrics.inc("reconnects")
                    attempt = 0
                    self._status_sent = None
                    log_event(log, logging.INFO, "connected", host=mq.host, port=mq.port, client_id=mq.client_id,
                              tls=self.tls is not None, line_id=self.line_id)
                    if not self._shutdown.is_set():
                        await self._flush(client, republish=True)  # status, every set-point, queued decisions
                        self._client, self.connected = client, True
                        self._wake.set()  # anything queued while the republishing ran
                        self.metrics.set("connected", 1.0)
                        await self._publish_metrics(client)
                        await self._serve(client)
                    await self._publish_safe_state_and_offline(client)
                    return
            except aiomqtt.MqttError as exc:
                delay = backoff_delay_s(attempt, initial_s=self.reconnect_initial_s, max_s=self.reconnect_max_s, rng=self._rng)
                attempt += 1
                if self._shutdown.is_set():
                    delay = min(delay, 0.2)
                log_event(log, logging.WARNING, "connection_lost", host=mq.host, port=mq.port, detail=str(exc),
                          retry_in_s=round(delay, 3), attempt=attempt, shutting_down=self._shutdown.is_set())
                await asyncio.sleep(delay)
            finally:
                self._client, self.connected = None, False
                self.metrics.set("connected", 0.0)
                clock_forget(self.clock, f"daemon:{mq.client_id}")

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Receive until the connection is lost (raises MqttError) or the shutdown starts (returns)."""
        await receive_until(self._read(client), self._shutdown, name=f"daemon.{self.line_id}.mqtt")

    async def _publish_safe_state_and_offline(self, client: aiomqtt.Client) -> None:
        """Graceful stop: safe-state set-points (acknowledged), a decision, then ``offline``."""
        t = self.clock.now_s()
        self._apply_safe_state(t, "controller stopping: configured safe state", code="shutdown")
        self._status = ("safe", "stopping")
        await self._flush(client, republish=True)
        await self._publish_metrics(client)
        async with self._lock:
            await self._publish_status(client, "offline", "shutdown")
        self.safe_state_published = True
        log_event(log, logging.INFO, "stopped", safe_state="published", setpoints=len(self.setpoint_payloads))

    # ------------------------------------------------------------------ run
    async def run(self, stop_event: asyncio.Event | None = None) -> DaemonSummary:
        """Run until ``stop_event`` is set, then stop gracefully; returns the summary."""
        stop_event = stop_event if stop_event is not None else asyncio.Event()
        if self.metrics_port is not None:
            self.metrics_server = await serve_prometheus(self.metrics, host=self.metrics_host, port=self.metrics_port,
                                                         labels={"line_id": self.line_id})
            log_event(log, logging.INFO, "metrics_endpoint", host=self.metrics_host,
                      port=self.metrics_server.sockets[0].getsockname()[1])
        name = f"daemon.{self.line_id}"
        try:
            async with asyncio.TaskGroup() as tg:
                conn = tg.create_task(self._connection(), name=f"{name}.mqtt")
                ctrl = tg.create_task(self._control(), name=f"{name}.control")
                pub = tg.create_task(self._publisher(), name=f"{name}.publish")
                mets = tg.create_task(self._metrics_loop(), name=f"{name}.metrics")
                stopper = tg.create_task(stop_event.wait(), name=f"{name}.stop")
                await asyncio.wait((stopper, conn, ctrl, pub, mets), return_when=asyncio.FIRST_COMPLETED)
                log_event(log, logging.INFO, "stopping", line_id=self.line_id)
                await cancel_and_wait((ctrl, pub, mets, stopper))
                self._shutdown.set()
                done, _ = await asyncio.wait((conn,), timeout=self.shutdown_timeout_s)
                if not done:
                    log_event(log, logging.ERROR, "safe_state_not_confirmed", timeout_s=self.shutdown_timeout_s,
                              host=self.config.mqtt.host, port=self.config.mqtt.port)
                    conn.cancel()
        finally:
            if self.metrics_server is not None:
                self.metrics_server.close()
                await self.metrics_server.wait_closed()
        summary = self.summary()
        log_event(log, logging.INFO, "summary", text=summary.text())
        return summary

    def summary(self) -> DaemonSummary:
        """The `DaemonSummary` of the run so far."""
        c = self.metrics.counters
        return DaemonSummary(
            line_id=self.line_id, steps=c["steps"], steps_skipped=c["steps.skipped"], safe_steps=c["steps.safe"],
            messages_received=c["received.total"], messages_rejected=c["rejected.total"],
            accepted_by_kind=self.metrics.by_prefix("accepted"),
            rejected_by_reason={k: v for k, v in self.metrics.by_prefix("rejected").items() if k != "total"},
            setpoints_published=c["published.setpoints"], decisions_published=c["published.decisions"],
            decisions_dropped=c["decisions.dropped"], connections=c["connections"], reconnects=c["reconnects"],
            setpoints=dict(self._setpoint_values), safe_state_published=self.safe_state_published,
            counters=dict(c))


def default_predictor(config: ControllerConfig) -> Predictor:
    """The drying model of the ``predictor`` section (default: ``configs/line.yaml``)."""
    from ._predictor import LinePredictor  # wiring: imports sim_line's physics

    return LinePredictor.from_config(config.predictor) if config.predictor is not None else LinePredictor()


async def run_daemon(config: ControllerConfig, *, predictor: Predictor | None = None, clock: Clock | None = None,
                     stop_event: asyncio.Event | None = None, limits: Limits = DEFAULT_LIMITS,
                     source: str = "controller", reconnect_initial_s: float = 0.5, reconnect_max_s: float = 30.0,
                     publish_timeout_s: float = 5.0, shutdown_timeout_s: float = 10.0,
                     metrics_interval_s: float = 10.0, metrics_port: int | None = None,
                     metrics_host: str = "127.0.0.1", startup_grace_s: float | None = None,
                     seed: int | None = None) -> DaemonSummary:
    """Run the controller daemon until ``stop_event`` is set (see the module docstring).

    Parameters
    ----------
    config : ControllerConfig
        Line, zones, law settings, safe state and the ``mqtt`` section (host, port,
        client id, keepalive, topic prefix, credentials, TLS).
    predictor : Predictor, optional
        Drying model of the law (default: `controller._predictor.LinePredictor` of the
        configuration's ``predictor`` section).
    clock : Clock, optional
        Time base of steps, timestamps and ages (default `SystemClock`).
    stop_event : asyncio.Event, optional
        Set it to stop: safe-state set-points, then ``offline``, then disconnect.
    limits : Limits
        Message limits of `decode` / `encode` (sizes, ranges, max ages).
    source : str
        ``source`` of the published messages.
    reconnect_initial_s, reconnect_max_s : float
        Backoff ``min(max, initial * 2**attempt)`` real seconds times a jitter in [0.5, 1].
    publish_timeout_s : float
        Real seconds for connecting, subscribing and each acknowledged publish.
    shutdown_timeout_s : float
        Real seconds the stop may take to get the safe state acknowledged.
    metrics_interval_s : float
        Clock seconds between ``controller/metrics`` messages.
    metrics_port : int, optional
        Serve Prometheus text on ``http://metrics_host:metrics_port/metrics`` (0: a free port).
    startup_grace_s : float, optional
        At start, clock seconds to wait for a first value of every input before the first
        step (default ``safe_state.stale_after_s``); afterwards missing inputs mean the
        safe state.
    seed : int, optional
        Seed of the backoff jitter.

    Returns
    -------
    DaemonSummary

    Raises
    ------
    ConfigError
        Bad line id or TLS files.
    ValueError
        Bad argument.
    """
    daemon = ControllerDaemon(config, predictor=predictor, clock=clock, limits=limits, source=source,
                              reconnect_initial_s=reconnect_initial_s, reconnect_max_s=reconnect_max_s,
                              publish_timeout_s=publish_timeout_s, shutdown_timeout_s=shutdown_timeout_s,
                              metrics_interval_s=metrics_interval_s, metrics_port=metrics_port,
                              metrics_host=metrics_host, startup_grace_s=startup_grace_s, seed=seed)
    return await daemon.run(stop_event)


def main_daemon(config_path: str | Path | None = None, *, broker_url: str | None = None, speedup: float = 1.0,
                clock_anchor_s: float | None = None, metrics_port: int | None = None, log_format: str = "kv",
                log_level: str = "INFO") -> int:
    """``mudcrack daemon --config configs/controller.yaml``: run until SIGTERM / SIGINT.

    Parameters
    ----------
    config_path : path, optional
        Controller configuration (default ``configs/controller.yaml``); credentials may
        come from ``MUDCRACK_MQTT_USERNAME`` / ``MUDCRACK_MQTT_PASSWORD``.
    broker_url : str, optional
        ``mqtt[s]://[user[:password]@]host[:port]``, overrides the file's host, port, TLS
        and credentials.
    speedup, clock_anchor_s : float
        Accelerated time (`ScaledClock`) shared with ``mudcrack sim-line --speedup``;
        1 and None: the system clock.
    metrics_port : int, optional
        Prometheus text endpoint on 127.0.0.1.
    log_format : {"kv", "json"}
    log_level : str

    Returns
    -------
    int
        0 after a graceful stop with the safe state acknowledged by the broker, 1 otherwise
        (one line on stderr says why).

    Raises
    ------
    ConfigError
        Bad configuration file (before any network activity).
    ValueError
        Bad argument.
    """
    config = load_controller_config(config_path)
    if broker_url is not None:
        config = with_broker_url(config, broker_url)
    clock: Clock = SystemClock() if speedup == 1.0 and clock_anchor_s is None else ScaledClock(speedup,
                                                                                                anchor_s=clock_anchor_s)
    predictor = default_predictor(config)
    tls_context(config.mqtt.tls)  # fail fast on bad TLS files
    configure_logging(log_format, log_level)

    async def _run() -> DaemonSummary:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            return await run_daemon(config, predictor=predictor, clock=clock, stop_event=stop,
                                    metrics_port=metrics_port)

    summary = asyncio.run(_run())
    print(summary.text())
    if not summary.safe_state_published:
        print(f"mudcrack daemon: the safe state was not acknowledged by the broker "
              f"{config.mqtt.host}:{config.mqtt.port}", file=sys.stderr)
        return 1
    return 0
