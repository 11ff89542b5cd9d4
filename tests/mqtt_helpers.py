"""Test-side MQTT helpers shared by the broker tests: a collecting client and a poller.

Importable from any test module because ``tests/`` (the directory of the root
``conftest.py``) is on ``sys.path`` under pytest's default import mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import aiomqtt

from controller._messages import Topics, ZoneSensors, decode


class Inbox:
    """Messages received by a test client: raw ``(topic, payload, retain)`` and decoded as
    they arrive (without age checks)."""

    def __init__(self, line_id: str) -> None:
        self.topics = Topics(line_id)
        self.line_id = line_id
        self.raw: list[tuple[str, bytes, bool]] = []
        self.messages: list = []
        self.lost = False  # the reader saw the connection drop

    def add(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.raw.append((topic, payload, retain))
        self.messages.append(decode(topic, payload, now_s=None, line_id=self.line_id))

    def of(self, kind: type, **attrs) -> list:
        """Decoded messages of a class whose attributes equal ``attrs``."""
        return [m for m in self.messages if isinstance(m, kind) and all(getattr(m, k) == v for k, v in attrs.items())]

    def zone(self, name: str) -> list[ZoneSensors]:
        return self.of(ZoneSensors, zone=name)

    def retained(self) -> dict[str, bytes]:
        return {t: p for t, p, r in self.raw if r}


@contextlib.asynccontextmanager
async def client(broker, line_id: str, subscribe: str | None = "#", **kw) -> AsyncIterator[tuple[aiomqtt.Client, Inbox]]:
    """A connected test client collecting ``mudcrack/<line_id>/<subscribe>`` into an `Inbox`."""
    inbox = Inbox(line_id)
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"test-{uuid.uuid4().hex[:8]}", **kw) as c:
        if subscribe:
            await c.subscribe(f"mudcrack/{line_id}/{subscribe}", qos=1)

        async def read() -> None:
            try:
                async for m in c.messages:
                    inbox.add(str(m.topic), bytes(m.payload), bool(m.retain))
            except aiomqtt.MqttError:
                inbox.lost = True

        task = asyncio.create_task(read(), name="test.reader")
        try:
            yield c, inbox
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms; AssertionError naming ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)
