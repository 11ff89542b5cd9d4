"""Known-answer tests of the 2D DIC engine on analytically rendered speckle images.

The deformed images are rendered analytically (a sum of Gaussian speckles evaluated at
the exactly mapped coordinates), so the ground truth carries no interpolation error.
"""

from __future__ import annotations

import numpy as np
import pytest

from vision._correlate import DICResult, PointStatus, correlate, correlate_sequence
from vision._speckle import cramer_rao_bound, render, speckles

NOISE = 0.02  # 2 % of the nominal [0, 1] intensity range
SUBSET = 31


def noisy(img, seed):
    return img + np.random.default_rng(seed).normal(0.0, NOISE, img.shape)


def cramer_rao(gr, gc, points):
    return cramer_rao_bound(gr, gc, points, noise=NOISE, subset_size=SUBSET)


@pytest.fixture(scope="module")
def pattern():
    shape = (448, 448)
    sp = speckles(shape, seed=3)
    ref, gr, gc = render(shape, sp)
    return shape, sp, ref, gr, gc


@pytest.mark.parametrize("shift", np.round(np.linspace(0.0, 1.0, 11), 2))
def test_subpixel_shift_bias_and_cramer_rao(pattern, shift):
    shape, sp, ref, gr, gc = pattern
    cur, _, _ = render(shape, sp, shift=(shift, shift))
    res = correlate(noisy(ref, 1), noisy(cur, int(100 * shift) + 2))
    assert res.converged.all()
    assert np.all(res.zncc > 0.95)
    err = res.displacement - shift
    assert np.all(np.abs(err.mean(axis=0)) <= 0.005)
    assert np.all(err.std(axis=0) <= 1.2 * cramer_rao(gr, gc, res.points))
    assert np.all(np.abs(res.gradient.mean(axis=0)) < 2e-4)


@pytest.mark.parametrize("shape_function", ["affine", "quadratic"])
def test_affine_field(pattern, shape_function):
    shape, sp, ref, _, _ = pattern
    theta = 2e-3
    strain = np.array([[1e-3, 0.0], [0.0, -5e-4]])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    mat = rot @ (np.eye(2) + strain)
    u0 = np.array([0.4, -0.3])
    cur, _, _ = render(shape, sp, mat=mat, shift=u0)
    res = correlate(noisy(ref, 4), noisy(cur, 5), shape_function=shape_function)
    truth = u0 + res.points @ (mat - np.eye(2)).T
    assert res.converged.mean() > 0.99
    err = res.displacement - truth
    assert np.all(np.abs(np.nanmean(err, axis=0)) < 0.005)
    assert np.all(np.nanstd(err, axis=0) < 0.03)
    assert np.allclose(np.nanmean(res.gradient, axis=0), mat - np.eye(2), atol=1e-4)


def test_large_shift_found_by_pyramid(pattern):
    shape, sp, ref, _, _ = pattern
    shift = np.array([40.3, -37.6])
    cur, _, _ = render(shape, sp, shift=shift)
    res = correlate(noisy(ref, 6), noisy(cur, 7))
    ok = res.converged
    # points whose deformed subset stays inside the image must all be found
    inside = np.all((res.points + shift >= 17) & (res.points + shift <= np.array(shape) - 18), axis=1)
    assert ok[inside].all()
    assert np.all(res.status[~ok] == PointStatus.OUT_OF_BOUNDS)
    assert np.abs(res.displacement[ok] - shift).max() < 0.08


@pytest.mark.parametrize("gap_px", [0.0, 6.0])
def test_crack_opening_is_flagged_and_does_not_spoil(pattern, gap_px):
    shape, sp, ref, _, _ = pattern
    line = 200.4  # vertical crack (column), sides move apart by 1.2 px
    left = sp[0][:, 1] < line
    shifts = np.where(left[:, None], [0.25, -0.6], [0.25, 0.6])
    cur, _, _ = render(shape, sp, shift=shifts)
    if gap_px:  # a visible dark gap (an open crack) in the deformed frame
        cols = np.arange(shape[1])
        cur[:, np.abs(cols - line) < gap_px / 2] = 0.05
    res = correlate(noisy(ref, 8), noisy(cur, 9))
    d = np.abs(res.points[:, 1] - line)
    far = d > SUBSET
    truth = np.where((res.points[:, 1] < line)[:, None], [0.25, -0.6], [0.25, 0.6])
    err = res.displacement - truth
    assert res.converged[far].all()
    assert np.all(np.abs(err[far].mean(axis=0)) < 0.005)
    assert np.abs(err[far]).max() < 0.08
    straddle = d < 6
    if gap_px:
        assert (~res.converged[straddle]).mean() > 0.9
        assert np.all(np.isin(res.status[straddle & ~res.converged],
                              [PointStatus.LOW_ZNCC, PointStatus.NOT_CONVERGED]))
    else:
        # a precursor jump without a gap: the straddling subsets report a displacement
        # between those of the two sides (the jump shows in the field)
        col = res.displacement[straddle, 1]
        assert np.all((col > -0.65) & (col < 0.65))
    assert np.all(np.isnan(res.displacement[~res.converged]))


def test_mask(pattern):
    shape, sp, ref, _, _ = pattern
    cur, _, _ = render(shape, sp, shift=(0.3, 0.2))
    mask = np.ones(shape, dtype=bool)
    mask[:, :150] = False
    res = correlate(noisy(ref, 10), noisy(cur, 11), mask=mask)
    outside = res.points[:, 1] < 150
    assert np.all(res.status[outside] == PointStatus.MASKED)
    assert np.all(np.isnan(res.displacement[outside]))
    assert res.converged[~outside].all()
    assert np.abs(res.displacement[~outside] - [0.3, 0.2]).max() < 0.08
    assert res.as_grid("displacement").shape == res.grid_shape + (2,)


def test_uint8_input_and_points(pattern):
    shape, sp, ref, _, _ = pattern
    cur, _, _ = render(shape, sp, shift=(-0.45, 0.7))
    to8 = lambda im, seed: np.clip(np.round(noisy(im, seed) * 100 + 75), 0, 255).astype(np.uint8)  # noqa: E731
    a, b = to8(ref, 12), to8(cur, 13)
    pts = np.array([[100.3, 120.7], [224.0, 224.0], [300.5, 150.25]])
    a0 = a.copy()
    res = correlate(a, b, points=pts)
    assert np.array_equal(a, a0)
    assert res.grid_shape is None
    assert res.converged.all()
    assert np.abs(res.displacement - [-0.45, 0.7]).max() < 0.05
    with pytest.raises(ValueError, match="grid"):
        res.as_grid("zncc")


def test_sequence_cumulative_with_reference_update(pattern):
    shape, sp, ref, _, _ = pattern
    shifts = [(0.0, 0.0), (0.3, 0.1), (0.7, 0.3), (1.2, 0.4)]
    frames = [noisy(render(shape, sp, shift=s)[0], 20 + k) for k, s in enumerate(shifts)]
    pts = np.array([[150.0, 150.0], [224.0, 300.0], [300.0, 200.0]])
    # update_zncc just under 1: forces a reference update at every frame
    for mode, thr in (("cumulative", 0.9999), ("cumulative", 0.5), ("incremental", 0.7)):
        out = correlate_sequence(frames, mode=mode, update_zncc=thr, points=pts)
        assert len(out) == len(frames)
        for res, s in zip(out, shifts):
            assert isinstance(res, DICResult)
            assert np.allclose(res.points, pts)
            assert res.converged.all()
            assert np.abs(res.displacement - s).max() < 0.1


def test_bad_arguments():
    img = np.zeros((64, 64))
    with pytest.raises(ValueError, match="subset_size"):
        correlate(img, img, subset_size=30)
    with pytest.raises(ValueError, match="subset_size"):
        correlate(img, img, subset_size=5)
    with pytest.raises(ValueError, match="step"):
        correlate(img, img, step=0)
    with pytest.raises(ValueError, match="deformed"):
        correlate(img, np.zeros((64, 65)))
    with pytest.raises(ValueError, match="reference"):
        correlate(np.zeros((64, 64, 3)), img)
    with pytest.raises(ValueError, match="larger"):
        correlate(np.zeros((20, 20)), np.zeros((20, 20)))
    with pytest.raises(ValueError, match="points"):
        correlate(img, img, points=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="mask"):
        correlate(img, img, mask=np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="shape_function"):
        correlate(img, img, shape_function="cubic")
    with pytest.raises(ValueError, match="mode"):
        correlate_sequence([img, img], mode="sideways")


def test_textureless_subsets_fail_cleanly():
    img = np.full((96, 96), 0.5)
    res = correlate(img, img, step=16)
    assert not res.converged.any()
    assert np.all(np.isnan(res.displacement))


def test_small_images_and_outside_points_are_reported():
    img = np.random.default_rng(0).random((34, 34))
    with pytest.raises(ValueError, match=r"too small for subset_size=31"):
        correlate(img, img)
    big = np.random.default_rng(1).random((120, 120))
    res = correlate(big, big, subset_size=21, points=[[-5.0, 60.0], [60.0, 60.0]])
    assert res.status[0] == PointStatus.OUT_OF_BOUNDS and res.status[1] == PointStatus.OK
    with pytest.raises(ValueError, match="initial_displacement must have shape"):
        correlate(big, big, subset_size=21, initial_displacement=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="tolerance must be a positive number"):
        correlate(big, big, subset_size=21, tolerance="tight")


def test_warp_mask_moves_the_roi_with_the_material():
    from correlation import warp_mask

    shape = (120, 160)
    roi = np.zeros(shape, bool)
    roi[:, :80] = True
    rows, cols = np.arange(10, 110, 10.0), np.arange(10, 150, 10.0)
    pts = np.array([(r, c) for r in rows for c in cols])
    # uniform 5 px shift to the right: the ROI edge moves from 80 to 85; the 5 columns that
    # entered from outside the image hold unknown material (not in the ROI)
    moved = warp_mask(roi, pts, np.tile([0.0, 5.0], (len(pts), 1)), (len(rows), len(cols)))
    assert moved[:, 5:85].all() and not moved[:, :5].any() and not moved[:, 85:].any()
    # 5 % stretch about column 0: the edge at 80 moves to 84
    stretch = np.column_stack([np.zeros(len(pts)), 0.05 * pts[:, 1]])
    moved = warp_mask(roi, pts, stretch, (len(rows), len(cols)))
    edge = 10 + np.argmin(moved[60, 10:])
    assert abs(edge - 84) <= 1
    # arbitrary points: moved by the median displacement; lost points ignored
    disp = np.tile([2.0, -3.0], (len(pts), 1))
    disp[:5] = np.nan
    moved = warp_mask(roi, pts, disp, None)
    assert moved[2:, :77].all() and not moved[:, 77:].any() and not moved[:2, :].any()


def test_sequence_with_mask_runs_through_reference_updates():
    shape = (256, 256)
    moving = speckles(shape, seed=11)
    static = speckles(shape, seed=12)
    roi = np.zeros(shape, bool)
    roi[:, :128] = True
    bg, _, _ = render(shape, static)
    frames = []
    for k in range(4):
        img, _, _ = render(shape, moving, shift=(0.0, 2.5 * k))
        moved_roi = np.zeros(shape, bool)
        moved_roi[:, : int(round(128 + 2.5 * k))] = True
        frames.append(np.where(moved_roi, img, bg))
    last = correlate_sequence(frames, mode="incremental", mask=roi, subset_size=21, step=8)[-1]
    inside = (last.points[:, 1] < 128 - 21) & last.converged
    assert inside.sum() > 50
    np.testing.assert_allclose(last.displacement[inside, 1], 7.5, atol=0.02)
    # points whose subset centre starts outside the ROI stay masked throughout
    assert not last.converged[last.points[:, 1] > 140].any()
