"""Out-of-core / distributed DVC (`correlate_chunked`) against the in-memory engine."""

from __future__ import annotations

import tracemalloc

import dask.array as da
import numpy as np
import pytest
import zarr
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage

from tomography import PointStatus, correlate, correlate_chunked, open_volume, save_volume

SHAPE = (64, 96, 96)
SHIFT = np.array([1.3, -0.6, 2.4])
GRAD = np.array([[2e-3, 1e-3, 0.0], [0.0, -3e-3, 2e-3], [1e-3, 0.0, 4e-3]])  # d u_i / d x_j
OPTS = dict(subset_size=11, step=6, search_radius=4)
TOL = 1e-3  # the engine's default IC-GN tolerance
HALF = OPTS["subset_size"] // 2
FAILED = (PointStatus.NOT_CONVERGED, PointStatus.LOW_ZNCC, PointStatus.OUT_OF_BOUNDS)


def _texture(shape, seed):
    vol = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.6)
    return (vol / vol.std()).astype(np.float32)


def _affine(ref):
    """Deformed volume: the material at X is at x = X + SHIFT + GRAD (X - c)."""
    c = (np.array(ref.shape) - 1) / 2
    inv = np.linalg.inv(np.eye(3) + GRAD)
    return ndimage.affine_transform(ref.astype(np.float64), inv, offset=c - inv @ (c + SHIFT), order=3,
                                    mode="mirror").astype(np.float32)


def _truth(points):
    return SHIFT + (points - (np.array(SHAPE) - 1) / 2) @ GRAD.T


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ref = _texture(SHAPE, 3)
    cur = _affine(ref)
    root = tmp_path_factory.mktemp("chunked")
    paths = [save_volume(v, root / f"{name}.zarr", chunks=(32, 32, 32)) for name, v in (("ref", ref), ("cur", cur))]
    return ref, cur, paths


@pytest.fixture(scope="module")
def in_memory(pair):
    ref, cur, _ = pair
    return correlate(ref, cur, **OPTS)


def _inputs(kind, pair):
    ref, cur, paths = pair
    if kind == "numpy":
        return ref, cur
    if kind == "volume":
        return tuple(open_volume(p) for p in paths)
    arrays = tuple(zarr.open_array(str(p), mode="r") for p in paths)
    return arrays if kind == "zarr" else tuple(da.from_zarr(a) for a in arrays)


def _assert_equal_results(chunked, whole, atol_vox):
    assert_array_equal(chunked.points, whole.points)
    assert chunked.grid_shape == whole.grid_shape
    both = chunked.converged & whole.converged
    assert both.any()
    # identical status, except that a failure may carry another failure code
    differ = chunked.status != whole.status
    assert np.isin(chunked.status[differ], FAILED).all() and np.isin(whole.status[differ], FAILED).all()
    assert_array_equal(chunked.status == PointStatus.OUTLIER, whole.status == PointStatus.OUTLIER)
    assert_array_equal(chunked.converged, whole.converged)
    assert_allclose(chunked.displacement[both], whole.displacement[both], rtol=0, atol=atol_vox)
    assert_allclose(chunked.gradient[both], whole.gradient[both], rtol=0, atol=2 * atol_vox / HALF)
    assert_array_equal(np.isnan(chunked.displacement), np.isnan(whole.displacement))


@pytest.mark.parametrize("kind", ["volume", "zarr", "dask", "numpy"])
def test_chunked_equals_in_memory(pair, in_memory, kind):
    # Both runs stop when the last IC-GN increment is below `tolerance`; on a well-textured
    # field Gauss-Newton contracts the error by far more than 2x per iteration, so each run
    # ends within tolerance/2 of the same optimum, and the block regions reproduce the
    # whole-volume B-spline where subvolumes are sampled: |difference| <= tolerance.
    calls = []
    res = correlate_chunked(*_inputs(kind, pair), memory_budget_mb=25,
                            progress=lambda done, total: calls.append((done, total)), **OPTS)
    total = calls[-1][1]
    assert total >= 4
    assert calls == [(k, total) for k in range(1, total + 1)]
    _assert_equal_results(res, in_memory, atol_vox=TOL)
    assert in_memory.converged.all() and res.converged.all()
    assert_allclose(res.displacement, _truth(res.points), atol=0.01)
    assert_allclose(in_memory.displacement, _truth(in_memory.points), atol=0.01)
    assert_allclose(res.gradient, np.broadcast_to(GRAD, res.gradient.shape), atol=2e-3)


def test_agreement_follows_the_convergence_tolerance(pair):
    ref, cur, _ = pair
    tight = dict(OPTS, tolerance=1e-4)
    whole = correlate(ref, cur, **tight)
    res = correlate_chunked(*_inputs("volume", pair), memory_budget_mb=25, **tight)
    _assert_equal_results(res, whole, atol_vox=1e-4)


def test_outliers_and_repair_across_block_borders(tmp_path):
    """Featureless slab, a re-textured cube and noise in the deformed volume: failed points,
    repairs and median-test outliers on many block borders, as in the whole-volume run."""
    rng = np.random.default_rng(5)
    ref = _texture(SHAPE, 3)
    cur = _affine(ref)
    ref[:, 40:52, 60:75] = 0.0
    cur[:, 40:52, 60:75] = 0.0
    cur[30:38, 20:28, 44:52] = _texture((8, 8, 8), 4)
    cur[10:13, 70:73, 20:23] += 3 * rng.standard_normal((3, 3, 3)).astype(np.float32)
    # a constant gate leaves the decorrelated points to the median test (the noise-aware
    # gate of these noiseless volumes flags most of them LOW_ZNCC already), and without the
    # prefilter more points next to the slab fail (exercising the repair across borders)
    opts = dict(OPTS, zncc_threshold=0.8, interpolation="cubic", prefilter_sigma_vox=0.0)
    whole = correlate(ref, cur, **opts)
    assert (whole.status == PointStatus.OUTLIER).sum() >= 10
    assert np.isin(whole.status, FAILED).sum() >= 10
    vols = [open_volume(save_volume(v, tmp_path / f"{k}.zarr", chunks=(32, 32, 32))) for k, v in enumerate((ref, cur))]
    calls = []
    res = correlate_chunked(*vols, memory_budget_mb=25, progress=lambda d, t: calls.append(t), **opts)
    assert calls[-1] >= 10
    # slowly converging points next to the featureless slab: within 2 tolerances
    _assert_equal_results(res, whole, atol_vox=2 * TOL)
    outlier = res.status == PointStatus.OUTLIER
    assert_allclose(res.displacement[outlier], whole.displacement[outlier], atol=2 * TOL)  # replaced


def test_user_points_mask_initial_displacement_regularisation(pair):
    ref, cur, _ = pair
    rng = np.random.default_rng(2)
    points = rng.uniform(-4, np.array(SHAPE) + 4, size=(300, 3))  # some outside the volume
    mask = np.ones(SHAPE, dtype=bool)
    mask[:, :, :30] = False
    opts = dict(OPTS, points=points, mask=mask, initial_displacement=(1.0, -1.0, 2.0), regularisation=0.5)
    whole = correlate(ref, cur, **opts)
    res = correlate_chunked(ref, cur, memory_budget_mb=20, **opts)
    assert res.grid_shape is None
    assert (res.status == PointStatus.MASKED).sum() > 50
    assert (res.status == PointStatus.OUT_OF_BOUNDS).sum() > 10
    _assert_equal_results(res, whole, atol_vox=TOL)
    assert np.isfinite(res.displacement).sum() > np.isfinite(res.measured_displacement).sum()  # filled
    assert_allclose(res.measured_displacement, whole.measured_displacement, atol=TOL)


def test_out_of_core_peak_memory(tmp_path):
    """A float64 zarr volume 4x the budget: the traced peak stays within the budget."""
    shape, chunks = (160, 224, 224), (16, 32, 32)
    ref = ndimage.gaussian_filter(np.random.default_rng(7).standard_normal(shape), 1.2)
    cur = np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(ref), SHIFT)).real
    paths = [save_volume(v, tmp_path / f"{k}.zarr", chunks=chunks) for k, v in enumerate((ref, cur))]
    del ref, cur
    vols = [zarr.open_array(str(p), mode="r") for p in paths]
    budget_mb = 15.0
    assert vols[0].nbytes >= 4 * budget_mb * 1e6  # the reference alone is 4x the budget
    opts = dict(subset_size=7, step=32, search_radius=2)
    small = [np.asarray(v[:40, :40, :40]) for v in vols]
    correlate_chunked(*small, memory_budget_mb=budget_mb, **opts)  # warm-up: imports, numba caches
    tracemalloc.start()
    try:
        res = correlate_chunked(*vols, memory_budget_mb=budget_mb, **opts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # allowance beyond the budget: the point cloud and the result, ~500 bytes per point
    assert peak <= budget_mb * 1e6 + 500 * len(res.points)
    assert len(res.points) > 50
    assert res.converged.mean() > 0.9
    # periodic FFT shift: points within the wrap-around border are biased, the rest exact
    assert np.nanmedian(np.abs(res.displacement - SHIFT)) < 0.01


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as lc:
        yield lc


def test_distributed_client_and_address(pair, in_memory, cluster):
    from distributed import Client

    budget = 40  # a few blocks
    vols = _inputs("volume", pair)
    sequential = correlate_chunked(*vols, memory_budget_mb=budget, **OPTS)
    with Client(cluster, set_as_default=False) as client:
        calls = []
        on_client = correlate_chunked(*vols, memory_budget_mb=budget, scheduler=client,
                                      progress=lambda d, t: calls.append((d, t)), **OPTS)
        assert len(calls) >= 3 and calls[-1] == (calls[-1][1], calls[-1][1])
        from_numpy = correlate_chunked(*_inputs("numpy", pair), memory_budget_mb=budget, scheduler=client, **OPTS)
    by_address = correlate_chunked(*_inputs("dask", pair), memory_budget_mb=budget,
                                   scheduler=cluster.scheduler_address, **OPTS)
    for res in (on_client, by_address):  # same blocks, same engine: identical numbers
        for field in ("displacement", "gradient", "zncc", "iterations", "status"):
            assert_array_equal(getattr(res, field), getattr(sequential, field))
    _assert_equal_results(from_numpy, in_memory, atol_vox=TOL)  # numpy regions are scattered


def test_budget_too_small_names_the_minimum(pair):
    ref, cur, _ = pair
    with pytest.raises(ValueError, match=r"memory_budget_mb=0\.5 is too small: .* needs at least [0-9.]+ MB"):
        correlate_chunked(ref, cur, memory_budget_mb=0.5, **OPTS)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(memory_budget_mb=0), "memory_budget_mb must be positive"),
    (dict(memory_budget_mb=float("nan")), "memory_budget_mb must be finite"),
    (dict(memory_budget_mb="lots"), "memory_budget_mb must be a number"),
    (dict(memory_budget_mb=20, subset_size=12), "subset_size must be odd"),
    (dict(memory_budget_mb=20, step=0), "step must be an int >= 1"),
    (dict(memory_budget_mb=20, tolerance=-1.0), "tolerance must be positive"),
    (dict(memory_budget_mb=20, zncc_threshold=1.0), r"zncc_threshold must be in \[-1, 1\)"),
    (dict(memory_budget_mb=20, search_radius=-1), "search_radius must be an int >= 0"),
    (dict(memory_budget_mb=20, points=np.zeros((4, 2))), r"points must be a non-empty finite \(N, 3\)"),
    (dict(memory_budget_mb=20, initial_displacement=np.zeros(2)), r"initial_displacement must have shape \(3,\)"),
    (dict(memory_budget_mb=20, mask=np.ones((8, 8, 8), dtype=bool)), "mask must have the volume shape"),
    (dict(memory_budget_mb=20, progress="yes"), "progress must be a callable"),
])
def test_bad_options(pair, kwargs, match):
    ref, cur, _ = pair
    with pytest.raises(ValueError, match=match):
        correlate_chunked(ref, cur, **kwargs)


def test_bad_volumes(pair):
    ref, cur, _ = pair
    with pytest.raises(ValueError, match=r"deformed must have the shape of reference \(64, 96, 96\)"):
        correlate_chunked(ref, cur[:, :, :90], memory_budget_mb=20)
    with pytest.raises(ValueError, match="reference must be a 3D"):
        correlate_chunked(ref[0], cur[0], memory_budget_mb=20)
    with pytest.raises(ValueError, match="deformed must have a real numeric dtype"):
        correlate_chunked(ref, cur > 0, memory_budget_mb=20)
    with pytest.raises(TypeError, match="scheduler must be None, a scheduler address or a distributed.Client"):
        correlate_chunked(ref, cur, memory_budget_mb=20, scheduler=3)
