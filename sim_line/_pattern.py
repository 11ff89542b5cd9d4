"""Seeded mud-crack networks shared by the surface and volume renderers.

The network is the Voronoi tessellation of one jittered seed point per cell of a
global square lattice of pitch ``spacing_um``.  The jitter of lattice cell ``(i, j)``
and the opening weight of the crack between cells ``(i, j)`` and ``(k, l)`` are
hashed from ``(seed, i, j[, k, l])`` only, so the cracks in a physical region depend
on the seed, the spacing and the region alone: two overlapping views (a camera moving
along the web, a CT field of view) see the same cracks.

All lengths are in um; 2D coordinates are (row, col) = (y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray
from scipy.spatial import Voronoi

__all__ = ["CrackPattern", "SegmentQuery", "crack_pattern", "precursor_ramp", "precursor_taper", "taper"]

# Streams of the seeded hashes / generators (sub-seeds derived from one sample seed).
STREAM_POINTS = 1
STREAM_WEIGHTS = 2
STREAM_TEXTURE_2D = 3
STREAM_PARTICLES_3D = 4
STREAM_NOISE = 5

_JITTER = 0.42  # seed point jitter, fraction of the lattice pitch (< 0.5)
_WEIGHT_RANGE = (0.7, 1.3)
_CUTOFF_BANDS = 5.0  # the opening kernel is compactly supported on d < 5 band
# Mean of sum_k w_k * integral(taper) ds per unit area of the network, times spacing
# (measured over 4 x 150^2 cells: crack length 1.972 / spacing, E[w] = 1, mean taper 0.818).
TAPER_LENGTH_PER_AREA = 1.6146
LENGTH_PER_AREA = 1.9719
CIF_REFERENCES = ("view", "pattern")


def check_cif_reference(value) -> str:
    """Validate the ``cif_reference`` option of the renderers."""
    if value not in CIF_REFERENCES:
        raise ValueError(f"cif_reference must be one of {CIF_REFERENCES}, got {value!r}")
    return value


def encode_int(value: int) -> int:
    """Map any Python int to a non-negative int (zig-zag), for seed sequences."""
    value = int(value)
    return 2 * value if value >= 0 else -2 * value - 1


def _zigzag(a: NDArray[np.int64]) -> NDArray[np.uint64]:
    a = np.asarray(a, dtype=np.int64)
    return np.where(a >= 0, 2 * a, -2 * a - 1).astype(np.uint64)


def _hash_uniform(seed: int, stream: int, *keys: NDArray[np.int64]) -> NDArray[np.float64]:
    """Uniform [0, 1) numbers hashed (splitmix64) from the seed, a stream and int keys."""
    mask = np.uint64(0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        h = np.full(np.broadcast(*keys).shape if keys else (), encode_int(seed) & 0xFFFFFFFFFFFFFFFF,
                    dtype=np.uint64)
        for key in (np.uint64(stream), *(_zigzag(k) for k in keys)):
            h = (h ^ key) * np.uint64(0x9E3779B97F4A7C15) & mask
            h ^= h >> np.uint64(30)
            h = h * np.uint64(0xBF58476D1CE4E5B9) & mask
            h ^= h >> np.uint64(27)
            h = h * np.uint64(0x94D049BB133111EB) & mask
            h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def taper(position: NDArray[np.float64] | float) -> NDArray[np.float64]:
    """Opening profile along a crack, ``0.5 + 0.5 sin(pi s)``: 0.5 at the tips, 1 mid-length."""
    return 0.5 + 0.5 * np.sin(np.pi * np.asarray(position, dtype=float))


def precursor_taper(position: NDArray[np.float64] | float) -> NDArray[np.float64]:
    """Opening profile of a precursor along a crack, ``sin(pi s)``: 0 at the tips, 1 mid-length.

    Before a gap forms, each segment of the future network opens like an isolated crack
    with closed tips (the elliptic-like profile of a crack of finite length); the junctions
    only open once the gaps connect (`taper`).
    """
    return np.sin(np.pi * np.asarray(position, dtype=float))


def precursor_ramp(distance_um: NDArray[np.float64] | float, band_um: float) -> NDArray[np.float64]:
    """Share of the precursor opening reached at distance d from the crack line, ``tanh(d / w)``.

    The precursor is a localised tensile strain of the particle network, not a gap: each
    side moves by ``tanh(d / w)`` of its half opening, so the displacement is continuous
    across the line (0 at d = 0: the particles at the line do not separate, no void) and
    the strain ``(delta / 2w) sech^2(d / w)`` peaks at the line (the diffuse-interface
    profile of a regularised crack).  ``w = band_um``: half of the strain lies within
    ``|d| < 0.55 w``, 90 % of the opening is reached at ``|d| = 1.47 w``, 96 % at 2 w.
    """
    return np.tanh(np.abs(np.asarray(distance_um, dtype=float)) / float(band_um))


def taper_integral(s0: NDArray[np.float64], s1: NDArray[np.float64]) -> NDArray[np.float64]:
    """Integral of `taper` over the segment parameter interval [s0, s1]."""
    return 0.5 * (s1 - s0) + (np.cos(np.pi * s0) - np.cos(np.pi * s1)) / (2.0 * np.pi)


def clip_segments(segments: NDArray[np.float64], lo, hi) -> tuple[NDArray, NDArray]:
    """Parameter interval [t0, t1] of each segment inside the rectangle [lo, hi].

    Returns ``t0, t1``, shape (K,); ``t1 <= t0`` where a segment misses the rectangle.
    """
    p0 = segments[:, 0, :]
    d = segments[:, 1, :] - p0
    t0 = np.zeros(len(segments))
    t1 = np.ones(len(segments))
    for ax in range(2):
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = (lo[ax] - p0[:, ax]) / d[:, ax]
            tb = (hi[ax] - p0[:, ax]) / d[:, ax]
        flat = d[:, ax] == 0
        inside = (p0[:, ax] >= lo[ax]) & (p0[:, ax] <= hi[ax])
        ta = np.where(flat, np.where(inside, -np.inf, np.inf), ta)
        tb = np.where(flat, np.where(inside, np.inf, -np.inf), tb)
        t0 = np.maximum(t0, np.minimum(ta, tb))
        t1 = np.minimum(t1, np.maximum(ta, tb))
    return t0, t1


# --------------------------------------------------------------------------- numba kernels


@njit(cache=True)
def _point_segment(y, x, seg, k):
    """Distance, parameter and unit normal (segment -> point) of point (y, x) to seg[k]."""
    ay = seg[k, 0, 0]
    ax = seg[k, 0, 1]
    dy = seg[k, 1, 0] - ay
    dx = seg[k, 1, 1] - ax
    l2 = dy * dy + dx * dx
    t = 0.0
    if l2 > 0.0:
        t = ((y - ay) * dy + (x - ax) * dx) / l2
        t = min(max(t, 0.0), 1.0)
    ry = y - (ay + t * dy)
    rx = x - (ax + t * dx)
    d = np.sqrt(ry * ry + rx * rx)
    if d > 1e-12:
        return d, t, ry / d, rx / d
    ln = np.sqrt(l2)
    if ln > 0.0:
        return d, t, -dx / ln, dy / ln
    return d, t, 1.0, 0.0


@njit(cache=True)
def _bucket_segments(seg, lo0, lo1, cell, n0, n1, pad):
    """CSR table of the segments whose bounding box (grown by pad) touches each bucket."""
    nb = n0 * n1
    counts = np.zeros(nb + 1, np.int64)
    ranges = np.empty((seg.shape[0], 4), np.int64)
    for k in range(seg.shape[0]):
        r0 = (min(seg[k, 0, 0], seg[k, 1, 0]) - pad - lo0) / cell
        r1 = (max(seg[k, 0, 0], seg[k, 1, 0]) + pad - lo0) / cell
        c0 = (min(seg[k, 0, 1], seg[k, 1, 1]) - pad - lo1) / cell
        c1 = (max(seg[k, 0, 1], seg[k, 1, 1]) + pad - lo1) / cell
        i0 = int(np.floor(max(r0, 0.0)))
        i1 = int(np.floor(min(r1, n0 - 1.0)))
        j0 = int(np.floor(max(c0, 0.0)))
        j1 = int(np.floor(min(c1, n1 - 1.0)))
        if r1 < 0.0 or c1 < 0.0 or r0 > n0 or c0 > n1:
            i1 = -1
        ranges[k, 0] = i0
        ranges[k, 1] = i1
        ranges[k, 2] = j0
        ranges[k, 3] = j1
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                counts[i * n1 + j + 1] += 1
    start = np.cumsum(counts)
    items = np.empty(start[-1], np.int64)
    fill = start[:-1].copy()
    for k in range(seg.shape[0]):
        for i in range(ranges[k, 0], ranges[k, 1] + 1):
            for j in range(ranges[k, 2], ranges[k, 3] + 1):
                b = i * n1 + j
                items[fill[b]] = k
                fill[b] += 1
    return start, items


@njit(cache=True)
def _bucket_of(y, x, lo0, lo1, cell, n0, n1):
    i = min(max(int(np.floor((y - lo0) / cell)), 0), n0 - 1)
    j = min(max(int(np.floor((x - lo1) / cell)), 0), n1 - 1)
    return i * n1 + j


@njit(cache=True, parallel=True)
def _field_kernel(pts, seg, amp, amp_pre, band, band_pre, rcut, start, items, lo0, lo1, cell, n0, n1):
    out = np.zeros((pts.shape[0], 2))
    for p in prange(pts.shape[0]):
        b = _bucket_of(pts[p, 0], pts[p, 1], lo0, lo1, cell, n0, n1)
        u0 = 0.0
        u1 = 0.0
        for q in range(start[b], start[b + 1]):
            k = items[q]
            d, t, e0, e1 = _point_segment(pts[p, 0], pts[p, 1], seg, k)
            if d >= rcut:
                continue
            x = d / rcut
            ker = np.exp(-d / band) * (1.0 - x * x) ** 2
            sn = np.sin(np.pi * t)
            a = 0.5 * (amp[k] * (0.5 + 0.5 * sn) + amp_pre[k] * sn * np.tanh(d / band_pre)) * ker
            u0 += a * e0
            u1 += a * e1
        out[p, 0] = u0
        out[p, 1] = u1
    return out


@njit(cache=True, parallel=True)
def _ratio_kernel(pts, seg, weights, start, items, lo0, lo1, cell, n0, n1):
    """Per point min_k d_k / (w_k taper_k / 2) and the w taper / 2 of that segment."""
    n = pts.shape[0]
    ratio = np.full(n, np.inf)
    half = np.zeros(n)
    for p in prange(n):
        b = _bucket_of(pts[p, 0], pts[p, 1], lo0, lo1, cell, n0, n1)
        for q in range(start[b], start[b + 1]):
            k = items[q]
            d, t, e0, e1 = _point_segment(pts[p, 0], pts[p, 1], seg, k)
            h = 0.5 * weights[k] * (0.5 + 0.5 * np.sin(np.pi * t))
            if d < ratio[p] * h:
                ratio[p] = d / h
                half[p] = h
    return ratio, half


@njit(cache=True, parallel=True)
def _nearest_kernel(pts, seg, start, items, lo0, lo1, cell, n0, n1, pad):
    n = pts.shape[0]
    dist = np.full(n, np.inf)
    index = np.full(n, -1, np.int64)
    normal = np.zeros((n, 2))
    pos = np.zeros(n)
    for p in prange(n):
        b = _bucket_of(pts[p, 0], pts[p, 1], lo0, lo1, cell, n0, n1)
        best = np.inf
        for q in range(start[b], start[b + 1]):
            k = items[q]
            d, t, e0, e1 = _point_segment(pts[p, 0], pts[p, 1], seg, k)
            if d < best or (d == best and k < index[p]):
                best = d
                index[p] = k
                pos[p] = t
                normal[p, 0] = e0
                normal[p, 1] = e1
        if best > pad:  # nothing certain in this bucket: exhaustive search
            for k in range(seg.shape[0]):
                d, t, e0, e1 = _point_segment(pts[p, 0], pts[p, 1], seg, k)
                if d < best:
                    best = d
                    index[p] = k
                    pos[p] = t
                    normal[p, 0] = e0
                    normal[p, 1] = e1
        dist[p] = best
    return dist, index, normal, pos


def _grid_for(points: NDArray[np.float64], segments: NDArray[np.float64], *, cell: float, pad: float):
    """Bucket grid over the bounding box of ``points`` with the segments registered."""
    lo = points.min(axis=0) - 1e-9
    hi = points.max(axis=0) + 1e-9
    n = np.maximum(np.ceil((hi - lo) / cell).astype(np.int64), 1)
    # keep the table small for sparse queries spread over a huge area
    while n[0] * n[1] > 4 * max(len(points), 1024):
        cell *= 2.0
        n = np.maximum(np.ceil((hi - lo) / cell).astype(np.int64), 1)
    start, items = _bucket_segments(segments, lo[0], lo[1], cell, int(n[0]), int(n[1]), pad)
    return start, items, float(lo[0]), float(lo[1]), float(cell), int(n[0]), int(n[1])


def _as_points(points_um) -> NDArray[np.float64]:
    pts = np.ascontiguousarray(points_um, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points_um must have shape (N, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points_um must be finite")
    return pts


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class SegmentQuery:
    """Nearest crack segment of each query point.

    Attributes
    ----------
    distance_um : ndarray, shape (N,)
        Distance to the nearest segment, um.
    index : ndarray of int64, shape (N,)
        Index of that segment in `CrackPattern.segments_um`.
    normal : ndarray, shape (N, 2)
        Unit vector (row, col) from the closest point of the segment to the query
        point (the segment's left normal for points exactly on it).
    position : ndarray, shape (N,)
        Position of the closest point along the segment, 0 (first end) to 1.
    """

    distance_um: NDArray[np.float64]
    index: NDArray[np.int64]
    normal: NDArray[np.float64]
    position: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class CrackPattern:
    """A mud-crack network (Voronoi edges) over a rectangle plus a margin.

    Attributes
    ----------
    segments_um : ndarray, shape (K, 2, 2)
        Segment end points (row, col), um; end points in lexicographic order, segments
        sorted by the lattice cells they separate (independent of the view).
    weights : ndarray, shape (K,)
        Per-segment opening factor, uniform in [0.7, 1.3], hashed from the seed and the
        two lattice cells of the segment.
    length_per_area_per_um : float
        Crack length per unit area inside the extent (margin excluded), 1/um.
    spacing_um, seed, origin_um, extent_um
        The arguments of `crack_pattern`.
    """

    segments_um: NDArray[np.float64]
    weights: NDArray[np.float64]
    length_per_area_per_um: float
    spacing_um: float
    seed: int
    origin_um: tuple[float, float]
    extent_um: tuple[float, float]

    @property
    def midpoints_um(self) -> NDArray[np.float64]:
        """Segment mid points (row, col), um, shape (K, 2)."""
        return self.segments_um.mean(axis=1)

    @property
    def lengths_um(self) -> NDArray[np.float64]:
        """Segment lengths, um, shape (K,)."""
        return np.linalg.norm(self.segments_um[:, 1] - self.segments_um[:, 0], axis=1)

    def nearest(self, points_um: NDArray[np.float64]) -> SegmentQuery:
        """Nearest segment of each point (exact; bucketed search).

        Parameters
        ----------
        points_um : array_like, shape (N, 2)
            Query points (row, col), um; anywhere (points far outside the pattern fall
            back to an exhaustive search).

        Returns
        -------
        SegmentQuery
        """
        pts = _as_points(points_um)
        if len(self.segments_um) == 0 or len(pts) == 0:
            n = len(pts)
            return SegmentQuery(np.full(n, np.inf), np.full(n, -1, np.int64),
                                np.zeros((n, 2)), np.zeros(n))
        pad = 0.5 * self.spacing_um
        grid = _grid_for(pts, self.segments_um, cell=pad, pad=pad)
        dist, index, normal, pos = _nearest_kernel(pts, self.segments_um, *grid, pad)
        return SegmentQuery(dist, index, normal, pos)

    def opening_displacement(self, points_um: NDArray[np.float64], *, opening_um: float,
                             band_um: float, precursor_um: float = 0.0,
                             precursor_band_um: float | None = None) -> NDArray[np.float64]:
        """In-plane displacement of material points by the opening of the cracks.

        Each segment pushes the material on its two sides apart along the direction
        from the segment to the point, by half of

            ``weight * (opening_um * taper(s) + precursor_um * precursor_taper(s) * ramp(d))``

        times a kernel of the distance d, ``ker(d) = exp(-d / band) * (1 - (d / 5 band)^2)^2``
        (compact support, 1 at the crack), with ``ramp(d) = tanh(d / w)``,
        ``w = precursor_band_um`` (`precursor_ramp`).  The contributions of all segments add.

        * The gap part (``opening_um``) jumps across segment k by exactly
          ``weight_k * opening_um * taper(s)``: the visible gap.
        * The precursor part is continuous across the line (0 at d = 0: the particles at
          the line do not separate, no void): a tensile strain localised in a band of
          width ~w.  Across segment k alone, the points at +-d move apart by
          ``weight_k * precursor_um * precursor_taper(s) * ramp(d) * ker(d)``: by the full
          ``weight_k * precursor_um * precursor_taper(s)`` for ``w << d << band`` (at
          d = 2 w: ``0.96 ker(2 w)`` of it).  It vanishes at the junctions, so before the
          gaps open the largest displacement is at the middle of each crack, as in the
          published DVC; next to the crack it peaks ~2 w from the line.

        The field is continuous off the cracks.

        Parameters
        ----------
        points_um : array_like, shape (N, 2)
            Reference positions (row, col), um.
        opening_um : float
            Relative opening (visible gap) of a crack of weight 1 at mid-length, um (>= 0);
            `taper` profile (half of it at the junctions).
        band_um : float
            Decay length of the displacement away from a crack, um (> 0).
        precursor_um : float, optional
            Relative opening of the precursor (no gap) of a crack of weight 1 at
            mid-length, um (>= 0); `precursor_taper` profile (closed at the junctions).
        precursor_band_um : float, optional
            Localisation width w of the precursor's strain band, um (> 0); required when
            ``precursor_um > 0``.

        Returns
        -------
        ndarray, shape (N, 2)
            Displacement (row, col), um; exactly zero when both openings are zero.
        """
        pts = _as_points(points_um)
        if not np.isfinite(opening_um) or opening_um < 0:
            raise ValueError(f"opening_um must be finite and >= 0, got {opening_um}")
        if not np.isfinite(precursor_um) or precursor_um < 0:
            raise ValueError(f"precursor_um must be finite and >= 0, got {precursor_um}")
        if not np.isfinite(band_um) or band_um <= 0:
            raise ValueError(f"band_um must be finite and > 0, got {band_um}")
        if precursor_band_um is None:
            if precursor_um > 0:
                raise ValueError("precursor_band_um (the precursor's strain band width, um) is required "
                                 "when precursor_um > 0")
            precursor_band_um = 1.0  # unused: the precursor part is zero
        if not np.isfinite(precursor_band_um) or precursor_band_um <= 0:
            raise ValueError(f"precursor_band_um must be finite and > 0, got {precursor_band_um}")
        out = np.zeros((len(pts), 2))
        if (opening_um == 0 and precursor_um == 0) or len(self.segments_um) == 0 or len(pts) == 0:
            return out
        rcut = _CUTOFF_BANDS * band_um
        grid = _grid_for(pts, self.segments_um, cell=0.5 * rcut, pad=rcut)
        amp = opening_um * self.weights
        amp_pre = precursor_um * self.weights
        return _field_kernel(pts, self.segments_um, amp, amp_pre, float(band_um), float(precursor_band_um),
                             rcut, *grid)

    def width_ratio(self, points_um: NDArray[np.float64], *,
                    max_half_width_um: float) -> tuple[NDArray, NDArray]:
        """Gap test helper: ``min_k d_k / (w_k taper_k(s) / 2)`` per point.

        A point lies in the gap of a crack network whose half width is
        ``A * w_k * taper_k(s) / 2`` (A a common width scale, um) iff its ratio < A.
        Segments farther than ``max_half_width_um`` are ignored (ratio inf).

        Returns
        -------
        ratio : ndarray, shape (N,)
            The ratio, um (inf where no segment is within ``max_half_width_um``).
        half : ndarray, shape (N,)
            ``w taper / 2`` of the segment attaining the ratio (0 where none).
        """
        pts = _as_points(points_um)
        n = len(pts)
        if len(self.segments_um) == 0 or n == 0 or max_half_width_um <= 0:
            return np.full(n, np.inf), np.zeros(n)
        pad = float(max_half_width_um) + 1e-9
        cell = max(pad, 0.25 * self.spacing_um)
        grid = _grid_for(pts, self.segments_um, cell=cell, pad=pad)
        ratio, half = _ratio_kernel(pts, self.segments_um, self.weights, *grid)
        far = np.isfinite(ratio)
        far[far] = ratio[far] * half[far] > pad
        ratio[far] = np.inf
        return ratio, half

    def taper_length_in(self, lo, hi, *, reference: str = "view") -> float:
        """``sum_k w_k * integral of taper ds`` over the parts of segments inside [lo, hi], um.

        ``reference="pattern"`` returns the network's mean value for that area instead
        (``1.6146 / spacing * area``), the same for every view.
        """
        if reference == "pattern":
            return TAPER_LENGTH_PER_AREA / self.spacing_um * float(np.prod(np.subtract(hi, lo)))
        if len(self.segments_um) == 0:
            return 0.0
        t0, t1 = clip_segments(self.segments_um, np.asarray(lo, float), np.asarray(hi, float))
        ok = t1 > t0
        if not np.any(ok):
            return 0.0
        integ = taper_integral(t0[ok], t1[ok]) * self.lengths_um[ok] * self.weights[ok]
        return float(integ.sum())


# --------------------------------------------------------------------------- constructor


def check_pair(name: str, value, *, positive: bool) -> tuple[float, float]:
    """Validate a pair of finite floats (``positive``: both > 0); ValueError naming ``name``."""
    try:
        pair = tuple(float(v) for v in value)
    except TypeError as exc:
        raise ValueError(f"{name} must be a pair of numbers, got {value!r}") from exc
    if len(pair) != 2 or not all(np.isfinite(pair)):
        raise ValueError(f"{name} must be a pair of finite numbers, got {value!r}")
    if positive and min(pair) <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair  # type: ignore[return-value]


def crack_pattern(*, spacing_um: float, extent_um: tuple[float, float], seed: int,
                  origin_um: tuple[float, float] = (0.0, 0.0)) -> CrackPattern:
    """Seeded mud-crack network covering a rectangle.

    Parameters
    ----------
    spacing_um : float
        Mean cell size of the network (one Voronoi cell per ``spacing_um**2``), um.
    extent_um : tuple of float
        Size (rows, cols) of the rectangle, um.
    seed : int
        Seed of the sample.
    origin_um : tuple of float, optional
        Position (row, col) of the rectangle's low corner, um.

    Returns
    -------
    CrackPattern
        All Voronoi edges that touch the rectangle grown by one spacing on each side.

    Raises
    ------
    ValueError
        If ``spacing_um`` is not positive and finite, ``extent_um`` not two positive
        numbers, ``origin_um`` not two finite numbers or ``seed`` not an int.

    Notes
    -----
    Lattice cell (i, j) covers ``[i, i+1) x [j, j+1)`` spacings and holds one seed point
    jittered by up to +-0.42 spacing around its centre, hashed from (seed, i, j).  The
    Voronoi diagram is built from the cells around the rectangle with three cells of
    padding, so the edges near the rectangle are those of the infinite pattern.

    Examples
    --------
    >>> p = crack_pattern(spacing_um=200.0, extent_um=(1000.0, 1000.0), seed=1)
    >>> p.segments_um.shape[1:]
    (2, 2)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not np.isfinite(spacing_um) or spacing_um <= 0:
        raise ValueError(f"spacing_um must be positive and finite, got {spacing_um!r}")
    extent = check_pair("extent_um", extent_um, positive=True)
    origin = check_pair("origin_um", origin_um, positive=False)
    s = float(spacing_um)
    lo = np.asarray(origin) - s
    hi = np.asarray(origin) + np.asarray(extent) + s
    i0, j0 = np.floor(lo / s).astype(np.int64) - 3
    i1, j1 = np.floor(hi / s).astype(np.int64) + 3
    ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1), indexing="ij")
    ii = ii.ravel()
    jj = jj.ravel()
    jr = _hash_uniform(int(seed), STREAM_POINTS, ii, jj, np.zeros_like(ii))
    jc = _hash_uniform(int(seed), STREAM_POINTS, ii, jj, np.ones_like(ii))
    # points relative to the lattice corner keep qhull well conditioned far along a web
    base = np.array([i0, j0], dtype=float) * s
    pts = np.column_stack([(ii - i0 + 0.5 + _JITTER * (2 * jr - 1)) * s,
                           (jj - j0 + 0.5 + _JITTER * (2 * jc - 1)) * s])
    vor = Voronoi(pts)
    rv = np.asarray(vor.ridge_vertices, dtype=np.int64)
    rp = np.asarray(vor.ridge_points, dtype=np.int64)
    finite = np.all(rv >= 0, axis=1)
    rv, rp = rv[finite], rp[finite]
    seg = vor.vertices[rv] + base  # (M, 2, 2)
    t0, t1 = clip_segments(seg, lo, hi)
    keep = t1 >= t0
    seg, rp = seg[keep], rp[keep]
    # canonical end-point order and segment order (view independent)
    swap = (seg[:, 0, 0] > seg[:, 1, 0]) | ((seg[:, 0, 0] == seg[:, 1, 0]) & (seg[:, 0, 1] > seg[:, 1, 1]))
    seg[swap] = seg[swap][:, ::-1]
    ca = np.column_stack([ii[rp[:, 0]], jj[rp[:, 0]]])
    cb = np.column_stack([ii[rp[:, 1]], jj[rp[:, 1]]])
    first = (ca[:, 0] < cb[:, 0]) | ((ca[:, 0] == cb[:, 0]) & (ca[:, 1] < cb[:, 1]))
    c1 = np.where(first[:, None], ca, cb)
    c2 = np.where(first[:, None], cb, ca)
    order = np.lexsort((c2[:, 1], c2[:, 0], c1[:, 1], c1[:, 0]))
    seg, c1, c2 = seg[order], c1[order], c2[order]
    u = _hash_uniform(int(seed), STREAM_WEIGHTS, c1[:, 0], c1[:, 1], c2[:, 0], c2[:, 1])
    weights = _WEIGHT_RANGE[0] + (_WEIGHT_RANGE[1] - _WEIGHT_RANGE[0]) * u
    seg = np.ascontiguousarray(seg)
    t0, t1 = clip_segments(seg, np.asarray(origin), np.asarray(origin) + np.asarray(extent))
    inside = np.clip(t1 - t0, 0.0, None) * np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
    lpa = float(inside.sum() / (extent[0] * extent[1]))
    return CrackPattern(segments_um=seg, weights=weights, length_per_area_per_um=lpa,
                        spacing_um=s, seed=int(seed), origin_um=origin, extent_um=extent)


# --------------------------------------------------------------------------- shared helpers


def tile_generators(seed: int, stream: int, lo, hi, tile_um: float):
    """Seeded generators of the lattice tiles (pitch ``tile_um``) touching [lo, hi].

    Yields ``(corner_um, rng)``: the low (row, col) corner of the tile, um, and a
    ``numpy.random.Generator`` seeded from (seed, stream, tile indices) only.
    """
    i0, j0 = np.floor(np.asarray(lo, float) / tile_um).astype(np.int64)
    i1, j1 = np.floor(np.asarray(hi, float) / tile_um).astype(np.int64)
    key = encode_int(seed)
    for i in range(int(i0), int(i1) + 1):
        for j in range(int(j0), int(j1) + 1):
            rng = np.random.default_rng([key, stream, encode_int(i), encode_int(j)])
            yield np.array([i * tile_um, j * tile_um]), rng


def resolve_seed(seed, snapshot) -> int:
    """``seed`` if given (an int), else ``snapshot.seed``."""
    if seed is None:
        seed = snapshot.seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    return int(seed)


def check_snapshot(snapshot) -> None:
    """Validate the fields of a FilmSnapshot the renderers use (ValueError naming them)."""
    from ._snapshot import FilmSnapshot

    if not isinstance(snapshot, FilmSnapshot):
        raise ValueError(f"snapshot must be a FilmSnapshot, got {type(snapshot).__name__}")
    positive = ("crack_spacing_um", "particle_diameter_min_um", "particle_diameter_max_um", "precursor_band_um")
    non_negative = ("precursor_opening_um", "crack_width_um", "solid_thickness_um",
                    "solvent_level_um", "delamination_gap_um", "bubble_radius_um")
    fractions = ("porosity", "cif_2d_top", "cif_2d_base", "delamination_fraction",
                 "bubble_height_frac")
    for name in positive + non_negative + fractions + ("cif_2d_exponent",):
        value = float(getattr(snapshot, name))
        if not np.isfinite(value):
            raise ValueError(f"snapshot.{name} must be finite, got {value}")
        if name in positive and value <= 0:
            raise ValueError(f"snapshot.{name} must be > 0, got {value}")
        if name in non_negative and value < 0:
            raise ValueError(f"snapshot.{name} must be >= 0, got {value}")
        if name in fractions and not 0.0 <= value <= 1.0:
            raise ValueError(f"snapshot.{name} must be in [0, 1], got {value}")
    if snapshot.particle_diameter_max_um < snapshot.particle_diameter_min_um:
        raise ValueError("snapshot.particle_diameter_max_um must be >= particle_diameter_min_um")
