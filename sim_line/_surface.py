"""Synthetic top-surface camera frames of a drying coating, with DIC ground truth.

The texture (active particles, darker carbon-binder matrix, fine carbon-black speckle)
is seeded per lattice tile of the physical surface and drawn analytically at the
displaced position of every particle / speckle blob, so frames of the same sample share
their texture wherever they overlap and the displacement ground truth is exact (no
image interpolation).  Cracks follow `crack_pattern` with the same seed.

Coordinates: pixel (r, c) of a frame with ``origin_um`` and ``um_per_px`` images the
physical point ``origin_um + (r, c) * um_per_px`` (um, (row, col)) of the reference
configuration when there is no displacement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ._pattern import (LENGTH_PER_AREA, STREAM_NOISE, STREAM_TEXTURE_2D, TAPER_LENGTH_PER_AREA,
                       CrackPattern, check_cif_reference, check_pair,
                       check_snapshot, crack_pattern, encode_int, resolve_seed,
                       tile_generators)
from ._snapshot import FilmSnapshot

__all__ = ["SurfaceFrame", "render_surface"]

_TILE_UM = 128.0
_COVERAGE = 1.0  # particle number density * mean disc area (covered fraction 1 - e^-1)
_SPECKLE_PER_UM2 = 1.0 / 36.0
_SPECKLE_SIGMA_UM = 1.5
_MATRIX = 0.22
_PARTICLE = (0.60, 0.85)
_SPECKLE_AMP = (-0.10, 0.04)
_SHADOW = 0.025  # gap level, fraction of full scale (plus |N(0, noise_std)|)


@dataclass(frozen=True, eq=False)
class SurfaceFrame:
    """One rendered camera frame with its ground truth.

    Attributes
    ----------
    image : ndarray, shape (H, W), uint8 or uint16
        The frame.
    displacement_px : ndarray, shape (H, W, 2), float32
        Displacement u (row, col), px, on the reference pixel grid: the material at
        reference pixel X appears at X + u(X) in `image` (camera shake included).
    crack_mask : ndarray, shape (H, W), bool
        Visible crack gap pixels of `image`.
    crack_sites_px : ndarray, shape (K, 2), float
        Mid points (row, col), px in `image`, of the crack segments whose mid point lies
        in the frame: where cracks will open or have opened.
    segments_px : ndarray, shape (K, 2, 2), float
        End points of those segments, px in `image`.
    segment_weights : ndarray, shape (K,)
        Opening factors of those segments (`CrackPattern.weights`).
    um_per_px : float
        Pixel size, um.
    surface_cif : float
        Crack area fraction of the frame, ``crack_mask.mean()``.
    gap_scale_um : float
        Common width scale A: the gap of segment k is ``A * w_k * taper(s)`` wide, um.
    """

    image: NDArray
    displacement_px: NDArray[np.float32]
    crack_mask: NDArray[np.bool_]
    crack_sites_px: NDArray[np.float64]
    segments_px: NDArray[np.float64]
    segment_weights: NDArray[np.float64]
    um_per_px: float
    surface_cif: float
    gap_scale_um: float


@njit(cache=True)
def _splat_discs(img, centres, radii, bright, matrix):
    """Anti-aliased shaded discs, max-composited (order independent); all in px."""
    h, w = img.shape
    for k in range(centres.shape[0]):
        cy = centres[k, 0]
        cx = centres[k, 1]
        rad = radii[k]
        i0 = max(int(np.floor(cy - rad - 1.0)), 0)
        i1 = min(int(np.ceil(cy + rad + 1.0)), h - 1)
        j0 = max(int(np.floor(cx - rad - 1.0)), 0)
        j1 = min(int(np.ceil(cx + rad + 1.0)), w - 1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                r = np.sqrt((i - cy) ** 2 + (j - cx) ** 2)
                a = min(max(rad - r + 0.5, 0.0), 1.0)
                if a <= 0.0:
                    continue
                q = min(r / rad, 1.0)
                shade = bright[k] * (0.6 + 0.4 * np.sqrt(1.0 - q * q))
                v = matrix + a * (shade - matrix)
                if v > img[i, j]:
                    img[i, j] = v


@njit(cache=True)
def _splat_gauss(img, centres, sigma, amps):
    """Additive isotropic Gaussian blobs of peak ``amps``; all in px."""
    h, w = img.shape
    reach = 3.0 * sigma
    inv = 0.5 / (sigma * sigma)
    for k in range(centres.shape[0]):
        cy = centres[k, 0]
        cx = centres[k, 1]
        i0 = max(int(np.ceil(cy - reach)), 0)
        i1 = min(int(np.floor(cy + reach)), h - 1)
        j0 = max(int(np.ceil(cx - reach)), 0)
        j1 = min(int(np.floor(cx + reach)), w - 1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                img[i, j] += amps[k] * np.exp(-((i - cy) ** 2 + (j - cx) ** 2) * inv)


def _texture_elements(seed: int, lo, hi, dmin: float, dmax: float):
    """Particles and speckle blobs (reference positions, um) of the tiles over [lo, hi]."""
    mean_area = np.pi * (dmin * dmin + dmin * dmax + dmax * dmax) / 12.0
    n_part = max(int(round(_COVERAGE * _TILE_UM**2 / mean_area)), 1)
    n_speck = int(round(_SPECKLE_PER_UM2 * _TILE_UM**2))
    parts, specks = [], []
    for corner, rng in tile_generators(seed, STREAM_TEXTURE_2D, lo, hi, _TILE_UM):
        p = rng.random((n_part, 4))  # row, col, diameter, brightness
        s = rng.random((n_speck, 3))  # row, col, amplitude
        parts.append(np.column_stack([corner + p[:, :2] * _TILE_UM,
                                      dmin + (dmax - dmin) * p[:, 2],
                                      _PARTICLE[0] + (_PARTICLE[1] - _PARTICLE[0]) * p[:, 3]]))
        specks.append(np.column_stack([corner + s[:, :2] * _TILE_UM,
                                       _SPECKLE_AMP[0] + (_SPECKLE_AMP[1] - _SPECKLE_AMP[0]) * s[:, 2]]))
    return np.concatenate(parts), np.concatenate(specks)


def illumination_field(shape: tuple[int, int], strength: float) -> NDArray[np.float64]:
    """Smooth multiplicative illumination in [1 - strength, 1] (fixed to the camera).

    A tilted ramp plus a vignette, normalised so that its peak-to-valley is ``strength``.
    """
    y = np.linspace(0.0, 1.0, shape[0])[:, None]
    x = np.linspace(0.0, 1.0, shape[1])[None, :]
    f = 0.55 * x + 0.3 * y - 1.1 * ((x - 0.55) ** 2 + (y - 0.45) ** 2)
    f = (f - f.min()) / max(float(np.ptp(f)), 1e-12)
    return 1.0 - strength + strength * f


def noise_generator(seed: int, *values: float) -> np.random.Generator:
    """Generator for the sensor noise, seeded from the seed and the frame's parameters."""
    bits = np.asarray(values, dtype=np.float64).view(np.uint64).tolist()
    return np.random.default_rng([encode_int(seed), STREAM_NOISE, *bits])


def quantise(values: NDArray, bit_depth: int) -> NDArray:
    """Clip to [0, 1] and quantise to ``bit_depth`` 8 (uint8) or 16 (uint16)."""
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    full = float(np.iinfo(dtype).max)
    return np.rint(np.clip(values, 0.0, 1.0) * full).astype(dtype)


def _gap_scale(pattern: CrackPattern, snapshot: FilmSnapshot, lo, hi, reference: str) -> float:
    """Common width scale A (um) so the gaps cover cif_2d_top of the rectangle [lo, hi]."""
    if snapshot.crack_width_um <= 0:
        return 0.0
    weighted = pattern.taper_length_in(lo, hi, reference=reference)
    if weighted <= 0:
        return 0.0
    if snapshot.cif_2d_top > 0:
        return float(snapshot.cif_2d_top) * float(np.prod(np.subtract(hi, lo))) / weighted
    # no area target: mean width (length weighted) = crack_width_um
    from ._pattern import clip_segments

    t0, t1 = clip_segments(pattern.segments_um, np.asarray(lo), np.asarray(hi))
    length = float((np.clip(t1 - t0, 0, None) * pattern.lengths_um).sum())
    if reference == "pattern":
        return float(snapshot.crack_width_um) / (TAPER_LENGTH_PER_AREA / LENGTH_PER_AREA)
    return float(snapshot.crack_width_um) * length / weighted


def render_surface(snapshot: FilmSnapshot, *, shape_px: tuple[int, int] = (512, 512),
                   um_per_px: float = 5.0, origin_um: tuple[float, float] = (0.0, 0.0),
                   bit_depth: int = 8, illumination_gradient: float = 0.3,
                   flicker_gain: float = 1.0, shift_px: tuple[float, float] = (0.0, 0.0),
                   noise_std: float = 0.01, seed: int | None = None,
                   band_um: float | None = None, cif_reference: str = "view") -> SurfaceFrame:
    """Render the top surface of a film as the line camera sees it.

    Parameters
    ----------
    snapshot : FilmSnapshot
        Physics state (crack spacing, precursor opening, crack width, 2D CIF at the top,
        particle sizes, seed).
    shape_px : tuple of int, optional
        Frame shape (H, W), px.
    um_per_px : float, optional
        Pixel size, um.
    origin_um : tuple of float, optional
        Physical position (row, col), um, imaged by pixel (0, 0) (e.g. the web position).
    bit_depth : {8, 16}, optional
        8 gives uint8, 16 gives uint16.
    illumination_gradient : float, optional
        Peak-to-valley of the smooth multiplicative illumination field, in [0, 1).
    flicker_gain : float, optional
        Global gain (illumination flicker), > 0.
    shift_px : tuple of float, optional
        Rigid camera shake (row, col), px, added to the displacement.
    noise_std : float, optional
        Standard deviation of the Gaussian sensor noise, fraction of full scale.
    seed : int, optional
        Seed of texture and cracks; None uses ``snapshot.seed``.  The sensor noise is
        seeded from (seed, t_min, origin, shift, gain), so a frame is reproducible.
    band_um : float, optional
        Decay length of the opening displacement away from a crack, um; None gives
        ``crack_spacing_um / 4``.
    cif_reference : {"view", "pattern"}, optional
        "view": gap widths set so that the crack area fraction of this frame is
        ``cif_2d_top`` (widths then differ a little between overlapping frames).
        "pattern": widths from the network's mean crack density, identical in every
        view (overlapping frames agree; the frame's fraction matches on average).

    Returns
    -------
    SurfaceFrame

    Raises
    ------
    ValueError
        On a bad argument (the message names it), e.g. ``bit_depth`` not 8 or 16.

    Notes
    -----
    Crack mechanics: the two sides of crack segment k move apart along its normal by
    ``w_k * (crack_width_um * taper(s) + precursor_opening_um * precursor_taper(s) * ramp(d))``
    in total (see `CrackPattern.opening_displacement`), half each, decaying over
    ``band_um`` with the distance d from the segment.  The gap part jumps at the crack
    line and keeps half its width at the junctions; the precursor opens like a crack with
    closed tips (``sin(pi s)``, largest mid-length) but is a strain, not a gap:
    ``ramp(d) = tanh(d / snapshot.precursor_band_um)`` makes it continuous across the line
    (no particle-free band before the onset nor beside the gap afterwards).  The
    displacement is exactly ``shift_px`` when both openings are zero.

    Visible gaps (only when ``crack_width_um > 0``) are dark bands centred on the
    segments (moved by the camera shake) of width ``A * w_k * taper(s)``, with A set so
    that the gap area inside the frame is ``cif_2d_top`` of the frame (or, if that is
    0, so that the length-weighted mean width is ``crack_width_um``).  Particles are
    drawn whole at their displaced centre (cracks run between particles).

    Examples
    --------
    >>> frame = render_surface(snapshot, shape_px=(256, 256))  # doctest: +SKIP
    >>> frame.image.dtype
    dtype('uint8')
    """
    check_snapshot(snapshot)
    try:
        h, w = (int(v) for v in shape_px)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape_px must be two positive ints, got {shape_px!r}") from exc
    if h <= 0 or w <= 0:
        raise ValueError(f"shape_px must be two positive ints, got {shape_px!r}")
    if not np.isfinite(um_per_px) or um_per_px <= 0:
        raise ValueError(f"um_per_px must be positive and finite, got {um_per_px!r}")
    origin = np.asarray(check_pair("origin_um", origin_um, positive=False))
    shift = np.asarray(check_pair("shift_px", shift_px, positive=False))
    if bit_depth not in (8, 16) or isinstance(bit_depth, bool):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if not 0.0 <= illumination_gradient < 1.0:
        raise ValueError(f"illumination_gradient must be in [0, 1), got {illumination_gradient!r}")
    if not np.isfinite(flicker_gain) or flicker_gain <= 0:
        raise ValueError(f"flicker_gain must be positive and finite, got {flicker_gain!r}")
    if not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be >= 0 and finite, got {noise_std!r}")
    check_cif_reference(cif_reference)
    seed = resolve_seed(seed, snapshot)
    spacing = float(snapshot.crack_spacing_um)
    band = 0.25 * spacing if band_um is None else float(band_um)
    if not np.isfinite(band) or band <= 0:
        raise ValueError(f"band_um must be positive and finite, got {band_um!r}")
    px = float(um_per_px)
    precursor = float(snapshot.precursor_opening_um)
    pre_band = float(snapshot.precursor_band_um)
    gap_opening = float(snapshot.crack_width_um)
    opening = precursor + gap_opening
    dmin = float(snapshot.particle_diameter_min_um)
    dmax = float(snapshot.particle_diameter_max_um)
    shift_um = shift * px

    # reference-configuration rectangle of the frame (pixel edges), um
    lo = origin - 0.5 * px - shift_um
    hi = origin + (np.array([h, w]) - 0.5) * px - shift_um
    reach = 2.0 * opening + dmax + 4.0 * px + 3.0 * _SPECKLE_SIGMA_UM
    cover = 5.0 * band + reach  # the opening kernel's support plus the texture margin
    pattern = crack_pattern(spacing_um=spacing, extent_um=tuple(hi - lo + 2 * cover),
                            seed=seed, origin_um=tuple(lo - cover))

    # displacement on the reference pixel grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    grid_um = np.column_stack([origin[0] + rows.ravel() * px, origin[1] + cols.ravel() * px])
    u_grid = pattern.opening_displacement(grid_um, opening_um=gap_opening, band_um=band,
                                       precursor_um=precursor, precursor_band_um=pre_band)
    displacement = (u_grid / px).reshape(h, w, 2) + shift
    displacement = displacement.astype(np.float32)

    # texture drawn at displaced positions (frame px)
    parts, specks = _texture_elements(seed, lo - reach, hi + reach, dmin, dmax)
    centres_ref = np.concatenate([parts[:, :2], specks[:, :2]])
    u_el = pattern.opening_displacement(centres_ref, opening_um=gap_opening, band_um=band,
                                     precursor_um=precursor, precursor_band_um=pre_band)
    centres_px = (centres_ref + u_el - origin) / px + shift
    n_p = len(parts)
    img = np.full((h, w), _MATRIX)
    _splat_discs(img, np.ascontiguousarray(centres_px[:n_p]), parts[:, 2] / (2 * px),
                 np.ascontiguousarray(parts[:, 3]), _MATRIX)
    sigma_px = max(_SPECKLE_SIGMA_UM / px, 0.5)
    _splat_gauss(img, np.ascontiguousarray(centres_px[n_p:]), sigma_px,
                 np.ascontiguousarray(specks[:, 2]))

    rng = noise_generator(seed, snapshot.t_min, *origin, *shift, flicker_gain)
    # visible gaps: bands around the segments, carried by the camera shake
    scale = _gap_scale(pattern, snapshot, lo, hi, cif_reference)
    mask = np.zeros((h, w), dtype=bool)
    if scale > 0:
        ratio, half = pattern.width_ratio(grid_um - shift_um,
                                          max_half_width_um=0.5 * scale * pattern.weights.max() + px)
        ratio = ratio.reshape(h, w)
        half = half.reshape(h, w)
        mask = ratio < scale
        near = np.isfinite(ratio)
        alpha = np.zeros((h, w))
        alpha[near] = np.clip((scale - ratio[near]) * half[near] / px + 0.5, 0.0, 1.0)
        shadow = _SHADOW + np.abs(rng.normal(0.0, float(noise_std), size=(h, w)))
        img = img * (1.0 - alpha) + alpha * shadow

    img *= flicker_gain * illumination_field((h, w), float(illumination_gradient))
    if noise_std > 0:
        img += rng.normal(0.0, float(noise_std), size=(h, w))
    image = quantise(img, bit_depth)

    mids = pattern.midpoints_um
    mids_px = (mids - origin) / px + shift
    inside = np.all((mids_px >= -0.5) & (mids_px < np.array([h, w]) - 0.5), axis=1)
    segs_px = (pattern.segments_um[inside] - origin) / px + shift
    return SurfaceFrame(image=image, displacement_px=displacement, crack_mask=mask,
                        crack_sites_px=mids_px[inside], segments_px=segs_px,
                        segment_weights=pattern.weights[inside].copy(), um_per_px=px,
                        surface_cif=float(mask.mean()), gap_scale_um=scale)
