"""Integer initial guesses: global phase correlation, then a coarse-to-fine subset search.

The same pyramid logic serves images and volumes; only the template matcher differs
(OpenCV's `matchTemplate` in 2D, scikit-image's FFT `match_template` in 3D).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import fft as sfft

__all__ = ["phase_shift", "halve", "seed_points", "seed_guesses"]


def phase_shift(reference: NDArray, moving: NDArray) -> NDArray[np.float64]:
    """Integer shift of `moving` relative to `reference` by FFT phase correlation.

    Parameters
    ----------
    reference, moving : ndarray, same shape (2D or 3D)

    Returns
    -------
    ndarray, shape (d,)
        The shift, px / voxels (any rigid shift up to half the extent per axis).
    """
    ref = np.asarray(reference, dtype=np.float64)
    mov = np.asarray(moving, dtype=np.float64)
    win = np.ones(ref.shape)
    for ax, n in enumerate(ref.shape):
        shape = [1] * ref.ndim
        shape[ax] = n
        win = win * np.hanning(n).reshape(shape)
    fa = sfft.rfftn((ref - ref.mean()) * win)
    fb = sfft.rfftn((mov - mov.mean()) * win)
    cross = np.conj(fa) * fb
    cross /= np.abs(cross) + 1e-12
    corr = sfft.irfftn(cross, s=ref.shape)
    peak = np.array(np.unravel_index(np.argmax(corr), corr.shape), dtype=np.float64)
    size = np.array(ref.shape, dtype=np.float64)
    peak[peak > size / 2] -= size[peak > size / 2]
    return peak


def halve(data: NDArray) -> NDArray[np.float32]:
    """2x block mean along every axis (odd trailing elements dropped), float32."""
    a = np.asarray(data, dtype=np.float32)
    sl = tuple(slice(0, (n // 2) * 2) for n in a.shape)
    a = a[sl]
    shape = []
    for n in a.shape:
        shape += [n // 2, 2]
    return a.reshape(shape).mean(axis=tuple(range(1, 2 * a.ndim, 2)), dtype=np.float32)


def _match(ref: NDArray, mov: NDArray, centre: NDArray, guess: NDArray, half: int,
           radius: int) -> tuple[NDArray, float]:
    """Integer displacement of one subset by normalised cross-correlation."""
    c = centre.astype(np.int64)
    tpl = ref[tuple(slice(int(a) - half, int(a) + half + 1) for a in c)]
    t = c + guess.astype(np.int64)
    lo = np.maximum(t - half - radius, 0)
    hi = np.minimum(t + half + radius + 1, np.array(mov.shape))
    if np.any(hi - lo < np.array(tpl.shape)) or tpl.max() == tpl.min():
        return guess.copy(), -1.0
    win = mov[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))]
    if ref.ndim == 2:
        score = cv2.matchTemplate(np.ascontiguousarray(win), np.ascontiguousarray(tpl), cv2.TM_CCOEFF_NORMED)
    else:
        from skimage.feature import match_template

        score = match_template(win, tpl)
    best = np.array(np.unravel_index(np.argmax(score), score.shape))
    return (lo + best + half - c).astype(np.float64), float(score[tuple(best)])


def pyramid_levels(shape: tuple[int, ...], half: int, radius: int) -> int:
    """Levels of the seed pyramid: halve until the residual radius is small, keeping at
    least two coarse subsets across the smallest extent."""
    levels = 0
    while radius >> levels > 3 and min(shape) >> (levels + 1) >= 2 * (2 * max(half >> (levels + 1), 3) + 1):
        levels += 1
    return levels


def seed_guesses(reference: NDArray, deformed: NDArray, seeds: NDArray, half: int, radius: int) -> NDArray:
    """Integer displacement guesses at the seeds, coarse to fine (block-mean pyramid).

    Parameters
    ----------
    reference, deformed : ndarray
        Images or volumes (any real dtype; float32 copies are made).
    seeds : ndarray, shape (K, d)
        Seed positions, px / voxels (at least `half` from the border).
    half : int
        Subset half width.
    radius : int
        Search radius around the global shift, px / voxels.

    Returns
    -------
    ndarray, shape (K, d), float64
    """
    levels = pyramid_levels(reference.shape, half, radius)
    pyr_ref = [np.asarray(reference, dtype=np.float32)]
    pyr_def = [np.asarray(deformed, dtype=np.float32)]
    for _ in range(max(levels, 2)):
        pyr_ref.append(halve(pyr_ref[-1]))
        pyr_def.append(halve(pyr_def[-1]))
    # the global shift only seeds the coarsest level (divided by 2**levels there), so a
    # phase correlation two levels down is as good and ~16x (2D) / ~64x (3D) cheaper
    lev_g = min(2, len(pyr_ref) - 1)
    while lev_g > 0 and min(pyr_ref[lev_g].shape) < 8:
        lev_g -= 1
    g0 = phase_shift(pyr_ref[lev_g], pyr_def[lev_g]) * 2 ** lev_g
    out = np.empty((len(seeds), reference.ndim))
    for k, pt in enumerate(np.round(seeds)):
        guess = np.round(g0 / 2 ** levels)
        rad = max(int(np.ceil(radius / 2 ** levels)), 2)
        for lev in range(levels, -1, -1):
            scale = 2 ** lev
            lh = max(half // scale, 3) if lev else half
            shape = np.array(pyr_ref[lev].shape)
            centre = np.clip(np.round(pt / scale), lh, shape - lh - 1)
            guess, _ = _match(pyr_ref[lev], pyr_def[lev], centre, guess, lh, rad)
            if lev:
                guess = guess * 2
                rad = 2
        out[k] = guess
    return out


def seed_points(points: NDArray, valid: NDArray, subset_size: int, step: int) -> NDArray[np.int64]:
    """Indices of a sparse, roughly uniform subset of the valid points (one per cell of
    ``max(2 subset_size, step)``)."""
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return idx
    spacing = max(2 * subset_size, step)
    key = np.floor(points[idx] / spacing).astype(np.int64)
    _, first = np.unique(key, axis=0, return_index=True)
    return idx[np.sort(first)]
