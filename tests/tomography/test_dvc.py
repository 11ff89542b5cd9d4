"""Tests of the 3D DVC engine on analytic particle volumes (exact ground truth)."""

from __future__ import annotations

import numpy as np
import pytest

import tomography
from tomography import PointStatus, correlate, normalised_median_test, regularise, remove_background
from tomography._phantom import add_noise, cramer_rao_bound, opening_shift, particles, render

SHAPE = (56, 72, 72)
NOISE = 0.02  # grey levels; particle amplitudes 0.4-0.9 above a 0.1 background


@pytest.fixture(scope="module")
def packing():
    return particles(SHAPE, seed=3, margin=20.0)


@pytest.fixture(scope="module")
def reference(packing):
    vol, gz, gy, gx = render(SHAPE, packing)
    return vol, (gz, gy, gx)


@pytest.mark.parametrize("shift", [(0.0, 0.0, 0.0), (0.25, 0.5, 0.75), (0.5, -0.3, 0.1), (-0.8, 0.9, -0.45)])
def test_rigid_subvoxel_shift_bias_and_random_error(packing, reference, shift):
    ref, grads = reference
    cur = render(SHAPE, packing, shift=shift)[0]
    r0 = add_noise(ref, NOISE, seed=1)
    r1 = add_noise(cur, NOISE, seed=2)
    res = correlate(r0, r1, subset_size=21, step=6)
    assert res.converged.all()
    err = res.displacement - np.array(shift)
    bias = np.abs(err.mean(axis=0))
    crb = cramer_rao_bound(grads, res.points, noise=NOISE, subset_size=21)
    ratio = err.std(axis=0) / crb
    # issue targets: |systematic error| <= 0.01 voxel, random error <= 1.3x the CRB
    assert np.all(bias <= 0.01), bias
    assert np.all(ratio <= 1.3), ratio
    assert np.all(res.zncc > 0.95)


def test_affine_field_and_gradient(packing):
    mat = np.array([[1.01, 0.004, 0.0], [-0.003, 0.995, 0.006], [0.002, -0.006, 1.008]])
    shift = np.array([0.4, -0.6, 0.3]) - (mat - np.eye(3)) @ (np.array(SHAPE) / 2)
    ref = render(SHAPE, packing)[0]
    cur = render(SHAPE, packing, matrix=mat, shift=shift)[0]
    res = correlate(ref, cur, subset_size=21, step=8)
    truth = shift + res.points @ (mat - np.eye(3)).T
    ok = res.converged
    assert ok.mean() > 0.95
    assert np.max(np.abs(res.displacement[ok] - truth[ok])) < 0.01
    assert np.allclose(res.gradient[ok], mat - np.eye(3), atol=1e-3)
    assert res.grid_shape is not None
    assert res.as_grid("displacement").shape == res.grid_shape + (3,)


def test_large_rigid_motion_is_found(packing):
    shift = (3.4, -7.6, 10.2)
    ref = render(SHAPE, packing)[0]
    cur = render(SHAPE, packing, shift=shift)[0]
    res = correlate(ref, cur, subset_size=21, step=8)
    ok = res.converged
    assert ok.sum() >= 0.5 * len(ok)  # the others move out of the volume
    assert np.allclose(res.displacement[ok], shift, atol=0.01)
    out = res.status == PointStatus.OUT_OF_BOUNDS
    assert np.all(ok | out)
    # the lost points are those whose subvolume leaves the volume after the move
    end = res.points + np.array(shift)
    assert np.all(np.any((end - 10 < 0) | (end + 10 > np.array(SHAPE) - 1), axis=1)[out])


@pytest.mark.parametrize("opening", [0.5, 1.5, 3.0])
def test_crack_opening_located_after_background_removal(packing, opening):
    """Two sides of a plane x = 36 move apart by `opening` on top of a uniform shift."""
    background = np.array([0.3, 1.2, -0.7])
    shifts = opening_shift(packing, point=(0, 0, 36.0), normal=(0, 0, 1), opening=opening) + background
    ref = add_noise(render(SHAPE, packing)[0], NOISE, seed=5)
    cur = add_noise(render(SHAPE, packing, shift=shifts)[0], NOISE, seed=6)
    res = correlate(ref, cur, subset_size=21, step=6, outlier_threshold=None)
    dist = res.points[:, 2] - 36.0
    far = (np.abs(dist) > 12) & res.converged  # subvolume half 10 + 2 voxels of particle radius
    # away from the plane every point moves with its side (DVC error ~0.01 voxel)
    truth = background + np.outer(np.sign(dist), [0.0, 0.0, opening / 2])
    assert np.abs(res.displacement[far] - truth[far]).max() < 0.03
    # background removal: the crack splits the volume in halves, so along x the robust
    # fit may follow either side (the background is defined up to the opening); the
    # subvolumes straddling the crack (~1/3 of the points) pull the other components by
    # a few 0.01 voxel
    fit = remove_background(res.points, res.displacement, model="translation")
    assert np.allclose(fit.translation[:2], background[:2], atol=0.05)
    assert abs(fit.translation[2] - background[2]) <= opening / 2 + 0.02
    resid_x = fit.residual[:, 2]
    right, left = resid_x[far & (dist > 0)], resid_x[far & (dist < 0)]
    assert np.median(right) - np.median(left) == pytest.approx(opening, abs=0.02)
    # the largest step of the residual profile along x locates the plane: it lies between
    # the two columns of grid points (failed straddling points are skipped)
    g = np.ma.masked_invalid(res.as_grid(fit.residual)[..., 2])
    xs = res.as_grid("points")[0, 0, :, 2]
    prof = np.ma.median(g.reshape(-1, len(xs)), axis=0)
    cols = np.flatnonzero(~np.ma.getmaskarray(prof))
    k = int(np.argmax(np.diff(prof.data[cols])))
    assert xs[cols[k]] <= 36.0 <= xs[cols[k + 1]]


def test_mask_and_points_and_dtypes(packing, reference):
    ref = reference[0]
    cur = render(SHAPE, packing, shift=(0.2, 0.2, 0.2))[0]
    mask = np.ones(SHAPE, dtype=bool)
    mask[:, :, :30] = False
    pts = np.array([[28.0, 36.0, 20.0], [28.0, 36.5, 50.25], [28.0, 36.0, 71.0]])
    res = correlate(ref.astype(np.float32), cur.astype(np.float32), points=pts, mask=mask)
    assert res.status[0] == PointStatus.MASKED and np.isnan(res.displacement[0]).all()
    assert res.status[1] == PointStatus.OK
    assert np.allclose(res.displacement[1], 0.2, atol=0.01)
    assert res.status[2] == PointStatus.MASKED or res.status[2] == PointStatus.OUT_OF_BOUNDS
    assert res.grid_shape is None
    with pytest.raises(ValueError, match="grid_shape is None"):
        res.as_grid("displacement")
    u16 = lambda v: np.clip(v / v.max() * 60000, 0, 65535).astype(np.uint16)  # noqa: E731
    r16 = correlate(u16(ref), u16(cur), points=pts[1:2])
    assert np.allclose(r16.displacement, 0.2, atol=0.02)


def test_initial_displacement_skips_search(packing, reference):
    ref = reference[0]
    cur = render(SHAPE, packing, shift=(0.0, 6.3, 0.0))[0]
    res = correlate(ref, cur, points=[[28, 30, 36]], initial_displacement=(0, 6, 0))
    assert np.allclose(res.displacement, [[0, 6.3, 0]], atol=0.01)
    with pytest.raises(ValueError, match="initial_displacement"):
        correlate(ref, cur, points=[[28, 30, 36]], initial_displacement=(1, 2))


def test_outliers_flagged_and_replaced(packing, reference):
    """A subvolume whose texture is destroyed in the deformed volume becomes an outlier."""
    ref = add_noise(reference[0], NOISE, seed=7)
    cur = add_noise(render(SHAPE, packing, shift=(0.3, 0.3, 0.3))[0], NOISE, seed=8)
    rng = np.random.default_rng(0)
    blob = (slice(20, 36), slice(28, 44), slice(28, 44))
    cur[blob] = rng.permutation(cur[blob].ravel()).reshape(cur[blob].shape)
    res = correlate(ref, cur, subset_size=15, step=8, zncc_threshold=0.3)
    bad = res.status != PointStatus.OK
    centre_pt = np.argmin(np.linalg.norm(res.points - [28, 36, 36], axis=1))
    assert bad[centre_pt]
    # points whose subvolume (half 7) stays clear of the scrambled block are unaffected
    lo, hi = np.array([20, 28, 28]), np.array([35, 43, 43])
    gap = np.maximum(np.maximum(lo - res.points, res.points - hi), 0).max(axis=1)
    clear = gap > 8
    assert clear.sum() > 20 and not bad[clear].any()
    assert np.allclose(res.displacement[clear], 0.3, atol=0.03)  # 15^3 subsets: std 0.005
    replaced = res.status == PointStatus.OUTLIER
    if replaced.any():  # replaced by the neighbour median, measured stays NaN
        assert np.allclose(res.displacement[replaced], 0.3, atol=0.05)
        assert np.isnan(res.measured_displacement[replaced]).all()


def test_post_processing_functions():
    rng = np.random.default_rng(1)
    g = np.stack(np.meshgrid(*(np.arange(0, 50, 10.0),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    theta = np.deg2rad(1.0)
    rot = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    t = np.array([0.5, -1.0, 2.0])
    disp = g @ rot.T + t - g + rng.normal(0, 0.01, g.shape)
    spikes = [7, 40, 93]
    disp[spikes] += [3.0, -2.0, 1.5]
    flagged = normalised_median_test(g, disp)
    assert set(np.flatnonzero(flagged)) == set(spikes)
    fit = remove_background(g, disp, model="rigid")
    assert np.allclose(fit.matrix, rot, atol=1e-3)
    assert fit.inlier_weight[spikes].max() == 0.0
    clean = np.delete(np.arange(len(g)), spikes)
    assert np.abs(fit.residual[clean]).max() < 0.05
    aff = remove_background(g, disp, model="affine")
    assert np.allclose(aff.matrix, rot, atol=2e-3)
    # regularisation: a weight-0 point follows its neighbours, noise shrinks (on a
    # uniform field, which the graph Laplacian penalty leaves unbiased)
    truth = np.broadcast_to(t, g.shape)
    disp = truth + rng.normal(0, 0.01, g.shape)
    disp[spikes] += [3.0, -2.0, 1.5]
    w = np.ones(len(g))
    w[spikes] = 0.0
    smooth = regularise(g, disp, w, strength=1.0)
    assert np.abs(smooth[spikes] - truth[spikes]).max() < 0.02
    assert np.std(smooth[clean] - truth[clean]) < np.std(disp[clean] - truth[clean])
    with pytest.raises(ValueError, match="model must be one of"):
        remove_background(g, disp, model="spline")
    with pytest.raises(ValueError, match="weights"):
        regularise(g, disp, w[:-1], strength=1.0)


def test_regularisation_option_fills_failed_points(packing, reference):
    ref = reference[0]
    cur = render(SHAPE, packing, shift=(0.1, 0.1, 0.1))[0]
    res = correlate(ref, cur, step=10, regularisation=0.5)
    assert np.all(np.isfinite(res.displacement))
    assert np.allclose(res.displacement, 0.1, atol=0.01)
    assert res.measured_displacement.shape == res.displacement.shape


@pytest.mark.parametrize("kwargs, match", [
    (dict(subset_size=20), "subset_size must be odd"),
    (dict(subset_size=5), "subset_size must be an int >= 7"),
    (dict(step=0), "step must be an int >= 1"),
    (dict(tolerance=-1.0), "tolerance must be positive"),
    (dict(zncc_threshold=1.5), "zncc_threshold"),
    (dict(points=np.zeros((3, 2))), r"points must be a finite \(N, 3\)"),
    (dict(mask=np.ones((3, 3, 3), bool)), "mask must have the volume shape"),
    (dict(outlier_threshold=0.0), "outlier_threshold"),
    (dict(regularisation=-1.0), "regularisation"),
])
def test_bad_options(reference, kwargs, match):
    ref = reference[0]
    with pytest.raises(ValueError, match=match):
        correlate(ref, ref, **kwargs)


def test_bad_volumes(reference):
    ref = reference[0]
    with pytest.raises(ValueError, match="reference must be a 3D"):
        correlate(ref[0], ref[0])
    with pytest.raises(ValueError, match="deformed must have the shape"):
        correlate(ref, ref[:-1])
    bad = ref.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="deformed contains NaN"):
        correlate(ref, bad)
    with pytest.raises(ValueError, match="larger than subset_size"):
        correlate(ref[:20], ref[:20])
    assert "correlate" in tomography.__all__
