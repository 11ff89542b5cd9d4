"""Tests of phase, crack and bubble segmentation against sim_line ground truth and exact phantoms."""

from __future__ import annotations

import numpy as np
import pytest

import sim_line
from sim_line import VolumeLabel as L
from sim_line import render_volume
from tomography import (Phase, PhaseClassifier, crack_intensity_3d, detect_bubbles, segment_cracks_3d,
                        segment_phases, train_segmenter)

P = Phase
TO_PHASE = np.array([P.AIR, P.SOLVENT, P.PORE, P.PARTICLE, P.AIR, P.AIR, P.SUBSTRATE, P.AIR], dtype=np.uint8)
WET = (P.AIR, P.SOLVENT, P.PORE, P.PARTICLE, P.SUBSTRATE)
V = 2.0  # voxel size of the hand-built phantoms, um


@pytest.fixture(scope="module")
def run():
    return sim_line.simulate_lab(300, seed=0)


@pytest.fixture(scope="module")
def bubble_run():
    return sim_line.simulate_lab(300, seed=0, bubble_radius_um=30.0)


def ball(shape, centre, radius):
    kk, jj, ii = np.indices(shape)
    return (kk - centre[0]) ** 2 + (jj - centre[1]) ** 2 + (ii - centre[2]) ** 2 < radius**2


def phantom():
    """A 36-voxel (72 um) pore layer with known voids, and their masks."""
    shape = (48, 64, 64)
    ph = np.full(shape, P.AIR, np.uint8)
    ph[:4] = P.SUBSTRATE
    ph[4:40] = P.PORE
    ph[4:40:5, ::7, ::7] = P.PARTICLE  # some particles for texture
    kk, jj, ii = np.indices(shape)
    layer = (kk >= 4) & (kk < 40)
    cyl = layer & (kk >= 10) & ((jj - 12) ** 2 + (ii - 12) ** 2 < 9)  # open at the top, 30/36 deep
    sheet = layer & (ii >= 54) & (ii < 56)  # a through-crack, substrate to top
    bub = ball(shape, (22, 40, 24), 8)  # r = 16 um, closed
    pore = ball(shape, (20, 14, 44), 2)  # r = 4 um: a pore, below the bubble size
    pit = layer & ball(shape, (40, 50, 40), 4)  # a shallow surface pit: 4/36 deep
    channel = layer & (kk >= 8) & (kk < 30) & ((jj - 52) ** 2 + (ii - 12) ** 2 < 4)  # closed vertical channel
    for m in (cyl, sheet, bub, pore, pit, channel):
        ph[m] = P.AIR
    return ph, dict(cyl=cyl, sheet=sheet, bub=bub, pore=pore, pit=pit, channel=channel)


# ---------------------------------------------------------------- phantoms: exact answers
def test_cracks_bubbles_and_pores_are_told_apart():
    ph, m = phantom()
    cs = segment_cracks_3d(ph, V)
    np.testing.assert_array_equal(cs.mask, m["cyl"] | m["sheet"])
    assert cs.n_cracks == 2 and sorted(cs.spans) == pytest.approx([30 / 36, 1.0])
    np.testing.assert_array_equal(cs.bubble_mask, m["bub"])
    np.testing.assert_array_equal(cs.pore_mask, m["pore"] | m["pit"] | m["channel"])
    assert not cs.gap_mask.any()
    (b,) = cs.bubbles
    assert b.radius_um == pytest.approx((3 * m["bub"].sum() / (4 * np.pi)) ** (1 / 3) * V)
    assert b.radius_um == pytest.approx(16.0, abs=V / 2)
    np.testing.assert_allclose(b.centre_um, (np.array([22, 40, 24]) + 0.5) * V, atol=1e-9)
    assert b.volume_um3 == m["bub"].sum() * V**3 and b.aspect > 0.95
    # the same bubbles from detect_bubbles; a larger minimum radius drops it
    assert detect_bubbles(ph, V).bubbles == cs.bubbles
    assert detect_bubbles(ph, V, min_radius_um=20.0).bubbles == ()
    assert crack_intensity_3d(cs.mask, ph) == pytest.approx((m["cyl"] | m["sheet"]).sum() / (36 * 64 * 64))


def test_bubble_joined_by_a_crack_is_still_a_bubble():
    ph, m = phantom()
    shape = ph.shape
    kk, jj, ii = np.indices(shape)
    link = (kk >= 22) & (kk < 40) & (jj >= 39) & (jj < 41) & (ii >= 10) & (ii < 38)  # 2-voxel sheet into the bubble
    ph[link] = P.AIR
    cs = segment_cracks_3d(ph, V)
    assert len(cs.bubbles) == 1
    assert cs.bubbles[0].radius_um == pytest.approx(16.0, abs=V)
    assert np.sum(cs.bubble_mask & m["bub"]) / m["bub"].sum() > 0.97
    assert np.all(cs.mask[link & ~m["bub"] & ~cs.bubble_mask])  # the sheet stays a crack


def test_min_span_and_gap_separation():
    ph, m = phantom()
    ph[4:6, :, 40:] = P.AIR  # a delamination gap joined to the through-crack
    cs = segment_cracks_3d(ph, V)
    gap = np.zeros(ph.shape, bool)
    gap[4:6, :, 40:] = True
    gap &= ~m["sheet"]
    np.testing.assert_array_equal(cs.gap_mask, gap)
    np.testing.assert_array_equal(cs.mask, m["cyl"] | m["sheet"])
    joined = segment_cracks_3d(ph, V, separate_gap=False)
    assert np.all(joined.mask[gap])
    deep = segment_cracks_3d(ph, V, min_span=0.9)
    np.testing.assert_array_equal(deep.mask, m["sheet"])  # the cylinder spans 30/36 < 0.9


def test_segment_phases_exact_levels():
    ph, _ = phantom()
    grey = np.array([0.05, 0.17, 0.28, 0.72, 0.95], np.float32)[ph]
    seg = segment_phases(grey)
    np.testing.assert_array_equal(seg.phases, ph)
    np.testing.assert_allclose(seg.levels, [0.05, 0.28, 0.72, 0.95], atol=0.01)
    np.testing.assert_allclose(seg.thresholds, [0.165, 0.50, 0.835], atol=0.01)
    assert seg.classes == (P.AIR, P.PORE, P.PARTICLE, P.SUBSTRATE)
    fixed = segment_phases(grey, thresholds=(0.1, 0.6, 0.9))
    np.testing.assert_array_equal(fixed.phases, ph)
    otsu = segment_phases(grey, method="multiotsu")
    np.testing.assert_array_equal(otsu.phases, ph)
    np.testing.assert_allclose(otsu.thresholds, [0.165, 0.50, 0.835], atol=0.01)


# ---------------------------------------------------------------- rendered ground truth
@pytest.mark.parametrize("dtype", ["uint16", "uint8", "float32"])
@pytest.mark.parametrize("t_min, classes, shape", [(10.0, WET, (96, 64, 64)),
                                                   (90.0, (P.AIR, P.PORE, P.PARTICLE, P.SUBSTRATE), (64, 80, 80))])
def test_segment_phases_against_labels(run, dtype, t_min, classes, shape):
    r = render_volume(run.snapshot_at(t_min), shape=shape, dtype=dtype)  # ~2.5-3 um voxels
    truth = TO_PHASE[r.labels]
    seg = segment_phases(r.volume, classes=classes)
    assert seg.phases.dtype == np.uint8 and seg.phases.shape == r.volume.shape
    # residual errors: particle rims with occupancy near 0.5 and ~0.3 % noise flips
    # between the closest levels (solvent/pore, 2.75 sigma)
    assert np.mean(seg.phases == truth) > 0.985
    for p in classes:  # the solvent layer is ~6 voxels thick: its two interface voxels are mixtures
        assert np.mean(seg.phases[truth == p] == p) > 0.9, P(p).name


def test_multiotsu_baseline_and_interfaces(run):
    r = render_volume(run.snapshot_at(90.0), shape=(64, 80, 80))
    truth = TO_PHASE[r.labels]
    otsu = segment_phases(r.volume, method="multiotsu")
    assert np.mean(otsu.phases == truth) > 0.98
    # the substrate/layer interface voxel (partial volume) is fixed by `interfaces`
    r = render_volume(run.snapshot_at(90.0), shape=(64, 80, 80), substrate_um=11.0, voxel_um=2.5)
    k = r.substrate_top_vox  # the voxel straddling the substrate top: 40 % substrate, centre in the layer
    on = segment_phases(r.volume).phases[k]
    off = segment_phases(r.volume, interfaces=False).phases[k]
    assert np.mean(on == TO_PHASE[r.labels[k]]) > np.mean(off == TO_PHASE[r.labels[k]]) + 0.2
    ph, _ = phantom()
    grey = np.array([0.05, 0.17, 0.28, 0.72, 0.95], np.float32)[ph]  # 4 phases present
    with pytest.raises(ValueError, match="peaks"):
        segment_phases(grey, classes=WET, method="peaks")


def test_cracks_against_labels(run):
    r = render_volume(run.snapshot_at(75.0), shape=(64, 96, 96), voxel_um=2.5)
    seg = segment_phases(r.volume)
    cs = segment_cracks_3d(seg.phases, r.voxel_um)
    truth = r.labels == L.CRACK
    assert np.sum(cs.mask & truth) / np.sum(cs.mask | truth) > 0.95
    assert cs.bubbles == () and not cs.bubble_mask.any()
    assert min(cs.spans) >= 0.5


@pytest.mark.parametrize("t_min", [38.0, 44.0, 50.0])
def test_bubbles_against_labels(bubble_run, t_min):
    """A 30 um bubble before cracking (38 min), then growing with cracks through it."""
    snap = bubble_run.snapshot_at(t_min)
    r = render_volume(snap, shape=(72, 96, 96), voxel_um=2.5)
    v = r.voxel_um
    seg = segment_phases(r.volume)
    cs = segment_cracks_3d(seg.phases, v)
    truth = r.labels == L.BUBBLE
    assert len(cs.bubbles) == 1, cs.bubbles
    b = cs.bubbles[0]
    # equivalent radius of the voxelised sphere: +-v/2; where a crack meets the bubble the
    # fillets of the opening add up to another half voxel
    assert b.radius_um == pytest.approx(snap.bubble_radius_um, abs=v)
    centre = (np.argwhere(truth).mean(axis=0) + 0.5) * v
    np.testing.assert_allclose(b.centre_um, centre, atol=1.5 * v)
    assert b.centre_um[0] == pytest.approx(10.0 + 0.5 * snap.solid_thickness_um, abs=v)
    assert np.sum(cs.bubble_mask & truth) / np.sum(cs.bubble_mask | truth) > 0.85
    # crack vs bubble discrimination
    assert np.mean(cs.mask[truth]) < 0.01
    if snap.cracked:
        crack = r.labels == L.CRACK
        assert np.sum(cs.mask & crack) / np.sum(cs.mask | crack) > 0.9
    else:
        assert cs.n_cracks == 0


def test_random_forest_segmenter(run):
    """Train on sparse voxels of one sample, predict another (different particles and cracks)."""
    train = render_volume(run.snapshot_at(60.0), shape=(40, 48, 48), voxel_um=3.5, seed=5)
    test = render_volume(run.snapshot_at(20.0), shape=(48, 56, 56), seed=9)  # consolidating, with solvent
    both = [train, render_volume(run.snapshot_at(10.0), shape=(40, 48, 48), seed=6)]
    rng = np.random.default_rng(0)
    vols, anns = [], []
    for r in both:
        truth = TO_PHASE[r.labels]
        ann = np.full(truth.shape, 255, np.uint8)
        for p in range(5):
            idx = np.flatnonzero(truth.ravel() == p)
            if len(idx):
                ann.ravel()[rng.choice(idx, size=min(150, len(idx)), replace=False)] = p
        vols.append(r.volume)
        anns.append(ann)
    # stack the two training volumes along z (one annotated volume, as in ilastik)
    vol, ann = np.concatenate(vols), np.concatenate(anns)
    kw = dict(sigma_max=4.0, n_estimators=25, max_depth=10, seed=3)
    clf = train_segmenter(vol, ann, **kw)
    assert isinstance(clf, PhaseClassifier) and clf.classes == (0, 1, 2, 3, 4)
    pred = clf.predict(test.volume)
    assert pred.dtype == np.uint8 and pred.shape == test.volume.shape
    assert np.mean(pred == TO_PHASE[test.labels]) > 0.95
    # reproducible for a seed, and chunked prediction (halo 4 sigma_max) matches
    again = train_segmenter(vol, ann, **kw).predict(test.volume)
    np.testing.assert_array_equal(pred, again)
    np.testing.assert_array_equal(clf.predict(test.volume, chunk_z=24), pred)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda v, ph: segment_phases(v[0]), "3D"),
    (lambda v, ph: segment_phases(v, classes=(P.PORE, P.AIR)), "increasing"),
    (lambda v, ph: segment_phases(v, classes=(P.AIR,)), "two"),
    (lambda v, ph: segment_phases(v, classes=(0, 9)), "Phase"),
    (lambda v, ph: segment_phases(v, thresholds=(0.5,)), "thresholds"),
    (lambda v, ph: segment_phases(v, thresholds=(0.6, 0.5, 0.9)), "thresholds"),
    (lambda v, ph: segment_phases(v, method="kmeans"), "method"),
    (lambda v, ph: segment_phases(v, nbins=3), "nbins"),
    (lambda v, ph: segment_phases(v, median_size=0), "median_size"),
    (lambda v, ph: segment_phases(np.zeros_like(v)), "constant"),
    (lambda v, ph: train_segmenter(v, ph[:-1]), "shape"),
    (lambda v, ph: train_segmenter(v, np.full(v.shape, 255, np.uint8)), "two classes"),
    (lambda v, ph: train_segmenter(v, ph.astype(np.float32)), "integer"),
    (lambda v, ph: train_segmenter(v, ph, sigma_min=0.0), "sigma"),
    (lambda v, ph: train_segmenter(v, ph, intensity=False, edges=False, texture=False), "intensity"),
    (lambda v, ph: train_segmenter(v, ph, n_estimators=0), "n_estimators"),
    (lambda v, ph: detect_bubbles(ph, 0.0), "voxel_um"),
    (lambda v, ph: detect_bubbles(ph, V, min_radius_um=-1.0), "min_radius_um"),
    (lambda v, ph: detect_bubbles(ph, V, min_aspect=2.0), "min_aspect"),
    (lambda v, ph: segment_cracks_3d(ph, V, min_span=1.5), "min_span"),
    (lambda v, ph: segment_cracks_3d(ph.astype(float), V), "integer"),
    (lambda v, ph: segment_cracks_3d(ph[:, :, :, None], V), "3D"),
])
def test_bad_arguments(call, match):
    ph, _ = phantom()
    grey = np.array([0.05, 0.17, 0.28, 0.72, 0.95], np.float32)[ph]
    with pytest.raises(ValueError, match=match):
        call(grey, ph)


def test_predict_rejects_bad_chunks_and_inputs_stay_untouched():
    ph, _ = phantom()
    grey = np.array([0.05, 0.17, 0.28, 0.72, 0.95], np.float32)[ph][:24, :24, :24]
    ann = np.full(grey.shape, 255, np.uint8)
    ann[::3, ::3, ::3] = ph[:24, :24, :24][::3, ::3, ::3]
    before_g, before_a = grey.copy(), ann.copy()
    clf = train_segmenter(grey, ann, sigma_max=2.0, n_estimators=5)
    with pytest.raises(ValueError, match="chunk_z"):
        clf.predict(grey, chunk_z=0)
    segment_phases(grey)
    segment_cracks_3d(ph, V)
    np.testing.assert_array_equal(grey, before_g)
    np.testing.assert_array_equal(ann, before_a)
