"""Tests of the CT crack-onset detector (tomography.OnsetDetector).

Phantom tests move analytic particles exactly (`tomography._phantom`); rendered tests script
the precursor on a simulated film (`dataclasses.replace` on its `FilmSnapshot`): amplitude A
voxels means the two sides of every crack of the network move apart by A voxels.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

import sim_line
from sim_line import VolumeLabel
from tomography import OnsetDetector
from tomography._phantom import add_noise, opening_shift, particles, render

SHAPE = (48, 72, 72)
VOXEL_UM = 2.0
SCAN_SHAPE = (80, 64, 64)
DT = 3.0  # min between scans


@pytest.fixture(scope="module")
def packing():
    return particles(SHAPE, seed=11, margin=16.0)


def _scan(packing, shift, seed):
    return add_noise(render(SHAPE, packing, shift=shift)[0], 0.02, seed=seed)


def test_crack_opening_predicted_at_its_site(packing):
    """Static, then a uniform drift (no alarm), then a crack plane y = 40 opening 0.5 voxel."""
    ref = _scan(packing, (0, 0, 0), 1)
    det = OnsetDetector(ref)
    est = det.update(_scan(packing, (0.0, 0.0, 0.0), 2), 1.0)
    assert not est.alarm and not est.onset and est.onset_time is None
    est = det.update(_scan(packing, (0.1, -0.4, 0.3), 3), 2.0)  # stage drift: background
    assert not est.alarm and est.score < 8
    assert np.allclose(est.background_translation, (0.1, -0.4, 0.3), atol=0.02)
    shifts = opening_shift(packing, point=(0, 40.0, 0), normal=(0, 1, 0), opening=0.5) + (0.1, -0.4, 0.3)
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


def test_opening_accumulates_against_the_reference(packing):
    """0.06 voxel more opening per scan: each scan alone is near the noise, but against the
    reference the opening adds up and is declared once it reaches ~0.2 voxel."""
    det = OnsetDetector(_scan(packing, (0, 0, 0), 1))
    declared_at = None
    for k in range(1, 8):
        opening = 0.06 * max(k - 2, 0)
        est = det.update(_scan(packing, opening_shift(packing, point=(0, 0, 36.0), normal=(0, 0, 1),
                                                      opening=opening), 10 + k), float(k))
        if est.onset and declared_at is None:
            declared_at = opening
            assert abs(est.sites[0, 2] - 36.0) <= 8.0
    assert declared_at is not None and 0.1 <= declared_at <= 0.3


@pytest.mark.parametrize("kwargs, match", [
    (dict(background="spline"), "background must be"),
    (dict(subset_size=20), "subset_size must be odd"),
    (dict(z_threshold=0), "z_threshold must be"),
    (dict(min_cells=1.5), "min_cells must be an int"),
    (dict(persistence=0), "persistence must be an int"),
    (dict(baselines=(3,)), "baselines must be"),
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


# ----------------------------------------------------------------------------- rendered scans


@lru_cache(maxsize=None)
def _film(gap_um: float, seed: int, consolidated: bool = True):
    run = sim_line.simulate_lab(gap_um, seed=seed, duration_min=100.0)
    base = run.snapshot_at(run.frame.attrs["consolidation_end_min"] + 0.5)
    pat = sim_line.crack_pattern(spacing_um=base.crack_spacing_um, extent_um=(600.0, 600.0), seed=seed)
    mids = 0.5 * (pat.segments_um[:, 0] + pat.segments_um[:, 1])
    mid = mids[np.argmin(np.linalg.norm(mids - 300.0, axis=1))]
    origin = tuple(float(m - 0.5 * n * VOXEL_UM) for m, n in zip(mid, SCAN_SHAPE[1:]))
    return run, base, origin


def _scripted(base, t_min, amp_vox, gap_um=0.0):
    top = 2.0 * gap_um / base.crack_spacing_um
    return dataclasses.replace(base, t_min=float(t_min), precursor_opening_um=amp_vox * VOXEL_UM,
                               crack_width_um=gap_um, cif_2d_top=top, cif_2d_base=0.16 * top, cracked=gap_um > 0,
                               bubble_radius_um=0.0, delamination_fraction=0.0, delamination_gap_um=0.0)


def _render(snap, origin, seed, shift_vox=(0.0, 0.0), noise=0.02):
    o = (origin[0] - shift_vox[0] * VOXEL_UM, origin[1] - shift_vox[1] * VOXEL_UM)
    return sim_line.render_volume(snap, shape=SCAN_SHAPE, voxel_um=VOXEL_UM, origin_um=o, noise_std=noise,
                                  seed=seed, cif_reference="pattern")


def test_slow_precursor_caught_scans_before_the_gap():
    """0.25 voxel more opening per 3-min scan; the gap visible after five such scans."""
    run, base, origin = _film(300.0, 0)
    amps = [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.25]
    gaps = [0.0] * 8 + [4.0]
    rng = np.random.default_rng(0)
    scans = [_render(_scripted(base, base.t_min + DT * k, a, g), origin, 0,
                     shift_vox=(rng.uniform(-1, 1), rng.uniform(-0.25, 0.25)), noise=0.025)
             for k, (a, g) in enumerate(zip(amps, gaps))]
    det = OnsetDetector(scans[0].volume)
    declared = None
    for k in range(1, len(scans)):
        est = det.update(scans[k].volume, DT * k)
        if est.onset and declared is None:
            declared, sites = k, est.sites
    visible = next(k for k, s in enumerate(scans) if np.any(s.labels == VolumeLabel.CRACK))
    assert declared is not None and visible - declared >= 3, (declared, visible)
    # the sites lie on the network's cracks (within one subvolume, 17 voxels)
    crack = np.any(scans[visible].labels == VolumeLabel.CRACK, axis=0)
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~crack)
    yx = np.clip(np.round(sites[:, 1:]).astype(int), 0, np.array(crack.shape) - 1)
    assert np.all(dist[yx[:, 0], yx[:, 1]] <= 17.0)


@pytest.mark.parametrize("kind", ["artefact shifts", "noise 3 %", "near-critical"])
def test_no_false_alarm_on_quiet_scans(kind):
    run, base, origin = _film(300.0, 1)
    rng = np.random.default_rng(2)
    scans = []
    for k in range(7):
        amp = 0.05 * min(k / 4.0, 1.0) if kind == "near-critical" else 0.0
        shift = (rng.uniform(-1.0, 1.0), rng.uniform(-0.25, 0.25)) if kind == "artefact shifts" else (0.0, 0.0)
        scans.append(_render(_scripted(base, base.t_min + DT * k, amp), origin, 1, shift_vox=shift,
                             noise=0.03 if kind == "noise 3 %" else 0.02))
    det = OnsetDetector(scans[0].volume)
    ests = [det.update(s.volume, DT * k) for k, s in enumerate(scans[1:], start=1)]
    assert not det.onset, [round(e.score, 1) for e in ests]


def test_no_false_alarm_while_the_top_surface_moves_down():
    """A crack-free film consolidating: the solvent film and the top surface move down
    through the volume from scan to scan."""
    run = sim_line.simulate_lab(170.0, seed=3, duration_min=60.0)
    t_end = run.frame.attrs["consolidation_end_min"]
    times = np.arange(t_end - 12.0, t_end + 4.0, DT)
    snaps = [run.snapshot_at(float(t)) for t in times]
    assert snaps[0].solid_thickness_um - snaps[-1].solid_thickness_um > 4.0  # the top moves > 2 voxels
    assert max(s.precursor_opening_um for s in snaps) == 0.0
    scans = [_render(s, (200.0, 200.0), 3) for s in snaps]
    det = OnsetDetector(scans[0].volume)
    ests = [det.update(s.volume, float(t)) for t, s in zip(times[1:], scans[1:])]
    assert not det.onset, [round(e.score, 1) for e in ests]



def test_textured_layer_and_the_tracked_slab():
    """The textured layer of a rendered film spans the coating (substrate below, solvent and
    air above, both untextured); the detector tracks only subvolumes inside it, away from
    the substrate (rigid under a compacting film) and the moving top."""
    from tomography._onset import textured_layer

    run, base, origin = _film(300.0, 0)
    scan = _render(base, origin, 0)
    labels = scan.labels
    solid = np.isin(labels, (VolumeLabel.PARTICLE, VolumeLabel.PORE)).mean(axis=(1, 2)) > 0.5
    true_bottom, true_top = np.flatnonzero(solid)[[0, -1]]
    bottom, top = textured_layer(scan.volume)
    # the texture window (5 voxels) reaches 2 voxels past each face
    assert abs(bottom - true_bottom) <= 3 and abs(top - true_top) <= 3, (bottom, top, true_bottom, true_top)
    assert np.any(labels[:true_bottom] == VolumeLabel.SUBSTRATE)
    det = OnsetDetector(scan.volume)
    z = det._grid[det._tracked, 0]
    half = det._subset // 2
    assert z.min() - half >= bottom and z.max() + half <= top
    assert textured_layer(np.full((20, 16, 16), 5.0)) == (-1, -1)

@pytest.mark.slow
def test_simulated_lab_scans_lead_the_segmentation():
    """The simulator's own timeline (300 um sample, 1-min scans): declared at least two scans
    before the crack segmentation sees a crack, at the crack; a crack-free 200 um sample
    never alarms."""
    import tomography

    series = sim_line.ct_scan_series(300, seed=0, interval_min=1.0, before_min=5.0, after_min=1.0)
    det = OnsetDetector(series.renders[0].volume)
    declared, sites = None, None
    for t, r in zip(series.times_min[1:], series.renders[1:]):
        est = det.update(r.volume, float(t))
        if est.onset and declared is None:
            declared, sites = float(t), est.sites
    seen = [tomography.segment_cracks_3d(tomography.segment_phases(r.volume).phases, r.voxel_um).n_cracks > 0
            for r in series.renders]
    visible = next(float(t) for t, f in zip(series.times_min, seen) if f)
    assert declared is not None and visible - declared >= 2.0
    crack = next(r for r in series.renders if np.any(r.labels == VolumeLabel.CRACK))
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~np.any(crack.labels == VolumeLabel.CRACK, axis=0))
    y, x = np.round(sites[0, 1:]).astype(int)
    assert dist[y, x] <= 8.0  # one DVC grid step

    free = sim_line.ct_scan_series(200, seed=1, interval_min=1.0, before_min=3.0, after_min=2.0)
    det = OnsetDetector(free.renders[0].volume)
    for t, r in zip(free.times_min[1:], free.renders[1:]):
        assert not det.update(r.volume, float(t)).alarm
