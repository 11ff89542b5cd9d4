"""The vision node against a real Mosquitto: frames in, surface crack estimates out, rejections, stop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiomqtt
import numpy as np
import pytest

import sim_line
from controller._frames import Frame
from controller._messages import CrackEstimate, Topics, decode, encode
from controller._vision_node import VisionNodeSummary, run_vision_node

SHAPE = (128, 128)  # small frames keep the tests fast
UM_PER_PX = 5.0


def _frame(t_snapshot_s: float, *, frame_id: int) -> Frame:
    """A rendered camera frame of the default line: cracked at 9 s, crack-free at 3 s."""
    snap = sim_line.Line(None, seed=0).snapshot_at(t_snapshot_s)
    image = np.asarray(sim_line.render_surface(snap, shape_px=SHAPE, um_per_px=UM_PER_PX, seed=frame_id).image)
    return Frame.from_image(image, frame_id=frame_id, um_per_px=UM_PER_PX, position_m=7.0, timestamp_s=time.time(),
                            source="test-camera", seq=frame_id)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {"cracked": _frame(9.0, frame_id=1).image, "clean": _frame(3.0, frame_id=2).image}


def _payload(image: np.ndarray, frame_id: int) -> bytes:
    return encode(Frame.from_image(image, frame_id=frame_id, um_per_px=UM_PER_PX, position_m=7.0,
                                   timestamp_s=time.time(), source="test-camera", seq=frame_id))


@contextlib.asynccontextmanager
async def estimates_client(broker, topics: Topics) -> AsyncIterator[tuple[aiomqtt.Client, list[CrackEstimate]]]:
    """A test client collecting the decoded surface estimates."""
    received: list[CrackEstimate] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"test-{uuid.uuid4().hex[:8]}") as c:
        await c.subscribe(topics.surface_estimate, qos=1)

        async def read() -> None:
            async for m in c.messages:
                received.append(decode(str(m.topic), bytes(m.payload), now_s=time.time(), line_id=topics.line_id))

        task = asyncio.create_task(read(), name="test.reader")
        try:
            yield c, received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def _start(broker, line_id: str, **kw) -> tuple[asyncio.Task[VisionNodeSummary], asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_vision_node(broker_url=broker.url, line_id=line_id, stop_event=stop,
                                               reconnect_initial_s=0.05, reconnect_max_s=0.5, **kw))
    return task, stop


async def _wait_connected(broker, topics: Topics, c: aiomqtt.Client, received: list, node: asyncio.Task) -> None:
    """Publish a crack-free probe frame until the node answers (it has subscribed)."""
    deadline = time.monotonic() + 10.0
    while not received:
        assert not node.done(), node.result()
        assert time.monotonic() < deadline, "the vision node never answered"
        await c.publish(topics.frame, _payload(_frame(3.0, frame_id=99).image, 99), qos=0)
        await asyncio.sleep(0.2)


@pytest.mark.asyncio
async def test_publishes_an_estimate_per_frame_with_the_alarm_of_the_frame(mosquitto, line_id, topics, images):
    async with estimates_client(mosquitto, topics) as (c, received):
        node, stop = await _start(mosquitto, line_id)
        await _wait_connected(mosquitto, topics, c, received, node)
        n0 = len(received)
        await c.publish(topics.frame, _payload(images["cracked"], 1), qos=1)
        await wait_until(lambda: len(received) >= n0 + 1, what="the estimate of the cracked frame")
        await c.publish(topics.frame, _payload(images["clean"], 2), qos=1)
        await wait_until(lambda: len(received) >= n0 + 2, what="the estimate of the crack-free frame")
        stop.set()
        summary = await asyncio.wait_for(node, 10.0)
    by_id = {e.frame_id: e for e in received}
    assert by_id[1].kind == "surface" and by_id[1].alarm and by_id[1].onset and by_id[1].risk == 1.0
    assert by_id[1].evidence["surface_cif"] > 0.01
    assert not by_id[2].alarm and not by_id[2].onset and by_id[2].evidence["surface_cif"] == 0.0
    assert all(e.position_m == 7.0 for e in received)
    assert summary.frames_rejected == 0 and summary.connections == 1
    assert summary.estimates_published == len(received) == summary.frames_estimated
    assert "vision-node" in summary.text()


class _TakesTime:
    """The real estimator plus 0.3 s of real time (a 1 MP estimate takes 1-2 s)."""

    def __init__(self) -> None:
        from controller._vision_estimate import SurfaceEstimator

        self.inner = SurfaceEstimator()

    def estimate(self, frame: Frame, *, now_s: float) -> CrackEstimate:
        time.sleep(0.3)
        return self.inner.estimate(frame, now_s=now_s)


@pytest.mark.asyncio
async def test_estimates_are_stamped_when_they_exist_and_keep_the_frame_time(mosquitto, line_id, topics, images):
    async with estimates_client(mosquitto, topics) as (c, received):
        node, stop = await _start(mosquitto, line_id, estimator=_TakesTime())
        await _wait_connected(mosquitto, topics, c, received, node)
        n0 = len(received)
        t_frame = time.time()
        await c.publish(topics.frame, encode(Frame.from_image(images["cracked"], frame_id=7, um_per_px=UM_PER_PX,
                                                              position_m=7.0, timestamp_s=t_frame,
                                                              source="test-camera", seq=7)), qos=1)
        await wait_until(lambda: any(e.frame_id == 7 for e in received[n0:]), what="the estimate")
        stop.set()
        await asyncio.wait_for(node, 10.0)
    est = next(e for e in received[n0:] if e.frame_id == 7)
    assert est.sample_timestamp_s == pytest.approx(t_frame)
    assert est.timestamp_s - t_frame >= 0.3  # after the estimate, not when it started


@pytest.mark.asyncio
async def test_rejects_malformed_frames_and_keeps_working(mosquitto, line_id, topics, images):
    async with estimates_client(mosquitto, topics) as (c, received):
        node, stop = await _start(mosquitto, line_id)
        await _wait_connected(mosquitto, topics, c, received, node)
        n0 = len(received)
        good = _payload(images["cracked"], 5)
        await c.publish(topics.frame, b"not a frame", qos=1)
        await c.publish(topics.frame, good[:-10], qos=1)  # truncated pixels
        stale = encode(Frame.from_image(images["cracked"], frame_id=6, um_per_px=UM_PER_PX, position_m=7.0,
                                        timestamp_s=time.time() - 3600.0, source="test-camera", seq=6))
        await c.publish(topics.frame, stale, qos=1)
        await c.publish(topics.frame, good, qos=1)
        await wait_until(lambda: any(e.frame_id == 5 for e in received[n0:]), what="the estimate after the rejections")
        stop.set()
        summary = await asyncio.wait_for(node, 10.0)
    assert not node.exception()
    assert [e.frame_id for e in received[n0:]] == [5]
    assert summary.frames_rejected == 3
    assert summary.rejected_by_reason == {"frame": 2, "stale": 1}


class _SlowEstimator:
    """Wraps the real estimator; blocks in the worker thread until released (proves the loop stays free)."""

    def __init__(self) -> None:
        from controller._vision_estimate import SurfaceEstimator

        self.inner = SurfaceEstimator()
        self.release = threading.Event()
        self.calls: list[int] = []

    def estimate(self, frame: Frame, *, now_s: float) -> CrackEstimate:
        self.calls.append(frame.meta.frame_id)
        if len(self.calls) == 1:
            assert self.release.wait(10.0)
        return self.inner.estimate(frame, now_s=now_s)


@pytest.mark.asyncio
async def test_keeps_only_the_newest_frame_while_the_worker_is_busy(mosquitto, line_id, topics, images):
    est = _SlowEstimator()
    async with estimates_client(mosquitto, topics) as (c, received):
        node, _ = await _start(mosquitto, line_id, estimator=est, max_frames=2)
        await asyncio.sleep(0.3)  # let the node subscribe (QoS 0 frames before that are lost)
        await c.publish(topics.frame, _payload(images["clean"], 10), qos=1)
        await wait_until(lambda: len(est.calls) == 1, what="the worker to start")
        for k in (11, 12, 13):  # arrive while the worker is blocked: only 13 survives
            await c.publish(topics.frame, _payload(images["cracked"], k), qos=1)
        await asyncio.sleep(0.5)  # the event loop keeps receiving while the worker thread is blocked
        assert not node.done()
        est.release.set()
        summary = await asyncio.wait_for(node, 10.0)  # max_frames=2 ends it
        await wait_until(lambda: len(received) == 2, what="both estimates")
    assert est.calls == [10, 13]
    assert [e.frame_id for e in received] == [10, 13] and [e.alarm for e in received] == [False, True]
    assert summary.frames_skipped == 2 and summary.frames_received == 4 and summary.frames_estimated == 2


@pytest.mark.asyncio
async def test_stop_event_ends_it_cleanly_even_without_a_broker(mosquitto_factory, line_id):
    broker = mosquitto_factory()
    url = broker.url
    broker.stop()
    stop = asyncio.Event()
    node = asyncio.create_task(run_vision_node(broker_url=url, line_id=line_id, stop_event=stop,
                                               reconnect_initial_s=0.05, reconnect_max_s=0.2))
    await asyncio.sleep(0.5)  # a few failed connection attempts
    stop.set()
    summary = await asyncio.wait_for(node, 5.0)
    assert summary.connections == 0 and summary.frames_received == 0


@pytest.mark.asyncio
async def test_reconnects_after_a_broker_restart(mosquitto, line_id, topics, images):
    node, stop = await _start(mosquitto, line_id)
    async with estimates_client(mosquitto, topics) as (c, received):
        await _wait_connected(mosquitto, topics, c, received, node)
    await asyncio.to_thread(mosquitto.restart, down_s=0.3)
    async with estimates_client(mosquitto, topics) as (c, received):
        await _wait_connected(mosquitto, topics, c, received, node)
    stop.set()
    summary = await asyncio.wait_for(node, 10.0)
    assert summary.connections >= 2 and summary.reconnects >= 1


@pytest.mark.asyncio
async def test_bad_arguments_fail_before_connecting():
    with pytest.raises(ValueError, match="broker_url"):
        await run_vision_node(broker_url="http://x", line_id="pilot-1")
    with pytest.raises(ValueError, match="line id"):
        await run_vision_node(broker_url="mqtt://127.0.0.1:1", line_id="bad/id")
    with pytest.raises(ValueError, match="max_frames"):
        await run_vision_node(broker_url="mqtt://127.0.0.1:1", line_id="pilot-1", max_frames=0)
