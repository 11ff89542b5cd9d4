"""Disturbance scenarios: parsing errors name file and key; each disturbance shows its effect on the line."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

import sim_line
from sim_line._config import default_config_dir
from sim_line._scenario import (
    EVENT_KINDS,
    Bubbles,
    CoatingThickness,
    Scenario,
    ScenarioPlayer,
    load_scenario,
    parse_scenario,
)

SCENARIOS = default_config_dir() / "scenarios"
CFG, SLURRY = sim_line.load_line()
AMBIENT_C = CFG.ambient_temperature_c


def _zone(readings: sim_line.LineReadings, name: str) -> sim_line.ZoneReading:
    return next(z for z in readings.zones if z.name == name)


def _player(events: list[dict], *, seed: int = 0) -> ScenarioPlayer:
    scenario = parse_scenario({"name": "test", "events": events}, source="test.yaml")
    return ScenarioPlayer(scenario, sim_line.Line((CFG, SLURRY), seed=seed), seed=seed)


def _run(player: ScenarioPlayer, seconds: int) -> list[sim_line.LineReadings]:
    return [player.step(1.0) for _ in range(seconds)]


# ------------------------------------------------------------------ shipped files
def test_shipped_default_scenario_is_a_thicker_coating():
    sc = load_scenario(SCENARIOS / "default.yaml")
    assert sc.source == str(SCENARIOS / "default.yaml")
    assert sc.events == (CoatingThickness(at_s=60.0, wet_thickness_um=220.0),)
    sc.check_line(CFG)


def test_shipped_all_disturbances_scenario_covers_every_kind():
    sc = load_scenario(SCENARIOS / "all_disturbances.yaml")
    assert {ev.kind for ev in sc.events} == set(EVENT_KINDS)
    sc.check_line(CFG)


# ------------------------------------------------------------------ parsing errors
def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _ev(**kw) -> dict:
    return {"name": "x", "events": [{"kind": "coating_thickness", "at_s": 10, "wet_thickness_um": 200}, kw]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], r"expected a mapping with keys \['description', 'events', 'name'\], found list"),
        ({"name": "x", "events": [], "extra": 1}, r"extra: unknown key; expected one of \['description', 'events', 'name'\]"),
        ({"name": "x"}, r"events: required key is missing"),
        ({"events": []}, r"name: required key is missing"),
        ({"name": "", "events": []}, r"name: expected a non-empty string, found ''"),
        ({"name": "x", "events": {"kind": "bubbles"}}, r"events: expected a list of events, found dict"),
        ({"name": "x", "events": ["bubbles"]}, r"events\[0\]: expected a mapping with a 'kind' key, found str"),
        (_ev(at_s=5), r"events\[1\]\.kind: expected one of \[.*'bubbles'.*\], found nothing"),
        (_ev(kind="earthquake", at_s=5), r"events\[1\]\.kind: expected one of \[.*\], found 'earthquake'"),
        (_ev(kind="bubbles", at_s=5, fraction=0.2), r"events\[1\]\.radius_um: required key is missing"),
        (_ev(kind="bubbles", at_s=5, fraction=1.5, radius_um=10), r"events\[1\]\.fraction: expected a number <= 1\.0, found 1\.5"),
        (_ev(kind="bubbles", at_s=-1, fraction=0.5, radius_um=10), r"events\[1\]\.at_s: expected a number >= 0\.0, found -1\.0"),
        (_ev(kind="web_speed", at_s=5, duration_s=0, speed_m_min=2), r"events\[1\]\.duration_s: expected a number > 0\.0, found 0\.0"),
        (_ev(kind="web_speed", at_s=5, speed_m_min="fast"), r"events\[1\]\.speed_m_min: expected a number, found 'fast' \(str\)"),
        (_ev(kind="camera_flicker", at_s=5, gain=2, colour="red"), r"events\[1\]\.colour: unknown key; expected one of \[.*'gain'.*\]"),
        (_ev(kind="heater_fault", at_s=5, max_temperature_c=80), r"events\[1\]\.zone: required key is missing"),
        (_ev(kind="coating_thickness", at_s=5, duration_s=10, wet_thickness_um=250),
         r"events\[1\]: coating_thickness from 5 s overlaps events\[0\] \(10 s to inf s\)"),
    ],
)
def test_parse_errors_name_the_file_and_key(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(sim_line.ConfigError, match="^" + re.escape(str(path)) + ": " + message):
        load_scenario(path)


def test_overlap_is_per_target_only():
    sc = parse_scenario({"name": "x", "events": [
        {"kind": "sensor_dropout", "at_s": 0, "duration_s": 10, "sensor": "Z1"},
        {"kind": "sensor_dropout", "at_s": 5, "duration_s": 10, "sensor": "Z2"},  # another sensor: fine
        {"kind": "sensor_dropout", "at_s": 10, "duration_s": 10, "sensor": "Z1"},  # back to back: fine
    ]})
    assert len(sc.events) == 3
    with pytest.raises(sim_line.ConfigError, match=r"^<scenario>: events\[1\]: sensor_dropout on 'Z1' from 9 s"):
        parse_scenario({"name": "x", "events": [
            {"kind": "sensor_dropout", "at_s": 0, "duration_s": 10, "sensor": "Z1"},
            {"kind": "sensor_dropout", "at_s": 9, "sensor": "Z1"}]})


def test_unreadable_and_invalid_yaml_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(sim_line.ConfigError, match="^" + re.escape(str(missing)) + ": cannot read the scenario file"):
        load_scenario(missing)
    bad = _write(tmp_path, "name: x\nevents: [\n")
    with pytest.raises(sim_line.ConfigError, match="^" + re.escape(str(bad)) + r": not valid YAML at line \d+"):
        load_scenario(bad)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"kind": "heater_fault", "at_s": 0, "zone": "Z9"}, r"events\[0\]\.zone: expected one of the line's zones \['Z1', 'Z2', 'Z3', 'Z4'\], found 'Z9'"),
        ({"kind": "sensor_dropout", "at_s": 0, "sensor": "Z7"}, r"events\[0\]\.sensor: expected one of \['Z1', 'Z2', 'Z3', 'Z4', 'line', 'camera'\], found 'Z7'"),
        ({"kind": "web_speed", "at_s": 0, "speed_m_min": 50}, r"events\[0\]\.speed_m_min: expected within the line's speed_limits_m_min \[0\.5, 10\.0\], found 50\.0"),
    ],
)
def test_events_are_checked_against_the_line(event, message):
    sc = parse_scenario({"name": "x", "events": [event]}, source="s.yaml")
    with pytest.raises(sim_line.ConfigError, match=r"^s\.yaml: " + message):
        sc.check_line(CFG)
    with pytest.raises(sim_line.ConfigError, match=r"^s\.yaml: " + message):
        ScenarioPlayer(sc, sim_line.Line((CFG, SLURRY)))


# ------------------------------------------------------------------ effects
def test_no_scenario_is_the_plain_line():
    plain = sim_line.Line((CFG, SLURRY), seed=3)
    player = ScenarioPlayer(None, sim_line.Line((CFG, SLURRY), seed=3), seed=3)
    for _ in range(20):
        a, b = plain.step(1.0), player.step(1.0)
    assert a.as_dict() == b.as_dict()
    assert player.scenario == Scenario(name="none")
    assert player.publishes("Z1") and player.publishes("camera") and player.camera_gain() == 1.0


def test_coating_thickness_changes_the_coater_and_comes_back():
    player = _player([{"kind": "coating_thickness", "at_s": 5, "duration_s": 20, "wet_thickness_um": 230}])
    r = _run(player, 40)
    wet = np.array([x.wet_thickness_um for x in r])
    nominal = CFG.coater.wet_thickness_um
    assert np.all(np.abs(wet[:4] - nominal) < 5)
    assert np.all(np.abs(wet[8:24] - 230) < 5)
    assert np.all(np.abs(wet[28:] - nominal) < 5)
    assert [entry for _, entry in player.log] == ["start coating_thickness", "end coating_thickness"]


def test_default_scenario_makes_the_fixed_recipe_crack_more():
    def exit_cif(scenario):
        line = sim_line.Line((CFG, SLURRY), seed=0)
        player = ScenarioPlayer(scenario, line, seed=0)
        _run(player, 400)
        ex = line.exited()
        return ex[ex.t_s > 330].cif_3d.mean(), ex[ex.t_s > 330].residual_solvent_g_m2.max()

    base_cif, _ = exit_cif(None)
    cif, residual = exit_cif(load_scenario(SCENARIOS / "default.yaml"))
    assert base_cif > 0  # the fixed recipe already cracks
    assert cif > base_cif + 0.01  # thicker coating from t = 60 s cracks more at the exit 4+ min later
    assert residual <= CFG.exit_residual_solvent_limit_g_m2  # and still leaves the dryer dry


def test_bubbles_land_in_the_coating_laid_during_the_event_and_crack_more():
    player = _player([{"kind": "bubbles", "at_s": 10, "duration_s": 60, "fraction": 0.5, "radius_um": 20}], seed=1)
    line = player.line
    before = int(line.parcel_id.max())
    _run(player, 10)
    first = int(line.parcel_id.max())  # parcels coated up to now: no bubbles
    _run(player, 60)
    last = int(line.parcel_id.max())
    _run(player, 150)  # the bubble parcels pass the crack position (~7 m, ~140 s after coating)
    films, pid = line.films, line.parcel_id
    bubble = films.bubble_radius0_um > 0
    assert not bubble[pid <= first].any()
    assert not bubble[pid > last].any()
    window = (pid > first) & (pid <= last)
    assert window.sum() > 40
    assert 0.3 < bubble[window].mean() < 0.7
    assert np.all(films.bubble_radius0_um[bubble] == 20.0)
    cracked = ~np.isnan(films.onset_s)
    assert cracked[window].all()
    # a bubble is a crack nucleus and concentrates crack volume (bubble_cif_gain)
    assert films.cif_3d[window & bubble].mean() > 1.2 * films.cif_3d[window & ~bubble].mean()
    assert before < first


def test_web_speed_step_and_return():
    player = _player([{"kind": "web_speed", "at_s": 5, "duration_s": 30, "speed_m_min": 2.0}])
    r = _run(player, 60)
    speed = np.array([x.web_speed_m_min for x in r])
    assert speed[3] == pytest.approx(CFG.web.speed_m_min)
    assert speed[30] == pytest.approx(2.0, abs=0.02)  # reached through the drive's lag
    assert np.all(np.diff(speed[5:30]) <= 1e-9)
    assert speed[-1] == pytest.approx(CFG.web.speed_m_min, abs=0.02)


def test_web_speed_event_end_keeps_a_newer_setpoint():
    player = _player([{"kind": "web_speed", "at_s": 2, "duration_s": 5, "speed_m_min": 2.0}])
    _run(player, 4)
    player.step(1.0, {"web_speed_m_min": 4.0})  # the controller moves the speed during the event
    r = _run(player, 30)
    assert r[-1].web_speed_m_min == pytest.approx(4.0, abs=0.02)


def test_heater_fault_caps_the_air_temperature_but_keeps_the_setpoint():
    player = _player([{"kind": "heater_fault", "at_s": 5, "duration_s": 120, "zone": "Z3", "max_temperature_c": 90}])
    r = _run(player, 240)
    t3 = np.array([_zone(x, "Z3").temperature_c for x in r])
    p3 = np.array([_zone(x, "Z3").heater_power_kw for x in r])
    assert t3[3] == pytest.approx(120.0)
    assert np.all(np.diff(t3[5:125]) <= 1e-9)  # falls through the heater lag, never jumps
    assert t3[124] < 95.0
    assert t3[124] > 90.0 - 1e-6
    assert p3[124] < 0.85 * p3[3]
    assert all(_zone(x, "Z3").temperature_setpoint_c == 120.0 for x in r)
    assert t3[-1] > t3[124] + 10.0  # heating again after the fault
    # the other zones do not notice
    assert all(_zone(x, "Z2").temperature_c == pytest.approx(70.0) for x in r)


def test_heater_power_lost_cools_towards_ambient():
    player = _player([{"kind": "heater_fault", "at_s": 0, "zone": "Z1"}])
    r = _run(player, 600)
    t1 = np.array([_zone(x, "Z1").temperature_c for x in r])
    assert np.all(np.diff(t1) <= 1e-9)
    assert t1[-1] == pytest.approx(AMBIENT_C, abs=1.0)
    assert _zone(r[-1], "Z1").heater_power_kw < 0.1


def test_setpoints_still_work_during_a_fault_and_bad_ones_apply_nothing():
    player = _player([{"kind": "heater_fault", "at_s": 0, "zone": "Z3", "max_temperature_c": 100}])
    r = player.step(1.0, {"Z3": sim_line.ZoneSetpoint(80.0, 2500.0)})
    assert _zone(r, "Z3").temperature_setpoint_c == 80.0
    _run(player, 300)
    assert _zone(player.line.readings(), "Z3").temperature_c == pytest.approx(80.0, abs=1.0)  # below the cap
    t_before = player.line.t_s
    with pytest.raises(ValueError, match=r"setpoints\.Z1\.temperature_c: expected within \[25\.0, 130\.0\]"):
        player.step(1.0, {"Z2": sim_line.ZoneSetpoint(60.0, 1500.0), "Z1": sim_line.ZoneSetpoint(500.0, 1000.0)})
    assert player.line.t_s == t_before
    assert _zone(player.line.readings(), "Z2").temperature_setpoint_c == 70.0


def test_exhaust_fault_caps_the_fresh_air_and_the_vapour_builds_up():
    z3 = CFG.dryer.zones[2]
    cap = 250.0
    player = _player([{"kind": "exhaust_fault", "at_s": 5, "duration_s": 240, "zone": "Z3", "max_fresh_air_m3_h": cap}])
    r = _run(player, 360)
    f3 = np.array([_zone(x, "Z3").fresh_air_m3_h for x in r])
    c3 = np.array([_zone(x, "Z3").solvent_concentration_g_m3 for x in r])
    assert f3[3] == pytest.approx(z3.fresh_air_m3_h)
    assert f3[60] == pytest.approx(cap, abs=1.0)  # the exhaust's 5 s lag has long settled
    assert all(_zone(x, "Z3").fresh_air_setpoint_m3_h == z3.fresh_air_m3_h for x in r)  # the set-point is kept
    # the zone air (V = 0.8 m3/m x 2.5 m) fills with vapour with the time constant V / fresh air (29 s here)
    # towards 3x (the evaporation barely changes), and is flushed again after the fault
    tau_s = CFG.dryer.zone_air_volume_m3_per_m * z3.length_m / (cap / 3600.0)
    rise = (c3 - c3[3]) / (c3[240] - c3[3])
    assert c3[240] == pytest.approx(c3[3] * z3.fresh_air_m3_h / cap, rel=0.1)
    k = int(np.argmax(rise >= 1.0 - math.exp(-1.0)))
    # 63 % after one time constant, plus the exhaust's own lag (5 s) and the evaporation slowing as the vapour rises
    assert 5 + tau_s <= k <= 5 + tau_s + 15.0
    assert np.all(np.diff(c3[5:240]) >= -0.001 * c3[240])  # no overshoot, no oscillation at a small exhaust flow
    assert f3[-1] == pytest.approx(z3.fresh_air_m3_h, abs=1.0) and c3[-1] == pytest.approx(c3[3], rel=0.05)
    # less fresh air to heat: less heater power
    assert _zone(r[200], "Z3").heater_power_kw == pytest.approx(_zone(r[3], "Z3").heater_power_kw * cap / 750.0, rel=0.02)


def test_zone_vapour_is_stable_at_the_smallest_exhaust_flow():
    """The vapour lowers the evaporation that makes it: at 50 m3/h a quasi-steady zone air would swing
    between steps (the explicit feedback's gain exceeds 1); the well-mixed volume does not."""
    player = _player([{"kind": "exhaust_fault", "at_s": 0, "zone": "Z3", "max_fresh_air_m3_h": 50.0}])
    c3 = np.array([_zone(x, "Z3").solvent_concentration_g_m3 for x in _run(player, 600)])
    steps = np.diff(c3[300:])
    assert np.max(np.abs(steps)) < 0.005 * c3[-1]  # settled: changes between steps well below 1 %
    assert np.all(steps[:-1] * steps[1:] >= -(0.001 * c3[-1]) ** 2)  # and no step-to-step swinging


def test_sensor_dropout_and_camera_flicker_windows():
    player = _player([
        {"kind": "sensor_dropout", "at_s": 3, "duration_s": 4, "sensor": "Z2"},
        {"kind": "sensor_dropout", "at_s": 5, "sensor": "camera"},
        {"kind": "camera_flicker", "at_s": 2, "duration_s": 3, "gain": 1.8},
    ])
    up, cam, gain = [], [], []
    for _ in range(10):
        player.step(1.0)
        up.append(player.publishes("Z2"))
        cam.append(player.publishes("camera"))
        gain.append(player.camera_gain())
        assert player.publishes("Z1") and player.publishes("line")
    # readings at t = 1..10 s; the Z2 sensors are silent for t in [3, 7), the camera from t = 5 s
    assert up == [True, True, False, False, False, False, True, True, True, True]
    assert cam == [True] * 4 + [False] * 6
    assert gain == [1.0, 1.8, 1.8, 1.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_bubbles_event_dataclass_is_frozen_and_bounded():
    ev = Bubbles(at_s=1.0, fraction=0.2, radius_um=5.0)
    assert ev.end_s == math.inf and ev.active(1.0) and not ev.active(0.5)
    with pytest.raises(sim_line.ConfigError, match=r"fraction: expected a number > 0\.0, found 0\.0"):
        Bubbles(at_s=1.0, fraction=0.0, radius_um=5.0)
