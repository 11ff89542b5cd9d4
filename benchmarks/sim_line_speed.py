"""Speed of the virtual line: physics and renderers, each beside a baseline in the same run.

Run: ``python benchmarks/sim_line_speed.py``. Prints a Markdown table.

Baselines:
* physics: the same films stepped one at a time (a Python loop over films) vs vectorised;
* surface renderer: analytic splatting at displaced positions (mudcrack, exact ground
  truth) vs warping a pre-rendered reference with ``cv2.remap`` bicubic (fast but it
  interpolates the ground truth, which we avoid).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

import sim_line
from sim_line._physics import DryingEnvironment, init_films, step_films


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    lab, slurry = sim_line.load_lab()
    rows = []
    # physics: 240 films (a 12 m web at 5 cm parcels), 60 steps of 1 s
    n, steps = 240, 60
    env = DryingEnvironment(air_temperature_c=90.0, heat_transfer_w_m2k=90.0, mass_transfer_m_s=0.03)

    def vectorised():
        s = init_films(slurry, np.full(n, 180.0), temperature_c=22.0, rng=np.random.default_rng(0))
        for _ in range(steps):
            s = step_films(slurry, s, env, 1.0)

    def looped():
        for i in range(n // 10):  # a tenth of the films, scaled below
            s = init_films(slurry, [180.0], temperature_c=22.0, rng=np.random.default_rng(i))
            for _ in range(steps):
                s = step_films(slurry, s, env, 1.0)

    tv = best_of(vectorised)
    tl = best_of(looped) * 10
    rows.append(("film steps/s, vectorised (240 films)", n * steps / tv, "film steps/s, one film at a time", n * steps / tl))

    t = best_of(lambda: sim_line.dry_lab_sample(300), repeat=2)
    rows.append(("lab sample 120 min (5 s steps), s", t, "-", float("nan")))
    line = sim_line.Line(seed=0)
    t = best_of(lambda: [line.step(1.0) for _ in range(60)], repeat=2)
    rows.append(("line: simulated s per wall s", 60.0 / t, "-", float("nan")))

    snap = sim_line.simulate_lab(300, (lab, slurry)).snapshot_at(41.0)
    sim_line.render_surface(snap, shape_px=(64, 64))  # compile
    for size in (512, 1024):
        ts = best_of(lambda: sim_line.render_surface(snap, shape_px=(size, size), um_per_px=2.0))
        frame = sim_line.render_surface(snap, shape_px=(size, size), um_per_px=2.0)
        ref = frame.image.astype(np.float32)
        u = frame.displacement_px
        grid = np.mgrid[0:size, 0:size].astype(np.float32)
        map_r, map_c = grid[0] - u[..., 0], grid[1] - u[..., 1]
        tr = best_of(lambda: cv2.remap(ref, map_c, map_r, cv2.INTER_CUBIC))
        rows.append((f"render_surface {size}^2, s", ts, f"cv2.remap bicubic warp {size}^2, s", tr))
    sim_line.render_volume(snap, shape=(32, 32, 32))
    tv3 = best_of(lambda: sim_line.render_volume(snap, shape=(128, 128, 128)))
    rows.append(("render_volume 128^3, s", tv3, "-", float("nan")))

    print("| measure | mudcrack | baseline | baseline value |")
    print("|---|---|---|---|")
    for name, value, base, base_value in rows:
        print(f"| {name} | {value:,.3g} | {base} | {base_value:,.3g} |")


if __name__ == "__main__":
    main()
