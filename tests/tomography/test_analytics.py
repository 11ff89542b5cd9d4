"""Tests of the CT analytics: heights, solvent level, porosity, CIF, delamination, resampling.

Ground truth: hand-built phase volumes (exact answers) and sim_line renders of a simulated
300 um lab sample (`simulate_lab`) at several drying phases, compared with the renderer's
voxel labels (method error) and with the physics snapshot (total error).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sim_line
from sim_line import VolumeLabel as L
from sim_line import render_volume
from tomography import (Phase, cif_profile, coating_layer, crack_intensity_3d, detect_delamination, height_map,
                        porosity_profile, resample_volume, segment_cracks_3d, segment_phases, solvent_level)

P = Phase
# VolumeLabel -> Phase: cracks, bubbles and delamination gaps are air
TO_PHASE = np.array([P.AIR, P.SOLVENT, P.PORE, P.PARTICLE, P.AIR, P.AIR, P.SUBSTRATE, P.AIR], dtype=np.uint8)
DRY = (P.AIR, P.PORE, P.PARTICLE, P.SUBSTRATE)
WET = (P.AIR, P.SOLVENT, P.PORE, P.PARTICLE, P.SUBSTRATE)


def slab(shape=(40, 24, 24), sub=5, coat=20, solvent=0) -> np.ndarray:
    """Substrate, a pore layer ``coat`` voxels thick, an optional solvent layer, air."""
    ph = np.full(shape, P.AIR, dtype=np.uint8)
    ph[:sub] = P.SUBSTRATE
    ph[sub:sub + coat] = P.PORE
    ph[sub + coat:sub + coat + solvent] = P.SOLVENT
    return ph


@pytest.fixture(scope="module")
def run():
    return sim_line.simulate_lab(300, seed=0)


def render(snap, **kw):
    kw.setdefault("shape", (64, 96, 96))
    return render_volume(snap, **kw)


def layer_truth(r, n_bins):
    """Crack area fraction and porosity per normalised-height bin from the render's labels."""
    lay = r.labels[r.substrate_top_vox:r.coating_top_vox]
    zeta = (np.arange(len(lay)) + 0.5) / len(lay)
    b = np.minimum((zeta * n_bins).astype(int), n_bins - 1)
    crack = np.array([np.mean(lay[b == i] == L.CRACK) for i in range(n_bins)])
    return crack, lay


# ---------------------------------------------------------------- exact answers
def test_height_map_of_a_slab_with_a_bump_and_a_hole():
    ph = slab()
    ph[25:28, 3, 4] = P.PARTICLE  # a particle standing 3 voxels proud
    ph[5:25, 10, 10] = P.AIR  # a through-hole: no coating in this column
    h = height_map(ph, 2.0)
    assert h.height_um.dtype == np.float32 and h.height_um.shape == (24, 24)
    assert h.height_um[0, 0] == 40.0 and h.height_um[3, 4] == 46.0
    assert np.isnan(h.height_um[10, 10])
    assert h.median_height_um == 40.0
    assert h.mean_height_um == pytest.approx((40.0 * (24 * 24 - 2) + 46.0) / (24 * 24 - 1))
    assert h.coverage == pytest.approx(1 - 1 / 576)
    assert np.all(h.substrate_top_vox == 5)
    # the envelope fills the hole up to the median top and keeps the bump
    env = coating_layer(ph, voxel_um=2.0)
    assert env[:, 10, 10].sum() == 20 and env[:, 3, 4].sum() == 23 and env[:, 0, 0].sum() == 20
    assert not env[:5].any()


def test_height_map_follows_a_stepped_substrate():
    ph = slab()
    ph[5:7, :, 12:] = P.SUBSTRATE  # substrate 2 voxels higher on one side
    h = height_map(ph, 1.5)
    np.testing.assert_allclose(h.height_um[:, :12], 30.0)
    np.testing.assert_allclose(h.height_um[:, 12:], 27.0)
    h0 = height_map(ph, 1.5, substrate_top_vox=5)
    np.testing.assert_allclose(h0.height_um, 30.0)


def test_solvent_layer_thickness_and_top():
    ph = slab(solvent=6)
    ph[15:25, 0, :] = P.SOLVENT  # solvent in a crack below the top is not the supernatant
    s = solvent_level(ph, 2.5)
    np.testing.assert_allclose(s.thickness_um, 15.0)
    assert s.mean_thickness_um == pytest.approx(15.0)
    assert s.top_um == pytest.approx(65.0)
    assert s.coverage == 1.0
    dry = solvent_level(slab(), 2.5)
    assert dry.mean_thickness_um == 0.0 and dry.coverage == 0.0 and dry.top_um == pytest.approx(50.0)


def test_porosity_profile_exact():
    ph = slab()
    ph[5:15, :, :12] = P.PARTICLE  # lower half: half the columns particle
    pr = porosity_profile(ph, n_bins=2)
    np.testing.assert_allclose(pr.z_frac, [0.25, 0.75])
    np.testing.assert_allclose(pr.profile, [0.5, 1.0])
    assert pr.porosity == pytest.approx(0.75)
    assert pr.voxels.tolist() == [10 * 576, 10 * 576]
    # excluding the particle-free upper half leaves the lower half
    excl = np.zeros(ph.shape, bool)
    excl[15:25] = True
    pe = porosity_profile(ph, n_bins=2, exclude=excl)
    assert pe.porosity == pytest.approx(0.5) and np.isnan(pe.profile[1])


def test_cylinder_and_cone_cracks_give_exact_cif():
    ph = slab(shape=(40, 32, 32))
    jj, ii = np.mgrid[:32, :32]
    rr = np.hypot(jj - 15.5, ii - 15.5)
    cyl = rr < 5.0
    ph[5:25][:, cyl] = P.AIR
    cracks = np.zeros(ph.shape, bool)
    cracks[5:25][:, cyl] = True
    assert crack_intensity_3d(cracks, ph) == pytest.approx(cyl.sum() / 1024)
    prof = cif_profile(cracks, ph, n_bins=4)
    np.testing.assert_allclose(prof.cif, cyl.sum() / 1024)
    # a cone widening upwards: one bin per slice reproduces the per-slice areas
    ph = slab(shape=(40, 32, 32))
    cracks = np.zeros(ph.shape, bool)
    for k in range(20):
        disk = rr < 2.0 + 0.5 * k
        cracks[5 + k][disk] = True
        ph[5 + k][disk] = P.AIR
    prof = cif_profile(cracks, ph, n_bins=20)
    np.testing.assert_allclose(prof.cif, cracks[5:25].mean(axis=(1, 2)))
    assert prof.cif_3d == pytest.approx(cracks[5:25].mean())
    assert np.all(np.diff(prof.cif) >= 0)


def test_delamination_exact():
    ph = slab()
    ph[5:7, :12, :] = P.AIR  # a 2-voxel gap under half the area
    ph[5:25, 20:, 20:] = P.AIR  # a through-crack: 16 columns without coating
    d = detect_delamination(ph, 2.0)
    assert d.fraction == pytest.approx(12 * 24 / 576)
    assert d.mean_gap_um == pytest.approx(4.0)
    assert d.exposed_fraction == pytest.approx((12 * 24 + 16) / 576)
    assert np.isnan(d.gap_um[22, 22]) and d.gap_um[0, 0] == 4.0 and d.gap_um[15, 0] == 0.0
    assert detect_delamination(ph, 2.0, min_gap_um=5.0).fraction == 0.0
    bonded = detect_delamination(slab(), 2.0)
    assert bonded.fraction == 0.0 and bonded.mean_gap_um == 0.0 and bonded.exposed_fraction == 0.0


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32])
def test_resample_block_mean(dtype):
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 200, size=(9, 8, 10)).astype(dtype)
    out = resample_volume(vol, 1.25, 2.5)
    assert out.voxel_um == 2.5 and out.volume.shape == (4, 4, 5) and out.volume.dtype == dtype
    ref = vol[:8].astype(np.float64).reshape(4, 2, 4, 2, 5, 2).mean(axis=(1, 3, 5))
    if dtype == np.float32:
        np.testing.assert_allclose(out.volume, ref, rtol=1e-6)
    else:
        np.testing.assert_array_equal(out.volume, np.rint(ref))
    assert resample_volume(vol, 2.0, 2.0).volume is not vol  # never a view of the input


def test_resample_labels_majority_and_nearest():
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[:2, :2, :2] = 3
    lab[0, 0, 0] = 1  # minority inside the block
    out = resample_volume(lab, 1.0, 2.0, labels=True)
    assert out.volume.dtype == np.uint8 and out.volume.shape == (2, 2, 2)
    assert out.volume[0, 0, 0] == 3 and out.volume.sum() == 3
    near = resample_volume(np.arange(27, dtype=np.int32).reshape(3, 3, 3), 1.0, 1.5, labels=True)
    assert near.volume.shape == (2, 2, 2) and set(np.unique(near.volume)) <= set(range(27))


def test_resample_non_integer_factor_keeps_the_mean_and_extent():
    z = np.linspace(0, 1, 30, dtype=np.float32)[:, None, None] * np.ones((1, 20, 20), np.float32)
    out = resample_volume(z, 2.0, 3.0)
    assert out.volume.dtype == np.float32 and out.volume.shape == (20, 13, 13) and out.voxel_um == 3.0
    # a linear ramp resamples to the ramp at the new voxel centres
    centres_old = ((np.arange(20) + 0.5) * 3.0) / 2.0 - 0.5
    np.testing.assert_allclose(out.volume[:, 6, 6], np.interp(centres_old, np.arange(30), z[:, 0, 0]), atol=2e-3)


# ---------------------------------------------------------------- rendered ground truth
@pytest.mark.parametrize("t_min", [10.0, 30.0])
def test_consolidation_heights_solvent_and_porosity(run, t_min):
    snap = run.snapshot_at(t_min)
    assert snap.phase == sim_line.DryingPhase.CONSOLIDATION and snap.solvent_level_um > 5.0
    r = render(snap, shape=(80, 96, 96))
    v = r.voxel_um
    seg = segment_phases(r.volume, classes=WET)
    h = height_map(seg.phases, v)
    # each interface is found at the voxel face nearest to it (+-v/2), two interfaces: +-v.
    # The solvent/pore contrast is 0.11 of full scale against a noise sigma of 0.02: the
    # midpoint threshold is 2.75 sigma from each level, ~0.3 % of the voxels flip and move
    # the top of a few % of the columns by more than a voxel.
    assert abs(h.mean_height_um - snap.solid_thickness_um) <= 0.75 * v
    assert np.mean(np.abs(h.height_um - snap.solid_thickness_um) <= v + 1e-3) >= 0.97
    s = solvent_level(seg.phases, v, heights=h)
    assert abs(s.mean_thickness_um - snap.solvent_level_um) <= 0.75 * v
    assert np.mean(np.abs(s.thickness_um - snap.solvent_level_um) <= v + 1e-3) >= 0.95
    assert abs(s.top_um - (snap.solid_thickness_um + snap.solvent_level_um)) <= v
    assert s.coverage > 0.99
    # porosity: vs the labels only partial-volume voxels at particle rims flip with the
    # noise (sigma 0.02 against a 0.44 contrast): < 1 %; vs the snapshot add the finite
    # sample of ~10^3 Boolean-model spheres (~4 % of the solid fraction) -> 0.03
    pr = porosity_profile(seg.phases, n_bins=8, heights=h)
    truth = porosity_profile(TO_PHASE[r.labels], n_bins=8, voxel_um=v)
    assert abs(pr.porosity - truth.porosity) < 0.01
    assert abs(pr.porosity - snap.porosity) < 0.03
    np.testing.assert_allclose(pr.profile, truth.profile, atol=0.02)


@pytest.mark.parametrize("t_min", [60.0, 90.0])
def test_cracked_cif_3d_and_profile(run, t_min):
    snap = run.snapshot_at(t_min)
    assert snap.cracked and snap.cif_3d > 0.1
    r = render(snap, voxel_um=2.5)
    seg = segment_phases(r.volume, classes=DRY)
    h = height_map(seg.phases, r.voxel_um)
    assert abs(h.median_height_um - snap.solid_thickness_um) <= r.voxel_um
    cs = segment_cracks_3d(seg.phases, r.voxel_um, heights=h)
    cif = crack_intensity_3d(cs.mask, seg.phases, heights=h)
    n_bins = 10
    crack_true, lay = layer_truth(r, n_bins)
    # vs labels: crack voxels carry the pure gap grey, so only the envelope height (+-1 of
    # ~52 voxel layers, ~2 % of the CIF) differs -> 0.01
    assert abs(cif - np.mean(lay == L.CRACK)) < 0.01
    # vs the snapshot: the renderer samples the profile per voxel layer and widths are
    # whole voxel columns -> 10 % relative
    assert cif == pytest.approx(snap.cif_3d, rel=0.1)
    prof = cif_profile(cs.mask, seg.phases, n_bins=n_bins, heights=h)
    np.testing.assert_allclose(prof.cif, crack_true, atol=0.02)
    fine = np.linspace(0, 1, 1001)
    snap_bins = [snap.cif_2d_profile(fine[(fine >= a) & (fine <= a + 0.1)]).mean() for a in np.arange(n_bins) / n_bins]
    np.testing.assert_allclose(prof.cif, snap_bins, atol=0.03)
    assert prof.cif[-1] > prof.cif[0]  # cracks open wider at the surface
    # porosity of the material between the cracks, vs the labels
    pr = porosity_profile(seg.phases, exclude=cs.mask, heights=h)
    truth = porosity_profile(TO_PHASE[r.labels], exclude=r.labels == L.CRACK, voxel_um=r.voxel_um)
    assert abs(pr.porosity - truth.porosity) < 0.01


def test_delamination_late(run):
    late = run.snapshot_at(90.0)
    # the simulated debonding lies under the through-cracks (delamination_fraction <
    # cif_2d_base), so it shows as exposed substrate only
    r = render(late, voxel_um=2.5)
    seg = segment_phases(r.volume)
    d = detect_delamination(seg.phases, r.voxel_um)
    base = r.labels[r.substrate_top_vox]
    assert d.fraction == pytest.approx(np.mean(base == L.DELAMINATION), abs=0.01)
    assert d.exposed_fraction == pytest.approx(np.mean((base == L.CRACK) | (base == L.DELAMINATION)), abs=0.01)
    assert d.exposed_fraction == pytest.approx(max(late.cif_2d_base, late.delamination_fraction), abs=0.03)
    # a wider debonding than the cracks' footprint: a gap under coating
    snap = dataclasses.replace(late, delamination_fraction=0.35, delamination_gap_um=10.0)
    r = render(snap, voxel_um=2.5)
    seg = segment_phases(r.volume)
    d = detect_delamination(seg.phases, r.voxel_um)
    base = r.labels[r.substrate_top_vox]
    # columns are classified exactly (the gap is the pure gap grey); the gap height is a
    # run of whole voxels: +-1 voxel
    assert d.fraction == pytest.approx(np.mean(base == L.DELAMINATION), abs=0.01)
    assert d.exposed_fraction == pytest.approx(snap.delamination_fraction, abs=0.02)
    assert abs(d.mean_gap_um - snap.delamination_gap_um) <= r.voxel_um
    # the gap is not counted as crack; the base 2D CIF stays the cracks' footprint
    cs = segment_cracks_3d(seg.phases, r.voxel_um)
    assert not np.any(cs.mask & (r.labels == L.DELAMINATION))
    assert np.sum(cs.gap_mask & (r.labels == L.DELAMINATION)) / np.sum(r.labels == L.DELAMINATION) > 0.95


def test_cif_survives_resampling_to_5um(run):
    """The CT study quantified cracks on 5 um voxels: render at 1.25 um, resample x2 and x4."""
    snap = run.snapshot_at(75.0)
    r = render_volume(snap, shape=(128, 128, 128), voxel_um=1.25, noise_std=0.02)
    truth = np.mean(r.labels[r.substrate_top_vox:r.coating_top_vox] == L.CRACK)
    for new in (2.5, 5.0):
        rs = resample_volume(r.volume, r.voxel_um, new)
        seg = segment_phases(rs.volume)
        h = height_map(seg.phases, rs.voxel_um)
        cif = crack_intensity_3d(segment_cracks_3d(seg.phases, rs.voxel_um, heights=h).mask, seg.phases, heights=h)
        # block averaging blurs the crack walls over one coarse voxel; crack widths are
        # tens of um, so the walls' share (perimeter x new voxel / 2) stays a few % of the CIF
        assert cif == pytest.approx(truth, rel=0.08), new
        assert abs(h.median_height_um - snap.solid_thickness_um) <= new
        lab = resample_volume(r.labels, r.voxel_um, new, labels=True)
        assert lab.volume.shape == rs.volume.shape


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda ph: height_map(ph[0], 1.0), "3D"),
    (lambda ph: height_map(ph, 0.0), "voxel_um"),
    (lambda ph: height_map(ph, -2.0), "voxel_um"),
    (lambda ph: height_map(ph, float("nan")), "voxel_um"),
    (lambda ph: height_map(ph, "a"), "voxel_um"),
    (lambda ph: height_map(ph.astype(np.float32), 1.0), "integer"),
    (lambda ph: height_map(np.where(ph == P.SUBSTRATE, P.PORE, ph).astype(np.uint8), 1.0), "SUBSTRATE"),
    (lambda ph: height_map(np.where(ph == P.PORE, P.AIR, ph).astype(np.uint8), 1.0), "coating"),
    (lambda ph: height_map(ph, 1.0, substrate_top_vox=99), "substrate_top_vox"),
    (lambda ph: height_map(ph[:, :0], 1.0), "empty"),
    (lambda ph: solvent_level(ph, 0), "voxel_um"),
    (lambda ph: porosity_profile(ph, n_bins=0), "n_bins"),
    (lambda ph: porosity_profile(ph, exclude=np.zeros((2, 2, 2), bool)), "exclude"),
    (lambda ph: porosity_profile(ph, exclude=np.ones(ph.shape, bool)), "empty"),
    (lambda ph: crack_intensity_3d(np.zeros((3, 3, 3), bool), ph), "cracks"),
    (lambda ph: cif_profile(np.zeros(ph.shape, bool), ph, n_bins=2.5), "n_bins"),
    (lambda ph: cif_profile(np.zeros(ph.shape, bool), ph, heights="no"), "heights"),
    (lambda ph: detect_delamination(ph, 1.0, min_gap_um=-1.0), "min_gap_um"),
    (lambda ph: resample_volume(ph, 1.0, 0.0), "new_voxel_um"),
    (lambda ph: resample_volume(ph, 1.0, 1000.0), "new_voxel_um"),
    (lambda ph: resample_volume(ph.astype(np.float32), 1.0, 2.0, labels=True), "labels"),
    (lambda ph: resample_volume(ph[None], 1.0, 2.0), "3D"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(slab())


def test_inputs_are_not_modified():
    ph = slab(solvent=3)
    ph[5:9, :4, :4] = P.AIR
    before = ph.copy()
    cracks = ph == P.AIR
    h = height_map(ph, 1.0)
    solvent_level(ph, 1.0, heights=h)
    porosity_profile(ph, heights=h)
    cif_profile(cracks, ph, heights=h)
    detect_delamination(ph, 1.0, heights=h)
    resample_volume(ph, 1.0, 2.0, labels=True)
    np.testing.assert_array_equal(ph, before)
