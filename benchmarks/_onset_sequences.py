"""Scripted crack-precursor sequences and shared scoring for the onset benchmarks.

Used by ``benchmarks/onset2d.py`` (camera frames) and ``benchmarks/onset3d.py`` (CT scans).

Every sequence is built from `sim_line` ground truth.  A simulated lab film
(`sim_line.simulate_lab`) supplies the crack network (spacing and seed), the particle
sizes and, for the consolidation rows, the real moving top surface.  The precursor
opening and the visible gap are then *scripted* with `dataclasses.replace` on the film's
`FilmSnapshot`, so the opening of every frame is known exactly and does not depend on
the simulator's own precursor law:

* amplitude A (px or voxel) = ``precursor_opening_um / pixel size``: the two sides of
  every crack of the network move apart by ``A * w_k * taper(s)`` (weights w_k in
  0.7-1.3, taper 1 at mid-length; the renderers open every crack of the network);
* the visible gap opens at ``gap_start_min`` with ``GAP_START_UM`` and widens by
  ``GAP_RATE_UM_PER_MIN`` (the simulator's 300 um film widens by ~2.6 um/min just after
  onset); ``cif_2d_top = 2 w / spacing`` (the simulator's own relation between the mean
  top width and the area fraction), the base at ``CIF_BASE_OVER_TOP`` of the top.

Random draws come from ``numpy.random.default_rng([crc32(tag), seed])``: a sequence is a
pure function of its generator's arguments, and a fresh set of seeds (``--seed-offset``)
gives fresh films, timings and disturbances.

The second half of the module holds the scoring shared by mudcrack and the baselines:
robust z-scores, the cluster rule of the baselines, threshold calibration, distances to
the true crack segments, lead statistics and Markdown formatting.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

import sim_line

# ----------------------------------------------------------------------------- settings

FRAME_DT_MIN = 2.0  # camera frame interval
SCAN_DT_MIN = 3.0  # CT scan interval
SHAPE_2D = (512, 512)
SHAPE_3D = (80, 128, 128)
VOXEL_UM = 2.0
PX_RANGE_UM = (4.0, 6.0)  # camera pixel sizes
SUBSET_2D = 31  # the 2D detector's default subset: the unit of the 2D site error
SUBSET_3D = 21  # the 3D detector's default subvolume: the unit of the 3D site error

GAP_START_UM = 1.0  # visible gap width when it opens
GAP_RATE_UM_PER_MIN = 2.5  # widening afterwards
CIF_BASE_OVER_TOP = 0.16  # base / top 2D CIF of a young crack (simulated 300 um film)

# disturbances: maximum magnitudes (each drawn uniformly from 0 to the maximum per sequence)
SHAKE_MAX_PX = 0.3  # rigid shake, per axis, independently every frame
DRIFT_MAX_PX_PER_MIN = 0.05  # slow drift of the mean position (up to 3 px/h)
FLICKER_MAX = 0.03  # global gain 1 +- flicker, every frame
GRADIENT_RANGE = (0.0, 0.5)  # illumination gradient peak-to-valley (renderer default 0.3)
GRADIENT_JITTER_MAX = 0.03  # frame-to-frame change of the gradient
NOISE_RANGE = (0.02, 0.03)  # sensor / CT noise, fraction of full scale
NOISE_QUIET_2D = 0.01  # renderer default, used where noise is not the disturbance
NOISE_QUIET_3D = 0.02  # CT default (ct_scan_series)
NEAR_CRITICAL_MAX = 0.05  # px / voxel: a precursor below the detection amplitude
SHIFT_MAX_VOX = 1.0  # uniform CT artefact shift along y per scan (x: a quarter of it)

KINDS_2D = ("shake", "drift", "flicker", "gradient", "noise", "near-critical", "consolidation", "combined")
KINDS_3D = ("shift", "noise", "near-critical", "consolidation", "combined")
LEAD_DISTURBANCES_2D = ("shake", "drift", "flicker", "gradient", "noise")
LEAD_DISTURBANCES_3D = ("shift", "noise")


def rng_for(tag: str, seed: int) -> np.random.Generator:
    """Generator of one sequence: deterministic in (tag, seed), independent across tags."""
    return np.random.default_rng([zlib.crc32(tag.encode()), int(seed)])


# ----------------------------------------------------------------------------- films


@lru_cache(maxsize=32)
def lab_film(gap_um: float, seed: int) -> sim_line.LabRun:
    """A simulated lab sample (the physics of one film; cached per process)."""
    return sim_line.simulate_lab(float(gap_um), seed=int(seed), duration_min=110.0)


def consolidated_snapshot(run: sim_line.LabRun) -> sim_line.FilmSnapshot:
    """The film 1 min after its consolidation ended (solvent front in the pores)."""
    attrs = run.frame.attrs
    ends = [attrs.get("consolidation_end_min", math.nan), attrs.get("front_entry_min", math.nan)]
    ends = [v for v in ends if math.isfinite(v)]
    t = max(ends) + 1.0 if ends else float(run.frame["t_min"].iloc[-1])
    return run.snapshot_at(t)


def scripted_snapshot(base: sim_line.FilmSnapshot, *, t_min: float, precursor_um: float,
                      gap_um: float = 0.0) -> sim_line.FilmSnapshot:
    """`base` with a scripted precursor opening and visible gap.

    Parameters
    ----------
    base : FilmSnapshot
        Physics state supplying the crack network, particles, layer and phase.
    t_min : float
        Time stamp of the frame (seeds the renderer's noise, so every frame has its own).
    precursor_um : float
        Relative opening of the two sides of every crack (weight 1, mid-length), um.
    gap_um : float, optional
        Mean visible gap width at the top surface, um (0: no gap).

    Returns
    -------
    FilmSnapshot
        ``cif_2d_top = 2 gap / spacing``, base CIF ``CIF_BASE_OVER_TOP`` of it, no
        bubble, no delamination.
    """
    top = 2.0 * gap_um / base.crack_spacing_um if gap_um > 0 else 0.0
    bottom = CIF_BASE_OVER_TOP * top
    cif3d = bottom + (top - bottom) / (base.cif_2d_exponent + 1.0)
    return dataclasses.replace(base, t_min=float(t_min), precursor_opening_um=float(precursor_um),
                               crack_width_um=float(gap_um), cif_2d_top=top, cif_2d_base=bottom,
                               cif_3d=cif3d, cracked=gap_um > 0, bubble_radius_um=0.0,
                               delamination_fraction=0.0, delamination_gap_um=0.0)


def gap_width_um(t_min: float, gap_start_min: float) -> float:
    """Scripted visible gap width at time `t_min`, um (0 before `gap_start_min`)."""
    if not math.isfinite(gap_start_min) or t_min < gap_start_min:
        return 0.0
    return GAP_START_UM + GAP_RATE_UM_PER_MIN * (t_min - gap_start_min)


def near_critical_ramp(rng: np.random.Generator, times: NDArray) -> NDArray:
    """A precursor that never reaches detection: 0 -> a_max <= NEAR_CRITICAL_MAX, held.

    The ramp starts in the first half of the sequence and lasts 10-30 min; a_max is
    drawn in [0.4, 1] x NEAR_CRITICAL_MAX (px or voxel).
    """
    span = float(times[-1] - times[0])
    start = times[0] + rng.uniform(0.0, 0.5) * span
    dur = rng.uniform(10.0, 30.0)
    a_max = rng.uniform(0.4, 1.0) * NEAR_CRITICAL_MAX
    return a_max * np.clip((times - start) / dur, 0.0, 1.0)


def network_segments_um(spacing_um: float, seed: int, lo_um, hi_um) -> NDArray:
    """All crack segments (K, 2, 2) um of the film's network around the rectangle [lo, hi]."""
    lo = np.asarray(lo_um, dtype=float)
    hi = np.asarray(hi_um, dtype=float)
    pat = sim_line.crack_pattern(spacing_um=float(spacing_um), extent_um=tuple(hi - lo), seed=int(seed),
                                 origin_um=tuple(lo))
    return np.asarray(pat.segments_um, dtype=float)


# ----------------------------------------------------------------------------- 2D sequences


@dataclass(frozen=True, eq=False)
class Sequence2D:
    """A scripted camera sequence: per-frame physics state and rendering conditions.

    Attributes
    ----------
    kind : str
        "lead", "curve", "quiet" or "lab".
    label : str
        Row label (growth rate, amplitude or disturbance).
    seed : int
        Sequence seed.
    times_min : ndarray, shape (T,)
        Frame times, min (frame 0 is the detectors' reference).
    snapshots : tuple of FilmSnapshot
        Physics state of every frame.
    amplitude_px : ndarray, shape (T,)
        Precursor opening per frame, px (weight-1 crack at mid-length).
    gap_um : ndarray, shape (T,)
        Scripted visible gap width, um (0: none).
    um_per_px : float
        Pixel size.
    origin_um : tuple of float
        Physical position of pixel (0, 0).
    shift_px : ndarray, shape (T, 2)
        Rigid camera motion (shake + drift) per frame, px.
    flicker_gain, gradient : ndarray, shape (T,)
        Global gain and illumination-gradient strength per frame.
    noise_std : float
        Sensor noise, fraction of full scale.
    precursor_start_min, gap_start_min : float
        Scripted start of the precursor and of the visible gap (NaN: none).
    film_seed : int
        Seed of the film (crack network, texture).
    film_gap_um : float
        Doctor-blade gap of the simulated film.
    """

    kind: str
    label: str
    seed: int
    times_min: NDArray
    snapshots: tuple
    amplitude_px: NDArray
    gap_um: NDArray
    um_per_px: float
    origin_um: tuple
    shift_px: NDArray
    flicker_gain: NDArray
    gradient: NDArray
    noise_std: float
    precursor_start_min: float
    gap_start_min: float
    film_seed: int
    film_gap_um: float

    def __len__(self) -> int:
        return len(self.times_min)

    def render(self, k: int) -> sim_line.SurfaceFrame:
        """Frame k (512^2, 8 bit) with its ground truth."""
        return sim_line.render_surface(
            self.snapshots[k], shape_px=SHAPE_2D, um_per_px=self.um_per_px, origin_um=self.origin_um,
            illumination_gradient=float(self.gradient[k]), flicker_gain=float(self.flicker_gain[k]),
            shift_px=(float(self.shift_px[k, 0]), float(self.shift_px[k, 1])), noise_std=self.noise_std,
            seed=self.film_seed)

    def segments_px(self, k: int) -> NDArray:
        """Every crack segment of the network near frame k, (K, 2, 2) px of that frame."""
        px = self.um_per_px
        origin = np.asarray(self.origin_um)
        margin = 3.0 * self.snapshots[0].crack_spacing_um
        seg = network_segments_um(self.snapshots[0].crack_spacing_um, self.film_seed, origin - margin,
                                  origin + np.asarray(SHAPE_2D) * px + margin)
        return (seg - origin) / px + self.shift_px[k]


def frame_conditions_2d(rng: np.random.Generator, times: NDArray, disturbances) -> dict:
    """Per-frame camera conditions with random magnitudes for the chosen disturbances.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws (always the same draws in the same order, whatever is enabled).
    times : ndarray, shape (T,)
        Frame times, min.
    disturbances : collection of str
        Any of "shake" (per-axis uniform +-S, S <= 0.3 px, new every frame), "drift"
        (constant velocity <= 0.05 px/min in a random direction), "flicker" (gain
        1 +- F, F <= 3 %), "gradient" (illumination gradient 0-0.5 peak-to-valley,
        changing by up to +-3 % every frame), "noise" (2-3 % instead of 1 %).

    Returns
    -------
    dict
        ``shift_px`` (T, 2), ``flicker_gain`` (T,), ``gradient`` (T,), ``noise_std``,
        and the drawn magnitudes (``shake_px``, ``drift_px_per_min``, ``flicker``,
        ``gradient_jitter``).
    """
    n = len(times)
    shake = rng.uniform(0.0, SHAKE_MAX_PX)
    jitter = rng.uniform(-1.0, 1.0, (n, 2))
    speed = rng.uniform(0.0, DRIFT_MAX_PX_PER_MIN)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    flick = rng.uniform(0.0, FLICKER_MAX)
    gains = rng.uniform(-1.0, 1.0, n)
    g0 = rng.uniform(*GRADIENT_RANGE)
    gj = rng.uniform(0.0, GRADIENT_JITTER_MAX)
    gsteps = rng.uniform(-1.0, 1.0, n)
    noise = rng.uniform(*NOISE_RANGE)
    d = set(disturbances)
    shift = np.zeros((n, 2))
    if "shake" in d:
        shift += shake * jitter
    if "drift" in d:
        shift += np.outer(times - times[0], speed * np.array([np.cos(angle), np.sin(angle)]))
    return dict(
        shift_px=shift,
        flicker_gain=1.0 + (flick * gains if "flicker" in d else 0.0 * gains),
        gradient=np.clip(g0 + gj * gsteps, 0.0, 0.9) if "gradient" in d else np.full(n, 0.3),
        noise_std=float(noise) if "noise" in d else NOISE_QUIET_2D,
        shake_px=shake if "shake" in d else 0.0, drift_px_per_min=speed if "drift" in d else 0.0,
        flicker=flick if "flicker" in d else 0.0, gradient_jitter=gj if "gradient" in d else 0.0)


def _cracking_film_2d(rng: np.random.Generator) -> tuple[sim_line.FilmSnapshot, int, float]:
    gap = float(rng.choice([300.0, 500.0, 800.0]))
    film_seed = int(rng.integers(0, 1_000_000))
    return consolidated_snapshot(lab_film(gap, film_seed)), film_seed, gap


def _sequence_2d(kind, label, seed, times, snaps, amp_px, gap_um, px, origin, cond, t_pre, t_gap, film_seed,
                 film_gap) -> Sequence2D:
    return Sequence2D(kind=kind, label=label, seed=int(seed), times_min=np.asarray(times, float),
                      snapshots=tuple(snaps), amplitude_px=np.asarray(amp_px, float),
                      gap_um=np.asarray(gap_um, float), um_per_px=float(px), origin_um=tuple(map(float, origin)),
                      shift_px=cond["shift_px"], flicker_gain=np.asarray(cond["flicker_gain"], float),
                      gradient=np.asarray(cond["gradient"], float), noise_std=cond["noise_std"],
                      precursor_start_min=float(t_pre), gap_start_min=float(t_gap), film_seed=film_seed,
                      film_gap_um=film_gap)


def lead_sequence_2d(seed: int, growth_px: float = 0.12, *, n_after: int = 3) -> Sequence2D:
    """A precursor growing linearly until a visible gap opens (the lead-time runs).

    Parameters
    ----------
    seed : int
        Sequence seed: film (gap 300/500/800 um, network), pixel size (4-6 um/px),
        timings and disturbances.  The same seed gives the same film, timings and
        disturbances at every growth rate (a paired comparison across rows).
    growth_px : float, optional
        Precursor growth per frame, px (frames every `FRAME_DT_MIN` = 2 min).
    n_after : int, optional
        Frames rendered after the first frame with a gap (the segmentation needs a
        gap of ~1 px).

    Returns
    -------
    Sequence2D
        4-6 quiet frames (the first is the reference), the precursor from a random
        ``t0`` within the next frame interval, growing by `growth_px` per frame;
        the visible gap opens at ``t0 + D``, D uniform in 10-18 min (the precursor is
        then held and the gap widens by `GAP_RATE_UM_PER_MIN`); every frame carries
        shake, drift, flicker, a changing illumination gradient and 2-3 % noise with
        random magnitudes (`frame_conditions_2d`).
    """
    rng = rng_for("lead2d", seed)
    base, film_seed, film_gap = _cracking_film_2d(rng)
    px = rng.uniform(*PX_RANGE_UM)
    origin = rng.uniform(0.0, 20000.0, 2)
    n_quiet = int(rng.integers(4, 7))
    dt = FRAME_DT_MIN
    t0 = (n_quiet - 1) * dt + rng.uniform(0.0, dt)
    lag = rng.uniform(10.0, 18.0)
    t_gap = t0 + lag
    first_gap = int(math.ceil(t_gap / dt - 1e-9))
    times = dt * np.arange(first_gap + n_after + 1)
    amp = growth_px * np.clip(times - t0, 0.0, lag) / dt
    gaps = np.array([gap_width_um(t, t_gap) for t in times])
    cond = frame_conditions_2d(rng, times, LEAD_DISTURBANCES_2D)
    snaps = [scripted_snapshot(base, t_min=base.t_min + t, precursor_um=a * px, gap_um=g)
             for t, a, g in zip(times, amp, gaps)]
    return _sequence_2d("lead", f"{growth_px:g} px/frame", seed, times, snaps, amp, gaps, px, origin, cond,
                        t0, t_gap, film_seed, film_gap)


def curve_sequence_2d(seed: int, amplitude_px: float, *, n_quiet: int = 4, n_held: int = 4) -> Sequence2D:
    """Quiet frames, then the precursor at a fixed amplitude and no gap (detection curve).

    Parameters
    ----------
    seed : int
        Sequence seed (film, pixel size, disturbances); the same seed gives the same
        film and disturbances at every amplitude.
    amplitude_px : float
        Precursor opening held from frame `n_quiet` on, px.
    n_quiet, n_held : int, optional
        Quiet frames (the first is the reference) and frames at the amplitude, 2 min apart.

    Returns
    -------
    Sequence2D
        Disturbances as in `lead_sequence_2d`.
    """
    rng = rng_for("curve2d", seed)
    base, film_seed, film_gap = _cracking_film_2d(rng)
    px = rng.uniform(*PX_RANGE_UM)
    origin = rng.uniform(0.0, 20000.0, 2)
    times = FRAME_DT_MIN * np.arange(n_quiet + n_held)
    amp = np.where(np.arange(len(times)) >= n_quiet, float(amplitude_px), 0.0)
    cond = frame_conditions_2d(rng, times, LEAD_DISTURBANCES_2D)
    snaps = [scripted_snapshot(base, t_min=base.t_min + t, precursor_um=a * px) for t, a in zip(times, amp)]
    t_pre = times[n_quiet] - 0.5 * FRAME_DT_MIN
    return _sequence_2d("curve", f"{amplitude_px:g}", seed, times, snaps, amp, np.zeros(len(times)), px, origin,
                        cond, t_pre, math.nan, film_seed, film_gap)


def quiet_sequence_2d(seed: int, kind: str, *, n_frames: int = 31) -> Sequence2D:
    """A crack-free sequence with one disturbance (or all of them) for false alarms.

    Parameters
    ----------
    seed : int
        Sequence seed.
    kind : str
        One of `KINDS_2D`: "shake", "drift", "flicker", "gradient", "noise" (that
        disturbance alone, random magnitude up to its maximum; see
        `frame_conditions_2d`); "near-critical" (a precursor ramping to <= 0.05 px and
        never a gap: a film that comes close to cracking); "consolidation" (a crack-free
        lab film, gap 150-250 um, its real `simulate_lab` snapshots every 2 min up to
        the end of consolidation, precursor forced to 0: the moving top surface;
        the 2D renderer draws the surface texture independently of the layer
        thickness); "combined" (the consolidation film with every disturbance and a
        near-critical precursor).
    n_frames : int, optional
        Frames 2 min apart; the default 31 is one hour after the reference.

    Returns
    -------
    Sequence2D
    """
    if kind not in KINDS_2D:
        raise ValueError(f"kind must be one of {KINDS_2D}, got {kind!r}")
    rng = rng_for(f"quiet2d-{kind}", seed)
    times = FRAME_DT_MIN * np.arange(n_frames)
    px = rng.uniform(*PX_RANGE_UM)
    origin = rng.uniform(0.0, 20000.0, 2)
    dist = LEAD_DISTURBANCES_2D if kind == "combined" else (kind,)
    cond = frame_conditions_2d(rng, times, dist)
    ramp = near_critical_ramp(rng, times)  # px
    amp = ramp if kind in ("near-critical", "combined") else np.zeros(n_frames)
    if kind in ("consolidation", "combined"):
        gap = float(rng.uniform(150.0, 250.0))
        film_seed = int(rng.integers(0, 1_000_000))
        run = lab_film(gap, film_seed)
        t_end = run.frame.attrs["consolidation_end_min"]
        t_real = max(t_end - times[-1], 1.0) + times
        snaps = [scripted_snapshot(run.snapshot_at(float(t)), t_min=float(t), precursor_um=a * px)
                 for t, a in zip(t_real, amp)]
    else:
        base, film_seed, gap = _cracking_film_2d(rng)
        snaps = [scripted_snapshot(base, t_min=base.t_min + t, precursor_um=a * px) for t, a in zip(times, amp)]
    return _sequence_2d("quiet", kind, seed, times, snaps, amp, np.zeros(n_frames), px, origin, cond,
                        math.nan, math.nan, film_seed, gap)


def lab_sequence_2d(seed: int, gap_um: float, *, before_min: float = 20.0, after_min: float = 6.0) -> Sequence2D:
    """The simulator's own timeline: `simulate_lab` snapshots at the real times (secondary).

    Parameters
    ----------
    seed : int
        Film seed (also draws pixel size and disturbances).
    gap_um : float
        Doctor-blade gap; a film that never cracks is centred on its consolidation end.
    before_min, after_min : float, optional
        Window around the physics onset, frames every 2 min.

    Returns
    -------
    Sequence2D
        The simulator's precursor law and gap (not scripted), with the lead-run
        disturbances; ``precursor_start_min`` is the first frame with a precursor.
    """
    rng = rng_for(f"lab2d-{gap_um:g}", seed)
    run = lab_film(gap_um, seed)
    attrs = run.frame.attrs
    onset = attrs["crack_onset_min"]
    centre = onset if math.isfinite(onset) else attrs["consolidation_end_min"]
    n_before = int(round(before_min / FRAME_DT_MIN))
    times = np.round(centre) + FRAME_DT_MIN * np.arange(-n_before, int(round(after_min / FRAME_DT_MIN)) + 1)
    px = rng.uniform(*PX_RANGE_UM)
    origin = rng.uniform(0.0, 20000.0, 2)
    cond = frame_conditions_2d(rng, times, LEAD_DISTURBANCES_2D)
    snaps = [run.snapshot_at(float(t)) for t in times]
    amp = np.array([s.precursor_opening_um for s in snaps]) / px
    gaps = np.array([s.crack_width_um for s in snaps])
    t_pre = next((float(t) for t, a in zip(times, amp) if a > 0), math.nan)
    return _sequence_2d("lab", f"{gap_um:g} um", seed, times, snaps, amp, gaps, px, origin, cond, t_pre,
                        onset, seed, gap_um)


# ----------------------------------------------------------------------------- 3D sequences


@dataclass(frozen=True, eq=False)
class Sequence3D:
    """A scripted CT scan series: per-scan physics state and field of view.

    Attributes
    ----------
    kind, label : str
        "lead", "curve", "quiet" or "lab"; row label.
    seed : int
        Sequence seed.
    times_min : ndarray, shape (T,)
        Scan times, min (scan 0 is the detectors' reference).
    snapshots : tuple of FilmSnapshot
        Physics state of every scan.
    amplitude_vox : ndarray, shape (T,)
        Precursor opening, voxels (weight-1 crack at mid-length).
    gap_um : ndarray, shape (T,)
        Scripted visible gap width at the top, um.
    voxel_um : float
        Voxel size.
    origins_um : ndarray, shape (T, 2)
        In-plane (y, x) position of voxel column (0, 0) per scan: the artefact shift.
    shift_vox : ndarray, shape (T, 2)
        Uniform artefact shift (y, x) of the content of each scan, voxels.
    noise_std : float
        Noise, fraction of full scale.
    precursor_start_min, gap_start_min : float
        Scripted start of the precursor and of the gap (NaN: none).
    film_seed : int
        Seed of the film.
    film_gap_um : float
        Doctor-blade gap of the simulated film.
    """

    kind: str
    label: str
    seed: int
    times_min: NDArray
    snapshots: tuple
    amplitude_vox: NDArray
    gap_um: NDArray
    voxel_um: float
    origins_um: NDArray
    shift_vox: NDArray
    noise_std: float
    precursor_start_min: float
    gap_start_min: float
    film_seed: int
    film_gap_um: float

    def __len__(self) -> int:
        return len(self.times_min)

    def render(self, k: int) -> sim_line.VolumeRender:
        """Scan k (80x128x128, uint16) with labels and displacement."""
        return sim_line.render_volume(self.snapshots[k], shape=SHAPE_3D, voxel_um=self.voxel_um,
                                      origin_um=(float(self.origins_um[k, 0]), float(self.origins_um[k, 1])),
                                      noise_std=self.noise_std, seed=self.film_seed, cif_reference="pattern")

    def segments_vox(self, k: int) -> NDArray:
        """Every crack segment near scan k, (K, 2, 2) in-plane (y, x) voxels of that scan."""
        v = self.voxel_um
        o = self.origins_um[k]
        margin = 3.0 * self.snapshots[0].crack_spacing_um
        seg = network_segments_um(self.snapshots[0].crack_spacing_um, self.film_seed, o - margin,
                                  o + np.asarray(SHAPE_3D[1:]) * v + margin)
        return (seg - o) / v


def scan_conditions_3d(rng: np.random.Generator, n: int, disturbances) -> dict:
    """Per-scan artefact shift and noise with random magnitudes.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws (the same draws whatever is enabled).
    n : int
        Number of scans.
    disturbances : collection of str
        "shift": a uniform shift of the whole scan, y uniform in +-S, x in +-S/4,
        S <= 1 voxel, new every scan (rendered exactly by moving the field of view);
        "noise": 2-3 % instead of 2 %.

    Returns
    -------
    dict
        ``shift_vox`` (n, 2), ``noise_std``, ``shift_max_vox``.
    """
    s = rng.uniform(0.0, SHIFT_MAX_VOX)
    u = rng.uniform(-1.0, 1.0, (n, 2)) * np.array([1.0, 0.25])
    noise = rng.uniform(*NOISE_RANGE)
    d = set(disturbances)
    return dict(shift_vox=s * u if "shift" in d else np.zeros((n, 2)),
                noise_std=float(noise) if "noise" in d else NOISE_QUIET_3D,
                shift_max_vox=s if "shift" in d else 0.0)


def _cracking_film_3d(rng: np.random.Generator):
    """A 290-320 um film (125-138 um dry: fits 80 slices of 2 um) and a field of view on a crack."""
    gap = float(rng.uniform(290.0, 320.0))
    film_seed = int(rng.integers(0, 1_000_000))
    base = consolidated_snapshot(lab_film(gap, film_seed))
    return base, film_seed, gap, _fov_on_crack(rng, base.crack_spacing_um, film_seed)


def _fov_on_crack(rng: np.random.Generator, spacing_um: float, film_seed: int) -> NDArray:
    """Origin (y, x) um of a field of view whose centre is within +-FOV/4 of a crack's middle."""
    fov = np.asarray(SHAPE_3D[1:]) * VOXEL_UM
    seg = network_segments_um(spacing_um, film_seed, (0.0, 0.0), (3000.0, 3000.0))
    mids = seg.mean(axis=1)
    inner = np.flatnonzero(np.all((mids > 1000.0) & (mids < 2000.0), axis=1))
    mid = mids[rng.choice(inner)]
    return mid - fov / 2 + rng.uniform(-0.25, 0.25, 2) * fov


def _sequence_3d(kind, label, seed, times, snaps, amp, gaps, origin, cond, t_pre, t_gap, film_seed, film_gap):
    shift = cond["shift_vox"]
    return Sequence3D(kind=kind, label=label, seed=int(seed), times_min=np.asarray(times, float),
                      snapshots=tuple(snaps), amplitude_vox=np.asarray(amp, float), gap_um=np.asarray(gaps, float),
                      voxel_um=VOXEL_UM, origins_um=np.asarray(origin, float)[None, :] - shift * VOXEL_UM,
                      shift_vox=shift, noise_std=cond["noise_std"], precursor_start_min=float(t_pre),
                      gap_start_min=float(t_gap), film_seed=film_seed, film_gap_um=film_gap)


def lead_sequence_3d(seed: int, growth_vox: float = 0.25, *, n_after: int = 1) -> Sequence3D:
    """A precursor growing linearly until a visible gap opens (CT lead runs).

    Parameters
    ----------
    seed : int
        Sequence seed: film (gap 290-320 um), field of view (centred within +-64 um of
        the middle of a crack), timings and disturbances; paired across growth rates.
    growth_vox : float, optional
        Precursor growth per scan, voxels (scans every `SCAN_DT_MIN` = 3 min, 2 um voxels).
    n_after : int, optional
        Scans after the first scan with a gap.

    Returns
    -------
    Sequence3D
        3-4 quiet scans (the first is the reference), the precursor from a random
        ``t0`` within the next scan interval, the gap at ``t0 + D``, D uniform in
        12-18 min (the first gap scan is 4-6 scans after the precursor starts), then
        the precursor held and the gap widening; every scan with a uniform artefact
        shift (y up to +-S, S <= 1 voxel) and 2-3 % noise.
    """
    rng = rng_for("lead3d", seed)
    base, film_seed, film_gap, origin = _cracking_film_3d(rng)
    n_quiet = int(rng.integers(3, 5))
    dt = SCAN_DT_MIN
    t0 = (n_quiet - 1) * dt + rng.uniform(0.0, dt)
    lag = rng.uniform(12.0, 18.0)
    t_gap = t0 + lag
    first_gap = int(math.ceil(t_gap / dt - 1e-9))
    times = dt * np.arange(first_gap + n_after + 1)
    amp = growth_vox * np.clip(times - t0, 0.0, lag) / dt
    gaps = np.array([gap_width_um(t, t_gap) for t in times])
    cond = scan_conditions_3d(rng, len(times), LEAD_DISTURBANCES_3D)
    snaps = [scripted_snapshot(base, t_min=base.t_min + t, precursor_um=a * VOXEL_UM, gap_um=g)
             for t, a, g in zip(times, amp, gaps)]
    return _sequence_3d("lead", f"{growth_vox:g} vox/scan", seed, times, snaps, amp, gaps, origin, cond, t0,
                        t_gap, film_seed, film_gap)


def curve_sequence_3d(seed: int, amplitude_vox: float, *, n_quiet: int = 3, n_held: int = 2) -> Sequence3D:
    """Quiet scans, then the precursor at a fixed amplitude and no gap (detection curve).

    Parameters
    ----------
    seed : int
        Sequence seed (paired across amplitudes).
    amplitude_vox : float
        Precursor opening held from scan `n_quiet` on, voxels.
    n_quiet, n_held : int, optional
        Quiet scans (the first is the reference) and scans at the amplitude, 3 min apart.

    Returns
    -------
    Sequence3D
        Disturbances as in `lead_sequence_3d`.
    """
    rng = rng_for("curve3d", seed)
    base, film_seed, film_gap, origin = _cracking_film_3d(rng)
    times = SCAN_DT_MIN * np.arange(n_quiet + n_held)
    amp = np.where(np.arange(len(times)) >= n_quiet, float(amplitude_vox), 0.0)
    cond = scan_conditions_3d(rng, len(times), LEAD_DISTURBANCES_3D)
    snaps = [scripted_snapshot(base, t_min=base.t_min + t, precursor_um=a * VOXEL_UM) for t, a in zip(times, amp)]
    return _sequence_3d("curve", f"{amplitude_vox:g}", seed, times, snaps, amp, np.zeros(len(times)), origin,
                        cond, times[n_quiet] - 0.5 * SCAN_DT_MIN, math.nan, film_seed, film_gap)


def quiet_sequence_3d(seed: int, kind: str, *, n_scans: int = 11) -> Sequence3D:
    """A crack-free scan series with one disturbance (or all) for false alarms.

    Parameters
    ----------
    seed : int
        Sequence seed.
    kind : str
        One of `KINDS_3D`: "shift" (uniform artefact shift, y up to +-S, S <= 1 voxel,
        x a quarter, new every scan), "noise" (2-3 %), "near-critical" (a precursor
        ramping to <= 0.05 voxel, never a gap), "consolidation" (a crack-free lab
        film, gap 150-190 um (the wet stack fits the 160 um of the volume), its real
        `simulate_lab` snapshots every 3 min from ``(n_scans - 3) * 3`` min before to
        6 min after the end of consolidation,
        precursor forced to 0: the solvent film and the top surface move down through
        the volume), "combined" (the consolidation film with shifts, 2-3 % noise and a
        near-critical precursor).
    n_scans : int, optional
        Scans 3 min apart; the default 11 is 30 min after the reference.

    Returns
    -------
    Sequence3D
    """
    if kind not in KINDS_3D:
        raise ValueError(f"kind must be one of {KINDS_3D}, got {kind!r}")
    rng = rng_for(f"quiet3d-{kind}", seed)
    times = SCAN_DT_MIN * np.arange(n_scans)
    dist = LEAD_DISTURBANCES_3D if kind == "combined" else (kind,)
    cond = scan_conditions_3d(rng, n_scans, dist)
    ramp = near_critical_ramp(rng, times)
    amp = ramp if kind in ("near-critical", "combined") else np.zeros(n_scans)
    if kind in ("consolidation", "combined"):
        gap = float(rng.uniform(150.0, 190.0))
        film_seed = int(rng.integers(0, 1_000_000))
        run = lab_film(gap, film_seed)
        t_end = run.frame.attrs["consolidation_end_min"]
        t_real = max(t_end - times[-1] + 2 * SCAN_DT_MIN, 1.0) + times
        origin = _fov_on_crack(rng, run.snapshots[0].crack_spacing_um, film_seed)
        snaps = [scripted_snapshot(run.snapshot_at(float(t)), t_min=float(t), precursor_um=a * VOXEL_UM)
                 for t, a in zip(t_real, amp)]
    else:
        base, film_seed, gap, origin = _cracking_film_3d(rng)
        snaps = [scripted_snapshot(base, t_min=base.t_min + t, precursor_um=a * VOXEL_UM)
                 for t, a in zip(times, amp)]
    return _sequence_3d("quiet", kind, seed, times, snaps, amp, np.zeros(n_scans), origin, cond, math.nan,
                        math.nan, film_seed, gap)


# ----------------------------------------------------------------------------- scoring

MAD_TO_SIGMA = 1.4826


def robust_z(values: NDArray) -> NDArray:
    """(x - median) / (1.4826 MAD) over the finite values (scale floored at 1e-9)."""
    fin = values[np.isfinite(values)]
    if fin.size < 4:
        return np.full(values.shape, np.nan)
    med = float(np.median(fin))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(fin - med)))
    return (values - med) / max(mad, 1e-9)


def cluster_level(z: NDArray, min_points: int = 3) -> float:
    """Largest threshold T at which ``z > T`` still holds an 8-connected cluster of `min_points`.

    A frame is declared by the baselines' rule at threshold T exactly when
    ``cluster_level(z) > T``.  Computed by adding grid points in decreasing z
    (union-find) until a cluster reaches `min_points`; -inf if none ever does.
    """
    R, C = z.shape
    flat = z.ravel()
    order = np.argsort(np.where(np.isfinite(flat), -flat, np.inf), kind="stable")
    parent = np.full(flat.size, -1)
    size = np.zeros(flat.size, dtype=int)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in order:
        if not np.isfinite(flat[i]):
            break
        parent[i] = i
        size[i] = 1
        r, c = divmod(int(i), C)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < R and 0 <= cc < C and parent[rr * C + cc] >= 0:
                    a, b = find(i), find(rr * C + cc)
                    if a != b:
                        parent[b] = a
                        size[a] += size[b]
        if size[find(i)] >= min_points:
            return float(flat[i])
    return -math.inf


def clusters_above(z: NDArray, threshold: float, min_points: int = 3) -> list[tuple[int, int]]:
    """Grid index of the maximum of every 8-connected cluster of >= `min_points` with z > T, strongest first."""
    hot = np.nan_to_num(z, nan=-np.inf) > threshold
    labels, n = ndimage.label(hot, structure=np.ones((3, 3)))
    out = []
    for lab in range(1, n + 1):
        cells = np.argwhere(labels == lab)
        if len(cells) < min_points:
            continue
        vals = z[cells[:, 0], cells[:, 1]]
        out.append((float(vals.max()), tuple(int(v) for v in cells[np.argmax(vals)])))
    return [c for _, c in sorted(out, reverse=True)]


def calibrate_threshold(levels) -> float:
    """Smallest threshold with zero declarations on the calibration frames (max cluster level)."""
    lv = [v for v in levels if np.isfinite(v)]
    return float(max(lv)) if lv else 0.0


def distance_to_segments(points: NDArray, segments: NDArray) -> NDArray:
    """Distance from each point (N, 2) to the nearest segment (K, 2, 2), same units."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0 or len(segments) == 0:
        return np.full(len(pts), np.nan)
    a, b = segments[:, 0], segments[:, 1]
    ab = b - a
    den = np.maximum((ab * ab).sum(1), 1e-12)
    out = np.empty(len(pts))
    for i, p in enumerate(pts):
        t = np.clip(((p - a) * ab).sum(1) / den, 0.0, 1.0)
        out[i] = np.min(np.linalg.norm(a + t[:, None] * ab - p, axis=1))
    return out


def first_true_time(times, flags) -> float:
    """Time of the first True flag, NaN if none."""
    return next((float(t) for t, f in zip(times, flags) if f), math.nan)


def lead_quantile(leads, q: float) -> float:
    """Quantile of lead times with a missed run (NaN: never declared) counted as -inf."""
    v = np.sort(np.where(np.isnan(np.asarray(leads, float)), -np.inf, leads))
    if v.size == 0:
        return math.nan
    return float(np.quantile(v, q, method="lower")) if q > 0 else float(v[0])


def fmt(v, digits: int = 2) -> str:
    """Number for a Markdown table ("-" for NaN / None, "miss" for -inf)."""
    if v is None:
        return "-"
    v = float(v)
    if math.isnan(v):
        return "-"
    if v == -math.inf:
        return "miss"
    if v == math.inf:
        return "inf"
    return f"{v:.{digits}f}"


def share(flags) -> str:
    """'k/n (p %)' of a boolean sequence."""
    f = [bool(x) for x in flags]
    return f"{sum(f)}/{len(f)} ({100.0 * sum(f) / max(len(f), 1):.0f} %)" if f else "-"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
