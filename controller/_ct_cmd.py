"""``mudcrack dvc`` and ``mudcrack eval ct``: files, plots and reports around `tomography`.

Edge code: opens volumes, calls the pure `tomography` functions, writes CSV / PNG /
Markdown.  With a dask.distributed scheduler the per-scan analytics of ``eval ct`` run on
the cluster (each worker opens its scan itself) and ``dvc`` runs chunk by chunk there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["read_times", "run_dvc", "run_eval_ct", "scan_metrics"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _open(path: str | Path, voxel_um: float | None):
    from tomography import open_volume

    vol = open_volume(path, voxel_um=voxel_um)
    if vol.voxel_um is None:
        raise ValueError(f"{path}: the file carries no voxel size; give --voxel-um")
    return vol


def read_times(n: int, *, times_file: str | Path | None, interval_min: float) -> np.ndarray:
    """Scan times (min): from a CSV with a ``t_min`` column / one number per line, or regular."""
    if times_file is None:
        return interval_min * np.arange(n, dtype=float)
    path = Path(times_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the scan times ({exc.strerror})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and not _is_number(lines[0].split(",")[0]):
        header = [h.strip() for h in lines[0].split(",")]
        if "t_min" not in header:
            raise ValueError(f"{path}: expected a t_min column, found columns {header}")
        col = header.index("t_min")
        lines = [ln.split(",")[col] for ln in lines[1:]]
    try:
        times = np.array([float(x) for x in lines])
    except ValueError:
        raise ValueError(f"{path}: expected one time in minutes per line") from None
    if len(times) != n:
        raise ValueError(f"{path}: expected {n} times (one per scan), found {len(times)}")
    if np.any(np.diff(times) <= 0) or not np.all(np.isfinite(times)):
        raise ValueError(f"{path}: scan times must be finite and strictly increasing")
    return times


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def scan_metrics(path: str, voxel_um: float | None, with_solvent: bool, n_bins: int = 10) -> dict:
    """Analytics of one scan (runs in-process or on a dask worker).

    Returns a dict of scalars plus the 2D CIF and porosity profiles.
    """
    import tomography as tg

    vol = _open(path, voxel_um)
    v = float(vol.voxel_um)
    arr = np.asarray(vol.data)
    classes = (tg.Phase.AIR, tg.Phase.SOLVENT, tg.Phase.PORE, tg.Phase.PARTICLE, tg.Phase.SUBSTRATE) \
        if with_solvent else (tg.Phase.AIR, tg.Phase.PORE, tg.Phase.PARTICLE, tg.Phase.SUBSTRATE)
    phases = tg.segment_phases(arr, classes=classes).phases
    heights = tg.height_map(phases, v)
    cracks = tg.segment_cracks_3d(phases, v, heights=heights)
    por = tg.porosity_profile(phases, n_bins=n_bins, exclude=cracks.mask | cracks.bubble_mask | cracks.gap_mask,
                              voxel_um=v, heights=heights)
    cif = tg.cif_profile(cracks.mask, phases, n_bins=n_bins, voxel_um=v, heights=heights)
    delam = tg.detect_delamination(phases, v, heights=heights)
    solvent = tg.solvent_level(phases, v, heights=heights) if with_solvent else None
    return {
        "voxel_um": v,
        "mean_height_um": heights.mean_height_um,
        "median_height_um": heights.median_height_um,
        "solvent_thickness_um": solvent.mean_thickness_um if solvent is not None else 0.0,
        "porosity": por.porosity,
        "cif_3d": cif.cif_3d,
        "cif_top": float(cif.cif[-1]),
        "cif_base": float(cif.cif[0]),
        "n_cracks": cracks.n_cracks,
        "n_bubbles": len(cracks.bubbles),
        "delamination_fraction": delam.fraction,
        "z_frac": cif.z_frac.tolist(),
        "cif_profile": cif.cif.tolist(),
        "porosity_profile": por.profile.tolist(),
    }


def _slice_maps(path: Path, volume: np.ndarray, est, *, title: str) -> None:
    """Grey slice at the site height, |in-plane residual| there, and the plane evidence."""
    plt = _plt()
    res = est.residual
    grid = est.grid_points
    if len(est.sites):
        kz = int(np.argmin(np.abs(grid[:, 0, 0, 0] - est.sites[0, 0])))
    else:
        kz = res.shape[0] - 1
    z_vox = int(grid[kz, 0, 0, 0])
    ys, xs = grid[0, :, 0, 1], grid[0, 0, :, 2]
    step = (ys[1] - ys[0]) if len(ys) > 1 else 1.0
    extent = (xs[0] - step / 2, xs[-1] + step / 2, ys[-1] + step / 2, ys[0] - step / 2)
    fig, ax = plt.subplots(1, 3, figsize=(16, 5))
    ax[0].imshow(volume[z_vox], cmap="gray")
    ax[0].set_title(f"scan slice z = {z_vox} vox")
    mag = np.linalg.norm(res[kz, :, :, 1:], axis=-1)
    im = ax[1].imshow(np.ma.masked_invalid(mag), cmap="viridis", extent=extent, interpolation="nearest")
    fig.colorbar(im, ax=ax[1], label="voxels")
    ax[1].set_title(f"|in-plane displacement - background|, z = {z_vox}")
    im = ax[2].imshow(np.ma.masked_invalid(est.jump_plane), cmap="inferno", extent=extent, interpolation="nearest")
    fig.colorbar(im, ax=ax[2], label="voxels")
    ax[2].set_title("in-plane jump (max over height) and sites")
    if len(est.sites):
        ax[2].plot(est.sites[:, 2], est.sites[:, 1], "c+", ms=14, mew=2)
        ax[0].plot(est.sites[:, 2], est.sites[:, 1], "c+", ms=14, mew=2)
    for a in ax:
        a.set_xlabel("x (vox)")
        a.set_ylabel("y (vox)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_eval_ct(scans: Sequence[str | Path], out_dir: str | Path, *, voxel_um: float | None = None,
                times_file: str | Path | None = None, interval_min: float = 2.0, with_solvent: bool = False,
                scheduler: str | None = None, progress: Callable[[int], None] | None = None) -> str:
    """Evaluate a CT scan series: analytics per scan, the onset detector, plots, report."""
    import tomography as tg

    if len(scans) < 2:
        raise ValueError(f"eval ct needs at least 2 scans (a reference and one more), got {len(scans)}")
    paths = [str(p) for p in scans]
    for p in paths:
        if not Path(p).exists():
            raise ValueError(f"{p}: no such file or folder")
    times = read_times(len(paths), times_file=times_file, interval_min=interval_min)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    client = None
    futures = None
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise ValueError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        futures = client.map(scan_metrics, paths, voxel_um=voxel_um, with_solvent=with_solvent, pure=False)

    rows, profiles, site_rows = [], [], []
    detector = None
    onset_time = math.nan
    v0 = None
    try:
        for i, (p, t) in enumerate(zip(paths, times)):
            vol = _open(p, voxel_um)
            arr = np.asarray(vol.data)
            if v0 is None:
                v0 = float(vol.voxel_um)
            elif abs(float(vol.voxel_um) - v0) > 1e-6 * v0:
                raise ValueError(f"{p}: voxel size {vol.voxel_um} um differs from the first scan's {v0} um")
            if detector is None:
                detector = tg.OnsetDetector(arr)
                est = None
            else:
                est = detector.update(arr, float(t))
            m = futures[i].result() if futures is not None else scan_metrics(p, voxel_um, with_solvent)
            row = {"scan": i, "path": p, "t_min": float(t)}
            row.update({k: val for k, val in m.items() if np.isscalar(val)})
            row["onset_score"] = est.score if est is not None else 0.0
            row["onset_declared"] = bool(est.onset) if est is not None else False
            row["n_sites"] = len(est.sites) if est is not None else 0
            rows.append(row)
            for z, c, por in zip(m["z_frac"], m["cif_profile"], m["porosity_profile"]):
                profiles.append({"scan": i, "t_min": float(t), "z_frac": z, "cif_2d": c, "porosity": por})
            if est is not None:
                for k, s in enumerate(est.sites):
                    site_rows.append({"scan": i, "t_min": float(t), "rank": k, "z_vox": s[0], "y_vox": s[1],
                                      "x_vox": s[2], "y_um": s[1] * v0, "x_um": s[2] * v0,
                                      "jump_vox": est.site_jump_vox[k]})
                _slice_maps(out / f"dvc_scan{i:03d}.png", arr, est,
                            title=f"scan {i} at {t:g} min vs reference: score {est.score:.1f}"
                                  f"{' (onset declared)' if est.onset else ''}")
                if est.onset and math.isnan(onset_time):
                    onset_time = float(est.onset_time)
            if progress:
                progress(1)
    finally:
        if client is not None:
            client.close()

    df = pd.DataFrame(rows)
    df.to_csv(out / "timeseries.csv", index=False)
    pd.DataFrame(profiles).to_csv(out / "profiles.csv", index=False)
    sites = pd.DataFrame(site_rows, columns=["scan", "t_min", "rank", "z_vox", "y_vox", "x_vox", "y_um", "x_um",
                                             "jump_vox"])
    sites.to_csv(out / "sites.csv", index=False)
    seen = df[df.n_cracks > 0]
    visible = float(seen.t_min.iloc[0]) if len(seen) else math.nan
    summary = {
        "onset_time_min": None if math.isnan(onset_time) else onset_time,
        "first_segmented_crack_min": None if math.isnan(visible) else visible,
        "lead_time_min": None if math.isnan(onset_time) or math.isnan(visible) else visible - onset_time,
        "n_scans": len(df),
        "voxel_um": v0,
    }
    (out / "onset.json").write_text(json.dumps(summary, indent=2))
    _summary_plot(out / "summary.png", df, pd.DataFrame(profiles), onset_time, visible)
    lines = [
        "# mudcrack eval ct",
        "",
        f"{len(df)} scans, voxel {v0:g} um, times {df.t_min.iloc[0]:g}-{df.t_min.iloc[-1]:g} min.",
        "",
        f"- onset declared (DVC detector): {summary['onset_time_min'] if summary['onset_time_min'] is not None else 'no'}",
        f"- first crack seen by the segmentation: {summary['first_segmented_crack_min'] if summary['first_segmented_crack_min'] is not None else 'none'}",
        f"- lead time: {summary['lead_time_min'] if summary['lead_time_min'] is not None else '-'} min",
        "",
        "| scan | t min | height um | solvent um | porosity | 3D CIF | cracks | score | onset |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['scan']} | {r['t_min']:g} | {r['median_height_um']:.1f} | {r['solvent_thickness_um']:.1f} | "
                     f"{r['porosity']:.3f} | {r['cif_3d']:.4f} | {r['n_cracks']} | {r['onset_score']:.1f} | "
                     f"{'yes' if r['onset_declared'] else ''} |")
    lines += ["", "![summary](summary.png)", ""]
    lines += [f"![dvc scan {i}](dvc_scan{i:03d}.png)" for i in range(1, len(df))]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    text = "\n".join([
        f"mudcrack eval ct: {len(df)} scans -> {out}",
        f"  onset declared       {summary['onset_time_min'] if summary['onset_time_min'] is not None else 'no'}"
        f"{'' if summary['onset_time_min'] is None else ' min'}",
        f"  first crack (segm.)  {summary['first_segmented_crack_min'] if summary['first_segmented_crack_min'] is not None else 'none'}",
        f"  final 3D CIF         {df.cif_3d.iloc[-1]:.4f}, porosity {df.porosity.iloc[-1]:.3f}, "
        f"height {df.median_height_um.iloc[-1]:.1f} um",
        "  wrote timeseries.csv, profiles.csv, sites.csv, onset.json, summary.png, dvc_scan*.png, report.md",
    ])
    return text


def _summary_plot(path: Path, df: pd.DataFrame, prof: pd.DataFrame, onset_time: float, visible: float) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(17, 5))
    ax[0].plot(df.t_min, df.median_height_um, "o-", label="coating height (median), um")
    ax[0].plot(df.t_min, df.solvent_thickness_um, "s-", label="solvent film, um")
    ax[0].set_xlabel("time (min)")
    ax[0].legend()
    ax[1].plot(df.t_min, 100 * df.cif_3d, "o-", label="3D CIF (%)")
    ax[1].plot(df.t_min, 100 * df.porosity, "s-", label="porosity (%)")
    a2 = ax[1].twinx()
    a2.plot(df.t_min, df.onset_score, "k^--", label="onset score")
    a2.set_ylabel("onset score")
    for t, style, lab in ((onset_time, "r--", "onset declared"), (visible, "k:", "first segmented crack")):
        if not math.isnan(t):
            ax[1].axvline(t, color=style[0], ls=style[1:], label=lab)
    ax[1].set_xlabel("time (min)")
    ax[1].legend(loc="upper left")
    for t in sorted(prof.t_min.unique()):
        sel = prof[prof.t_min == t]
        ax[2].plot(100 * sel.cif_2d, sel.z_frac, label=f"{t:g} min")
    ax[2].set_xlabel("2D CIF (%)")
    ax[2].set_ylabel("normalised height (0 substrate, 1 top)")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_dvc(reference_path: str | Path, current_path: str | Path, out_dir: str | Path, *, voxel_um: float | None = None,
            subset_size: int = 21, step: int = 10, background: str = "rigid", memory_budget_mb: float | None = None,
            scheduler: str | None = None, progress: Callable[[int, int], None] | None = None) -> str:
    """Correlate two volumes; write ``points.csv``, slice maps (PNG) and a summary."""
    import tomography as tg

    ref = _open(reference_path, voxel_um)
    cur = _open(current_path, voxel_um)
    if ref.shape != cur.shape:
        raise ValueError(f"{current_path}: expected the shape of {reference_path} {ref.shape}, found {cur.shape}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if memory_budget_mb is not None or scheduler is not None:
        res = tg.correlate_chunked(ref, cur, memory_budget_mb=memory_budget_mb or 2048.0, subset_size=subset_size,
                                   step=step, scheduler=scheduler, progress=progress)
        ref_arr = None
    else:
        ref_arr = np.asarray(ref.data)
        res = tg.correlate(ref_arr, np.asarray(cur.data), subset_size=subset_size, step=step)
    v = float(ref.voxel_um)
    df = pd.DataFrame({"z_vox": res.points[:, 0], "y_vox": res.points[:, 1], "x_vox": res.points[:, 2],
                       "u_z_vox": res.displacement[:, 0], "u_y_vox": res.displacement[:, 1],
                       "u_x_vox": res.displacement[:, 2], "zncc": res.zncc, "iterations": res.iterations,
                       "converged": res.converged,
                       "status": [tg.PointStatus(int(s)).name for s in res.status]})
    resid = None
    if background != "none" and res.converged.sum() >= 4:
        fit = tg.remove_background(res.points, res.displacement, model=background, valid=res.converged)
        resid = fit.residual
        for i, ax in enumerate("zyx"):
            df[f"r_{ax}_vox"] = resid[:, i]
    for col in [c for c in df.columns if c.endswith("_vox") and c.startswith(("u_", "r_"))]:
        df[col.replace("_vox", "_um")] = df[col] * v
    df.to_csv(out / "points.csv", index=False)
    if res.grid_shape is not None:
        plt = _plt()
        grid = res.as_grid("points")
        k = res.grid_shape[0] // 2
        fields = [("u_z", res.displacement[:, 0]), ("u_y", res.displacement[:, 1]), ("u_x", res.displacement[:, 2]),
                  ("zncc", res.zncc)]
        if resid is not None:
            fields.append(("|residual in-plane|", np.linalg.norm(resid[:, 1:], axis=1)))
        ys, xs = grid[0, :, 0, 1], grid[0, 0, :, 2]
        extent = (xs[0] - step / 2, xs[-1] + step / 2, ys[-1] + step / 2, ys[0] - step / 2)
        fig, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 4.2))
        for a, (name, f) in zip(axes, fields):
            im = a.imshow(np.ma.masked_invalid(res.as_grid(f)[k]), extent=extent, interpolation="nearest",
                          cmap="magma" if name == "zncc" else "coolwarm" if name.startswith("u_") else "viridis")
            fig.colorbar(im, ax=a, fraction=0.046)
            a.set_title(f"{name} (vox)" if name != "zncc" else "ZNCC")
            a.set_xlabel("x (vox)")
        axes[0].set_ylabel("y (vox)")
        fig.suptitle(f"DVC grid slice z = {grid[k, 0, 0, 0]:g} vox")
        fig.tight_layout()
        fig.savefig(out / "slice_maps.png", dpi=90)
        plt.close(fig)
    ok = res.converged
    u = res.displacement[ok]
    med = np.median(u, axis=0) if len(u) else np.full(3, np.nan)
    text = "\n".join([
        f"mudcrack dvc: {reference_path} -> {current_path}  ({len(res.points)} points, subvolume {subset_size}, "
        f"step {step}, voxel {v:g} um)",
        f"  converged            {(ok.mean() if ok.size else 0.0) * 100:.1f} % of points",
        f"  median displacement  z {med[0]:+.3f}, y {med[1]:+.3f}, x {med[2]:+.3f} voxels",
        f"  median ZNCC          {np.nanmedian(res.zncc) if np.isfinite(res.zncc).any() else math.nan:.4f}",
        f"  wrote {out}/points.csv and slice_maps.png",
    ])
    (out / "summary.txt").write_text(text + "\n")
    return text
