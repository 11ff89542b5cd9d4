"""Loading and validating the shipped YAML configs; error messages `FILE: key.path: expected ..., found ...`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

import sim_line
from sim_line._config import default_config_dir

CONFIGS = default_config_dir()
LAB = CONFIGS / "lab_ambient.yaml"
LINE = CONFIGS / "line.yaml"
SLURRY = CONFIGS / "slurry" / "nmc622_nmp.yaml"


def _copy(tmp_path: Path, src: Path, edit, name: str | None = None) -> Path:
    """A copy of ``src`` with ``edit(data)`` applied and ``slurry:`` pointing to the shipped file."""
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    if "slurry" in data and src != SLURRY:
        data["slurry"] = str(SLURRY.resolve())
    edit(data)
    out = tmp_path / (name or f"broken_{src.name}")
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def _msg(path: Path, body: str) -> str:
    """Regex for ``FILE: <body>`` (body is a regex)."""
    return "^" + re.escape(str(path)) + ": " + body


# ---------------------------------------------------------------- shipped files
def test_shipped_lab_config_loads():
    lab, slurry = sim_line.load_lab()
    assert isinstance(lab, sim_line.LabConfig)
    assert isinstance(slurry, sim_line.SlurryConfig)
    assert lab.pin_diameter_mm == 4.0
    assert slurry.solids_mass_fraction == 0.45
    # explicit path gives the same objects
    assert sim_line.load_lab(LAB) == (lab, slurry)


def test_shipped_line_config_loads():
    line, slurry = sim_line.load_line()
    assert isinstance(line, sim_line.LineConfig)
    assert [z.name for z in line.dryer.zones] == ["Z1", "Z2", "Z3", "Z4"]
    assert sim_line.load_line(LINE) == (line, slurry)


def test_shipped_slurry_matches_science_numbers():
    slurry = sim_line.load_slurry(SLURRY)
    # science.md: solids density ~3.77 g/cm3, wet solids volume fraction ~0.18
    assert slurry.solids_density_kg_m3 == pytest.approx(3770, rel=0.01)
    assert slurry.solids_volume_fraction == pytest.approx(0.18, abs=0.005)


def test_copy_without_changes_loads(tmp_path):
    path = _copy(tmp_path, LAB, lambda d: None)
    lab, slurry = sim_line.load_lab(path)
    ref_lab, ref_slurry = sim_line.load_lab()
    assert slurry == ref_slurry
    assert lab.slurry.resolve() == ref_lab.slurry.resolve()
    assert dataclasses.replace(lab, slurry=ref_lab.slurry) == ref_lab


# ---------------------------------------------------------------- error messages
def test_unknown_key_is_named(tmp_path):
    path = _copy(tmp_path, LAB, lambda d: d.update(air_temprature_c=25.0))
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"air_temprature_c: unknown key")):
        sim_line.load_lab(path)


def test_unknown_nested_key_is_named(tmp_path):
    path = _copy(tmp_path, LINE, lambda d: d["dryer"]["actuators"].update(speed=1.0))
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"dryer\.actuators\.speed: unknown key")):
        sim_line.load_line(path)


def test_missing_required_key(tmp_path):
    path = _copy(tmp_path, LAB, lambda d: d.pop("mass_transfer_m_s"))
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"mass_transfer_m_s: required key is missing")):
        sim_line.load_lab(path)


def test_missing_required_section(tmp_path):
    path = _copy(tmp_path, LINE, lambda d: d.pop("camera"))
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"camera: required key is missing")):
        sim_line.load_line(path)


def test_wrong_type_string_for_number(tmp_path):
    path = _copy(tmp_path, LAB, lambda d: d.update(heat_transfer_w_m2k="twenty-five"))
    with pytest.raises(
        sim_line.ConfigError, match=_msg(path, r"heat_transfer_w_m2k: expected a number, found 'twenty-five' \(str\)")
    ):
        sim_line.load_lab(path)


def test_negative_mass_transfer(tmp_path):
    path = _copy(tmp_path, LAB, lambda d: d.update(mass_transfer_m_s=-0.01))
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"mass_transfer_m_s: expected a number > 0\.0, found -0\.01")):
        sim_line.load_lab(path)


def test_zone_temperature_outside_its_limits(tmp_path):
    def edit(d):
        d["dryer"]["zones"][2]["temperature_c"] = 140.0  # limits [25, 130]

    path = _copy(tmp_path, LINE, edit)
    with pytest.raises(
        sim_line.ConfigError,
        match=_msg(path, r"dryer\.zones\[2\]\.temperature_c: expected a value within temperature_limits_c \[25\.0, 130\.0\], found 140\.0"),
    ):
        sim_line.load_line(path)


def test_wrong_nested_value_names_the_path(tmp_path):
    def edit(d):
        d["dryer"]["zones"][1]["length_m"] = "long"

    path = _copy(tmp_path, LINE, edit)
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"dryer\.zones\[1\]\.length_m: expected a number, found 'long'")):
        sim_line.load_line(path)


def test_nested_out_of_range_names_the_path(tmp_path):
    def edit(d):
        d["dryer"]["zones"][1]["length_m"] = 0.0

    path = _copy(tmp_path, LINE, edit)
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"dryer\.zones\[1\]\.length_m: expected a number > 0\.0, found 0\.0")):
        sim_line.load_line(path)


def test_error_in_slurry_file_names_the_slurry_file(tmp_path):
    bad_slurry = _copy(tmp_path, SLURRY, lambda d: d["solvent"].update(surface_tension_mn_m_at_25c="high"), "slurry.yaml")
    path = _copy(tmp_path, LAB, lambda d: d.update(slurry=str(bad_slurry)))
    with pytest.raises(
        sim_line.ConfigError, match=_msg(bad_slurry, r"solvent\.surface_tension_mn_m_at_25c: expected a number, found 'high'")
    ):
        sim_line.load_lab(path)


def test_file_not_found(tmp_path):
    path = tmp_path / "does_not_exist.yaml"
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"cannot read the configuration file")):
        sim_line.load_lab(path)


def test_slurry_file_not_found(tmp_path):
    missing = tmp_path / "nowhere" / "slurry.yaml"
    path = _copy(tmp_path, LAB, lambda d: d.update(slurry=str(missing)))
    with pytest.raises(sim_line.ConfigError, match=_msg(missing, r"cannot read the configuration file")):
        sim_line.load_lab(path)


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "lab_bad_syntax.yaml"
    path.write_text("slurry: x.yaml\nair_temperature_c: [25.0\nbeam_heating_c: 2.0\n", encoding="utf-8")
    with pytest.raises(sim_line.ConfigError, match=_msg(path, r"not valid YAML at line \d+")) as info:
        sim_line.load_lab(path)
    assert path.name in str(info.value)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d.update(pin_diameter_mm="4 mm"), "pin_diameter_mm"),
        (lambda d: d.update(beam_heating_c=50.0), "beam_heating_c"),
        (lambda d: d.pop("air_temperature_c"), "air_temperature_c"),
        (lambda d: d.update(bogus=1), "bogus"),
    ],
)
def test_message_contains_file_name_and_key(tmp_path, edit, key):
    path = _copy(tmp_path, LAB, edit)
    with pytest.raises(sim_line.ConfigError) as info:
        sim_line.load_lab(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {key}: ")
    assert path.name in text
