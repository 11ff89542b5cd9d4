"""Tests of the streaming crack-onset detector on ground-truth fields and rendered frames."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

import sim_line
from vision._onset import OnsetDetector, OnsetEstimate, assess_field, fit_affine_background

PX = 5.0  # um per px: the 4 um precursor opening is 0.8 px
SUBSET = 31
SHAPE = (384, 384)


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
def lab_run(gap_um: int, seed: int):
    return sim_line.simulate_lab(gap_um, seed=seed, output_interval_s=15.0)


def window(run, before=2.0, after=1.0, step=0.25):
    # 15 s frames (a camera streams every few s; 0.5 min frames would miss a ~1 min precursor)
    t0 = run.frame.attrs["crack_onset_min"]
    return np.arange(t0 - before, t0 + after + 1e-9, step)


@lru_cache(maxsize=None)
def rendered_sequence(gap_um: int, seed: int, shake: float, flicker: float, crack_free: bool = False):
    """Rendered frames (t, SurfaceFrame) with random shake / flicker per frame."""
    run = lab_run(gap_um, seed)
    rng = np.random.default_rng(seed + 100)
    if crack_free:  # same snapshot (no precursor yet) repeated: only noise, shake, flicker
        snap = run.snapshot_at(run.frame.attrs["crack_onset_min"] - 5.0)
        times = np.arange(0.0, 3.01, 0.5) + snap.t_min
        snaps = [snap] * len(times)
    else:
        times = window(run)
        snaps = [run.snapshot_at(t) for t in times]
    out = []
    for t, snap in zip(times, snaps):
        gain = 1.0 + rng.uniform(-flicker, flicker)
        shift = tuple(rng.uniform(-shake, shake, 2))
        out.append((float(t), sim_line.render_surface(snap, shape_px=SHAPE, um_per_px=PX, seed=seed,
                                                      flicker_gain=gain, shift_px=shift, noise_std=0.01)))
    return tuple(out)


# ----------------------------------------------------------------------------- core on fields


def test_affine_background_recovers_shift_and_shrinkage_with_outliers():
    pts, _ = grid()
    rng = np.random.default_rng(0)
    B = np.array([[1.3, -0.002, 0.0005], [-0.7, 0.0004, -0.002]])
    centre = pts.mean(axis=0)
    u = np.column_stack([np.ones(len(pts)), pts - centre]) @ B.T + rng.normal(0, 0.01, (len(pts), 2))
    bad = rng.choice(len(pts), len(pts) // 5, replace=False)
    u[bad] += rng.normal(0, 2.0, (len(bad), 2))  # 20 % gross outliers
    params, c, w = fit_affine_background(pts, u)
    np.testing.assert_allclose(c, centre)
    np.testing.assert_allclose(params[:, 0], B[:, 0], atol=0.01)
    np.testing.assert_allclose(params[:, 1:], B[:, 1:], atol=1e-4)
    assert np.mean(w[bad] == 0) > 0.9


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
    pts, gs = grid()
    rng = np.random.default_rng(1)
    det = OnsetDetector(rng.random(SHAPE))
    centre = pts.mean(axis=0)
    for k in range(8):
        u = rng.normal(0.0, 0.02, pts.shape)
        if "shake" in kind:
            u += rng.uniform(-2.0, 2.0, 2)
        if "shrinkage" in kind:
            u += -0.003 * k * (pts - centre)  # uniform shrinkage up to 2 %
        est = det.update_field(pts, u, np.full(len(pts), 0.95), None, t_min=float(k), grid_shape=gs)
        assert not est.alarm, (kind, k, est.score)
    assert not det.onset
    if "shrinkage" in kind:
        np.testing.assert_allclose(np.diag(est.background[:, 1:]), -0.021, atol=1e-3)


def test_zncc_drop_term_stays_bounded_under_uniform_decorrelation():
    pts, gs = grid()
    rng = np.random.default_rng(2)
    ev = assess_field(pts, rng.normal(0, 0.02, pts.shape), rng.uniform(0.55, 0.65, len(pts)),
                      grid_shape=gs)
    assert ev.score < 6.0 and not ev.alarm


def test_precursor_field_declares_before_gap_and_locates_sites():
    run = lab_run(300, 3)
    pts, gs = grid()
    rng = np.random.default_rng(3)
    det = OnsetDetector(np.random.default_rng(0).random(SHAPE))
    declared_clean = None
    for t in window(run):
        frame = sim_line.render_surface(run.snapshot_at(t), shape_px=SHAPE, um_per_px=PX, seed=3)
        u = subset_average(frame.displacement_px, pts) + rng.normal(0, 0.01, pts.shape)
        est = det.update_field(pts, u, None, None, t_min=float(t), grid_shape=gs)
        if est.onset and declared_clean is None:
            declared_clean = not frame.crack_mask.any()
            assert len(est.sites) > 0
            d = [distance_to_segments(p, frame.segments_px) for p in est.sites]
            assert max(d) < 2 * SUBSET
            assert np.median(d) < 0.5 * SUBSET
            assert est.mask.shape == SHAPE and est.mask.dtype == bool and est.mask.any()
    assert declared_clean is True


def test_onset_is_latched():
    pts, gs = grid()
    det = OnsetDetector(np.random.default_rng(0).random(SHAPE), persistence=1)
    jump = np.where(pts[:, 1:2] > 190, 0.4, -0.4) * np.array([[0.0, 1.0]])  # a vertical crack
    est = det.update_field(pts, jump, None, None, t_min=1.0, grid_shape=gs)
    assert est.onset and est.onset_time == 1.0
    assert np.all(np.abs(est.sites[:, 1] - 192) <= 10)
    for t in (2.0, 3.0):
        est = det.update_field(pts, np.zeros_like(pts), None, None, t_min=t, grid_shape=gs)
        assert not est.alarm and est.onset and est.onset_time == 1.0


# ----------------------------------------------------------------------------- rendered frames


@pytest.mark.parametrize("shake, flicker", [(0.0, 0.0), (2.0, 0.15)])
def test_no_onset_on_rendered_crack_free_sequence(shake, flicker):
    seq = rendered_sequence(300, 4, shake, flicker, crack_free=True)
    det = OnsetDetector(seq[0][1].image)
    for t, frame in seq[1:]:
        est = det.update(frame.image, t)
        assert isinstance(est, OnsetEstimate)
        assert not est.alarm, (t, est.score)
        assert est.score < 3.0
        assert est.mask.shape == SHAPE and not est.mask.any()
    assert not det.onset and det.onset_time is None


def test_no_onset_on_rendered_uniform_shrinkage():
    snap = lab_run(300, 5).snapshot_at(30.0)
    ref = sim_line.render_surface(snap, shape_px=SHAPE, um_per_px=PX, seed=5).image
    det = OnsetDetector(ref)
    for k, strain in enumerate((0.001, 0.002, 0.003, 0.004)):
        # a coarser pixel images the sample smaller: uniform shrinkage about pixel (0, 0)
        img = sim_line.render_surface(snap, shape_px=SHAPE, um_per_px=PX * (1 + strain), seed=5,
                                      flicker_gain=1.1 if k % 2 else 0.9).image
        est = det.update(img, 31.0 + k)
        assert not est.alarm, (strain, est.score)
    np.testing.assert_allclose(np.diag(est.background[:, 1:]), -0.004, atol=5e-4)


def test_rendered_precursor_declared_before_visible_gap():
    seq = rendered_sequence(300, 6, 2.0, 0.15)
    det = OnsetDetector(seq[0][1].image)
    first = None
    for t, frame in seq[1:]:
        est = det.update(frame.image, t)
        if est.onset and first is None:
            first = (t, frame, est)
    assert first is not None
    t, frame, est = first
    assert not frame.crack_mask.any(), "onset declared only once the gap was visible"
    assert est.onset_time == t
    d = np.array([distance_to_segments(p, frame.segments_px) for p in est.sites])
    assert d.size and np.all(d < 2 * SUBSET)
    assert np.median(d) < SUBSET / 2


def test_defaults_only_construction_and_estimate_fields():
    seq = rendered_sequence(300, 4, 0.0, 0.0, crack_free=True)
    det = OnsetDetector(seq[0][1].image)
    est = det.update(seq[1][1].image, seq[1][0])
    assert est.sites.shape == (0, 2) and est.sites.dtype == np.float64
    assert est.background.shape == (2, 3)
    assert est.jump_map.shape == est.strain_map.shape == est.zncc_drop_map.shape == est.z_map.shape
    assert est.grid_points.shape == est.jump_map.shape + (2,)
    assert est.median.shape == est.mad.shape == (3,) and np.all(est.mad > 0)
    assert est.t_min == seq[1][0] and est.max_jump_um is None
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
                        ("background", "projective"), ("weights", (1.0, 2.0)), ("um_per_px", 0.0)]:
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
