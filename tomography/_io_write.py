"""Writing CT volumes chunk by chunk: zarr, HDF5 (NeXus layout) and ImageJ TIFF.

An edge module (files); the counterpart of `tomography._io.open_volume`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np
import numpy.typing as npt

from ._io import HDF5_SUFFIXES, TIFF_SUFFIXES, ZARR_SUFFIXES, Volume, VolumeError, _check_voxel, _default_chunks

__all__ = ["save_volume"]


def _format_for(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower()
        if fmt not in ("zarr", "tiff", "hdf5"):
            raise VolumeError(f"{path}: format must be 'zarr', 'tiff' or 'hdf5', got {format!r}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    raise VolumeError(
        f"{path}: cannot infer the output format from {suffix or '(no extension)'!r}; "
        f"use .zarr, .tif/.tiff or .h5/.hdf5/.nxs, or pass format="
    )


def save_volume(
    volume: Volume | da.Array | npt.NDArray[Any],
    path: str | Path,
    *,
    voxel_um: float | None = None,
    format: Literal["zarr", "tiff", "hdf5"] | None = None,
    chunks: tuple[int, int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a volume chunk by chunk as zarr, ImageJ TIFF or HDF5/NeXus.

    Parameters
    ----------
    volume : Volume, dask.array.Array or ndarray, shape (Z, Y, X)
        The voxels (z, y, x). A `Volume` also supplies its voxel size.
    path : str or Path
        Output path; the suffix selects the format unless ``format`` is given.
    voxel_um : float, optional
        Voxel edge in um; overrides ``volume.voxel_um``. Not stored when None.
    format : {'zarr', 'tiff', 'hdf5'}, optional
        Output format; default from the suffix (``.zarr``, ``.tif``/``.tiff``, ``.h5``/``.hdf5``/``.nxs``).
    chunks : tuple of 3 int, optional
        On-disk chunks for zarr and HDF5; default (64, 256, 256) clipped to the shape.
    overwrite : bool
        Replace an existing file or store; otherwise an existing path is an error.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    VolumeError
        If the input is not 3D numeric, the format is unknown, the path exists and
        ``overwrite`` is False, or ``voxel_um`` is not positive finite.

    Notes
    -----
    zarr: one array at the store root with attribute ``voxel_um``. HDF5: dataset
    ``/entry/data/data`` (``/entry`` is ``NX_class=NXentry``, ``/entry/data`` is ``NXdata``
    with ``signal="data"``), attributes ``voxel_size`` and ``voxel_size_units="um"``.
    TIFF: ImageJ hyperstack with ``spacing``, ``unit="um"`` and matching resolution for
    uint8/uint16/float32, otherwise a plain TIFF with tifffile JSON metadata ``voxel_um``.
    Dask inputs are computed one chunk (TIFF: one z-slab) at a time.

    Examples
    --------
    >>> save_volume(open_volume("scan.raw", shape=(2160, 2560, 2560), dtype="u2"),
    ...             "scan.zarr", voxel_um=0.65)                    # doctest: +SKIP
    """
    path = Path(path)
    fmt = _format_for(path, format)
    if isinstance(volume, Volume):
        arr = volume.data
        if voxel_um is None:
            voxel_um = volume.voxel_um
    elif isinstance(volume, da.Array):
        arr = volume
    elif isinstance(volume, np.ndarray):
        chunks_in = _default_chunks(volume.shape, volume.itemsize) if volume.ndim == 3 else "auto"
        arr = da.from_array(volume, chunks=chunks_in)
    else:
        raise VolumeError(f"{path}: expected a Volume, dask array or numpy array, got {type(volume).__name__}")
    if arr.ndim != 3:
        raise VolumeError(f"{path}: expected a 3D (z, y, x) volume to save, got shape {arr.shape}")
    if np.dtype(arr.dtype).kind not in "biuf":
        raise VolumeError(f"{path}: expected numeric voxels to save, got dtype {arr.dtype}")
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if voxel_um is not None:
        voxel_um = _check_voxel(voxel_um, path)
    if path.exists() and not overwrite:
        raise VolumeError(f"{path}: already exists; pass overwrite=True to replace it")
    shp = tuple(int(n) for n in arr.shape)
    if chunks is None:
        disk_chunks = tuple(min(c, n) for c, n in zip((64, 256, 256), shp))
    else:
        if len(chunks) != 3 or any(int(c) <= 0 for c in chunks):
            raise VolumeError(f"{path}: chunks must be 3 positive integers (z, y, x), got {chunks!r}")
        disk_chunks = tuple(min(int(c), n) for c, n in zip(chunks, shp))
    if fmt == "zarr":
        _save_zarr(arr, path, voxel_um, disk_chunks, overwrite)
    elif fmt == "hdf5":
        _save_hdf5(arr, path, voxel_um, disk_chunks)
    else:
        _save_tiff(arr, path, voxel_um)
    return path


def _save_zarr(arr: da.Array, path: Path, voxel_um: float | None, chunks: tuple[int, ...], overwrite: bool) -> None:
    import shutil

    import zarr

    if path.exists() and overwrite:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    z = zarr.open_array(str(path), mode="w", shape=arr.shape, chunks=chunks, dtype=arr.dtype)
    if voxel_um is not None:
        z.attrs["voxel_um"] = voxel_um
    da.store(arr.rechunk(chunks), z, lock=False)


def _save_hdf5(arr: da.Array, path: Path, voxel_um: float | None, chunks: tuple[int, ...]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        grp = entry.create_group("data")
        grp.attrs["NX_class"] = "NXdata"
        grp.attrs["signal"] = "data"
        ds = grp.create_dataset("data", shape=arr.shape, dtype=arr.dtype, chunks=chunks)
        if voxel_um is not None:
            ds.attrs["voxel_size"] = voxel_um
            ds.attrs["voxel_size_units"] = "um"
        da.store(arr.rechunk(chunks), ds, lock=True)


def _save_tiff(arr: da.Array, path: Path, voxel_um: float | None) -> None:
    import tifffile

    dtype = np.dtype(arr.dtype)
    imagej = dtype in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
    slab = arr.rechunk((arr.chunks[0], arr.shape[1], arr.shape[2]))

    def pages() -> Iterator[npt.NDArray[Any]]:
        for block in slab.to_delayed().ravel():
            yield from np.asarray(block.compute())

    kwargs: dict[str, Any] = {}
    if imagej:
        metadata: dict[str, Any] = {"axes": "ZYX"}
        if voxel_um is not None:
            metadata.update(spacing=voxel_um, unit="um")
            kwargs["resolution"] = (1.0 / voxel_um, 1.0 / voxel_um)
    else:
        metadata = {"axes": "ZYX"}
        if voxel_um is not None:
            metadata["voxel_um"] = voxel_um
        kwargs["bigtiff"] = arr.nbytes > 2**32 - 2**25
    try:
        tifffile.imwrite(path, pages(), shape=arr.shape, dtype=dtype, imagej=imagej, metadata=metadata, **kwargs)
    except VolumeError:
        raise
    except (OSError, ValueError) as exc:
        raise VolumeError(f"{path}: cannot write TIFF ({exc})") from exc
