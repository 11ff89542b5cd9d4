"""Crack-onset prediction on scripted CT scan series: detection curve, false alarms, lead time.

Sequences (`benchmarks/_onset_sequences.py`; ground truth from sim_line, 80x128x128 scans
of 2 um voxels every 3 min, 290-320 um lab films, the field of view on a crack of the
network, precursor scripted):

* lead runs: 3-4 quiet scans, then a precursor growing by g voxel per scan (g = 0.25,
  0.125, 0.5) for D = 12-18 min until a visible gap opens (the first gap scan is 4-6
  scans after the precursor starts); a uniform artefact shift (y up to +-1 voxel, x a
  quarter) and 2-3 % noise on every scan;
* detection curve: quiet scans, then the precursor held at A = 0.05-2 voxel, no gap;
* quiet series: 11 scans (30 min after the reference) per sequence with artefact shifts,
  noise, near-critical films (precursor <= 0.05 voxel), consolidating crack-free films
  (real `simulate_lab` snapshots around the end of consolidation: the top surface moves
  down through the volume), and all combined; separate seeds calibrate the baseline.

Methods, fed the same scans: `tomography.OnsetDetector` with its defaults (reference = first
scan) and a baseline: scikit-image `optical_flow_ilk` (radius 7, 2 warps; the textured
layer of the reference +- the radius) against the reference scan, median removal per
component, in-plane jump map (max in-plane displacement difference to the 4 grid
neighbours, grid step 8) per height, max over height, robust z (median / MAD), declared
when an 8-connected cluster of >= 3 grid columns exceeds the threshold calibrated on the
quiet calibration set (the smallest with zero false alarms there).  "Visible" = first
scan whose labels contain a crack (`VolumeLabel.CRACK`), or in which `segment_phases` +
`segment_cracks_3d` find one.

Run from the repository root: ``.venv/bin/python benchmarks/onset3d.py [--quick]
[--workers 2] [--seed-offset N]``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _onset_sequences as S  # noqa: E402

GROWTHS = (0.25, 0.125, 0.5)  # voxel per scan; the target is on the first
AMPLITUDES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.0)
AMPLITUDES_QUICK = (0.1, 0.25, 0.5, 1.0, 2.0)
LAB_RUNS = ((300, 0), (300, 1), (250, 0))
MUD, MUD_CAL, ILK = "mudcrack", "mudcrack, score > calibrated T", "ILK + median"
TARGET_SCANS, TARGET_COST_S = 3, 3.0
ILK_RADIUS, ILK_WARPS, GRID_STEP = 7, 2, 8


# ----------------------------------------------------------------------------- baseline


class ILKBaseline:
    """scikit-image optical_flow_ilk (3D) against the reference + median removal + jump-map robust z.

    The flow is computed on the slices of the textured layer of the reference (grey-value
    std per slice above a quarter of the largest) plus `radius` on each side; grid heights
    lie inside the layer by `radius` (the window holds no air or substrate in the
    reference).  `num_warp` 2 instead of the default 10: on these sub-voxel fields the
    same noise floor and accuracy as 3, 5 and 10 warps (0.012 voxel std of a quiet pair,
    0.015 voxel error on a 0.5 voxel precursor; a uniform 0.5 voxel shift read 0.008
    voxel high, which the median removal takes out), 4.5x faster (1.6 vs 7.4 s).
    """

    def __init__(self, reference: np.ndarray, radius: int = ILK_RADIUS, num_warp: int = ILK_WARPS,
                 step: int = GRID_STEP):
        ref = reference.astype(np.float32)
        std = ref.reshape(ref.shape[0], -1).std(axis=1)
        layer = np.flatnonzero(std > 0.25 * std.max())
        z_lo, z_hi = int(layer.min()), int(layer.max())
        self._z0 = max(z_lo - radius, 0)
        self._z1 = min(z_hi + radius + 1, ref.shape[0])
        zs = np.arange(z_lo + radius, z_hi - radius + 1, step)
        self.z_levels = zs if zs.size else np.array([(z_lo + z_hi) // 2])
        margin = 10
        self.ys = np.arange(margin, ref.shape[1] - margin + 1, step)
        self.xs = np.arange(margin, ref.shape[2] - margin + 1, step)
        yy, xx = np.meshgrid(self.ys, self.xs, indexing="ij")
        self.grid = np.stack([yy, xx], axis=-1).astype(float)  # (ny, nx, 2) in-plane voxels
        self._ref = ref[self._z0:self._z1]
        self._radius, self._warps = radius, num_warp
        self.last_z_of_max = None

    def update(self, volume: np.ndarray) -> np.ndarray:
        """Robust z of the max-over-height in-plane jump map, (ny, nx)."""
        from skimage.registration import optical_flow_ilk

        cur = volume.astype(np.float32)[self._z0:self._z1]
        flow = optical_flow_ilk(self._ref, cur, radius=self._radius, num_warp=self._warps)
        u = flow[:, self.z_levels - self._z0][:, :, self.ys][:, :, :, self.xs]  # (3, nz, ny, nx)
        u = np.moveaxis(u, 0, -1).astype(np.float64)
        u = u - np.median(u.reshape(-1, 3), axis=0)
        inplane = u[..., 1:]
        jump = np.zeros(inplane.shape[:3])
        d_y = np.linalg.norm(np.diff(inplane, axis=1), axis=-1)
        d_x = np.linalg.norm(np.diff(inplane, axis=2), axis=-1)
        jump[:, 1:] = np.maximum(jump[:, 1:], d_y)
        jump[:, :-1] = np.maximum(jump[:, :-1], d_y)
        jump[:, :, 1:] = np.maximum(jump[:, :, 1:], d_x)
        jump[:, :, :-1] = np.maximum(jump[:, :, :-1], d_x)
        self.last_z_of_max = self.z_levels[np.argmax(jump, axis=0)]
        return S.robust_z(jump.max(axis=0))


# ----------------------------------------------------------------------------- one sequence


def _visible_by_segmentation(volume: np.ndarray, voxel_um: float) -> bool:
    import tomography

    phases = tomography.segment_phases(volume).phases
    return tomography.segment_cracks_3d(phases, voxel_um).n_cracks > 0


def make_sequence(job: dict) -> S.Sequence3D:
    kind, seed = job["kind"], job["seed"]
    if kind == "lead":
        return S.lead_sequence_3d(seed, job["param"])
    if kind == "curve":
        return S.curve_sequence_3d(seed, job["param"], n_quiet=job["n_quiet"])
    return S.quiet_sequence_3d(seed, job["param"], n_scans=job["n_scans"])


def _lab_scans(job: dict):
    """The simulator's own timeline (secondary): `ct_scan_series` every 3 min around onset."""
    import sim_line

    ser = sim_line.ct_scan_series(job["param"], seed=job["seed"], interval_min=S.SCAN_DT_MIN, before_min=15.0,
                                  after_min=6.0)
    onset = ser.run.frame.attrs["crack_onset_min"]
    pre = [ser.run.snapshot_at(float(t)).precursor_opening_um / ser.voxel_um for t in ser.times_min]
    o = np.asarray(ser.origin_um)
    seg = S.network_segments_um(ser.run.snapshots[0].crack_spacing_um, job["seed"], o - 1000.0, o + 1300.0)
    seg0 = (seg - o) / ser.voxel_um
    return (ser.times_min, list(ser.renders), np.array(pre), onset, seg0, np.zeros((len(ser.times_min), 2)),
            ser.voxel_um, f"{job['param']:g} um")


def run_sequence(job: dict) -> dict:
    """Render one scan series, run mudcrack and the baseline on it, keep what scoring needs."""
    import tomography
    from sim_line import VolumeLabel

    if job["kind"] == "lab":
        times, renders, amp, t_gap, seg0, shift, voxel_um, label = _lab_scans(job)
        t_pre = next((float(t) for t, a in zip(times, amp) if a > 0), math.nan)
        render = renders.__getitem__
        n = len(times)
    else:
        seq = make_sequence(job)
        times, amp, t_pre, t_gap, shift = seq.times_min, seq.amplitude_vox, seq.precursor_start_min, \
            seq.gap_start_min, seq.shift_vox
        seg0 = seq.segments_vox(0)
        render, n, voxel_um, label = seq.render, len(seq), seq.voxel_um, seq.label
    r0 = render(0)
    mud = tomography.OnsetDetector(r0.volume)
    ilk = ILKBaseline(r0.volume)
    labels_crack, seg_vis, score, sites_all, zs, levels, zmax = [], [], [], [], [], [], []
    declared, sites_decl = math.nan, np.zeros((0, 3))
    t_mud = t_ilk = 0.0
    for k in range(1, n):
        r = render(k)
        t = float(times[k])
        labels_crack.append(bool(np.any(r.labels == VolumeLabel.CRACK)))
        if job.get("segment"):
            seg_vis.append(_visible_by_segmentation(r.volume, r.voxel_um))
        tic = time.perf_counter()
        est = mud.update(r.volume, t)
        t_mud += time.perf_counter() - tic
        sites = np.asarray(est.sites if est.sites is not None else np.zeros((0, 3)), float).reshape(-1, 3)
        score.append(float(est.score))
        sites_all.append(sites)
        if est.onset and math.isnan(declared):
            declared = float(est.onset_time) if est.onset_time is not None else t
            sites_decl = sites
        tic = time.perf_counter()
        z = ilk.update(r.volume)
        t_ilk += time.perf_counter() - tic
        zs.append(z.astype(np.float32))
        zmax.append(ilk.last_z_of_max)
        levels.append(S.cluster_level(z))
    shift = np.asarray(shift, float)
    return dict(job=job, kind=job["kind"], label=label, seed=job["seed"], times=np.asarray(times[1:], float),
                amplitude=np.asarray(amp[1:], float), t_pre=float(t_pre), t_gap=float(t_gap),
                labels_crack=np.array(labels_crack),
                seg_visible=S.first_true_time(times[1:], seg_vis) if job.get("segment") else math.nan,
                voxel_um=voxel_um, shift=shift[1:] - shift[0], seg0=seg0,
                mud_declared=declared, mud_sites=sites_decl, mud_score=np.array(score), mud_sites_all=sites_all,
                ilk_z=zs, ilk_level=np.array(levels), ilk_grid=ilk.grid,
                s_mud=t_mud / max(n - 1, 1), s_ilk=t_ilk / max(n - 1, 1))


# ----------------------------------------------------------------------------- scoring


def declaration(r: dict, method: str, thr: dict, t_from: float = -math.inf) -> tuple[float, np.ndarray]:
    """(declared time or NaN, in-plane sites (K, 2) voxels) of one method on one sequence.

    mudcrack (defaults) is latched: its own declaration, NaN if that came before
    `t_from`.  The calibrated rules are per scan: the first scan at or after `t_from`
    above the threshold.
    """
    if method == MUD:
        t = r["mud_declared"]
        return (t, r["mud_sites"][:, 1:]) if np.isfinite(t) and t >= t_from else (math.nan, np.zeros((0, 2)))
    ok = r["times"] >= t_from
    if method == MUD_CAL:
        hit = np.flatnonzero((r["mud_score"] > thr[MUD_CAL]) & ok)
        return (float(r["times"][hit[0]]), r["mud_sites_all"][hit[0]][:, 1:]) if hit.size \
            else (math.nan, np.zeros((0, 2)))
    hit = np.flatnonzero((r["ilk_level"] > thr[ILK]) & ok)
    if not hit.size:
        return math.nan, np.zeros((0, 2))
    k = hit[0]
    cells = S.clusters_above(r["ilk_z"][k].astype(float), thr[ILK])
    return float(r["times"][k]), np.array([r["ilk_grid"][c] for c in cells], float).reshape(-1, 2)


def first_declaration(r: dict, method: str, thr: dict) -> float:
    return declaration(r, method, thr)[0]


def site_errors_vox(r: dict, t_decl: float, sites: np.ndarray) -> np.ndarray:
    if math.isnan(t_decl) or not len(sites):
        return np.zeros(0)
    k = int(np.argmin(np.abs(r["times"] - t_decl)))
    return S.distance_to_segments(sites, r["seg0"] + r["shift"][k])


def visible_times(r: dict) -> tuple[float, float]:
    """(first scan whose labels hold a crack, first scan the segmentation sees one)."""
    return S.first_true_time(r["times"], r["labels_crack"]), r["seg_visible"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter series (~4-5 min on 2 cores)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1: numba uses both cores; 2 workers measured no faster)")
    parser.add_argument("--seed-offset", type=int, default=0, help="shift every seed: fresh sequences")
    args = parser.parse_args()
    off = args.seed_offset
    if args.quick:
        n_lead, n_side, n_curve, n_cq, n_quiet, n_cal, n_scans, lab = 2, 1, 1, 2, 1, 1, 4, ()
        amplitudes = AMPLITUDES_QUICK
    else:
        n_lead, n_side, n_curve, n_cq, n_quiet, n_cal, n_scans, lab = 14, 5, 3, 3, 2, 1, 11, LAB_RUNS
        amplitudes = AMPLITUDES
    jobs = []
    for g in GROWTHS:
        jobs += [dict(kind="lead", param=g, seed=off + i, segment=True) for i in range(n_lead if g == 0.25 else n_side)]
    jobs += [dict(kind="quiet", param=k, seed=off + i, n_scans=n_scans) for k in S.KINDS_3D for i in range(n_quiet)]
    jobs += [dict(kind="quiet", param=k, seed=off + 100_000 + i, n_scans=n_scans, calib=True)
             for k in S.KINDS_3D for i in range(n_cal)]
    jobs += [dict(kind="curve", param=a, seed=off + i, n_quiet=n_cq) for a in amplitudes for i in range(n_curve)]
    jobs += [dict(kind="lab", param=float(g), seed=off + s, segment=True) for g, s in lab]

    load0 = os.getloadavg()
    tic = time.perf_counter()
    rows = []
    if args.workers <= 1:
        for i, j in enumerate(jobs):
            rows.append(run_sequence(j))
            print(f"  {i + 1}/{len(jobs)} series ({time.perf_counter() - tic:.0f} s)", file=sys.stderr, flush=True)
    else:
        spawn = multiprocessing.get_context("spawn")  # no fork after numba / OpenMP start-up
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=spawn) as pool:
            for i, r in enumerate(pool.map(run_sequence, jobs)):
                rows.append(r)
                print(f"  {i + 1}/{len(jobs)} series ({time.perf_counter() - tic:.0f} s)", file=sys.stderr,
                      flush=True)
    wall = time.perf_counter() - tic
    load1 = os.getloadavg()
    cost = time_updates(off)

    calib = [r for r in rows if r["job"].get("calib")]
    quiet = [r for r in rows if r["kind"] == "quiet" and not r["job"].get("calib")]
    thr = {ILK: S.calibrate_threshold(np.concatenate([r["ilk_level"] for r in calib])),
           MUD_CAL: S.calibrate_threshold(np.concatenate([r["mud_score"] for r in calib]))}
    mud_fa_cal = sum(np.isfinite(r["mud_declared"]) for r in calib)
    mud_fa_eval = sum(np.isfinite(r["mud_declared"]) for r in quiet)
    methods = [MUD, ILK] + ([MUD_CAL] if mud_fa_cal + mud_fa_eval > 0 else [])
    dt = S.SCAN_DT_MIN
    hours_eval = sum(len(r["times"]) * dt for r in quiet) / 60.0
    hours_cal = sum(len(r["times"]) * dt for r in calib) / 60.0
    n_updates = sum(len(r["times"]) for r in rows)

    print(f"## onset3d: {len(rows)} series, {n_updates + len(rows)} scans of 80x128x128, seed offset {off}"
          f"{', quick' if args.quick else ''}\n")
    print(f"Wall {wall / 60:.1f} min with {args.workers} worker(s) ({wall / max(n_updates, 1):.2f} s per update of "
          f"both methods); load average {load0[0]:.2f} before, {load1[0]:.2f} after (2 cores).  Baseline threshold "
          f"(calibrated on {len(calib)} quiet series, {hours_cal:.1f} h, seeds {off + 100_000}+): ILK z > "
          f"{thr[ILK]:.2f}" + (f"; mudcrack score > {thr[MUD_CAL]:.2f}" if MUD_CAL in methods else "") + ".\n")

    # lead
    print("### Lead (visible - declared, in scans of 3 min)\n")
    lrows, lead_sum = [], {}
    for g in GROWTHS:
        sel = [r for r in rows if r["kind"] == "lead" and r["job"]["param"] == g]
        for m in methods:
            lead_l, lead_s, early = [], [], 0
            for r in sel:
                t_any = first_declaration(r, m, thr)
                early += bool(np.isfinite(t_any) and t_any < r["t_pre"])
                t, _ = declaration(r, m, thr, r["t_pre"])
                vl, vs = visible_times(r)
                lead_l.append((vl - t) / dt if np.isfinite(t) else math.nan)
                lead_s.append((vs - t) / dt if np.isfinite(t) and np.isfinite(vs) else math.nan)
            ll = np.array(lead_l)
            lead_sum[(g, m)] = ll
            q = [S.lead_quantile(ll, p) for p in (0.5, 0.25, 0.75, 0.0)]
            qs = [S.lead_quantile(lead_s, p) for p in (0.5, 0.25, 0.75, 0.0)]
            amp_vis = [r["amplitude"][np.argmax(r["labels_crack"])] for r in sel if r["labels_crack"].any()]
            lrows.append([f"{g:g}", m, str(len(sel)), f"{np.mean(amp_vis):.2f}" if amp_vis else "-",
                          S.share(np.nan_to_num(ll, nan=-np.inf) > 0),
                          f"{S.fmt(q[0], 1)} ({S.fmt(q[1], 1)}-{S.fmt(q[2], 1)})", S.fmt(q[3], 1),
                          S.share(np.nan_to_num(ll, nan=-np.inf) >= TARGET_SCANS - 1e-9),
                          f"{S.fmt(qs[0], 1)} ({S.fmt(qs[1], 1)}-{S.fmt(qs[2], 1)})", str(early)])
    print(S.table(["growth vox/scan", "method", "runs", "mean precursor at the gap, vox", "declared before the gap",
                   "lead vs labels: median (Q1-Q3), scans", "min", "lead >= 3 scans",
                   "lead vs segmentation: median (Q1-Q3)", "declared before the precursor"], lrows))
    print("\nLead from the first declaration at or after the precursor start; 'miss': not declared in the run "
          "(the lowest lead).  Declarations before the precursor are false alarms (last column).\n")

    # curve
    print(f"### Detection curve: P(declared within 2 scans at amplitude A), A in voxels\n")
    crow = []
    for a in amplitudes:
        sel = [r for r in rows if r["kind"] == "curve" and r["job"]["param"] == a]
        crow.append([f"{a:g}"] + [S.share([np.isfinite(declaration(r, m, thr, r["t_pre"])[0]) for r in sel])
                                  for m in methods])
    curve = [r for r in rows if r["kind"] == "curve"]
    early = [sum(first_declaration(r, m, thr) < r["t_pre"] for r in curve) for m in methods]
    print(S.table(["A vox"] + methods, crow))
    print("\nDeclared during the quiet scans of these runs (false): "
          + ", ".join(f"{m} {e}/{len(curve)}" for m, e in zip(methods, early)) + "\n")

    # false alarms
    print(f"### False alarms on quiet series (evaluation seeds, {(n_scans - 1) * dt:.0f} min each; "
          f"{hours_eval:.1f} h in all)\n")
    frow = []
    for kind in S.KINDS_3D:
        sel = [r for r in quiet if r["job"]["param"] == kind]
        h = sum(len(r["times"]) * dt for r in sel) / 60.0
        frow.append([kind, f"{h:.1f}"] + [f"{sum(np.isfinite(first_declaration(r, m, thr)) for r in sel)}"
                                          for m in methods]
                    + [f"{max(r['mud_score'].max() for r in sel):.1f}", f"{max(r['ilk_level'].max() for r in sel):.1f}",
                       f"{max(r['ilk_level'].max() for r in calib if r['job']['param'] == kind):.1f}"])
    tot = [sum(np.isfinite(first_declaration(r, m, thr)) for r in quiet) for m in methods]
    frow.append(["all", f"{hours_eval:.1f}"] + [f"{t} ({t / hours_eval:.2f}/h)" for t in tot]
                + [f"{max(r['mud_score'].max() for r in quiet):.1f}", f"{max(r['ilk_level'].max() for r in quiet):.1f}",
                   f"{thr[ILK]:.1f}"])
    print(S.table(["disturbance", "hours"] + [f"{m}: declarations" for m in methods]
                  + ["mudcrack max score", f"ILK max cluster z (T {thr[ILK]:.1f})", "ILK max, calibration set"], frow))
    print(f"\nmudcrack (defaults) on the calibration quiet set: {mud_fa_cal} declarations in {hours_cal:.1f} h.\n")

    # sites
    print("### Site error at declaration (lead runs; in-plane distance to the nearest true crack segment)\n")
    srow, site_share = [], {}
    for m in methods:
        errs = np.concatenate([site_errors_vox(r, *declaration(r, m, thr, r["t_pre"])) for r in rows
                               if r["kind"] == "lead"] or [np.zeros(0)])
        errs = errs[np.isfinite(errs)]
        if errs.size:
            site_share[m] = float(np.mean(errs <= 2 * S.SUBSET_3D))
            srow.append([m, str(errs.size), f"{np.median(errs):.1f} / {np.percentile(errs, 90):.1f} / {errs.max():.1f}",
                         f"{np.median(errs) / S.SUBSET_3D:.2f} / {np.percentile(errs, 90) / S.SUBSET_3D:.2f} / "
                         f"{errs.max() / S.SUBSET_3D:.2f}", f"{100 * site_share[m]:.0f} %"])
        else:
            srow.append([m, "0", "-", "-", "-"])
    print(S.table(["method", "sites", "median / 90 % / max, voxels", "in subsets of 21 voxels", "within 2 subsets"],
                  srow))

    # cost
    print("\n### Cost per update (80x128x128 scan; measured after the runs, one process)\n")
    print(S.table(["method", "s per update: median (min) of 4", "in the pool (mean, all workers sharing 2 cores)"],
                  [[MUD, f"{cost['mud']:.2f} ({cost['mud_min']:.2f})", f"{np.mean([r['s_mud'] for r in rows]):.2f}"],
                   [ILK, f"{cost['ilk']:.2f} ({cost['ilk_min']:.2f})", f"{np.mean([r['s_ilk'] for r in rows]):.2f}"]]))
    print(f"\nload average during the timing: {cost['load'][0]:.2f} -> {cost['load'][1]:.2f}\n")

    lab_rows = [r for r in rows if r["kind"] == "lab"]
    if lab_rows:
        print("### Secondary: the simulator's own lab timeline (`ct_scan_series`, scans every 3 min, "
              "its precursor law)\n")
        lrow = []
        for r in lab_rows:
            vl, vs = visible_times(r)
            pre = r["amplitude"][~r["labels_crack"]] if r["labels_crack"].any() else r["amplitude"]
            line = [r["label"], str(r["seed"]), f"{r['voxel_um']:.2f}", f"{pre.max():.2f}", S.fmt(r["t_gap"]),
                    S.fmt(vl), S.fmt(vs)]
            for m in methods:
                t = first_declaration(r, m, thr)
                line += [S.fmt(t), S.fmt((vl - t) / dt, 1)]
            lrow.append(line)
        print(S.table(["gap", "seed", "voxel um", "max precursor before the gap, vox", "physics onset",
                       "crack in labels",
                       "segmentation"] + [x for m in methods for x in (f"{m}: declared", "lead, scans")], lrow))
        print()

    print("### Targets\n")
    med = S.lead_quantile(lead_sum[(0.25, MUD)], 0.5)
    print(f"- target: caught >= 3 scans before the gap is visible at 0.25 voxel/scan (median, vs the labels) -> "
          f"measured {S.fmt(med, 1)} scans: {'met' if med >= TARGET_SCANS else 'not met'}")
    base = S.lead_quantile(lead_sum[(0.25, ILK)], 0.5)
    zero = mud_fa_eval == 0
    print(f"- target: mudcrack beats ILK + median on lead at zero false alarms -> mudcrack {S.fmt(med, 1)} scans with "
          f"{mud_fa_eval} false declarations in {hours_eval:.1f} h, ILK {S.fmt(base, 1)} scans at its calibrated "
          f"threshold: {'met' if zero and med > base else 'not met'}")
    sh = site_share.get(MUD, math.nan)
    print(f"- target: sites within 2 subsets (42 voxels) of the true crack (criterion: >= 95 % of the sites) -> "
          f"measured {S.fmt(100 * sh, 0)} %: {'met' if sh >= 0.95 else 'not met'}")
    print(f"- target: <= 3 s per 80x128x128 update on 2 cores -> measured {cost['mud']:.2f} s (median; load "
          f"{cost['load'][0]:.1f}): {'met' if cost['mud'] <= TARGET_COST_S else 'not met'}")
    print(f"- zero false alarms on the quiet series -> mudcrack {mud_fa_eval} in {hours_eval:.1f} h: "
          f"{'met' if zero else 'not met'}")


def time_updates(off: int) -> dict:
    """Per-update cost of both methods on one lead series, in this process (after the pool)."""
    import tomography

    seq = S.lead_sequence_3d(off + 999_999, 0.25)
    vols = [seq.render(k).volume for k in range(6)]
    load0 = os.getloadavg()
    mud = tomography.OnsetDetector(vols[0])
    ilk = ILKBaseline(vols[0])
    mud.update(vols[1], float(seq.times_min[1]))  # warm-up (numba, caches)
    ilk.update(vols[1])
    tm, ti = [], []
    for k in range(2, 6):
        tic = time.perf_counter()
        mud.update(vols[k], float(seq.times_min[k]))
        tm.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        S.cluster_level(ilk.update(vols[k]))
        ti.append(time.perf_counter() - tic)
    return dict(mud=float(np.median(tm)), ilk=float(np.median(ti)), mud_min=float(np.min(tm)),
                ilk_min=float(np.min(ti)), load=(load0[0], os.getloadavg()[0]))


if __name__ == "__main__":
    main()
