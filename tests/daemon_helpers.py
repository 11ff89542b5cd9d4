"""Test-side helpers for driving a `ControllerDaemon` against a broker (shared by the daemon tests).

Importable from any test module because ``tests/`` is on ``sys.path`` (see mqtt_helpers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from controller._daemon import ControllerDaemon, DaemonSummary
from controller._mqtt import FakeClock
from mqtt_helpers import wait_until


def taken(daemon: ControllerDaemon) -> int:
    """Inputs the daemon has accepted or rejected (set-point echoes left out)."""
    c = daemon.metrics.counters
    return (c["rejected.total"] + c["accepted.sensors_zone"] + c["accepted.sensors_line"]
            + c["accepted.estimates_surface"] + c["accepted.estimates_lab"])


async def step(daemon: ControllerDaemon, clock: FakeClock, dt_s: float = 1.0) -> None:
    """Advance the fake clock and wait for the control step (and its publications) to finish."""
    before = daemon.metrics.counters["steps"]
    clock.advance(dt_s)
    await wait_until(lambda: daemon.metrics.counters["steps"] > before, what="a control step")
    await wait_until(lambda: not daemon._dirty or daemon._client is None, what="set-points sent")


@dataclass
class Running:
    """A daemon running in a task of the test's loop; `stop` ends it gracefully."""

    daemon: ControllerDaemon
    task: asyncio.Task
    stop_event: asyncio.Event
    summary: DaemonSummary | None = None

    async def stop(self) -> DaemonSummary:
        self.stop_event.set()
        self.summary = await asyncio.wait_for(self.task, 30.0)
        return self.summary


@contextlib.asynccontextmanager
async def running(config, **kw) -> AsyncIterator[Running]:
    """Start a `ControllerDaemon(config, **kw)` (fast reconnects) and wait until it is connected."""
    kw.setdefault("reconnect_initial_s", 0.05)
    kw.setdefault("reconnect_max_s", 0.5)
    daemon = ControllerDaemon(config, **kw)
    stop = asyncio.Event()
    run = Running(daemon, asyncio.create_task(daemon.run(stop), name="test.daemon"), stop)
    try:
        await wait_until(lambda: daemon.connected or run.task.done(), what="the daemon to connect")
        yield run
    finally:
        if not run.task.done():
            await run.stop()
