"""Reading CT volumes lazily: TIFF slices/stacks, HDF5/NeXus, zarr and raw binary.

An edge module (files). Every volume comes back as a `Volume`: a lazily read
`dask.array.Array` in (z, y, x) order (z = coating normal) with the voxel size in um
carried alongside. Nothing is read from disk until ``compute()`` except headers and
metadata. Every bad file raises `VolumeError` (a ValueError) naming the path and what
was expected versus found.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np
import numpy.typing as npt

__all__ = ["Volume", "VolumeError", "open_volume"]

TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".nxs", ".nx5", ".hdf")
RAW_SUFFIXES = (".raw", ".bin", ".vol")
ZARR_SUFFIXES = (".zarr",)
_ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")

#: Chunk depth (slices) and in-plane tile (voxels) used when ``chunks`` is not given.
DEFAULT_DEPTH = 64
DEFAULT_TILE = 1024
#: Byte budget of one chunk when whole slices must be read together (TIFF slices/pages).
_SLICE_CHUNK_BYTES = 256 * 2**20

_UNIT_TO_UM = {
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "\\u00b5m": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "micrometers": 1.0,
    "micrometres": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
}
_VOXEL_KEYS_UM = ("voxel_um", "voxel_size_um", "pixel_size_um")
_VOXEL_KEYS = ("voxel_size", "pixel_size")

Chunks = int | str | tuple[int | str, ...] | None


class VolumeError(ValueError):
    """A volume file cannot be read or written, or does not contain what was expected."""


# --------------------------------------------------------------------------- Volume


@dataclass(frozen=True, eq=False)
class Volume:
    """A lazily read 3D CT volume with its voxel size.

    Parameters
    ----------
    data : dask.array.Array, shape (Z, Y, X)
        Voxel values in (z, y, x) order, z along the coating normal. Read lazily.
    voxel_um : float or None
        Edge length of a (cubic) voxel in micrometres; None when unknown.
    source : Path
        File or folder the volume was read from (or will be written to).
    dataset : str or None
        Path of the array inside an HDF5 file or zarr group; None for other formats.

    Examples
    --------
    >>> vol = open_volume("scan.h5")                    # doctest: +SKIP
    >>> vol.shape, vol.voxel_um                         # doctest: +SKIP
    ((2160, 2560, 2560), 0.65)
    >>> sub = vol.data[1000:1064].compute()             # doctest: +SKIP
    """

    data: da.Array
    voxel_um: float | None
    source: Path
    dataset: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, da.Array):
            raise VolumeError(f"{self.source}: Volume.data must be a dask array, got {type(self.data).__name__}")
        if self.data.ndim != 3:
            raise VolumeError(f"{self.source}: expected a 3D (z, y, x) volume, found shape {self.data.shape}")
        object.__setattr__(self, "source", Path(self.source))
        if self.voxel_um is not None:
            object.__setattr__(self, "voxel_um", _check_voxel(self.voxel_um, self.source))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Volume shape (Z, Y, X) in voxels."""
        z, y, x = (int(n) for n in self.data.shape)
        return (z, y, x)

    @property
    def dtype(self) -> np.dtype[Any]:
        """Voxel data type (native byte order)."""
        return np.dtype(self.data.dtype)

    def compute(self) -> npt.NDArray[Any]:
        """Read the whole volume into memory.

        Returns
        -------
        ndarray, shape (Z, Y, X)
            The voxel values; beware of memory for full synchrotron scans (tens of GB).
        """
        return np.asarray(self.data.compute())


# --------------------------------------------------------------------------- helpers


def _natural_key(path: Path) -> list[object]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def _check_voxel(value: Any, where: object) -> float:
    if isinstance(value, bool):
        raise VolumeError(f"{where}: voxel size must be a positive finite number in um, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise VolumeError(f"{where}: voxel size must be a positive finite number in um, got {value!r}") from exc
    if not math.isfinite(v) or v <= 0:
        raise VolumeError(f"{where}: voxel size must be a positive finite number in um, got {value!r}")
    return v


def _unit_factor(unit: Any) -> float | None:
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    if isinstance(unit, np.ndarray) and unit.size == 1:
        unit = unit.item()
        if isinstance(unit, bytes):
            unit = unit.decode("utf-8", "replace")
    if not isinstance(unit, str):
        return None
    return _UNIT_TO_UM.get(unit.strip().lower())


def _scalar_size(value: Any, key: str, where: object) -> float:
    """One voxel edge from an attribute that may be a scalar or a (z, y, x) triple."""
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "iuf" or arr.size not in (1, 2, 3):
        raise VolumeError(f"{where}: attribute {key!r} should be a number or 3 numbers (z, y, x), found {value!r}")
    vals = arr.astype(np.float64).ravel()
    if not np.allclose(vals, vals[0], rtol=1e-6, atol=0):
        raise VolumeError(
            f"{where}: anisotropic voxel size {key}={vals.tolist()} is not supported; pass voxel_um= explicitly"
        )
    return float(vals[0])


def _voxel_from_attrs(chain: Sequence[Mapping[str, Any]], where: object) -> float | None:
    """Voxel size in um from the first attribute set (innermost first) that has one."""
    for attrs in chain:
        for key in _VOXEL_KEYS_UM:
            if key in attrs:
                return _check_voxel(_scalar_size(attrs[key], key, where), where)
        for key in _VOXEL_KEYS:
            if key not in attrs:
                continue
            size = _scalar_size(attrs[key], key, where)
            factor = 1.0  # no unit given: um assumed
            for ukey in (f"{key}_units", f"{key}_unit"):
                if ukey in attrs:
                    factor_or_none = _unit_factor(attrs[ukey])
                    if factor_or_none is None:
                        raise VolumeError(
                            f"{where}: unknown length unit {attrs[ukey]!r} in attribute {ukey!r} "
                            f"(expected one of um, micron, nm, mm, m)"
                        )
                    factor = factor_or_none
                    break
            else:
                for ukey in ("units", "unit"):
                    # a bare `units` may describe the voxel values; use it only if it is a length
                    if ukey in attrs and (f := _unit_factor(attrs[ukey])) is not None:
                        factor = f
                        break
            return _check_voxel(size * factor, where)
    return None


def _default_chunks(shape: Sequence[int], itemsize: int) -> tuple[int, int, int]:
    z, y, x = shape
    return (max(1, min(z, DEFAULT_DEPTH)), max(1, min(y, DEFAULT_TILE)), max(1, min(x, DEFAULT_TILE)))


def _slice_chunks(shape: Sequence[int], itemsize: int, chunks: Chunks) -> Chunks:
    """Chunks for sources that read whole slices: full (y, x), depth from a byte budget."""
    if chunks is not None:
        return chunks
    z, y, x = shape
    depth = _SLICE_CHUNK_BYTES // max(1, y * x * itemsize)
    return (max(1, min(z, DEFAULT_DEPTH, depth)), y, x)


def _aligned_chunks(shape: Sequence[int], native: Sequence[int] | None, itemsize: int) -> tuple[int, ...]:
    """Default chunks rounded up to whole multiples of the file's own chunks."""
    base = _default_chunks(shape, itemsize)
    if not native:
        return base
    return tuple(min(n, max(c, (b // c) * c)) for b, c, n in zip(base, native, shape))


def _token(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def _file_token(path: Path, *parts: object) -> str:
    st = path.stat()
    return _token(str(path.resolve()), st.st_size, st.st_mtime_ns, *parts)


class _LazySource:
    """Array-like for `dask.array.from_array` that opens the file on every block read."""

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype[Any]) -> None:
        self.shape = shape
        self.dtype = dtype
        self.ndim = 3

    def _read(self, key: tuple[slice, slice, slice]) -> npt.NDArray[Any]:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        if not isinstance(key, tuple):
            key = (key,)
        key = tuple(key) + (slice(None),) * (3 - len(key))
        if not all(isinstance(k, slice) for k in key):
            return self._read((slice(None),) * 3)[key]  # only hit for exotic indexing
        out = self._read(key)  # type: ignore[arg-type]
        return np.ascontiguousarray(out, dtype=self.dtype)


def _wrap(source: _LazySource, chunks: Chunks, name: str) -> da.Array:
    return da.from_array(
        source,
        chunks=chunks if chunks is not None else _default_chunks(source.shape, source.dtype.itemsize),
        name=name,
        lock=False,
        asarray=False,
        meta=np.empty((0, 0, 0), dtype=source.dtype),
    )


def _check_chunks(chunks: Chunks, path: Path) -> None:
    if chunks is None or isinstance(chunks, (int, str)):
        if isinstance(chunks, int) and (isinstance(chunks, bool) or chunks <= 0):
            raise VolumeError(f"{path}: chunks must be positive, got {chunks!r}")
        return
    if not isinstance(chunks, tuple) or len(chunks) != 3:
        raise VolumeError(f"{path}: chunks must be an int, 'auto' or a (z, y, x) tuple, got {chunks!r}")


# --------------------------------------------------------------------------- raw


class _RawSource(_LazySource):
    def __init__(self, path: Path, shape: tuple[int, int, int], file_dtype: np.dtype[Any], offset: int) -> None:
        super().__init__(shape, file_dtype.newbyteorder("="))
        self.path = path
        self.file_dtype = file_dtype
        self.offset = offset

    def _read(self, key: tuple[slice, slice, slice]) -> npt.NDArray[Any]:
        try:
            mm = np.memmap(self.path, dtype=self.file_dtype, mode="r", offset=self.offset, shape=self.shape)
        except (OSError, ValueError) as exc:
            raise VolumeError(f"{self.path}: cannot map raw data ({exc})") from exc
        try:
            return np.array(mm[key], dtype=self.dtype)  # copy + byte swap, then drop the map
        finally:
            del mm


def _open_raw(
    path: Path,
    shape: Sequence[int] | None,
    dtype: npt.DTypeLike | None,
    byte_order: str,
    header_bytes: int,
    chunks: Chunks,
) -> da.Array:
    if shape is None or dtype is None:
        raise VolumeError(
            f"{path}: raw binary volumes need shape=(z, y, x) and dtype= (got shape={shape}, dtype={dtype})"
        )
    try:
        shp = tuple(int(n) for n in shape)
    except (TypeError, ValueError) as exc:
        raise VolumeError(f"{path}: shape must be 3 positive integers (z, y, x), got {shape!r}") from exc
    if len(shp) != 3 or any(n <= 0 for n in shp):
        raise VolumeError(f"{path}: shape must be 3 positive integers (z, y, x), got {shape!r}")
    if byte_order not in ("<", ">"):
        raise VolumeError(f"{path}: byte_order must be '<' (little endian) or '>' (big endian), got {byte_order!r}")
    if isinstance(dtype, str) and dtype[:1] in "<>" and dtype[0] != byte_order:
        raise VolumeError(f"{path}: dtype {dtype!r} contradicts byte_order={byte_order!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise VolumeError(f"{path}: unknown dtype {dtype!r}") from exc
    if dt.kind not in "biufc" or dt.fields is not None:
        raise VolumeError(f"{path}: dtype must be numeric (bool, int, uint, float, complex), got {dt}")
    file_dt = dt.newbyteorder(byte_order) if dt.itemsize > 1 else dt
    if isinstance(header_bytes, bool) or not isinstance(header_bytes, (int, np.integer)) or header_bytes < 0:
        raise VolumeError(f"{path}: header_bytes must be a non-negative integer, got {header_bytes!r}")
    expected = int(header_bytes) + math.prod(shp) * dt.itemsize
    found = path.stat().st_size
    if found != expected:
        what = "truncated file or wrong shape/dtype" if found < expected else "wrong shape/dtype or header_bytes"
        raise VolumeError(
            f"{path}: expected {expected} bytes ({header_bytes} header + {'x'.join(map(str, shp))} voxels x "
            f"{dt.itemsize} bytes of {dt}), found {found} bytes ({what})"
        )
    src = _RawSource(path, shp, file_dt, int(header_bytes))  # type: ignore[arg-type]
    return _wrap(src, chunks, f"raw-{_file_token(path, shp, file_dt.str, header_bytes)}")


# --------------------------------------------------------------------------- TIFF


def _tiff_voxel(tf: Any, path: Path) -> float | None:
    """Voxel size in um from ImageJ `spacing`/`unit`, tifffile shaped metadata or XResolution."""
    shaped = getattr(tf, "shaped_metadata", None)
    if shaped:
        for md in shaped:
            if isinstance(md, Mapping):
                v = _voxel_from_attrs([md], path)
                if v is not None:
                    return v
    ij = tf.imagej_metadata or {}
    factor = _unit_factor(ij.get("unit")) if ij else None
    if ij and factor is None and ij.get("unit") not in (None, "", "pixel", "pixels"):
        raise VolumeError(f"{path}: ImageJ unit {ij.get('unit')!r} is not a known length unit (expected um, mm, ...)")
    z_um = float(ij["spacing"]) * factor if (factor is not None and "spacing" in ij) else None
    xy_um = None
    page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
    tag = page.tags.get("XResolution")
    if tag is not None and factor is not None:
        num, den = tag.value
        if num > 0 and den > 0 and (num, den) != (1, 1):
            xy_um = den / num * factor
    sizes = [v for v in (z_um, xy_um) if v is not None]
    if not sizes:
        return None
    if len(sizes) == 2 and not math.isclose(sizes[0], sizes[1], rel_tol=1e-4):
        raise VolumeError(
            f"{path}: anisotropic voxel size (z {sizes[0]:g} um, xy {sizes[1]:g} um) is not supported; "
            f"pass voxel_um= explicitly"
        )
    return _check_voxel(sizes[0], path)


class _TiffPagesSource(_LazySource):
    """A multipage TIFF read page by page (compressed or non-contiguous data)."""

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype[Any]) -> None:
        super().__init__(shape, dtype.newbyteorder("="))
        self.path = path

    def _read(self, key: tuple[slice, slice, slice]) -> npt.NDArray[Any]:
        import tifffile

        zs = range(*key[0].indices(self.shape[0]))
        try:
            with tifffile.TiffFile(self.path) as tf:
                block = tf.series[0].asarray(key=list(zs)).reshape((len(zs),) + self.shape[1:])
        except Exception as exc:  # tifffile raises several types for corrupt files
            raise VolumeError(f"{self.path}: cannot read TIFF pages {zs.start}-{zs.stop - 1} ({exc})") from exc
        return block[:, key[1], key[2]]


def _open_tiff(path: Path, chunks: Chunks, read_voxel: bool) -> tuple[da.Array, float | None]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            if not tf.series:
                raise VolumeError(f"{path}: TIFF file holds no image series")
            series = tf.series[0]
            shape, axes = tuple(series.shape), series.axes
            dtype = np.dtype(series.dtype)
            byteorder = tf.byteorder
            offset = series.dataoffset
            npages = len(series.pages)
            voxel = _tiff_voxel(tf, path) if read_voxel else None
    except VolumeError:
        raise
    except Exception as exc:  # TiffFileError, struct.error, ...
        raise VolumeError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc})") from exc
    if len(shape) != 3 or axes[-2:] != "YX":
        raise VolumeError(
            f"{path}: expected a 3D greyscale stack (z, y, x), found shape {shape} with axes {axes!r}"
        )
    if dtype.kind not in "biuf":
        raise VolumeError(f"{path}: expected numeric voxels, found dtype {dtype}")
    shp: tuple[int, int, int] = (int(shape[0]), int(shape[1]), int(shape[2]))
    chunks = _slice_chunks(shp, dtype.itemsize, chunks)
    if offset is not None:  # uncompressed and contiguous: map it like raw data
        file_dt = dtype.newbyteorder(byteorder) if dtype.itemsize > 1 else dtype
        src: _LazySource = _RawSource(path, shp, file_dt, int(offset))
        return _wrap(src, chunks, f"tiff-{_file_token(path, 'raw')}"), voxel
    if npages == shp[0]:
        return _wrap(_TiffPagesSource(path, shp, dtype), chunks, f"tiff-{_file_token(path, 'pages')}"), voxel
    raise VolumeError(
        f"{path}: unsupported TIFF layout ({npages} pages for {shp[0]} slices, compressed volumetric tiles)"
    )


class _SliceFolderSource(_LazySource):
    def __init__(self, files: list[Path], shape: tuple[int, int, int], dtype: np.dtype[Any]) -> None:
        super().__init__(shape, dtype)
        self.files = files

    def _read(self, key: tuple[slice, slice, slice]) -> npt.NDArray[Any]:
        import tifffile

        idx = range(*key[0].indices(self.shape[0]))
        out = np.empty((len(idx),) + self.shape[1:], dtype=self.dtype)
        for j, i in enumerate(idx):
            f = self.files[i]
            try:
                img = tifffile.imread(f)
            except Exception as exc:
                raise VolumeError(f"{f}: not a readable TIFF slice ({type(exc).__name__}: {exc})") from exc
            img = np.squeeze(img) if img.ndim > 2 else img
            if img.shape != self.shape[1:] or img.dtype != self.dtype:
                raise VolumeError(
                    f"{f}: slice {i} has shape {img.shape} dtype {img.dtype}, expected shape "
                    f"{self.shape[1:]} dtype {self.dtype} like the first slice {self.files[0].name}"
                )
            out[j] = img
        return out[:, key[1], key[2]]


def _slice_header(f: Path, read_voxel: bool = False) -> tuple[tuple[int, ...], np.dtype[Any], Any]:
    import tifffile

    try:
        with tifffile.TiffFile(f) as tf:
            s = tf.series[0]
            shape = tuple(n for n in s.shape if n != 1) if len(s.shape) > 2 else tuple(s.shape)
            voxel = _tiff_voxel(tf, f) if read_voxel else None
            return shape, np.dtype(s.dtype).newbyteorder("="), voxel
    except VolumeError:
        raise
    except Exception as exc:
        raise VolumeError(f"{f}: not a readable TIFF slice ({type(exc).__name__}: {exc})") from exc


def _open_folder(path: Path, chunks: Chunks, read_voxel: bool) -> tuple[da.Array, float | None]:
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES), key=_natural_key)
    if not files:
        n = sum(1 for _ in path.iterdir())
        raise VolumeError(
            f"{path}: expected a folder of 2D TIFF slices (.tif/.tiff) or a zarr store, found {n} other entries"
        )
    shape0, dtype0, voxel = _slice_header(files[0], read_voxel)
    if len(shape0) != 2:
        raise VolumeError(f"{files[0]}: expected a 2D slice, found shape {shape0}")
    if dtype0.kind not in "biuf":
        raise VolumeError(f"{files[0]}: expected numeric voxels, found dtype {dtype0}")
    if len(files) > 1:
        shape1, dtype1, _ = _slice_header(files[-1])
        if shape1 != shape0 or dtype1 != dtype0:
            raise VolumeError(
                f"{files[-1]}: slice has shape {shape1} dtype {dtype1}, expected shape {shape0} dtype {dtype0} "
                f"like the first slice {files[0].name}"
            )
    shp = (len(files), int(shape0[0]), int(shape0[1]))
    src = _SliceFolderSource(files, shp, dtype0)
    token = _token(str(path.resolve()), [(f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files])
    return _wrap(src, _slice_chunks(shp, dtype0.itemsize, chunks), f"tiffdir-{token}"), voxel


# --------------------------------------------------------------------------- HDF5


class _H5Source(_LazySource):
    def __init__(self, path: Path, dataset: str, shape: tuple[int, int, int], dtype: np.dtype[Any]) -> None:
        super().__init__(shape, dtype.newbyteorder("="))
        self.path = path
        self.dataset = dataset

    def _read(self, key: tuple[slice, slice, slice]) -> npt.NDArray[Any]:
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                return np.asarray(f[self.dataset][key])
        except (OSError, KeyError) as exc:
            raise VolumeError(f"{self.path}: cannot read {self.dataset} {key} ({exc})") from exc


def _is_volume_ds(obj: Any) -> bool:
    import h5py

    return isinstance(obj, h5py.Dataset) and obj.ndim == 3 and obj.dtype.kind in "biuf"


def _find_h5_dataset(f: Any, path: Path) -> str:
    import h5py

    volumes: dict[str, tuple[int, ...]] = {}
    signals: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if _is_volume_ds(obj):
            volumes["/" + name] = tuple(obj.shape)
        elif isinstance(obj, h5py.Group) and _attr_str(obj.attrs.get("NX_class")) == "NXdata":
            sig = _attr_str(obj.attrs.get("signal"))
            if sig and sig in obj and _is_volume_ds(obj[sig]):
                signals.append(obj[sig].name)

    f.visititems(visit)
    listing = ", ".join(f"{k} {v}" for k, v in volumes.items()) or "none"
    for candidates in (signals, [k for k in volumes if re.fullmatch(r"/entry[^/]*/data/data", k)]):
        unique = sorted(set(candidates))
        if len(unique) == 1:
            return unique[0]
        if len(unique) > 1:
            raise VolumeError(f"{path}: several candidate 3D datasets ({', '.join(unique)}); pass dataset=")
    if not volumes:
        raise VolumeError(f"{path}: no 3D numeric dataset found (expected e.g. /entry/data/data)")
    sizes = sorted(((math.prod(s), k) for k, s in volumes.items()), reverse=True)
    if len(sizes) > 1 and sizes[0][0] == sizes[1][0]:
        raise VolumeError(f"{path}: ambiguous, several equally large 3D datasets: {listing}; pass dataset=")
    return sizes[0][1]


def _attr_str(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr_str(value.item())
    return value if isinstance(value, str) else None


def _open_hdf5(path: Path, dataset: str | None, chunks: Chunks, read_voxel: bool) -> tuple[da.Array, float | None, str]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise VolumeError(f"{path}: not a readable HDF5/NeXus file ({exc})") from exc
    with f:
        if dataset is None:
            name = _find_h5_dataset(f, path)
        else:
            name = dataset if dataset.startswith("/") else "/" + dataset
            if name not in f:
                found = []
                f.visititems(lambda n, o: found.append(f"/{n} {o.shape}") if _is_volume_ds(o) else None)
                raise VolumeError(
                    f"{path}: no dataset {name!r}; 3D datasets in the file: {', '.join(found) or 'none'}"
                )
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise VolumeError(f"{path}: {name!r} is a group, expected a 3D dataset")
        if ds.ndim != 3:
            raise VolumeError(
                f"{path}: dataset {name!r} has shape {ds.shape} ({ds.ndim}D), expected a 3D (z, y, x) volume"
            )
        if ds.dtype.kind not in "biuf":
            raise VolumeError(f"{path}: dataset {name!r} has dtype {ds.dtype}, expected numeric voxels")
        chain = [dict(ds.attrs)]
        parent = ds.parent
        while True:
            chain.append(dict(parent.attrs))
            if parent.name == "/":
                break
            parent = parent.parent
        voxel = _voxel_from_attrs(chain, f"{path}:{name}") if read_voxel else None
        shp = (int(ds.shape[0]), int(ds.shape[1]), int(ds.shape[2]))
        native = ds.chunks
        src = _H5Source(path, name, shp, np.dtype(ds.dtype))
    if chunks is None:
        chunks = _aligned_chunks(shp, native, src.dtype.itemsize)
    return _wrap(src, chunks, f"h5-{_file_token(path, name)}"), voxel, name


# --------------------------------------------------------------------------- zarr


def _is_zarr_dir(path: Path) -> bool:
    return path.is_dir() and (path.suffix.lower() in ZARR_SUFFIXES or any((path / m).exists() for m in _ZARR_MARKERS))


def _zarr_arrays(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, arr in group.arrays():
        yield prefix + name, arr
    for name, sub in group.groups():
        yield from _zarr_arrays(sub, prefix + name + "/")


def _open_zarr(
    path: Path, dataset: str | None, chunks: Chunks, read_voxel: bool
) -> tuple[da.Array, float | None, str | None]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types (FileNotFoundError, ValueError, ...)
        raise VolumeError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from exc
    chain = []
    name: str | None = None
    if hasattr(node, "arrays"):  # a group
        root = node
        if dataset is None:
            vols = [(k, a) for k, a in _zarr_arrays(root) if a.ndim == 3 and np.dtype(a.dtype).kind in "biuf"]
            if len(vols) != 1:
                listing = ", ".join(f"{k} {a.shape}" for k, a in vols) or "none"
                raise VolumeError(
                    f"{path}: expected exactly one 3D array in the zarr group, found {listing}; pass dataset="
                )
            name, arr = vols[0]
        else:
            name = dataset.strip("/")
            try:
                arr = root[name]
            except KeyError as exc:
                listing = ", ".join(f"{k} {a.shape}" for k, a in _zarr_arrays(root)) or "none"
                raise VolumeError(f"{path}: no array {name!r} in the zarr group; arrays: {listing}") from exc
            if hasattr(arr, "arrays"):
                raise VolumeError(f"{path}: {name!r} is a zarr group, expected a 3D array")
        parts = name.split("/")
        chain.append(arr.attrs.asdict())
        for i in range(len(parts) - 1, -1, -1):
            chain.append((root["/".join(parts[:i])] if i else root).attrs.asdict())
    else:
        arr = node
        if dataset not in (None, "", "/"):
            raise VolumeError(f"{path}: zarr store is a single array; dataset={dataset!r} cannot be applied")
        chain.append(arr.attrs.asdict())
    if arr.ndim != 3:
        raise VolumeError(f"{path}: zarr array {name or '/'} has shape {arr.shape}, expected a 3D (z, y, x) volume")
    if np.dtype(arr.dtype).kind not in "biuf":
        raise VolumeError(f"{path}: zarr array {name or '/'} has dtype {arr.dtype}, expected numeric voxels")
    voxel = _voxel_from_attrs(chain, path) if read_voxel else None
    data = da.from_zarr(arr, chunks=chunks) if chunks is not None else da.from_zarr(arr)
    return data, voxel, name


# --------------------------------------------------------------------------- public


def open_volume(
    path: str | Path,
    *,
    dataset: str | None = None,
    voxel_um: float | None = None,
    shape: Sequence[int] | None = None,
    dtype: npt.DTypeLike | None = None,
    byte_order: Literal["<", ">"] = "<",
    header_bytes: int = 0,
    chunks: Chunks = None,
) -> Volume:
    """Open a CT volume lazily.

    The format follows from the path: a folder of 2D TIFF slices, one multipage/3D TIFF
    (``.tif``/``.tiff``), HDF5/NeXus (``.h5``, ``.hdf5``, ``.nxs``), a zarr store (``.zarr``
    or a folder with zarr metadata) or raw binary (``.raw``, ``.bin``, ``.vol``).

    Parameters
    ----------
    path : str or Path
        File or folder to read.
    dataset : str, optional
        Path of the array inside an HDF5 file or zarr group. When omitted, HDF5 files are
        searched for the NeXus ``NXdata`` signal, then ``/entry*/data/data``, then the largest
        3D numeric dataset; zarr groups must hold exactly one 3D array.
    voxel_um : float, optional
        Voxel edge length in um; overrides whatever the file says.
    shape : sequence of 3 int, optional
        (z, y, x) shape in voxels; required for raw binary files.
    dtype : dtype-like, optional
        Voxel type on disk; required for raw binary files.
    byte_order : {'<', '>'}
        Byte order of raw binary files (little or big endian).
    header_bytes : int
        Bytes to skip at the start of a raw binary file.
    chunks : int, 'auto' or tuple of 3, optional
        Dask chunks. Default: the store's own chunks for zarr; whole slices, up to 64 deep
        and ~256 MiB per chunk for TIFF; (64, 1024, 1024) aligned to the file's chunks
        for HDF5 and raw.

    Returns
    -------
    Volume
        ``data`` is a dask array in native byte order; nothing but headers and metadata has
        been read.

    Raises
    ------
    VolumeError
        If the path is missing, of unknown type, corrupt, truncated, not 3D, inconsistent
        (TIFF slices of different shape/dtype; raised at compute time for middle slices), or
        the options are invalid. The message names the file and expected versus found.

    Notes
    -----
    Voxel sizes are read from ImageJ ``spacing``/``unit`` and the TIFF resolution tags, from
    HDF5/zarr attributes ``voxel_um``, ``voxel_size_um``, ``pixel_size_um`` (um) or
    ``voxel_size``/``pixel_size`` with a ``<name>_units`` or length ``units`` attribute
    (um, micron, nm, mm, m; um when absent), looking at the dataset first then its parent
    groups. Anisotropic or unit-less-but-unknown voxel metadata raises `VolumeError`; with ``voxel_um``
    given, voxel metadata in the file is not read at all.
    Readers open the file anew for each chunk, so no file handle stays open.

    Examples
    --------
    >>> vol = open_volume("scan.raw", shape=(2160, 2560, 2560), dtype="uint16",
    ...                   voxel_um=0.65)                           # doctest: +SKIP
    >>> vol.data[1000].compute().shape                             # doctest: +SKIP
    (2560, 2560)
    """
    path = Path(path)
    if voxel_um is not None:
        voxel_um = _check_voxel(voxel_um, path)
    _check_chunks(chunks, path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix not in RAW_SUFFIXES and (shape is not None or dtype is not None or header_bytes):
        raise VolumeError(f"{path}: shape=, dtype= and header_bytes= only apply to raw binary files {RAW_SUFFIXES}")
    name: str | None = None
    read = voxel_um is None  # an explicit voxel_um skips (possibly bad) file metadata
    if _is_zarr_dir(path) or (suffix in ZARR_SUFFIXES):
        data, found, name = _open_zarr(path, dataset, chunks, read)
    elif path.is_dir():
        if dataset is not None:
            raise VolumeError(f"{path}: dataset= does not apply to a folder of TIFF slices")
        data, found = _open_folder(path, chunks, read)
    elif suffix in TIFF_SUFFIXES:
        if dataset is not None:
            raise VolumeError(f"{path}: dataset= does not apply to TIFF files")
        data, found = _open_tiff(path, chunks, read)
    elif suffix in HDF5_SUFFIXES:
        data, found, name = _open_hdf5(path, dataset, chunks, read)
    elif suffix in RAW_SUFFIXES:
        if dataset is not None:
            raise VolumeError(f"{path}: dataset= does not apply to raw binary files")
        data, found = _open_raw(path, shape, dtype, byte_order, header_bytes, chunks), None
    else:
        known = TIFF_SUFFIXES + HDF5_SUFFIXES + ZARR_SUFFIXES + RAW_SUFFIXES
        raise VolumeError(
            f"{path}: unknown volume format {suffix or '(no extension)'!r}; expected a folder of TIFF slices "
            f"or one of {', '.join(known)}"
        )
    return Volume(data=data, voxel_um=voxel_um if voxel_um is not None else found, source=path, dataset=name)
