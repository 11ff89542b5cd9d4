"""CLI tests of ``mudcrack dvc`` and ``mudcrack eval ct`` on real volume files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import sim_line
from controller._cli import main
from tomography import save_volume
from tomography._phantom import add_noise, particles, render


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A 300 um lab sample scanned every minute around its onset, as zarr and TIFF."""
    folder = tmp_path_factory.mktemp("scans")
    series = sim_line.ct_scan_series(300, seed=0, interval_min=1.0, before_min=2.0, after_min=1.0)
    paths = []
    for i, (t, r) in enumerate(zip(series.times_min, series.renders)):
        fmt = "tiff" if i == 0 else "zarr"
        path = folder / f"scan_{i:02d}.{'tif' if fmt == 'tiff' else 'zarr'}"
        save_volume(r.volume, path, voxel_um=r.voxel_um, format=fmt)
        paths.append(path)
    (folder / "times.csv").write_text("t_min\n" + "\n".join(f"{t:g}" for t in series.times_min) + "\n")
    return folder, paths, series


def test_eval_ct_writes_series_and_predicts_before_segmentation(scans, tmp_path, capsys):
    folder, paths, series = scans
    out = tmp_path / "ct"
    argv = ["eval", "ct", *map(str, paths), "--out", str(out), "--times", str(folder / "times.csv")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "onset declared" in text
    df = pd.read_csv(out / "timeseries.csv")
    assert list(df.t_min) == list(series.times_min)
    truth = [r.labels for r in series.renders]
    # the first crack exists in the last scan only; CIF and height follow the ground truth
    assert df.n_cracks.iloc[:-1].eq(0).all() and df.n_cracks.iloc[-1] > 0
    last = series.run.snapshot_at(float(series.times_min[-1]))
    assert df.median_height_um.iloc[-1] == pytest.approx(last.solid_thickness_um, abs=2 * series.voxel_um)
    crack_frac = np.mean(truth[-1] == sim_line.VolumeLabel.CRACK)
    assert df.cif_3d.iloc[-1] > 0.5 * crack_frac
    onset = json.loads((out / "onset.json").read_text())
    assert onset["onset_time_min"] is not None
    assert onset["lead_time_min"] >= 1.0
    sites = pd.read_csv(out / "sites.csv")
    assert len(sites) >= 1 and {"z_vox", "y_vox", "x_vox", "y_um"} <= set(sites.columns)
    prof = pd.read_csv(out / "profiles.csv")
    assert set(prof.columns) >= {"t_min", "z_frac", "cif_2d", "porosity"}
    for name in ("summary.png", "report.md", "dvc_scan001.png"):
        assert (out / name).stat().st_size > 1000 or name == "report.md"


def test_dvc_writes_points_and_maps(tmp_path, capsys):
    shape = (48, 64, 64)
    parts = particles(shape, seed=4, margin=16.0)
    ref = add_noise(render(shape, parts)[0], 0.02, seed=1).astype(np.float32)
    cur = add_noise(render(shape, parts, shift=(0.5, -1.25, 2.0))[0], 0.02, seed=2).astype(np.float32)
    save_volume(ref, tmp_path / "ref.h5", voxel_um=1.3)
    save_volume(cur, tmp_path / "cur.h5", voxel_um=1.3)
    out = tmp_path / "dvc"
    assert main(["dvc", str(tmp_path / "ref.h5"), str(tmp_path / "cur.h5"), "--out", str(out), "--step", "8"]) == 0
    assert "converged" in capsys.readouterr().out
    df = pd.read_csv(out / "points.csv")
    ok = df.converged
    assert ok.mean() > 0.9
    assert np.allclose(df.loc[ok, ["u_z_vox", "u_y_vox", "u_x_vox"]].to_numpy(), (0.5, -1.25, 2.0), atol=0.02)
    assert np.allclose(df.loc[ok, "u_x_um"], 2.0 * 1.3, atol=0.03)
    assert np.abs(df.loc[ok, ["r_z_vox", "r_y_vox", "r_x_vox"]].to_numpy()).max() < 0.02
    assert (out / "slice_maps.png").stat().st_size > 1000


@pytest.mark.parametrize("argv, needle", [
    (["eval", "ct", "nope.zarr", "other.zarr", "--out", "o"], "no such file or folder"),
    (["dvc", "a.zarr", "--out", "o"], "the following arguments are required"),
    (["eval", "ct", "x", "--out", "o"], "at least 2 scans"),
])
def test_ct_bad_arguments_one_line(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_eval_ct_bad_times_and_missing_voxel(scans, tmp_path, capsys):
    folder, paths, _ = scans
    bad = tmp_path / "times.txt"
    bad.write_text("1\n2\n")
    assert main(["eval", "ct", *map(str, paths), "--out", str(tmp_path / "o"), "--times", str(bad)]) == 2
    assert "expected 4 times" in capsys.readouterr().err
    raw = tmp_path / "novox.zarr"
    save_volume(np.zeros((8, 8, 8), np.uint16), raw)
    assert main(["dvc", str(raw), str(raw), "--out", str(tmp_path / "o2")]) == 2
    assert "voxel" in capsys.readouterr().err
