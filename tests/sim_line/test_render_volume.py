"""Tests of the CT volume renderer."""

from __future__ import annotations

import numpy as np
import pytest

from sim_line._snapshot import DryingPhase, FilmSnapshot
from sim_line._volume import VolumeLabel as L
from sim_line._volume import VolumeRender, render_volume

SHAPE = (96, 96, 96)


def make_snapshot(**changes) -> FilmSnapshot:
    """A dry, cracked 130 um layer with a fine crack network (several cells per FOV)."""
    top, base, expo = 0.3, 0.05, 5.0
    fields = dict(t_min=45.0, solid_thickness_um=130.0, solvent_level_um=0.0,
                  packing_fraction=0.5, porosity=0.6, phase=DryingPhase.DRY,
                  capillary_stress_kpa=10.0, critical_stress_kpa=12.0, crack_spacing_um=70.0,
                  precursor_opening_um=2.0, crack_width_um=6.0,
                  cif_3d=base + (top - base) / (expo + 1), cif_2d_top=top, cif_2d_base=base,
                  cif_2d_exponent=expo, cracked=True, seed=21)
    fields.update(changes)
    return FilmSnapshot(**fields)


def layer(r: VolumeRender) -> np.ndarray:
    return r.labels[r.substrate_top_vox:r.coating_top_vox]


def test_result_fields_and_layers():
    snap = make_snapshot()
    r = render_volume(snap, shape=SHAPE, substrate_um=10.0)
    assert r.volume.shape == SHAPE and r.volume.dtype == np.uint16
    assert r.labels.shape == SHAPE and r.labels.dtype == np.uint8
    assert r.displacement_vox.shape == SHAPE + (3,) and r.displacement_vox.dtype == np.float32
    # default voxel size fits substrate + layer into 85% of Z
    assert r.voxel_um == pytest.approx(140.0 / (0.85 * SHAPE[0]))
    assert r.substrate_top_vox == round(10.0 / r.voxel_um)
    assert r.coating_top_vox == round(140.0 / r.voxel_um)
    assert np.all(r.labels[:r.substrate_top_vox] == L.SUBSTRATE)
    assert not np.any(r.labels[r.substrate_top_vox:] == L.SUBSTRATE)
    assert np.all(r.labels[r.coating_top_vox:] == L.AIR)
    present = set(np.unique(layer(r)).tolist())
    assert {L.PORE, L.PARTICLE, L.CRACK} <= present
    # grey levels: substrate > particle > pore > crack (air)
    v = r.volume.astype(float)
    means = {lab: v[r.labels == lab].mean() for lab in (L.SUBSTRATE, L.PARTICLE, L.PORE, L.CRACK)}
    assert means[L.SUBSTRATE] > means[L.PARTICLE] > means[L.PORE] > means[L.CRACK]
    assert r.crack_sites_vox.shape[1] == 3 and len(r.crack_sites_vox) >= 3
    assert np.allclose(r.crack_sites_vox[:, 0], 140.0 / r.voxel_um - 0.5)


def test_particle_fraction_matches_porosity():
    snap = make_snapshot(crack_width_um=0.0, precursor_opening_um=0.0, cif_3d=0.0,
                         cif_2d_top=0.0, cif_2d_base=0.0, porosity=0.65)
    r = render_volume(snap, shape=SHAPE)
    frac = np.mean(layer(r) == L.PARTICLE)
    assert frac == pytest.approx(0.35, abs=0.04)


def test_crack_fraction_matches_cif():
    snap = make_snapshot()
    r = render_volume(snap, shape=(96, 128, 128))
    lay = layer(r)
    assert np.mean(lay == L.CRACK) == pytest.approx(snap.cif_3d, rel=0.2)
    # the slice-wise profile follows cif_2d_profile: wide at the top, narrow at the base
    per_slice = (lay == L.CRACK).mean(axis=(1, 2))
    assert per_slice[-1] == pytest.approx(snap.cif_2d_top, rel=0.2)
    assert per_slice[0] == pytest.approx(snap.cif_2d_base, rel=0.35)
    # cracks are open to the top: crack columns in the top slice reach the surface
    assert np.all(r.labels[r.coating_top_vox][lay[-1] == L.CRACK] == L.AIR)


def test_no_cracks_before_onset_and_zero_displacement():
    snap = make_snapshot(precursor_opening_um=0.0, crack_width_um=0.0, cif_3d=0.0,
                         cif_2d_top=0.0, cif_2d_base=0.0, cracked=False)
    r = render_volume(snap, shape=(48, 64, 64))
    assert np.all(r.displacement_vox == 0.0)
    assert not np.any(r.labels == L.CRACK)
    pre = render_volume(make_snapshot(crack_width_um=0.0, cif_3d=0.0, cif_2d_top=0.0,
                                      cif_2d_base=0.0, cracked=False), shape=(48, 64, 64))
    assert not np.any(pre.labels == L.CRACK)
    assert np.abs(pre.displacement_vox[..., 1:]).max() > 0.1


def test_displacement_profile_and_direction():
    snap = make_snapshot()
    r = render_volume(snap, shape=SHAPE)
    u = r.displacement_vox
    v = r.voxel_um
    assert np.all(u[:r.substrate_top_vox] == 0.0)
    uz = u[..., 0] * v
    assert uz.max() <= 0.0 and uz.min() >= -5.0
    assert uz.min() < -0.1
    inplane = np.linalg.norm(u[..., 1:], axis=-1) * v
    top = inplane[r.coating_top_vox - 1].max()
    assert inplane[r.substrate_top_vox + 1].max() < 0.5 * top
    # in-plane: half the total opening at each side of a crack, a little more at junctions
    opening = snap.precursor_opening_um + snap.crack_width_um
    assert 0.3 * opening < top < 1.5 * opening


def test_determinism_and_seed():
    snap = make_snapshot()
    a = render_volume(snap, shape=(40, 48, 48))
    b = render_volume(snap, shape=(40, 48, 48))
    np.testing.assert_array_equal(a.volume, b.volume)
    np.testing.assert_array_equal(a.labels, b.labels)
    c = render_volume(snap, shape=(40, 48, 48), seed=snap.seed + 1)
    assert np.mean(a.labels != c.labels) > 0.2


def test_overlapping_fields_of_view_share_particles_and_cracks():
    snap = make_snapshot()
    opts = dict(shape=(48, 64, 64), voxel_um=3.0, noise_std=0.0, cif_reference="pattern")
    a = render_volume(snap, **opts)
    b = render_volume(snap, origin_um=(30.0, 60.0), **opts)
    assert np.any(a.labels == L.CRACK)
    np.testing.assert_array_equal(a.labels[:, 10:, 20:], b.labels[:, :-10, :-20])
    np.testing.assert_allclose(a.displacement_vox[:, 10:, 20:], b.displacement_vox[:, :-10, :-20],
                               atol=1e-5)


def test_solvent_layer_during_consolidation():
    snap = make_snapshot(phase=DryingPhase.CONSOLIDATION, solvent_level_um=20.0,
                         precursor_opening_um=0.0, crack_width_um=0.0, cif_3d=0.0,
                         cif_2d_top=0.0, cif_2d_base=0.0, cracked=False)
    r = render_volume(snap, shape=(64, 48, 48))
    thickness = (r.labels == L.SOLVENT).sum(axis=0) * r.voxel_um
    assert np.all(np.abs(thickness - 20.0) <= r.voxel_um + 1e-9)
    v = r.volume.astype(float)
    assert v[r.labels == L.PORE].mean() > v[r.labels == L.SOLVENT].mean() > v[r.labels == L.AIR].mean()


def test_bubble_volume():
    snap = make_snapshot(bubble_radius_um=25.0, bubble_height_frac=0.5)
    r = render_volume(snap, shape=SHAPE)
    vol = np.sum(r.labels == L.BUBBLE) * r.voxel_um**3
    assert vol == pytest.approx(4.0 / 3.0 * np.pi * 25.0**3, rel=0.2)
    zc, yc, xc = np.argwhere(r.labels == L.BUBBLE).mean(axis=0)
    assert yc == pytest.approx(47.5, abs=2) and xc == pytest.approx(47.5, abs=2)
    assert (zc + 0.5) * r.voxel_um == pytest.approx(10.0 + 65.0, abs=3 * r.voxel_um)


def test_delamination_under_cracks():
    snap = make_snapshot(delamination_fraction=0.4, delamination_gap_um=8.0)
    r = render_volume(snap, shape=SHAPE)
    base = r.labels[r.substrate_top_vox]
    frac = np.mean((base == L.DELAMINATION) | (base == L.CRACK))
    assert frac == pytest.approx(0.4, abs=0.08)
    gap_slices = np.flatnonzero((r.labels == L.DELAMINATION).any(axis=(1, 2)))
    assert gap_slices.min() == r.substrate_top_vox
    assert (gap_slices.max() - gap_slices.min() + 1) * r.voxel_um == pytest.approx(8.0, abs=r.voxel_um)


def test_pattern_reference_matches_cif_on_average():
    snap = make_snapshot()
    fracs = [np.mean(layer(render_volume(snap, shape=(48, 96, 96), cif_reference="pattern",
                                         origin_um=(o, 0.0))) == L.CRACK)
             for o in (0.0, 500.0, 1000.0)]
    assert np.mean(fracs) == pytest.approx(snap.cif_3d, rel=0.25)


def test_given_voxel_size_clips_the_top():
    snap = make_snapshot()
    r = render_volume(snap, shape=(32, 32, 32), voxel_um=2.0)
    assert r.voxel_um == 2.0
    assert r.coating_top_vox == 32
    assert not np.any(r.labels == L.AIR)


@pytest.mark.parametrize("dtype, kind", [("uint8", np.uint8), ("uint16", np.uint16),
                                         ("float32", np.float32), (np.uint16, np.uint16)])
def test_dtypes(dtype, kind):
    r = render_volume(make_snapshot(), shape=(24, 24, 24), dtype=dtype, noise_std=0.0)
    assert r.volume.dtype == kind
    if kind == np.float32:
        assert 0.0 <= r.volume.min() and r.volume.max() <= 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(dtype="int32"), "dtype"),
    (dict(dtype="nonsense"), "dtype"),
    (dict(shape=(0, 8, 8)), "shape"),
    (dict(shape=(8, 8)), "shape"),
    (dict(voxel_um=0.0), "voxel_um"),
    (dict(substrate_um=-1.0), "substrate_um"),
    (dict(noise_std=-0.5), "noise_std"),
    (dict(origin_um=(0.0,)), "origin_um"),
    (dict(band_um=-2.0), "band_um"),
    (dict(cif_reference="global"), "cif_reference"),
])
def test_bad_arguments(kwargs, match):
    kwargs.setdefault("shape", (8, 8, 8))
    with pytest.raises(ValueError, match=match):
        render_volume(make_snapshot(), **kwargs)


def test_bad_snapshot():
    with pytest.raises(ValueError, match="solid_thickness_um"):
        render_volume(make_snapshot(solid_thickness_um=0.0), shape=(8, 8, 8))
    with pytest.raises(ValueError, match="porosity"):
        render_volume(make_snapshot(porosity=1.5), shape=(8, 8, 8))
