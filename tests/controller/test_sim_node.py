"""The virtual line over MQTT against a real Mosquitto: sensors, frames, set-points, rejections, reconnection."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiomqtt
import numpy as np
import pytest

from controller._frames import Frame, FrameMeta
from controller._messages import LineCommand, LineSensors, ZoneCommand, ZoneSensors, decode, encode
from controller._sim_node import (
    FAKE_EPOCH_S,
    FakeClock,
    LockstepClock,
    ScaledClock,
    SimLineSummary,
    parse_broker_url,
    run_sim_line,
)
from sim_line._scenario import parse_scenario
from mqtt_helpers import client
from mqtt_helpers import wait_until as _wait_until

FRAME = (48, 64)  # small camera frames keep the tests fast
ZONES = ("Z1", "Z2", "Z3", "Z4")


# ------------------------------------------------------------------ helpers
async def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    await _wait_until(predicate, timeout_s, what)


def start_node(broker, line_id: str, clock, **kw) -> tuple[asyncio.Task[SimLineSummary], asyncio.Event]:
    stop = asyncio.Event()
    kw.setdefault("frame_shape_px", FRAME)
    task = asyncio.create_task(run_sim_line(broker_url=broker.url, line_id=line_id, clock=clock, stop_event=stop,
                                            **kw), name="test.sim-line")
    return task, stop


async def publish(c: aiomqtt.Client, topic: str, payload: bytes, *, retain: bool = False) -> None:
    await c.publish(topic, payload, qos=1, retain=retain)


# ------------------------------------------------------------------ unit bits
def test_broker_urls():
    assert parse_broker_url("mqtt://127.0.0.1:1884").port == 1884
    a = parse_broker_url("mqtts://line:s%40cret@broker.plant")
    assert (a.host, a.port, a.tls, a.username, a.password) == ("broker.plant", 8883, True, "line", "s@cret")
    assert "s@cret" not in repr(a)
    with pytest.raises(ValueError, match=r"broker_url: expected a mqtt://, tcp://, mqtts:// or ssl:// URL, found 'http://x'"):
        parse_broker_url("http://x")
    with pytest.raises(ValueError, match=r"broker_url: expected mqtt://host:port, found 'mqtt://h:99999'"):
        parse_broker_url("mqtt://h:99999")


@pytest.mark.asyncio
async def test_fake_clock_manual_mode_wakes_sleepers_when_advanced():
    clock = FakeClock(auto=False)
    task = asyncio.create_task(clock.sleep_until(FAKE_EPOCH_S + 5))
    await asyncio.sleep(0.01)
    clock.advance(4.0)
    await asyncio.sleep(0.01)
    assert not task.done()
    clock.advance(1.0)
    await asyncio.wait_for(task, 1.0)
    assert clock.now_s() == FAKE_EPOCH_S + 5


@pytest.mark.asyncio
async def test_lockstep_clock_stands_still_while_held_and_jumps_to_the_next_sleeper():
    clock = LockstepClock(settle_s=0.002)
    loop = asyncio.get_running_loop()
    during_work, order = [], []

    async def plant() -> None:  # a node whose work takes real time
        t = clock.now_s()
        for _ in range(4):
            t += 1.0
            await clock.sleep_until(t)
            with clock.hold():
                t_in = clock.now_s()
                await asyncio.sleep(0.03)  # e.g. rendering a frame in a thread
                during_work.append(clock.now_s() - t_in)
                order.append(("plant", clock.now_s() - FAKE_EPOCH_S))

    async def controller() -> None:  # a node on a finer grid with a message "in flight"
        t = clock.now_s()
        for _ in range(8):
            t += 0.5
            await clock.sleep_until(t)
            clock.acquire()  # released by a callback 20 ms later, like a frame estimate
            loop.call_later(0.02, clock.release)
            order.append(("controller", clock.now_s() - FAKE_EPOCH_S))

    r0 = loop.time()
    await asyncio.wait_for(asyncio.gather(plant(), controller()), 10.0)
    await clock.aclose()
    assert during_work == [0.0] * 4  # time never moved while the plant worked
    assert clock.now_s() == FAKE_EPOCH_S + 4.0 and clock.holds == 0
    assert [t for _, t in order] == sorted(t for _, t in order)  # nobody ran ahead
    assert sorted(t for n, t in order if n == "controller") == [0.5 * k for k in range(1, 9)]
    assert clock.advances == 8  # the plant's seconds coincide with every other controller tick
    assert loop.time() - r0 >= 4 * 0.03 + 4 * 0.02  # the held work really ran in between
    with pytest.raises(RuntimeError, match="release"):
        clock.release()
    with pytest.raises(ValueError, match=r"settle_s: expected a number of seconds >= 0, found -1"):
        LockstepClock(settle_s=-1)


@pytest.mark.asyncio
async def test_lockstep_clock_waits_for_messages_to_registered_consumers():
    clock = LockstepClock(settle_s=0.001, delivery_timeout_s=0.3)
    loop = asyncio.get_running_loop()
    clock.consume("daemon", ["mudcrack/l1/sensors/#"])
    clock.sent("mudcrack/l1/sensors/zone/Z1")  # counted
    clock.sent("mudcrack/l1/camera/frame")  # nobody registered for it: not counted
    assert clock.undelivered == 1
    sleeper = asyncio.create_task(clock.sleep_until(clock.now_s() + 1.0))
    await asyncio.sleep(0.05)
    assert not sleeper.done()  # the reading is still in flight
    clock.delivered("daemon", "mudcrack/l1/setpoints/zone/Z1")  # another topic: does not count
    await asyncio.sleep(0.05)
    assert not sleeper.done()
    clock.delivered("daemon", "mudcrack/l1/sensors/zone/Z1")
    await asyncio.wait_for(sleeper, 1.0)
    assert clock.undelivered == 0 and clock.late_advances == 0
    # a message that never arrives holds time for delivery_timeout_s only
    clock.sent("mudcrack/l1/sensors/line")
    r0 = loop.time()
    await asyncio.wait_for(clock.sleep_until(clock.now_s() + 1.0), 2.0)
    assert loop.time() - r0 >= 0.3 and clock.late_advances == 1 and clock.undelivered == 0
    clock.delivered("daemon", "mudcrack/l1/sensors/line")  # arriving late (or retained): ignored
    assert clock.undelivered == 0
    await clock.aclose()


@pytest.mark.asyncio
async def test_cancel_and_wait_ends_a_loop_that_swallowed_a_cancellation():
    """A `while True` task whose first cancellation is lost (as Python 3.11's asyncio.wait_for,
    inside aiomqtt's publish, can lose it) still ends."""
    from controller._mqtt import cancel_and_wait

    lost = []

    async def worker() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not lost:  # swallow the first one
                    lost.append(True)
                    continue
                raise

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], retry_s=0.05), 5.0)
    assert task.cancelled() and lost == [True]


@pytest.mark.asyncio
async def test_scaled_clock_runs_speedup_times_real_time():
    clock = ScaledClock(200.0)
    t0 = clock.now_s()
    assert abs(t0 - time.time()) < 1.0  # anchored at creation: simulated = wall time now
    loop = asyncio.get_running_loop()
    r0 = loop.time()
    await clock.sleep_until(t0 + 10.0)  # 10 simulated s = 50 ms
    assert clock.now_s() >= t0 + 10.0
    assert 0.045 <= loop.time() - r0 < 1.0
    # another process with the same speedup and anchor computes the same time
    twin = ScaledClock(200.0, anchor_s=clock.anchor_s)
    assert twin.now_s() == pytest.approx(clock.now_s(), abs=200.0 * 0.05)
    with pytest.raises(ValueError, match=r"speedup: expected a positive number, found 0"):
        ScaledClock(0)


@pytest.mark.asyncio
async def test_bad_arguments_fail_before_connecting(mosquitto, line_id):
    with pytest.raises(ValueError, match=r"step_s: expected a positive number of seconds, found 0"):
        await run_sim_line(broker_url=mosquitto.url, line_id=line_id, step_s=0)
    with pytest.raises(ValueError, match=r"frame_encoding: expected one of \['raw-u8', 'png'\] for the camera's "
                                         r"8-bit frames, found 'raw-u16-le'"):
        await run_sim_line(broker_url=mosquitto.url, line_id=line_id, frame_encoding="raw-u16-le")
    with pytest.raises(ValueError, match=r"line_id: .*expected a name matching"):
        await run_sim_line(broker_url=mosquitto.url, line_id="bad/id", duration_s=1, connect_wait_s=0)


# ------------------------------------------------------------------ publishing
@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", [None, "png"])
async def test_publishes_valid_sensor_messages_and_frames(mosquitto, line_id, encoding):
    clock = FakeClock(pause_s=0.002)
    async with client(mosquitto, line_id) as (_, inbox):
        summary = await run_sim_line(broker_url=mosquitto.url, line_id=line_id, clock=clock, duration_s=12,
                                     frame_interval_s=3, frame_shape_px=FRAME, frame_encoding=encoding)
        await wait_until(lambda: len(inbox.raw) >= summary.messages_published, what="all messages")
    assert summary.steps == 12 and summary.sim_time_s == pytest.approx(12.0)
    assert summary.messages_dropped == 0 and summary.messages_rejected == 0 and summary.connections == 1
    assert summary.published_by_kind == {"sensors/zone": 48, "sensors/line": 12, "camera/frame": 4,
                                         "camera/frame/meta": 4}
    # every payload decodes with the receiver's checks at the clock's time (not stale, not from the future)
    for topic, payload, _ in inbox.raw:
        decode(topic, payload, now_s=clock.now_s(), line_id=line_id)
    for zone in ZONES:
        msgs = inbox.zone(zone)
        assert [m.seq for m in msgs] == list(range(12))
        assert [m.timestamp_s for m in msgs] == [FAKE_EPOCH_S + k for k in range(1, 13)]
        assert all(m.source == "sim-line" and m.heater_power_kw > 0 for m in msgs)
    z3 = inbox.zone("Z3")[0]
    assert (z3.temperature_c, z3.temperature_setpoint_c, z3.airflow_setpoint_m3_h) == (120.0, 120.0, 2500.0)
    line = inbox.of(LineSensors)
    assert len(line) == 12 and all(m.web_speed_m_min == pytest.approx(3.0) for m in line)
    assert all(170 < m.wet_thickness_um < 190 and m.ambient_temperature_c == 22.0 for m in line)
    frames = inbox.of(Frame)
    metas = inbox.of(FrameMeta)
    assert [f.meta.frame_id for f in frames] == [0, 1, 2, 3]
    assert [f.meta.timestamp_s - FAKE_EPOCH_S for f in frames] == [3.0, 6.0, 9.0, 12.0]
    assert [m for m in metas] == [f.meta for f in frames]
    for f in frames:
        assert f.image.shape == FRAME and f.image.dtype == np.uint8
        assert f.meta.encoding == (encoding or "raw-u8")
        assert f.meta.position_m == 7.0 and f.meta.um_per_px == 5.0
        assert 40 < f.image.mean() < 200 and f.image.std() > 5  # a textured coating, not a blank frame
    # the web moves under the camera: successive frames differ
    assert not np.array_equal(frames[0].image, frames[1].image)


# ------------------------------------------------------------------ set-points
@pytest.mark.asyncio
async def test_setpoint_moves_the_zone_reading_after_the_actuator_lag(mosquitto, line_id, topics):
    clock = FakeClock(pause_s=0.003)
    async with client(mosquitto, line_id, "sensors/#") as (c, inbox):
        node, stop = start_node(mosquitto, line_id, clock, publish_frames=False)
        await wait_until(lambda: len(inbox.zone("Z1")) >= 3, what="first Z1 readings")
        cmd = ZoneCommand(timestamp_s=clock.now_s(), source="controller", seq=0, zone="Z1", temperature_c=70.0,
                          airflow_m3_h=1500.0)
        await publish(c, topics.zone_setpoint("Z1"), encode(cmd), retain=True)

        def after() -> list[ZoneSensors]:
            return [m for m in inbox.zone("Z1") if m.temperature_setpoint_c == 70.0]

        await wait_until(lambda: len(after()) >= 90, what="90 s of Z1 readings after the set-point")
        stop.set()
        summary = await node
    before = [m for m in inbox.zone("Z1") if m.temperature_setpoint_c == 50.0]
    assert all(m.temperature_c == pytest.approx(50.0) for m in before)
    z1 = after()
    assert all(m.airflow_setpoint_m3_h == 1500.0 for m in z1)
    temp = np.array([m.temperature_c for m in z1])
    air = np.array([m.airflow_m3_h for m in z1])
    assert np.all(np.diff(temp) > 0) and np.all(np.diff(air[:10]) > 0)  # rises, never overshoots
    assert temp[0] < 51.0  # the heater lag: no jump (tau 60 s)
    assert temp[59] == pytest.approx(50.0 + 20.0 * (1 - np.exp(-1.0)), abs=1.5)  # one time constant later
    assert air[0] < 1300.0 and air[20] == pytest.approx(1500.0, abs=20.0)  # fan: tau 5 s, 200 m3/h/s
    assert max(temp) < 70.0
    assert summary.setpoints_accepted == 1 and summary.setpoints_applied == 1 and summary.messages_rejected == 0
    # the other zones keep their recipe
    assert all((m.temperature_setpoint_c, m.airflow_setpoint_m3_h) == (120.0, 2000.0) for m in inbox.zone("Z4"))


@pytest.mark.asyncio
async def test_line_speed_setpoint(mosquitto, line_id, topics):
    clock = FakeClock(pause_s=0.003)
    async with client(mosquitto, line_id, "sensors/line") as (c, inbox):
        node, stop = start_node(mosquitto, line_id, clock, publish_frames=False)
        await wait_until(lambda: len(inbox.raw) >= 2, what="line readings")
        cmd = LineCommand(timestamp_s=clock.now_s(), source="controller", seq=0, speed_m_min=4.0)
        await publish(c, topics.line_setpoint, encode(cmd))
        await wait_until(lambda: any(m.web_speed_m_min > 3.99 for m in inbox.of(LineSensors)), what="4 m/min")
        stop.set()
        summary = await node
    speeds = [m.web_speed_m_min for m in inbox.of(LineSensors)]
    assert speeds[0] == pytest.approx(3.0) and np.all(np.diff(speeds) >= -1e-9)
    assert summary.setpoints_applied == 1


@pytest.mark.asyncio
async def test_malformed_setpoints_are_rejected_and_the_node_keeps_running(mosquitto, line_id, topics):
    clock = FakeClock(pause_s=0.003)
    t = topics

    def zone_cmd(**kw) -> dict:
        base = {"schema_version": 1, "timestamp_s": clock.now_s(), "source": "controller", "seq": 1, "zone": "Z1",
                "temperature_c": 60.0, "airflow_m3_h": 1200.0}
        return {**base, **kw}

    def js(obj) -> bytes:
        return json.dumps(obj).encode()

    async with client(mosquitto, line_id, "sensors/zone/+") as (c, inbox):
        node, stop = start_node(mosquitto, line_id, clock, publish_frames=False)
        await wait_until(lambda: len(inbox.zone("Z2")) >= 2, what="first readings")
        bad = [
            (t.zone_setpoint("Z1"), b"{not json", "malformed_json"),
            (t.zone_setpoint("Z1"), b"", "malformed_json"),  # how MQTT clears a retained message
            (t.zone_setpoint("Z1"), b'{"temperature_c": NaN}', "malformed_json"),
            (t.zone_setpoint("Z1"), js([1, 2]), "schema"),
            (t.zone_setpoint("Z1"), js(zone_cmd(schema_version=2)), "schema"),
            (t.zone_setpoint("Z1"), js(zone_cmd(temprature_c=60.0)), "unknown_key"),
            (t.zone_setpoint("Z1"), js({k: v for k, v in zone_cmd().items() if k != "airflow_m3_h"}), "missing_key"),
            (t.zone_setpoint("Z1"), js(zone_cmd(temperature_c="hot")), "type"),
            (t.zone_setpoint("Z1"), js(zone_cmd(temperature_c=True)), "type"),
            (t.zone_setpoint("Z1"), js(zone_cmd(temperature_c=1e6)), "range"),  # outside the message limits
            (t.zone_setpoint("Z1"), js(zone_cmd(temperature_c=200.0)), "range"),  # outside the zone's 25-130 C
            (t.zone_setpoint("Z1"), js(zone_cmd(airflow_m3_h=5000.0)), "range"),  # outside the zone's 200-3000
            (t.zone_setpoint("Z1"), js(zone_cmd(zone="Z2")), "topic"),  # payload and topic disagree
            (t.zone_setpoint("Z9"), js(zone_cmd(zone="Z9")), "topic"),  # no such zone on this line
            (t.zone_setpoint("Z1"), js(zone_cmd(timestamp_s=clock.now_s() + 3600)), "future"),
            (t.zone_setpoint("Z1"), b"x" * 70_000, "oversized"),
            (t.line_setpoint, js({"schema_version": 1, "timestamp_s": clock.now_s(), "source": "controller",
                                  "seq": 1, "speed_m_min": 50.0}), "range"),  # outside the line's 0.5-10 m/min
        ]
        for topic, payload, _ in bad:
            await publish(c, topic, payload)
        good = ZoneCommand(timestamp_s=clock.now_s(), source="controller", seq=2, zone="Z2", temperature_c=75.0,
                           airflow_m3_h=1500.0)
        await publish(c, t.zone_setpoint("Z2"), encode(good))
        await wait_until(lambda: any(m.temperature_setpoint_c == 75.0 for m in inbox.zone("Z2")), what="valid set-point")
        n = len(inbox.zone("Z2"))
        await wait_until(lambda: len(inbox.zone("Z2")) >= n + 5, what="readings after the bad set-points")
        stop.set()
        summary = await node
    expected: dict[str, int] = {}
    for *_, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert summary.rejected_by_reason == expected
    assert summary.messages_received == len(bad) + 1
    assert summary.messages_rejected == len(bad)
    assert summary.setpoints_accepted == 1 and summary.setpoints_applied == 1
    assert all(m.temperature_setpoint_c == 50.0 for m in inbox.zone("Z1"))  # nothing bad got through


# ------------------------------------------------------------------ broker loss
@pytest.mark.asyncio
async def test_reconnects_after_a_broker_restart_and_subscribes_again(mosquitto, line_id, topics):
    clock = FakeClock(pause_s=0.005)
    node, stop = start_node(mosquitto, line_id, clock, publish_frames=False, reconnect_initial_s=0.05,
                            reconnect_max_s=0.2)
    async with client(mosquitto, line_id, "sensors/line") as (_, inbox):
        await wait_until(lambda: len(inbox.raw) >= 5, what="readings before the restart")
        mosquitto.stop()  # the connection drops under the node
        # (let the test client see it too: aiomqtt leaves a lost connection's error unretrieved otherwise)
        await wait_until(lambda: inbox.lost, what="the test client to notice the broker is gone")
    await asyncio.sleep(0.3)  # the line keeps running; its readings are dropped meanwhile
    mosquitto.start()  # same port, empty broker (no persistence: retained messages are gone)
    async with client(mosquitto, line_id, "sensors/#") as (c, inbox2):
        await wait_until(lambda: len(inbox2.of(LineSensors)) >= 5, what="readings after the restart")
        cmd = ZoneCommand(timestamp_s=clock.now_s(), source="controller", seq=0, zone="Z4", temperature_c=100.0,
                          airflow_m3_h=2000.0)
        await publish(c, topics.zone_setpoint("Z4"), encode(cmd), retain=True)
        await wait_until(lambda: any(m.temperature_setpoint_c == 100.0 for m in inbox2.zone("Z4")),
                         what="a set-point received over the new subscription")
        stop.set()
        summary = await node
    assert summary.connections == 2
    assert summary.messages_dropped > 0
    before = [m.timestamp_s for m in inbox.of(LineSensors)]
    after = [m.timestamp_s for m in inbox2.of(LineSensors)]
    assert after[0] > before[-1]  # simulated time went on while the broker was down
    seqs = [m.seq for m in inbox2.of(LineSensors)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the gap in seq shows the lost readings
    assert seqs[0] > before[-1] - before[0]


@pytest.mark.asyncio
async def test_starts_without_a_broker_and_connects_when_it_appears(mosquitto, line_id):
    mosquitto.stop()
    clock = FakeClock(pause_s=0.005)
    steps: list[int] = []
    node, stop = start_node(mosquitto, line_id, clock, publish_frames=False, connect_wait_s=0,
                            reconnect_initial_s=0.05, reconnect_max_s=0.1, progress=steps.append)
    await wait_until(lambda: len(steps) >= 10, what="the line running without a broker")
    mosquitto.start()
    async with client(mosquitto, line_id, "sensors/line") as (_, inbox):
        await wait_until(lambda: len(inbox.raw) >= 3, what="readings once the broker is up")
        stop.set()
        summary = await node
    assert summary.connections == 1 and summary.messages_dropped >= 5 * 10
    assert summary.steps == len(steps)


# ------------------------------------------------------------------ scenario over MQTT
@pytest.mark.asyncio
async def test_scenario_disturbances_show_in_what_is_published(mosquitto, line_id):
    scenario = parse_scenario({"name": "mqtt-test", "events": [
        {"kind": "sensor_dropout", "at_s": 3, "duration_s": 3, "sensor": "Z2"},
        {"kind": "sensor_dropout", "at_s": 10, "duration_s": 2, "sensor": "line"},
        {"kind": "camera_flicker", "at_s": 4, "duration_s": 4, "gain": 1.6},
        {"kind": "coating_thickness", "at_s": 2, "wet_thickness_um": 230},
        {"kind": "web_speed", "at_s": 2, "speed_m_min": 2.0},
        {"kind": "heater_fault", "at_s": 2, "zone": "Z3", "max_temperature_c": 100},
    ]})
    clock = FakeClock(pause_s=0.002)
    async with client(mosquitto, line_id) as (_, inbox):
        summary = await run_sim_line(broker_url=mosquitto.url, line_id=line_id, clock=clock, duration_s=14,
                                     frame_interval_s=1, frame_shape_px=FRAME, scenario=scenario)
        await wait_until(lambda: len(inbox.raw) >= summary.messages_published, what="all messages")

    def rel(msgs) -> list[float]:
        return [m.timestamp_s - FAKE_EPOCH_S for m in msgs]

    assert rel(inbox.zone("Z2")) == [1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # silent for t in [3, 6)
    assert rel(inbox.zone("Z1")) == list(range(1, 15))
    line = inbox.of(LineSensors)
    assert rel(line) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14]
    assert line[0].wet_thickness_um < 190 and line[-1].wet_thickness_um > 220  # thicker coating
    assert line[-1].web_speed_m_min < line[0].web_speed_m_min - 0.5  # web slowed down
    z3 = inbox.zone("Z3")
    assert z3[-1].temperature_c < z3[0].temperature_c - 2 and z3[-1].temperature_setpoint_c == 120.0  # heater fault
    frames = inbox.of(Frame)
    assert rel([f.meta for f in frames]) == list(range(1, 15))
    mean = {round(f.meta.timestamp_s - FAKE_EPOCH_S): f.image.mean() for f in frames}
    flicker = [mean[k] for k in (4, 5, 6, 7)]
    steady = [mean[k] for k in (1, 2, 3, 8, 9, 10)]
    assert min(flicker) > 1.3 * max(steady)  # brighter frames while the lamp flickers
    assert [entry for _, entry in summary.scenario_log][:3] == ["start coating_thickness", "start web_speed",
                                                                "start heater_fault Z3"]


# ------------------------------------------------------------------ real (scaled) time and the CLI entry
@pytest.mark.asyncio
async def test_runs_on_a_scaled_clock(mosquitto, line_id):
    clock = ScaledClock(25.0)  # 25 simulated s per real s
    async with client(mosquitto, line_id, "sensors/line") as (_, inbox):
        start = clock.now_s()
        summary = await run_sim_line(broker_url=mosquitto.url, line_id=line_id, clock=clock, duration_s=10,
                                     publish_frames=False)
        end = clock.now_s()
        await wait_until(lambda: len(inbox.raw) >= 10, what="10 line readings")
    assert summary.steps == 10 and summary.max_lag_s < 5.0
    assert end - start >= 10.0  # paced by the clock, not as fast as possible
    stamps = [m.timestamp_s for m in inbox.of(LineSensors)]
    assert np.allclose(np.diff(stamps), 1.0)
    assert start < stamps[0] < stamps[-1] <= end


@pytest.mark.asyncio
async def test_real_time_camera_skips_frames_instead_of_slowing_the_line(mosquitto, line_id):
    # full 512 x 512 frames every simulated second at 50x: 20 ms of real time per frame, far less than a render
    async with client(mosquitto, line_id, "camera/frame") as (_, inbox):
        summary = await run_sim_line(broker_url=mosquitto.url, line_id=line_id, clock=ScaledClock(50.0),
                                     duration_s=20, frame_interval_s=1, frame_shape_px=(512, 512))
        await wait_until(lambda: len(inbox.raw) >= summary.frames_published, what="the frames")
    assert summary.steps == 20
    assert summary.frames_published >= 1 and summary.frames_skipped >= 1
    assert summary.frames_published + summary.frames_skipped == 20
    frames = inbox.of(Frame)
    assert [f.meta.frame_id for f in frames] == list(range(len(frames)))  # skipped frames take no id
    assert all(f.image.shape == (512, 512) for f in frames)


def test_main_sim_line_runs_and_prints_a_summary(mosquitto, line_id, capsys):
    from sim_line._config import default_config_dir
    from controller._sim_node import main_sim_line

    code = main_sim_line(broker_url=mosquitto.url, line_id=line_id, speedup=100.0, duration_s=5.0,
                         scenario=default_config_dir() / "scenarios" / "default.yaml", publish_frames=False)
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"sim-line {line_id}: 5 steps, 5 s of line time; published 25 (0 frames), dropped 0")


def test_main_sim_line_reports_a_bad_scenario_before_connecting(tmp_path):
    import sim_line
    from controller._sim_node import main_sim_line

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nevents:\n  - {kind: bubbles, at_s: 1, fraction: 2, radius_um: 5}\n", encoding="utf-8")
    with pytest.raises(sim_line.ConfigError, match=r"bad\.yaml: events\[0\]\.fraction: expected a number <= 1\.0"):
        main_sim_line(broker_url="mqtt://127.0.0.1:1", scenario=bad, duration_s=1.0)
