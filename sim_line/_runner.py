"""Run folders for the virtual line and lab samples: CSV time series, frames, volumes, plots.

This is an edge module (files, plots, progress); the physics and renderers it calls are
pure. Used by ``mudcrack simulate`` and ``mudcrack demo``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._config import load_lab, load_line
from ._lab import simulate_lab
from ._line import Line
from ._snapshot import FilmSnapshot
from ._surface import render_surface
from ._volume import render_volume

__all__ = ["RunSummary", "run_lab", "run_line"]

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RunSummary:
    """What a run wrote and its headline numbers."""

    out_dir: Path
    files: tuple[Path, ...]
    numbers: dict[str, float]
    text: str


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write the PNG image")


def _frame_png(path: Path, snap: FilmSnapshot, *, um_per_px: float, shape_px: tuple[int, int], origin_um=(0.0, 0.0)) -> None:
    frame = render_surface(snap, shape_px=shape_px, um_per_px=um_per_px, origin_um=origin_um, bit_depth=8)
    _write_png(path, frame.image)


def _volume_tiff(path: Path, snap: FilmSnapshot, *, shape: tuple[int, int, int]) -> Path:
    import tifffile

    vol = render_volume(snap, shape=shape)
    tifffile.imwrite(
        path,
        vol.volume,
        imagej=True,
        resolution=(1.0 / vol.voxel_um, 1.0 / vol.voxel_um),
        metadata={"spacing": vol.voxel_um, "unit": "um", "axes": "ZYX"},
    )
    labels = path.with_name(path.stem + "_labels.tif")
    tifffile.imwrite(labels, vol.labels, imagej=True, metadata={"axes": "ZYX"})
    return labels


def _finish(out: Path, files: list[Path], numbers: dict[str, float], text: str) -> RunSummary:
    """Write ``summary.txt`` and return the run summary."""
    (out / "summary.txt").write_text(text + "\n")
    files.append(out / "summary.txt")
    return RunSummary(out, tuple(files), numbers, text)


def _fmt(value: float, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}{unit}"


def run_lab(
    gap_um: float,
    out_dir: str | Path,
    *,
    config: str | Path | None = None,
    seed: int = 0,
    volume_shape: tuple[int, int, int] = (96, 128, 128),
    progress: Progress | None = None,
) -> RunSummary:
    """Simulate a lab pin sample and write its run folder.

    Writes ``timeseries.csv`` (`sim_line.LAB_COLUMNS`), ``events.json``, ``summary.png``
    (thickness, solvent, stress, CIF over time), surface frames ``surface_tXX.png`` and CT
    volumes ``volume_tXX.tif`` (+ labels) around the crack onset, ``summary.txt``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pair = load_lab(config)
    run = simulate_lab(gap_um, pair, seed=seed)
    df = run.frame
    a = df.attrs
    files = [out / "timeseries.csv", out / "events.json"]
    df.to_csv(files[0], index=False)
    files[1].write_text(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in a.items()}, indent=2))
    if progress:
        progress(1)
    onset = a["crack_onset_min"]
    anchor = onset if not math.isnan(onset) else a["consolidation_end_min"]
    times = [t for t in (anchor - 4.0, anchor - 1.0, anchor + 3.0, anchor + 20.0, float(df["t_min"].iloc[-1])) if 0 <= t <= df["t_min"].iloc[-1]]
    spacing = run.snapshots[-1].crack_spacing_um
    um_per_px = max(spacing * 4.0 / 512.0, 1.0)
    for t in times:
        snap = run.snapshot_at(t)
        p = out / f"surface_t{snap.t_min:05.1f}min.png"
        _frame_png(p, snap, um_per_px=um_per_px, shape_px=(512, 512))
        files.append(p)
        if progress:
            progress(1)
    for t in times[1::2] + [times[-1]]:
        snap = run.snapshot_at(t)
        p = out / f"volume_t{snap.t_min:05.1f}min.tif"
        files += [p, _volume_tiff(p, snap, shape=volume_shape)]
        if progress:
            progress(1)
    plt = _plt()
    fig, ax = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    ax[0].plot(df.t_min, df.solid_thickness_um, label="solid layer")
    ax[0].plot(df.t_min, df.total_thickness_um, label="solid + solvent")
    ax[0].set_ylabel("thickness (um)")
    ax[1].plot(df.t_min, df.capillary_stress_kpa, label="capillary stress")
    ax[1].plot(df.t_min, df.critical_stress_kpa, "--", label="cracking stress")
    ax[1].set_ylabel("stress (kPa)")
    ax[2].plot(df.t_min, 100 * df.cif_3d, label="3D CIF")
    ax[2].plot(df.t_min, 100 * df.cif_2d_top, label="2D CIF top")
    ax[2].plot(df.t_min, 100 * df.cif_2d_base, label="2D CIF base")
    ax[2].set_ylabel("CIF (%)")
    ax[2].set_xlabel("time since coating (min)")
    for axis in ax:
        for key, style in (("consolidation_end_min", ":"), ("crack_onset_min", "-.")):
            if not math.isnan(a[key]):
                axis.axvline(a[key], color="grey", ls=style)
        axis.legend(loc="best", fontsize=8)
    fig.suptitle(f"Lab sample, {gap_um:g} um gap (seed {seed})")
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=110)
    plt.close(fig)
    files.append(out / "summary.png")
    numbers = {k: a[k] for k in ("wet_thickness_um", "dry_thickness_um", "consolidation_end_min", "crack_onset_min", "dry_min", "cif_peak", "cif_peak_min", "crack_spacing_um")}
    text = "\n".join(
        [
            f"mudcrack lab sample: gap {gap_um:g} um, seed {seed}  ->  {out}",
            f"  wet / dry thickness     {_fmt(a['wet_thickness_um'], ' um')} / {_fmt(a['dry_thickness_um'], ' um')}",
            f"  consolidation ends      {_fmt(a['consolidation_end_min'], ' min')}",
            f"  crack onset             {_fmt(a['crack_onset_min'], ' min')}",
            f"  dry                     {_fmt(a['dry_min'], ' min')}",
            f"  peak 3D CIF             {_fmt(100 * a['cif_peak'], ' %')} (reached at {_fmt(a['cif_peak_min'], ' min')})",
            f"  crack spacing           {_fmt(a['crack_spacing_um'], ' um', 0)}",
            f"  files: {len(files) + 1} (timeseries.csv, summary.png, surface_*.png, volume_*.tif)",
        ]
    )
    return _finish(out, files, numbers, text)


def run_line(
    out_dir: str | Path,
    *,
    config: str | Path | None = None,
    minutes: float = 10.0,
    seed: int = 0,
    record_every_s: float = 5.0,
    frame_every_s: float = 60.0,
    progress: Progress | None = None,
) -> RunSummary:
    """Run the virtual line on its configured (fixed) recipe and write a run folder.

    Writes ``timeseries.csv`` (scalar sensor readings every ``record_every_s``),
    ``exited.csv`` (every parcel that left the line: residual solvent, CIF, onset
    position), ``profile.csv`` (parcel states along the web at the end), camera frames
    ``camera_tXXXXs.png``, ``summary.png`` and ``summary.txt``.
    """
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and 0 < minutes <= 24 * 60):
        raise ValueError(f"minutes: expected 0 < minutes <= 1440, found {minutes!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    line = Line(load_line(config), seed=seed)
    cam = line.config.camera
    files: list[Path] = []
    rows = [line.readings().as_dict()]
    n_steps = int(round(minutes * 60.0))
    next_frame = 0.0
    for k in range(1, n_steps + 1):
        readings = line.step(1.0)
        if k % max(1, int(record_every_s)) == 0:
            rows.append(readings.as_dict())
        if line.t_s >= next_frame:
            p = out / f"camera_t{int(line.t_s):05d}s.png"
            web_um = line.t_s * readings.web_speed_m_min / 60.0 * 1e6
            _frame_png(p, line.camera_snapshot(), um_per_px=cam.um_per_px, shape_px=cam.frame_shape_px, origin_um=(0.0, -web_um))
            files.append(p)
            next_frame += frame_every_s
        if progress:
            progress(1)
    ts = pd.DataFrame(rows)
    ts.to_csv(out / "timeseries.csv", index=False)
    exited = line.exited()
    exited.to_csv(out / "exited.csv", index=False)
    profile = line.parcels()
    profile.to_csv(out / "profile.csv", index=False)
    files += [out / "timeseries.csv", out / "exited.csv", out / "profile.csv"]

    plt = _plt()
    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    t_min = ts.t_s / 60.0
    for name in line.zone_names:
        ax[0, 0].plot(t_min, ts[f"{name}_temperature_c"], label=f"{name}")
    ax[0, 0].set_ylabel("zone air temperature (C)")
    ax[0, 0].set_xlabel("time (min)")
    ax[0, 0].legend(fontsize=8)
    if len(exited):
        ax[0, 1].plot(exited.t_s / 60.0, 100 * exited.cif_3d, label="3D CIF at exit (%)")
        ax[0, 1].plot(exited.t_s / 60.0, exited.residual_solvent_g_m2, label="residual NMP at exit (g/m2)")
    ax[0, 1].set_xlabel("time (min)")
    ax[0, 1].legend(fontsize=8)
    ax[1, 0].plot(profile.position_m, profile.solvent_g_m2, label="NMP (g/m2)")
    ax[1, 0].plot(profile.position_m, profile.film_temperature_c, label="film temperature (C)")
    ax[1, 0].plot(profile.position_m, 100 * profile.cif_3d, label="3D CIF (%)")
    for start, end in zip(line._zone_start_m, line._zone_end_m):
        ax[1, 0].axvspan(start, end, color="orange", alpha=0.08)
    ax[1, 0].axvline(cam.position_m, color="k", ls=":", label="camera")
    ax[1, 0].set_xlabel("position along the web (m)")
    ax[1, 0].legend(fontsize=8)
    ax[1, 1].plot(profile.position_m, profile.capillary_stress_kpa, label="capillary stress")
    ax[1, 1].plot(profile.position_m, profile.critical_stress_kpa, "--", label="cracking stress")
    ax[1, 1].set_xlabel("position along the web (m)")
    ax[1, 1].set_ylabel("kPa")
    ax[1, 1].legend(fontsize=8)
    fig.suptitle(f"Virtual line {line.config.line_id}: fixed recipe, {minutes:g} min, {readings.web_speed_m_min:.1f} m/min")
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)
    files.append(out / "summary.png")

    energy_kwh = float(sum((ts[f"{n}_heater_power_kw"] + ts[f"{n}_fan_power_kw"]).mean() for n in line.zone_names) * minutes / 60.0)
    cracked = float(exited.cracked.mean()) if len(exited) else math.nan
    onset_pos = float(exited.onset_position_m.median()) if len(exited) and exited.cracked.any() else math.nan
    numbers = {
        "parcels_exited": float(len(exited)),
        "cracked_fraction": cracked,
        "mean_exit_cif_3d": float(exited.cif_3d.mean()) if len(exited) else math.nan,
        "max_exit_residual_solvent_g_m2": float(exited.residual_solvent_g_m2.max()) if len(exited) else math.nan,
        "median_onset_position_m": onset_pos,
        "energy_kwh": energy_kwh,
    }
    limit = line.config.exit_residual_solvent_limit_g_m2
    dry_ok = numbers["max_exit_residual_solvent_g_m2"] <= limit
    text = "\n".join(
        [
            f"mudcrack virtual line {line.config.line_id}: {minutes:g} min on the fixed recipe, seed {seed}  ->  {out}",
            "  recipe (zone: air C / airflow m3/h): " + ", ".join(f"{z.name} {z.temperature_c:g}/{z.airflow_m3_h:g}" for z in line.config.dryer.zones),
            f"  web speed {readings.web_speed_m_min:.1f} m/min, wet thickness {line.config.coater.wet_thickness_um:g} um",
            f"  parcels out of the dryer   {len(exited)}",
            f"  cracked                    {_fmt(100 * cracked, ' %', 0)} of them, mean 3D CIF {_fmt(100 * numbers['mean_exit_cif_3d'], ' %')}",
            f"  cracks open at             {_fmt(onset_pos, ' m', 2)} along the web (camera at {cam.position_m:g} m)",
            f"  residual NMP at exit       max {_fmt(numbers['max_exit_residual_solvent_g_m2'], ' g/m2', 2)} (limit {limit:g}: {'dry' if dry_ok else 'NOT DRY'})",
            f"  dryer energy (heat + fans) {_fmt(energy_kwh, ' kWh', 2)}",
            f"  files: timeseries.csv, exited.csv, profile.csv, summary.png, {sum(p.name.startswith('camera_') for p in files)} camera frames",
        ]
    )
    return _finish(out, files, numbers, text)
