"""Phase, crack and bubble segmentation of CT volumes of a drying coating.

`segment_phases` thresholds grey values into `Phase` codes (histogram peaks or multi-Otsu);
`train_segmenter` fits an ilastik-style random-forest voxel classifier from sparse
annotations; `segment_cracks_3d` and `detect_bubbles` tell the voids of the coating layer
apart into cracks, bubbles, the delamination gap and pores.

References
----------
Dawson et al., EES Batteries 2026, 2, 572, DOI 10.1039/d5eb00201j.
Berg et al., "ilastik: interactive machine learning for (bio)image analysis", Nature
Methods 16, 1226 (2019), DOI 10.1038/s41592-019-0582-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.signal import find_peaks
from skimage.feature import multiscale_basic_features
from skimage.filters import threshold_multiotsu
from skimage.future import fit_segmenter, predict_segmenter

from ._analytics import (HeightMap, Phase, _gap_vox, _heights, _is_void, check_int, check_phases, check_volume,
                         check_voxel)

__all__ = ["Bubble", "BubbleDetection", "CrackSegmentation", "PhaseClassifier", "PhaseSegmentation",
           "detect_bubbles", "segment_cracks_3d", "segment_phases", "train_segmenter"]

_DEFAULT_CLASSES = (Phase.AIR, Phase.PORE, Phase.PARTICLE, Phase.SUBSTRATE)
_OTSU_BINS = 64  # multi-Otsu search grid (its cost grows as bins ** (classes - 1))
_FULL = np.ones((3, 3, 3), dtype=bool)
_SCALE_STEP = 1.5  # ratio of consecutive opening radii in the bubble search


def _check_classes(classes: Sequence[int], name: str = "classes") -> tuple[Phase, ...]:
    try:
        out = tuple(Phase(int(c)) for c in classes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be Phase codes {[p.name for p in Phase]}, got {classes!r}") from exc
    if len(out) < 2 or len(set(out)) != len(out):
        raise ValueError(f"{name} must hold at least two distinct phases, got {classes!r}")
    if list(out) != sorted(out):
        raise ValueError(f"{name} must be in order of increasing grey value (AIR < ... < SUBSTRATE), got {classes!r}")
    return out


# ---------------------------------------------------------------- multi-Otsu phases
@dataclass(frozen=True, eq=False)
class PhaseSegmentation:
    """Result of `segment_phases`.

    Attributes
    ----------
    phases : ndarray, shape (Z, Y, X), uint8
        `Phase` code per voxel.
    thresholds : tuple of float
        Grey-value thresholds between consecutive classes, in the volume's units.
    classes : tuple of Phase
        The phases, in order of increasing grey value.
    levels : tuple of float
        Grey level of each class (histogram peak or class mean), in the volume's units.
    """

    phases: NDArray[np.uint8]
    thresholds: tuple[float, ...]
    classes: tuple[Phase, ...]
    levels: tuple[float, ...]


def _intermeans(counts: NDArray, centres: NDArray, thresholds: NDArray, max_iter: int = 100) -> NDArray:
    """Move each threshold to the midpoint of the means of the classes on its sides."""
    t = np.asarray(thresholds, dtype=np.float64)
    tol = 0.25 * float(centres[1] - centres[0]) if len(centres) > 1 else 0.0
    for _ in range(max_iter):
        cls = np.searchsorted(t, centres, side="left")
        n = np.bincount(cls, weights=counts, minlength=len(t) + 1)
        if np.any(n <= 0):
            break
        means = np.bincount(cls, weights=counts * centres, minlength=len(t) + 1) / n
        new = 0.5 * (means[:-1] + means[1:])
        done = np.max(np.abs(new - t)) <= tol
        t = new
        if done:
            break
    return t


def _otsu_thresholds(counts: NDArray, centres: NDArray, n_classes: int) -> NDArray:
    groups = np.array_split(np.arange(len(counts)), min(_OTSU_BINS, len(counts)))
    c_counts = np.array([counts[g].sum() for g in groups])
    c_centres = np.array([centres[g].mean() for g in groups])
    try:
        thr = threshold_multiotsu(hist=(c_counts, c_centres), classes=n_classes)
    except ValueError as exc:
        raise ValueError(f"volume: cannot find {n_classes} grey classes ({exc})") from exc
    # a threshold names the last coarse bin of the lower class: move it to that bin's upper edge
    last = [groups[int(np.argmin(np.abs(c_centres - t)))][-1] for t in thr]
    half = 0.5 * (centres[1] - centres[0]) if len(centres) > 1 else 0.0
    return _intermeans(counts.astype(np.float64), centres, centres[last] + half)


def _peak_thresholds(counts: NDArray, centres: NDArray, n_classes: int) -> tuple[NDArray, NDArray] | None:
    """Midpoints between the ``n_classes`` most prominent peaks and the peaks, or None if fewer."""
    smooth = ndi.gaussian_filter1d(np.sqrt(counts.astype(np.float64)), 1.5, mode="constant")
    peaks, props = find_peaks(np.concatenate([[0.0], smooth, [0.0]]), prominence=0.0)
    peaks -= 1
    prom = props["prominences"]
    # a peak must stand out of the counting noise (sqrt counts have unit variance)
    keep = prom > 3.0
    peaks, prom = peaks[keep], prom[keep]
    if len(peaks) < n_classes:
        return None
    best = np.sort(peaks[np.argsort(prom)[::-1][:n_classes]])
    pos = centres[best]
    return 0.5 * (pos[:-1] + pos[1:]), pos


def _class_means(counts: NDArray, centres: NDArray, thr: NDArray) -> NDArray:
    cls = np.searchsorted(thr, centres, side="left")
    n = np.bincount(cls, weights=counts, minlength=len(thr) + 1)
    s = np.bincount(cls, weights=counts * centres, minlength=len(thr) + 1)
    edges = np.concatenate([[centres[0]], thr, [centres[-1]]])
    mid = 0.5 * (edges[:-1] + edges[1:])  # an empty class sits in the middle of its interval
    return np.where(n > 0, s / np.maximum(n, 1), mid)


def _resolve_interfaces(idx: NDArray[np.uint8], volume: NDArray, levels: NDArray) -> None:
    """Reassign partial-volume voxels at layer interfaces, in place.

    A voxel whose class lies strictly between the classes of its z neighbours, one of
    them the brightest class (e.g. a "particle" voxel between substrate and pore), and
    whose grey value is more than a quarter level gap from its own class level is a
    mixture of the two: it takes the neighbour class whose grey level is closer to its
    own grey value.  Interfaces between darker classes are left alone: there a lone
    noisy voxel would make a pure voxel look like a mixture.
    """
    lv = np.asarray(levels, dtype=np.float32)
    gaps = np.diff(lv)
    pure = 0.25 * np.minimum(np.concatenate([[np.inf], gaps]), np.concatenate([gaps, [np.inf]]))
    pure = pure.astype(np.float32)
    top = len(lv) - 1
    prev = idx[0].copy()
    for k in range(1, idx.shape[0] - 1):
        cur = idx[k].copy()
        below, above = prev, idx[k + 1]
        mixed = ((below < cur) & (cur < above)) | ((above < cur) & (cur < below))
        mixed &= (below == top) | (above == top)
        if mixed.any():
            g = volume[k].astype(np.float32)
            mixed &= np.abs(g - lv[cur]) > pure[cur]  # a grey near its own level is that phase
            b, a, g = below[mixed], above[mixed], g[mixed]
            idx[k][mixed] = np.where(np.abs(g - lv[b]) <= np.abs(g - lv[a]), b, a)
        prev = cur


def segment_phases(volume: NDArray, *, classes: Sequence[int] = _DEFAULT_CLASSES,
                   thresholds: Sequence[float] | None = None, method: str = "auto", nbins: int = 256,
                   median_size: int | None = None, interfaces: bool = True) -> PhaseSegmentation:
    """Segment a grey-value volume into phases by multi-level thresholds.

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Grey values (uint8, uint16, float32, ...); brighter = more attenuating.
    classes : sequence of Phase, optional
        The phases present, in order of increasing grey value.  Default AIR, PORE,
        PARTICLE, SUBSTRATE (a dry coating); add SOLVENT during consolidation.
    thresholds : sequence of float, optional
        ``len(classes) - 1`` increasing thresholds in the volume's units; None computes
        them with ``method``.
    method : {"auto", "peaks", "multiotsu"}, optional
        "multiotsu": the multi-Otsu thresholds (`skimage.filters.threshold_multiotsu` on
        a 64-bin histogram), moved to the midpoints of the adjacent class means (iterated
        intermeans).  "peaks": the midpoints between the grey levels of the
        ``len(classes)`` most prominent histogram peaks.  "auto": "peaks" when the
        histogram shows that many peaks, else "multiotsu".
    nbins : int, optional
        Histogram bins over the grey range.
    median_size : int, optional
        Side of a median prefilter (e.g. 3) against noise; None: no prefilter (a median
        erodes particles a few voxels across).
    interfaces : bool, optional
        Resolve partial-volume voxels at the interface with the brightest class (the
        substrate): a voxel whose class lies strictly between those of its two z
        neighbours (a "particle" voxel between substrate and pore) and whose grey value
        lies more than a quarter level gap from its class level takes the neighbour class
        whose grey level is closer to its grey value.

    Returns
    -------
    PhaseSegmentation

    Raises
    ------
    ValueError
        On a bad argument (the message names it).

    Notes
    -----
    Multi-Otsu maximises the between-class variance, so with classes of very different
    size it splits a large class or the partial-volume plateau between particle and
    pore rather than isolating a thin solvent layer, and its thresholds lean towards the
    smaller class.  The midpoint between two grey levels is the 50 % partial-volume
    point, the boundary a voxel-centre ground truth uses, hence the midpoint rules.

    Examples
    --------
    >>> vol = np.repeat(np.array([0.95, 0.3, 0.7, 0.05], np.float32), 4)[:, None, None] * np.ones((1, 4, 4), np.float32)
    >>> segment_phases(vol).phases[:, 0, 0].tolist()
    [4, 4, 4, 4, 2, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0, 0]
    """
    volume = check_volume(volume)
    cls = _check_classes(classes)
    check_int(nbins, "nbins", 2 * len(cls))
    if method not in ("auto", "peaks", "multiotsu"):
        raise ValueError(f"method must be 'auto', 'peaks' or 'multiotsu', got {method!r}")
    if median_size is not None:
        volume = ndi.median_filter(volume, size=check_int(median_size, "median_size"))
    if volume.dtype == bool:
        volume = volume.view(np.uint8)
    if thresholds is not None:
        thr = np.asarray(thresholds, dtype=np.float64).ravel()
        if len(thr) != len(cls) - 1 or not np.all(np.isfinite(thr)) or np.any(np.diff(thr) <= 0):
            raise ValueError(f"thresholds must be {len(cls) - 1} increasing finite values, got {thresholds!r}")
    lo, hi = float(volume.min()), float(volume.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("volume holds non-finite values")
    if hi <= lo and thresholds is None:
        raise ValueError(f"volume is constant ({lo}); cannot find {len(cls)} classes")
    counts, edges = np.histogram(volume, bins=int(nbins), range=(lo, max(hi, lo + 1.0)))
    centres = 0.5 * (edges[1:] + edges[:-1])
    levels = None
    if thresholds is None:
        found = _peak_thresholds(counts, centres, len(cls)) if method in ("auto", "peaks") else None
        if found is None and method == "peaks":
            raise ValueError(f"volume: the histogram does not show {len(cls)} peaks; use method='multiotsu'")
        thr, levels = found if found is not None else (_otsu_thresholds(counts, centres, len(cls)), None)
    if levels is None:
        levels = _class_means(counts.astype(np.float64), centres, thr)
    idx = np.empty(volume.shape, dtype=np.uint8)
    for k in range(volume.shape[0]):  # slice-wise: int64 indices of one slice only
        idx[k] = np.digitize(volume[k], thr, right=True)  # a value equal to a threshold stays below
    if interfaces:
        _resolve_interfaces(idx, volume, levels)
    lut = np.asarray(cls, dtype=np.uint8)
    for k in range(volume.shape[0]):
        idx[k] = lut[idx[k]]
    return PhaseSegmentation(phases=idx, thresholds=tuple(float(t) for t in thr), classes=cls,
                             levels=tuple(float(x) for x in levels))


# ---------------------------------------------------------------- random forest (ilastik-like)
@dataclass(frozen=True, eq=False)
class PhaseClassifier:
    """A trained voxel classifier (see `train_segmenter`).

    Attributes
    ----------
    estimator : sklearn.ensemble.RandomForestClassifier
        The fitted forest (targets 1..K index ``classes``).
    classes : tuple of int
        Class code of each forest target, in order.
    sigma_min, sigma_max : float
        Smallest and largest feature scale, voxels.
    num_sigma : int or None
        Number of scales (None: octaves between the two).
    intensity, edges, texture : bool
        Feature groups (smoothed intensity, gradient magnitude, Hessian eigenvalues).
    grey_scale : float
        Divisor applied to the grey values before the features (dtype full scale).
    """

    estimator: Any
    classes: tuple[int, ...]
    sigma_min: float
    sigma_max: float
    num_sigma: int | None
    intensity: bool
    edges: bool
    texture: bool
    grey_scale: float

    @property
    def halo(self) -> int:
        """Voxels of context a feature needs on each side (4 sigma_max)."""
        return int(np.ceil(4.0 * self.sigma_max))

    def features(self, volume: NDArray) -> NDArray[np.float32]:
        """Feature stack, shape (Z, Y, X, F), float32, of a (Z, Y, X) grey volume."""
        volume = check_volume(volume)
        img = volume.astype(np.float32)
        img /= np.float32(self.grey_scale)
        feats = multiscale_basic_features(img, intensity=self.intensity, edges=self.edges, texture=self.texture,
                                          sigma_min=self.sigma_min, sigma_max=self.sigma_max,
                                          num_sigma=self.num_sigma, channel_axis=None)
        return feats.astype(np.float32, copy=False)

    def predict(self, volume: NDArray, *, chunk_z: int | None = None) -> NDArray[np.uint8]:
        """Classify every voxel.

        Parameters
        ----------
        volume : ndarray, shape (Z, Y, X)
            Grey values.
        chunk_z : int, optional
            Slices per chunk (each with a halo of `halo` slices) to bound the memory of
            the feature stack; None: the whole volume at once.

        Returns
        -------
        ndarray, shape (Z, Y, X), uint8
            Class code per voxel.
        """
        volume = check_volume(volume)
        nz = volume.shape[0]
        step = nz if chunk_z is None else check_int(chunk_z, "chunk_z")
        lut = np.asarray((0,) + tuple(self.classes), dtype=np.uint8)
        out = np.empty(volume.shape, dtype=np.uint8)
        for z0 in range(0, nz, step):
            z1 = min(z0 + step, nz)
            a, b = max(z0 - self.halo, 0), min(z1 + self.halo, nz)
            pred = predict_segmenter(self.features(volume[a:b]), self.estimator)
            out[z0:z1] = lut[pred[z0 - a:z1 - a]]
        return out


def train_segmenter(volume: NDArray, annotations: NDArray, *, unlabelled: int = 255, sigma_min: float = 0.5,
                    sigma_max: float = 8.0, num_sigma: int | None = None, intensity: bool = True,
                    edges: bool = True, texture: bool = True, n_estimators: int = 50,
                    max_depth: int | None = 12, seed: int = 0, n_jobs: int | None = None) -> PhaseClassifier:
    """Train a random-forest voxel classifier from sparse annotations (ilastik style).

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Grey values (uint8, uint16 or float32; integer volumes are scaled by their full
        range, so train and predict on the same dtype).
    annotations : ndarray, shape (Z, Y, X), integer
        Class code (e.g. `Phase`) of the annotated voxels, ``unlabelled`` elsewhere (a few
        brush strokes or scattered voxels per class suffice).
    unlabelled : int, optional
        Code of the voxels without annotation.
    sigma_min, sigma_max : float, optional
        Feature scales, voxels.
    num_sigma : int, optional
        Number of scales; None: one per octave.
    intensity, edges, texture : bool, optional
        Feature groups: Gaussian-smoothed intensity, gradient magnitude, Hessian
        eigenvalues, at every scale.
    n_estimators, max_depth : int, optional
        Forest size and depth.
    seed : int, optional
        Seed of the forest (results are reproducible for a given seed).
    n_jobs : int, optional
        Parallel jobs of the forest (None: 1); does not change the result.

    Returns
    -------
    PhaseClassifier

    Raises
    ------
    ValueError
        On a bad argument, or fewer than two annotated classes.

    Notes
    -----
    Features are computed over the whole volume (`skimage.feature.multiscale_basic_features`)
    and the forest is fitted on the annotated voxels with `skimage.future.fit_segmenter`.
    """
    from sklearn.ensemble import RandomForestClassifier

    volume = check_volume(volume)
    ann = check_volume(annotations, "annotations")
    if ann.shape != volume.shape:
        raise ValueError(f"annotations must have the volume's shape {volume.shape}, got {ann.shape}")
    if not np.issubdtype(ann.dtype, np.integer):
        raise ValueError(f"annotations must be integer class codes, got dtype {ann.dtype}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"sigma_min, sigma_max must satisfy 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if not (intensity or edges or texture):
        raise ValueError("at least one of intensity, edges, texture must be True")
    check_int(n_estimators, "n_estimators")
    codes = np.unique(ann)
    codes = tuple(int(c) for c in codes if c != unlabelled)
    if len(codes) < 2:
        raise ValueError(f"annotations must label at least two classes besides unlabelled={unlabelled}, got {codes}")
    if min(codes) < 0 or max(codes) > 254:
        raise ValueError(f"annotations class codes must lie in 0..254, got {codes}")
    target = np.zeros(256, dtype=np.uint8)
    for i, c in enumerate(codes, start=1):
        target[c] = i
    mask = ann != unlabelled
    train = np.zeros(volume.shape, dtype=np.uint8)
    train[mask] = target[ann[mask]]
    forest = RandomForestClassifier(n_estimators=int(n_estimators), max_depth=max_depth, random_state=int(seed),
                                    n_jobs=n_jobs)
    clf = PhaseClassifier(estimator=forest, classes=codes, sigma_min=float(sigma_min), sigma_max=float(sigma_max),
                          num_sigma=num_sigma, intensity=bool(intensity), edges=bool(edges), texture=bool(texture),
                          grey_scale=float(np.iinfo(volume.dtype).max) if volume.dtype.kind in "ui" else 1.0)
    fit_segmenter(train, clf.features(volume), forest)
    return clf


# ---------------------------------------------------------------- bubbles
@dataclass(frozen=True)
class Bubble:
    """One detected bubble.

    Attributes
    ----------
    radius_um : float
        Equivalent-sphere radius ``(3 V / 4 pi) ** (1/3)``, um.
    centre_um : tuple of float
        Centroid (z, y, x), um from the volume's corner (voxel k spans [k v, (k+1) v)).
    volume_um3 : float
        Volume, um^3.
    aspect : float
        ``sqrt(smallest / largest)`` eigenvalue of the voxel covariance (1 for a sphere).
    """

    radius_um: float
    centre_um: tuple[float, float, float]
    volume_um3: float
    aspect: float


@dataclass(frozen=True, eq=False)
class BubbleDetection:
    """Result of `detect_bubbles`.

    Attributes
    ----------
    mask : ndarray, shape (Z, Y, X), bool
        Bubble voxels.
    bubbles : tuple of Bubble
        One per bubble, largest first.
    """

    mask: NDArray[np.bool_]
    bubbles: tuple[Bubble, ...]


def _void_in_layer(phases: NDArray, h: HeightMap) -> NDArray[np.bool_]:
    k = np.arange(phases.shape[0], dtype=np.int32)[:, None, None]
    return _is_void(phases) & (k >= h.substrate_top_vox) & (k < h.envelope_top_vox)


def _touches_top(labels: NDArray, h: HeightMap, n: int) -> NDArray[np.bool_]:
    """Per label 0..n: whether it has a voxel in the top voxel layer of the coating."""
    k = np.clip(h.envelope_top_vox - 1, 0, labels.shape[0] - 1)
    top = np.take_along_axis(labels, k[None].astype(np.intp), axis=0)[0]
    hit = np.zeros(n + 1, dtype=bool)
    hit[np.unique(top)] = True
    hit[0] = False
    return hit


def _bubbles(void: NDArray[np.bool_], h: HeightMap, v: float, min_radius_um: float,
             min_aspect: float) -> BubbleDetection:
    mask = np.zeros(void.shape, dtype=bool)
    edt = ndi.distance_transform_edt(void).astype(np.float32)
    found: list[Bubble] = []
    r = min_radius_um / v
    while r <= float(edt.max()):
        _bubbles_at_scale(void, edt >= r, r, h, v, min_radius_um, min_aspect, mask, found)
        r *= _SCALE_STEP
    found.sort(key=lambda b: -b.volume_um3)
    return BubbleDetection(mask=mask, bubbles=tuple(found))


def _bubbles_at_scale(void: NDArray[np.bool_], cores: NDArray[np.bool_], r: float, h: HeightMap, v: float,
                      min_radius_um: float, min_aspect: float, mask: NDArray[np.bool_], found: list[Bubble]) -> None:
    """Add the bubbles of the opening of ``void`` by a ball of radius ``r`` voxels (in place)."""
    # the opening is the union of the balls of radius r centred on the cores (EDT >= r)
    pad = int(np.ceil(r)) + 2
    box = tuple(slice(max(int(ix.min()) - pad, 0), int(ix.max()) + pad + 1) for ix in np.nonzero(cores))
    opened = ndi.distance_transform_edt(~cores[box]) <= r
    opened &= void[box]
    lab, n = ndi.label(opened, structure=_FULL)
    full = np.zeros(void.shape, dtype=np.int32)
    full[box] = lab
    top = _touches_top(full, h, n)
    del full
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None or top[i]:
            continue
        part = lab[sl] == i
        idx = np.argwhere(part).astype(np.float64)
        if len(idx) < 4:
            continue
        eig = np.linalg.eigvalsh(np.cov(idx.T))
        aspect = float(np.sqrt(max(eig[0], 0.0) / eig[-1])) if eig[-1] > 0 else 0.0
        if aspect < min_aspect:
            continue
        # grow by one voxel into the void: the opening misses the discretised rim
        grow = tuple(slice(max(s.start + b.start - 1, 0), min(s.stop + b.start + 1, dim))
                     for s, b, dim in zip(sl, box, void.shape))
        sub = np.zeros(tuple(g.stop - g.start for g in grow), dtype=bool)
        inner = tuple(slice(s.start + b.start - g.start, s.stop + b.start - g.start) for s, b, g in zip(sl, box, grow))
        sub[inner] = part
        sub = ndi.binary_dilation(sub, structure=_FULL) & void[grow]
        if np.any(mask[grow] & sub):  # found at a finer scale already
            continue
        count = int(sub.sum())
        radius = (3.0 * count / (4.0 * np.pi)) ** (1.0 / 3.0) * v
        if radius < min_radius_um:
            continue
        mask[grow] |= sub
        centre = (np.argwhere(sub).mean(axis=0) + [g.start for g in grow] + 0.5) * v
        found.append(Bubble(radius_um=float(radius), centre_um=tuple(float(c) for c in centre),
                            volume_um3=float(count * v**3), aspect=aspect))


def _check_fraction(value: float, name: str) -> float:
    x = float(value)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return x


def detect_bubbles(phases: NDArray, voxel_um: float, *, min_radius_um: float = 10.0, min_aspect: float = 0.5,
                   heights: HeightMap | None = None) -> BubbleDetection:
    """Find bubbles: compact, closed voids of the coating larger than the pores.

    Parameters
    ----------
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes; voids are AIR or SOLVENT inside the coating layer.
    voxel_um : float
        Voxel size, um.
    min_radius_um : float, optional
        Smallest bubble radius, um (pores and crack channels narrower than twice this
        are not bubbles).  The default suits 10-20 um particles.
    min_aspect : float, optional
        Smallest ``sqrt(lambda_min / lambda_max)`` of the voxel covariance (1 sphere,
        0.58 a hemisphere, -> 0 a sheet).
    heights : HeightMap, optional
        A precomputed `height_map` of ``phases``.

    Returns
    -------
    BubbleDetection

    Notes
    -----
    The voids are opened with balls of radius ``min_radius_um * 1.5**j`` (Euclidean
    distance transforms) up to the widest void; at each scale, components of the
    opening that do not reach the top voxel layer of the coating and are compact are
    bubbles (finer scales first, each bubble once).  A bubble joined to a crack is found
    at a scale between the crack's half-width and the bubble's radius; a bubble vented
    to the surface counts as part of the crack.
    """
    phases = check_phases(phases)
    v = check_voxel(voxel_um)
    rmin = check_voxel(min_radius_um, "min_radius_um")
    amin = _check_fraction(min_aspect, "min_aspect")
    h = _heights(phases, v, heights)
    return _bubbles(_void_in_layer(phases, h), h, v, rmin, amin)


# ---------------------------------------------------------------- cracks
@dataclass(frozen=True, eq=False)
class CrackSegmentation:
    """Voids of the coating layer, classified.

    Attributes
    ----------
    mask : ndarray, shape (Z, Y, X), bool
        Crack voxels.
    bubble_mask, gap_mask, pore_mask : ndarray, shape (Z, Y, X), bool
        Bubbles, the delamination gap on the substrate (under coating), and the other
        voids of the layer (closed or shallow ones).
    bubbles : tuple of Bubble
        The bubbles found.
    n_cracks : int
        Number of connected crack networks.
    spans : tuple of float
        Height span of each crack network, fraction of the coating thickness.
    """

    mask: NDArray[np.bool_]
    bubble_mask: NDArray[np.bool_]
    gap_mask: NDArray[np.bool_]
    pore_mask: NDArray[np.bool_]
    bubbles: tuple[Bubble, ...]
    n_cracks: int
    spans: tuple[float, ...]


def segment_cracks_3d(phases: NDArray, voxel_um: float, *, min_span: float = 0.5, min_bubble_radius_um: float = 10.0,
                      min_bubble_aspect: float = 0.5, separate_gap: bool = True,
                      heights: HeightMap | None = None) -> CrackSegmentation:
    """Segment cracks: vertical void channels open to the top surface.

    Parameters
    ----------
    phases : ndarray, shape (Z, Y, X), integer
        `Phase` codes (voids: AIR or SOLVENT inside the coating layer).
    voxel_um : float
        Voxel size, um.
    min_span : float, optional
        Smallest height span of a crack, fraction of the (median) coating thickness.
    min_bubble_radius_um, min_bubble_aspect : float, optional
        Bubble criteria (see `detect_bubbles`); bubbles are taken out before the cracks.
    separate_gap : bool, optional
        Take the delamination gap (void on the substrate under coating) out of the
        cracks (it joins them where cracks reach the substrate).
    heights : HeightMap, optional
        A precomputed `height_map` of ``phases``.

    Returns
    -------
    CrackSegmentation

    Notes
    -----
    Following the CT study's definition (a roughly vertical channel that connects to
    the upper surface with no solid in between), a connected component of the voids
    (26-connectivity) is a crack when it reaches the top voxel layer of the coating and
    spans at least ``min_span`` of its thickness; closed voids and shallow surface pits
    are pores.  The coating layer is `coating_layer`'s envelope.
    """
    phases = check_phases(phases)
    v = check_voxel(voxel_um)
    span_min = _check_fraction(min_span, "min_span")
    rmin = check_voxel(min_bubble_radius_um, "min_bubble_radius_um")
    amin = _check_fraction(min_bubble_aspect, "min_bubble_aspect")
    h = _heights(phases, v, heights)
    void = _void_in_layer(phases, h)
    bub = _bubbles(void, h, v, rmin, amin)
    void &= ~bub.mask
    gap = np.zeros(phases.shape, dtype=bool)
    if separate_gap:
        g = _gap_vox(phases, h)
        k = np.arange(phases.shape[0], dtype=np.int32)[:, None, None]
        gap = (k >= h.substrate_top_vox) & (k < h.substrate_top_vox + g)
        gap &= void
        void &= ~gap
    lab, n = ndi.label(void, structure=_FULL)
    top = _touches_top(lab, h, n)
    thick = float(np.median(h.envelope_top_vox - h.substrate_top_vox))
    is_crack = np.zeros(n + 1, dtype=bool)
    spans = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None or not top[i]:
            continue
        span = (sl[0].stop - sl[0].start) / max(thick, 1.0)
        if span >= span_min:
            is_crack[i] = True
            spans.append(float(min(span, 1.0)))
    cracks = is_crack[lab]
    return CrackSegmentation(mask=cracks, bubble_mask=bub.mask, gap_mask=gap, pore_mask=void & ~cracks,
                             bubbles=bub.bubbles, n_cracks=int(is_crack.sum()), spans=tuple(spans))

