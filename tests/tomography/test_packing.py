"""Tests of particle labelling and local packing maps (the CT study's 18^3 kernel method)."""

from __future__ import annotations

import numpy as np
import pytest

import sim_line
from sim_line import VolumeLabel as L
from sim_line import render_volume
from tomography import (PackingMaps, Phase, coating_layer, label_particles, packing_maps, packing_near_cracks,
                        segment_cracks_3d, segment_phases)

TO_PHASE = np.array([0, 1, 2, 3, 0, 0, 4, 0], dtype=np.uint8)


def ball(shape, centre, radius):
    kk, jj, ii = np.indices(shape)
    return (kk - centre[0]) ** 2 + (jj - centre[1]) ** 2 + (ii - centre[2]) ** 2 < radius**2


def brute_force(labels, kernel, material=None):
    """Distinct particles and particle fraction in the window [c - k//2, c + k - k//2 - 1]."""
    lo, hi = kernel // 2, kernel - kernel // 2
    mat = np.ones(labels.shape, bool) if material is None else material
    count = np.zeros(labels.shape, int)
    frac = np.zeros(labels.shape)
    for c in np.ndindex(labels.shape):
        win = tuple(slice(max(x - lo, 0), x + hi) for x in c)
        lab = labels[win]
        count[c] = len(np.unique(lab[lab > 0]))
        frac[c] = np.sum((lab > 0) & mat[win]) / max(np.sum(mat[win]), 1)
    return count, frac


@pytest.fixture(scope="module")
def run():
    return sim_line.simulate_lab(300, seed=0)


# ---------------------------------------------------------------- labelling
def test_separate_spheres_are_counted_exactly():
    shape = (36, 36, 36)
    mask = np.zeros(shape, bool)
    balls = []
    for c in np.ndindex(3, 3, 3):
        b = ball(shape, 6 + 12 * np.array(c), 4.0)
        balls.append(b)
        mask |= b
    pl = label_particles(mask)
    assert pl.count == 27 and pl.labels.dtype == np.int32
    assert sorted(pl.volumes_vox.tolist()) == [balls[0].sum()] * 27
    for b in balls:  # one label per sphere
        assert len(np.unique(pl.labels[b])) == 1
    np.testing.assert_array_equal(pl.labels > 0, mask)


def test_overlapping_spheres_are_split():
    shape = (24, 24, 40)
    a, b = ball(shape, (12, 12, 12), 6.0), ball(shape, (12, 12, 22), 6.0)  # 10 apart: overlap 2 voxels
    pl = label_particles(a | b)
    assert pl.count == 2
    assert pl.volumes_vox.min() > 0.4 * (a | b).sum()
    ids = pl.labels[12, 12, [12, 22]]
    assert ids[0] != ids[1] and 0 not in ids
    # a speck below min_peak_vox still gets its own label
    speck = np.zeros(shape, bool)
    speck[2, 2, 2] = True
    pl = label_particles(a | b | speck, min_peak_vox=2.0)
    assert pl.count == 3 and pl.labels[2, 2, 2] > 0


# ---------------------------------------------------------------- kernel maps
@pytest.mark.parametrize("kernel", [5, 6])
def test_packing_maps_match_brute_force(kernel):
    shape = (14, 16, 15)
    labels = np.zeros(shape, np.int32)
    labels[ball(shape, (4, 4, 4), 3.0)] = 1
    labels[ball(shape, (9, 11, 10), 3.5)] = 2
    labels[2:4, 12:14, 1:3] = 3
    labels[12, 2, 13] = 4
    material = np.ones(shape, bool)
    material[:, :, 7] = False  # a "crack" plane: not material
    count, frac = brute_force(labels, kernel, material)
    maps = packing_maps(labels, 2.0, kernel=kernel, material=material)
    assert isinstance(maps, PackingMaps) and maps.count.dtype == np.uint16
    assert maps.volume_fraction.dtype == np.float32 and maps.density_per_mm3.dtype == np.float32
    np.testing.assert_array_equal(maps.count, count)
    np.testing.assert_allclose(maps.volume_fraction, frac, atol=1e-6)
    # density: count per um^3 of material in the window, in 1/mm^3
    lo, hi = kernel // 2, kernel - kernel // 2
    c = (7, 8, 3)
    win = tuple(slice(max(x - lo, 0), x + hi) for x in c)
    assert maps.density_per_mm3[c] == pytest.approx(count[c] / (material[win].sum() * 8.0 * 1e-9), rel=1e-5)
    # without a material mask every voxel counts
    _, frac_all = brute_force(labels, kernel)
    np.testing.assert_allclose(packing_maps(labels, 2.0, kernel=kernel).volume_fraction, frac_all, atol=1e-6)


def test_uniform_packing_and_particle_labels_input():
    labels = np.zeros((30, 30, 30), np.int32)
    labels[::2] = 1  # every other slice: volume fraction 1/2 in any window of even side
    maps = packing_maps(labels, 1.0, kernel=10)
    np.testing.assert_allclose(maps.volume_fraction[5:25, 5:25, 5:25], 0.5, atol=1e-6)
    assert np.all(maps.count == 1)
    pl = label_particles(ball((20, 20, 20), (10, 10, 10), 5.0))
    assert packing_maps(pl, 1.5, kernel=4).count.max() == 1


def test_near_and_far_from_a_crack():
    """Dense particles along a crack plane, sparse far from it."""
    shape = (24, 48, 64)
    labels = np.zeros(shape, np.int32)
    n = 0
    for z in range(3, 24, 6):
        for y in range(3, 48, 6):
            for x in list(range(20, 31, 5)) + list(range(37, 46, 5)) + [4, 58]:
                n += 1
                labels[ball(shape, (z, y, x), 2.0)] = n
    cracks = np.zeros(shape, bool)
    cracks[:, :, 33:35] = True
    labels[cracks] = 0
    maps = packing_maps(labels, 2.0, kernel=6, material=~cracks)
    cmp_ = packing_near_cracks(maps, cracks, near_um=6.0, far_um=30.0)
    assert cmp_.mean_fraction_near > 2 * cmp_.mean_fraction_far
    assert cmp_.mean_count_near > cmp_.mean_count_far
    for share in (cmp_.fraction_near, cmp_.fraction_far, cmp_.count_near, cmp_.count_far):
        assert share.sum() == pytest.approx(1.0) and np.all(share >= 0)
    assert cmp_.fraction_edges[0] == 0.0 and cmp_.fraction_edges[-1] == 1.0
    np.testing.assert_allclose(np.diff(cmp_.count_edges), 1.0)
    d = np.abs(np.arange(64) - 33.5) - 1.0  # distance of the voxel centres from the crack, voxels
    assert cmp_.n_near == shape[0] * shape[1] * np.sum((d > 0) & (d <= 3.0))


# ---------------------------------------------------------------- rendered ground truth
def _packing(phases, v, cracks, *, layer):
    parts = label_particles(phases == Phase.PARTICLE)
    material = layer & ~cracks
    maps = packing_maps(parts, v, material=material)
    return parts, maps, packing_near_cracks(maps, cracks, within=material)


def test_rendered_packing_against_labels_and_compression(run):
    v = 2.5
    r = render_volume(run.snapshot_at(90.0), shape=(64, 96, 96), voxel_um=v)
    seg = segment_phases(r.volume)
    cs = segment_cracks_3d(seg.phases, v)
    layer = coating_layer(seg.phases, voxel_um=v)
    parts, maps, cmp_ = _packing(seg.phases, v, cs.mask, layer=layer)
    truth = TO_PHASE[r.labels]
    t_parts, t_maps, t_cmp = _packing(truth, v, r.labels == L.CRACK, layer=coating_layer(truth, voxel_um=v))
    # the segmented particle phase differs from the labels at particle rims only (< 1 %
    # of the voxels), so the kernel fractions agree to ~0.01; watershed counts agree to
    # the few particles split or merged differently in each window
    assert abs(cmp_.mean_fraction_near - t_cmp.mean_fraction_near) < 0.02
    assert abs(cmp_.mean_fraction_far - t_cmp.mean_fraction_far) < 0.02
    assert cmp_.mean_count_near == pytest.approx(t_cmp.mean_count_near, rel=0.1)
    assert cmp_.mean_count_far == pytest.approx(t_cmp.mean_count_far, rel=0.1)
    assert parts.count == pytest.approx(t_parts.count, rel=0.1)
    # the renderer's crack opening displaces the particles away from the cracks: the
    # material between them is compressed (the CT study's observation); before cracking
    # the layer holds 1 - porosity
    pre = run.snapshot_at(39.0)
    r0 = render_volume(pre, shape=(64, 96, 96), voxel_um=v)
    seg0 = segment_phases(r0.volume)
    layer0 = coating_layer(seg0.phases, voxel_um=v)
    maps0 = packing_maps(label_particles(seg0.phases == Phase.PARTICLE), v, material=layer0)
    before = float(np.nanmean(maps0.volume_fraction[layer0]))
    assert before == pytest.approx(1.0 - pre.porosity, abs=0.03)
    assert cmp_.mean_fraction_far > before + 0.03


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("call, match", [
    (lambda lab: label_particles(lab[0] > 0), "3D"),
    (lambda lab: label_particles(lab > 0, smooth_sigma=-1.0), "smooth_sigma"),
    (lambda lab: label_particles(lab > 0, min_distance=0), "min_distance"),
    (lambda lab: label_particles(lab > 0, min_peak_vox=float("nan")), "min_peak_vox"),
    (lambda lab: packing_maps(lab, 0.0), "voxel_um"),
    (lambda lab: packing_maps(lab, 1.0, kernel=0), "kernel"),
    (lambda lab: packing_maps(lab.astype(float), 1.0), "integer"),
    (lambda lab: packing_maps(lab, 1.0, material=np.ones((2, 2, 2), bool)), "material"),
    (lambda lab: packing_near_cracks("maps", lab > 0), "PackingMaps"),
    (lambda lab: packing_near_cracks(packing_maps(lab, 1.0, kernel=4), np.zeros((3, 3, 3), bool)), "cracks"),
    (lambda lab: packing_near_cracks(packing_maps(lab, 1.0, kernel=4), lab > 0, near_um=5.0, far_um=2.0), "far_um"),
    (lambda lab: packing_near_cracks(packing_maps(lab, 1.0, kernel=4), np.zeros(lab.shape, bool)), "empty"),
    (lambda lab: packing_near_cracks(packing_maps(lab, 1.0, kernel=4), lab > 0, fraction_bins=0), "fraction_bins"),
])
def test_bad_arguments(call, match):
    lab = np.zeros((12, 12, 12), np.int32)
    lab[ball(lab.shape, (6, 6, 6), 3.0)] = 1
    with pytest.raises(ValueError, match=match):
        call(lab)


def test_inputs_are_not_modified():
    lab = np.zeros((12, 12, 12), np.int32)
    lab[ball(lab.shape, (6, 6, 6), 3.0)] = 1
    mask = lab > 0
    before = lab.copy()
    label_particles(mask)
    maps = packing_maps(lab, 1.0, kernel=4, material=np.ones(lab.shape, bool))
    cracks = np.zeros(lab.shape, bool)
    cracks[:, :, 0] = True
    packing_near_cracks(maps, cracks, near_um=2.0, far_um=3.0)
    np.testing.assert_array_equal(lab, before)
    assert mask.sum() == before.astype(bool).sum()
