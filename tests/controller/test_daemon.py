"""The controller daemon against a real Mosquitto: sensors in, set-points / decisions / status / metrics out,
broker restart without a lost set-point, graceful stop, and the closed loop with the virtual line.

Most tests drive the daemon with a manual fake clock (`FakeClock(auto=False)`): it steps only
when the test advances the clock, so what is on the broker can be compared with the daemon's
latest set-points exactly. The closed-loop test runs the virtual line and the daemon on one
accelerated clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import aiomqtt
import numpy as np
import pytest

from controller._config import load_controller_config
from controller._daemon import ControllerDaemon
from controller._messages import (
    ControllerStatus,
    CrackEstimate,
    Decision,
    LineSensors,
    Metrics,
    Topics,
    ZoneCommand,
    ZoneSensors,
    decode,
    encode,
)
from controller._ground_truth import surface_truth
from controller._mqtt import clock_hold
from controller._sim_node import FAKE_EPOCH_S, FakeClock
from daemon_helpers import running, step, taken
from mqtt_helpers import client, wait_until

CFG = load_controller_config()
ZONES = CFG.zone_names
NOMINAL = {z.name: (z.nominal_temperature_c, z.nominal_airflow_m3_h) for z in CFG.zones}
SAFE = {n: (s.temperature_c, s.airflow_m3_h, s.fresh_air_m3_h) for n, s in CFG.safe_state.zones.items()}


# ------------------------------------------------------------------ helpers
def daemon_config(broker, line_id: str, **safe_state):
    """The shipped configuration on this test's broker and topic tree."""
    mqtt = dataclasses.replace(CFG.mqtt, host=broker.host, port=broker.port, client_id=f"ctl-{line_id}")
    return dataclasses.replace(CFG, line_id=line_id, mqtt=mqtt,
                               safe_state=dataclasses.replace(CFG.safe_state, **safe_state))


def sensor_messages(topics: Topics, t: float, seq: int, *, skip=(), temps=None, score=1.0):
    """One round of zone and line sensors and a surface estimate, stamped ``t``."""
    temps = temps or {}
    out = []
    for z in ZONES:
        if z in skip:
            continue
        temp, air = NOMINAL[z]
        out.append((topics.zone_sensors(z), ZoneSensors(timestamp_s=t, source="test", seq=seq, zone=z,
                                                         temperature_c=temps.get(z, temp) - 1.0, airflow_m3_h=air,
                                                         solvent_concentration_g_m3=5.0, fresh_air_m3_h=400.0)))
    out.append((topics.line_sensors, LineSensors(timestamp_s=t, source="test", seq=seq, web_speed_m_min=3.0,
                                                  wet_thickness_um=180.0, exit_residual_solvent_g_m2=0.1)))
    out.append((topics.surface_estimate, CrackEstimate(timestamp_s=t, source="test", seq=seq, kind="surface",
                                                        score=score, risk=0.1, alarm=False, onset=False)))
    return out


async def publish_round(c: aiomqtt.Client, daemon: ControllerDaemon, topics: Topics, t: float, seq: int,
                        **kw) -> None:
    """Publish one round of inputs and wait until the daemon has taken all of them."""
    msgs = sensor_messages(topics, t, seq, **kw)
    before = taken(daemon)
    for topic, msg in msgs:
        await c.publish(topic, encode(msg), qos=1)
    await wait_until(lambda: taken(daemon) >= before + len(msgs), what="inputs taken")


# ------------------------------------------------------------------ tests
@pytest.mark.asyncio
async def test_sensors_in_setpoints_decisions_status_and_metrics_out(mosquitto, line_id, topics):
    clock = FakeClock(FAKE_EPOCH_S, auto=False)
    async with client(mosquitto, line_id) as (c, inbox), \
            running(daemon_config(mosquitto, line_id), clock=clock, metrics_interval_s=5.0, metrics_port=0) as run:
        d = run.daemon
        await wait_until(lambda: inbox.of(ControllerStatus, state="online"), what="status online")
        for k in range(12):
            await publish_round(c, d, topics, clock.now_s(), k)
            await step(d, clock)
        await wait_until(lambda: len(inbox.of(Metrics)) >= 2, what="metrics messages")
        # Prometheus text endpoint
        port = d.metrics_server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
        text = (await reader.read()).decode()
        writer.close()
        await writer.wait_closed()
        # what a newcomer sees: the retained status and set-points
        async with client(mosquitto, line_id, "#") as (_, late):
            await wait_until(lambda: len(late.retained()) >= len(ZONES) + 1, what="retained messages")
        latest = dict(d.setpoint_payloads)
        summary = await run.stop()

    assert summary.steps == 12 and summary.messages_rejected == 0
    accepted = summary.accepted_by_kind
    assert accepted.pop("setpoints_zone") == summary.counters["setpoints.echo"] > 0  # our own, read back
    assert accepted == {"sensors_zone": 48, "sensors_line": 12, "estimates_surface": 12}
    assert "setpoints.foreign" not in summary.counters
    # every step published every zone's set-point (QoS 1, retained), stamped with the step time
    for z in ZONES:
        cmds = [m for m in inbox.of(ZoneCommand, zone=z) if m.timestamp_s < FAKE_EPOCH_S + 12.5]
        assert [m.timestamp_s for m in cmds][:12] == [FAKE_EPOCH_S + k for k in range(1, 13)]
        lo, hi = next(zc.temperature_limits_c for zc in CFG.zones if zc.name == z)
        assert all(lo <= m.temperature_c <= hi for m in cmds)
    assert {t: p for t, p in late.retained().items() if "/setpoints/" in t} == latest
    assert decode(topics.status, late.retained()[topics.status], now_s=None).state == "online"
    # decisions with their reasons (the drying model finds the nominal recipe cracks: it lowers the rate)
    decisions = inbox.of(Decision)
    assert decisions and all(": " in m.reason and m.action for m in decisions)
    assert any(m.action == "lower_drying_rate" and m.reason.startswith("predicted_") for m in decisions)
    metrics = inbox.of(Metrics)[-1]
    assert metrics.counters["steps"] >= 5 and metrics.counters["accepted.sensors_zone"] >= 20
    assert metrics.gauges["last_step_latency_s"] > 0 and metrics.gauges["connected"] == 1.0
    assert "mudcrack_controller_steps_total" in text and 'kind="sensors_zone"' in text
    assert "mudcrack_controller_last_step_latency_s" in text
    # graceful stop: safe-state set-points for every zone, then offline (after them)
    assert summary.safe_state_published and summary.setpoints == SAFE
    order = [(t, decode(t, p, now_s=None)) for t, p, _ in inbox.raw]
    offline = max(i for i, (_, m) in enumerate(order) if isinstance(m, ControllerStatus) and m.state == "offline")
    for z in ZONES:
        last = max(i for i, (_, m) in enumerate(order) if isinstance(m, ZoneCommand) and m.zone == z)
        assert last < offline
        assert (order[last][1].temperature_c, order[last][1].airflow_m3_h, order[last][1].fresh_air_m3_h) == SAFE[z]
    assert order[offline][1].detail == "shutdown"
    assert any(isinstance(m, Decision) and m.action == "safe_state" and m.reason.startswith("shutdown")
               for _, m in order)


@pytest.mark.asyncio
async def test_broker_restart_loses_no_setpoint(mosquitto, line_id, topics):
    clock = FakeClock(FAKE_EPOCH_S, auto=False)
    async with running(daemon_config(mosquitto, line_id), clock=clock) as run:
        d = run.daemon
        async with client(mosquitto, line_id, None) as (c, _):
            for k in range(4):
                await publish_round(c, d, topics, clock.now_s(), k)
                await step(d, clock)
        sent_before = dict(d.acked_setpoint_payloads)
        await asyncio.to_thread(mosquitto.stop)
        await wait_until(lambda: not d.connected, what="the daemon to notice the broker is gone")
        for _ in range(2):  # the law goes on with the last inputs (still fresh): set-points queued
            before = d.metrics.counters["steps"]
            clock.advance(1.0)
            await wait_until(lambda b=before: d.metrics.counters["steps"] > b, what="a step while disconnected")
        queued = dict(d.setpoint_payloads)
        assert queued != sent_before and d.acked_setpoint_payloads == sent_before
        assert d.metrics.counters["setpoints.queued"] > 0
        await asyncio.to_thread(mosquitto.start)  # same port, empty broker: no retained messages left
        await wait_until(lambda: d.connected and not d._dirty, what="reconnection and republishing")
        async with client(mosquitto, line_id, "#") as (c, late):
            # every zone's set-point and the web speed's (the law owns the speed: web_speed.control)
            assert len(d.setpoint_payloads) == len(ZONES) + 1 and topics.line_setpoint in d.setpoint_payloads
            await wait_until(lambda: len([t for t in late.retained() if "/setpoints/" in t]) == len(ZONES) + 1,
                             what="retained set-points after the restart")
            retained = {t: p for t, p in late.retained().items() if "/setpoints/" in t}
            assert retained == queued == d.setpoint_payloads  # the latest, computed while the broker was down
            # zone set-points are re-sent every step; the web speed's only when it changes (here: never)
            assert {decode(t, p, now_s=None).timestamp_s for t, p in retained.items()
                    if t != topics.line_setpoint} == {clock.now_s()}
            assert decode(topics.line_setpoint, retained[topics.line_setpoint], now_s=None).speed_m_min == 3.0
            await wait_until(lambda: topics.status in late.retained(), what="retained status")
            assert decode(topics.status, late.retained()[topics.status], now_s=None).state == "online"
            # and it goes on controlling after the reconnection
            await publish_round(c, d, topics, clock.now_s(), 10)
            await step(d, clock)
            await wait_until(lambda: any(m.timestamp_s == clock.now_s() for m in late.of(ZoneCommand)),
                             what="set-points after the reconnection")
        summary = await run.stop()
    assert summary.connections == 2 and summary.reconnects == 1
    assert summary.safe_state_published


# ------------------------------------------------------------------ closed loop (HIL)
async def camera_oracle(line, broker, topics: Topics, clock, stop: asyncio.Event) -> int:
    """Stand-in for the vision node: every simulated second, a surface estimate from the line's
    ground truth under the camera (as the law's own closed-loop test does; the vision detector
    is tested elsewhere). Returns the number of estimates published."""
    n = 0
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"oracle-{uuid.uuid4().hex[:8]}") as c:
        while not stop.is_set():
            t = clock.now_s()
            snap = line.camera_snapshot()
            score, _, _ = surface_truth(snap)
            msg = CrackEstimate(timestamp_s=t, source="oracle", seq=n, kind="surface", score=score,
                                risk=min(score / 10.0, 1.0), alarm=score >= 6.0, onset=bool(snap.cracked),
                                onset_timestamp_s=t if snap.cracked else None,
                                evidence={"surface_cif": float(snap.cif_2d_top)})
            with clock_hold(clock):
                await c.publish(topics.surface_estimate, encode(msg), qos=1)
            n += 1
            await clock.sleep_until(t + 1.0)
    return n


@pytest.mark.slow
@pytest.mark.asyncio
async def test_closed_loop_over_mqtt_stops_the_cracks_with_the_coating_dry(mosquitto, line_id, topics):
    """The virtual line, a camera stand-in and the daemon over Mosquitto on one lockstep clock,
    against the fixed recipe (open loop) of the same line."""
    import sim_line
    from controller._sim_node import LockstepClock, run_sim_line

    minutes, tail_s = 12, 180
    lines = []
    clock = LockstepClock()
    clock.acquire()  # time stands still until every node is connected
    node = asyncio.create_task(run_sim_line(broker_url=mosquitto.url, line_id=line_id, clock=clock,
                                            duration_s=minutes * 60.0, publish_frames=False, seed=0,
                                            on_line=lines.append))
    await wait_until(lambda: lines, what="the line")
    stop_camera = asyncio.Event()
    camera = asyncio.create_task(camera_oracle(lines[0], mosquitto, topics, clock, stop_camera))
    async with running(daemon_config(mosquitto, line_id), clock=clock) as run:
        clock.release()
        plant = await node
        late_during_run = clock.late_advances  # (the line's last readings may still be in flight as it leaves)
        stop_camera.set()
        estimates = await camera
        summary = await run.stop()
    line = lines[0]
    exited = line.exited()
    end = minutes * 60 - tail_s
    closed_tail = exited[exited["t_s"] >= end]
    open_line = sim_line.Line(seed=0)
    open_line.step(minutes * 60.0)
    open_exited = open_line.exited()
    open_cracked = open_exited.loc[open_exited["t_s"] >= end, "cracked"].mean()
    limit = line.config.exit_residual_solvent_limit_g_m2
    print(f"open loop cracked {open_cracked:.0%}, closed loop over MQTT {closed_tail['cracked'].mean():.0%}; "
          f"max exit residual {exited['residual_solvent_g_m2'].max():.3f} g/m2 (limit {limit}); "
          f"{estimates} estimates; {plant.text()}; {summary.text()}")
    assert open_cracked == 1.0
    assert closed_tail["cracked"].mean() <= 0.05
    assert np.nanmax(exited["residual_solvent_g_m2"]) <= limit
    assert summary.safe_steps == 0 and summary.messages_rejected == 0
    assert plant.setpoints_applied > 0 and plant.messages_rejected == 0
    assert plant.max_lag_s == 0.0 and summary.steps_skipped == 0  # lockstep: nobody lags
    assert late_during_run == 0  # while the line ran, every counted message arrived before time moved on


@pytest.mark.slow
@pytest.mark.asyncio
async def test_stuck_exhaust_trips_the_solvent_interlock_over_mqtt(mosquitto, line_id, topics):
    """The virtual line with Z3's exhaust damper stuck at 60 m3/h for a minute, and the daemon, over
    Mosquitto on one lockstep clock: the zone's vapour passes 50 % of the LEL, the daemon trips to the
    safe state (purge: exhausts fully open, heaters down), and resumes once every zone is below 20 %."""
    from controller._law_supervisor import lel_g_m3
    from controller._sim_node import LockstepClock, run_sim_line
    from sim_line._scenario import parse_scenario

    fault_at_s, fault_s = 60.0, 60.0
    scenario = parse_scenario({"name": "stuck-exhaust", "events": [
        {"kind": "exhaust_fault", "at_s": fault_at_s, "duration_s": fault_s, "zone": "Z3", "max_fresh_air_m3_h": 60.0}]},
        source="test")
    lines = []
    clock = LockstepClock()
    clock.acquire()
    cfg = daemon_config(mosquitto, line_id, surface_estimate_stale_after_s=None)  # no camera in this test
    async with client(mosquitto, line_id, "#") as (_, inbox):
        node = asyncio.create_task(run_sim_line(broker_url=mosquitto.url, line_id=line_id, clock=clock,
                                                duration_s=300.0, publish_frames=False, seed=0, scenario=scenario,
                                                on_line=lines.append))
        await wait_until(lambda: lines, what="the line")
        async with running(cfg, clock=clock) as run:
            clock.release()
            plant = await node
            summary = await run.stop()
        await asyncio.sleep(0.2)
    t0 = min(m.timestamp_s for m in inbox.of(ZoneSensors))  # first reading: line time 0
    z3 = sorted(inbox.of(ZoneSensors, zone="Z3"), key=lambda m: m.timestamp_s)
    lel = {m.timestamp_s - t0: m.solvent_concentration_g_m3 / float(lel_g_m3(CFG, m.temperature_c)) for m in z3}
    over = [t for t, f in sorted(lel.items()) if f >= CFG.solvent_load.trip_lel_pct / 100.0]
    assert over and fault_at_s <= over[0] < fault_at_s + fault_s, "the stuck exhaust must push Z3 past the trip level"
    decisions = sorted(inbox.of(Decision), key=lambda m: m.timestamp_s)
    trips = [d for d in decisions if d.action == "safe_state" and d.reason.startswith("solvent_load_trip")]
    assert len(trips) == 1 and "Z3" in trips[0].reason
    trip_t = trips[0].timestamp_s - t0
    assert over[0] <= trip_t <= over[0] + 2.0  # at the next control step after the reading
    # the purge: every zone's exhaust fully open and its heater down, published (QoS 1, retained) at the trip
    safe = CFG.safe_state.zones
    at_trip = {m.zone: m for m in inbox.of(ZoneCommand) if abs(m.timestamp_s - t0 - trip_t) < 1e-6}
    assert {z: (m.temperature_c, m.fresh_air_m3_h) for z, m in at_trip.items()} == \
        {z: (safe[z].temperature_c, safe[z].fresh_air_m3_h) for z in ZONES}
    # back below the target after the fault: the law resumes, the exhausts go back on the loop
    resumes = [d for d in decisions if d.action == "resume" and d.timestamp_s - t0 > trip_t]
    assert resumes and resumes[0].timestamp_s - t0 >= fault_at_s + fault_s and "below the target" in resumes[0].reason
    resume_t = resumes[0].timestamp_s - t0
    assert all(f < CFG.solvent_load.target_lel_pct / 100.0 + 1e-9 for t, f in lel.items() if resume_t - 1.5 < t < resume_t)
    after = [m for m in inbox.of(ZoneCommand, zone="Z3") if resume_t + 30.0 < m.timestamp_s - t0 < 290.0]
    assert after and all(m.fresh_air_m3_h < safe["Z3"].fresh_air_m3_h for m in after[-5:])
    assert summary.messages_rejected == 0 and plant.messages_rejected == 0 and plant.setpoints_applied > 0
    print(f"Z3 past {CFG.solvent_load.trip_lel_pct:g} % LEL at {over[0]:.0f} s (peak {100 * max(lel.values()):.0f} %), "
          f"trip at {trip_t:.0f} s, resume at {resume_t:.0f} s; {summary.text()}")
