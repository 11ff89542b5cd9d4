"""The mudcrack command line: run folders, and one clear line with exit 2 on bad input."""

from __future__ import annotations

import pandas as pd
import pytest
import tifffile
import yaml

from controller._cli import main


def test_demo_writes_run_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "1"]) == 0
    text = capsys.readouterr().out
    assert "parcels out of the dryer" in text and "residual NMP at exit" in text
    ts = pd.read_csv(out / "timeseries.csv")
    # one row at t=0 plus one per 5 s of a 60 s run
    assert len(ts) == 13
    assert {"t_s", "web_speed_m_min", "Z1_temperature_c", "exit_cif_3d"} <= set(ts.columns)
    assert (out / "summary.png").stat().st_size > 10_000
    assert list(out.glob("camera_*.png"))
    assert len(pd.read_csv(out / "exited.csv")) > 0


def test_simulate_lab_writes_series_frames_volumes(tmp_path, capsys):
    out = tmp_path / "lab"
    assert main(["simulate", "--lab", "--gap", "300", "--out", str(out)]) == 0
    assert "crack onset" in capsys.readouterr().out
    df = pd.read_csv(out / "timeseries.csv")
    assert df["t_min"].iloc[-1] == pytest.approx(120.0)
    vols = sorted(p for p in out.glob("volume_*.tif") if "labels" not in p.name)
    assert vols
    vol = tifffile.imread(vols[0])
    assert vol.ndim == 3 and vol.dtype.kind == "u"
    assert len(list(out.glob("surface_*.png"))) >= 3


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "--out", "X", "--minutes", "-1"], "expected a positive number"),
        (["simulate", "--out", "X", "--gap", "300"], "--gap applies to lab samples only"),
        (["simulate", "--lab", "--out", "X"], "needs --gap"),
        (["simulate", "--config", "/nonexistent/line.yaml", "--out", "X"], "/nonexistent/line.yaml: cannot read"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_bad_config_names_file_and_key(tmp_path, capsys):
    from sim_line._config import default_config_dir

    data = yaml.safe_load((default_config_dir() / "line.yaml").read_text())
    data["slurry"] = str(default_config_dir() / "slurry" / "nmc622_nmp.yaml")
    data["dryer"]["zones"][1]["length_m"] = "long"
    bad = tmp_path / "bad_line.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["simulate", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "dryer.zones[1].length_m: expected a number" in err
    assert len(err.splitlines()) == 1


def test_check_reports_valid_config(capsys):
    from sim_line._config import default_config_dir

    assert main(["check", str(default_config_dir() / "lab_ambient.yaml")]) == 0
    assert "valid lab configuration" in capsys.readouterr().out
