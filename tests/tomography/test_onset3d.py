"""Tests of the CT crack-onset detector (tomography.OnsetDetector)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import sim_line
import tomography
from sim_line import VolumeLabel
from tomography import OnsetDetector
from tomography._phantom import add_noise, opening_shift, particles, render

SHAPE = (48, 72, 72)


@pytest.fixture(scope="module")
def packing():
    return particles(SHAPE, seed=11, margin=16.0)


def _scan(packing, shift, seed):
    return add_noise(render(SHAPE, packing, shift=shift)[0], 0.02, seed=seed)


def test_crack_opening_predicted_at_its_site(packing):
    """Static, then a uniform drift (no alarm), then a crack plane y = 40 opening 1 voxel."""
    ref = _scan(packing, (0, 0, 0), 1)
    det = OnsetDetector(ref)
    est = det.update(_scan(packing, (0.0, 0.0, 0.0), 2), 1.0)
    assert not est.alarm and not est.onset and est.onset_time is None
    est = det.update(_scan(packing, (0.1, -0.4, 0.3), 3), 2.0)  # stage drift: background
    assert not est.alarm and est.score < 8
    assert np.allclose(est.background_translation, (0.1, -0.4, 0.3), atol=0.02)
    shifts = opening_shift(packing, point=(0, 40.0, 0), normal=(0, 1, 0), opening=1.0) + (0.1, -0.4, 0.3)
    est = det.update(_scan(packing, shifts, 4), 3.0)
    assert est.alarm and est.onset and est.onset_time == 3.0
    assert est.sites.shape[1] == 3 and len(est.sites) >= 1
    assert abs(est.sites[0, 1] - 40.0) <= 8.0  # within one grid step of the plane
    assert est.mask.shape == SHAPE[1:]
    rows = np.flatnonzero(est.mask.any(axis=1))
    assert rows.min() <= 40 <= rows.max()
    # latched, and a quiet scan afterwards keeps the declaration
    est = det.update(_scan(packing, shifts, 5), 4.0)
    assert est.onset and est.onset_time == 3.0 and det.n_scans == 4


def test_reference_mode_accumulates():
    """Reference mode: each scan against the first; the opening grows 0.3 -> 1.2 voxels."""
    shape = (40, 104, 104)
    parts = particles(shape, seed=12, margin=16.0)
    scan = lambda shift, seed: add_noise(render(shape, parts, shift=shift)[0], 0.02, seed=seed)  # noqa: E731
    det = OnsetDetector(scan((0, 0, 0), 1), mode="reference")
    assert not det.update(scan((0, 0, 0), 2), 1.0).alarm
    half = opening_shift(parts, point=(0, 0, 66.0), normal=(0, 0, 1), opening=0.3)
    est = det.update(scan(half, 3), 2.0)
    assert not est.onset  # 0.3 voxel: below min_jump_vox
    est = det.update(scan(half * 4, 4), 3.0)  # 1.2 voxels against the reference
    assert est.onset and abs(est.sites[0, 2] - 66.0) <= 8.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(mode="sideways"), "mode must be one of"),
    (dict(background="spline"), "background must be"),
    (dict(subset_size=20), "subset_size must be odd"),
    (dict(z_threshold=0), "z_threshold must be"),
    (dict(min_cells=1.5), "min_cells must be an int"),
    (dict(persistence=0), "persistence must be an int"),
])
def test_bad_options(packing, kwargs, match):
    with pytest.raises(ValueError, match=match):
        OnsetDetector(np.zeros(SHAPE), **kwargs)


def test_bad_updates(packing):
    det = OnsetDetector(_scan(packing, (0, 0, 0), 1))
    with pytest.raises(ValueError, match="reference shape"):
        det.update(np.zeros((10, 10, 10)), 1.0)
    det.update(_scan(packing, (0, 0, 0), 2), 1.0)
    with pytest.raises(ValueError, match="t_min must increase"):
        det.update(_scan(packing, (0, 0, 0), 3), 1.0)
    with pytest.raises(ValueError, match="volume must be a 3D"):
        det.update(np.zeros((10, 10)), 2.0)


def _first(times, flags):
    return next((float(t) for t, f in zip(times, flags) if f), np.nan)


@pytest.mark.slow
def test_simulated_lab_scans_lead_the_segmentation():
    """300 um sample, 1-min scans: the detector declares onset at least one scan before the
    crack segmentation sees a crack, at the crack; a crack-free 200 um sample (83 % of the
    cracking stress at most) never alarms."""
    series = sim_line.ct_scan_series(300, seed=0, interval_min=1.0, before_min=2.0, after_min=1.0)
    det = OnsetDetector(series.renders[0].volume)
    declared, sites = None, None
    for t, r in zip(series.times_min[1:], series.renders[1:]):
        est = det.update(r.volume, float(t))
        if est.onset and declared is None:
            declared, sites = float(t), est.sites
    seen = [tomography.segment_cracks_3d(tomography.segment_phases(r.volume).phases, r.voxel_um).n_cracks > 0
            for r in series.renders]
    visible = _first(series.times_min, seen)
    assert declared is not None and visible - declared >= 1.0
    # site error: in-plane distance to the nearest crack column once the crack exists
    crack = next(r for r in series.renders if np.any(r.labels == VolumeLabel.CRACK))
    dist = ndimage.distance_transform_edt(~np.any(crack.labels == VolumeLabel.CRACK, axis=0))
    y, x = np.round(sites[0, 1:]).astype(int)
    assert dist[y, x] <= 8.0  # one DVC grid step

    free = sim_line.ct_scan_series(200, seed=1, interval_min=1.0, before_min=3.0, after_min=2.0)
    det = OnsetDetector(free.renders[0].volume)
    for t, r in zip(free.times_min[1:], free.renders[1:]):
        assert not det.update(r.volume, float(t)).alarm
