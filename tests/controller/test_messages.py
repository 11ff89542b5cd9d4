"""MQTT message layer: topics, round trips, every rejection reason, fuzzing, docs examples."""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller import _frames, _messages
from controller._frames import FRAME_MAGIC, Frame, FrameMeta, decode_frame_data
from controller._messages import (
    EXAMPLE_TIMESTAMP_S,
    POLICY,
    ControllerStatus,
    CrackEstimate,
    Decision,
    Limits,
    LineCommand,
    LineSensors,
    MessageError,
    MessageKind,
    Metrics,
    Reason,
    Topics,
    ZoneCommand,
    ZoneSensors,
    decode,
    encode,
    examples,
    parse_topic,
)

NOW = EXAMPLE_TIMESTAMP_S
T = Topics("pilot-1")
EXAMPLES = examples()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"


def example(cls, kind: str | None = None):
    """The first documented example of a class (and CrackEstimate kind)."""
    for topic, msg in EXAMPLES:
        if type(msg) is cls and (kind is None or msg.kind == kind):
            return topic, msg
    raise LookupError(cls)


def payload_of(cls, kind: str | None = None, /, **changes):
    """(topic, JSON object) of an example with keys changed (``...`` deletes a key)."""
    topic, msg = example(cls, kind)
    obj = json.loads(encode(msg))
    for key, value in changes.items():
        if value is ...:
            obj.pop(key)
        else:
            obj[key] = value
    return topic, obj


def rejected(topic, payload, *, now_s=NOW, limits=None, **kwargs) -> MessageError:
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    with pytest.raises(MessageError) as info:
        decode(topic, payload, now_s=now_s, limits=limits or Limits(), **kwargs)
    return info.value


# ----------------------------------------------------------------------------- topics
def test_topics_build_and_parse_every_kind():
    assert T.zone_sensors("Z1") == "mudcrack/pilot-1/sensors/zone/Z1"
    assert T.zone_setpoint("Z3") == "mudcrack/pilot-1/setpoints/zone/Z3"
    assert T.status == "mudcrack/pilot-1/controller/status"
    assert T.frame_meta == "mudcrack/pilot-1/camera/frame/meta"
    assert T.filter(MessageKind.ZONE_SENSORS) == "mudcrack/pilot-1/sensors/zone/+"
    assert T.filter(MessageKind.LINE_SENSORS) == "mudcrack/pilot-1/sensors/line"
    for kind in MessageKind:
        zone = "Z2" if kind.per_zone else None
        info = T.parse(T.topic(kind, zone))
        assert (info.line_id, info.kind, info.zone) == ("pilot-1", kind, zone)
    other = Topics("L_2", root="test-abc")
    assert parse_topic(other.line_setpoint, root="test-abc").line_id == "L_2"


@pytest.mark.parametrize("name", ["", "a/b", "+", "#", "$SYS", "a b", "-a", "x" * 65, "Zé", "a\n"])
def test_topics_reject_bad_names(name):
    with pytest.raises(MessageError, match="expected a name matching") as info:
        Topics(name)
    assert info.value.reason is Reason.TOPIC
    with pytest.raises(MessageError, match="zone"):
        T.zone_sensors(name)


@pytest.mark.parametrize("topic", [
    "mudcrack/pilot-1", "other/pilot-1/sensors/line", "mudcrack/pilot-1/sensors/line/", "mudcrack/pilot-1/sensors",
    "mudcrack/pilot-1/sensors/zone", "mudcrack/pilot-1/sensors/zone/Z1/x", "mudcrack/pilot-1/setpoints/zone/+",
    "mudcrack/+/sensors/line", "mudcrack/pilot-1/controller/#", "",
])
def test_parse_topic_rejects(topic):
    with pytest.raises(MessageError) as info:
        parse_topic(topic)
    assert info.value.reason is Reason.TOPIC


def test_topics_misuse():
    with pytest.raises(ValueError, match="not a per-zone topic"):
        T.topic(MessageKind.STATUS, "Z1")
    with pytest.raises(ValueError, match="root"):
        Topics("pilot-1", root="a/b")
    with pytest.raises(MessageError, match="line id: expected 'pilot-1', found 'pilot-2'"):
        T.parse("mudcrack/pilot-2/sensors/line")


def test_policy_qos_and_retain():
    assert set(POLICY) == set(MessageKind)
    for kind in (MessageKind.ZONE_SETPOINT, MessageKind.LINE_SETPOINT, MessageKind.STATUS):
        assert (POLICY[kind].qos, POLICY[kind].retain) == (1, True)
    for kind in (MessageKind.ZONE_SENSORS, MessageKind.LINE_SENSORS, MessageKind.FRAME):
        assert (POLICY[kind].qos, POLICY[kind].retain) == (0, False)
    limits = Limits()
    assert all(hasattr(limits, p.max_age) for p in POLICY.values())


# ----------------------------------------------------------------------------- round trips
def test_examples_cover_every_json_kind():
    kinds = {parse_topic(topic).kind for topic, _ in EXAMPLES}
    assert kinds == set(MessageKind) - {MessageKind.FRAME}


@pytest.mark.parametrize("topic,msg", EXAMPLES, ids=[f"{t.split('/', 2)[2]}-{i}" for i, (t, _) in enumerate(EXAMPLES)])
def test_round_trip(topic, msg):
    data = encode(msg)
    back = decode(topic, data, now_s=NOW)
    assert back == msg and type(back) is type(msg)
    assert encode(back) == data  # deterministic
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(data)["schema_version"] == 1
    assert decode(topic, bytearray(data), now_s=None, line_id="pilot-1") == msg


def test_optional_keys_may_be_absent_or_null():
    topic, obj = payload_of(ZoneSensors, solvent_concentration_g_m3=..., heater_power_kw=None, fan_power_kw=...,
                            temperature_setpoint_c=..., airflow_setpoint_m3_h=...)
    msg = decode(topic, json.dumps(obj).encode(), now_s=NOW)
    assert msg.solvent_concentration_g_m3 is None and msg.heater_power_kw is None and msg.temperature_c == 59.8
    topic, obj = payload_of(CrackEstimate, "surface", sites_um=..., zone_risk=..., web_risk=..., evidence=...,
                            frame_id=None)
    msg = decode(topic, json.dumps(obj).encode(), now_s=NOW)
    assert (msg.sites_um, msg.zone_risk, msg.web_risk, msg.evidence, msg.frame_id) == ((), {}, (), {}, None)


def test_minimal_messages_from_code():
    env = {"timestamp_s": 100.0, "source": "controller", "seq": 0}
    for topic, msg in [
        (T.line_sensors, LineSensors(**env, web_speed_m_min=3)),
        (T.line_setpoint, LineCommand(**env, speed_m_min=np.float32(2.5))),
        (T.zone_setpoint("Z1"), ZoneCommand(**env, zone="Z1", temperature_c=np.int64(60), airflow_m3_h=1000.0)),
        (T.metrics, Metrics(**env, uptime_s=0)),
        (T.decision, Decision(**env, action="hold", reason="all inputs fresh, risk low")),
        (T.status, ControllerStatus(**env, state="safe")),
    ]:
        back = decode(topic, encode(msg), now_s=100.0)
        assert back == msg
        assert all(type(getattr(back, f.name)) in (int, float, str, bool, type(None), dict, tuple)
                   for f in dataclasses.fields(back))


def test_ints_accepted_as_floats_not_the_reverse():
    topic, obj = payload_of(ZoneCommand, temperature_c=60)
    assert decode(topic, json.dumps(obj).encode(), now_s=NOW).temperature_c == 60.0
    err = rejected(*payload_of(ZoneCommand, seq=3.0))
    assert err.reason is Reason.TYPE and err.key == "seq"


# ----------------------------------------------------------------------------- rejections
def test_oversized_before_parsing():
    err = rejected(T.line_sensors, b"{" * 70_000)
    assert err.reason is Reason.OVERSIZED and "65536" in str(err)
    err = rejected(T.line_sensors, encode(example(LineSensors)[1]), limits=Limits(max_payload_bytes=100))
    assert err.reason is Reason.OVERSIZED
    big = Decision(timestamp_s=1.0, source="c", seq=0, action="hold", reason="x",
                   inputs={f"k{i}": 1.0 for i in range(200)})
    with pytest.raises(MessageError, match="oversized"):
        encode(big, limits=Limits(max_payload_bytes=1000))


@pytest.mark.parametrize("payload,match", [
    (b"", "Expecting value"), (b"{", "Expecting"), (b"\xff\xfe{}", "utf-8"), (b'{"a":NaN}', "NaN"),
    (b'{"a":-Infinity}', "Infinity"), (b'{"a":1,"a":2}', "duplicate"), (b"[" * 50_000, "recursion"),
    (b"1" * 5000, "digits"), ('{"a":"\ud800"}'.encode("utf-8", "surrogatepass"), "utf-8"),
    (b'{"schema_version":1} x', "Extra data"),
])
def test_malformed_json(payload, match):
    err = rejected(T.line_sensors, payload)
    assert err.reason is Reason.MALFORMED_JSON
    assert match in str(err)


@pytest.mark.parametrize("payload,key", [
    (b"[]", None), (b'"text"', None), (b"null", None), (b"{}", "schema_version"), (b'{"schema_version":2}', "schema_version"),
    (b'{"schema_version":true}', "schema_version"), (b'{"schema_version":"1"}', "schema_version"),
])
def test_schema(payload, key):
    err = rejected(T.line_sensors, payload)
    assert err.reason is Reason.SCHEMA and err.key == key


def test_schema_inconsistent_onset():
    err = rejected(*payload_of(CrackEstimate, "surface", onset=True))
    assert err.reason is Reason.SCHEMA and err.key == "onset_timestamp_s"
    err = rejected(*payload_of(CrackEstimate, "lab", onset=False))
    assert err.reason is Reason.SCHEMA


@pytest.mark.parametrize("cls,key", [(ZoneSensors, "temperature_c"), (ZoneSensors, "zone"), (LineSensors, "timestamp_s"),
                                     (CrackEstimate, "risk"), (Metrics, "uptime_s"), (Decision, "reason"),
                                     (ControllerStatus, "state"), (LineCommand, "seq")])
def test_missing_key(cls, key):
    err = rejected(*payload_of(cls, **{key: ...}))
    assert err.reason is Reason.MISSING_KEY and err.key == key
    assert re.search(rf"'{key}': required by {cls.__name__}", str(err))


def test_unknown_key_names_the_keys_and_what_is_expected():
    err = rejected(*payload_of(ZoneCommand, temperature=60.0, **{"x" * 500: 1}))
    assert err.reason is Reason.UNKNOWN_KEY
    assert "'temperature'" in str(err) and "airflow_m3_h" in str(err) and len(str(err)) < 600


@pytest.mark.parametrize("key,value", [
    ("temperature_c", True), ("temperature_c", "60"), ("temperature_c", None), ("temperature_c", [60]),
    ("temperature_c", 1e999), ("seq", 1.5), ("seq", False), ("zone", 1), ("airflow_m3_h", {"v": 1}),
])
def test_type(key, value):
    topic, obj = payload_of(ZoneSensors, **{key: value})
    payload = json.dumps(obj).encode()  # 1e999 is written as Infinity -> patch to the literal 1e999
    payload = payload.replace(b"Infinity", b"1e999")
    err = rejected(topic, payload)
    assert err.reason is Reason.TYPE and err.key == key


@pytest.mark.parametrize("cls,kind,key,value,match", [
    (ZoneSensors, None, "temperature_c", 400.5, r"within \[-40, 400\]"),
    (ZoneSensors, None, "airflow_m3_h", -1.0, "within"),
    pytest.param(ZoneSensors, None, "temperature_c", 10**400, "within", id="huge-int"),
    (ZoneSensors, None, "source", "a b", "name matching"),
    (ZoneSensors, None, "seq", -1, "within"),
    (LineSensors, None, "web_speed_m_min", 1e6, "within"),
    (CrackEstimate, "surface", "risk", 1.5, "within"),
    (CrackEstimate, "surface", "kind", "bulk", "one of"),
    (CrackEstimate, "surface", "sites_um", [[1.0, 2.0, 3.0]], "2 coordinates"),
    (CrackEstimate, "lab", "sites_um", [[1.0, 2.0]], "3 coordinates"),
    (CrackEstimate, "surface", "sites_um", [[1.0, 2.0]] * 257, "at most 256"),
    (CrackEstimate, "surface", "web_risk", [[7.0, 0.1], [6.0, 0.2]], "increasing"),
    (CrackEstimate, "surface", "zone_risk", {"Z 1": 0.1}, "keys matching"),
    (CrackEstimate, "surface", "evidence", {"Zmax": 1.0}, "keys matching"),
    (ControllerStatus, None, "detail", "x" * 513, "at most 512"),
    (ControllerStatus, None, "detail", "line\nforged log line", "printable"),
    (Metrics, None, "counters", {"received": -1}, "within"),
])
def test_range(cls, kind, key, value, match):
    err = rejected(*payload_of(cls, kind, **{key: value}))
    assert err.reason is Reason.RANGE
    assert err.key is not None and err.key.startswith(key)
    assert re.search(match, str(err))


def test_ranges_are_configurable():
    topic, obj = payload_of(ZoneSensors)
    err = rejected(topic, obj, limits=Limits(temperature_c=(0.0, 50.0)))
    assert err.reason is Reason.RANGE and "within [0, 50]" in str(err)
    with pytest.raises(ValueError, match="Limits.temperature_c"):
        Limits(temperature_c=(50.0, 0.0))
    with pytest.raises(ValueError, match="Limits.max_items"):
        Limits(max_items=0)


def test_stale_and_future():
    topic, msg = example(ZoneSensors)
    data = encode(msg)
    assert decode(topic, data, now_s=NOW + 30.0) == msg
    err = rejected(topic, data, now_s=NOW + 30.5)
    assert err.reason is Reason.STALE and "at most 30 s old, found 30.500 s old" in str(err)
    err = rejected(topic, data, now_s=NOW - 5.5)
    assert err.reason is Reason.FUTURE and err.key == "timestamp_s"
    assert decode(topic, data, now_s=NOW - 5.0) == msg
    assert decode(topic, data, now_s=None) == msg  # replay: no age check
    assert decode(topic, data, now_s=NOW + 100, limits=Limits(max_age_sensors_s=None)) == msg
    with pytest.raises(ValueError, match="now_s"):
        decode(topic, data, now_s=math.nan)


def test_retained_state_is_not_age_checked_but_estimates_are():
    for cls in (ControllerStatus, ZoneCommand, LineCommand):
        topic, msg = example(cls)
        assert decode(topic, encode(msg), now_s=NOW + 30 * 86_400) == msg
    topic, msg = example(CrackEstimate, "lab")
    assert decode(topic, encode(msg), now_s=NOW + 86_400) == msg
    assert rejected(topic, encode(msg), now_s=NOW + 8 * 86_400).reason is Reason.STALE
    topic, msg = example(CrackEstimate, "surface")
    assert rejected(topic, encode(msg), now_s=NOW + 121).reason is Reason.STALE


def test_topic_payload_consistency():
    topic, msg = example(ZoneSensors)
    err = rejected(T.zone_sensors("Z2"), encode(msg))
    assert err.reason is Reason.TOPIC and "expected 'Z2' as in the topic, found 'Z1'" in str(err)
    topic, msg = example(CrackEstimate, "surface")
    err = rejected(T.lab_estimate, encode(msg))
    assert err.reason is Reason.TOPIC and err.key == "kind"
    err = rejected(T.line_sensors, encode(example(ZoneCommand)[1]))
    assert err.reason is Reason.UNKNOWN_KEY  # a zone set-point on the line sensors topic
    assert rejected("mudcrack/pilot-1/sensors/lines", b"{}").reason is Reason.TOPIC
    assert rejected(topic, encode(msg), line_id="pilot-2").reason is Reason.TOPIC


def test_error_message_names_topic_key_expected_and_found():
    topic, obj = payload_of(ZoneSensors, airflow_m3_h=-5)
    err = rejected(topic, obj)
    assert str(err) == ("'mudcrack/pilot-1/sensors/zone/Z1': key 'airflow_m3_h': expected within [0, 100000], "
                        "found -5 [range]")
    assert isinstance(err, ValueError) and err.topic == topic and err.key == "airflow_m3_h"


def test_encode_checks_what_it_publishes():
    _, msg = example(ZoneCommand)
    with pytest.raises(MessageError, match="finite") as info:
        encode(dataclasses.replace(msg, temperature_c=math.nan))
    assert info.value.reason is Reason.TYPE
    with pytest.raises(MessageError, match="within"):
        encode(dataclasses.replace(msg, airflow_m3_h=-1.0))
    with pytest.raises(TypeError, match="expected a Message or Frame"):
        encode({"temperature_c": 60.0})
    with pytest.raises(MessageError) as info:
        decode(T.line_sensors, "not bytes", now_s=NOW)
    assert info.value.reason is Reason.TYPE


# ----------------------------------------------------------------------------- frames
def _image(dtype, shape=(48, 64)):
    rng = np.random.default_rng(3)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def _frame(image, encoding=None, **kw):
    args = {"frame_id": 7, "um_per_px": 5.0, "position_m": 7.0, "timestamp_s": NOW, "source": "sim-line", "seq": 7}
    args |= kw
    return Frame.from_image(image, encoding=encoding, **args)


@pytest.mark.parametrize("dtype,encoding", [(np.uint8, None), (np.uint16, None), (np.uint8, "png"),
                                            (np.uint16, "png")])
def test_frame_round_trip(dtype, encoding):
    image = _image(dtype)
    frame = _frame(image, encoding)
    data = encode(frame)
    assert data.startswith(FRAME_MAGIC)
    back = decode(T.frame, data, now_s=NOW)
    assert isinstance(back, Frame) and back.meta == frame.meta and back.data == frame.data
    np.testing.assert_array_equal(back.image, image)
    assert back.image.dtype == dtype and back.image.flags.writeable
    # the header also travels alone on camera/frame/meta; the pixels decode against it
    meta = decode(T.frame_meta, encode(frame.meta), now_s=NOW)
    np.testing.assert_array_equal(decode_frame_data(meta, frame.data), image)


def test_raw_u16_is_little_endian_row_major():
    frame = _frame(np.array([[0x0102, 0x0304]], dtype=np.uint16))
    assert frame.meta.encoding == "raw-u16-le" and frame.data == b"\x02\x01\x04\x03"
    np.testing.assert_array_equal(decode_frame_data(frame.meta, b"\x02\x01\x04\x03"), [[0x0102, 0x0304]])


def test_frame_from_image_rejects_bad_images():
    with pytest.raises(ValueError, match="2D uint8 or uint16"):
        _frame(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="2D uint8 or uint16"):
        _frame(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="encoding"):
        _frame(np.zeros((4, 4), np.uint16), "raw-u8")


def _envelope(header: bytes, data: bytes) -> bytes:
    return FRAME_MAGIC + struct.pack(">I", len(header)) + header + data


def _meta_json(frame, **changes) -> bytes:
    obj = json.loads(encode(frame.meta)) | changes
    return json.dumps(obj).encode()


def test_frame_rejections():
    raw = _frame(_image(np.uint8))
    png = _frame(_image(np.uint8), "png")
    cases = [
        (Reason.OVERSIZED, encode(raw), Limits(max_frame_bytes=1000)),
        (Reason.OVERSIZED, FRAME_MAGIC + struct.pack(">I", 10**6) + b"x" * 100, Limits()),
        (Reason.FRAME, b"PNG!" + encode(raw)[4:], Limits()),
        (Reason.FRAME, b"MCF", Limits()),
        (Reason.FRAME, FRAME_MAGIC + struct.pack(">I", 5000) + b"{}", Limits()),
        (Reason.FRAME, encode(raw)[:-1], Limits()),  # byte_count disagrees with the data
        (Reason.FRAME, _envelope(_meta_json(raw, byte_count=100), raw.data[:100]), Limits()),  # raw size vs shape
        (Reason.FRAME, _envelope(_meta_json(raw, dtype="uint16"), raw.data), Limits()),  # dtype vs encoding
        (Reason.FRAME, _envelope(_meta_json(png, shape=[64, 48]), png.data), Limits()),  # IHDR vs header
        (Reason.FRAME, _envelope(_meta_json(png, dtype="uint16"), png.data), Limits()),  # bit depth vs dtype
        (Reason.FRAME, _envelope(_meta_json(raw, encoding="png", byte_count=len(raw.data)), raw.data), Limits()),
        (Reason.FRAME, _envelope(_meta_json(png), png.data[:40] + bytes(len(png.data) - 40)), Limits()),  # corrupt
        (Reason.RANGE, _envelope(_meta_json(raw, shape=[100_000, 100_000]), raw.data), Limits()),
        (Reason.TYPE, _envelope(_meta_json(raw, shape=[48.0, 64]), raw.data), Limits()),
        (Reason.MALFORMED_JSON, _envelope(b"{", b""), Limits()),
        (Reason.STALE, encode(_frame(_image(np.uint8), timestamp_s=NOW - 60)), Limits()),
    ]
    for reason, payload, limits in cases:
        err = rejected(T.frame, payload, limits=limits)
        assert err.reason is reason, (reason, err)
    # colour PNG claiming to be grayscale
    import cv2

    colour = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    err = rejected(T.frame, _envelope(_meta_json(png, byte_count=len(colour)), colour))
    assert err.reason is Reason.FRAME and "colour type 2" in str(err)
    with pytest.raises(MessageError, match="byte_count"):
        encode(Frame(dataclasses.replace(raw.meta, byte_count=raw.meta.byte_count), raw.image, raw.data[:-1]))
    with pytest.raises(MessageError) as info:
        _frames.decode_frame(T.frame_meta, encode(raw), now_s=NOW)
    assert info.value.reason is Reason.TOPIC


# ----------------------------------------------------------------------------- fuzzing
ALL_TOPICS = [t for t, _ in EXAMPLES] + [T.frame, T.zone_sensors("Z9")]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_rejects(topic: str, payload: bytes, now_s: float | None = NOW) -> None:
    """The property: decode returns a message or raises MessageError, nothing else; what it
    accepts encodes back to a payload that decodes to the same message."""
    try:
        msg = decode(topic, payload, now_s=now_s)
    except MessageError as err:
        assert isinstance(err.reason, Reason) and len(str(err)) < 1200
        event(err.reason.value)
        return
    event("accepted")
    again = decode(topic, encode(msg), now_s=now_s)
    if isinstance(msg, Frame):
        assert again.meta == msg.meta and np.array_equal(again.image, msg.image)
    else:
        assert again == msg


@FUZZ
@given(st.sampled_from(ALL_TOPICS) | st.text(max_size=80), st.binary(max_size=2000))
def test_fuzz_random_bytes(topic, payload):
    _decodes_or_rejects(topic, payload)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(st.sampled_from(ALL_TOPICS), JSON_VALUES)
def test_fuzz_random_json(topic, value):
    _decodes_or_rejects(topic, json.dumps(value).encode())


NASTY = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
         | st.floats(-1e7, 1e7) | st.integers(-(10**6), 10**6)
         | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([10**400, -0.0, 1e308, 5e-324])
         | st.text(max_size=20) | st.text(min_size=1, max_size=1).map(lambda c: c * 600)
         | st.text(min_size=1, max_size=1).map(lambda c: c * 100_000)
         | st.lists(st.floats(), max_size=4) | st.lists(st.lists(st.floats(allow_nan=False), max_size=4), max_size=4)
         | st.dictionaries(st.text(max_size=8), st.floats(), max_size=4) | JSON_VALUES)


@FUZZ
@given(st.sampled_from(EXAMPLES), st.data())
def test_fuzz_mutated_valid_messages(topic_msg, data):
    topic, msg = topic_msg
    obj = json.loads(encode(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        new_key = data.draw(st.integers(0, 4), label="new key") == 0
        key = data.draw(st.text(max_size=10) if new_key or not obj else st.sampled_from(sorted(obj)), label="key")
        if data.draw(st.booleans(), label="delete") and key in obj:
            del obj[key]
        else:
            obj[key] = data.draw(NASTY, label="value")
    payload = json.dumps(obj).encode()  # NaN / Infinity literals when floats are non-finite
    now_s = data.draw(st.sampled_from([NOW, NOW + 1e6, None]), label="now_s")
    _decodes_or_rejects(topic, payload, now_s)


BOUNDED = [(ZoneSensors, None, "temperature_c", "temperature_c"), (ZoneSensors, None, "airflow_m3_h", "airflow_m3_h"),
           (ZoneSensors, None, "solvent_concentration_g_m3", "solvent_concentration_g_m3"),
           (ZoneSensors, None, "fan_power_kw", "power_kw"), (LineSensors, None, "web_speed_m_min", "speed_m_min"),
           (LineSensors, None, "wet_thickness_um", "thickness_um"),
           (LineSensors, None, "exit_residual_solvent_g_m2", "residual_solvent_g_m2"),
           (CrackEstimate, "surface", "risk", "risk"), (CrackEstimate, "lab", "score", "score"),
           (CrackEstimate, "surface", "position_m", "position_m"), (FrameMeta, None, "um_per_px", "um_per_px"),
           (ZoneCommand, None, "airflow_m3_h", "airflow_m3_h"), (LineCommand, None, "speed_m_min", "speed_m_min"),
           (Metrics, None, "uptime_s", "duration_s")]


@FUZZ
@given(st.sampled_from(BOUNDED), st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**7), 10**7))
def test_fuzz_numeric_bounds_oracle(case, value):
    """A finite number is accepted exactly when it lies within its `Limits` range."""
    cls, kind, key, limit = case
    topic, obj = payload_of(cls, kind, **{key: value})
    low, high = getattr(Limits(), limit)
    try:
        msg = decode(topic, json.dumps(obj).encode(), now_s=NOW)
    except MessageError as err:
        assert not low <= value <= high and err.reason is Reason.RANGE and err.key == key
        event("range")
    else:
        assert low <= value <= high and getattr(msg, key) == value
        event("accepted")


FRAME_PAYLOADS = [encode(_frame(_image(np.uint8, (8, 6)))), encode(_frame(_image(np.uint16, (8, 6)), "png"))]


@FUZZ
@given(st.sampled_from(FRAME_PAYLOADS), st.data())
def test_fuzz_mutated_frames(payload, data):
    buf = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del buf[i:i + data.draw(st.integers(1, 64))]
        else:
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    _decodes_or_rejects(T.frame, bytes(buf))


# ----------------------------------------------------------------------------- docs
def _docs_examples() -> list[tuple[str, str]]:
    text = DOCS.read_text(encoding="utf-8")
    return re.findall(r"Example on `([^`]+)`:\n\n```json\n(.*?)\n```", text, flags=re.DOTALL)


def test_docs_examples_decode_and_match_the_code():
    found = _docs_examples()
    assert len(found) == len(EXAMPLES)
    for topic, block in found:
        msg = decode(topic, block.encode(), now_s=NOW)  # pretty-printed JSON decodes as well
        assert msg is not None
    docs = sorted((topic, json.dumps(json.loads(block), sort_keys=True)) for topic, block in found)
    code = sorted((topic, encode(msg).decode()) for topic, msg in EXAMPLES)
    assert docs == [(t, json.dumps(json.loads(c), sort_keys=True)) for t, c in code], \
        "docs/mqtt.md examples differ from controller._messages.examples(); regenerate them"


def test_docs_cover_every_topic_and_reason():
    text = DOCS.read_text(encoding="utf-8")
    for kind in MessageKind:
        assert f"`{kind.value}" in text, kind
    for reason in Reason:
        assert f"`{reason.value}`" in text, reason
    for cls in (ZoneSensors, LineSensors, FrameMeta, CrackEstimate, ZoneCommand, LineCommand, ControllerStatus,
                Decision, Metrics, Frame):
        assert f"`{cls.__name__}`" in text, cls


def test_doctests():
    for module in (_messages, _frames):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
