"""Surface crack analytics: segment mud cracks in camera frames and measure the network.

A surface camera sees mud cracks as dark, thin, elongated gaps on a particle-speckle
texture under uneven illumination.  `segment_cracks` turns a frame into a boolean crack
mask, `crack_metrics` measures a mask (area fraction, skeleton length, widths, network
topology, orientation), `analyse_sequence` tabulates a drying sequence and
`first_visible_time` reads the first frame in which the segmentation sees a crack.

Pixel (r, c) is row r, column c; lengths and widths are returned in um using the
caller's ``um_per_px``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

__all__ = ["CrackMetrics", "analyse_sequence", "crack_metrics", "first_visible_time",
           "segment_cracks"]

_EIGHT = np.ones((3, 3), dtype=bool)
_SQRT2 = math.sqrt(2.0)

# Segmentation constants, in units of the background (bright-particle) level of the
# flattened frame: particles ~ 0.75-1, the carbon-binder matrix between them ~ 0.3,
# an open gap ~ 0.05 (it shows the substrate shadow).
_BACKGROUND_PERCENTILE = 90.0
_LINE_LENGTH_UM = 60.0  # length of the oriented averaging line (several particle sizes)
_N_ORIENTATIONS = 16
_STRONG = 0.14  # oriented-mean level that seeds a crack (sensitivity 1)
_WEAK = 0.20  # oriented-mean level a crack may grow through (hysteresis)
_PIXEL = 0.16  # per-pixel level: half way between gap and matrix (mask edge)
_MIN_ELONGATION = 4.0  # skeleton length / mean width of a kept component


# ----------------------------------------------------------------------------- checks


def _check_image(image: ArrayLike, name: str = "image") -> NDArray[np.float32]:
    """Validate a 2D grey-level image and return it as float32 (never a view)."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D array (H, W), got shape {arr.shape}")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ValueError(f"{name} must be at least 8 x 8 px, got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be an integer or float array, got dtype {arr.dtype}")
    out = arr.astype(np.float32, copy=True)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return out


def _check_mask(mask: ArrayLike, name: str = "mask") -> NDArray[np.bool_]:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D array (H, W), got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")
    return arr.astype(bool, copy=True)


def _check_positive(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from exc
    if isinstance(value, bool) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


# ----------------------------------------------------------------------------- segmentation


def _background(img: NDArray[np.float32], block: int) -> NDArray[np.float32]:
    """Large-scale bright level: block-wise high percentile, median-cleaned, smoothed.

    A high percentile of a block is the particle brightness there whatever the share of
    dark crack pixels (cracks never fill a block that is a few widths wide), so dividing
    by it removes illumination gradients, vignetting and flicker.
    """
    h, w = img.shape
    nby, nbx = max(1, round(h / block)), max(1, round(w / block))
    by, bx = -(-h // nby), -(-w // nbx)
    pad = np.pad(img, ((0, nby * by - h), (0, nbx * bx - w)), mode="reflect")
    blocks = pad.reshape(nby, by, nbx, bx).transpose(0, 2, 1, 3).reshape(nby, nbx, -1)
    grid = np.percentile(blocks, _BACKGROUND_PERCENTILE, axis=2).astype(np.float32)
    if min(nby, nbx) >= 3:
        grid = ndi.median_filter(grid, size=3, mode="nearest")
    # smooth at 1/16 of the block (the level varies over blocks, not pixels), then upsample:
    # the same surface within ~1e-3 (~1 % at the frame's border), at 1/50 of the cost of a
    # full-resolution Gaussian of sigma = block / 2 (that blur was 40 % of a 1 MP estimate)
    f = max(1, block // 16)
    hs, ws = -(-nby * by // f), -(-nbx * bx // f)
    small = cv2.resize(grid, (ws, hs), interpolation=cv2.INTER_LINEAR)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=0.5 * block / f, borderType=cv2.BORDER_REFLECT)
    bg = cv2.resize(small, (ws * f, hs * f), interpolation=cv2.INTER_LINEAR)[:h, :w]
    floor = max(float(np.percentile(grid, 50)) * 1e-3, 1e-12)
    return np.maximum(bg, floor)


def _line_kernels(length: int, n: int) -> list[NDArray[np.float32]]:
    """Normalised straight-line averaging kernels, ``length`` px, ``n`` orientations."""
    kernels = []
    half = (length - 1) / 2.0
    for k in range(n):
        theta = math.pi * k / n
        ker = np.zeros((length, length), dtype=np.float32)
        # sample the line densely and splat bilinearly: a smooth, symmetric kernel
        s = np.linspace(-half, half, 4 * length)
        r = half - s * math.sin(theta)
        c = half + s * math.cos(theta)
        r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
        fr, fc = r - r0, c - c0
        for dr, dc, wgt in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)),
                            (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
            rr, cc = np.clip(r0 + dr, 0, length - 1), np.clip(c0 + dc, 0, length - 1)
            np.add.at(ker, (rr, cc), wgt)
        kernels.append(ker / ker.sum())
    return kernels


def _oriented_min_mean(flat: NDArray[np.float32], length: int) -> NDArray[np.float32]:
    """Darkest straight-line mean through every pixel (min over orientations)."""
    out = None
    for ker in _line_kernels(length, _N_ORIENTATIONS):
        resp = cv2.filter2D(flat, -1, ker, borderType=cv2.BORDER_REFLECT)
        out = resp if out is None else np.minimum(out, resp)
    return out


def _component_shape(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int, NDArray, NDArray]:
    """Labels and, per label, skeleton length (px) and area (px) of a mask."""
    labels, n = ndi.label(mask, structure=_EIGHT)
    skel = skeletonize(mask)
    area = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
    length = np.bincount(labels[skel], minlength=n + 1).astype(float)
    return labels, n, area, length


def segment_cracks(image: ArrayLike, *, um_per_px: float, min_length_um: float | None = None,
                   max_width_um: float | None = None, sensitivity: float = 1.0) -> NDArray[np.bool_]:
    """Segment the visible crack gaps of a surface camera frame.

    Parameters
    ----------
    image : ndarray, shape (H, W), uint8, uint16 or float
        Grey-level frame (any scale: the level is normalised by the frame itself).
    um_per_px : float
        Pixel size, um.
    min_length_um : float, optional
        Shortest crack kept (skeleton length of a connected component), um.  None gives
        ``max(100 um, 12 px)``: several particle diameters, so the dark matrix gaps between
        particles are never kept.
    max_width_um : float, optional
        Widest crack expected, um.  It sets the scale of the illumination estimate (a
        block at least 4 widths wide); None gives ``max(200 um, 8 px)``.
    sensitivity : float, optional
        Scales the darkness thresholds (> 0).  1 is tuned for gaps that show the dark
        substrate; larger values accept paler (narrower, partly resolved) cracks at the
        cost of more false detections on dark texture.

    Returns
    -------
    ndarray, shape (H, W), bool
        True on crack gap pixels.

    Raises
    ------
    ValueError
        If ``image`` is not a finite 2D numeric array of at least 8 x 8 px, or a
        numeric option is not positive (the message names it).

    Notes
    -----
    1. Flattening: the frame is divided by a smooth estimate of its bright (particle)
       level, the 90th percentile of blocks several crack widths wide, median-cleaned,
       interpolated and Gaussian smoothed.  Illumination gradients, vignetting, flicker
       and the bit depth drop out; levels are then fractions of the particle level.
    2. Line filter: the darkest mean along a straight line of ~60 um (16 orientations)
       through each pixel.  Along a crack this stays at the gap level; in the speckle
       texture the line crosses bright particles, so isolated dark matrix pixels and
       speckle are lifted well above it, and sensor noise is averaged down.
    3. Hysteresis on that response (seeds at 0.14, growth up to 0.20, both times
       ``sensitivity``) gives the crack network; pixels are then kept where the lightly
       smoothed flattened level is below 0.16 (half way between gap and matrix, so the
       mask edge sits where half of a pixel is gap), within one pixel of the network.
    4. Components shorter than ``min_length_um`` (skeleton length) or less elongated
       than 4 (skeleton length over mean width) are dropped.

    Examples
    --------
    >>> import sim_line
    >>> snap = sim_line.simulate_lab(300, seed=0).snapshot_at(60.0)
    >>> frame = sim_line.render_surface(snap, seed=0)
    >>> mask = segment_cracks(frame.image, um_per_px=5.0)
    >>> bool(abs(mask.mean() - frame.surface_cif) < 0.03)
    True
    """
    img = _check_image(image)
    px = _check_positive("um_per_px", um_per_px)
    min_len = _check_positive("min_length_um", min_length_um, allow_none=True)
    max_w = _check_positive("max_width_um", max_width_um, allow_none=True)
    sens = _check_positive("sensitivity", sensitivity)
    min_len_px = max(100.0 / px, 12.0) if min_len is None else min_len / px
    max_w_px = max(200.0 / px, 8.0) if max_w is None else max_w / px

    block = int(np.clip(round(4 * max_w_px), 32, max(32, min(img.shape) // 2)))
    flat = img / _background(img, block)
    length = int(np.clip(round(_LINE_LENGTH_UM / px), 7, 21)) | 1
    line = _oriented_min_mean(flat, length)

    strong = line < _STRONG * sens
    weak = line < _WEAK * sens
    lab, n = ndi.label(weak, structure=_EIGHT)
    # a crack is a line of seeds, not a dark speck: ask for half a minimum length of them
    keep = np.bincount(lab[strong], minlength=n + 1) >= 0.5 * min_len_px
    keep[0] = False
    network = keep[lab]
    if not network.any():
        return network

    smooth = cv2.GaussianBlur(flat, (0, 0), sigmaX=0.6, borderType=cv2.BORDER_REFLECT)
    near = cv2.dilate(network.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    mask = near & (smooth < _PIXEL * sens)
    mask |= network & (line < _STRONG * sens)
    mask |= _edge_pixels(flat, mask)
    mask = ndi.binary_fill_holes(mask) & ~_large_holes(mask, max_w_px)

    labels, n, area, skel_len = _component_shape(mask)
    width = area / np.maximum(skel_len, 1.0)
    ok = (skel_len >= min_len_px) & (skel_len >= _MIN_ELONGATION * width)
    ok[0] = False
    return ok[labels]


def _edge_pixels(flat: NDArray[np.float32], core: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Partly covered pixels next to the gap whose covered share is over one half.

    An edge pixel reads ``(1 - a) T + a S`` with S the gap level and T the texture just
    outside (estimated by the brightest non-gap 3 x 3 neighbour); its centre lies in the
    gap when a > 1/2, i.e. when it is darker than (T + S) / 2.
    """
    if not core.any():
        return core
    u8 = core.view(np.uint8)
    ring = cv2.dilate(u8, np.ones((3, 3), np.uint8)).astype(bool) & ~core
    gap = float(np.median(flat[core]))
    outside = np.where(core, np.float32(0.0), flat)
    box = np.ones((3, 3), np.float32)
    total = cv2.filter2D(outside, -1, box, borderType=cv2.BORDER_REFLECT)
    count = cv2.filter2D((~core).astype(np.float32), -1, box, borderType=cv2.BORDER_REFLECT)
    texture = total / np.maximum(count, 1.0)
    return ring & (flat < 0.5 * (texture + gap))


def _large_holes(mask: NDArray[np.bool_], max_width_px: float) -> NDArray[np.bool_]:
    """Holes of ``mask`` larger than a few px (real cells), to keep them open."""
    holes = ndi.binary_fill_holes(mask) & ~mask
    lab, n = ndi.label(holes)
    if n == 0:
        return holes
    size = np.bincount(lab.ravel(), minlength=n + 1)
    big = size > 4
    big[0] = False
    return big[lab]


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class CrackMetrics:
    """Measurements of a crack mask.

    Attributes
    ----------
    surface_cif : float
        Crack area fraction of the frame (surface crack intensity factor), 0-1.
    total_length_um : float
        Skeleton length of the network, um (diagonal steps count sqrt(2) px).
    mean_width_um, max_width_um : float
        Mean and maximum crack width, um: ``2 d - 1`` px with d the Euclidean distance
        transform of the mask sampled on the skeleton (0 when there is no crack).
    n_segments : int
        Skeleton branches between junctions and end points (a closed loop counts 1).
    n_junctions : int
        Junctions: 8-connected clusters of skeleton pixels with more than 2 skeleton
        neighbours.
    n_endpoints : int
        Skeleton pixels with exactly one skeleton neighbour.
    orientation_hist_um : tuple of float
        Skeleton length (um) per orientation bin; bin k covers
        ``[k, k + 1) * 180 / orientation_bins`` degrees, measured from the image column
        (x) axis counter-clockwise as displayed (rows grow downwards).
    orientation_edges_deg : tuple of float
        The ``orientation_bins + 1`` bin edges, degrees.
    um_per_px : float
        Pixel size used, um.
    """

    surface_cif: float
    total_length_um: float
    mean_width_um: float
    max_width_um: float
    n_segments: int
    n_junctions: int
    n_endpoints: int
    orientation_hist_um: tuple[float, ...] = field(default=())
    orientation_edges_deg: tuple[float, ...] = field(default=())
    um_per_px: float = 1.0

    @property
    def dominant_orientation_deg(self) -> float:
        """Centre of the orientation bin with most crack length, degrees (NaN if none)."""
        hist = np.asarray(self.orientation_hist_um)
        if hist.size == 0 or hist.sum() <= 0:
            return float("nan")
        k = int(np.argmax(hist))
        return 0.5 * (self.orientation_edges_deg[k] + self.orientation_edges_deg[k + 1])

    def as_dict(self) -> dict[str, float | int]:
        """Flat table row: scalar fields plus one ``orient_<lo>_<hi>_um`` column per bin."""
        row = {k: v for k, v in asdict(self).items()
               if k not in ("orientation_hist_um", "orientation_edges_deg")}
        edges = self.orientation_edges_deg
        for k, v in enumerate(self.orientation_hist_um):
            row[f"orient_{edges[k]:g}_{edges[k + 1]:g}_um"] = v
        return row


def _neighbour_count(skel: NDArray[np.bool_]) -> NDArray[np.int32]:
    s = skel.astype(np.int32)
    cnt = ndi.convolve(s, np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]]), mode="constant")
    return np.where(skel, cnt, 0)


def _link_lengths(skel: NDArray[np.bool_]) -> tuple[NDArray[np.float64], float]:
    """Per-pixel half of its link lengths (px) and the total skeleton length (px).

    Orthogonal links count 1, diagonal links sqrt(2), except a diagonal link whose two
    endpoints are already joined through a shared orthogonal neighbour (a staircase
    corner: counting it too would add length that is not there).
    """
    s = np.pad(skel, 1)
    per = np.zeros(s.shape, dtype=np.float64)
    # orthogonal links: right and down
    for dr, dc in ((0, 1), (1, 0)):
        a = s[1:-1, 1:-1] & np.roll(s, (-dr, -dc), axis=(0, 1))[1:-1, 1:-1]
        per[1:-1, 1:-1] += 0.5 * a
        per[1 + dr:s.shape[0] - 1 + dr, 1 + dc:s.shape[1] - 1 + dc] += 0.5 * a
    # diagonal links: down-right and down-left
    for dc in (1, -1):
        b = np.roll(s, (-1, -dc), axis=(0, 1))  # pixel (r+1, c+dc)
        side1 = np.roll(s, (-1, 0), axis=(0, 1))  # (r+1, c)
        side2 = np.roll(s, (0, -dc), axis=(0, 1))  # (r, c+dc)
        a = (s & b & ~side1 & ~side2)[1:-1, 1:-1]
        per[1:-1, 1:-1] += 0.5 * _SQRT2 * a
        per[2:, 1 + dc:s.shape[1] - 1 + dc] += 0.5 * _SQRT2 * a
    per = per[1:-1, 1:-1]
    return per, float(per.sum())


def _local_orientation_deg(skel: NDArray[np.bool_], sigma_px: float = 2.0) -> NDArray[np.float64]:
    """Orientation of the skeleton (degrees in [0, 180)) from a smoothed structure tensor."""
    f = ndi.gaussian_filter(skel.astype(np.float64), 1.0)
    gr = ndi.sobel(f, axis=0)
    gc = ndi.sobel(f, axis=1)
    jrr = ndi.gaussian_filter(gr * gr, sigma_px)
    jcc = ndi.gaussian_filter(gc * gc, sigma_px)
    jrc = ndi.gaussian_filter(gr * gc, sigma_px)
    # dominant gradient (normal) direction in (x=col, y=-row) coordinates; the line
    # direction is perpendicular to it
    normal = 0.5 * np.arctan2(2.0 * (-jrc), jcc - jrr)
    return np.mod(np.degrees(normal) + 90.0, 180.0)


def _topology(skel: NDArray[np.bool_]) -> tuple[int, int, int]:
    """(segments, junctions, end points) of a one-pixel-wide skeleton."""
    nb = _neighbour_count(skel)
    junction_px = skel & (nb > 2)
    ends = int(np.count_nonzero(skel & (nb == 1)))
    _, n_junctions = ndi.label(junction_px, structure=_EIGHT)
    _, n_segments = ndi.label(skel & ~junction_px, structure=_EIGHT)
    return n_segments, n_junctions, ends


def _prune_spurs(skel: NDArray[np.bool_], dist: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Remove end branches no longer than the crack half-width at their junction.

    Such spurs come from the roughness of the mask edge, not from a crack branch.
    """
    skel = skel.copy()
    for _ in range(3):
        nb = _neighbour_count(skel)
        junction_px = skel & (nb > 2)
        if not junction_px.any():
            break
        branches, n = ndi.label(skel & ~junction_px, structure=_EIGHT)
        if n == 0:
            break
        size = np.bincount(branches.ravel(), minlength=n + 1)
        has_end = np.zeros(n + 1, dtype=bool)
        has_end[branches[skel & (nb == 1)]] = True
        # half-width at the junction the branch touches
        jdist = np.where(junction_px, dist, 0.0)
        near_j = ndi.maximum_filter(jdist, size=3)
        reach = np.zeros(n + 1)
        np.maximum.at(reach, branches[branches > 0], near_j[branches > 0])
        touches = reach > 0
        spur = has_end & touches & (size <= reach + 1)
        spur[0] = False
        if not spur.any():
            break
        skel &= ~spur[branches]
        skel = skeletonize(skel)
    return skel


def crack_metrics(mask: ArrayLike, *, um_per_px: float, orientation_bins: int = 12) -> CrackMetrics:
    """Measure a crack mask: area fraction, length, widths, network, orientation.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
        Crack pixels (e.g. from `segment_cracks`).
    um_per_px : float
        Pixel size, um.
    orientation_bins : int, optional
        Number of orientation bins over [0, 180) degrees.

    Returns
    -------
    CrackMetrics

    Raises
    ------
    ValueError
        If ``mask`` is not 2D boolean (or 0/1), ``um_per_px`` is not positive or
        ``orientation_bins`` is not a positive integer.

    Notes
    -----
    The skeleton is that of `skimage.morphology.skeletonize`, with end branches no
    longer than the local half-width removed (edge-roughness spurs).  Length counts
    orthogonal steps 1 px and diagonal steps sqrt(2) px.  Width at a skeleton pixel is
    ``2 d - 1`` px, d its distance to the nearest background pixel centre: a band n px
    wide (odd n) has d = (n + 1) / 2 on its centre line, so this is exact for odd and
    half a pixel low on average for even widths.  Orientation comes from the structure
    tensor of the skeleton (2 px integration scale), weighted by skeleton length.

    Examples
    --------
    >>> m = np.zeros((64, 64), bool)
    >>> m[31:34, 8:56] = True  # a 3 px wide, 48 px long band
    >>> met = crack_metrics(m, um_per_px=2.0)
    >>> met.n_segments, met.n_junctions, met.max_width_um
    (1, 0, 6.0)
    """
    m = _check_mask(mask)
    px = _check_positive("um_per_px", um_per_px)
    if isinstance(orientation_bins, bool) or not isinstance(orientation_bins, (int, np.integer)) \
            or orientation_bins < 1:
        raise ValueError(f"orientation_bins must be a positive int, got {orientation_bins!r}")
    nbins = int(orientation_bins)
    edges = tuple(float(e) for e in np.linspace(0.0, 180.0, nbins + 1))
    cif = float(m.mean())
    if not m.any():
        return CrackMetrics(surface_cif=cif, total_length_um=0.0, mean_width_um=0.0,
                            max_width_um=0.0, n_segments=0, n_junctions=0, n_endpoints=0,
                            orientation_hist_um=(0.0,) * nbins, orientation_edges_deg=edges,
                            um_per_px=px)
    dist = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    skel = _prune_spurs(skeletonize(m), dist)
    per, length_px = _link_lengths(skel)
    # an isolated skeleton pixel (a dot) has no links: count it as 1 px long
    per = np.where(skel & (per == 0), 1.0, per)
    length_px = float(per.sum())
    widths = 2.0 * dist[skel] - 1.0
    weights = per[skel]
    mean_w = float(np.average(widths, weights=weights))
    max_w = float(widths.max())
    n_seg, n_junc, n_end = _topology(skel)
    angle = _local_orientation_deg(skel)[skel]
    hist, _ = np.histogram(angle, bins=np.asarray(edges), weights=weights * px)
    return CrackMetrics(surface_cif=cif, total_length_um=length_px * px, mean_width_um=mean_w * px,
                        max_width_um=max_w * px, n_segments=int(n_seg), n_junctions=int(n_junc),
                        n_endpoints=int(n_end), orientation_hist_um=tuple(float(v) for v in hist),
                        orientation_edges_deg=edges, um_per_px=px)


# ----------------------------------------------------------------------------- sequences


def analyse_sequence(frames: Sequence[ArrayLike], times_min: ArrayLike, *, um_per_px: float,
                     min_length_um: float | None = None, max_width_um: float | None = None,
                     sensitivity: float = 1.0, orientation_bins: int = 12) -> pd.DataFrame:
    """Segment and measure every frame of a sequence.

    Parameters
    ----------
    frames : sequence of ndarray, each shape (H, W)
        Camera frames (uint8, uint16 or float).
    times_min : array_like, shape (N,)
        Time of each frame, minutes.
    um_per_px : float
        Pixel size, um.
    min_length_um, max_width_um, sensitivity : optional
        Passed to `segment_cracks`.
    orientation_bins : int, optional
        Passed to `crack_metrics`.

    Returns
    -------
    pandas.DataFrame
        One row per frame, in the given order: ``t_min`` then the columns of
        `CrackMetrics.as_dict`.

    Raises
    ------
    ValueError
        If the numbers of frames and times differ, a time is not finite, or a frame or
        option is invalid.

    Examples
    --------
    >>> df = analyse_sequence(images, [40.0, 45.0], um_per_px=5.0)  # doctest: +SKIP
    """
    times = np.asarray(times_min, dtype=float).ravel()
    frames = list(frames)
    if len(frames) != times.size:
        raise ValueError(f"times_min must have one time per frame: {times.size} times for "
                         f"{len(frames)} frames")
    if not np.all(np.isfinite(times)):
        raise ValueError("times_min must be finite")
    rows = []
    for t, frame in zip(times, frames):
        mask = segment_cracks(frame, um_per_px=um_per_px, min_length_um=min_length_um,
                              max_width_um=max_width_um, sensitivity=sensitivity)
        met = crack_metrics(mask, um_per_px=um_per_px, orientation_bins=orientation_bins)
        rows.append({"t_min": float(t), **met.as_dict()})
    if not rows:
        cols = ["t_min", *CrackMetrics.__dataclass_fields__]
        return pd.DataFrame(columns=[c for c in cols if not c.startswith("orientation_")])
    return pd.DataFrame(rows)


def first_visible_time(df: pd.DataFrame | Mapping[str, ArrayLike], *, min_cif: float = 1e-3,
                       min_length_um: float = 300.0, consecutive: int = 1) -> float:
    """Time at which the segmentation first sees a crack.

    Parameters
    ----------
    df : pandas.DataFrame
        Output of `analyse_sequence` (columns ``t_min``, ``surface_cif``,
        ``total_length_um``).
    min_cif : float, optional
        Crack area fraction a frame must reach, 0-1.
    min_length_um : float, optional
        Total crack length a frame must reach, um (a crack network, not a stray line).
    consecutive : int, optional
        Number of consecutive frames (in time order) that must pass; the time of the
        first of them is returned.

    Returns
    -------
    float
        Time, minutes; NaN if no frame passes.

    Raises
    ------
    ValueError
        If a column is missing or an option is out of range.
    """
    for col in ("t_min", "surface_cif", "total_length_um"):
        if col not in df:
            raise ValueError(f"df must have a {col!r} column")
    if not (isinstance(min_cif, (int, float)) and 0 <= min_cif < 1):
        raise ValueError(f"min_cif must be in [0, 1), got {min_cif!r}")
    if not (isinstance(min_length_um, (int, float)) and min_length_um >= 0):
        raise ValueError(f"min_length_um must be >= 0, got {min_length_um!r}")
    if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
        raise ValueError(f"consecutive must be a positive int, got {consecutive!r}")
    t = np.asarray(df["t_min"], dtype=float)
    order = np.argsort(t, kind="stable")
    t = t[order]
    ok = ((np.asarray(df["surface_cif"], dtype=float)[order] >= min_cif)
          & (np.asarray(df["total_length_um"], dtype=float)[order] >= min_length_um))
    run = 0
    for i, good in enumerate(ok):
        run = run + 1 if good else 0
        if run >= consecutive:
            return float(t[i - consecutive + 1])
    return float("nan")
