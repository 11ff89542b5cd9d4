"""Tests of the streaming 2D crack-onset detector on ground-truth fields and rendered frames.

Rendered sequences script the precursor on a simulated film (`dataclasses.replace` on its
`FilmSnapshot`), so the opening of every frame is known exactly: amplitude A px means the
two sides of every crack of the network move apart by A px (weight 1, mid-length).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

import sim_line
from vision import OnsetDetector, OnsetEstimate

PX = 5.0  # um per px
SUBSET = 31
SHAPE = (384, 384)
DT = 2.0  # min between frames


# ----------------------------------------------------------------------------- helpers


def grid(shape=SHAPE, subset=SUBSET, step=10):
    half = subset // 2
    r = np.arange(half + 2, shape[0] - half - 2, step)
    c = np.arange(half + 2, shape[1] - half - 2, step)
    rr, cc = np.meshgrid(r, c, indexing="ij")
    return np.column_stack([rr.ravel(), cc.ravel()]).astype(float), (len(r), len(c))


def subset_average(displacement_px, points, subset=SUBSET):
    """What a subset DIC sees of an exact field: its box average over the subset."""
    sm = np.stack([ndimage.uniform_filter(displacement_px[..., k].astype(float), subset)
                   for k in range(2)], axis=-1)
    return sm[points[:, 0].astype(int), points[:, 1].astype(int)]


def distance_to_segments(p, segments):
    a, b = segments[:, 0], segments[:, 1]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0.0, 1.0)
    return float(np.min(np.linalg.norm(a + t[:, None] * ab - p, axis=1)))


@lru_cache(maxsize=None)
def film(gap_um: int, seed: int) -> sim_line.FilmSnapshot:
    """A cracking film just after its consolidation ended (the network of future cracks)."""
    run = sim_line.simulate_lab(gap_um, seed=seed, duration_min=90.0)
    return run.snapshot_at(run.frame.attrs["consolidation_end_min"] + 0.5)


def scripted(base, t_min, amp_px, gap_um=0.0):
    top = 2.0 * gap_um / base.crack_spacing_um
    return dataclasses.replace(base, t_min=float(t_min), precursor_opening_um=amp_px * PX, crack_width_um=gap_um,
                               cif_2d_top=top, cif_2d_base=0.16 * top, cracked=gap_um > 0, bubble_radius_um=0.0,
                               delamination_fraction=0.0, delamination_gap_um=0.0)


def frames(amps, *, seed=0, gap_um=None, shake=0.0, drift_px_per_min=0.0, flicker=0.0, gradient=(0.3, 0.0),
           noise=0.02, base=None):
    """Rendered frames (t, SurfaceFrame) every `DT` min with the scripted openings `amps` (px)."""
    base = film(300, seed) if base is None else base
    rng = np.random.default_rng(seed + 100)
    gaps = np.zeros(len(amps)) if gap_um is None else np.asarray(gap_um, float)
    out = []
    for k, (a, g) in enumerate(zip(amps, gaps)):
        t = DT * k
        snap = base if a is None else scripted(base, base.t_min + t, a, g)
        shift = tuple(rng.uniform(-shake, shake, 2) + drift_px_per_min * t * np.array([0.6, 0.8]))
        out.append((t, sim_line.render_surface(snap, shape_px=SHAPE, um_per_px=PX, seed=seed,
                                               flicker_gain=1.0 + rng.uniform(-flicker, flicker),
                                               illumination_gradient=gradient[0] + rng.uniform(-1, 1) * gradient[1],
                                               shift_px=shift, noise_std=noise)))
    return out


def run_detector(seq, **options):
    det = OnsetDetector(seq[0][1].image, **options)
    return det, [det.update(f.image, t) for t, f in seq[1:]]


# ----------------------------------------------------------------------------- ground-truth fields


def test_static_field_gives_finite_zero_evidence():
    pts, gs = grid()
    det = OnsetDetector(np.random.default_rng(0).random(SHAPE))
    for k in range(4):
        est = det.update_field(pts, np.zeros_like(pts), np.ones(len(pts)), np.ones(len(pts), bool),
                               t_min=float(k), grid_shape=gs)
        assert np.isfinite(est.score) and est.score == 0.0
        assert not est.onset and est.onset_time is None
        assert est.sites.shape == (0, 2) and est.n_hot == 0


@pytest.mark.parametrize("kind", ["noise", "shake", "shrinkage", "shake_and_shrinkage"])
def test_no_onset_on_crack_free_fields(kind):
    """DIC-like noise (0.015 px per point), camera shake and uniform shrinkage up to 2 %."""
    pts, gs = grid()
    rng = np.random.default_rng(1)
    det = OnsetDetector(rng.random(SHAPE))
    centre = pts.mean(axis=0)
    for k in range(8):
        u = rng.normal(0.0, 0.015, pts.shape)
        if "shake" in kind:
            u += rng.uniform(-2.0, 2.0, 2)
        if "shrinkage" in kind:
            u += -0.003 * k * (pts - centre)
        est = det.update_field(pts, u, None, None, t_min=float(k), grid_shape=gs)
        assert not est.alarm, (kind, k, est.score)
    assert not det.onset
    if "shrinkage" in kind:
        np.testing.assert_allclose(np.diag(est.background[:, 1:]), -0.021, atol=1e-3)


@pytest.mark.parametrize("amp_px, declared", [(0.05, False), (0.4, True)])
def test_exact_precursor_field_declared_above_the_noise_and_located(amp_px, declared):
    """The renderer's exact field as a subset DIC sees it, with DIC noise of 0.01 px."""
    base = film(300, 3)
    pts, gs = grid()
    rng = np.random.default_rng(3)
    det = OnsetDetector(np.random.default_rng(0).random(SHAPE))
    for k, a in enumerate((0.0, 0.0, 0.0, amp_px)):
        fr = sim_line.render_surface(scripted(base, base.t_min + k, a), shape_px=SHAPE, um_per_px=PX, seed=3)
        u = subset_average(fr.displacement_px, pts) + rng.normal(0, 0.01, pts.shape)
        est = det.update_field(pts, u, None, None, t_min=float(k), grid_shape=gs)
    assert est.onset is declared
    if declared:
        d = np.array([distance_to_segments(p, fr.segments_px) for p in est.sites])
        assert d.size and np.all(d < 2 * SUBSET) and np.median(d) < 0.5 * SUBSET
        assert est.mask.shape == SHAPE and est.mask.dtype == bool and est.mask.any()
        assert np.all(est.site_jump_px > 0.05)


def test_onset_is_latched():
    pts, gs = grid()
    det = OnsetDetector(np.random.default_rng(0).random(SHAPE))
    jump = np.where(pts[:, 1:2] > 190, 0.2, -0.2) * np.array([[0.0, 1.0]])  # a vertical crack
    est = det.update_field(pts, jump, None, None, t_min=1.0, grid_shape=gs)
    assert est.onset and est.onset_time == 1.0
    assert np.all(np.abs(est.sites[:, 1] - 192) <= 10)
    for t in (2.0, 3.0):
        est = det.update_field(pts, np.zeros_like(pts), None, None, t_min=t, grid_shape=gs)
        assert not est.alarm and est.onset and est.onset_time == 1.0


# ----------------------------------------------------------------------------- rendered frames


QUIET = {
    "shake 0.3 px per frame": dict(shake=0.3),
    "slow drift (3 px/h)": dict(drift_px_per_min=0.05),
    "flicker 3 % and changing gradients": dict(flicker=0.03, gradient=(0.4, 0.1)),
    "noise 3 %": dict(noise=0.03),
    "all of them": dict(shake=0.3, drift_px_per_min=0.05, flicker=0.03, gradient=(0.4, 0.1), noise=0.03),
}


@pytest.mark.parametrize("kind", list(QUIET))
def test_no_false_alarm_on_quiet_rendered_frames(kind):
    seq = frames([0.0] * 9, seed=4, **QUIET[kind])
    det, ests = run_detector(seq)
    assert not det.onset, [round(e.score, 1) for e in ests]
    assert all(isinstance(e, OnsetEstimate) and e.sites.shape == (0, 2) and not e.mask.any() for e in ests)
    assert max(e.score for e in ests) < 6.0


def test_no_false_alarm_on_a_film_that_comes_close_to_cracking():
    """A precursor that grows to 0.04 px and stops (well below the ~0.2 px declared)."""
    amps = [0.0, 0.0, 0.0, 0.01, 0.02, 0.03, 0.04, 0.04, 0.04]
    det, ests = run_detector(frames(amps, seed=5, shake=0.3, noise=0.025))
    assert not det.onset, [round(e.score, 1) for e in ests]


def test_no_false_alarm_on_a_consolidating_film():
    """A crack-free film's own snapshots through its consolidation (no precursor)."""
    run = sim_line.simulate_lab(180, seed=6, duration_min=60.0)
    t_end = run.frame.attrs["consolidation_end_min"]
    seq = []
    for k, t in enumerate(np.arange(t_end - 16.0, t_end + 2.0, DT)):
        seq.append((float(t), sim_line.render_surface(run.snapshot_at(float(t)), shape_px=SHAPE, um_per_px=PX,
                                                      seed=6, shift_px=(0.1 * k, -0.05 * k), noise_std=0.02)))
    assert max(s.precursor_opening_um for s in (run.snapshot_at(t) for t, _ in seq)) == 0.0
    det, ests = run_detector(seq)
    assert not det.onset, [round(e.score, 1) for e in ests]


def test_growing_precursor_declared_long_before_the_gap_at_its_sites():
    """0.12 px more opening per 2-min frame, the gap visible 14 min after the precursor started."""
    amps = [0.0, 0.0, 0.0, 0.0] + [0.12 * k for k in range(1, 8)] + [0.84, 0.84]
    gaps = [0.0] * 11 + [2.0, 6.0]
    seq = frames(amps, gap_um=gaps, seed=7, shake=0.2, drift_px_per_min=0.02, flicker=0.03, noise=0.02)
    det, ests = run_detector(seq)
    assert det.onset
    k_decl = next(k for k, e in enumerate(ests, start=1) if e.onset)
    assert amps[k_decl] <= 0.36, amps[k_decl]  # declared at about 0.25 px of opening
    t_visible = next(t for t, f in seq if f.crack_mask.any())
    assert t_visible - det.onset_time >= 10.0
    est = ests[k_decl - 1]
    segments = seq[k_decl][1].segments_px
    d = np.array([distance_to_segments(p, segments) for p in est.sites])
    assert d.size and np.all(d < 2 * SUBSET)


def test_accumulation_across_reference_updates():
    """Reference updates forced (any rise of the residual): the precursor still adds up and
    is declared, the accumulated opening matching the run without updates."""
    amps = [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4]
    seq = frames(amps, seed=8, shake=0.1, noise=0.015)
    det_u, ests_u = run_detector(seq, update_residual_ratio=1.000001, update_valid_drop=0.0)
    det_n, ests_n = run_detector(seq)
    assert ests_u[-1].reference_updates >= 1 and ests_n[-1].reference_updates == 0
    assert det_u.onset and det_n.onset
    # the largest opening measured at the end agrees within the carried DIC error
    assert abs(np.nanmax(ests_u[-1].jump_map) - np.nanmax(ests_n[-1].jump_map)) < 0.05


def test_defaults_only_construction_and_estimate_fields():
    seq = frames([0.0, 0.0], seed=4)
    det = OnsetDetector(seq[0][1].image, um_per_px=PX)
    est = det.update(seq[1][1].image, seq[1][0])
    assert est.sites.shape == (0, 2) and est.sites.dtype == np.float64
    assert est.background.shape == (2, 3)
    assert est.jump_map.shape == est.z_map.shape == est.residual.shape[:2]
    assert est.grid_points.shape == est.jump_map.shape + (2,)
    assert est.scale > 0 and est.t_min == seq[1][0] and est.max_jump_um is not None
    with pytest.raises(AttributeError):
        est.onset = True  # type: ignore[misc]


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_value_error_naming_the_argument():
    rng = np.random.default_rng(0)
    ref = rng.random((128, 128))
    with pytest.raises(ValueError, match="reference"):
        OnsetDetector(rng.random((128, 128, 3)))
    with pytest.raises(ValueError, match="reference"):
        OnsetDetector(np.ones((128, 128)))
    with pytest.raises(ValueError, match="reference"):
        OnsetDetector(rng.random((20, 20)))
    for name, value in [("subset_size", 30), ("step", 0), ("persistence", 0), ("z_threshold", -1.0),
                        ("background", "projective"), ("baselines", (3,)), ("um_per_px", 0.0),
                        ("update_residual_ratio", 0.5)]:
        with pytest.raises(ValueError, match=name):
            OnsetDetector(ref, **{name: value})
    det = OnsetDetector(ref)
    with pytest.raises(ValueError, match="frame"):
        det.update(rng.random((128, 120)), 1.0)
    with pytest.raises(ValueError, match="frame"):
        det.update(rng.random((128, 128, 3)), 1.0)
    with pytest.raises(ValueError, match="frame"):
        det.update(np.full((128, 128), np.nan), 1.0)
    with pytest.raises(ValueError, match="t_min"):
        det.update(ref, float("nan"))
    det.update(ref, 2.0)
    with pytest.raises(ValueError, match="t_min"):
        det.update(ref, 1.0)
    pts, gs = grid((128, 128))
    with pytest.raises(ValueError, match="displacement"):
        det.update_field(pts, np.zeros((3, 2)), t_min=3.0, grid_shape=gs)
    with pytest.raises(ValueError, match="zncc"):
        det.update_field(pts, np.zeros_like(pts), np.ones(3), t_min=3.0, grid_shape=gs)
