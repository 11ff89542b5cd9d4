"""2D DIC speed and accuracy: mudcrack's `correlate` beside dense optical flows.

Run from the repository root: ``.venv/bin/python benchmarks/dic2d.py``.  One process,
the same 1024 x 1024 analytic speckle pair for every method (2 % Gaussian noise on both
images, sub-pixel shift plus a small affine field), dense flows sampled at the DIC grid
points (step 8, 31 px subsets).  Numba compile time is excluded (warm-up first).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from skimage.registration import optical_flow_ilk

from vision._speckle import cramer_rao_bound, render, speckles  # noqa: E402

NOISE = 0.02  # 2 % of the nominal [0, 1] intensity range

from vision._correlate import correlate  # noqa: E402

SHAPE = (1024, 1024)
SUBSET, STEP = 31, 8


def main() -> None:
    sp = speckles(SHAPE, seed=11)
    theta, u0 = 1e-3, np.array([0.37, -0.61])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    mat = rot @ np.diag([1.0 + 1e-3, 1.0 - 5e-4])
    ref0, gr, gc = render(SHAPE, sp)
    cur0, _, _ = render(SHAPE, sp, mat=mat, shift=u0)
    rng = np.random.default_rng(1)
    ref = ref0 + rng.normal(0, NOISE, SHAPE)
    cur = cur0 + rng.normal(0, NOISE, SHAPE)
    res = correlate(ref, cur)  # warm-up (numba compile / cache load)
    pts = res.points
    truth = u0 + pts @ (mat - np.eye(2)).T
    crb = float(np.mean(cramer_rao_bound(gr, gc, pts, noise=NOISE, subset_size=SUBSET)))
    c = pts.astype(int)
    ref8 = np.clip(ref * 100 + 75, 0, 255).astype(np.uint8)  # 8-bit copies for OpenCV flows
    cur8 = np.clip(cur * 100 + 75, 0, 255).astype(np.uint8)
    ref32, cur32 = ref.astype(np.float32), cur.astype(np.float32)

    def dense(flow_rc):
        return flow_rc[c[:, 0], c[:, 1]]

    def cv_flow(fn):
        flow = fn()
        return dense(np.stack([flow[..., 1], flow[..., 0]], axis=-1))

    methods = {
        "mudcrack correlate (IC-GN, affine)": lambda: correlate(ref, cur).displacement,
        "mudcrack correlate (IC-GN, quadratic)": lambda: correlate(ref, cur, shape_function="quadratic").displacement,
    }
    for name, preset in (("ultrafast", cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
                         ("fast", cv2.DISOPTICAL_FLOW_PRESET_FAST),
                         ("medium", cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)):
        dis = cv2.DISOpticalFlow_create(preset)
        methods[f"OpenCV DIS {name}"] = (lambda d=dis: cv_flow(lambda: d.calc(ref8, cur8, None)))
    methods["OpenCV Farneback"] = lambda: cv_flow(lambda: cv2.calcOpticalFlowFarneback(
        ref8, cur8, None, 0.5, 3, 31, 5, 7, 1.5, 0))
    methods["skimage optical_flow_ilk r=15"] = lambda: dense(np.moveaxis(
        optical_flow_ilk(ref32, cur32, radius=15), 0, -1))
    rows = []
    for name, fn in methods.items():
        fn()
        reps = 3
        t = time.perf_counter()
        for _ in range(reps):
            d = fn()
        dt = (time.perf_counter() - t) / reps
        err = np.asarray(d) - truth
        ok = np.all(np.isfinite(err), axis=1)
        bias = np.abs(err[ok].mean(axis=0)).max()
        rand = err[ok].std(axis=0).mean()
        rows.append((name, bias, rand, rand / crb, len(pts) / dt, dt, ok.mean()))
    print(f"1024x1024, {len(pts)} points (step {STEP}, subset {SUBSET}), noise {NOISE}, "
          f"Cramer-Rao bound {crb:.4f} px")
    print("| method | bias, px | random, px | random / CRB | points/s | s per frame | valid |")
    print("|---|---|---|---|---|---|---|")
    for name, bias, rand, ratio, pps, dt, ok in rows:
        print(f"| {name} | {bias:.4f} | {rand:.4f} | {ratio:.2f} | {pps:,.0f} | {dt:.3f} | {ok:.3f} |")


if __name__ == "__main__":
    main()
