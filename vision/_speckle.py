"""Analytic speckle images with exact gradients, for DIC accuracy tests and benchmarks.

The images are sums of Gaussian speckles evaluated at mapped coordinates (no
interpolation), so the displacement ground truth is exact.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.ndimage import uniform_filter

__all__ = ["cramer_rao_bound", "render", "speckles"]


@njit(cache=True)
def _splat(shape, cen, amp, sig, mat, shift, out, gr, gc):  # pragma: no cover - compiled
    """out(x) += sum_k amp_k exp(-|X - c_k|^2 / 2 s_k^2), X = mat^-1 (x - mat c_k - shift_k)."""
    h, w = shape
    det = mat[0, 0] * mat[1, 1] - mat[0, 1] * mat[1, 0]
    i00, i01, i10, i11 = mat[1, 1] / det, -mat[0, 1] / det, -mat[1, 0] / det, mat[0, 0] / det
    for k in range(cen.shape[0]):
        cr = mat[0, 0] * cen[k, 0] + mat[0, 1] * cen[k, 1] + shift[k, 0]
        cc = mat[1, 0] * cen[k, 0] + mat[1, 1] * cen[k, 1] + shift[k, 1]
        s2 = sig[k] * sig[k]
        ext = int(5.0 * sig[k] * 1.1) + 2
        for i in range(max(int(cr) - ext, 0), min(int(cr) + ext + 1, h)):
            for j in range(max(int(cc) - ext, 0), min(int(cc) + ext + 1, w)):
                xr, xc = i - cr, j - cc
                pr, pc = i00 * xr + i01 * xc, i10 * xr + i11 * xc
                d2 = (pr * pr + pc * pc) / s2
                if d2 < 25.0:
                    v = amp[k] * np.exp(-0.5 * d2)
                    out[i, j] += v
                    gr[i, j] += -v * (pr * i00 + pc * i10) / s2
                    gc[i, j] += -v * (pr * i01 + pc * i11) / s2


def speckles(shape, seed=0):
    """Random Gaussian speckles (centres, amplitudes, radii) covering `shape` + margin."""
    rng = np.random.default_rng(seed)
    m = 60
    n = int((shape[0] + 2 * m) * (shape[1] + 2 * m) / 10)
    cen = np.column_stack([rng.uniform(-m, shape[0] + m, n), rng.uniform(-m, shape[1] + m, n)])
    amp = rng.uniform(0.3, 1.0, n) * rng.choice([-1.0, 1.0], n)
    return cen, amp, rng.uniform(1.5, 2.5, n)


def render(shape, sp, mat=None, shift=(0.0, 0.0)):
    """Image (and its exact gradient) of the speckles moved by x = mat X + shift(X)."""
    cen, amp, sig = sp
    mat = np.eye(2) if mat is None else mat
    sh = np.asarray(shift, dtype=np.float64)
    sh = np.broadcast_to(sh, cen.shape).copy() if sh.ndim == 1 else sh
    out, gr, gc = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    _splat(shape, cen, amp, sig, np.asarray(mat, dtype=np.float64), sh, out, gr, gc)
    return 0.5 + 0.25 * out, 0.25 * gr, 0.25 * gc


def cramer_rao_bound(gr, gc, points, *, noise: float, subset_size: int) -> np.ndarray:
    """Mean over points of sqrt(2) sigma / sqrt(sum over the subset of (d f / d x_i)^2), per component.

    The Cramer-Rao bound of the displacement for noise ``noise`` in both images, from the
    gradient (``gr``, ``gc``) of the noise-free reference.
    """
    c = np.round(points).astype(int)
    out = []
    for g in (gr, gc):
        energy = uniform_filter(g * g, subset_size, mode="constant") * subset_size**2
        out.append(np.mean(np.sqrt(2.0) * noise / np.sqrt(energy[c[:, 0], c[:, 1]])))
    return np.array(out)
