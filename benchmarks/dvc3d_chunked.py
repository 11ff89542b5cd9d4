"""3D DVC out of core: `correlate` in memory vs `correlate_chunked` in-process vs on a cluster.

Run from the repository root: ``.venv/bin/python benchmarks/dvc3d_chunked.py`` (~3 min on
2 cores).  One 128 x 256 x 256 float32 pair (Gaussian-filtered noise, sub-voxel shift plus
a small affine field), stored as zarr (32 x 64 x 64 chunks) in a temporary folder;
subset 21, step 10, search radius 8.  Peak memory is the tracemalloc peak (numpy and
Python allocations; numba's per-thread scratch is not traced) of the calling process, and
for the cluster also of each worker process.  Numba compile / cache loading is excluded
(warm-up first).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomography import correlate, correlate_chunked, open_volume, save_volume

SHAPE = (128, 256, 256)
OPTS = {"subset_size": 21, "step": 10, "search_radius": 8}
SHIFT = np.array([1.3, -2.6, 3.4])
GRAD = np.array([[2e-3, 1e-3, 0.0], [0.0, -3e-3, 2e-3], [1e-3, 0.0, 4e-3]])


def make_pair(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    ref = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal(shape, dtype=np.float32), 1.6)
    ref /= ref.std()
    c = (np.array(shape) - 1) / 2
    inv = np.linalg.inv(np.eye(3) + GRAD)
    cur = ndimage.affine_transform(ref, inv, offset=c - inv @ (c + SHIFT), order=3, mode="mirror")
    return ref, cur


def traced(fn, *args, **kwargs):
    tracemalloc.start()
    try:
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        dt = time.perf_counter() - t
        return out, dt, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[100.0, 300.0], help="MB")
    parser.add_argument("--no-cluster", action="store_true")
    args = parser.parse_args()
    ref, cur = make_pair(SHAPE)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [save_volume(v, Path(tmp) / f"{k}.zarr", chunks=(32, 64, 64)) for k, v in enumerate((ref, cur))]
        vols = [open_volume(p) for p in paths]
        small = tuple(np.ascontiguousarray(v[:48, :64, :64]) for v in (ref, cur))
        correlate(*small, **OPTS)  # warm-up
        correlate_chunked(*small, memory_budget_mb=50, **OPTS)

        whole, dt, peak = traced(correlate, ref, cur, **OPTS)
        n = len(whole.points)
        rows.append(("in memory (numpy arrays)", "-", 1, dt, n / dt, peak, "-", 0.0, whole.converged.mean()))
        del ref, cur

        def compare(res) -> float:
            both = res.converged & whole.converged
            return float(np.abs(res.displacement[both] - whole.displacement[both]).max())

        for budget in args.budgets:
            blocks: list[int] = []
            res, dt, peak = traced(correlate_chunked, *vols, memory_budget_mb=budget,
                                   progress=lambda d, t, out=blocks: out.append(t), **OPTS)
            rows.append(("chunked, in-process", f"{budget:g}", blocks[-1], dt, n / dt, peak, "-", compare(res),
                         res.converged.mean()))

        if not args.no_cluster:
            from distributed import Client, LocalCluster

            env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                              env=env) as cluster, Client(cluster) as client:
                correlate_chunked(*small, memory_budget_mb=50, scheduler=client, **OPTS)  # warm-up
                client.run(tracemalloc.start)
                for budget in args.budgets:
                    client.run(tracemalloc.reset_peak)
                    blocks = []
                    res, dt, peak = traced(correlate_chunked, *vols, memory_budget_mb=budget, scheduler=client,
                                           progress=lambda d, t, out=blocks: out.append(t), **OPTS)
                    workers = client.run(lambda: tracemalloc.get_traced_memory()[1] / 1e6)
                    rows.append(("chunked, LocalCluster 2 workers x 1 thread", f"{budget:g}", blocks[-1], dt, n / dt,
                                 peak, " / ".join(f"{w:.0f}" for w in workers.values()), compare(res),
                                 res.converged.mean()))
    print(f"{SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} float32 pair ({np.prod(SHAPE) * 4 / 1e6:.0f} MB each), {n} points, "
          f"subset {OPTS['subset_size']}, step {OPTS['step']}, search radius {OPTS['search_radius']}")
    print("| method | budget, MB | blocks | s | points/s | peak MB (caller) | peak MB (workers) "
          "| max abs(u - u_mem), vox | converged |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, budget, blocks_, dt, rate, peak, workers_peak, err, conv in rows:
        print(f"| {name} | {budget} | {blocks_} | {dt:.1f} | {rate:,.0f} | {peak:.0f} | {workers_peak} "
              f"| {err:.1e} | {conv:.3f} |")


if __name__ == "__main__":
    main()
