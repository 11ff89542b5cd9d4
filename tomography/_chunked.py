"""Out-of-core and distributed 3D DVC: `correlate` block by block, with halos.

Pipeline of `correlate_chunked`:

1. the global point set (the engine's default grid on the full shape, or the given points)
   is fixed first, so the result has the same points, in the same order, as `correlate`;
2. a global rigid shift: FFT phase correlation of block-mean-downsampled volumes (computed
   tile by tile within the budget, by the cluster when there is one), refined at full
   resolution on a central crop.  Blocks read their deformed region moved by this integer
   shift (blocks at the volume borders: the union of both boxes instead, see `_regions`),
   so all blocks search around the same prior and the halo covers the search range, not
   the rigid motion;
3. the points are partitioned into boxes sized so that a box plus its halo fits the
   memory budget (a measured model of the engine's working memory); each block reads only
   its halo'd region and runs `correlate` (seeds, IC-GN, reliability-guided repair) on
   local coordinates, in-process one block at a time or as tasks on a dask.distributed
   cluster (each task reads its own region from the store);
4. on the assembled field: reliability-guided repair across block borders, the
   normalised median test with the engine's neighbourhoods (so points at block borders
   see all their neighbours), restart of the outliers, then replacement and optional
   regularisation, exactly as `correlate` does them.  Points that must be re-solved are
   grouped by block and their (small) regions read again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numba
import numpy as np
import zarr
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from correlation import (INTERPOLATIONS, RADIUS_SPACINGS, SPLINE_PAD, Field, PointStatus, SubsetSolver, check_int,
                         check_number, default_grid, displacement_and_gradient, neighbour_median, neighbour_table,
                         noise_aware_gate, phase_shift, regularise, repair, restart_outliers,
                         shift_params)
from correlation import noise_std as estimate_noise_std

from ._dvc import DVCResult, correlate
from ._io import Volume, _is_zarr_dir

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["correlate_chunked"]

#: Working memory of `correlate` per voxel of its (SPLINE_PAD-padded) region: float64
#: copies of both volumes (and their Gaussian prefilter), the reference spline and its
#: gradients, the deformed spline, the texture test's derivative and summed-area tables,
#: the ROI and the float32 pyramid.  tracemalloc: 51-67 bytes on 40^3-100^3.
_ENGINE_BYTES_PER_VOXEL = 72
#: skimage ``match_template`` (FFT) per voxel of (search window + template), measured 70-140.
_MATCH_BYTES = 160
#: numba IC-GN scratch per subvolume voxel and thread (outside tracemalloc's view).
_SCRATCH_BYTES = 160
#: FFT phase correlation per voxel (float64 copies, Hann window, spectra).
_PHASE_BYTES = 120
#: Storage chunks (compressed + decoded) in flight while one region is read.
_IO_CHUNKS = 20
#: Extra voxels per side so that the B-spline prefilter (pole -0.268 cubic, -0.431 quintic)
#: of a region matches that of the whole volume where subvolumes are sampled (cubic:
#: 0.268^4 = 0.5 % at the very edge of the search range, < 1e-5 a search radius further in;
#: quintic: 0.431^7 = 0.3 %); a Gaussian prefilter adds 4 sigma.
_SPLINE_MARGIN = {"cubic": 4, "quintic": 7}
#: Neighbour lists of the post-processing, per point queried (Python lists and arrays).
_NEIGHBOUR_BYTES = 2000
_MB = 1e6
_NPAR = 12


@dataclass(frozen=True)
class _Recipe:
    """A picklable recipe for the voxels of one region (read where the task runs)."""

    array: Any  # ndarray (already cut), zarr.Array, or a dask array (culled region)
    slices: tuple[slice, slice, slice] | None

    def load(self, threads: bool = False) -> NDArray:
        arr = self.array if self.slices is None else self.array[self.slices]
        if isinstance(arr, da.Array):
            arr = arr.compute(scheduler="threads" if threads else "sync")
        return np.asarray(arr)


@dataclass(frozen=True)
class _Source:
    """A volume to read region by region."""

    array: Any  # ndarray | zarr.Array | dask.array.Array
    shape: tuple[int, int, int]
    dtype: np.dtype
    chunks: tuple[int, int, int]  # storage / dask chunk shape (the shape itself for numpy)

    def recipe(self, sl: tuple[slice, ...], remote: bool) -> _Recipe:
        if remote and isinstance(self.array, np.ndarray):
            return _Recipe(np.ascontiguousarray(self.array[sl]), None)
        if remote and isinstance(self.array, da.Array):
            (region,) = dask.optimize(self.array[sl])  # only the chunks this region needs
            return _Recipe(region, None)
        return _Recipe(self.array, tuple(sl))  # type: ignore[arg-type]


def _zarr_array(volume: Volume) -> Any:
    """The zarr array behind a Volume read from a zarr store (None for other formats)."""
    if not _is_zarr_dir(volume.source):
        return None
    try:
        node = zarr.open(str(volume.source), mode="r")
        arr = node[volume.dataset] if volume.dataset else node
    except (OSError, KeyError, ValueError, TypeError):  # fall back to the Volume's dask reader
        return None
    same = isinstance(arr, zarr.Array) and arr.shape == volume.shape and np.dtype(arr.dtype) == volume.dtype
    return arr if same else None


def _as_source(name: str, volume: Any, *, any_dtype: bool = False) -> _Source:
    if isinstance(volume, Volume):
        arr: Any = _zarr_array(volume)  # zarr directly: no dask graph per region
        if arr is None:
            arr = volume.data
    elif isinstance(volume, (da.Array, zarr.Array)):
        arr = volume
    else:
        arr = np.asarray(volume)
    shape = tuple(int(n) for n in arr.shape)
    if len(shape) != 3:
        raise ValueError(f"{name} must be a 3D (z, y, x) array, got shape {shape}")
    dtype = np.dtype(arr.dtype)
    if not any_dtype and (dtype == np.bool_ or dtype.kind not in "iuf"):
        raise ValueError(f"{name} must have a real numeric dtype, got {dtype}")
    if isinstance(arr, da.Array):
        chunks = tuple(int(c) for c in arr.chunksize)
    elif isinstance(arr, zarr.Array):
        chunks = tuple(int(c) for c in arr.chunks)
    else:
        chunks = shape
    return _Source(arr, shape, dtype, chunks)  # type: ignore[arg-type]


def _io_bytes(source: _Source, ext: Sequence[int]) -> float:
    """Storage chunks (compressed and decoded) in flight while a region is read."""
    if isinstance(source.array, np.ndarray):
        return 0.0
    touched = np.prod([-(-(e - 1) // c) + 1 for e, c in zip(ext, source.chunks)])
    return min(_IO_CHUNKS, float(touched)) * float(np.prod(source.chunks)) * source.dtype.itemsize


@dataclass(frozen=True)
class _Options:
    subset_size: int
    step: int
    max_iterations: int
    tolerance: float
    zncc_threshold: float
    search_radius: int
    search: bool  # False when initial_displacement is given (no integer search)
    interpolation: str
    prefilter_sigma: float
    zncc_gate: float | str  # the engine's zncc_threshold ("auto" or a constant)
    texture_threshold: float
    noise_std: float


@dataclass(frozen=True)
class _Task:
    """One block: points in local coordinates (the deformed region is shifted by `shift`)."""

    centres: NDArray[np.int64]  # (n, 3), local
    offsets: NDArray[np.float64]  # points - centres
    shift: NDArray[np.int64]  # (3,) integer shift of the deformed region (global frame)
    init: NDArray[np.float64] | None  # pass 1: (n, 3) global initial displacement or None;
    # re-solves: (n, 12) global shape functions at the centres
    options: _Options


def _block_bytes(ext: Sequence[int], *, sources: Sequence[_Source], options: _Options,
                 threads: int) -> float:
    """Peak memory (bytes) of one block whose region has extent `ext` (z, y, x)."""
    e = np.asarray(ext, dtype=np.float64)
    v = float(np.prod(e))
    total = _ENGINE_BYTES_PER_VOXEL * float(np.prod(e + 2 * SPLINE_PAD))
    total += sum(s.dtype.itemsize for s in sources) * v  # the regions as read
    total += max(s.dtype.itemsize for s in sources) * v  # read transient (dask concatenation)
    total += max(_io_bytes(s, ext) for s in sources)
    total += threads * _SCRATCH_BYTES * options.subset_size ** 3
    if options.search:
        total += _match_bytes(ext, options.subset_size // 2, options.search_radius)
    return total


def _match_bytes(ext: Sequence[int], half: int, radius: int) -> float:
    """Largest ``match_template`` of the engine's coarse-to-fine seed search (`_seed_guesses`)."""
    levels = 0
    while radius >> levels > 3 and min(ext) >> (levels + 1) >= 2 * (2 * max(half >> (levels + 1), 3) + 1):
        levels += 1
    rad = max(math.ceil(radius / 2 ** levels), 2)
    worst = 0.0
    for lev in range(levels, -1, -1):
        lh = max(half >> lev, 3) if lev else half
        size = [max(n >> lev, 1) for n in ext]
        win = [min(2 * (lh + rad) + 1, n) for n in size]
        worst = max(worst, float(np.prod([w + 2 * lh + 1 for w in win])))
        rad = 2
    return _MATCH_BYTES * worst


def _regions(centres: NDArray, shape: Sequence[int], halo: int,
             shift: NDArray) -> tuple[tuple[slice, ...], tuple[slice, ...], NDArray, NDArray]:
    """Regions of a group of points: (reference slices, deformed slices, origin, shift).

    Along an axis where the halo'd box and its copy moved by the global `shift` are both
    inside the volume, the deformed region is that moved copy (the engine then searches
    around the global shift); elsewhere (at the volume borders) both regions are the union
    of the two boxes, clipped to the volume, and the shift is 0 along that axis.  Every
    region edge is thus either an edge of the volume, treated as in the whole-volume
    analysis, or at least a halo away from the points.
    """
    n = np.asarray(shape)
    lo = centres.min(axis=0) - halo
    hi = centres.max(axis=0) + halo + 1
    moved = (lo >= 0) & (hi <= n) & (lo + shift >= 0) & (hi + shift <= n)
    s = np.where(moved, shift, 0)
    lo = np.where(moved, lo, np.maximum(lo + np.minimum(shift, 0), 0))
    hi = np.where(moved, hi, np.minimum(hi + np.maximum(shift, 0), n))
    ref = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    defo = tuple(slice(int(a + d), int(b + d)) for a, b, d in zip(lo, hi, s))
    return ref, defo, lo, s


def _plan(clipped: NDArray, shape: Sequence[int], halo: int, shift: NDArray, budget: float,
          cost: Callable[[Sequence[int]], float]) -> list[NDArray]:
    """Partition the points into boxes whose worst-case region fits the budget."""
    lo = clipped.min(axis=0)
    span = clipped.max(axis=0) - lo + 1
    n = np.asarray(shape)
    extra = 2 * halo + np.abs(shift)  # a region at a volume border also holds the shift
    b = span.copy()
    while cost(np.minimum(b + extra, n)) > budget:
        if np.all(b == 1):
            ext = np.minimum(1 + extra, n)
            raise ValueError(
                f"memory_budget_mb={budget / _MB:g} is too small for a global shift of "
                f"{tuple(int(v) for v in shift)} voxels: a region of {' x '.join(str(int(e)) for e in ext)} "
                f"voxels needs at least {cost(ext) / _MB:.1f} MB")
        ext = np.minimum(b + extra, n)
        ax = max((i for i in range(3) if b[i] > 1), key=lambda i: (ext[i], b[i]))
        b[ax] = max(1, min(b[ax] - 1, int(b[ax] * 0.9)))
    k = -(-span // b)
    b = -(-span // k)  # balanced boxes of at most the planned size
    ids = np.ravel_multi_index(tuple(((clipped - lo) // b).T), tuple(k))
    order = np.argsort(ids, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(ids[order])) + 1)


def _correlate_block(task: _Task, ref_r: Any, def_r: Any, mask_r: Any) -> tuple:
    """Pass 1: `correlate` on one region; shape functions at the centres, global frame."""
    ref, defo = _load(ref_r), _load(def_r)
    mask = None if mask_r is None else _load(mask_r)
    opts = task.options
    n = len(task.centres)
    par = np.full((n, _NPAR), np.nan)
    if min(ref.shape) <= opts.subset_size:
        return (par, np.full(n, np.nan), np.zeros(n, np.int64), np.full(n, int(PointStatus.OUT_OF_BOUNDS)),
                np.full(n, np.nan))
    res = correlate(ref, defo, subset_size=opts.subset_size, step=opts.step,
                    points=task.centres + task.offsets, mask=mask, max_iterations=opts.max_iterations,
                    tolerance=opts.tolerance, zncc_threshold=opts.zncc_gate, search_radius=opts.search_radius,
                    interpolation=opts.interpolation, prefilter_sigma_vox=opts.prefilter_sigma,
                    texture_threshold=opts.texture_threshold, noise_std=opts.noise_std,
                    initial_displacement=None if task.init is None else task.init - task.shift,
                    outlier_threshold=None, replace_outliers=False, regularisation=0.0)
    for i in range(3):
        par[:, 4 * i] = res.displacement[:, i] + task.shift[i]
        par[:, 4 * i + 1:4 * i + 4] = res.gradient[:, i]
    return (shift_params(par, -task.offsets), res.zncc, res.iterations, res.status.astype(np.int64),
            res.subset_variance)


def _resolve_block(task: _Task, ref_r: Any, def_r: Any, mask_r: Any) -> tuple:
    """Pass 2: IC-GN from given shape functions (global frame, at the centres)."""
    ref, defo = _load(ref_r), _load(def_r)
    opts = task.options
    n = len(task.centres)
    if min(ref.shape) <= opts.subset_size:
        return np.full((n, _NPAR), np.nan), np.full(n, np.nan), np.zeros(n, np.int64), np.full(
            n, int(PointStatus.OUT_OF_BOUNDS))
    roi = np.ones(ref.shape, dtype=bool) if mask_r is None else _load(mask_r).astype(bool)
    solver = SubsetSolver(ref.astype(np.float64), defo.astype(np.float64), roi, opts.subset_size // 2,
                          INTERPOLATIONS[opts.interpolation], "affine", opts.max_iterations, opts.tolerance,
                          opts.prefilter_sigma)
    init = np.array(task.init, dtype=np.float64)
    init[:, 0::4] -= task.shift
    p, z, it, s = solver.run(task.centres, init)
    p[:, 0::4] += task.shift
    return p, z, it, s


def _load(r: Any) -> NDArray:
    return r.load() if isinstance(r, _Recipe) else np.asarray(r)


class _Runner:
    """Runs tasks in-process, one at a time, or on a dask.distributed client.

    A job is a tuple of arguments; `_Recipe` arguments are read in-process before the
    call, or travel to the worker (regions cut from in-memory arrays are scattered, not
    embedded in the task graph).
    """

    def __init__(self, client: Client | None) -> None:
        self.client = client
        self.remote = client is not None

    def _arg(self, a: Any) -> Any:
        if not isinstance(a, _Recipe):
            return a
        if self.client is None:
            return a.load(threads=True)
        if a.slices is None and isinstance(a.array, np.ndarray):
            return self.client.scatter(a.array, hash=False)
        return a

    def map(self, fn: Callable, jobs: Iterator[tuple], n_jobs: int,
            done: Callable[[int], None] | None = None) -> list:
        out: list = [None] * n_jobs
        if self.client is None:
            for i, job in enumerate(jobs):
                out[i] = fn(*(self._arg(a) for a in job))
                if done is not None:
                    done(i + 1)
            return out
        from distributed import as_completed

        client = self.client
        window = 2 * max(1, sum(client.nthreads().values()))
        index: dict = {}
        pending = as_completed(loop=client.loop)
        numbered = enumerate(jobs)

        def submit() -> None:
            nxt = next(numbered, None)
            if nxt is not None:
                fut = client.submit(fn, *(self._arg(a) for a in nxt[1]), pure=False)
                index[fut.key] = nxt[0]
                pending.add(fut)

        n_done = 0
        try:
            for _ in range(window):
                submit()
            for fut in pending:
                out[index.pop(fut.key)] = fut.result()
                fut.release()
                n_done += 1
                if done is not None:
                    done(n_done)
                submit()
        finally:
            if n_done < n_jobs:
                client.cancel(list(pending.futures))
        return out


def _check_scheduler(scheduler: Any) -> None:
    if scheduler is None:
        return
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError("scheduler= needs dask.distributed: pip install 'dask[distributed]'") from exc
    if not isinstance(scheduler, (str, Client)):
        raise TypeError(f"scheduler must be None, a scheduler address or a distributed.Client, got {scheduler!r}")


@contextlib.contextmanager
def _client(scheduler: Any) -> Iterator[Client | None]:
    if scheduler is None:
        yield None
    elif isinstance(scheduler, str):
        from distributed import Client

        with Client(scheduler, set_as_default=False) as client:
            yield client
    else:
        yield scheduler



def _coarse_factors(shape: Sequence[int], budget: float) -> NDArray[np.int64]:
    """Block-mean factors (z, y, x), powers of 2 from 4 (the engine's pyramid level 2), so
    that the phase correlation of the block means fits half the budget."""
    f = np.full(3, 4, dtype=np.int64)
    n = np.asarray(shape)
    while _PHASE_BYTES * float(np.prod(n // f)) > budget / 2:
        ok = n // (2 * f) >= 4
        if not ok.any():
            break
        ax = int(np.argmax(np.where(ok, n // f, -1)))
        f[ax] *= 2
    return f


def _crop_side(sources: Sequence[_Source], budget: float) -> int:
    """Side of the central full-resolution crop whose phase correlation fits half the budget."""
    per_voxel = _PHASE_BYTES + 3 * max(s.dtype.itemsize for s in sources)
    side = int((budget / 2 / per_voxel) ** (1 / 3))
    while side > 0 and per_voxel * side ** 3 + max(_io_bytes(s, (side,) * 3) for s in sources) > budget / 2:
        side -= 1
    return side


def _tiles(shape: Sequence[int], f: NDArray, sources: Sequence[_Source], budget: float) -> list[tuple[slice, ...]]:
    """Tiles (multiples of the factors `f`) of the volume whose block means fit half the budget."""
    usable = [int(n // k * k) for n, k in zip(shape, f)]
    per_voxel = sum(s.dtype.itemsize * 2 for s in sources)  # as read, plus a copy when reshaped

    def cost(t: Sequence[int]) -> float:
        return per_voxel * float(np.prod(t)) + max(_io_bytes(s, t) for s in sources)

    t = [int(f[0]), usable[1], usable[2]]
    while cost(t) > budget / 2 and (t[1] > f[1] or t[2] > f[2]):
        i = 1 if t[1] // f[1] >= t[2] // f[2] else 2
        t[i] = int(max(f[i], t[i] // 2 // f[i] * f[i]))
    while 2 * t[0] <= usable[0] and cost([2 * t[0], t[1], t[2]]) <= budget / 2:
        t[0] *= 2
    starts = [range(0, u, step) for u, step in zip(usable, t)]
    return [tuple(slice(int(a), int(min(a + step, u))) for a, step, u in zip(lo, t, usable))
            for lo in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, 3)]


def _block_mean_task(f: NDArray, ref: Any, defo: Any) -> tuple[NDArray, NDArray]:
    out = []
    for vol in (_load(ref), _load(defo)):
        (z, y, x), (a, b, c) = (vol.shape // f), f
        out.append(vol.reshape(z, a, y, b, x, c).mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32))
    return out[0], out[1]


def _shift_task(ref: Any, defo: Any) -> NDArray:
    return phase_shift(_load(ref).astype(np.float64), _load(defo).astype(np.float64))


def _global_shift(ref_s: _Source, def_s: _Source, factor: NDArray, crop: int, budget: float,
                  runner: _Runner) -> NDArray[np.int64]:
    """Integer rigid shift (z, y, x): phase correlation of block means of the whole volumes
    (computed tile by tile), refined at full resolution on a central crop."""
    shape = np.asarray(ref_s.shape)
    g = np.zeros(3)
    if np.all(shape // factor >= 4):
        tiles = _tiles(ref_s.shape, factor, (ref_s, def_s), budget)
        jobs = ((factor, ref_s.recipe(t, runner.remote), def_s.recipe(t, runner.remote)) for t in tiles)
        means = runner.map(_block_mean_task, jobs, len(tiles))
        coarse = [np.empty(tuple(shape // factor), dtype=np.float32) for _ in range(2)]
        for t, pair in zip(tiles, means):
            dst = tuple(slice(sl.start // k, sl.stop // k) for sl, k in zip(t, factor))
            coarse[0][dst], coarse[1][dst] = pair
        del means
        g = phase_shift(coarse[0].astype(np.float64), coarse[1].astype(np.float64)) * factor
    g_int = np.round(g).astype(np.int64)
    side = np.minimum(crop, shape)
    lo = np.maximum((shape - side) // 2, -g_int)
    hi = np.minimum((shape - side) // 2 + side, shape - g_int)
    if np.all(hi - lo >= 16):
        ref_sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        def_sl = tuple(slice(int(a + s), int(b + s)) for a, b, s in zip(lo, hi, g_int))
        (fine,) = runner.map(_shift_task, iter([(ref_s.recipe(ref_sl, runner.remote),
                                                 def_s.recipe(def_sl, runner.remote))]), 1)
        g_int = g_int + np.round(fine).astype(np.int64)
    return g_int


def _noise_task(ref: Any) -> float:
    return estimate_noise_std(_load(ref).astype(np.float32))


def _estimate_noise(ref_s: _Source, crop: int, runner: _Runner) -> float:
    """Noise level of the reference from a central crop (the same value for every block)."""
    shape = np.asarray(ref_s.shape)
    side = np.minimum(max(crop, 16), shape)
    lo = (shape - side) // 2
    sl = tuple(slice(int(a), int(a + n)) for a, n in zip(lo, side))
    (sigma,) = runner.map(_noise_task, iter([(ref_s.recipe(sl, runner.remote),)]), 1)
    return float(sigma)


class _Neighbours:
    """The engine's neighbourhoods on the whole field, queried in batches (bounded memory)."""

    def __init__(self, centres: NDArray, radius: float) -> None:
        self.c = centres.astype(np.float64)
        self.radius = radius
        self.tree = cKDTree(self.c) if len(self.c) > 1 else None

    def __call__(self, idx: NDArray) -> NDArray[np.int64]:
        if self.tree is None or len(idx) == 0:
            return np.full((len(idx), 0), -1, dtype=np.int64)
        return neighbour_table(self.c, radius=self.radius, query=idx, tree=self.tree)


def correlate_chunked(reference: Any, deformed: Any, *, memory_budget_mb: float, subset_size: int = 21,
                      step: int = 10, points: ArrayLike | None = None, mask: Any = None,
                      interpolation: str = "quintic", prefilter_sigma_vox: float = 0.6,
                      max_iterations: int = 30, tolerance: float = 1e-3, zncc_threshold: float | str = "auto",
                      texture_threshold: float = 3.0, search_radius: int | None = None,
                      initial_displacement: ArrayLike | None = None,
                      outlier_threshold: float | None = 2.0, outlier_noise_vox: float = 0.1,
                      replace_outliers: bool = True, regularisation: float = 0.0, noise_std: float | None = None,
                      scheduler: str | Client | None = None,
                      progress: Callable[[int, int], None] | None = None) -> DVCResult:
    """3D DVC of volumes larger than memory, block by block, in-process or on a dask cluster.

    Same analysis and result as `correlate` (same points in the same order), with the
    volumes read region by region so that the working memory stays within
    `memory_budget_mb`.

    Parameters
    ----------
    reference, deformed : ndarray, dask.array.Array, zarr.Array or Volume, shape (Z, Y, X)
        Volumes (z, y, x), any real dtype; read lazily, region by region, never modified.
    memory_budget_mb : float
        Working memory allowed for one block (one task), MB (10^6 bytes): the two regions
        as read, the engine's float64 copies, B-spline coefficients and gradients (~62
        bytes per voxel, measured), the seed search and the storage chunks being decoded.
        On a cluster every worker thread runs one block at a time.
    subset_size, step, points, mask, interpolation, prefilter_sigma_vox, max_iterations,\
    tolerance, zncc_threshold, texture_threshold, search_radius, initial_displacement,\
    outlier_threshold, outlier_noise_vox, replace_outliers, regularisation, noise_std
        As in `correlate`.  `mask` may be any of the volume types.  Displacements are
        searched within `search_radius` voxels of the global rigid shift (the engine
        searches around its own global estimate too); the halo of every block covers that
        range.
    scheduler : str or distributed.Client, optional
        None: blocks run one after the other in this process (peak memory: one block).
        A `distributed.Client`, or the address of a scheduler (``"tcp://host:8786"``): the
        blocks run as tasks on the cluster; each task reads its own region (zarr arrays
        and file-backed volumes are read on the worker, which must see the same path;
        numpy regions are scattered).
    progress : callable, optional
        Called as ``progress(done, total)`` after each block of the main pass.

    Returns
    -------
    DVCResult
        Equal to ``correlate(reference, deformed, ...)`` up to the IC-GN convergence
        tolerance (the blocks start their iterations from their own seeds): same points,
        converged set and outliers; a failed point may carry another failure code
        (OUT_OF_BOUNDS when its iterations wander out of its block's halo).

    Raises
    ------
    ValueError
        On bad volumes or options (the message names the argument; NaN voxels are found
        when their block is read), or if `memory_budget_mb` cannot hold one subvolume with
        its halo (the message gives the minimum).
    TypeError
        If `scheduler` is neither None, an address nor a `distributed.Client`.

    Notes
    -----
    Halo of a block, per side: ``subset_size // 2 + search_radius`` plus the uncertainty
    of the global shift (1 voxel after the full-resolution refinement) plus 4 voxels for
    the B-spline prefilter to match the whole-volume one.  The blocks run the engine
    without the outlier test; the reliability-guided repair across block borders, the
    normalised median test with every point's full neighbourhood, the restart of the
    outliers, their replacement and the regularisation run on the assembled field.
    Memory outside the budget: the point cloud and the result (~500 bytes per point) and,
    with `regularisation` > 0, the engine's global neighbour lists.  Every block runs the
    engine's seed search (a seed per ``2 * subset_size`` cell): small blocks cost more
    seeds than the whole-volume run, so give the largest budget that fits.

    Examples
    --------
    >>> vol0, vol1 = open_volume("t0.zarr"), open_volume("t1.zarr")      # doctest: +SKIP
    >>> res = correlate_chunked(vol0, vol1, memory_budget_mb=4000)       # doctest: +SKIP
    >>> res = correlate_chunked(vol0, vol1, memory_budget_mb=4000,
    ...                         scheduler="tcp://scheduler:8786")        # doctest: +SKIP
    """
    ref_s = _as_source("reference", reference)
    def_s = _as_source("deformed", deformed)
    shape = ref_s.shape
    if def_s.shape != shape:
        raise ValueError(f"deformed must have the shape of reference {shape}, got {def_s.shape}")
    mask_s = None
    if mask is not None:
        mask_s = _as_source("mask", mask, any_dtype=True)
        if mask_s.shape != shape:
            raise ValueError(f"mask must have the volume shape {shape}, got {mask_s.shape}")
    _check_scheduler(scheduler)
    try:
        budget_mb = float(memory_budget_mb)
    except (TypeError, ValueError):
        raise ValueError(f"memory_budget_mb must be a number, got {memory_budget_mb!r}") from None
    if not np.isfinite(budget_mb):
        raise ValueError(f"memory_budget_mb must be finite, got {memory_budget_mb!r}")
    if budget_mb <= 0:
        raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb!r}")
    budget = budget_mb * _MB
    subset_size = check_int("subset_size", subset_size, 7)
    if subset_size % 2 == 0:
        raise ValueError(f"subset_size must be odd, got {subset_size}")
    if min(shape) <= subset_size:
        raise ValueError(f"volumes {shape} must be larger than subset_size={subset_size}")
    step = check_int("step", step, 1)
    max_iterations = check_int("max_iterations", max_iterations, 1)
    tolerance = check_number("tolerance", tolerance, low=0.0, strict=True)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {tuple(INTERPOLATIONS)}, got {interpolation!r}")
    prefilter_sigma_vox = check_number("prefilter_sigma_vox", prefilter_sigma_vox, low=0.0)
    if isinstance(zncc_threshold, str):
        if zncc_threshold != "auto":
            raise ValueError(f"zncc_threshold must be in [-1, 1) or 'auto', got {zncc_threshold!r}")
    elif not -1.0 <= check_number("zncc_threshold", zncc_threshold) < 1.0:
        raise ValueError(f"zncc_threshold must be in [-1, 1) or 'auto', got {zncc_threshold!r}")
    texture_threshold = check_number("texture_threshold", texture_threshold, low=0.0)
    if outlier_threshold is not None:
        outlier_threshold = check_number("outlier_threshold", outlier_threshold, low=0.0, strict=True)
    outlier_noise_vox = check_number("outlier_noise_vox", outlier_noise_vox, low=0.0)
    regularisation = check_number("regularisation", regularisation, low=0.0)
    if noise_std is not None:
        noise_std = check_number("noise_std", noise_std, low=0.0)
    radius = max(subset_size, 12) if search_radius is None else check_int("search_radius", search_radius, 0)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable progress(done, total), got {progress!r}")
    half = subset_size // 2

    if points is None:
        pts, grid_shape = default_grid(shape, half, step)
        if len(pts) == 0:
            raise ValueError(f"reference of shape {shape} is too small for subset_size={subset_size}: "
                             f"the default grid needs at least {subset_size + 4} voxels per side")
    else:
        pts = np.array(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.all(np.isfinite(pts)):
            raise ValueError(f"points must be a non-empty finite (N, 3) array in (z, y, x) order, "
                             f"got shape {pts.shape}")
        grid_shape = None
    n = len(pts)
    centres = np.round(pts).astype(np.int64)
    clipped = np.clip(centres, 0, np.array(shape) - 1)
    inside = np.all(centres == clipped, axis=1)
    init = None
    if initial_displacement is not None:
        try:
            init = np.array(np.broadcast_to(np.asarray(initial_displacement, dtype=np.float64), (n, 3)))
        except (ValueError, TypeError):
            raise ValueError(f"initial_displacement must have shape (3,) or ({n}, 3), "
                             f"got {np.shape(initial_displacement)}") from None
    options = _Options(subset_size, step, max_iterations, tolerance, zncc_threshold, radius, init is None,
                       interpolation, prefilter_sigma_vox, zncc_threshold, texture_threshold, 0.0)
    sources = [s for s in (ref_s, def_s, mask_s) if s is not None]
    threads = numba.get_num_threads()

    def cost(ext: Sequence[int]) -> float:
        return _block_bytes(ext, sources=sources, options=options, threads=threads)

    if init is None:
        factor, crop = _coarse_factors(shape, budget), _crop_side(sources, budget)
        uncertainty = 1 if crop >= 16 else int(factor.max()) // 2 + 1
    else:
        finite = np.all(np.isfinite(init), axis=1)
        if not finite.any():
            raise ValueError("initial_displacement must be finite at some point")
        shift = np.round(np.median(init[finite], axis=0)).astype(np.int64)
        uncertainty = int(np.ceil(np.max(np.abs(init[finite] - shift))))
    margin = _SPLINE_MARGIN[interpolation] + int(np.ceil(4 * prefilter_sigma_vox))
    halo = half + radius + uncertainty + margin
    smallest = np.minimum(1 + 2 * halo, shape)
    if cost(smallest) > budget:
        raise ValueError(
            f"memory_budget_mb={budget_mb:g} is too small: one subvolume with its halo "
            f"({' x '.join(str(int(e)) for e in smallest)} voxels; halo {halo} = subset_size // 2 + "
            f"search_radius + {uncertainty + margin}) needs at least {cost(smallest) / _MB:.1f} MB")

    with _client(scheduler) as client:
        runner = _Runner(client)
        if init is None:
            shift = _global_shift(ref_s, def_s, factor, crop, budget, runner)
        if noise_std is None:  # one noise level for every block (the texture gate)
            noise_std = _estimate_noise(ref_s, _crop_side(sources, budget), runner)
        options = dataclasses.replace(options, noise_std=float(noise_std))
        blocks = _plan(clipped, shape, halo, shift, budget, cost)
        block_of = np.empty(n, dtype=np.int64)
        for b, idx in enumerate(blocks):
            block_of[idx] = b

        def jobs(groups: list[NDArray], init_rows: Callable[[NDArray, int], NDArray | None]) -> Iterator:
            for k, idx in enumerate(groups):
                ref_sl, def_sl, origin, moved = _regions(clipped[idx], shape, halo, shift)
                yield (_Task(centres[idx] - origin, pts[idx] - centres[idx], moved, init_rows(idx, k), options),
                       ref_s.recipe(ref_sl, runner.remote), def_s.recipe(def_sl, runner.remote),
                       None if mask_s is None else mask_s.recipe(ref_sl, runner.remote))

        def done(k: int) -> None:
            if progress is not None:
                progress(k, len(blocks))

        outs = runner.map(_correlate_block, jobs(blocks, lambda idx, k: None if init is None else init[idx]),
                          len(blocks), done)
        par = np.full((n, _NPAR), np.nan)
        zncc = np.full(n, np.nan)
        iters = np.zeros(n, dtype=np.int64)
        status = np.zeros(n, dtype=np.int64)
        variance = np.full(n, np.nan)
        for idx, (p, z, it, s, v) in zip(blocks, outs):
            par[idx], zncc[idx], iters[idx], status[idx], variance[idx] = p, z, it, s, v
        del outs

        def resolve(idx: NDArray, init_par: NDArray) -> tuple:
            order = np.argsort(block_of[idx], kind="stable")
            groups = np.split(order, np.flatnonzero(np.diff(block_of[idx][order])) + 1)
            res = runner.map(_resolve_block, jobs([idx[g] for g in groups], lambda _, k: init_par[groups[k]]),
                             len(groups))
            out = (np.empty((len(idx), _NPAR)), np.empty(len(idx)), np.empty(len(idx), np.int64),
                   np.empty(len(idx), np.int64))
            for g, r in zip(groups, res):
                for o, v in zip(out, r):
                    o[g] = v
            return out

        # the engine's post-processing on the whole field (see `correlation.correlate_nd`):
        # the gate from every block's points, then repair across block borders and outliers
        candidates = inside & ~np.isin(status, (PointStatus.MASKED, PointStatus.UNTEXTURED))
        status[status == PointStatus.LOW_ZNCC] = PointStatus.OK  # relabelled after repair
        if isinstance(zncc_threshold, str):
            threshold, _ = noise_aware_gate(zncc, variance, (status == PointStatus.OK) & candidates)
        else:
            threshold = np.full(n, float(zncc_threshold))
        field = Field(centres, par, zncc, iters, status, threshold)
        spacing = float(step) if grid_shape is not None else None
        if spacing is None and n > 1:
            nn, _ = cKDTree(centres.astype(np.float64)).query(centres.astype(np.float64), k=2)
            spacing = float(np.median(nn[:, 1]))
        neighbours = _Neighbours(centres, RADIUS_SPACINGS * (spacing or 1.0))
        batch = max(256, int(budget / 4 / _NEIGHBOUR_BYTES))
        good = field.good()
        seeded = np.zeros(n, dtype=bool)  # failed points with a good neighbour in another block
        failed = np.flatnonzero(candidates & ~good)
        for start in range(0, len(failed), batch):
            rows = failed[start:start + batch]
            nb = neighbours(rows)
            safe = np.where(nb >= 0, nb, 0)
            seeded[rows] = np.any((nb >= 0) & good[safe] & (block_of[safe] != block_of[rows][:, None]), axis=1)
        repair(field, resolve, neighbours, candidates, todo=seeded, batch=batch)
        status[~inside] = PointStatus.OUT_OF_BOUNDS
        status[(status == PointStatus.OK) & ~(zncc >= threshold)] = PointStatus.LOW_ZNCC
        if outlier_threshold is not None and n > 3:
            restart_outliers(field, resolve, neighbours, threshold=outlier_threshold,
                             noise_level=outlier_noise_vox, batch=batch)

    ok = status == PointStatus.OK
    at_point = shift_params(np.nan_to_num(par), pts - centres)
    disp, grad = displacement_and_gradient(at_point, 3)
    disp[~ok] = np.nan
    grad[~ok] = np.nan
    measured = disp.copy()
    if replace_outliers:
        idx = np.flatnonzero(status == PointStatus.OUTLIER)
        for start in range(0, len(idx), batch):
            rows = idx[start:start + batch]
            med, count = neighbour_median(measured, neighbours(rows))
            disp[rows[count > 0]] = med[count > 0]
    if regularisation > 0:
        w = np.where(ok, np.clip((zncc - threshold) / np.maximum(1.0 - threshold, 1e-6), 0, 1) ** 2, 0.0)
        table = neighbour_table(centres.astype(np.float64), radius=neighbours.radius)
        disp = regularise(pts, measured, np.nan_to_num(w), strength=regularisation, neighbours=table)
    return DVCResult(points=pts, displacement=disp, gradient=grad, zncc=zncc, iterations=iters,
                     converged=ok, status=status.astype(np.int8), subset_size=subset_size, step=step,
                     grid_shape=grid_shape, measured_displacement=measured, zncc_threshold=threshold,
                     noise_std=float(noise_std), subset_variance=variance)
