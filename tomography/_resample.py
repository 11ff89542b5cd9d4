"""Resampling of CT volumes and label volumes to a coarser voxel size.

The CT study resampled its 1.3 um volumes to 5 x 5 x 5 um voxels for crack quantification;
`resample_volume` does that by block means for integer factors (majority vote for labels)
and by prefiltered interpolation otherwise (nearest neighbour for labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from ._analytics import check_volume, check_voxel

__all__ = ["Resampled", "resample_volume"]


@dataclass(frozen=True, eq=False)
class Resampled:
    """A resampled volume.

    Attributes
    ----------
    volume : ndarray, shape (Z', Y', X')
        Grey values (float32 for float input, the input integer type rounded otherwise)
        or labels (input dtype).
    voxel_um : float
        The new voxel size, um.
    """

    volume: NDArray
    voxel_um: float


def _block_reduce(volume: NDArray, f: int, labels: bool) -> NDArray:
    nz, ny, nx = (s // f for s in volume.shape)
    crop = volume[:nz * f, :ny * f, :nx * f]
    if not labels:
        blocks = crop.reshape(nz, f, ny, f, nx, f)
        out = np.empty((nz, ny, nx), dtype=np.float32)
        for k in range(nz):  # per output slice: float32 temporaries of f slices only
            out[k] = blocks[k].mean(axis=(0, 2, 4), dtype=np.float32)
        return out
    values = np.unique(crop)
    best = np.zeros((nz, ny, nx), dtype=crop.dtype)
    best_n = np.full((nz, ny, nx), -1, dtype=np.int32)
    for val in values:  # majority vote; ties go to the lower value
        n = (crop == val).reshape(nz, f, ny, f, nx, f).sum(axis=(1, 3, 5), dtype=np.int32)
        win = n > best_n
        best[win] = val
        best_n[win] = n[win]
    return best


def resample_volume(volume: NDArray, voxel_um: float, new_voxel_um: float, *, labels: bool = False) -> Resampled:
    """Resample a volume to another (usually coarser) isotropic voxel size.

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Grey values (uint8, uint16, float32, ...) or labels (integer, bool).
    voxel_um : float
        Current voxel size, um.
    new_voxel_um : float
        Target voxel size, um.
    labels : bool, optional
        True for label volumes: majority vote per block (integer factor) or nearest
        neighbour (other factors) instead of averaging.

    Returns
    -------
    Resampled
        The output covers ``floor(n voxel_um / new_voxel_um)`` voxels per axis from the
        volume's corner (a partial block at the far end is dropped).

    Raises
    ------
    ValueError
        On a bad argument or when the volume is smaller than one new voxel.

    Notes
    -----
    An integer factor (within 1e-6) averages whole blocks (``skimage``'s
    ``downscale_local_mean`` without the padding, in float32).  Other factors prefilter
    with a Gaussian of the variance of a box of the factor's width, ``(s^2 - 1) / 12``
    voxels^2, and interpolate linearly at the new voxel centres.  The CT study
    resampled to 5 um voxels for crack quantification.
    """
    volume = check_volume(volume)
    v = check_voxel(voxel_um)
    nv = check_voxel(new_voxel_um, "new_voxel_um")
    s = nv / v
    shape = tuple(int(np.floor(n / s + 1e-9)) for n in volume.shape)
    if min(shape) < 1:
        raise ValueError(f"new_voxel_um={nv} is larger than the volume extent {tuple(n * v for n in volume.shape)} um")
    if labels and not (np.issubdtype(volume.dtype, np.integer) or volume.dtype == bool):
        raise ValueError(f"labels=True needs an integer or bool volume, got dtype {volume.dtype}")
    f = int(round(s))
    if f >= 1 and abs(s - f) < 1e-6 * s:
        out = volume.copy() if f == 1 else _block_reduce(volume, f, labels)
    else:
        src = volume if labels else volume.astype(np.float32, copy=False)
        if not labels and s > 1:
            src = ndi.gaussian_filter(src, sigma=np.sqrt((s * s - 1.0) / 12.0), output=np.float32)
        out = ndi.affine_transform(src, np.full(3, s), offset=0.5 * s - 0.5, output_shape=shape,
                                   order=0 if labels else 1, mode="nearest",
                                   output=volume.dtype if labels else np.float32)
    if not labels and np.issubdtype(volume.dtype, np.integer) and out.dtype != volume.dtype:
        info = np.iinfo(volume.dtype)
        out = np.clip(np.rint(out), info.min, info.max).astype(volume.dtype)
    elif not labels and volume.dtype == bool:
        out = out.astype(np.float32)
    return Resampled(volume=out, voxel_um=nv)
