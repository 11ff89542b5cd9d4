"""Line mode: the virtual coating line (mass balance, steady fill, actuators, recipes)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import sim_line
from sim_line import ZoneSetpoint

CFG, SLURRY = sim_line.load_line()
ZONES = CFG.dryer.zones
ACT = CFG.dryer.actuators
LIMIT_G_M2 = CFG.exit_residual_solvent_limit_g_m2  # 1 g/m2 (line.yaml)
SPACING = CFG.simulation.parcel_spacing_m
AMBIENT_C = CFG.ambient_temperature_c
# time for coating laid now to leave the line (coater -> end of post-dryer) at the set speed
TRAVERSE_S = CFG.line_length_m / (CFG.web.speed_m_min / 60.0)
# wet NMP load per um of wet film: (1 - solids volume fraction) * rho  (science.md: 252 g/m2 at 300 um)
LOAD_PER_UM = (1.0 - SLURRY.solids_volume_fraction) * SLURRY.solvent.density_kg_m3 * 1e-3
# parcel-to-parcel scatter of the solvent load from the coater noise (1 um wet), g/m2
NOISE_G_M2 = CFG.coater.wet_thickness_noise_um * LOAD_PER_UM


def _setpoints(line: sim_line.Line) -> dict[str, tuple[float, float, float]]:
    return {z.name: (z.temperature_setpoint_c, z.airflow_setpoint_m3_h, z.fresh_air_setpoint_m3_h) for z in line.readings().zones}


def _zone(readings: sim_line.LineReadings, name: str) -> sim_line.ZoneReading:
    return next(z for z in readings.zones if z.name == name)


def _first_dry_position(line: sim_line.Line) -> float:
    p = line.parcels()
    return float(p.loc[p["solvent_g_m2"] <= 0.0, "position_m"].min())


# ------------------------------------------------------------------ mass balance
def test_parcel_solvent_falls_monotonically_and_exit_is_dry():
    line = sim_line.Line(seed=0)
    line.step(1.0)
    p = line.parcels()
    pid = int(p.loc[p["position_m"].idxmin(), "parcel_id"])  # the newest coating
    history = []
    for _ in range(int(TRAVERSE_S * 1.2)):
        line.step(1.0)
        p = line.parcels()
        row = p[p["parcel_id"] == pid]
        if row.empty:
            break
        history.append(float(row["solvent_g_m2"].iloc[0]))
    exited = line.exited()
    out = exited[exited["parcel_id"] == pid]
    assert len(out) == 1, "the parcel should have left the line"
    h = np.array(history)
    # starts at the wet load of the coater's wet thickness (+- 4 sigma of the coater noise)
    assert h[0] == pytest.approx(CFG.coater.wet_thickness_um * LOAD_PER_UM, abs=4 * NOISE_G_M2 + 2.0)
    # solvent only evaporates: never increases along the web
    assert np.all(np.diff(h) <= 1e-9), np.diff(h).max()
    assert float(out["residual_solvent_g_m2"].iloc[0]) < LIMIT_G_M2
    assert h[-1] < LIMIT_G_M2


# ------------------------------------------------------------------ warm fill
def test_warm_fill_is_close_to_steady_state():
    line = sim_line.Line(seed=0)
    r1 = line.step(1.0)  # one parcel spacing at 3 m/min: same parcel grid as r60
    front1 = _first_dry_position(line)
    r60 = line.step(59.0)
    front60 = _first_dry_position(line)
    # exit readings and zone readings available and unchanged from the first second
    assert r1.exit_residual_solvent_g_m2 < LIMIT_G_M2 and r60.exit_residual_solvent_g_m2 < LIMIT_G_M2
    assert r1.exit_cif_3d == pytest.approx(r60.exit_cif_3d, rel=0.15)  # +-3 % toughness scatter per parcel
    for z1, z60, cfg in zip(r1.zones, r60.zones, ZONES):
        assert z1.temperature_c == pytest.approx(cfg.temperature_c) == z60.temperature_c
        assert z1.airflow_m3_h == pytest.approx(cfg.airflow_m3_h) == z60.airflow_m3_h
        assert z1.solvent_concentration_g_m3 == pytest.approx(z60.solvent_concentration_g_m3, rel=0.25)
    grid = np.arange(SPACING, CFG.line_length_m - SPACING, SPACING)
    p1 = np.interp(grid, r1.position_m, r1.residual_solvent_g_m2)
    p60 = np.interp(grid, r60.position_m, r60.residual_solvent_g_m2)
    # LOOSENED (reported): the fill dries without the zones' recirculated solvent vapour, so the
    # drying front drifts downstream (+0.15 m in 60 s, +0.35 m by 4 min). Tolerance: 5 parcels
    # and a mean profile change of 5 % of the wet load.
    assert abs(front60 - front1) <= 5 * SPACING + 1e-9
    assert np.mean(np.abs(p60 - p1)) < 0.05 * CFG.coater.wet_thickness_um * LOAD_PER_UM


def test_warm_fill_matches_settled_line():
    # strict form: t = 0+ equals the settled line (10 min) within the coater noise
    line = sim_line.Line(seed=0)
    r1 = line.step(1.0)
    front1 = _first_dry_position(line)
    r600 = line.step(599.0)
    front600 = _first_dry_position(line)
    grid = np.arange(SPACING, CFG.line_length_m - SPACING, SPACING)
    p1 = np.interp(grid, r1.position_m, r1.residual_solvent_g_m2)
    p600 = np.interp(grid, r600.position_m, r600.residual_solvent_g_m2)
    assert abs(front600 - front1) <= 2 * SPACING + 1e-9
    assert np.mean(np.abs(p600 - p1)) < 2 * NOISE_G_M2


# ------------------------------------------------------------------ actuators
def test_zone_temperature_follows_setpoint_with_lag_and_rate_limit():
    line = sim_line.Line(seed=0)
    z1 = ZONES[0]
    start = z1.temperature_c
    target = start + 30.0
    assert target <= z1.temperature_limits_c[1]
    r = line.step(10.0, {"Z1": ZoneSetpoint(target, z1.airflow_m3_h)})
    change = _zone(r, "Z1").temperature_c - start
    assert _zone(r, "Z1").temperature_setpoint_c == target
    assert 0.0 < change <= ACT.temperature_rate_limit_c_per_s * 10.0 + 1e-9
    r = line.step(590.0)
    assert _zone(r, "Z1").temperature_c == pytest.approx(target, abs=1.0)
    # other zones untouched
    for z, cfg in zip(r.zones[1:], ZONES[1:]):
        assert z.temperature_c == pytest.approx(cfg.temperature_c)


def test_rate_limit_binds_on_a_large_step():
    line = sim_line.Line(seed=0)
    z1 = ZONES[0]
    lo, hi = z1.temperature_limits_c
    r = line.step(10.0, {"Z1": ZoneSetpoint(hi, z1.airflow_m3_h)})
    # a first-order lag alone would move (hi - T0)(1 - e^-10/tau) > rate * 10 s here
    first_order = (hi - z1.temperature_c) * (1.0 - math.exp(-10.0 / ACT.temperature_time_constant_s))
    limit = ACT.temperature_rate_limit_c_per_s * 10.0
    assert first_order > limit
    assert _zone(r, "Z1").temperature_c - z1.temperature_c == pytest.approx(limit, rel=1e-9)


def test_small_step_is_a_first_order_lag():
    line = sim_line.Line(seed=0)
    z1 = ZONES[0]
    tau = ACT.temperature_time_constant_s
    r = line.step(tau, {"Z1": ZoneSetpoint(z1.temperature_c + 5.0, z1.airflow_m3_h)})
    # rate limit not active for a 5 C step: 63 % of the step after one time constant
    assert _zone(r, "Z1").temperature_c - z1.temperature_c == pytest.approx(5.0 * (1 - math.exp(-1.0)), rel=1e-6)


def test_more_airflow_more_heat_transfer():
    line = sim_line.Line(seed=0)
    z2 = ZONES[1]
    before = _zone(line.readings(), "Z2").heat_transfer_w_m2k
    q_new = z2.airflow_limits_m3_h[1]
    r = line.step(60.0, {"Z2": ZoneSetpoint(z2.temperature_c, q_new)})
    after = _zone(r, "Z2")
    assert after.airflow_m3_h == pytest.approx(q_new, rel=1e-3)
    assert after.heat_transfer_w_m2k > before
    # Martin: h ~ Q^0.5 (heat_transfer_exponent)
    d = CFG.dryer
    assert after.heat_transfer_w_m2k == pytest.approx(d.heat_transfer_ref_w_m2k * (after.airflow_m3_h / d.airflow_ref_m3_h) ** d.heat_transfer_exponent)
    r = line.step(60.0, {"Z2": ZoneSetpoint(z2.temperature_c, z2.airflow_limits_m3_h[0])})
    assert _zone(r, "Z2").heat_transfer_w_m2k < before


def test_exhaust_dilutes_the_zone_vapour_and_costs_heater_power():
    """Zone vapour = evaporation / fresh air (well mixed); the fresh air is heated from ambient."""
    line = sim_line.Line(seed=0)
    z3 = ZONES[2]
    r0 = _zone(line.readings(), "Z3")
    assert r0.fresh_air_m3_h == z3.fresh_air_m3_h == r0.fresh_air_setpoint_m3_h
    # the solvent mass balance: concentration x fresh air = what the zone's parcels evaporate
    p = line.parcels()
    inside = (p["position_m"] >= 6.0) & (p["position_m"] < 8.5)
    evaporated_g_s = float(p.loc[inside, "evaporation_g_m2_s"].sum()) * SPACING * CFG.web.width_m
    assert r0.solvent_concentration_g_m3 * r0.fresh_air_m3_h / 3600.0 == pytest.approx(evaporated_g_s, rel=0.05)
    # the heater heats the fresh air from ambient: rho cp Q dT
    rho = 101_325.0 * 0.028_96 / (8.314_462_618 * (z3.temperature_c + 273.15))
    expected_kw = rho * 1006.0 * z3.fresh_air_m3_h / 3600.0 * (z3.temperature_c - AMBIENT_C) / 1e3
    assert r0.heater_power_kw == pytest.approx(expected_kw, rel=0.01)
    # twice the fresh air: half the vapour (the evaporation rises a little: drier air), twice the power;
    # the exhaust follows its own lag and rate limit
    r = line.step(2.0, {"Z3": ZoneSetpoint(z3.temperature_c, z3.airflow_m3_h, 2.0 * z3.fresh_air_m3_h)})
    assert _zone(r, "Z3").fresh_air_m3_h - z3.fresh_air_m3_h <= ACT.fresh_air_rate_limit_m3_h_per_s * 2.0 + 1e-9
    r = line.step(60.0)
    after = _zone(r, "Z3")
    assert after.fresh_air_m3_h == pytest.approx(2.0 * z3.fresh_air_m3_h, rel=1e-3)
    assert after.airflow_m3_h == pytest.approx(z3.airflow_m3_h) and after.heat_transfer_w_m2k == r0.heat_transfer_w_m2k
    assert 0.45 * r0.solvent_concentration_g_m3 < after.solvent_concentration_g_m3 < 0.6 * r0.solvent_concentration_g_m3
    assert after.heater_power_kw == pytest.approx(2.0 * r0.heater_power_kw, rel=0.01)
    # a set-point without fresh air keeps the exhaust where it is
    r = line.step(10.0, {"Z3": {"temperature_c": z3.temperature_c, "airflow_m3_h": z3.airflow_m3_h}})
    assert _zone(r, "Z3").fresh_air_setpoint_m3_h == 2.0 * z3.fresh_air_m3_h


def test_removed_fresh_air_fraction_key_names_its_replacement(tmp_path):
    import yaml

    data = yaml.safe_load((sim_line._config.default_config_dir() / "line.yaml").read_text())
    data["slurry"] = str(sim_line._config.default_config_dir() / data["slurry"])
    data["dryer"]["fresh_air_fraction"] = 0.3
    path = tmp_path / "old_line.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(sim_line.ConfigError, match=r"dryer\.fresh_air_fraction: no longer supported; .*zones\[\]\.fresh_air_m3_h"):
        sim_line.load_line(path)


def test_hotter_zones_dry_earlier():
    base = sim_line.Line(seed=0)
    base.step(TRAVERSE_S + 60.0)
    hot = sim_line.Line(seed=0)
    sp = {z.name: ZoneSetpoint(min(z.temperature_c + 20.0, z.temperature_limits_c[1]), z.airflow_m3_h) for z in ZONES[1:3]}
    hot.step(TRAVERSE_S + 60.0, sp)
    assert _first_dry_position(hot) < _first_dry_position(base) - SPACING


# ------------------------------------------------------------------ set-point validation
@pytest.mark.parametrize(
    "bad, match",
    [
        ({"Z9": ZoneSetpoint(60.0, 1000.0)}, r"unknown zone 'Z9'"),
        ({"Z1": ZoneSetpoint(200.0, 1000.0)}, r"setpoints\.Z1\.temperature_c: expected within \[25\.0, 130\.0\], found 200\.0"),
        ({"Z2": ZoneSetpoint(60.0, 9000.0)}, r"setpoints\.Z2\.airflow_m3_h: expected within .*found 9000\.0"),
        ({"Z2": ZoneSetpoint(60.0, 1500.0, 10.0)}, r"setpoints\.Z2\.fresh_air_m3_h: expected within \[50\.0, 1500\.0\], found 10\.0"),
        ({"Z3": ZoneSetpoint(float("nan"), 1000.0)}, r"setpoints\.Z3\.temperature_c"),
        ({"web_speed_m_min": 50.0}, r"setpoints\.web_speed_m_min: expected within .*found 50\.0"),
        # a valid change first, then a bad one: nothing of it may be applied
        ({"Z1": ZoneSetpoint(80.0, 2000.0), "web_speed_m_min": 5.0, "Z4": ZoneSetpoint(10.0, 1000.0)}, r"setpoints\.Z4\.temperature_c"),
    ],
)
def test_step_rejects_bad_setpoints_and_applies_nothing(bad, match):
    line = sim_line.Line(seed=0)
    ref = sim_line.Line(seed=0)
    line.step(5.0)
    ref.step(5.0)
    before = _setpoints(line)
    t = line.t_s
    with pytest.raises(ValueError, match=match):
        line.step(5.0, bad)
    assert line.t_s == t
    assert _setpoints(line) == before
    # the line goes on exactly as one that never saw the bad request
    a, b = line.step(20.0), ref.step(20.0)
    assert a.as_dict() == b.as_dict()
    pd.testing.assert_frame_equal(line.parcels(), ref.parcels())


# ------------------------------------------------------------------ coater
def test_thicker_coating_leaves_wetter_or_more_cracked():
    base = sim_line.Line(seed=0)
    thick = sim_line.Line(seed=0)
    thick.set_wet_thickness(CFG.coater.wet_thickness_um * 1.4)
    # run until the new coating has reached the exit (plus a margin)
    rb, rt = base.step(TRAVERSE_S + 60.0), thick.step(TRAVERSE_S + 60.0)
    assert rt.exit_residual_solvent_g_m2 > rb.exit_residual_solvent_g_m2 + LIMIT_G_M2 or rt.exit_cif_3d > rb.exit_cif_3d
    e = thick.exited()
    assert e["dry_thickness_um"].iloc[-1] > base.exited()["dry_thickness_um"].iloc[-1]


def test_set_wet_thickness_rejects_bad_values():
    line = sim_line.Line(seed=0)
    for bad in (0.0, -5.0, float("nan"), 5000.0):
        with pytest.raises(ValueError, match="wet_thickness_um"):
            line.set_wet_thickness(bad)


# ------------------------------------------------------------------ recipes
def test_default_recipe_cracks():
    line = sim_line.Line(seed=0)
    line.step(TRAVERSE_S + 60.0)
    e = line.exited()
    new = e[e["t_s"] > TRAVERSE_S]  # coated after the start
    assert len(new) > 10
    assert (new["cif_3d"] > 0.05).all()
    assert (new["residual_solvent_g_m2"] < LIMIT_G_M2).all()


GENTLE_T_C = 55.0
GENTLE_Q_M3_H = 1000.0  # below the 1500 m3/h reference
GENTLE_SPEED_M_MIN = 0.5  # the lowest speed allowed; at ~45 C or at 1 m/min nothing within the limits dries


@pytest.fixture(scope="module")
def gentle_line():
    """All zones 55 C / 1000 m3/h, web 0.5 m/min, run until the gentle coating has left the line."""
    line = sim_line.Line(seed=0)
    sp = {z.name: ZoneSetpoint(GENTLE_T_C, GENTLE_Q_M3_H) for z in ZONES}
    sp["web_speed_m_min"] = GENTLE_SPEED_M_MIN
    line.step(300.0, sp)  # actuators settle (5 time constants)
    t_change = line.t_s
    traverse = CFG.line_length_m / (GENTLE_SPEED_M_MIN / 60.0)
    line.step(traverse + 120.0)
    e = line.exited()
    return line, e[e["t_s"] > t_change + traverse]


def test_gentle_recipe_dries_slowly_and_does_not_crack_in_the_dryer(gentle_line):
    line, new = gentle_line
    assert len(new) > 5
    assert (new["residual_solvent_g_m2"] < LIMIT_G_M2).all()  # it dries
    p = line.parcels()
    # below the ~0.3 g/m2s crack-free window named in the slurry config
    assert p["evaporation_g_m2_s"].max() < 0.3
    in_dryer = p[p["position_m"] <= CFG.dryer.entry_m + CFG.dryer.length_m]
    assert (in_dryer["cif_3d"] == 0.0).all()


def test_gentle_recipe_exits_crack_free(gentle_line):
    _, new = gentle_line
    assert (new["cif_3d"] == 0.0).all()


# ------------------------------------------------------------------ determinism, camera
def test_line_is_deterministic_per_seed():
    a, b, c = sim_line.Line(seed=0), sim_line.Line(seed=0), sim_line.Line(seed=1)
    ra, rb, rc = a.step(30.0), b.step(30.0), c.step(30.0)
    assert ra.as_dict() == rb.as_dict()
    pd.testing.assert_frame_equal(a.parcels(), b.parcels())
    pd.testing.assert_frame_equal(a.exited(), b.exited())
    assert not a.parcels().equals(c.parcels())
    # only the scatter differs: the profiles stay within a few times the coater noise
    assert np.max(np.abs(ra.residual_solvent_g_m2 - rc.residual_solvent_g_m2)) < 10 * NOISE_G_M2 + 5.0
    assert a.camera_snapshot() == b.camera_snapshot()


def test_camera_snapshot():
    line = sim_line.Line(seed=0)
    line.step(5.0)
    snap = line.camera_snapshot()
    assert isinstance(snap, sim_line.FilmSnapshot)
    p = line.parcels()
    nearest = p.iloc[int(np.argmin(np.abs(p["position_m"] - CFG.camera.position_m)))]
    assert snap.solid_thickness_um == pytest.approx(nearest["solid_thickness_um"])
    assert snap.cif_3d == pytest.approx(nearest["cif_3d"])


# ------------------------------------------------------------------ crack precursor
PRECURSOR_BOUND_UM = 0.3  # a detector declares at ~0.25 px (1.25 um at the camera's 5 um/px): far below it


def test_gentle_recipe_shows_no_precursor(gentle_line):
    # the gentle parcels peak at ~93 % of their cracking stress (forecast < 1): no localisation;
    # in steady state the parcels on the web cover every stage of the drying
    line, _ = gentle_line
    p = line.parcels()
    assert p["precursor_opening_um"].max() < PRECURSOR_BOUND_UM
    assert line.camera_snapshot().precursor_opening_um < PRECURSOR_BOUND_UM


def test_default_recipe_precursor_leads_the_onset_along_the_web():
    # the opening grows e-fold per precursor_localisation_solvent_um of NMP: at ~4 g/m2 s in
    # zone 3 that is ~1 s of drying (0.04 m of web at 3 m/min) per e-fold before the onset
    line = sim_line.Line(seed=0)
    line.step(5.0)
    p = line.parcels()
    onset_m = p["crack_onset_position_m"].min()
    before = p[p["crack_onset_position_m"].isna() & (p["position_m"] < onset_m)]
    pre = before["precursor_opening_um"].to_numpy()
    assert pre[before["position_m"].to_numpy() >= onset_m - 0.1].max() > 0.5
    assert pre[before["position_m"].to_numpy() <= onset_m - 0.5].max() < 0.05
    cracked = p[p["crack_onset_position_m"].notna()]
    assert (cracked["precursor_opening_um"] == SLURRY.film.precursor_opening_at_onset_um).all()
