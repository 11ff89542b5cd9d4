"""The mudcrack command line: run folders, and one clear line with exit 2 on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from controller._cli import main


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning")
def test_demo_runs_both_loops_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "1", "--scenario", "none"]) == 0
    text = capsys.readouterr().out
    assert "open loop    closed loop" in text and "in lockstep" in text and "embedded amqtt" in text
    assert (out / "report.md").is_file() and (out / "setpoints.png").stat().st_size > 10_000
    assert len(pd.read_csv(out / "timeseries_closed.csv")) == 12  # one row per 5 s of a 60 s run
    import gc

    gc.collect()  # amqtt leftovers (see test_demo.py)


def test_demo_names_a_missing_scenario_file(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--scenario", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "mudcrack: error" in err


def test_simulate_line_writes_run_folder(tmp_path, capsys):
    out = tmp_path / "line"
    assert main(["simulate", "--out", str(out), "--minutes", "1"]) == 0
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


def _render_sequence(folder, times, *, um_per_px=4.0, shape=(256, 256)):
    import cv2

    import sim_line

    run = sim_line.simulate_lab(300, seed=0, duration_min=60)
    folder.mkdir()
    for i, t in enumerate(times):
        frame = sim_line.render_surface(run.snapshot_at(t), shape_px=shape, um_per_px=um_per_px, seed=2)
        cv2.imwrite(str(folder / f"frame_{i}.png"), frame.image)
    return run


def test_dic_writes_points_and_maps(tmp_path, capsys):
    import cv2

    from vision._speckle import render, speckles

    sp = speckles((160, 160), seed=1)
    ref, _, _ = render((160, 160), sp)
    cur, _, _ = render((160, 160), sp, shift=(0.4, -0.7))
    for name, img in (("ref.png", ref), ("cur.png", cur)):
        cv2.imwrite(str(tmp_path / name), np.clip(img * 65535 / 1.5, 0, 65535).astype(np.uint16))
    out = tmp_path / "dic"
    assert main(["dic", str(tmp_path / "ref.png"), str(tmp_path / "cur.png"), "--out", str(out), "--step", "10"]) == 0
    df = pd.read_csv(out / "points.csv")
    ok = df[df.converged]
    # 16-bit quantisation only: the median matches the imposed shift to ~0.01 px
    assert ok.u_row_px.median() == pytest.approx(0.4, abs=0.01)
    assert ok.u_col_px.median() == pytest.approx(-0.7, abs=0.01)
    assert {"zncc", "e1", "exx"} <= set(df.columns)
    for png in ("displacement_magnitude.png", "zncc.png", "strain_e1.png"):
        assert (out / png).stat().st_size > 5_000


def test_dic_mismatched_frames_one_line(tmp_path, capsys):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((64, 64), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((64, 80), np.uint8))
    assert main(["dic", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "b.png: expected the shape" in err and len(err.splitlines()) == 1


def test_eval_surface_finds_onset_before_visible_crack(tmp_path, capsys):
    import json

    times = np.arange(36.0, 45.01, 0.5)
    _render_sequence(tmp_path / "frames", times, um_per_px=5.0, shape=(384, 384))
    np.savetxt(tmp_path / "times.txt", times)
    out = tmp_path / "eval"
    assert main(["eval", "surface", str(tmp_path / "frames"), "--times", str(tmp_path / "times.txt"),
                 "--out", str(out), "--um-per-px", "5"]) == 0
    assert "onset declared" in capsys.readouterr().out
    df = pd.read_csv(out / "metrics.csv")
    assert len(df) == len(times) and {"t_min", "surface_cif", "onset_score"} <= set(df.columns)
    onset = json.loads((out / "onset.json").read_text())
    # physics onset at ~40.1 min; the detector must call it before the segmentation sees a gap
    assert onset["onset_time_min"] is not None and onset["first_visible_crack_min"] is not None
    assert onset["lead_time_min"] > 0
    assert onset["n_sites"] > 0 and len(pd.read_csv(out / "sites.csv")) == onset["n_sites"]
    assert (out / "summary.png").exists() and (out / "report.md").exists()


def test_eval_surface_bad_input_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["eval", "surface", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no image files" in err and len(err.splitlines()) == 1
    assert main(["eval", "surface", str(tmp_path / "empty"), "--fps", "2", "--times", "t.txt", "--out", "o"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_public_api_resolves_every_name():
    import controller

    assert all(getattr(controller, name) is not None for name in controller.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        controller.nope  # noqa: B018
