"""Crack-onset detection on scripted camera sequences: detection curve, false alarms, lead time.

Sequences (`benchmarks/_onset_sequences.py`; ground truth from sim_line, 512^2 frames every
2 min, 4-6 um/px, precursor scripted on simulated lab films):

* lead runs: quiet frames, then a precursor growing by g px per frame (g = 0.12, 0.06,
  0.25) for D = 10-18 min until a visible gap opens and widens; shake, drift, flicker,
  a changing illumination gradient and 2-3 % noise on every frame;
* detection curve: quiet frames, then the precursor held at A = 0.05-2 px, no gap;
* quiet hours: 31 frames (1 h after the reference) per sequence, one disturbance at a
  time and all combined (shake, drift, flicker, gradient, noise, near-critical films,
  consolidating films); separate seeds calibrate the baselines' thresholds.

Methods, fed the same frames: `vision.OnsetDetector` with its defaults (reference = first
frame) and a baseline: OpenCV DIS optical flow (medium preset, 8-bit frames) of each frame
against the reference, sampled every 10 px, robust affine background (Tukey IRLS) removed,
jump map (max displacement difference to the 4 grid neighbours), robust z (median / MAD
over the frame), declared when an 8-connected cluster of >= 3 grid points exceeds the
threshold; the threshold is the smallest with zero false alarms on the calibration quiet
set.  Lead = visible - declared (minutes), "visible" = first frame with a rendered gap
(`crack_mask.any()`) or the segmentation (`vision.first_visible_time`).

Run from the repository root: ``.venv/bin/python benchmarks/onset2d.py [--quick]
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

GROWTHS = (0.12, 0.06, 0.25)  # px per frame; the target is on the first
AMPLITUDES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.0)
LAB_RUNS = ((300, 0), (500, 0), (800, 0), (300, 1), (500, 1), (800, 1), (250, 0), (250, 1))
LAB_RUNS_QUICK = ((300, 0), (800, 0), (250, 0))
GRID_STEP = 10  # baseline grid, px
MUD, MUD_CAL, DIS = "mudcrack", "mudcrack, score > calibrated T", "DIS + affine"
TARGET_LEAD_MIN, TARGET_COST_S = 10.0, 0.15


# ----------------------------------------------------------------------------- baseline


def robust_affine(points: np.ndarray, u: np.ndarray, n_iter: int = 10, tuning: float = 4.685) -> np.ndarray:
    """Affine fit of u (N, 2) over points (N, 2) by Tukey-biweight IRLS; returns the fitted field."""
    design = np.column_stack([np.ones(len(points)), points - points.mean(0)])
    w = np.ones(len(points))
    fit = np.zeros_like(u)
    for _ in range(n_iter):
        sw = np.sqrt(w)[:, None]
        sol, *_ = np.linalg.lstsq(design * sw, u * sw, rcond=None)
        fit = design @ sol
        r = np.linalg.norm(u - fit, axis=1)
        scale = max(S.MAD_TO_SIGMA * float(np.median(r)), 1e-4)
        x = r / (tuning * scale)
        w = np.where(x < 1.0, (1.0 - x * x) ** 2, 0.0)
        if np.count_nonzero(w) < 6:
            break
    return fit


def jump_map(u: np.ndarray) -> np.ndarray:
    """Max over the 4 grid neighbours of |u_i - u_j| for a field (R, C, 2)."""
    out = np.zeros(u.shape[:2])
    d_r = np.linalg.norm(np.diff(u, axis=0), axis=-1)
    d_c = np.linalg.norm(np.diff(u, axis=1), axis=-1)
    out[1:] = np.maximum(out[1:], d_r)
    out[:-1] = np.maximum(out[:-1], d_r)
    out[:, 1:] = np.maximum(out[:, 1:], d_c)
    out[:, :-1] = np.maximum(out[:, :-1], d_c)
    return out


class DISBaseline:
    """OpenCV DIS (medium) against the reference + robust affine removal + jump-map robust z."""

    def __init__(self, reference: np.ndarray, step: int = GRID_STEP):
        import cv2

        self._cv2 = cv2
        self._ref = self._to8(reference)
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        h, w = reference.shape
        self.rows = np.arange(step, h - step + 1, step)
        self.cols = np.arange(step, w - step + 1, step)
        rr, cc = np.meshgrid(self.rows, self.cols, indexing="ij")
        self.grid = np.stack([rr, cc], axis=-1).astype(float)  # (R, C, 2) px

    @staticmethod
    def _to8(img: np.ndarray) -> np.ndarray:
        if img.dtype == np.uint8:
            return img
        f = img.astype(np.float64)
        return np.clip(255.0 * (f - f.min()) / max(float(np.ptp(f)), 1e-12), 0, 255).astype(np.uint8)

    def update(self, frame: np.ndarray) -> np.ndarray:
        """Robust z of the jump map on the grid, (R, C)."""
        flow = self._dis.calc(self._ref, self._to8(frame), None)  # (H, W, 2): (dx, dy)
        u = flow[np.ix_(self.rows, self.cols)][..., ::-1].astype(np.float64)  # (row, col)
        R, C = u.shape[:2]
        pts = self.grid.reshape(-1, 2)
        res = u.reshape(-1, 2) - robust_affine(pts, u.reshape(-1, 2))
        return S.robust_z(jump_map(res.reshape(R, C, 2)))


# ----------------------------------------------------------------------------- one sequence


def make_sequence(job: dict) -> S.Sequence2D:
    kind, seed = job["kind"], job["seed"]
    if kind == "lead":
        return S.lead_sequence_2d(seed, job["param"])
    if kind == "curve":
        return S.curve_sequence_2d(seed, job["param"])
    if kind == "quiet":
        return S.quiet_sequence_2d(seed, job["param"], n_frames=job["n_frames"])
    return S.lab_sequence_2d(seed, job["param"])  # secondary: the simulator's own timeline


def run_sequence(job: dict) -> dict:
    """Render one sequence, run mudcrack and the baseline on it, keep what scoring needs."""
    import vision

    seq = make_sequence(job)
    f0 = seq.render(0)
    mud = vision.OnsetDetector(f0.image)
    dis = DISBaseline(f0.image)
    images = [f0.image]
    gap_any, score, sites_all, zs, levels = [], [], [], [], []
    declared, sites_decl = math.nan, np.zeros((0, 2))
    t_mud = t_dis = 0.0
    for k in range(1, len(seq)):
        fr = seq.render(k)
        t = float(seq.times_min[k])
        gap_any.append(bool(fr.crack_mask.any()))
        tic = time.perf_counter()
        est = mud.update(fr.image, t)
        t_mud += time.perf_counter() - tic
        sites = np.asarray(est.sites if est.sites is not None else np.zeros((0, 2)), float).reshape(-1, 2)
        score.append(float(est.score))
        sites_all.append(sites)
        if est.onset and math.isnan(declared):
            declared = float(est.onset_time) if est.onset_time is not None else t
            sites_decl = sites
        tic = time.perf_counter()
        z = dis.update(fr.image)
        t_dis += time.perf_counter() - tic
        zs.append(z.astype(np.float32))
        levels.append(S.cluster_level(z))
        if job.get("segment"):
            images.append(fr.image)
    seg_visible = math.nan
    if job.get("segment"):
        df = vision.analyse_sequence(images, seq.times_min, um_per_px=seq.um_per_px)
        seg_visible = float(vision.first_visible_time(df))
    n = len(seq) - 1
    seg0 = seq.segments_px(0) - seq.shift_px[0]
    return dict(job=job, kind=seq.kind, label=seq.label, seed=seq.seed, times=seq.times_min[1:].copy(),
                amplitude=seq.amplitude_px[1:].copy(), t_pre=seq.precursor_start_min, t_gap=seq.gap_start_min,
                gap_any=np.array(gap_any), seg_visible=seg_visible, um_per_px=seq.um_per_px,
                film_gap=seq.film_gap_um, shift=seq.shift_px[1:].copy(), seg0=seg0,
                mud_declared=declared, mud_sites=sites_decl, mud_score=np.array(score), mud_sites_all=sites_all,
                dis_z=zs, dis_level=np.array(levels), dis_grid=dis.grid,
                s_mud=t_mud / max(n, 1), s_dis=t_dis / max(n, 1))


# ----------------------------------------------------------------------------- scoring


def declaration(r: dict, method: str, thr: dict, t_from: float = -math.inf) -> tuple[float, np.ndarray]:
    """(declared time or NaN, sites (K, 2) px at declaration) of one method on one sequence.

    mudcrack (defaults) is latched: its own declaration, or NaN if that came before
    `t_from`.  The calibrated rules are per frame: the first frame at or after `t_from`
    above the threshold (a restart after a false declaration).
    """
    if method == MUD:
        t = r["mud_declared"]
        return (t, r["mud_sites"]) if np.isfinite(t) and t >= t_from else (math.nan, np.zeros((0, 2)))
    ok = r["times"] >= t_from
    if method == MUD_CAL:
        hit = np.flatnonzero((r["mud_score"] > thr[MUD_CAL]) & ok)
        return (float(r["times"][hit[0]]), r["mud_sites_all"][hit[0]]) if hit.size else (math.nan, np.zeros((0, 2)))
    hit = np.flatnonzero((r["dis_level"] > thr[DIS]) & ok)
    if not hit.size:
        return math.nan, np.zeros((0, 2))
    k = hit[0]
    cells = S.clusters_above(r["dis_z"][k].astype(float), thr[DIS])
    return float(r["times"][k]), np.array([r["dis_grid"][c] for c in cells], float).reshape(-1, 2)


def first_declaration(r: dict, method: str, thr: dict) -> float:
    """Time of the first declaration of a method anywhere in the sequence (NaN: none)."""
    return declaration(r, method, thr)[0]


def site_errors_px(r: dict, t_decl: float, sites: np.ndarray) -> np.ndarray:
    if math.isnan(t_decl) or not len(sites):
        return np.zeros(0)
    k = int(np.argmin(np.abs(r["times"] - t_decl)))
    return S.distance_to_segments(sites, r["seg0"] + r["shift"][k])


def visible_times(r: dict) -> tuple[float, float]:
    """(first frame with a rendered gap, segmentation's first visible time)."""
    return S.first_true_time(r["times"], r["gap_any"]), r["seg_visible"]


def lead_rows(rows: list[dict], methods, thr) -> tuple[list[list[str]], dict]:
    out, summary = [], {}
    for g in GROWTHS:
        sel = [r for r in rows if r["kind"] == "lead" and r["job"]["param"] == g]
        if not sel:
            continue
        for m in methods:
            lead_gap, lead_seg, early = [], [], 0
            for r in sel:
                t_any = first_declaration(r, m, thr)
                early += bool(np.isfinite(t_any) and t_any < r["t_pre"])
                t, _ = declaration(r, m, thr, r["t_pre"])
                vg, vs = visible_times(r)
                lead_gap.append(vg - t if np.isfinite(t) else math.nan)
                lead_seg.append(vs - t if np.isfinite(t) and np.isfinite(vs) else math.nan)
            lg = np.array(lead_gap)
            summary[(g, m)] = lg
            q = [S.lead_quantile(lg, p) for p in (0.5, 0.25, 0.75, 0.0)]
            qs = [S.lead_quantile(lead_seg, p) for p in (0.5, 0.25, 0.75, 0.0)]
            ge = np.nan_to_num(lg, nan=-np.inf) >= TARGET_LEAD_MIN - 1e-9
            before = np.nan_to_num(lg, nan=-np.inf) > 0
            out.append([f"{g:g}", m, str(len(sel)), S.share(before), f"{S.fmt(q[0])} ({S.fmt(q[1])}-{S.fmt(q[2])})",
                        S.fmt(q[3]), S.share(ge), f"{S.fmt(qs[0])} ({S.fmt(qs[1])}-{S.fmt(qs[2])})", str(early)])
    return out, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sequences (~3-4 min on 2 cores)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed-offset", type=int, default=0, help="shift every seed: fresh sequences")
    args = parser.parse_args()
    off = args.seed_offset
    if args.quick:
        n_lead, n_lead_side, n_curve, n_quiet, n_cal, n_frames, lab = 8, 3, 2, 1, 1, 16, LAB_RUNS_QUICK
    else:
        n_lead, n_lead_side, n_curve, n_quiet, n_cal, n_frames, lab = 40, 16, 12, 4, 2, 31, LAB_RUNS
    jobs = []
    for g in GROWTHS:
        n = n_lead if g == 0.12 else n_lead_side
        jobs += [dict(kind="lead", param=g, seed=off + i, segment=True) for i in range(n)]
    jobs += [dict(kind="quiet", param=k, seed=off + i, n_frames=n_frames) for k in S.KINDS_2D for i in range(n_quiet)]
    jobs += [dict(kind="quiet", param=k, seed=off + 100_000 + i, n_frames=n_frames, calib=True)
             for k in S.KINDS_2D for i in range(n_cal)]
    jobs += [dict(kind="curve", param=a, seed=off + i) for a in AMPLITUDES for i in range(n_curve)]
    jobs += [dict(kind="lab", param=float(g), seed=off + s, segment=True) for g, s in lab]

    load0 = os.getloadavg()
    tic = time.perf_counter()
    rows = []
    if args.workers <= 1:
        for j in jobs:
            rows.append(run_sequence(j))
    else:
        spawn = multiprocessing.get_context("spawn")  # no fork after numba / OpenMP start-up
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=spawn) as pool:
            for i, r in enumerate(pool.map(run_sequence, jobs)):
                rows.append(r)
                if (i + 1) % 20 == 0:
                    print(f"  {i + 1}/{len(jobs)} sequences ({time.perf_counter() - tic:.0f} s)", file=sys.stderr,
                          flush=True)
    wall = time.perf_counter() - tic
    load1 = os.getloadavg()
    cost = time_updates(off)

    calib = [r for r in rows if r["job"].get("calib")]
    quiet = [r for r in rows if r["kind"] == "quiet" and not r["job"].get("calib")]
    thr = {DIS: S.calibrate_threshold(np.concatenate([r["dis_level"] for r in calib])),
           MUD_CAL: S.calibrate_threshold(np.concatenate([r["mud_score"] for r in calib]))}
    mud_fa_cal = sum(np.isfinite(r["mud_declared"]) for r in calib)
    mud_fa_eval = sum(np.isfinite(r["mud_declared"]) for r in quiet)
    methods = [MUD, DIS] + ([MUD_CAL] if mud_fa_cal + mud_fa_eval > 0 else [])
    hours_eval = sum(len(r["times"]) * S.FRAME_DT_MIN for r in quiet) / 60.0
    hours_cal = sum(len(r["times"]) * S.FRAME_DT_MIN for r in calib) / 60.0

    print(f"## onset2d: {len(rows)} sequences, {sum(len(r['times']) + 1 for r in rows)} frames of 512^2, "
          f"seed offset {off}{', quick' if args.quick else ''}\n")
    print(f"Wall {wall / 60:.1f} min with {args.workers} worker(s); load average {load0[0]:.2f} before, "
          f"{load1[0]:.2f} after (2 cores).  Baseline threshold (calibrated on {len(calib)} quiet sequences, "
          f"{hours_cal:.1f} h, seeds {off + 100_000}+): DIS z > {thr[DIS]:.2f}"
          + (f"; mudcrack score > {thr[MUD_CAL]:.2f}" if MUD_CAL in methods else "") + ".\n")

    # lead
    lead_tab, lead_sum = lead_rows(rows, methods, thr)
    print("### Lead time (visible - declared, min; frames every 2 min)\n")
    print(S.table(["growth px/frame", "method", "runs", "declared before the gap",
                   "lead vs rendered gap: median (Q1-Q3)",
                   "min", "lead >= 10 min", "lead vs segmentation: median (Q1-Q3)", "declared before the precursor"],
                  lead_tab))
    print("\nLead from the first declaration at or after the precursor start; 'miss': not declared in the run "
          "(counted as the lowest lead).  Declarations before the precursor are false alarms (last column); "
          "the baselines' per-frame rule then restarts, a latched mudcrack declaration counts as a miss.\n")

    # curve
    print("### Detection curve: P(declared within 4 frames at amplitude A), A in px\n")
    crow = []
    for a in AMPLITUDES:
        sel = [r for r in rows if r["kind"] == "curve" and r["job"]["param"] == a]
        line = [f"{a:g}"]
        for m in methods:
            line.append(S.share([np.isfinite(declaration(r, m, thr, r["t_pre"])[0]) for r in sel]))
        crow.append(line)
    curve = [r for r in rows if r["kind"] == "curve"]
    early = [sum(first_declaration(r, m, thr) < r["t_pre"] for r in curve) for m in methods]
    print(S.table(["A px"] + methods, crow))
    print("\nDeclared during the quiet frames of these runs (false): "
          + ", ".join(f"{m} {e}/{len(curve)}" for m, e in zip(methods, early)) + "\n")

    # false alarms
    print(f"### False alarms on quiet sequences (evaluation seeds, {(n_frames - 1) * S.FRAME_DT_MIN:.0f} min each; "
          f"{hours_eval:.1f} h in all)\n")
    frow = []
    for kind in S.KINDS_2D:
        sel = [r for r in quiet if r["job"]["param"] == kind]
        h = sum(len(r["times"]) * S.FRAME_DT_MIN for r in sel) / 60.0
        line = [kind, f"{h:.1f}"]
        for m in methods:
            n_fa = sum(np.isfinite(first_declaration(r, m, thr)) for r in sel)
            line.append(f"{n_fa} ({n_fa / h:.2f}/h)")
        line.append(f"{max(r['mud_score'].max() for r in sel):.1f}")
        line.append(f"{max(r['dis_level'].max() for r in sel):.1f}")
        line.append(f"{max(r['dis_level'].max() for r in calib if r['job']['param'] == kind):.1f}")
        frow.append(line)
    tot = [sum(np.isfinite(first_declaration(r, m, thr)) for r in quiet) for m in methods]
    frow.append(["all", f"{hours_eval:.1f}"] + [f"{t} ({t / hours_eval:.2f}/h)" for t in tot]
                + [f"{max(r['mud_score'].max() for r in quiet):.1f}", f"{max(r['dis_level'].max() for r in quiet):.1f}",
                   f"{thr[DIS]:.1f}"])
    print(S.table(["disturbance", "hours"] + [f"{m}: declarations" for m in methods]
                  + ["mudcrack max score", f"DIS max cluster z (T {thr[DIS]:.1f})", "DIS max, calibration set"], frow))
    print(f"\nmudcrack (defaults) on the calibration quiet set: {mud_fa_cal} declarations in {hours_cal:.0f} h.\n")

    # sites
    print("### Site error at declaration (lead runs, distance to the nearest true crack segment)\n")
    srow = []
    site_share = {}
    for m in methods:
        errs = np.concatenate([site_errors_px(r, *declaration(r, m, thr, r["t_pre"])) for r in rows
                               if r["kind"] == "lead"]
                              or [np.zeros(0)])
        errs = errs[np.isfinite(errs)]
        if errs.size:
            site_share[m] = float(np.mean(errs <= 2 * S.SUBSET_2D))
            srow.append([m, str(errs.size), f"{np.median(errs):.1f} / {np.percentile(errs, 90):.1f} / {errs.max():.1f}",
                         f"{np.median(errs) / S.SUBSET_2D:.2f} / {np.percentile(errs, 90) / S.SUBSET_2D:.2f} / "
                         f"{errs.max() / S.SUBSET_2D:.2f}", f"{100 * site_share[m]:.0f} %"])
        else:
            srow.append([m, "0", "-", "-", "-"])
    print(S.table(["method", "sites", "median / 90 % / max, px", "in subsets of 31 px", "within 2 subsets"], srow))

    # cost
    print("\n### Cost per update (512^2 frame; measured after the runs, one process)\n")
    print(S.table(["method", "s per update: median (min) of 8", "in the pool (mean, all workers sharing 2 cores)"],
                  [[MUD, f"{cost['mud']:.3f} ({cost['mud_min']:.3f})", f"{np.mean([r['s_mud'] for r in rows]):.3f}"],
                   [DIS, f"{cost['dis']:.3f} ({cost['dis_min']:.3f})", f"{np.mean([r['s_dis'] for r in rows]):.3f}"]]))
    print(f"\nload average during the timing: {cost['load'][0]:.2f} -> {cost['load'][1]:.2f}\n")

    # lab timeline (secondary)
    lab_rows = [r for r in rows if r["kind"] == "lab"]
    if lab_rows:
        print("### Secondary: the simulator's own lab timeline (its precursor law, not scripted)\n")
        lrow = []
        for r in lab_rows:
            vg, vs = visible_times(r)
            pre = r["amplitude"][~r["gap_any"]] if r["gap_any"].any() else r["amplitude"]
            line = [f"{r['film_gap']:g}", str(r["seed"]), f"{r['um_per_px']:.2f}", f"{pre.max():.2f}",
                    S.fmt(r["t_gap"]), S.fmt(vg), S.fmt(vs)]
            for m in methods:
                t = first_declaration(r, m, thr)
                line += [S.fmt(t), S.fmt(vg - t)]
            lrow.append(line)
        print(S.table(["gap um", "seed", "um/px", "max precursor before the gap, px", "physics onset",
                       "rendered gap", "segmentation"] + [x for m in methods for x in (f"{m}: declared", "lead")],
                      lrow))
        print()

    # targets
    print("### Targets\n")
    med = S.lead_quantile(lead_sum[(0.12, MUD)], 0.5)
    print(f"- target: median lead >= 10 min at 0.12 px/frame (vs the rendered gap) -> measured {S.fmt(med)} min: "
          f"{'met' if med >= TARGET_LEAD_MIN else 'not met'}")
    zero = mud_fa_eval == 0
    base_med = S.lead_quantile(lead_sum[(0.12, DIS)], 0.5)
    beat = zero and med > base_med
    print(f"- target: mudcrack beats DIS + affine on lead at zero false alarms -> mudcrack {S.fmt(med)} min with "
          f"{mud_fa_eval} false declarations in {hours_eval:.0f} h, DIS {S.fmt(base_med)} min at its calibrated "
          f"threshold: {'met' if beat else 'not met'}")
    sh = site_share.get(MUD, math.nan)
    print(f"- target: sites within 2 subsets (62 px) of the true crack (criterion: >= 95 % of the sites) -> "
          f"measured {100 * sh:.0f} %: {'met' if sh >= 0.95 else 'not met'}")
    print(f"- target: <= 0.15 s per 512^2 update on 2 cores -> measured {cost['mud']:.3f} s (median; load "
          f"{cost['load'][0]:.1f}): {'met' if cost['mud'] <= TARGET_COST_S else 'not met'}")
    print(f"- zero false alarms on the quiet hours -> mudcrack {mud_fa_eval} in {hours_eval:.0f} h: "
          f"{'met' if zero else 'not met'}")


def time_updates(off: int) -> dict:
    """Per-update cost of both methods on one lead sequence, in this process (after the pool)."""
    import vision

    seq = S.lead_sequence_2d(off + 999_999, 0.12)
    frames = [seq.render(k).image for k in range(min(len(seq), 10))]
    load0 = os.getloadavg()
    mud = vision.OnsetDetector(frames[0])
    dis = DISBaseline(frames[0])
    mud.update(frames[1], float(seq.times_min[1]))  # warm-up (numba, caches)
    dis.update(frames[1])
    tm, td = [], []
    for k in range(2, len(frames)):
        tic = time.perf_counter()
        mud.update(frames[k], float(seq.times_min[k]))
        tm.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        z = dis.update(frames[k])
        S.cluster_level(z)
        td.append(time.perf_counter() - tic)
    return dict(mud=float(np.median(tm)), dis=float(np.median(td)), mud_min=float(np.min(tm)),
                dis_min=float(np.min(td)), load=(load0[0], os.getloadavg()[0]))


if __name__ == "__main__":
    main()
