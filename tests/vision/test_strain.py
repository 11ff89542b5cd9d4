"""Tests of the Green-Lagrange strain from gridded displacements."""

from __future__ import annotations

import numpy as np
import pytest

from vision._strain import strain_field


def _grid_field(mat, shape=(15, 17), step=8.0):
    r, c = np.meshgrid(np.arange(shape[0]) * step, np.arange(shape[1]) * step, indexing="ij")
    x = np.stack([r, c], axis=-1)
    return x @ (mat - np.eye(2)).T + np.array([0.3, -0.2]), step


@pytest.mark.parametrize("angle", [0.0, 0.3])
def test_uniform_stretch_rotation_invariant(angle):
    stretch = np.diag([1.002, 0.999])  # (row, col): eyy from rows, exx from cols
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    u, step = _grid_field(rot @ stretch)
    res = strain_field(u, window=5, step_px=step)
    assert np.allclose(res.eyy, 0.5 * (1.002 ** 2 - 1), atol=1e-9)
    assert np.allclose(res.exx, 0.5 * (0.999 ** 2 - 1), atol=1e-9)
    assert np.allclose(res.exy, 0.0, atol=1e-9)
    assert np.allclose(res.e1, 0.5 * (1.002 ** 2 - 1), atol=1e-9)
    assert np.allclose(res.e2, 0.5 * (0.999 ** 2 - 1), atol=1e-9)
    assert np.allclose(np.abs(res.angle), np.pi / 2, atol=1e-6)  # e1 along rows (y)
    assert np.allclose(res.gradient, rot @ stretch - np.eye(2), atol=1e-9)


def test_shear_principal_axes():
    mat = np.array([[1.0, 1e-3], [1e-3, 1.0]])
    u, step = _grid_field(mat)
    res = strain_field(u, window=3, step_px=step)
    assert np.isnan(res.exy[0, 0])  # a corner has only 4 neighbours (< 6)
    assert np.allclose(res.exy[1:-1, 1:-1], 1e-3, atol=1e-6)
    assert np.allclose(res.angle[1:-1, 1:-1], np.pi / 4, atol=1e-3)
    assert np.all(res.e1[1:-1, 1:-1] >= res.e2[1:-1, 1:-1])


def test_nan_aware():
    u, step = _grid_field(np.diag([1.001, 1.0]))
    u[3:6, 4:7] = np.nan
    u[0, 0] = np.nan
    res = strain_field(u, window=5, step_px=step)
    assert np.isfinite(res.eyy).all()
    assert np.allclose(res.eyy, 0.5 * (1.001 ** 2 - 1), atol=1e-9)
    sparse = np.full((6, 6, 2), np.nan)
    sparse[0, :5] = 0.0
    out = strain_field(sparse, window=3, step_px=1.0)
    assert np.isnan(out.exx).all()  # < 6 valid (or collinear) points everywhere


def test_from_dic_result():
    from vision._correlate import correlate

    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter, map_coordinates
    big = gaussian_filter(rng.normal(size=(220, 220)), 2.0)
    r, c = np.meshgrid(np.arange(200.0), np.arange(200.0), indexing="ij")
    ref = big[10:210, 10:210]
    # deformed(x) = ref(x / 1.002) along rows (uniform stretch about the origin)
    cur = map_coordinates(big, [r / 1.002 + 10, c + 10], order=5)
    res = correlate(ref, cur, step=6)
    out = strain_field(res, window=5)
    assert np.nanmedian(out.eyy) == pytest.approx(0.5 * (1.002 ** 2 - 1), abs=2e-4)
    assert abs(np.nanmedian(out.exx)) < 2e-4


def test_bad_arguments():
    with pytest.raises(ValueError, match="step_px"):
        strain_field(np.zeros((5, 5, 2)))
    with pytest.raises(ValueError, match="window"):
        strain_field(np.zeros((5, 5, 2)), window=4, step_px=1.0)
    with pytest.raises(ValueError, match="shape"):
        strain_field(np.zeros((5, 5)), step_px=1.0)
