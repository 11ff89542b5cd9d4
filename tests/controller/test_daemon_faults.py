"""The controller daemon under faults, against a real Mosquitto: hostile payloads (hypothesis), a stale
sensor, authentication + ACL, TLS, SIGTERM and a killed process (last will).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller._config import TlsConfig, load_controller_config
from controller._daemon import ControllerDaemon, JsonLinesFormatter, KeyValueFormatter
from controller._law import Mode
from controller._messages import (
    ControllerStatus,
    CrackEstimate,
    Decision,
    LineSensors,
    MessageError,
    Topics,
    ZoneCommand,
    ZoneSensors,
    decode,
    encode,
)
from controller._sim_node import FAKE_EPOCH_S, FakeClock
from daemon_helpers import running, step, taken
from mqtt_helpers import client, wait_until

REPO = Path(__file__).resolve().parents[2]
ACL = REPO / "configs" / "mosquitto" / "acl"
CFG = load_controller_config()
ZONES = CFG.zone_names
NOMINAL = {z.name: (z.nominal_temperature_c, z.nominal_airflow_m3_h) for z in CFG.zones}
SAFE = {n: (s.temperature_c, s.airflow_m3_h, s.fresh_air_m3_h) for n, s in CFG.safe_state.zones.items()}


# ------------------------------------------------------------------ helpers (as in test_daemon.py)
def daemon_config(broker, line_id: str, **mqtt):
    mq = dataclasses.replace(CFG.mqtt, host=broker.host, port=broker.port, client_id=f"ctl-{line_id}", **mqtt)
    return dataclasses.replace(CFG, line_id=line_id, mqtt=mq)


def sensor_messages(topics: Topics, t: float, seq: int, *, skip=()):
    out = []
    for z in ZONES:
        if z not in skip:
            temp, air = NOMINAL[z]
            out.append((topics.zone_sensors(z), ZoneSensors(timestamp_s=t, source="test", seq=seq, zone=z,
                                                             temperature_c=temp, airflow_m3_h=air,
                                                             solvent_concentration_g_m3=5.0, fresh_air_m3_h=400.0)))
    out.append((topics.line_sensors, LineSensors(timestamp_s=t, source="test", seq=seq, web_speed_m_min=3.0,
                                                  wet_thickness_um=180.0)))
    out.append((topics.surface_estimate, CrackEstimate(timestamp_s=t, source="test", seq=seq, kind="surface",
                                                        score=1.0, risk=0.1, alarm=False, onset=False)))
    return out


async def publish_round(c: aiomqtt.Client, daemon: ControllerDaemon, topics: Topics, t: float, seq: int, *,
                        estimator: aiomqtt.Client | None = None, **kw) -> None:
    """Sensors (and the surface estimate, from ``estimator`` if given); waits until the daemon took them."""
    msgs = sensor_messages(topics, t, seq, **kw)
    before = taken(daemon)
    for topic, msg in msgs:
        await (estimator or c if isinstance(msg, CrackEstimate) else c).publish(topic, encode(msg), qos=1)
    await wait_until(lambda: taken(daemon) >= before + len(msgs), what="inputs taken")


# ------------------------------------------------------------------ hostile payloads
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=6)
KINDS = ("zone", "line", "surface", "lab")


def base_message(kind: str, topics: Topics, t: float) -> tuple[str, dict]:
    """A valid message of ``kind`` stamped ``t`` as a dict, and its topic."""
    if kind == "zone":
        topic, msg = topics.zone_sensors("Z2"), ZoneSensors(timestamp_s=t, source="fuzz", seq=1, zone="Z2",
                                                            temperature_c=70.0, airflow_m3_h=1500.0,
                                                            fresh_air_m3_h=450.0, solvent_concentration_g_m3=5.0,
                                                            heater_power_kw=3.0)
    elif kind == "line":
        topic, msg = topics.line_sensors, LineSensors(timestamp_s=t, source="fuzz", seq=1, web_speed_m_min=3.0,
                                                      wet_thickness_um=180.0, ambient_temperature_c=22.0)
    else:
        topic = topics.surface_estimate if kind == "surface" else topics.lab_estimate
        sites = ((10.0, 20.0),) if kind == "surface" else ((1.0, 2.0, 3.0),)
        msg = CrackEstimate(timestamp_s=t, source="fuzz", seq=1, kind=kind, score=2.0, risk=0.2, alarm=False,
                            onset=False, sites_um=sites, zone_risk={"Z3": 0.2}, web_risk=((6.5, 0.1), (7.0, 0.2)))
    return topic, json.loads(encode(msg))


@st.composite
def hostile(draw, topics: Topics, t: float) -> tuple[str, bytes]:
    """A payload on a sensor / estimate topic that is malformed, oversized, out of range, stale, ..."""
    topic, obj = base_message(draw(st.sampled_from(KINDS)), topics, t)
    how = draw(st.sampled_from(["bytes", "oversized", "not_object", "value", "drop", "extra", "range", "age", "nan",
                                "duplicate"]))
    if how == "bytes":
        return topic, draw(st.binary(max_size=80))
    if how == "oversized":
        obj["pad"] = "x" * draw(st.integers(64 * 1024, 80 * 1024))
        return topic, json.dumps(obj).encode()
    if how == "not_object":
        return topic, json.dumps(draw(JSON.filter(lambda v: not isinstance(v, dict)))).encode()
    key = draw(st.sampled_from(sorted(obj)))
    if how == "value":
        obj[key] = draw(JSON)
    elif how == "drop":
        del obj[key]
    elif how == "extra":
        obj[draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in obj))] = draw(JSON)
    elif how == "range":
        numeric = sorted(k for k, v in obj.items() if isinstance(v, float) and k != "timestamp_s") or ["seq"]
        obj[draw(st.sampled_from(numeric))] = draw(st.floats(2e6, 1e300) | st.floats(-1e300, -50.0))
    elif how == "age":
        obj["timestamp_s"] = t + draw(st.floats(-1e6, -30.5) | st.floats(5.5, 1e6))
    elif how == "nan":
        obj[key] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return topic, json.dumps(obj, allow_nan=True).encode()
    elif how == "duplicate":
        text = json.dumps(obj)
        return topic, (text[:-1] + f', "{key}": {json.dumps(obj[key])}' + "}").encode()
    return topic, json.dumps(obj).encode()


def expected_reason(topic: str, payload: bytes, now_s: float, line_id: str) -> str | None:
    try:
        decode(topic, payload, now_s=now_s, line_id=line_id)
    except MessageError as exc:
        return exc.reason.value
    return None


@pytest.mark.asyncio
async def test_hostile_payloads_are_rejected_by_reason_and_the_daemon_keeps_running(mosquitto, line_id, topics,
                                                                                   caplog):
    clock = FakeClock(FAKE_EPOCH_S, auto=False)  # frozen while fuzzing: the daemon's ages equal ours
    loop = asyncio.get_running_loop()
    sent: collections.Counter[str] = collections.Counter()
    async with running(daemon_config(mosquitto, line_id), clock=clock) as run, \
            client(mosquitto, line_id, "setpoints/#") as (c, inbox):
        d = run.daemon
        for k in range(3):
            await publish_round(c, d, topics, clock.now_s(), k)
            await step(d, clock)
        steps_before, t_fuzz = d.metrics.counters["steps"], clock.now_s()

        @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                         HealthCheck.data_too_large])
        @given(case=hostile(topics, t_fuzz))
        def fuzz(case: tuple[str, bytes]) -> None:
            topic, payload = case
            reason = expected_reason(topic, payload, t_fuzz, line_id)
            assume(reason is not None)
            asyncio.run_coroutine_threadsafe(c.publish(topic, payload, qos=1), loop).result(timeout=10.0)
            sent[reason] += 1

        with caplog.at_level(logging.WARNING, logger="controller._daemon"):
            await asyncio.to_thread(fuzz)
            await wait_until(lambda: d.metrics.counters["rejected.total"] >= sum(sent.values()),
                             what="every hostile payload handled")
        rejected = {k: v for k, v in d.metrics.by_prefix("rejected").items() if k != "total"}
        assert rejected == dict(sent)
        assert {"malformed_json", "oversized", "schema", "type", "range", "stale", "future"} <= set(sent)
        assert d.metrics.counters["steps"] == steps_before  # (the clock was frozen)
        # every rejection is logged with its reason, as key=value
        lines = [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "rejected"]
        assert len(lines) == sum(sent.values()) and all(" reason=" in m and " topic=" in m for m in lines)
        # ... and the daemon keeps controlling: fresh inputs -> fresh set-points
        for k in range(3, 6):
            await publish_round(c, d, topics, clock.now_s(), k)
            await step(d, clock)
        await wait_until(lambda: {m.zone for m in inbox.of(ZoneCommand, timestamp_s=clock.now_s())} == set(ZONES),
                         what="set-points after the fuzzing")
        summary = await run.stop()
    assert summary.steps == steps_before + 3 and summary.safe_steps == 0
    assert summary.messages_rejected == sum(sent.values())


# ------------------------------------------------------------------ stale sensor
@pytest.mark.asyncio
async def test_a_stale_zone_sensor_drives_the_safe_state_within_the_configured_time(mosquitto, line_id, topics):
    clock = FakeClock(FAKE_EPOCH_S, auto=False)
    stale_s, period = CFG.safe_state.stale_after_s, min(z.sample_time_s for z in CFG.zones)
    async with running(daemon_config(mosquitto, line_id), clock=clock) as run, \
            client(mosquitto, line_id, "#") as (c, inbox):
        d = run.daemon
        for k in range(3):
            t_last = clock.now_s()  # Z2's last reading
            await publish_round(c, d, topics, t_last, k)
            await step(d, clock)
        for k in range(3, 30):  # Z2's sensor stops publishing; everything else goes on
            await publish_round(c, d, topics, clock.now_s(), k, skip=("Z2",))
            await step(d, clock)
            if d.mode is Mode.SAFE:
                break
        t_safe = clock.now_s()
        await wait_until(lambda: inbox.of(ControllerStatus, state="safe"), what="status safe")
        await wait_until(lambda: inbox.of(Decision, action="safe_state"), what="safe-state decision")
        (decision,) = inbox.of(Decision, action="safe_state")
        assert stale_s < t_safe - t_last <= stale_s + period
        assert decision.timestamp_s == t_safe and decision.reason.startswith("input_stale")
        assert "Z2.temperature_c: stale" in decision.reason and "Z1." not in decision.reason
        for z in ZONES:  # every zone in the configured safe state at that step
            (cmd,) = inbox.of(ZoneCommand, zone=z, timestamp_s=t_safe)
            assert (cmd.temperature_c, cmd.airflow_m3_h, cmd.fresh_air_m3_h) == SAFE[z]
        assert run.daemon.metrics.gauges["safe"] == 1.0
        # the sensor comes back: the law resumes
        await publish_round(c, d, topics, clock.now_s(), 40)
        await step(d, clock)
        await wait_until(lambda: inbox.of(Decision, action="resume"), what="resume decision")
        await wait_until(lambda: inbox.of(ControllerStatus, state="online", detail="closed loop, 4 zones"),
                         what="status online again")
        await run.stop()


# ------------------------------------------------------------------ authentication and ACL
PASSWORDS = {"controller": "c-secret", "line": "l-secret", "vision-node": "n-secret", "viewer": "v-secret"}
# Started as root, Mosquitto switches to the 'mosquitto' user before it reads the password file,
# which then cannot open pytest's private tmp_path: stay root in that case.
AS_ROOT = "user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""


@pytest.fixture
def secured_broker(mosquitto_factory, tmp_path):
    """Mosquitto with the shipped ACL and a password file made by ``mosquitto_passwd -b``."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        pytest.skip("mosquitto_passwd not found (package 'mosquitto')")
    pw = tmp_path / "passwd"
    for i, (user, password) in enumerate(PASSWORDS.items()):
        subprocess.run([tool, *(["-c"] if i == 0 else []), "-b", str(pw), user, password], check=True,
                       capture_output=True, timeout=30)
    return mosquitto_factory(extra_config=f"{AS_ROOT}password_file {pw}\nacl_file {ACL}\n", allow_anonymous=False)


@pytest.mark.asyncio
async def test_with_auth_and_acl_only_the_controller_publishes_setpoints(secured_broker, line_id, topics):
    b = secured_broker
    clock = FakeClock(FAKE_EPOCH_S, auto=False)
    env = {"MUDCRACK_MQTT_USERNAME": "controller", "MUDCRACK_MQTT_PASSWORD": PASSWORDS["controller"]}
    cfg = load_controller_config(environ=env)  # credentials from the environment
    cfg = dataclasses.replace(cfg, line_id=line_id, mqtt=dataclasses.replace(cfg.mqtt, host=b.host, port=b.port))
    for user, password in ((None, None), ("viewer", "wrong")):  # no anonymous access, no wrong password
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(b.host, b.port, username=user, password=password, timeout=5):
                pass
    async with running(cfg, clock=clock) as run, \
            client(b, line_id, "#", username="viewer", password=PASSWORDS["viewer"]) as (viewer, seen), \
            client(b, line_id, None, username="line", password=PASSWORDS["line"]) as (line, _), \
            client(b, line_id, None, username="vision-node", password=PASSWORDS["vision-node"]) as (vision, _):
        d = run.daemon
        for k in range(2):
            await publish_round(line, d, topics, clock.now_s(), k, estimator=vision)
            await step(d, clock)
        await wait_until(lambda: len(seen.of(ZoneCommand, source="controller")) >= 2 * len(ZONES),
                         what="the controller's set-points at the viewer")
        forged = encode(ZoneCommand(timestamp_s=clock.now_s(), source="intruder", seq=0, zone="Z1",
                                    temperature_c=300.0, airflow_m3_h=0.0))
        for c in (viewer, line, vision):  # none may write set-points (Mosquitto drops a denied publish silently)
            await c.publish(topics.zone_setpoint("Z1"), forged, qos=1, retain=True)
        # the viewer may not write sensors either
        bad = ZoneSensors(timestamp_s=clock.now_s(), source="intruder", seq=0, zone="Z3", temperature_c=399.0,
                          airflow_m3_h=0.0)
        await viewer.publish(topics.zone_sensors("Z3"), encode(bad), qos=1)
        # the controller's next set-points arrive after the forged ones would have
        await publish_round(line, d, topics, clock.now_s(), 5, estimator=vision)
        await step(d, clock)
        await wait_until(lambda: {m.zone for m in seen.of(ZoneCommand, timestamp_s=clock.now_s())} == set(ZONES),
                         what="the controller's next set-points")
        assert not seen.of(ZoneCommand, source="intruder") and not seen.of(ZoneSensors, source="intruder")
        assert d.metrics.counters["setpoints.foreign"] == 0
        assert d.inputs().zones["Z3"].temperature_c == NOMINAL["Z3"][0]
        assert seen.of(ControllerStatus, state="online")
        summary = await run.stop()
    assert summary.safe_state_published and summary.messages_rejected == 0
    async with client(b, line_id, "setpoints/#", username="viewer", password=PASSWORDS["viewer"]) as (_, late):
        await wait_until(lambda: len(late.raw) >= len(ZONES), what="retained set-points")
        assert {(m.zone, m.temperature_c, m.airflow_m3_h, m.fresh_air_m3_h) for m in late.of(ZoneCommand)} == \
            {(z, *SAFE[z]) for z in ZONES}


# ------------------------------------------------------------------ TLS
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_broker(mosquitto_factory, tmp_path):
    """Mosquitto with a TLS listener (a throw-away CA) and a password file."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if shutil.which("openssl") is None or not os.access(tool, os.X_OK):
        pytest.skip("openssl or mosquitto_passwd not found")
    d = tmp_path / "tls"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=mudcrack-test-ca", "-keyout", "ca.key", "-out",
             "ca.crt", cwd=d)
    _openssl("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days",
             "2", "-extfile", "san.ext", "-out", "server.crt", cwd=d)
    pw = d / "passwd"
    subprocess.run([tool, "-c", "-b", str(pw), "controller", PASSWORDS["controller"]], check=True,
                   capture_output=True, timeout=30)
    subprocess.run([tool, "-b", str(pw), "viewer", PASSWORDS["viewer"]], check=True, capture_output=True, timeout=30)
    extra = (f"{AS_ROOT}cafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n"
             f"password_file {pw}\nacl_file {ACL}\n")
    broker = mosquitto_factory(extra_config=extra, allow_anonymous=False)
    broker.ca_file = d / "ca.crt"
    return broker


@pytest.mark.asyncio
async def test_connects_over_tls_with_a_password(tls_broker, line_id):
    b = tls_broker
    cfg = daemon_config(b, line_id, username="controller", password=PASSWORDS["controller"],
                        tls=TlsConfig(ca_file=b.ca_file))
    ctx = ssl.create_default_context(cafile=str(b.ca_file))
    with pytest.raises(aiomqtt.MqttError):  # plain TCP to the TLS listener fails
        async with aiomqtt.Client(b.host, b.port, username="viewer", password=PASSWORDS["viewer"], timeout=1):
            pass
    async with client(b, line_id, "controller/#", username="viewer", password=PASSWORDS["viewer"],
                      tls_context=ctx) as (_, seen):
        async with running(cfg, clock=FakeClock(FAKE_EPOCH_S, auto=False)) as run:
            await wait_until(lambda: seen.of(ControllerStatus, state="online"), what="status online over TLS")
            summary = await run.stop()
        await wait_until(lambda: seen.of(ControllerStatus, state="offline"), what="status offline over TLS")
    assert summary.connections == 1 and summary.safe_state_published


# ------------------------------------------------------------------ the process: SIGTERM and SIGKILL
def write_config(broker, line_id: str, path: Path) -> Path:
    data = yaml.safe_load((REPO / "configs" / "controller.yaml").read_text())
    data["line_id"] = line_id
    data["mqtt"].update(host=broker.host, port=broker.port, client_id=f"ctl-{line_id}")
    data["predictor"]["line_config"] = str(REPO / "configs" / "line.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.contextmanager
def daemon_process(config: Path, log_format: str, out_dir: Path):
    """``main_daemon`` in a child process (stdout / stderr to files); killed at the end if still running."""
    code = ("import sys; from controller._daemon import main_daemon; "
            "sys.exit(main_daemon(sys.argv[1], log_format=sys.argv[2]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUDCRACK_MQTT_")}
    with open(out_dir / f"{log_format}.out", "w") as out, open(out_dir / f"{log_format}.err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code, str(config), log_format], cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


@pytest.mark.asyncio
async def test_sigterm_publishes_the_safe_state_then_offline_and_a_kill_fires_the_last_will(mosquitto, line_id,
                                                                                            tmp_path):
    config = write_config(mosquitto, line_id, tmp_path / "controller.yaml")
    async with client(mosquitto, line_id, "#") as (_, inbox):
        with daemon_process(config, "json", tmp_path) as proc:
            await wait_until(lambda: inbox.of(ControllerStatus, state="online"), timeout_s=30, what="daemon online")
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
        out, err = (tmp_path / "json.out").read_text(), (tmp_path / "json.err").read_text()
        assert proc.returncode == 0, err
        await wait_until(lambda: inbox.of(ControllerStatus, state="offline"), what="status offline")
        order = list(inbox.messages)
        offline = next(i for i, m in enumerate(order) if isinstance(m, ControllerStatus) and m.state == "offline")
        for z in ZONES:
            cmds = [i for i, m in enumerate(order) if isinstance(m, ZoneCommand) and m.zone == z]
            assert cmds and max(cmds) < offline
            assert (order[max(cmds)].temperature_c, order[max(cmds)].airflow_m3_h,
                    order[max(cmds)].fresh_air_m3_h) == SAFE[z]
        assert order[offline].detail == "shutdown"
        assert "safe state at stop published" in out
        events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert {"connected", "stopping", "stopped"} <= {e.get("event") for e in events}

        # killed (no clean disconnect): the broker publishes the last will, retained
        with daemon_process(config, "kv", tmp_path) as proc:
            await wait_until(lambda: len(inbox.of(ControllerStatus, state="online")) >= 2, timeout_s=30,
                             what="daemon online again")
            proc.kill()
            await asyncio.to_thread(proc.wait, 30)
        await wait_until(lambda: inbox.of(ControllerStatus, state="offline", detail="last will"), what="last will")
        assert "event=connected" in (tmp_path / "kv.err").read_text()
    async with client(mosquitto, line_id, "controller/status") as (_, late):
        await wait_until(lambda: late.raw, what="retained status")
        assert late.of(ControllerStatus)[-1].detail == "last will" and late.raw[-1][2]


def test_log_formatters_write_key_value_and_json_lines():
    record = logging.LogRecord("controller._daemon", logging.WARNING, __file__, 1, "%s", ("x",), None)
    record.event, record.fields = "rejected", {"reason": "range", "topic": "mudcrack/a/sensors/line", "n": 2}
    record.msg, record.args = "event=rejected reason=range topic=mudcrack/a/sensors/line n=2", ()
    obj = json.loads(JsonLinesFormatter().format(record))
    assert obj["event"] == "rejected" and obj["reason"] == "range" and obj["n"] == 2 and obj["level"] == "WARNING"
    text = KeyValueFormatter().format(record)
    assert text.startswith("ts=") and "level=WARNING" in text and text.endswith("n=2")
