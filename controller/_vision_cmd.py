"""``mudcrack dic`` and ``mudcrack eval surface``: files, plots and reports around `vision`.

Edge code: reads frames, calls the pure `vision` functions, writes CSV / PNG / Markdown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["run_dic", "run_eval_surface"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _map_png(path: Path, grid: np.ndarray, *, title: str, label: str, background: np.ndarray | None = None,
             extent=None, cmap: str = "viridis", symmetric: bool = False) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    if background is not None:
        ax.imshow(background, cmap="gray")
    finite = grid[np.isfinite(grid)]
    kw = {}
    if finite.size:
        lo, hi = np.percentile(finite, [1, 99])
        if symmetric:
            m = max(abs(lo), abs(hi), 1e-12)
            lo, hi = -m, m
        kw = {"vmin": lo, "vmax": hi if hi > lo else lo + 1e-9}
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, extent=extent, alpha=0.75 if background is not None else 1.0,
                   interpolation="nearest", **kw)
    fig.colorbar(im, ax=ax, label=label)
    ax.set_title(title)
    ax.set_xlabel("col (px)")
    ax.set_ylabel("row (px)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_dic(reference_path: str | Path, current_path: str | Path, out_dir: str | Path, *, subset_size: int = 31,
            step: int = 8, window: int = 5) -> str:
    """Correlate two frames and write ``points.csv`` and PNG maps; returns a summary text."""
    from vision import PointStatus, correlate, strain_field
    from vision._io import FrameError, read_image

    ref = read_image(reference_path)
    cur = read_image(current_path)
    if ref.shape != cur.shape:
        raise FrameError(f"{current_path}: expected the shape of {reference_path} {ref.shape}, found {cur.shape}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = correlate(ref, cur, subset_size=subset_size, step=step)
    strain = strain_field(res, window=window)
    df = pd.DataFrame(
        {
            "row_px": res.points[:, 0],
            "col_px": res.points[:, 1],
            "u_row_px": res.displacement[:, 0],
            "u_col_px": res.displacement[:, 1],
            "zncc": res.zncc,
            "iterations": res.iterations,
            "converged": res.converged,
            "status": [PointStatus(int(s)).name for s in res.status],
        }
    )
    for name in ("exx", "eyy", "exy", "e1", "e2"):
        field = getattr(strain, name, None)
        if field is not None:
            df[name] = np.asarray(field).reshape(-1)[: len(df)] if np.asarray(field).size == len(df) else np.nan
    df.to_csv(out / "points.csv", index=False)
    if res.grid_shape is not None:
        rows, cols = res.points[:, 0], res.points[:, 1]
        extent = (cols.min() - step / 2, cols.max() + step / 2, rows.max() + step / 2, rows.min() - step / 2)
        mag = np.hypot(res.displacement[:, 0], res.displacement[:, 1])
        _map_png(out / "displacement_magnitude.png", res.as_grid(mag), title="|u| (px)", label="px", background=ref, extent=extent)
        _map_png(out / "u_row.png", res.as_grid(res.displacement[:, 0]), title="u_row (px)", label="px", extent=extent, cmap="coolwarm", symmetric=True)
        _map_png(out / "u_col.png", res.as_grid(res.displacement[:, 1]), title="u_col (px)", label="px", extent=extent, cmap="coolwarm", symmetric=True)
        _map_png(out / "zncc.png", res.as_grid(res.zncc), title="ZNCC", label="ZNCC", extent=extent, cmap="magma")
        e1 = np.asarray(getattr(strain, "e1"))
        if e1.ndim == 2:
            _map_png(out / "strain_e1.png", e1, title="max principal Green-Lagrange strain", label="strain", extent=extent, cmap="inferno")
    ok = res.converged
    untextured = int(np.sum(res.status == PointStatus.UNTEXTURED))
    u = res.displacement[ok]
    finite_zncc = res.zncc[np.isfinite(res.zncc)]
    median_zncc = float(np.median(finite_zncc)) if finite_zncc.size else math.nan
    text = "\n".join(
        [
            f"mudcrack dic: {reference_path} -> {current_path}  ({len(res.points)} points, subset {subset_size}, step {step})",
            f"  converged            {(ok.mean() if ok.size else 0.0) * 100:.1f} % of points"
            + (f" ({untextured} untextured, not iterated)" if untextured else ""),
            f"  median displacement  row {np.median(u[:, 0]) if len(u) else math.nan:+.3f} px, col {np.median(u[:, 1]) if len(u) else math.nan:+.3f} px",
            f"  median ZNCC          {median_zncc:.4f}",
            f"  wrote {out}/points.csv and PNG maps (displacement, u_row, u_col, zncc, strain_e1)",
        ]
    )
    (out / "summary.txt").write_text(text + "\n")
    return text


def run_eval_surface(frames_path: str | Path, out_dir: str | Path, *, times_file: str | Path | None = None,
                     fps: float | None = None, um_per_px: float = 5.0,
                     progress: Callable[[int], None] | None = None) -> str:
    """Analyse a surface frame sequence: crack metrics per frame, the onset detector, plots, report."""
    from vision import OnsetDetector, crack_metrics, first_visible_time, segment_cracks
    from vision._io import frame_times, open_frames

    source = open_frames(frames_path)
    if source.n_frames < 2:
        raise ValueError(f"{frames_path}: expected at least 2 frames (a reference and one more), found {source.n_frames}")
    times = frame_times(source.n_frames, times_file=times_file, fps=fps, video_fps=source.fps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    detector = None
    first_frame = None
    sites = np.zeros((0, 2))
    mask = None
    for i, (frame, t) in enumerate(zip(source, times)):
        if detector is None:
            detector = OnsetDetector(frame)
            first_frame = frame
            est = None
        else:
            est = detector.update(frame, float(t))
        metrics = crack_metrics(segment_cracks(frame, um_per_px=um_per_px), um_per_px=um_per_px).as_dict()
        row = {"frame": i, "t_min": float(t), **{k: v for k, v in metrics.items() if np.isscalar(v)}}
        row["onset_score"] = float(est.score) if est is not None else 0.0
        row["onset_declared"] = bool(est.onset) if est is not None else False
        rows.append(row)
        if est is not None and est.onset and len(sites) == 0:
            sites = np.asarray(est.sites, dtype=float).reshape(-1, 2)
            mask = est.mask
        if progress:
            progress(1)
    df = pd.DataFrame(rows)
    df.to_csv(out / "metrics.csv", index=False)
    declared = df[df.onset_declared]
    onset_time = float(declared.t_min.iloc[0]) if len(declared) else math.nan
    cif_col = "surface_cif"
    visible_time = float(first_visible_time(df))
    pd.DataFrame(sites, columns=["row_px", "col_px"]).to_csv(out / "sites.csv", index=False)
    (out / "onset.json").write_text(json.dumps({
        "onset_time_min": None if math.isnan(onset_time) else onset_time,
        "first_visible_crack_min": None if math.isnan(visible_time) else visible_time,
        "lead_time_min": None if math.isnan(onset_time) or math.isnan(visible_time) else visible_time - onset_time,
        "n_sites": int(len(sites)),
    }, indent=2))

    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(13, 5))
    ax[0].plot(df.t_min, df.onset_score, label="onset risk score")
    if cif_col in df:
        ax2 = ax[0].twinx()
        ax2.plot(df.t_min, 100 * df[cif_col], color="C1", label="surface CIF (%)")
        ax2.set_ylabel("surface CIF (%)")
    if not math.isnan(onset_time):
        ax[0].axvline(onset_time, color="r", ls="--", label="onset declared")
    if not math.isnan(visible_time):
        ax[0].axvline(visible_time, color="k", ls=":", label="first visible crack")
    ax[0].set_xlabel("time (min)")
    ax[0].set_ylabel("score")
    ax[0].legend(loc="upper left", fontsize=8)
    ax[1].imshow(first_frame, cmap="gray")
    if mask is not None:
        ax[1].imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.4)
    if len(sites):
        ax[1].plot(sites[:, 1], sites[:, 0], "c+", ms=10, mew=2, label="predicted sites")
        ax[1].legend(fontsize=8)
    ax[1].set_title("reference frame with predicted crack zone")
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)
    lead = visible_time - onset_time
    text = "\n".join(
        [
            f"mudcrack eval surface: {frames_path} ({source.n_frames} frames, {source.shape[0]}x{source.shape[1]} px, {um_per_px:g} um/px)",
            f"  onset declared        {'%.2f min' % onset_time if not math.isnan(onset_time) else 'no'}",
            f"  first visible crack   {'%.2f min' % visible_time if not math.isnan(visible_time) else 'none'} (segmentation)",
            f"  lead time             {'%.2f min' % lead if not math.isnan(lead) else 'n/a'}",
            f"  predicted sites       {len(sites)}",
            f"  wrote metrics.csv, onset.json, sites.csv, summary.png, report.md in {out}",
        ]
    )
    (out / "report.md").write_text("# Surface crack evaluation\n\n```\n" + text + "\n```\n\n![summary](summary.png)\n")
    return text
