"""Tests of the crack pattern and the surface (camera) renderer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim_line._pattern import crack_pattern, taper
from sim_line._snapshot import DryingPhase, FilmSnapshot
from sim_line._surface import SurfaceFrame, render_surface

PX = 5.0


def make_snapshot(**changes) -> FilmSnapshot:
    """A 300 um film just before cracking (precursor motion, no gap)."""
    base = dict(t_min=37.0, solid_thickness_um=130.0, solvent_level_um=0.0,
                packing_fraction=0.45, porosity=0.73, phase=DryingPhase.PORE_EMPTYING,
                capillary_stress_kpa=10.0, critical_stress_kpa=12.0, crack_spacing_um=400.0,
                precursor_opening_um=4.0, crack_width_um=0.0, cif_3d=0.0, cif_2d_top=0.0,
                cif_2d_base=0.0, seed=11)
    base.update(changes)
    return FilmSnapshot(**base)


def cracked_snapshot(**changes) -> FilmSnapshot:
    base = dict(t_min=45.0, crack_width_um=20.0, cif_2d_top=0.08, cif_3d=0.03, cracked=True)
    base.update(changes)
    return make_snapshot(**base)


QUIET = dict(noise_std=0.0, illumination_gradient=0.0)


# ----------------------------------------------------------------------------- pattern


def test_pattern_is_view_independent():
    a = crack_pattern(spacing_um=300.0, extent_um=(2000.0, 2000.0), seed=4)
    b = crack_pattern(spacing_um=300.0, extent_um=(1500.0, 2500.0), seed=4,
                      origin_um=(700.0, -900.0))
    # segments fully inside the common region appear in both, with the same weight
    lo, hi = np.array([700.0, 0.0]), np.array([2000.0, 1600.0])

    def inside(p):
        ok = np.all((p.segments_um >= lo) & (p.segments_um <= hi), axis=(1, 2))
        return {tuple(np.round(s.ravel(), 6)): w for s, w in zip(p.segments_um[ok], p.weights[ok])}

    sa, sb = inside(a), inside(b)
    assert len(sa) > 10
    assert sa.keys() == sb.keys()
    assert all(sa[k] == sb[k] for k in sa)


def test_pattern_statistics_and_seed():
    p = crack_pattern(spacing_um=250.0, extent_um=(5000.0, 5000.0), seed=1)
    assert p.segments_um.shape[1:] == (2, 2)
    assert p.weights.min() >= 0.7 and p.weights.max() <= 1.3
    # Voronoi of one point per spacing^2: ~1.9-2.0 / spacing of crack length per area
    assert 1.7 / 250.0 < p.length_per_area_per_um < 2.2 / 250.0
    q = crack_pattern(spacing_um=250.0, extent_um=(5000.0, 5000.0), seed=2)
    assert p.segments_um.shape != q.segments_um.shape or not np.allclose(p.segments_um, q.segments_um)


def test_pattern_nearest_matches_brute_force():
    p = crack_pattern(spacing_um=200.0, extent_um=(1000.0, 1000.0), seed=3)
    pts = np.random.default_rng(0).uniform(-300.0, 1300.0, size=(400, 2))
    res = p.nearest(pts)
    a, b = p.segments_um[:, 0], p.segments_um[:, 1]
    d = b - a
    t = np.clip(((pts[:, None] - a) * d).sum(-1) / (d * d).sum(-1), 0.0, 1.0)
    closest = a + t[..., None] * d
    dist = np.linalg.norm(pts[:, None] - closest, axis=-1)
    np.testing.assert_allclose(res.distance_um, dist.min(axis=1), atol=1e-9)
    k = res.index
    np.testing.assert_allclose(res.position, t[np.arange(len(pts)), k], atol=1e-9)
    back = closest[np.arange(len(pts)), k] + res.normal * res.distance_um[:, None]
    np.testing.assert_allclose(back, pts, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(res.normal, axis=1), 1.0)


def test_opening_field_jump_equals_opening():
    p = crack_pattern(spacing_um=300.0, extent_um=(1500.0, 1500.0), seed=5)
    k = int(np.argmax(p.lengths_um))
    (a, b), w = p.segments_um[k], p.weights[k]
    d = (b - a) / np.linalg.norm(b - a)
    n = np.array([-d[1], d[0]])
    s = np.array([0.2, 0.5, 0.8])
    mid = a + s[:, None] * (b - a)
    eps = 1e-4
    up = p.opening_displacement(mid + eps * n, opening_um=3.0, band_um=75.0)
    um = p.opening_displacement(mid - eps * n, opening_um=3.0, band_um=75.0)
    jump = ((up - um) @ n)
    np.testing.assert_allclose(jump, 3.0 * w * taper(s), rtol=1e-3)


def test_pattern_bad_arguments():
    with pytest.raises(ValueError, match="spacing_um"):
        crack_pattern(spacing_um=0.0, extent_um=(10.0, 10.0), seed=0)
    with pytest.raises(ValueError, match="extent_um"):
        crack_pattern(spacing_um=10.0, extent_um=(10.0, -1.0), seed=0)
    with pytest.raises(ValueError, match="seed"):
        crack_pattern(spacing_um=10.0, extent_um=(10.0, 10.0), seed=1.5)
    p = crack_pattern(spacing_um=10.0, extent_um=(10.0, 10.0), seed=0)
    with pytest.raises(ValueError, match="points_um"):
        p.nearest(np.zeros((3, 3)))


# ----------------------------------------------------------------------------- surface


def test_frame_fields_and_types():
    f = render_surface(cracked_snapshot(), shape_px=(200, 300))
    assert isinstance(f, SurfaceFrame)
    assert f.image.shape == (200, 300) and f.image.dtype == np.uint8
    assert f.displacement_px.shape == (200, 300, 2) and f.displacement_px.dtype == np.float32
    assert f.crack_mask.shape == (200, 300) and f.crack_mask.dtype == bool
    assert f.crack_sites_px.shape[1] == 2 and len(f.crack_sites_px) > 5
    assert f.segments_px.shape == (len(f.crack_sites_px), 2, 2)
    np.testing.assert_allclose(f.segments_px.mean(axis=1), f.crack_sites_px)
    assert np.all((f.crack_sites_px >= -0.5) & (f.crack_sites_px < np.array([199.5, 299.5])))
    assert f.um_per_px == PX
    assert f.surface_cif == pytest.approx(f.crack_mask.mean())
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.um_per_px = 1.0  # type: ignore[misc]


def test_zero_opening_gives_exactly_the_shift():
    snap = make_snapshot(precursor_opening_um=0.0)
    f = render_surface(snap, shape_px=(64, 80))
    assert np.all(f.displacement_px == 0.0)
    g = render_surface(snap, shape_px=(64, 80), shift_px=(0.25, -1.5))
    assert np.all(g.displacement_px[..., 0] == np.float32(0.25))
    assert np.all(g.displacement_px[..., 1] == np.float32(-1.5))


def test_shift_moves_the_material_by_shift():
    snap = make_snapshot(precursor_opening_um=0.0)
    f = render_surface(snap, shape_px=(96, 96), **QUIET)
    g = render_surface(snap, shape_px=(96, 96), shift_px=(2.0, 3.0), **QUIET)
    # material at X appears at X + u: g[r + 2, c + 3] == f[r, c]
    diff = g.image[2:, 3:].astype(int) - f.image[:-2, :-3].astype(int)
    assert np.abs(diff).max() <= 1


def test_determinism_and_seed_dependence():
    snap = cracked_snapshot()
    a = render_surface(snap, shape_px=(128, 128))
    b = render_surface(snap, shape_px=(128, 128))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.displacement_px, b.displacement_px)
    c = render_surface(snap, shape_px=(128, 128), seed=snap.seed + 1)
    assert np.mean(a.image != c.image) > 0.5
    assert not np.array_equal(a.crack_mask, c.crack_mask)


@pytest.mark.parametrize("opening", [0.0, 4.0])
def test_overlapping_views_share_texture(opening):
    snap = make_snapshot(precursor_opening_um=opening)
    a = render_surface(snap, shape_px=(96, 128), **QUIET)
    b = render_surface(snap, shape_px=(96, 128), origin_um=(10 * PX, 40 * PX), **QUIET)
    diff = a.image[10:, 40:].astype(int) - b.image[:-10, :-40].astype(int)
    assert np.abs(diff).max() <= 1
    np.testing.assert_allclose(a.displacement_px[10:, 40:], b.displacement_px[:-10, :-40],
                               atol=1e-5)


def test_overlapping_cracked_views_agree_with_pattern_reference():
    snap = cracked_snapshot()
    opts = dict(shape_px=(96, 128), cif_reference="pattern", **QUIET)
    a = render_surface(snap, **opts)
    b = render_surface(snap, origin_um=(10 * PX, 40 * PX), **opts)
    assert a.crack_mask.any()
    np.testing.assert_array_equal(a.crack_mask[10:, 40:], b.crack_mask[:-10, :-40])
    diff = a.image[10:, 40:].astype(int) - b.image[:-10, :-40].astype(int)
    assert np.abs(diff).max() <= 1
    big = render_surface(snap, shape_px=(512, 512), cif_reference="pattern")
    assert big.surface_cif == pytest.approx(snap.cif_2d_top, rel=0.25)


def test_texture_has_particles_and_contrast():
    f = render_surface(make_snapshot(precursor_opening_um=0.0), shape_px=(256, 256), **QUIET)
    img = f.image.astype(float) / 255
    assert 0.3 < img.mean() < 0.6
    assert img.std() > 0.1
    # speckle at the particle scale: neighbouring pixels decorrelate within a few px
    a = img - img.mean()
    corr4 = (a[:, :-4] * a[:, 4:]).mean() / a.var()
    assert corr4 < 0.3


def test_precursor_moves_without_gap():
    f = render_surface(make_snapshot(), shape_px=(256, 256))
    assert not f.crack_mask.any()
    assert f.surface_cif == 0.0
    mag = np.linalg.norm(f.displacement_px, axis=-1)
    # half of 4 um * weight <= 1.3 at each side, a little more where cracks meet
    assert 0.2 < mag.max() < 1.5


def test_relative_opening_across_cracks_from_displacement():
    # the precursor is a strain band, not a gap: across each crack the displacement follows
    # u_n = c0 + c1 x + (A / 2) sign(x) tanh(|x| / w) exp(-|x| / band) (c0 + c1 x: the other
    # cracks), continuous at the line (no void) with A = precursor * weight * taper(0.5)
    snap = make_snapshot(precursor_opening_um=5.0)
    w_pre, band = snap.precursor_band_um, snap.crack_spacing_um / 4.0
    f = render_surface(snap, shape_px=(256, 256), noise_std=0.0)
    rows, cols = np.mgrid[0:256, 0:256]
    pix = np.column_stack([rows.ravel(), cols.ravel()]).astype(float)
    u = f.displacement_px.reshape(-1, 2).astype(float)
    lengths = np.linalg.norm(f.segments_px[:, 1] - f.segments_px[:, 0], axis=1)
    interior = np.all((f.crack_sites_px > 12) & (f.crack_sites_px < 244), axis=1)
    checked = 0
    for k in np.flatnonzero(interior & (lengths > 20)):
        a, b = f.segments_px[k]
        d = (b - a) / np.linalg.norm(b - a)
        n = np.array([-d[1], d[0]])
        rel = pix - f.crack_sites_px[k]
        along, across = rel @ d, rel @ n
        sel = (np.abs(along) < 2.5) & (np.abs(across) < 6.0)
        un = u[sel] @ n
        x = across[sel]
        ramp = np.sign(x) * np.tanh(np.abs(x) * PX / w_pre) * np.exp(-np.abs(x) * PX / band)
        coef, *_ = np.linalg.lstsq(np.column_stack([np.ones_like(x), x, 0.5 * ramp]), un, rcond=None)
        expected = snap.precursor_opening_um * f.segment_weights[k] * taper(0.5) / PX
        assert coef[2] == pytest.approx(expected, rel=0.04)
        # nothing separates at the line: the pixels next to it move by at most the ramp there
        line = np.abs(x) < 0.5
        at_line = np.abs(un[line] - coef[0] - coef[1] * x[line])
        assert np.all(at_line <= 0.5 * expected * np.tanh(0.5 * PX / w_pre) + 0.01)
        checked += 1
    assert checked >= 3


def test_surface_cif_matches_snapshot():
    snap = cracked_snapshot(cif_2d_top=0.08)
    f = render_surface(snap, shape_px=(384, 384))
    assert f.surface_cif == pytest.approx(0.08, rel=0.15)
    # gaps are deep shadow, the rest of the frame is not
    img = f.image.astype(float) / 255
    assert img[f.crack_mask].mean() < 0.1
    assert img[~f.crack_mask].mean() > 0.3
    # mean width ~ cif / (crack length per area)
    width = f.gap_scale_um * np.mean(f.segment_weights) * (0.5 + 1 / np.pi)
    assert 5.0 < width < 60.0


def test_width_without_area_target_uses_crack_width():
    snap = cracked_snapshot(cif_2d_top=0.0, crack_width_um=15.0)
    f = render_surface(snap, shape_px=(256, 256))
    assert f.crack_mask.any()
    assert f.gap_scale_um == pytest.approx(15.0 / np.mean(f.segment_weights) / (0.5 + 1 / np.pi),
                                           rel=0.2)


def test_bit_depth_and_gain():
    snap = make_snapshot()
    f8 = render_surface(snap, shape_px=(64, 64), bit_depth=8, **QUIET)
    f16 = render_surface(snap, shape_px=(64, 64), bit_depth=16, **QUIET)
    assert f8.image.dtype == np.uint8 and f16.image.dtype == np.uint16
    np.testing.assert_allclose(f16.image / 65535.0, f8.image / 255.0, atol=1 / 255)
    bright = render_surface(snap, shape_px=(64, 64), flicker_gain=1.2, **QUIET)
    ratio = bright.image.astype(float).mean() / f8.image.astype(float).mean()
    assert ratio == pytest.approx(1.2, rel=0.03)
    lit = render_surface(snap, shape_px=(64, 64), noise_std=0.0, illumination_gradient=0.5)
    assert lit.image.astype(float).mean() < f8.image.astype(float).mean()


@pytest.mark.parametrize("kwargs, match", [
    (dict(bit_depth=12), "bit_depth"),
    (dict(shape_px=(0, 10)), "shape_px"),
    (dict(um_per_px=-1.0), "um_per_px"),
    (dict(noise_std=-0.1), "noise_std"),
    (dict(illumination_gradient=1.5), "illumination_gradient"),
    (dict(flicker_gain=0.0), "flicker_gain"),
    (dict(shift_px=(np.nan, 0.0)), "shift_px"),
    (dict(band_um=0.0), "band_um"),
    (dict(seed=2.5), "seed"),
    (dict(cif_reference="frame"), "cif_reference"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        render_surface(make_snapshot(), shape_px=kwargs.pop("shape_px", (16, 16)), **kwargs)


def test_bad_snapshot():
    with pytest.raises(ValueError, match="crack_spacing_um"):
        render_surface(make_snapshot(crack_spacing_um=0.0), shape_px=(16, 16))
    with pytest.raises(ValueError, match="snapshot"):
        render_surface("not a snapshot", shape_px=(16, 16))  # type: ignore[arg-type]
