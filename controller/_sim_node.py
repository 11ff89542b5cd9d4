"""The virtual line over MQTT: `sim_line.Line` as a plant that publishes sensors and frames.

`run_sim_line` steps the line in simulated time on a clock (`ScaledClock`: real time
times ``speedup``; `LockstepClock`: shared with the other nodes of the process, time waits
for every node's work; `FakeClock` for tests), applies a disturbance scenario
(`sim_line._scenario`), and talks MQTT through ``aiomqtt``:

Publishes (below ``mudcrack/<line_id>/``, QoS / retain from `controller._messages.POLICY`)
    ``sensors/zone/<zone>`` `ZoneSensors` and ``sensors/line`` `LineSensors` every step
    (QoS 0), ``camera/frame`` (`Frame`, binary) and ``camera/frame/meta`` every frame
    interval (QoS 0).
Subscribes
    ``setpoints/zone/+`` (`ZoneCommand`) and ``setpoints/line`` (`LineCommand`): every
    payload is validated with `controller._messages.decode` and against the line's limits;
    a rejected one is logged with its reason, counted and ignored. Valid set-points are
    applied at the next step and reach the air through the actuator dynamics.

The simulation does not stop when the broker goes away (a plant keeps running): readings
taken while disconnected are dropped (QoS 0 telemetry) and counted, and the connection
task reconnects with exponential backoff and jitter, then subscribes again (the retained
set-points come back with the subscription).

Frames render in a worker thread. On a real-time clock the line does not wait for the
camera: a frame that falls due while the previous one is still rendering is skipped (and
counted); on a simulated clock (`LockstepClock`, `FakeClock`) every frame renders in line,
deterministically. On a `LockstepClock` each step holds the clock until its readings and
frame are published.

Timestamps are on the clock's time base (epoch seconds): a reading taken at line time
``t`` is stamped ``clock start + t``. Receivers must use the same clock (the shared
simulated clock in demos and tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import ssl
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from ._frames import FRAME_ENCODINGS, Frame
from ._mqtt import (FAKE_EPOCH_S, BrokerAddress, Clock, FakeClock, LockstepClock, ScaledClock, backoff_delay_s,
                    clock_consume, clock_delivered, clock_forget, clock_hold, clock_sent, parse_broker_url,
                    receive_until, stop_on_signals)
from ._messages import (
    DEFAULT_LIMITS,
    POLICY,
    Limits,
    LineCommand,
    LineSensors,
    MessageError,
    MessageKind,
    Reason,
    Topics,
    ZoneCommand,
    ZoneSensors,
    decode,
    encode,
)

from sim_line._config import LineConfig, SlurryConfig
from sim_line._line import Line, LineReadings, ZoneSetpoint
from sim_line._scenario import CAMERA_SENSOR, LINE_SENSOR, Scenario, ScenarioPlayer, load_scenario
from sim_line._surface import render_surface

#: real seconds the connection gets to close cleanly after the simulation ended
CLOSE_TIMEOUT_S = 5.0

__all__ = ["FAKE_EPOCH_S", "BrokerAddress", "Clock", "FakeClock", "LockstepClock", "ScaledClock", "SimLineSummary", "main_sim_line", "parse_broker_url", "run_sim_line"]

log = logging.getLogger(__name__)



# ----------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class SimLineSummary:
    """What a `run_sim_line` run did.

    Attributes
    ----------
    line_id : str
        Line id of the topic tree.
    steps : int
        Line steps taken.
    sim_time_s : float
        Line time at the end, s.
    messages_published : int
        Messages the broker accepted from the node (sensors, frames, frame headers).
    published_by_kind : dict
        The same by `MessageKind` value (``"sensors/zone"``, ``"camera/frame"``, ...).
    messages_dropped : int
        Readings and frames not published: broker unreachable (or, a simulator bug, a
        reading outside the message limits, logged as an error).
    messages_received : int
        Payloads received on the set-point topics.
    messages_rejected : int
        Received payloads rejected (logged with their reason).
    rejected_by_reason : dict
        The same by `controller._messages.Reason` value.
    setpoints_accepted : int
        Valid set-point messages.
    setpoints_applied : int
        Set-points that took effect in a line step (the last one per zone / line per step).
    frames_published, frames_skipped : int
        Camera frames published; frames skipped because the camera was still rendering
        the previous one (real-time clocks only).
    connections : int
        Successful connections to the broker (1 + reconnections).
    max_lag_s : float
        Largest delay of a step behind the clock, simulated s (0 with `FakeClock`).
    scenario_log : tuple
        ``(line time, "start <kind> [target]" / "end ...")`` of the scenario's events.
    """

    line_id: str
    steps: int
    sim_time_s: float
    messages_published: int
    published_by_kind: dict[str, int]
    messages_dropped: int
    messages_received: int
    messages_rejected: int
    rejected_by_reason: dict[str, int]
    setpoints_accepted: int
    setpoints_applied: int
    frames_published: int
    frames_skipped: int
    connections: int
    max_lag_s: float
    scenario_log: tuple[tuple[float, str], ...] = ()

    def text(self) -> str:
        """One paragraph for the console."""
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected_by_reason.items())) or "none"
        return (f"sim-line {self.line_id}: {self.steps} steps, {self.sim_time_s:.0f} s of line time; "
                f"published {self.messages_published} ({self.frames_published} frames), dropped "
                f"{self.messages_dropped}; received {self.messages_received}, rejected {self.messages_rejected} "
                f"({rejected}), set-points applied {self.setpoints_applied}; connections {self.connections}; "
                f"max lag {self.max_lag_s:.1f} s")


# ----------------------------------------------------------------------------- the node
def _opt(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _render_frame(snapshot, *, shape_px, um_per_px, origin_um, bit_depth, noise_std, gain, frame_id, position_m,
                  timestamp_s, source, encoding) -> Frame:
    """Render and encode one camera frame (pure; runs in a worker thread)."""
    frame = render_surface(snapshot, shape_px=shape_px, um_per_px=um_per_px, origin_um=origin_um,
                           bit_depth=bit_depth, noise_std=noise_std, flicker_gain=gain)
    return Frame.from_image(frame.image, frame_id=frame_id, um_per_px=um_per_px, position_m=position_m,
                            timestamp_s=timestamp_s, source=source, seq=frame_id, encoding=encoding)


class _SimLineNode:
    """State of one `run_sim_line` run (the simulation task and the connection task)."""

    def __init__(self, *, line: Line, player: ScenarioPlayer, address: BrokerAddress, line_id: str, clock: Clock,
                 step_s: float, duration_s: float | None, frame_interval_s: float,
                 frame_shape_px: tuple[int, int], frame_encoding: str | None, publish_frames: bool,
                 stop_event: asyncio.Event, source: str, limits: Limits, client_id: str, keepalive_s: int,
                 reconnect_initial_s: float, reconnect_max_s: float, connect_wait_s: float | None,
                 publish_timeout_s: float, tls_context: ssl.SSLContext | None,
                 progress: Callable[[int], None] | None) -> None:
        self.line, self.player, self.address, self.clock = line, player, address, clock
        self.topics = Topics(line_id)
        self.step_s, self.duration_s = step_s, duration_s
        self.frame_interval_s, self.frame_shape_px = frame_interval_s, frame_shape_px
        self.frame_encoding, self.publish_frames = frame_encoding, publish_frames
        self.stop_event, self.source, self.limits = stop_event, source, limits
        self.client_id, self.keepalive_s = client_id, keepalive_s
        self.reconnect_initial_s, self.reconnect_max_s = reconnect_initial_s, reconnect_max_s
        self.connect_wait_s, self.publish_timeout_s, self.tls_context = connect_wait_s, publish_timeout_s, tls_context
        self.progress = progress
        #: real-time clocks render frames concurrently and skip frames while busy; simulated
        #: clocks (`FakeClock`) render every frame in line (deterministic)
        self.realtime = bool(getattr(clock, "realtime", True))
        self._camera_jobs: asyncio.Queue[dict] = asyncio.Queue(maxsize=1)
        self._camera_busy = False
        self._frame_ids = 0
        self._client: aiomqtt.Client | None = None
        self._subscribed = asyncio.Event()
        self.closing = asyncio.Event()  # set when the simulation has ended: the connection closes cleanly
        self._pending: dict[str, ZoneSetpoint | float] = {}
        self._seq: Counter[str] = Counter()
        self._jitter = random.Random()
        self._zone_limits = {z.name: (z.temperature_limits_c, z.airflow_limits_m3_h, z.fresh_air_limits_m3_h)
                             for z in line.config.dryer.zones}
        self.published: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.dropped = self.received = self.accepted = self.applied = 0
        self.frames = self.frames_skipped = self.connections = self.steps = 0
        self.max_lag_s = 0.0
        self.t0_s = 0.0
        self._web_um = 0.0

    # ------------------------------------------------------------------ summary
    def summary(self) -> SimLineSummary:
        return SimLineSummary(
            line_id=self.topics.line_id, steps=self.steps, sim_time_s=self.line.t_s,
            messages_published=sum(self.published.values()), published_by_kind=dict(self.published),
            messages_dropped=self.dropped, messages_received=self.received,
            messages_rejected=sum(self.rejected.values()), rejected_by_reason=dict(self.rejected),
            setpoints_accepted=self.accepted, setpoints_applied=self.applied, frames_published=self.frames,
            frames_skipped=self.frames_skipped, connections=self.connections, max_lag_s=self.max_lag_s,
            scenario_log=tuple(self.player.log))

    # ------------------------------------------------------------------ receiving
    def _reject(self, reason: str, topic: str, detail: str) -> None:
        """Count and log a rejection (``detail`` names the topic when it comes from `decode`)."""
        self.rejected[reason] += 1
        log.warning("rejected set-point: %s", detail if detail.startswith(repr(topic)) else f"{topic!r}: {detail}")

    def handle(self, topic: str, payload: object) -> None:
        """Validate one received payload and queue the set-point it carries."""
        self.received += 1
        clock_delivered(self.clock, self.client_id, topic)
        if not isinstance(payload, (bytes, bytearray)):
            self._reject(Reason.TYPE.value, topic, f"expected a bytes payload, found {type(payload).__name__}")
            return
        try:
            msg = decode(topic, bytes(payload), now_s=self.clock.now_s(), limits=self.limits,
                         line_id=self.topics.line_id)
        except MessageError as exc:
            self._reject(exc.reason.value, topic, str(exc))
            return
        if isinstance(msg, ZoneCommand):
            limits = self._zone_limits.get(msg.zone)
            if limits is None:
                self._reject(Reason.TOPIC.value, topic, f"zone: expected one of {list(self._zone_limits)}, "
                                                        f"found {msg.zone!r} [topic]")
                return
            for key, value, (lo, hi) in (("temperature_c", msg.temperature_c, limits[0]),
                                         ("airflow_m3_h", msg.airflow_m3_h, limits[1]),
                                         ("fresh_air_m3_h", msg.fresh_air_m3_h, limits[2])):
                if value is not None and not lo <= value <= hi:
                    self._reject(Reason.RANGE.value, topic, f"key {key!r}: expected within the zone's limits "
                                                            f"[{lo:g}, {hi:g}], found {value:g} [range]")
                    return
            self._pending[msg.zone] = ZoneSetpoint(msg.temperature_c, msg.airflow_m3_h, msg.fresh_air_m3_h)
        elif isinstance(msg, LineCommand):
            lo, hi = self.line.config.web.speed_limits_m_min
            if not lo <= msg.speed_m_min <= hi:
                self._reject(Reason.RANGE.value, topic, f"key 'speed_m_min': expected within the line's limits "
                                                        f"[{lo:g}, {hi:g}], found {msg.speed_m_min:g} [range]")
                return
            self._pending["web_speed_m_min"] = msg.speed_m_min
        else:  # only set-point topics are subscribed
            self._reject(Reason.TOPIC.value, topic, f"expected a set-point topic, found a {type(msg).__name__}")
            return
        self.accepted += 1
        log.debug("set-point accepted on %s: %s", topic, msg)

    # ------------------------------------------------------------------ connection task
    async def connection(self) -> None:
        """Connect, subscribe, receive; reconnect with exponential backoff and jitter.

        Returns once ``closing`` is set: the client then disconnects cleanly, so the last
        readings it queued still reach the broker.
        """
        attempt = 0
        addr = self.address
        while not self.closing.is_set():
            try:
                async with aiomqtt.Client(addr.host, addr.port, username=addr.username, password=addr.password,
                                          identifier=self.client_id, keepalive=self.keepalive_s,
                                          tls_context=self.tls_context, max_queued_incoming_messages=10_000,
                                          logger=log.getChild("client")) as client:
                    for kind in (MessageKind.ZONE_SETPOINT, MessageKind.LINE_SETPOINT):
                        await client.subscribe(self.topics.filter(kind), qos=POLICY[kind].qos)
                    clock_consume(self.clock, self.client_id, [self.topics.filter(k) for k in
                                                               (MessageKind.ZONE_SETPOINT, MessageKind.LINE_SETPOINT)])
                    self._client = client
                    self.connections += 1
                    attempt = 0
                    self._subscribed.set()
                    log.info("connected to %s:%d as %s, subscribed to %s set-points", addr.host, addr.port,
                             self.client_id, self.topics.line_id)
                    await receive_until(self._read(client), self.closing, name=f"sim-line.{self.topics.line_id}.mqtt")
                    self._client = None
                    return
            except aiomqtt.MqttError as exc:
                self._client = None
                delay = backoff_delay_s(attempt, initial_s=self.reconnect_initial_s, max_s=self.reconnect_max_s,
                                        rng=self._jitter)
                attempt += 1
                log.warning("broker %s:%d unreachable or lost (%s); reconnecting in %.2f s (attempt %d)",
                            addr.host, addr.port, exc, delay, attempt)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), timeout=delay)
            finally:
                self._client = None
                clock_forget(self.clock, self.client_id)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.handle(str(message.topic), message.payload)
        raise aiomqtt.MqttError("message stream ended")

    # ------------------------------------------------------------------ publishing
    async def _publish(self, kind: MessageKind, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            self.dropped += 1
            return
        policy = POLICY[kind]
        clock_sent(self.clock, topic)
        try:
            await client.publish(topic, payload, qos=policy.qos, retain=policy.retain,
                                 timeout=self.publish_timeout_s)
        except aiomqtt.MqttError as exc:
            clock_sent(self.clock, topic, -1)
            self.dropped += 1
            log.debug("not published on %s: %s", topic, exc)
        else:
            self.published[kind.value] += 1

    def _next_seq(self, topic: str) -> int:
        seq = self._seq[topic]
        self._seq[topic] += 1
        return seq

    async def _publish_readings(self, readings: LineReadings, ts: float) -> None:
        msgs: list[tuple[MessageKind, str, object]] = []
        for z in readings.zones:
            if not self.player.publishes(z.name):
                continue
            topic = self.topics.zone_sensors(z.name)
            msgs.append((MessageKind.ZONE_SENSORS, topic, ZoneSensors(
                timestamp_s=ts, source=self.source, seq=self._next_seq(topic), zone=z.name,
                temperature_c=z.temperature_c, airflow_m3_h=z.airflow_m3_h, fresh_air_m3_h=_opt(z.fresh_air_m3_h),
                solvent_concentration_g_m3=_opt(z.solvent_concentration_g_m3), heater_power_kw=_opt(z.heater_power_kw),
                fan_power_kw=_opt(z.fan_power_kw), temperature_setpoint_c=z.temperature_setpoint_c,
                airflow_setpoint_m3_h=z.airflow_setpoint_m3_h, fresh_air_setpoint_m3_h=_opt(z.fresh_air_setpoint_m3_h))))
        if self.player.publishes(LINE_SENSOR):
            topic = self.topics.line_sensors
            msgs.append((MessageKind.LINE_SENSORS, topic, LineSensors(
                timestamp_s=ts, source=self.source, seq=self._next_seq(topic),
                web_speed_m_min=readings.web_speed_m_min, wet_thickness_um=_opt(readings.wet_thickness_um),
                ambient_temperature_c=readings.ambient_temperature_c,
                exit_residual_solvent_g_m2=_opt(readings.exit_residual_solvent_g_m2))))
        for kind, topic, msg in msgs:
            try:
                payload = encode(msg, limits=self.limits)  # type: ignore[arg-type]
            except MessageError as exc:  # a reading outside the plausible ranges: a simulator bug, not fatal
                log.error("reading not published on %s: %s", topic, exc)
                self.dropped += 1
                continue
            await self._publish(kind, topic, payload)

    def _frame_job(self, ts: float) -> dict:
        """Everything a frame needs from the line now (the line moves on while it renders)."""
        cam = self.line.config.camera
        job = {"snapshot": self.line.camera_snapshot(), "shape_px": self.frame_shape_px,
               "um_per_px": cam.um_per_px, "origin_um": (0.0, -self._web_um), "bit_depth": cam.bit_depth,
               "noise_std": cam.noise_std, "gain": self.player.camera_gain(), "frame_id": self._frame_ids,
               "position_m": cam.position_m, "timestamp_s": ts, "source": self.source,
               "encoding": self.frame_encoding}
        self._frame_ids += 1
        return job

    async def _render_and_publish(self, job: dict) -> None:
        frame = await asyncio.to_thread(_render_frame, job.pop("snapshot"), **job)
        self.frames += 1
        await self._publish(MessageKind.FRAME, self.topics.frame, encode(frame, limits=self.limits))
        await self._publish(MessageKind.FRAME_META, self.topics.frame_meta, encode(frame.meta, limits=self.limits))

    async def camera(self) -> None:
        """Render and publish the frames the simulation hands over (real-time clocks only)."""
        while True:
            job = await self._camera_jobs.get()
            try:
                await self._render_and_publish(job)
            finally:
                self._camera_busy = False
                self._camera_jobs.task_done()

    async def _capture(self, ts: float) -> None:
        """A frame is due: render it in line (simulated clocks) or hand it to the camera task (real time)."""
        if not self.player.publishes(CAMERA_SENSOR):
            return
        if not self.realtime:
            await self._render_and_publish(self._frame_job(ts))
        elif self._camera_busy:
            self.frames_skipped += 1  # still rendering the last one: a camera cannot slow the line down
        else:
            self._camera_busy = True
            self._camera_jobs.put_nowait(self._frame_job(ts))

    # ------------------------------------------------------------------ simulation task
    async def _sleep_until(self, t_s: float) -> None:
        """Wait for ``t_s`` on the clock or the stop event, whichever comes first."""
        if self.stop_event.is_set():
            return
        sleeper = asyncio.ensure_future(self.clock.sleep_until(t_s))
        stopper = asyncio.ensure_future(self.stop_event.wait())
        try:
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    async def simulate(self) -> None:
        """Step the line on the clock, publish readings every step and frames every frame interval."""
        if self.connect_wait_s is None or self.connect_wait_s > 0:
            waiter = asyncio.ensure_future(self._subscribed.wait())
            stopper = asyncio.ensure_future(self.stop_event.wait())
            try:
                await asyncio.wait((waiter, stopper), timeout=self.connect_wait_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (waiter, stopper):
                    task.cancel()
                await asyncio.gather(waiter, stopper, return_exceptions=True)
            if not self._subscribed.is_set() and not self.stop_event.is_set():
                log.warning("no broker connection after %s s; the line starts anyway", self.connect_wait_s)
        line = self.line
        self.t0_s = self.clock.now_s() - line.t_s
        next_frame = line.t_s + self.frame_interval_s  # frames on the grid of the interval
        warned = False
        while not self.stop_event.is_set():
            if self.duration_s is not None and line.t_s >= self.duration_s - 1e-9:
                break
            dt = self.step_s if self.duration_s is None else min(self.step_s, self.duration_s - line.t_s)
            target = self.t0_s + line.t_s + dt
            await self._sleep_until(target)
            if self.stop_event.is_set():
                break
            lag = self.clock.now_s() - target
            self.max_lag_s = max(self.max_lag_s, lag)
            if lag > max(10.0 * self.step_s, 5.0) and not warned:
                warned = True
                log.warning("the simulation is %.1f s behind the clock; lower the speedup", lag)
            with clock_hold(self.clock):  # a lockstep clock waits for this step and its messages
                next_frame = await self._step(dt, next_frame)
            if self.progress is not None:
                self.progress(1)
        await self._camera_jobs.join()  # the last frame goes out before the connection closes

    async def _step(self, dt: float, next_frame: float) -> float:
        """One line step with the set-points received since the last; publish; returns the next frame time."""
        line = self.line
        pending, self._pending = self._pending, {}
        try:
            readings = self.player.step(dt, pending)
        except ValueError as exc:  # validated on receipt; a scenario/limit clash lands here
            log.error("set-points not applied: %s", exc)
            self.rejected[Reason.RANGE.value] += 1
            readings = self.player.step(dt, None)
        else:
            self.applied += len(pending)
        self.steps += 1
        self._web_um += readings.web_speed_m_min / 60.0 * dt * 1e6
        ts = self.t0_s + line.t_s
        await self._publish_readings(readings, ts)
        if self.publish_frames and line.t_s >= next_frame - 1e-9:
            while next_frame <= line.t_s + 1e-9:
                next_frame += self.frame_interval_s
            await self._capture(ts)
        return next_frame


def _check_positive(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive number of seconds, found {value!r}")


async def run_sim_line(
    *,
    broker_url: str,
    config: str | Path | tuple[LineConfig, SlurryConfig] | None = None,
    line_id: str | None = None,
    speedup: float = 1.0,
    duration_s: float | None = None,
    scenario: str | Path | Scenario | None = None,
    seed: int = 0,
    clock: Clock | None = None,
    step_s: float = 1.0,
    frame_interval_s: float | None = None,
    frame_shape_px: tuple[int, int] | None = None,
    frame_encoding: str | None = None,
    publish_frames: bool = True,
    stop_event: asyncio.Event | None = None,
    username: str | None = None,
    password: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    client_id: str | None = None,
    keepalive_s: int = 30,
    reconnect_initial_s: float = 0.5,
    reconnect_max_s: float = 30.0,
    connect_wait_s: float | None = 10.0,
    publish_timeout_s: float = 5.0,
    limits: Limits = DEFAULT_LIMITS,
    source: str = "sim-line",
    progress: Callable[[int], None] | None = None,
    on_line: Callable[[Line], None] | None = None,
) -> SimLineSummary:
    """Run the virtual line as an MQTT plant until ``duration_s`` or ``stop_event``.

    Parameters
    ----------
    broker_url : str
        ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS, see `parse_broker_url`).
    config : path, (LineConfig, SlurryConfig) or None
        Line configuration (default ``configs/line.yaml``).
    line_id : str, optional
        Topic tree ``mudcrack/<line_id>/``; default the config's ``line_id``.
    speedup : float
        Simulated seconds per real second of the default clock (`ScaledClock`); ignored
        when ``clock`` is given.
    duration_s : float, optional
        Simulated seconds to run; None: until ``stop_event`` is set.
    scenario : path or Scenario, optional
        Disturbances (`sim_line._scenario`).
    seed : int
        Seed of the line (coater noise, film scatter) and of the scenario's draws.
    clock : Clock, optional
        Time base (`ScaledClock`, `FakeClock`, `LockstepClock` shared with the other nodes of the
        process); message timestamps are on it.
    step_s : float
        Simulated seconds per line step; sensors are published after every step.
    frame_interval_s : float, optional
        Simulated seconds between camera frames (default: ``camera.frame_interval_s``).
    frame_shape_px : (int, int), optional
        Frame shape (default: ``camera.frame_shape_px``; tests use small frames).
    frame_encoding : {"raw-u8", "raw-u16-le", "png"}, optional
        Image encoding on the wire (default raw).
    publish_frames : bool
        Render and publish camera frames.
    stop_event : asyncio.Event, optional
        Set it to stop the run (graceful: the client disconnects cleanly).
    username, password : str, optional
        Broker credentials (override the URL's).
    tls_context : ssl.SSLContext, optional
        TLS settings (``mqtts://`` URLs default to ``ssl.create_default_context()``).
    client_id : str, optional
        MQTT client id (default ``sim-line-<line_id>-<random>``).
    keepalive_s : int
        MQTT keepalive, real seconds.
    reconnect_initial_s, reconnect_max_s : float
        Reconnection backoff: ``min(max, initial * 2**attempt)`` real seconds times a
        uniform jitter in [0.5, 1].
    connect_wait_s : float or None
        Real seconds to wait for the first connection before the line starts (None:
        forever, 0: do not wait).
    publish_timeout_s : float
        Real seconds a publish may take before it counts as dropped.
    limits : Limits
        Message limits (received set-points and published messages).
    source : str
        ``source`` of the published messages.
    progress : callable, optional
        Called with 1 after every line step and its publications (progress bars, tests).
    on_line : callable, optional
        Called with the `sim_line.Line` once it is built (embedding: demos and tests record
        the plant's ground truth from it; the line must not be stepped by the callee).

    Returns
    -------
    SimLineSummary

    Raises
    ------
    ConfigError
        Bad line or scenario file (the message names the file and the key).
    ValueError
        Bad argument (the message names it).

    Examples
    --------
    >>> summary = asyncio.run(run_sim_line(broker_url="mqtt://127.0.0.1:1883", speedup=10,
    ...                                    duration_s=600))  # doctest: +SKIP
    """
    address = parse_broker_url(broker_url)
    if username is not None or password is not None:
        address = BrokerAddress(address.host, address.port, address.tls, username, password)
    _check_positive("step_s", step_s)
    _check_positive("duration_s", duration_s, allow_none=True)
    _check_positive("frame_interval_s", frame_interval_s, allow_none=True)
    _check_positive("reconnect_initial_s", reconnect_initial_s)
    _check_positive("reconnect_max_s", reconnect_max_s)
    _check_positive("publish_timeout_s", publish_timeout_s)
    if clock is None:
        clock = ScaledClock(speedup)
    elif not isinstance(clock, Clock):
        raise TypeError(f"clock: expected an object with now_s() and sleep_until(t_s), found {type(clock).__name__}")
    if isinstance(scenario, (str, Path)):
        scenario = load_scenario(scenario)
    elif scenario is not None and not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected a path or a Scenario, found {type(scenario).__name__}")
    line = await asyncio.to_thread(Line, config, seed=seed)
    if publish_frames:  # load the renderer's compiled kernels now, not in the first frame of the run
        await asyncio.to_thread(render_surface, line.camera_snapshot(), shape_px=(16, 16))
    if on_line is not None:
        on_line(line)
    player = ScenarioPlayer(scenario, line, seed=seed)
    line_id = line.config.line_id if line_id is None else line_id
    try:
        topics = Topics(line_id)
    except MessageError as exc:
        raise ValueError(f"line_id: {exc}") from None
    cam = line.config.camera
    shape = tuple(int(v) for v in (frame_shape_px or cam.frame_shape_px))
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f"frame_shape_px: expected two positive integers, found {frame_shape_px!r}")
    dtype = "uint16" if cam.bit_depth == 16 else "uint8"
    if frame_encoding is not None and dtype not in FRAME_ENCODINGS.get(frame_encoding, ()):
        allowed = [e for e, dtypes in FRAME_ENCODINGS.items() if dtype in dtypes]
        raise ValueError(f"frame_encoding: expected one of {allowed} for the camera's {cam.bit_depth}-bit frames, "
                         f"found {frame_encoding!r}")
    if tls_context is None and address.tls:
        tls_context = ssl.create_default_context()
    node = _SimLineNode(
        line=line, player=player, address=address, line_id=topics.line_id, clock=clock, step_s=float(step_s),
        duration_s=duration_s, frame_interval_s=float(frame_interval_s or cam.frame_interval_s),
        frame_shape_px=shape, frame_encoding=frame_encoding, publish_frames=publish_frames,
        stop_event=stop_event if stop_event is not None else asyncio.Event(), source=source, limits=limits,
        client_id=client_id or f"sim-line-{topics.line_id}-{uuid.uuid4().hex[:8]}", keepalive_s=int(keepalive_s),
        reconnect_initial_s=float(reconnect_initial_s), reconnect_max_s=float(reconnect_max_s),
        connect_wait_s=connect_wait_s, publish_timeout_s=float(publish_timeout_s), tls_context=tls_context,
        progress=progress)
    async with asyncio.TaskGroup() as tg:
        conn = tg.create_task(node.connection(), name=f"sim-line.{topics.line_id}.mqtt")
        camera = tg.create_task(node.camera(), name=f"sim-line.{topics.line_id}.camera")
        sim = tg.create_task(node.simulate(), name=f"sim-line.{topics.line_id}.simulate")
        await sim
        camera.cancel()
        node.closing.set()  # a clean disconnect: the last readings still go out
        done, _ = await asyncio.wait((conn,), timeout=CLOSE_TIMEOUT_S)
        if not done:  # e.g. still trying to reach a broker that is down
            conn.cancel()
    summary = node.summary()
    log.info("%s", summary.text())
    return summary


# ----------------------------------------------------------------------------- CLI entry
def main_sim_line(
    *,
    config: str | Path | None = None,
    broker_url: str = "mqtt://localhost:1883",
    speedup: float = 1.0,
    duration_s: float | None = None,
    scenario: str | Path | None = None,
    line_id: str | None = None,
    seed: int = 0,
    publish_frames: bool = True,
    frame_interval_s: float | None = None,
    username: str | None = None,
    password: str | None = None,
    clock_anchor_s: float | None = None,
) -> int:
    """``mudcrack sim-line``: run the virtual line until ``duration_s`` or SIGINT/SIGTERM.

    The clock is ``ScaledClock(speedup, anchor_s=clock_anchor_s)``: give the other nodes
    (controller, vision node) the same speedup and anchor so that message ages agree.
    Credentials default to ``MUDCRACK_MQTT_USERNAME`` / ``MUDCRACK_MQTT_PASSWORD``. Prints
    the run summary; returns the exit status (0). Errors in files or arguments raise
    ConfigError / ValueError (the CLI prints them as one line).
    """
    username = username if username is not None else os.environ.get("MUDCRACK_MQTT_USERNAME")
    password = password if password is not None else os.environ.get("MUDCRACK_MQTT_PASSWORD")
    clock = ScaledClock(speedup, anchor_s=clock_anchor_s)
    # fail fast on bad files, before any network activity
    loaded = load_scenario(scenario) if scenario is not None else None
    parse_broker_url(broker_url)

    async def _run() -> SimLineSummary:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            return await run_sim_line(config=config, broker_url=broker_url, line_id=line_id, clock=clock,
                                      duration_s=duration_s, scenario=loaded, seed=seed,
                                      publish_frames=publish_frames, frame_interval_s=frame_interval_s,
                                      stop_event=stop, username=username, password=password)

    summary = asyncio.run(_run())
    print(summary.text())
    return 0
