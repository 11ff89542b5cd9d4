"""Known-answer tests of the analytic particle-packing phantom used to test the DVC engine."""

from __future__ import annotations

import numpy as np
import pytest

from tomography._phantom import (
    add_noise,
    cramer_rao_bound,
    displacement,
    evaluate,
    opening_shift,
    packing_fraction,
    particles,
    render,
)

SHAPE = (24, 30, 36)
MATRIX = np.array([[1.004, 0.002, -0.001], [-0.003, 0.997, 0.002], [0.001, 0.0015, 1.002]])


@pytest.fixture(scope="module")
def parts():
    return particles(SHAPE, seed=3)


def grid_points(shape):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1).reshape(-1, 3)


@pytest.mark.parametrize("mapped", [False, True])
def test_gradient_is_central_difference_of_field(parts, mapped):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, np.array(SHAPE) - 1, (400, 3))
    near_centres = parts.centres[:50] + rng.normal(0, 0.01, (50, 3))  # series branch at r ~ 0
    pts = np.vstack([pts, near_centres])
    kw = {"matrix": MATRIX, "shift": (0.3, -0.2, 0.6)} if mapped else {}
    _, grad = evaluate(parts, pts, **kw)
    h = 1e-5
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = h
        fd = (evaluate(parts, pts + step, **kw)[0] - evaluate(parts, pts - step, **kw)[0]) / (2 * h)
        np.testing.assert_allclose(grad[:, axis], fd, rtol=0, atol=1e-8)
    assert np.abs(grad).max() > 0.1  # the check is not vacuous


def test_render_matches_evaluate_on_grid(parts):
    vol, gz, gy, gx = render(SHAPE, parts, matrix=MATRIX, shift=(0.1, 0.2, 0.3))
    values, grad = evaluate(parts, grid_points(SHAPE), matrix=MATRIX, shift=(0.1, 0.2, 0.3))
    np.testing.assert_allclose(vol.ravel(), values, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.stack([gz, gy, gx], -1).reshape(-1, 3), grad, rtol=0, atol=1e-13)


@pytest.mark.parametrize("matrix", [None, MATRIX])
@pytest.mark.parametrize("shift", [(0.3, 0.5, 0.7), (-1.25, 0.0, 2.5)])
def test_moved_render_is_reference_field_at_mapped_points(parts, matrix, shift):
    vol, gz, gy, gx = render(SHAPE, parts, matrix=matrix, shift=shift)
    x = grid_points(SHAPE)
    mat = np.eye(3) if matrix is None else matrix
    reference_points = (x - np.asarray(shift)) @ np.linalg.inv(mat).T  # X = M^-1 (x - t)
    values, grad_ref = evaluate(parts, reference_points)
    np.testing.assert_allclose(vol.ravel(), values, rtol=0, atol=1e-12)
    grad = np.stack([gz, gy, gx], -1).reshape(-1, 3)
    np.testing.assert_allclose(grad, grad_ref @ np.linalg.inv(mat), rtol=0, atol=1e-12)  # M^-T grad_X
    np.testing.assert_allclose(displacement(reference_points, matrix=matrix, shift=shift), x - reference_points,
                               atol=1e-12)


def test_per_particle_shift_and_crack_opening(parts):
    uniform = render(SHAPE, parts, shift=(0.2, 0.4, -0.3))[0]
    per_ball = render(SHAPE, parts, shift=np.tile([0.2, 0.4, -0.3], (len(parts), 1)))[0]
    np.testing.assert_array_equal(uniform, per_ball)
    opening, plane_y = 1.0, 15.0
    shifts = opening_shift(parts, point=(0.0, plane_y, 0.0), normal=(0.0, 2.0, 0.0), opening=opening)
    assert set(np.unique(shifts[:, 1])) == {-0.5, 0.5}
    assert np.all(shifts[:, [0, 2]] == 0.0)
    vol = render(SHAPE, parts, shift=shifts)[0]
    reach = parts.radii.max() + 5.0 * parts.edge_width + opening  # no ball of the other side gets here
    x = grid_points(SHAPE)
    far = np.abs(x[:, 1] - plane_y) > reach
    assert far.sum() > 1000
    side = np.where(x[far, 1] > plane_y, 0.5, -0.5)[:, None] * np.array([0.0, opening, 0.0])
    np.testing.assert_allclose(vol.ravel()[far], evaluate(parts, x[far] - side)[0], rtol=0, atol=1e-12)


def test_deterministic_by_seed():
    a, b, c = particles(SHAPE, seed=5), particles(SHAPE, seed=5), particles(SHAPE, seed=6)
    np.testing.assert_array_equal(a.centres, b.centres)
    np.testing.assert_array_equal(a.amplitudes, b.amplitudes)
    np.testing.assert_array_equal(render(SHAPE, a)[0], render(SHAPE, b)[0])
    assert len(a) != len(c) or not np.array_equal(a.centres, c.centres)


def test_packing_fraction_and_particle_sizes(parts):
    assert 0.4 <= packing_fraction(SHAPE, parts) <= 0.6
    big = particles((40, 48, 48), seed=1)
    assert 0.4 <= packing_fraction((40, 48, 48), big) <= 0.6
    assert 2.0 <= big.radii.min() and big.radii.max() <= 4.0
    vol = render((40, 48, 48), big)[0]
    assert vol.std() > 0.1  # textured enough for DVC


def test_cramer_rao_bound_on_uniform_gradient():
    shape, g, noise, n = (30, 30, 30), 0.05, 0.02, 11
    grads = (np.full(shape, g), np.full(shape, 2 * g), np.zeros(shape) + 4 * g)
    crb = cramer_rao_bound(grads, [[15, 15, 15], [14.6, 15.2, 16]], noise=noise, subset_size=n)
    expected = np.sqrt(2.0) * noise / (np.array([1.0, 2.0, 4.0]) * g * np.sqrt(n**3))
    np.testing.assert_allclose(crb, expected, rtol=1e-9)


def test_add_noise_keeps_input_and_dtype():
    vol = np.zeros((20, 20, 20), dtype=np.float32)
    noisy = add_noise(vol, 0.02, seed=1)
    assert noisy.dtype == np.float32 and not np.any(vol)
    assert abs(noisy.std() - 0.02) < 0.001
    np.testing.assert_array_equal(noisy, add_noise(vol, 0.02, seed=1))


def test_invalid_inputs(parts):
    with pytest.raises(ValueError, match="shape must be three"):
        render((10, 10), parts)
    with pytest.raises(ValueError, match="matrix must have shape"):
        render(SHAPE, parts, matrix=np.eye(2))
    with pytest.raises(ValueError, match="invertible"):
        render(SHAPE, parts, matrix=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shift must have shape"):
        render(SHAPE, parts, shift=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="points must have shape"):
        evaluate(parts, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="fraction must be in"):
        particles(SHAPE, fraction=1.2)
    with pytest.raises(ValueError, match="normal must be"):
        opening_shift(parts, point=(0, 0, 0), normal=(0, 0, 0), opening=1.0)
    with pytest.raises(RuntimeError, match="jammed"):
        particles((10, 10, 10), fraction=0.9, overlap=0.0)
