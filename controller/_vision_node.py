"""The vision node (``mudcrack vision-node``): camera frames in, surface crack estimates out.

`run_vision_node` connects to the broker with ``aiomqtt`` and runs two named tasks in a
TaskGroup:

``vision.<line>.mqtt``
    Connects (username/password and TLS from the broker URL or the arguments),
    subscribes to ``camera/frame`` and validates every payload with
    `controller._messages.decode` against the injected clock: a malformed, oversized,
    out-of-range, stale or unknown payload is logged with its reason, counted
    (``rejected_by_reason``) and ignored. A valid frame goes into a one-slot mailbox; a
    frame still waiting there when a newer one arrives is dropped (``frames_skipped``),
    so the node always works on the newest frame and never builds a backlog. After a
    broker loss it reconnects with exponential backoff and jitter and subscribes again.
``vision.<line>.estimate``
    Takes the newest frame, runs ``estimator.estimate`` (CPU-bound, ~0.2 s per 512^2
    frame) in a worker thread (`asyncio.to_thread`) so the event loop keeps receiving,
    and publishes the `CrackEstimate` on ``estimates/surface`` with the QoS of
    `controller._messages.POLICY`. An estimate made while the broker is away is kept
    (the latest only) and published after the reconnection unless it has become older
    than ``limits.max_age_surface_estimate_s``.

Stopping (``stop_event``, SIGTERM / SIGINT in `main_vision_node`, or ``max_frames``
estimates published): both tasks end and the client disconnects cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

from ._frames import Frame
from ._messages import (
    DEFAULT_LIMITS,
    POLICY,
    CrackEstimate,
    Limits,
    MessageError,
    MessageKind,
    Reason,
    Topics,
    decode,
    encode,
)
from ._metrics import configure_logging, log_event
from ._mqtt import (Clock, ScaledClock, SystemClock, backoff_delay_s, cancel_and_wait, clock_consume,
                    clock_delivered, clock_forget, clock_sent, parse_broker_url, receive_until, stop_on_signals)

__all__ = ["Estimator", "VisionNodeSummary", "main_vision_node", "run_vision_node"]

log = logging.getLogger(__name__)


class Estimator(Protocol):
    """What the node needs of an estimator (`controller._vision_estimate.SurfaceEstimator`)."""

    def estimate(self, frame: Frame, *, now_s: float) -> CrackEstimate:
        """Estimate of one frame (called in a worker thread, one frame at a time)."""
        ...


@dataclass(frozen=True)
class VisionNodeSummary:
    """What a `run_vision_node` run did.

    Attributes
    ----------
    line_id : str
    frames_received : int
        ``camera/frame`` payloads received (valid or not).
    frames_rejected : int
        Payloads rejected by `decode` (logged with their reason).
    rejected_by_reason : dict
        Rejections by `controller._messages.Reason` value.
    frames_skipped : int
        Valid frames dropped because a newer one arrived while the worker was busy.
    frames_estimated : int
        Frames the estimator processed.
    estimates_published : int
        Estimates acknowledged by the broker (QoS 1).
    estimates_dropped : int
        Estimates not published: superseded or too old while disconnected, or not encodable.
    estimator_errors : int
        Frames on which the estimator raised (logged; the node keeps running).
    connections, reconnects : int
        Successful connections; connections after the first.
    """

    line_id: str
    frames_received: int
    frames_rejected: int
    rejected_by_reason: dict[str, int]
    frames_skipped: int
    frames_estimated: int
    estimates_published: int
    estimates_dropped: int
    estimator_errors: int
    connections: int
    reconnects: int

    def text(self) -> str:
        """One paragraph for the console."""
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected_by_reason.items())) or "none"
        return (f"vision-node {self.line_id}: received {self.frames_received} frames, rejected "
                f"{self.frames_rejected} ({rejected}), skipped {self.frames_skipped} (worker busy); estimated "
                f"{self.frames_estimated} ({self.estimator_errors} errors); published {self.estimates_published} "
                f"estimates ({self.estimates_dropped} dropped); connections {self.connections}")


class _VisionNode:
    """State of one run (owned by the event loop; the worker thread only sees one frame)."""

    def __init__(self, *, broker_url: str, line_id: str, clock: Clock, estimator: Estimator, username: str | None,
                 password: str | None, client_id: str | None, reconnect_initial_s: float, reconnect_max_s: float,
                 limits: Limits, max_frames: int | None, publish_timeout_s: float = 5.0,
                 ready_event: asyncio.Event | None = None) -> None:
        self.address = parse_broker_url(broker_url)
        self.topics = Topics(line_id)  # raises MessageError (a ValueError) for a bad line id
        self.line_id = line_id
        self.clock = clock
        self.estimator = estimator
        self.username = username if username is not None else self.address.username
        self.password = password if password is not None else self.address.password
        self.client_id = client_id or f"mudcrack-vision-{line_id}"
        self.reconnect_initial_s = float(reconnect_initial_s)
        self.reconnect_max_s = float(reconnect_max_s)
        self.limits = limits
        self.max_frames = max_frames
        self.ready_event = ready_event
        self.publish_timeout_s = publish_timeout_s
        self.tls = ssl.create_default_context() if self.address.tls else None
        self.counters: Counter[str] = Counter()
        self._rng = random.Random()
        self._pending: Frame | None = None  # the newest valid frame not yet taken by the worker
        self._frame_ready = asyncio.Event()
        self._holding = False  # holds a LockstepClock while a frame waits or is estimated
        self._unsent: CrackEstimate | None = None  # the latest estimate made while disconnected
        self._client: aiomqtt.Client | None = None
        self._shutdown = asyncio.Event()
        self._done = asyncio.Event()  # max_frames reached

    # ------------------------------------------------------------------ receiving
    def handle(self, topic: str, payload: object) -> None:
        """Validate one received payload; a valid frame replaces any frame still waiting."""
        self.counters["received"] += 1
        clock_delivered(self.clock, f"vision:{self.client_id}", topic)
        try:
            if not isinstance(payload, (bytes, bytearray)):
                raise MessageError(Reason.FRAME, f"expected a binary payload, found {type(payload).__name__}",
                                   topic=topic)
            msg = decode(topic, bytes(payload), now_s=self.clock.now_s(), limits=self.limits, line_id=self.line_id)
            if not isinstance(msg, Frame):
                raise MessageError(Reason.TOPIC, f"expected a camera frame, found {type(msg).__name__}",
                                   topic=topic)
        except MessageError as exc:
            self.counters["rejected"] += 1
            self.counters[f"rejected.{exc.reason.value}"] += 1
            log_event(log, logging.WARNING, "rejected", topic=topic, reason=exc.reason.value, detail=str(exc))
            return
        if self._pending is not None:
            self.counters["skipped"] += 1
            log_event(log, logging.DEBUG, "frame_skipped", frame_id=self._pending.meta.frame_id,
                      newer=msg.meta.frame_id)
        self._pending = msg
        self._hold(True)  # a lockstep clock waits for this frame's estimate
        self._frame_ready.set()

    def _hold(self, on: bool) -> None:
        """Hold a lockstep clock (`LockstepClock.acquire`) while a frame waits or is estimated."""
        if on == self._holding or not callable(getattr(self.clock, "acquire", None)):
            return
        self._holding = on
        if on:
            self.clock.acquire()
        else:
            self.clock.release()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.handle(str(message.topic), message.payload)
        raise aiomqtt.MqttError("message stream ended")

    # ------------------------------------------------------------------ estimating
    async def _estimate_loop(self) -> None:
        while True:
            await self._frame_ready.wait()
            self._frame_ready.clear()
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            try:
                await self._estimate_and_send(frame)
            finally:
                if self._pending is None:
                    self._hold(False)
            if self.max_frames is not None and self.counters["estimated"] >= self.max_frames:
                self._done.set()
                return

    async def _estimate_and_send(self, frame: Frame) -> None:
        try:
            est = await asyncio.to_thread(self._estimate, frame)
        except Exception as exc:  # noqa: BLE001  (one bad frame must not stop the node)
            self.counters["errors.estimate"] += 1
            log_event(log, logging.ERROR, "estimate_failed", exc_info=True, frame_id=frame.meta.frame_id,
                      detail=str(exc))
            return
        self.counters["estimated"] += 1
        log_event(log, logging.DEBUG, "estimate", frame_id=frame.meta.frame_id, alarm=est.alarm, score=est.score)
        await self._send(est)

    def _estimate(self, frame: Frame) -> CrackEstimate:
        # runs in the worker thread; the clock is only read (now_s is thread-safe for all clocks)
        est = self.estimator.estimate(frame, now_s=self.clock.now_s())
        # stamped when it exists (a 1 MP estimate takes ~1-2 s); the frame's time stays in
        # sample_timestamp_s
        return dataclasses.replace(est, timestamp_s=max(est.timestamp_s, self.clock.now_s()))

    async def _send(self, est: CrackEstimate) -> None:
        """Publish ``est`` now, or keep it (latest only) for the reconnection."""
        client = self._client
        if client is None:
            self._keep(est)
            return
        try:
            await self._publish(client, est)
        except aiomqtt.MqttError as exc:  # the connection task notices the loss and reconnects
            log_event(log, logging.WARNING, "publish_failed", detail=str(exc))
            self._keep(est)

    def _keep(self, est: CrackEstimate) -> None:
        if self._unsent is not None:
            self.counters["dropped"] += 1
        self._unsent = est

    async def _publish(self, client: aiomqtt.Client, est: CrackEstimate) -> None:
        try:
            payload = encode(est, limits=self.limits)
        except MessageError as exc:  # an estimator bug; the node keeps running
            self.counters["dropped"] += 1
            log_event(log, logging.ERROR, "estimate_not_encoded", frame_id=est.frame_id, detail=str(exc))
            return
        policy = POLICY[MessageKind.SURFACE_ESTIMATE]
        clock_sent(self.clock, self.topics.surface_estimate)
        try:
            await client.publish(self.topics.surface_estimate, payload, qos=policy.qos, retain=policy.retain,
                                 timeout=self.publish_timeout_s)
        except BaseException:
            clock_sent(self.clock, self.topics.surface_estimate, -1)
            raise
        self.counters["published"] += 1

    async def _flush_unsent(self, client: aiomqtt.Client) -> None:
        est, self._unsent = self._unsent, None
        if est is None:
            return
        max_age = self.limits.max_age_surface_estimate_s
        if max_age is not None and self.clock.now_s() - est.timestamp_s > max_age:
            self.counters["dropped"] += 1
            return
        try:
            await self._publish(client, est)
        except aiomqtt.MqttError:
            self._keep(est)
            raise

    # ------------------------------------------------------------------ connection
    async def _connection(self) -> None:
        """Connect, subscribe, receive; reconnect with exponential backoff and jitter."""
        attempt = 0
        addr = self.address
        while not self._shutdown.is_set():
            try:
                async with aiomqtt.Client(addr.host, addr.port, username=self.username, password=self.password,
                                          identifier=self.client_id, tls_context=self.tls,
                                          timeout=self.publish_timeout_s, max_queued_incoming_messages=64,
                                          logger=log.getChild("client")) as client:
                    await client.subscribe(self.topics.frame, qos=POLICY[MessageKind.FRAME].qos)
                    clock_consume(self.clock, f"vision:{self.client_id}", [self.topics.frame])
                    if self.ready_event is not None:
                        self.ready_event.set()
                    self.counters["connections"] += 1
                    attempt = 0
                    log_event(log, logging.INFO, "connected", host=addr.host, port=addr.port,
                              client_id=self.client_id, tls=self.tls is not None, line_id=self.line_id)
                    await self._flush_unsent(client)
                    self._client = client
                    await self._serve(client)
                    return
            except aiomqtt.MqttError as exc:
                delay = backoff_delay_s(attempt, initial_s=self.reconnect_initial_s, max_s=self.reconnect_max_s,
                                        rng=self._rng)
                attempt += 1
                log_event(log, logging.WARNING, "connection_lost", host=addr.host, port=addr.port, detail=str(exc),
                          retry_in_s=round(delay, 3), attempt=attempt)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._shutdown.wait(), timeout=delay)
            finally:
                self._client = None
                clock_forget(self.clock, f"vision:{self.client_id}")

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Receive until the connection is lost (raises MqttError) or the shutdown starts (returns)."""
        await receive_until(self._read(client), self._shutdown, name=f"vision.{self.line_id}.mqtt")

    # ------------------------------------------------------------------ run
    async def run(self, stop_event: asyncio.Event | None) -> VisionNodeSummary:
        stop_event = stop_event if stop_event is not None else asyncio.Event()
        name = f"vision.{self.line_id}"
        async with asyncio.TaskGroup() as tg:
            conn = tg.create_task(self._connection(), name=f"{name}.mqtt")
            work = tg.create_task(self._estimate_loop(), name=f"{name}.estimate")
            stopper = tg.create_task(stop_event.wait(), name=f"{name}.stop")
            done = tg.create_task(self._done.wait(), name=f"{name}.done")
            await asyncio.wait((stopper, done, conn), return_when=asyncio.FIRST_COMPLETED)
            log_event(log, logging.INFO, "stopping", line_id=self.line_id)
            await cancel_and_wait((work, stopper, done))
            self._shutdown.set()  # the connection task returns after a clean disconnect
        summary = self.summary()
        log_event(log, logging.INFO, "summary", text=summary.text())
        return summary

    def summary(self) -> VisionNodeSummary:
        c = self.counters
        return VisionNodeSummary(
            line_id=self.line_id, frames_received=c["received"], frames_rejected=c["rejected"],
            rejected_by_reason={k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("rejected.")},
            frames_skipped=c["skipped"], frames_estimated=c["estimated"], estimates_published=c["published"],
            estimates_dropped=c["dropped"], estimator_errors=c["errors.estimate"], connections=c["connections"],
            reconnects=max(c["connections"] - 1, 0))


async def run_vision_node(*, broker_url: str, line_id: str, clock: Clock | None = None,
                          stop_event: asyncio.Event | None = None, estimator: Estimator | None = None,
                          username: str | None = None, password: str | None = None, client_id: str | None = None,
                          reconnect_initial_s: float = 0.5, reconnect_max_s: float = 30.0,
                          limits: Limits = DEFAULT_LIMITS, max_frames: int | None = None,
                          ready_event: asyncio.Event | None = None) -> VisionNodeSummary:
    """Run the vision node until ``stop_event`` is set (see the module docstring).

    Parameters
    ----------
    broker_url : str
        ``mqtt[s]://[user[:password]@]host[:port]``.
    line_id : str
        Topic tree ``mudcrack/<line_id>/``.
    clock : Clock, optional
        Time base of the frames' age checks and the estimates' timestamps (default
        `SystemClock`; `ScaledClock` shared with ``mudcrack sim-line --speedup``).
    stop_event : asyncio.Event, optional
        Set it to stop (clean disconnect).
    estimator : Estimator, optional
        Default `controller._vision_estimate.SurfaceEstimator` (moving web).
    username, password : str, optional
        Override the URL's credentials.
    client_id : str, optional
        MQTT client id (default ``mudcrack-vision-<line_id>``).
    reconnect_initial_s, reconnect_max_s : float
        Backoff ``min(max, initial * 2**attempt)`` real seconds times a jitter in [0.5, 1).
    limits : Limits
        Message limits of `decode` / `encode`.
    max_frames : int, optional
        Stop after this many frames have been estimated (tests, benchmarks).
    ready_event : asyncio.Event, optional
        Set once the node is subscribed to the frames (embedding: start the line after it).

    Returns
    -------
    VisionNodeSummary

    Raises
    ------
    ValueError
        Bad broker URL, line id or argument.

    Examples
    --------
    >>> asyncio.run(run_vision_node(broker_url="mqtt://localhost", line_id="pilot-1"))  # doctest: +SKIP
    """
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames: expected a positive integer or None, found {max_frames!r}")
    if not (0 < reconnect_initial_s <= reconnect_max_s):
        raise ValueError(f"reconnect_initial_s, reconnect_max_s: expected 0 < initial <= max, found "
                         f"{reconnect_initial_s!r}, {reconnect_max_s!r}")
    if estimator is None:
        from ._vision_estimate import SurfaceEstimator

        estimator = SurfaceEstimator()
    node = _VisionNode(broker_url=broker_url, line_id=line_id, clock=clock or SystemClock(), estimator=estimator,
                       username=username, password=password, client_id=client_id,
                       reconnect_initial_s=reconnect_initial_s, reconnect_max_s=reconnect_max_s, limits=limits,
                       max_frames=max_frames, ready_event=ready_event)
    return await node.run(stop_event)


def main_vision_node(*, broker_url: str, line_id: str, speedup: float = 1.0, web_registered: bool = False) -> int:
    """``mudcrack vision-node``: run until SIGTERM / SIGINT, then print the summary.

    Parameters
    ----------
    broker_url : str
        ``mqtt[s]://[user[:password]@]host[:port]``.
    line_id : str
    speedup : float
        Accelerated time (`ScaledClock`) shared with ``mudcrack sim-line --speedup``; 1: the
        system clock.
    web_registered : bool
        Consecutive frames image the same material: also run the DIC onset detector
        (`controller._vision_estimate.SurfaceEstimator`).

    Returns
    -------
    int
        0 after a graceful stop.

    Raises
    ------
    ValueError
        Bad broker URL, line id or speedup (before any network activity).
    """
    from ._vision_estimate import SurfaceEstimator

    parse_broker_url(broker_url)
    Topics(line_id)
    clock: Clock = SystemClock() if speedup == 1.0 else ScaledClock(speedup)
    estimator = SurfaceEstimator(web_registered=web_registered)
    configure_logging("kv", "INFO")

    async def _run() -> VisionNodeSummary:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            return await run_vision_node(broker_url=broker_url, line_id=line_id, clock=clock, stop_event=stop,
                                         estimator=estimator)

    summary = asyncio.run(_run())
    print(summary.text())
    return 0
