"""MQTT plumbing shared by the nodes and the daemon: clocks, broker URLs, reconnect backoff.

Simulated and real time are interchangeable (style.md): every node takes a `Clock`
(`ScaledClock` runs simulated time ``speedup`` times faster than the wall clock,
`FakeClock` moves only when the code waits or the test advances it, `LockstepClock`
moves only when every node in the process has finished the work of the current instant,
so a plant, a vision node and the daemon sharing it never lag one another).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import signal
import time
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

__all__ = ["FAKE_EPOCH_S", "BrokerAddress", "Clock", "FakeClock", "LockstepClock", "ScaledClock", "SystemClock",
           "backoff_delay_s", "cancel_and_wait", "clock_consume", "clock_delivered", "clock_forget", "clock_hold",
           "clock_sent",
           "parse_broker_url", "receive_until", "stop_on_signals"]

#: Start of `FakeClock` by default: 2026-01-01T00:00:00Z (as the docs' examples).
FAKE_EPOCH_S = 1_767_225_600.0


def backoff_delay_s(attempt: int, *, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Reconnect delay: ``min(max_s, initial_s * 2**attempt)`` times a jitter factor in [0.5, 1)."""
    return min(max_s, initial_s * 2.0 ** attempt) * (0.5 + 0.5 * rng.random())


# ----------------------------------------------------------------------------- clocks
@runtime_checkable
class Clock(Protocol):
    """Time base of the simulation: epoch seconds, and a way to wait for a time.

    An optional ``realtime`` attribute (default True) says whether time passes while the
    simulation computes: then camera frames render concurrently and are skipped while
    the camera is busy; otherwise every frame renders in line.
    """

    def now_s(self) -> float:
        """Current time, seconds since the Unix epoch on this clock."""
        ...

    async def sleep_until(self, t_s: float) -> None:
        """Return once ``now_s() >= t_s``."""
        ...


class SystemClock:
    """Wall-clock time (``time.time``)."""

    def now_s(self) -> float:
        return time.time()

    async def sleep_until(self, t_s: float) -> None:
        await asyncio.sleep(max(t_s - time.time(), 0.0))


class ScaledClock:
    """Simulated time running ``speedup`` times faster than the wall clock (``realtime = True``).

    Simulated time equals wall time at ``anchor_s`` and runs ``speedup`` times faster
    from there: ``now = anchor_s + speedup * (wall - anchor_s)``. Processes that share
    ``speedup`` and ``anchor_s`` (and NTP) share the time base; within a process the
    clock follows the monotonic clock, so it never jumps.

    Parameters
    ----------
    speedup : float
        Simulated seconds per real second (1: real time).
    anchor_s : float, optional
        Epoch time where simulated and wall time agree (default: when the clock is created).

    Examples
    --------
    >>> clock = ScaledClock(10.0)  # 10 simulated seconds per real second
    """

    def __init__(self, speedup: float = 1.0, *, anchor_s: float | None = None) -> None:
        if isinstance(speedup, bool) or not (isinstance(speedup, (int, float)) and math.isfinite(speedup)
                                             and speedup > 0):
            raise ValueError(f"speedup: expected a positive number, found {speedup!r}")
        self.speedup = float(speedup)
        self.realtime = True
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self.anchor_s = self._wall0 if anchor_s is None else float(anchor_s)

    def now_s(self) -> float:
        wall = self._wall0 + (time.monotonic() - self._mono0)
        return self.anchor_s + self.speedup * (wall - self.anchor_s)

    async def sleep_until(self, t_s: float) -> None:
        delay = (t_s - self.now_s()) / self.speedup
        await asyncio.sleep(max(delay, 0.0))


class FakeClock:
    """A clock for tests: time moves only when the simulation waits (or the test advances it).

    Parameters
    ----------
    start_s : float
        Initial epoch time.
    auto : bool
        True: `sleep_until` jumps to the requested time at once (after ``pause_s`` real
        seconds), so the simulation runs as fast as it can compute. False: `sleep_until`
        blocks until the test moves the clock with `advance` / `set`.
    pause_s : float
        Real seconds `sleep_until` waits in auto mode (paces the simulation so that test
        clients can interleave; 0 still yields to the event loop).

    Examples
    --------
    >>> clock = FakeClock(auto=False)
    >>> clock.advance(5.0)
    >>> clock.now_s() - FAKE_EPOCH_S
    5.0
    """

    def __init__(self, start_s: float = FAKE_EPOCH_S, *, auto: bool = True, pause_s: float = 0.0) -> None:
        self._t = float(start_s)
        self.realtime = False
        self.auto = auto
        self.pause_s = float(pause_s)
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now_s(self) -> float:
        return self._t

    def set(self, t_s: float) -> None:
        """Move the clock to ``t_s`` (never backwards) and wake the sleepers that are due."""
        self._t = max(self._t, float(t_s))
        due = [(t, f) for t, f in self._waiters if t <= self._t]
        self._waiters = [(t, f) for t, f in self._waiters if t > self._t]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    def advance(self, dt_s: float) -> None:
        """Move the clock forward by ``dt_s`` seconds."""
        self.set(self._t + float(dt_s))

    async def sleep_until(self, t_s: float) -> None:
        if self.auto:
            await asyncio.sleep(self.pause_s)
            self.set(t_s)
            return
        if t_s <= self._t:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((float(t_s), fut))
        try:
            await fut
        finally:
            self._waiters = [(t, f) for t, f in self._waiters if f is not fut]


class LockstepClock:
    """Simulated time shared by the nodes of one process, advancing only when they are all idle.

    Time stands still while any node holds the clock (`hold`, or `acquire` / `release`
    around work that belongs to the current instant: a plant step and its messages, a
    frame estimate, a control step and its set-points) and while a message published to a
    registered consumer (`consume`, `sent`, `delivered`) has not arrived (for at most
    ``delivery_timeout_s`` real seconds; then it counts a late advance). When nothing holds
    it, at least one task waits in `sleep_until`, and nothing changed for ``settle_s``
    real seconds, it jumps to the earliest wake-up time. So the simulation runs as fast as the machine computes, and a slow
    step delays the simulated time instead of making the controller lag the plant
    (a `ScaledClock` on a loaded machine does the latter).

    Parameters
    ----------
    start_s : float
        Initial epoch time.
    settle_s : float
        Real seconds of quiet (no hold, no new sleeper) before time moves: the allowance
        for messages in flight to nodes that do not count them (a local broker delivers in
        ~1 ms).
    delivery_timeout_s : float
        Real seconds time waits for counted messages before it moves anyway.

    Notes
    -----
    The clock drives itself from a task of the running event loop; it must be used from
    one loop (`now_s` may be read from worker threads). Nodes that do not hold the clock
    around their work still run correctly, only without the lockstep guarantee.

    Examples
    --------
    >>> clock = LockstepClock(settle_s=0.005)
    >>> clock.now_s() == FAKE_EPOCH_S
    True
    """

    def __init__(self, start_s: float = FAKE_EPOCH_S, *, settle_s: float = 0.01,
                 delivery_timeout_s: float = 2.0) -> None:
        for name, value in (("settle_s", settle_s), ("delivery_timeout_s", delivery_timeout_s)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                               and value >= 0):
                raise ValueError(f"{name}: expected a number of seconds >= 0, found {value!r}")
        self._t = float(start_s)
        self.realtime = False
        self.settle_s = float(settle_s)
        self.delivery_timeout_s = float(delivery_timeout_s)
        self.advances = 0
        #: advances made while a registered consumer still missed a message (after delivery_timeout_s)
        self.late_advances = 0
        self._consumers: dict[str, tuple[str, ...]] = {}
        self._undelivered: dict[str, int] = {}
        self._holds = 0
        self._generation = 0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._changed: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None

    def now_s(self) -> float:
        return self._t

    @property
    def holds(self) -> int:
        """How many holds are active now."""
        return self._holds

    def _touch(self) -> None:
        self._generation += 1
        if self._changed is not None:
            self._changed.set()

    def acquire(self) -> None:
        """Stop time until the matching `release`."""
        self._holds += 1
        self._touch()

    def release(self) -> None:
        """End one `acquire`; time may move again once no hold is left."""
        if self._holds <= 0:
            raise RuntimeError("LockstepClock.release() without acquire()")
        self._holds -= 1
        self._touch()

    @contextlib.contextmanager
    def hold(self):
        """Context manager: time stands still inside (work of the current instant)."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    # -- message accounting: time also waits for the messages a registered consumer expects
    def consume(self, consumer: str, filters: Iterable[str]) -> None:
        """Register ``consumer`` (a unique name) as a subscriber of the MQTT topic ``filters``."""
        self._consumers[consumer] = tuple(filters)
        self._undelivered.setdefault(consumer, 0)

    def forget(self, consumer: str) -> None:
        """``consumer`` disconnected: stop waiting for its messages."""
        self._consumers.pop(consumer, None)
        self._undelivered.pop(consumer, None)
        self._touch()

    def sent(self, topic: str, count: int = 1) -> None:
        """A node is publishing on ``topic`` (``count=-1`` takes it back when the publish failed)."""
        from paho.mqtt.client import topic_matches_sub

        for consumer, filters in self._consumers.items():
            if any(topic_matches_sub(f, topic) for f in filters):
                self._undelivered[consumer] = max(self._undelivered[consumer] + count, 0)
        self._touch()

    def delivered(self, consumer: str, topic: str) -> None:
        """``consumer`` received a message on ``topic`` (retained ones it was not counted for are ignored)."""
        from paho.mqtt.client import topic_matches_sub

        if self._undelivered.get(consumer, 0) > 0 and any(
                topic_matches_sub(f, topic) for f in self._consumers[consumer]):
            self._undelivered[consumer] -= 1
            self._touch()

    @property
    def undelivered(self) -> int:
        """Messages published to registered consumers and not received yet."""
        return sum(self._undelivered.values())

    def _ensure_driver(self) -> None:
        loop = asyncio.get_running_loop()
        if self._driver is None or self._driver.done() or self._driver.get_loop() is not loop:
            self._changed = asyncio.Event()
            self._driver = loop.create_task(self._drive(), name="lockstep-clock")

    async def _drive(self) -> None:
        assert self._changed is not None
        while True:
            await self._changed.wait()
            self._changed.clear()
            waiting_since = None
            while self._waiters and not self._holds:
                generation = self._generation
                await asyncio.sleep(self.settle_s)
                if generation != self._generation or self._holds:
                    continue  # something happened: settle again (or wait for the release)
                if self.undelivered:  # messages in flight to a registered consumer: wait (bounded)
                    now = asyncio.get_running_loop().time()
                    waiting_since = now if waiting_since is None else waiting_since
                    if now - waiting_since < self.delivery_timeout_s:
                        continue
                    self.late_advances += 1
                    logging.getLogger(__name__).warning(
                        "lockstep clock at %.3f: moving on without %s after %.1f s", self._t,
                        {c: n for c, n in self._undelivered.items() if n}, self.delivery_timeout_s)
                    self._undelivered = dict.fromkeys(self._undelivered, 0)
                self._waiters = [(t, f) for t, f in self._waiters if not f.done()]
                if not self._waiters:
                    break
                t_next = min(t for t, _ in self._waiters)
                self._t = max(self._t, t_next)
                self.advances += 1
                due = [f for t, f in self._waiters if t <= self._t]
                self._waiters = [(t, f) for t, f in self._waiters if t > self._t]
                for fut in due:
                    fut.set_result(None)
                self._touch()
                break

    async def sleep_until(self, t_s: float) -> None:
        if t_s <= self._t:
            await asyncio.sleep(0)
            return
        self._ensure_driver()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((float(t_s), fut))
        self._touch()
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()
            self._waiters = [(t, f) for t, f in self._waiters if f is not fut]

    async def aclose(self) -> None:
        """Stop the driver task (optional: it also ends with its event loop)."""
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None


async def receive_until(reader: Coroutine[Any, Any, None], shutdown: asyncio.Event, *, name: str) -> None:
    """Run a client's receive loop until it fails or ``shutdown`` is set.

    Returns when ``shutdown`` is set (the loop is cancelled); re-raises the loop's error
    (an ``aiomqtt.MqttError`` when the connection is lost) otherwise.
    """
    read = asyncio.create_task(reader, name=f"{name}.read")
    stop = asyncio.create_task(shutdown.wait(), name=f"{name}.stop")
    try:
        await asyncio.wait((read, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not read.done():
            read.cancel()
        await asyncio.gather(read, stop, return_exceptions=True)
    if not shutdown.is_set():
        read.result()  # raises the error of the lost connection


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Inside: SIGINT and SIGTERM set ``stop`` (the running loop's handlers; removed on exit)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def cancel_and_wait(tasks: Iterable[asyncio.Task], *, retry_s: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again every ``retry_s``.

    Python 3.11's `asyncio.wait_for` (used by aiomqtt's publish) swallows a cancellation that
    arrives as its inner future completes; a task looping ``while True`` around such a
    publish then never ends, and a shutdown that awaited it once would hang.
    """
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=retry_s)
        for task in pending:
            task.cancel()


def clock_consume(clock: Clock, consumer: str, filters: Iterable[str]) -> None:
    """`LockstepClock.consume` for clocks that count messages; a no-op otherwise."""
    if callable(getattr(clock, "consume", None)):
        clock.consume(consumer, filters)  # type: ignore[attr-defined]


def clock_forget(clock: Clock, consumer: str) -> None:
    """`LockstepClock.forget` for clocks that count messages; a no-op otherwise."""
    if callable(getattr(clock, "forget", None)):
        clock.forget(consumer)  # type: ignore[attr-defined]


def clock_sent(clock: Clock, topic: str, count: int = 1) -> None:
    """`LockstepClock.sent` for clocks that count messages; a no-op otherwise."""
    if callable(getattr(clock, "sent", None)):
        clock.sent(topic, count)  # type: ignore[attr-defined]


def clock_delivered(clock: Clock, consumer: str, topic: str) -> None:
    """`LockstepClock.delivered` for clocks that count messages; a no-op otherwise."""
    if callable(getattr(clock, "delivered", None)):
        clock.delivered(consumer, topic)  # type: ignore[attr-defined]


def clock_hold(clock: Clock) -> contextlib.AbstractContextManager:
    """``clock.hold()`` for clocks that advance in lockstep (`LockstepClock`), a no-op otherwise."""
    hold = getattr(clock, "hold", None)
    return hold() if callable(hold) else contextlib.nullcontext()


# ----------------------------------------------------------------------------- broker URL
@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is: host, port, TLS, credentials from the URL."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` (also ``tcp://``; ``mqtts://`` / ``ssl://`` for TLS).

    Default ports: 1883, 8883 with TLS.

    Raises
    ------
    ValueError
        Another scheme, no host or a bad port; the message names the URL.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, TypeError) as exc:
        raise ValueError(f"broker_url: expected mqtt://host:port, found {url!r} ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise ValueError(f"broker_url: expected a mqtt://, tcp://, mqtts:// or ssl:// URL, found {url!r}")
    if not parts.hostname:
        raise ValueError(f"broker_url: expected a host name, found {url!r}")
    tls = scheme in ("mqtts", "ssl")
    return BrokerAddress(host=parts.hostname, port=port or (8883 if tls else 1883), tls=tls,
                         username=unquote(parts.username) if parts.username else None,
                         password=unquote(parts.password) if parts.password else None)
