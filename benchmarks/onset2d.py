"""Crack-onset detection lead time over many simulated lab runs (2D camera frames).

For every run: render the frames of the critical window (every 0.5 min from 5 min before
the physics onset to 3 min after; for crack-free runs the same window around the end of
consolidation), feed them to `vision._onset.OnsetDetector` (defaults only, reference = the
first frame), and compare its onset time with the physics onset and with the time the
visible-crack segmentation (`vision._cracks.first_visible_time`) first sees the crack.

Run from the repository root: ``.venv/bin/python benchmarks/onset2d.py [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import sim_line
from vision._cracks import analyse_sequence, first_visible_time
from vision._onset import OnsetDetector

SUBSET = 31  # the detector's default subset
BEFORE, AFTER, DT = 4.0, 2.0, 0.25
CONDITIONS = ("clean", "flicker", "shake", "flicker+shake")


def _seg_distance(p: np.ndarray, segments: np.ndarray) -> float:
    a, b = segments[:, 0], segments[:, 1]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0.0, 1.0)
    return float(np.min(np.linalg.norm(a + t[:, None] * ab - p, axis=1)))


def _first_persistent(times: np.ndarray, alarms: np.ndarray, n: int) -> float:
    run = 0
    for t, a in zip(times, alarms):
        run = run + 1 if a else 0
        if run >= n:
            return float(t)
    return math.nan


def one_run(spec: dict) -> dict:
    lab, slurry = sim_line.load_lab()
    lab = dataclasses.replace(lab, air_temperature_c=spec["air_c"])
    run = sim_line.simulate_lab(spec["gap"], (lab, slurry), seed=spec["seed"], duration_min=150.0, output_interval_s=15.0)
    attrs = run.frame.attrs
    onset = attrs["crack_onset_min"]
    centre = onset if math.isfinite(onset) else attrs["consolidation_end_min"]
    if not math.isfinite(centre):
        centre = spec.get("static_at", 60.0)
    times = np.arange(centre - BEFORE, centre + AFTER + 1e-9, DT)
    rng = np.random.default_rng(1000 + spec["seed"])
    px = spec["um_per_px"]
    flick = 0.15 if "flicker" in spec["condition"] else 0.0
    shake = 2.0 if "shake" in spec["condition"] else 0.0
    frames = []
    for t in times:
        frames.append(sim_line.render_surface(
            run.snapshot_at(t), shape_px=(512, 512), um_per_px=px, seed=spec["seed"],
            flicker_gain=1.0 + rng.uniform(-flick, flick), shift_px=tuple(rng.uniform(-shake, shake, 2))))
    tic = time.perf_counter()
    det = OnsetDetector(frames[0].image)
    alarms, scores, sites_at = [], [], {}
    declared = None
    for t, fr in zip(times[1:], frames[1:]):
        est = det.update(fr.image, float(t))
        alarms.append(est.alarm)
        scores.append(est.score)
        if est.alarm and len(fr.segments_px):
            sites_at[float(t)] = [_seg_distance(p, fr.segments_px) for p in est.sites]
        if est.onset and declared is None:
            declared = float(t)
    t_det = time.perf_counter() - tic
    df = analyse_sequence([f.image for f in frames], times, um_per_px=px)
    visible = first_visible_time(df)
    gt_mask = next((float(t) for t, f in zip(times, frames) if f.crack_mask.any()), math.nan)
    t1 = _first_persistent(times[1:], np.array(alarms), 1)
    site_err = sites_at.get(declared, []) if declared is not None else []
    kind = "cracking" if math.isfinite(onset) else spec["kind"]  # the physics decides
    return dict(spec, kind=kind, onset_min=onset, centre_min=centre, declared_min=declared if declared is not None else math.nan,
                declared_p1_min=t1, visible_min=visible, gt_mask_min=gt_mask,
                site_err_px=site_err, max_score_before=float(max(scores[: max(int((BEFORE - 2.0) / DT), 1)])),
                max_precursor_um=float(max(run.snapshot_at(t).precursor_opening_um for t in times)),
                detector_s_per_frame=t_det / max(len(times) - 1, 1))


def specs(quick: bool) -> list[dict]:
    out = []
    k = 0
    seeds = (0, 1) if quick else (0, 1, 2)
    airs = (25.0,) if quick else (22.0, 25.0, 30.0)
    for gap in (300, 500, 800):
        for air in airs:
            for seed in seeds:
                out.append(dict(kind="cracking", gap=gap, air_c=air, seed=seed,
                                um_per_px=(4.0, 5.0, 6.0)[k % 3], condition=CONDITIONS[k % 4]))
                k += 1
    free = [(120, 25.0), (150, 25.0), (200, 25.0), (250, 25.0), (250, 22.0), (300, 14.0), (300, 12.0)]
    for i, (gap, air) in enumerate(free[: 3 if quick else None]):
        for seed in ((0,) if quick else (0, 1)):
            out.append(dict(kind="crack-free", gap=gap, air_c=air, seed=seed, um_per_px=5.0,
                            condition=CONDITIONS[(i + seed) % 4]))
    for seed in ((0,) if quick else (0, 1)):  # cold: never consolidates in the window, no motion at all
        out.append(dict(kind="static", gap=300, air_c=10.0, seed=seed, um_per_px=5.0,
                        condition=CONDITIONS[3 - seed], static_at=60.0))
    return out


def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tic = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(one_run, specs(args.quick)))
    wall = time.perf_counter() - tic

    print("| kind | gap | air C | seed | um/px | condition | precursor max in window, um | physics onset | "
          "declared | declared (persistence 1) | visible (segmentation) | lead min | lead min (p=1) | "
          "site err px (median) |")
    print("|" + "---|" * 14)
    for r in rows:
        lead = r["visible_min"] - r["declared_min"]
        lead1 = r["visible_min"] - r["declared_p1_min"]
        err = np.median(r["site_err_px"]) if r["site_err_px"] else math.nan
        print(f"| {r['kind']} | {r['gap']} | {r['air_c']:g} | {r['seed']} | {r['um_per_px']:g} | {r['condition']} | "
              f"{r['max_precursor_um']:.2f} | {_fmt(r['onset_min'])} | {_fmt(r['declared_min'])} | "
              f"{_fmt(r['declared_p1_min'])} | {_fmt(r['visible_min'])} | {_fmt(lead)} | {_fmt(lead1)} | {_fmt(err)} |")

    crack = [r for r in rows if r["kind"] == "cracking"]
    print("\nSummary (cracking runs: %d; lead = visible - declared, minutes of process time)" % len(crack))
    for label, key in (("persistence 2 (default)", "declared_min"), ("persistence 1", "declared_p1_min")):
        lead = np.array([r["visible_min"] - r[key] for r in crack])
        miss = int(np.sum(~np.isfinite([r[key] for r in crack])))
        fin = lead[np.isfinite(lead)]
        vs_phys = np.array([r[key] - r["onset_min"] for r in crack])
        vs_phys = vs_phys[np.isfinite(vs_phys)]
        print(f"  {label}: lead median {np.median(fin):.2f}, min {fin.min():.2f}, max {fin.max():.2f}; "
              f"positive lead {np.mean(lead > 0):.0%} ({int(np.sum(lead > 0))}/{len(lead)}); lead >= 0 "
              f"{np.mean(lead >= 0):.0%}; not declared {miss}; declared - physics onset median "
              f"{np.median(vs_phys):+.2f} min")
    no_vis = sum(not math.isfinite(r["visible_min"]) for r in crack)
    print(f"  runs where the segmentation never saw the crack in the window: {no_vis}")
    errs = np.concatenate([r["site_err_px"] for r in crack if r["site_err_px"]] or [np.zeros(0)])
    if errs.size:
        print(f"  site error at declaration ({errs.size} sites): median {np.median(errs):.1f} px "
              f"({np.median(errs) / SUBSET:.2f} subsets), 90 % {np.percentile(errs, 90):.1f} px "
              f"({np.percentile(errs, 90) / SUBSET:.2f} subsets), max {errs.max():.1f} px; "
              f"within 2 subsets {np.mean(errs < 2 * SUBSET):.0%}")
    for kind in ("crack-free", "static"):
        sel = [r for r in rows if r["kind"] == kind]
        if sel:
            fa = [math.isfinite(r["declared_min"]) for r in sel]
            print(f"  false alarms, {kind} runs: {sum(fa)}/{len(sel)} ({np.mean(fa):.0%}); max score in "
                  f"the first 3 min {max(r['max_score_before'] for r in sel):.1f}")
    quiet = [r["max_score_before"] for r in crack]
    print(f"  cracking runs, max score more than 2 min before the physics onset: {max(quiet):.1f} "
          f"(threshold 6)")
    print(f"  detector {np.mean([r['detector_s_per_frame'] for r in rows]):.2f} s/frame (512^2, DIC included); "
          f"wall {wall:.0f} s for {len(rows)} runs")


if __name__ == "__main__":
    main()
