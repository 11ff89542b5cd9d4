"""Known-answer tests of the shared correlation core (2D and 3D on the same code).

Textures are band-limited random fields moved by exact Fourier shifts, so the ground
truth carries no interpolation error.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from correlation import (PointStatus, ReferenceTracker, correlate_nd, neighbour_table, noise_std,
                         normalised_median_test, remove_background)
from correlation._bspline import spline_coefficients, spline_gradients, weights3, weights5


def texture(shape, sigma, seed):
    """Band-limited random texture, unit standard deviation."""
    t = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    return (t - t.mean()) / t.std()


def fourier_shift(img, shift):
    """Exact periodic sub-pixel shift: the material at x appears at x + shift."""
    return np.real(np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(img), shift)))


# ----------------------------------------------------------------------------- B-splines


@pytest.mark.parametrize("order", [3, 5])
@pytest.mark.parametrize("ndim", [2, 3])
def test_spline_interpolates_samples_and_gradient_is_exact(order, ndim):
    shape = (24,) * ndim
    data = texture(shape, 1.5, 1)
    coef = spline_coefficients(data, order)
    w = weights3 if order == 3 else weights5
    taps = order + 1
    first = -(order // 2)
    # interpolant at integer positions == samples; numerical derivative == spline gradient
    grads = spline_gradients(coef, order)
    pad = 4

    def value(pos):
        idx = np.floor(pos).astype(int)
        ws = [np.array(w(float(p - i))) for p, i in zip(pos, idx)]
        sl = tuple(slice(i + first + pad, i + first + pad + taps) for i in idx)
        block = coef[sl]
        for axis_w in ws:
            block = np.tensordot(axis_w, block, axes=(0, 0))
        return float(block)

    for pos in ([10, 12, 9][:ndim], [7, 15, 14][:ndim]):
        assert value(np.array(pos, float)) == pytest.approx(data[tuple(pos)], abs=1e-9)
        for axis in range(ndim):
            e = np.zeros(ndim)
            e[axis] = 1e-4
            num = (value(np.array(pos, float) + e) - value(np.array(pos, float) - e)) / 2e-4
            assert grads[axis][tuple(pos)] == pytest.approx(num, abs=1e-5)


def test_weights_partition_unity():
    for t in np.linspace(0.0, 1.0, 11):
        assert sum(weights3(t)) == pytest.approx(1.0, abs=1e-12)
        assert sum(weights5(t)) == pytest.approx(1.0, abs=1e-12)
        assert min(weights5(t)) >= 0.0


# ----------------------------------------------------------------------------- engine


def _frozen_pair(shift, seed=3, noise=0.0):
    # content up to the Nyquist frequency: the worst case for interpolation bias
    ref = texture((160, 160), 0.7, seed)
    cur = fourier_shift(ref, shift)
    rng = np.random.default_rng(seed + 1)
    return ref + noise * rng.standard_normal(ref.shape), cur + noise * rng.standard_normal(ref.shape)


def test_quintic_with_prefilter_removes_the_bias_of_frozen_texture():
    worst = {}
    for label, opts in (("cubic", dict(interpolation="cubic", prefilter_sigma=0.0)),
                        ("default", dict(interpolation="quintic", prefilter_sigma=0.6))):
        biases = []
        for s in (0.2, 0.3, 0.4):
            ref, cur = _frozen_pair((s, s))
            res = correlate_nd(ref, cur, ndim=2, subset_size=31, step=16, **opts)
            assert res.converged.mean() > 0.95
            biases.append(np.abs(np.nanmean(res.displacement - s, axis=0)).max())
        worst[label] = max(biases)
    # unfiltered cubic splines are biased by a few hundredths of a pixel on this texture
    assert worst["cubic"] > 0.01
    assert worst["default"] < 0.005


def test_texture_gate_rejects_flat_noisy_background_up_front():
    ref = texture((192, 192), 1.5, 5)
    ref[:, 96:] = 0.0  # a flat stage beside the specimen
    rng = np.random.default_rng(6)
    cur = fourier_shift(ref, (0.3, 0.2))
    ref = ref + 0.02 * rng.standard_normal(ref.shape)
    cur = cur + 0.02 * rng.standard_normal(ref.shape)
    res = correlate_nd(ref, cur, ndim=2, subset_size=21, step=12)
    flat = res.points[:, 1] > 96 + 12
    speckled = res.points[:, 1] < 96 - 12
    assert np.all(res.status[flat] == PointStatus.UNTEXTURED)
    assert np.all(res.iterations[flat] == 0)
    assert res.converged[speckled].mean() > 0.98
    assert np.all(np.abs(np.nanmean(res.displacement[speckled], axis=0) - [0.3, 0.2]) < 0.01)
    # the single-image noise estimate is an upper bound where texture is fine-grained
    assert 0.016 < res.noise_std < 0.1
    # a pixel-scale random texture is texture, not noise: both images carry it
    white = np.random.default_rng(7).random((120, 120))
    res = correlate_nd(white, white, ndim=2, subset_size=21, step=20)
    assert not np.any(res.status == PointStatus.UNTEXTURED)
    # the gate can be switched off (the flat subsets then fail slowly in IC-GN)
    off = correlate_nd(ref, cur, ndim=2, subset_size=21, step=12, texture_threshold=0.0)
    assert not np.any(off.status == PointStatus.UNTEXTURED)


def test_noise_aware_gate_keeps_noisy_but_matched_points_and_rejects_decorrelated_ones():
    ref0 = texture((192, 192), 1.5, 8)
    cur0 = fourier_shift(ref0, (0.4, -0.3))
    cur0[60:100, 60:100] = texture((40, 40), 1.5, 9)  # re-textured patch: decorrelated
    rng = np.random.default_rng(10)
    noise = 0.6  # ZNCC of matched subsets ~0.7
    ref = ref0 + noise * rng.standard_normal(ref0.shape)
    cur = cur0 + noise * rng.standard_normal(ref0.shape)
    fixed = correlate_nd(ref, cur, ndim=2, subset_size=31, step=10, zncc_threshold=0.8)
    auto = correlate_nd(ref, cur, ndim=2, subset_size=31, step=10)
    far = np.all(np.abs(auto.points - 80) > 40, axis=1)  # subsets clear of the patch
    inside = np.all(np.abs(auto.points - 80) < 5, axis=1)
    # the constant gate throws away most well-measured points at this noise
    assert fixed.converged[far].mean() < 0.5
    assert auto.converged[far].mean() > 0.95
    # per-point random error ~0.07 px at this noise; the mean carries the noise-induced
    # bias of interpolating a noisy image (~0.02 px here)
    err = auto.displacement[far & auto.converged] - [0.4, -0.3]
    assert np.abs(err.mean(axis=0)).max() < 0.03 and err.std(axis=0).max() < 0.12
    assert np.all(auto.status[inside] != PointStatus.OK)
    assert np.all(auto.zncc_threshold < 0.8) and np.isfinite(auto.residual_variance)


def test_outliers_are_restarted_and_flagged_in_2d_too():
    ref = texture((160, 160), 1.5, 11)
    cur = fourier_shift(ref, (0.5, 0.5))
    res = correlate_nd(ref, cur, ndim=2, subset_size=21, step=10, initial_displacement=[0.5, 0.5])
    assert res.converged.all()
    # a wrong start at one point converges elsewhere only if the texture allows: force a
    # bad field by correlating against a frame where one patch moved 3 px
    cur2 = cur.copy()
    cur2[70:90, 70:90] = fourier_shift(ref, (3.5, 0.5))[70:90, 70:90]
    res2 = correlate_nd(ref, cur2, ndim=2, subset_size=11, step=10, zncc_threshold=0.5,
                        initial_displacement=[0.5, 0.5])
    moved = np.all(np.abs(res2.points - 80) < 3, axis=1)
    flagged = res2.status == PointStatus.OUTLIER
    assert flagged.any() or not res2.converged[moved].any()
    assert res2.converged[~np.all(np.abs(res2.points - 80) < 25, axis=1)].mean() > 0.95


def test_2d_and_3d_share_the_pipeline():
    vol = texture((48, 48, 48), 1.4, 12)
    cur = fourier_shift(vol, (0.25, -0.4, 0.6))
    res = correlate_nd(vol, cur, ndim=3, subset_size=15, step=8)
    assert res.converged.mean() > 0.95
    assert np.abs(np.nanmedian(res.displacement, axis=0) - [0.25, -0.4, 0.6]).max() < 0.01
    assert res.status.dtype == np.int8 and res.grid_shape is not None
    with pytest.raises(ValueError, match="shape_function"):
        correlate_nd(vol, cur, ndim=3, subset_size=15, step=8, shape_function="quadratic")
    with pytest.raises(ValueError, match="interpolation"):
        correlate_nd(vol, cur, ndim=3, subset_size=15, step=8, interpolation="linear")


# ----------------------------------------------------------------------------- point clouds


@pytest.mark.parametrize("ndim", [2, 3])
def test_background_models_recover_motion_despite_local_events(ndim):
    rng = np.random.default_rng(13)
    pts = rng.uniform(0, 100, (400, ndim))
    theta = 0.01
    rot = np.eye(ndim)
    rot[0, 0] = rot[1, 1] = np.cos(theta)
    rot[0, 1], rot[1, 0] = -np.sin(theta), np.sin(theta)
    t = np.arange(1, ndim + 1) * 0.3
    disp = (pts - 50) @ (rot - np.eye(ndim)).T + t + 0.005 * rng.standard_normal(pts.shape)
    crack = pts[:, 0] > 80
    disp[crack, 0] += 2.0  # a local opening must not bias the fit
    fit = remove_background(pts, disp, model="rigid")
    assert np.abs(fit.residual[~crack]).max() < 0.03
    assert np.all(fit.inlier_weight[crack] == 0)
    strain = np.diag(np.full(ndim, -3e-3))
    aff = remove_background(pts, (pts - 50) @ strain.T + t, model="affine")
    np.testing.assert_allclose(aff.matrix - np.eye(ndim), strain, atol=1e-9)
    trans = remove_background(pts, np.tile(t, (len(pts), 1)), model="translation")
    np.testing.assert_allclose(trans.translation, t, atol=1e-12)


def test_neighbour_table_and_median_test():
    g = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0), indexing="ij"), -1).reshape(-1, 2) * 10
    table = neighbour_table(g)
    assert table.shape[1] == 8 and np.sum(table[0] >= 0) == 3 and np.sum(table[14] >= 0) == 8
    disp = np.zeros_like(g)
    disp[14] = [1.0, 0.0]
    assert np.flatnonzero(normalised_median_test(g, disp)).tolist() == [14]


def test_noise_estimate():
    img = ndimage.gaussian_filter(np.random.default_rng(14).standard_normal((256, 256)), 3) * 10
    noisy = img + 0.5 * np.random.default_rng(15).standard_normal(img.shape)
    assert noise_std(noisy) == pytest.approx(0.5, rel=0.1)


# ----------------------------------------------------------------------------- tracking


def _run_2d(reference, frame, *, points, mask, initial_displacement=None):
    return correlate_nd(reference, frame, ndim=2, subset_size=31, step=10, points=points, mask=mask,
                        initial_displacement=initial_displacement)


def test_tracker_accumulates_across_reference_updates():
    """A motion that grows frame by frame, the reference moving on at every frame: the
    accumulated displacement (and gradient) is the total motion."""
    base = texture((160, 160), 1.5, 16)
    rng = np.random.default_rng(17)
    truth = [(0.0, 0.0), (0.3, 0.1), (0.7, 0.3), (1.2, 0.4), (1.8, 0.5), (2.4, 0.7)]
    frames = [fourier_shift(base, s) + 0.01 * rng.standard_normal(base.shape) for s in truth]
    pts = np.array([[60.0, 60.0], [80.0, 100.0], [100.0, 70.0]])
    tracker = ReferenceTracker(frames[0], correlate=_run_2d, points=pts, grid_shape=None, update_zncc=0.99999)
    for k in range(1, len(frames)):
        tf = tracker.track(frames[k])
        assert tf.converged.all()
        # each hop adds its random error (~0.002 px at this noise)
        np.testing.assert_allclose(tf.displacement, np.tile(truth[k], (3, 1)), atol=0.02)
        np.testing.assert_allclose(tf.gradient, 0.0, atol=2e-3)
    assert tracker.n_updates == len(frames) - 2  # every frame after the first tracked one


def test_tracker_moves_the_reference_only_when_the_texture_changed():
    base = texture((160, 160), 1.5, 16)
    other = texture((160, 160), 1.5, 18)
    pts = np.array([[60.0, 60.0], [80.0, 100.0], [100.0, 70.0]])
    quiet = [fourier_shift(base, (0.1 * k, 0.0)) for k in range(5)]
    # a second texture fades in: frame 4 correlates with frame 0 at ZNCC ~0.6
    fading = [np.sqrt(1 - 0.15 * k) * q + np.sqrt(0.15 * k) * fourier_shift(other, (0.1 * k, 0.0))
              for k, q in enumerate(quiet)]
    for frames, updates in ((quiet, 0), (fading, 1)):
        tracker = ReferenceTracker(frames[0], correlate=_run_2d, points=pts, grid_shape=None,
                                   update_residual_ratio=3.0)
        for f in frames[1:]:
            tf = tracker.track(f)
        assert (tracker.n_updates >= 1) == bool(updates)
        if not updates:
            np.testing.assert_allclose(tf.displacement, np.tile([0.4, 0.0], (3, 1)), atol=0.01)
