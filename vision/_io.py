"""Reading camera frames: a folder of images (natural sort) or a video file, and frame times.

An edge module (files); everything it returns is plain numpy. Errors name the file and
what was expected (`FrameError`, a ValueError).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FrameError", "FrameSource", "frame_times", "open_frames", "read_image", "read_times"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")


class FrameError(ValueError):
    """A frame file or frame sequence cannot be read or does not match the others."""


def _natural_key(path: Path) -> list[object]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def read_image(path: str | Path) -> np.ndarray:
    """Read one 8- or 16-bit greyscale (or colour, converted to grey) image.

    Raises
    ------
    FrameError
        If the file is missing, unreadable or not a 2D/3D image.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FrameError(f"{path}: no such image file")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            img = tifffile.imread(path)
        except Exception as exc:  # tifffile raises several types for corrupt files
            raise FrameError(f"{path}: not a readable TIFF image ({exc})") from exc
    else:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FrameError(f"{path}: not a readable image (expected PNG/TIFF/BMP/JPEG, 8 or 16 bit)")
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        # tifffile gives RGB, OpenCV gives BGR; a weighted sum works for every dtype
        weights = np.array([0.299, 0.587, 0.114]) if path.suffix.lower() in (".tif", ".tiff") else np.array([0.114, 0.587, 0.299])
        grey = img[..., :3].astype(np.float64) @ weights
        img = grey.astype(img.dtype) if np.issubdtype(img.dtype, np.integer) else grey
    if img.ndim != 2:
        raise FrameError(f"{path}: expected a 2D greyscale image, found an array of shape {img.shape}")
    return img


@dataclass(frozen=True)
class FrameSource:
    """A sequence of frames on disk (image files or one video), read lazily.

    Attributes
    ----------
    path : Path
        Folder or video file.
    files : tuple of Path
        Image files in natural sort order (empty for a video).
    n_frames : int
        Number of frames.
    shape : tuple of int
        Frame shape (rows, cols).
    dtype : numpy.dtype
        Frame dtype.
    fps : float or None
        Frame rate stored in a video file.
    """

    path: Path
    files: tuple[Path, ...]
    n_frames: int
    shape: tuple[int, int]
    dtype: np.dtype
    fps: float | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files:
            for f in self.files:
                img = read_image(f)
                if img.shape != self.shape or img.dtype != self.dtype:
                    raise FrameError(
                        f"{f}: frame does not match the first frame: expected {self.shape} {self.dtype}, found {img.shape} {img.dtype}"
                    )
                yield img
            return
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            for i in range(self.n_frames):
                ok, img = cap.read()
                if not ok:
                    raise FrameError(f"{self.path}: video ends or is corrupt at frame {i} of {self.n_frames}")
                yield cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        finally:
            cap.release()

    def __len__(self) -> int:
        return self.n_frames


def open_frames(path: str | Path) -> FrameSource:
    """Open a folder of images (natural sort: ``f2`` before ``f10``) or a video file.

    Raises
    ------
    FrameError
        Missing path, empty folder, unreadable first frame, or an unknown file type.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural_key)
        if not files:
            raise FrameError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        first = read_image(files[0])
        return FrameSource(path, tuple(files), len(files), first.shape, first.dtype)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise FrameError(f"{path}: cannot open the video file")
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
            ok, img = cap.read()
        finally:
            cap.release()
        if not ok or n <= 0:
            raise FrameError(f"{path}: the video has no readable frames")
        grey = img if img.ndim == 2 else img[..., 0]
        return FrameSource(path, (), n, grey.shape, grey.dtype, fps)
    if path.is_file():
        raise FrameError(f"{path}: expected a folder of images or a video ({', '.join(VIDEO_SUFFIXES)})")
    raise FrameError(f"{path}: no such folder or video file")


def read_times(path: str | Path, n_frames: int) -> np.ndarray:
    """Frame times in minutes from a CSV/text file.

    Accepts a CSV with a ``t_min`` (or ``t_s``) column, or one number (minutes) per line.

    Raises
    ------
    FrameError
        Unreadable file, non-numeric or non-increasing times, or a count that differs
        from ``n_frames``.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FrameError(f"{path}: no such times file")
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise FrameError(f"{path}: not a readable CSV/text file ({exc})") from exc
    cols = [c.strip().lower() for c in df.columns]
    if "t_min" in cols:
        t = pd.to_numeric(df.iloc[:, cols.index("t_min")], errors="coerce").to_numpy(float)
    elif "t_s" in cols:
        t = pd.to_numeric(df.iloc[:, cols.index("t_s")], errors="coerce").to_numpy(float) / 60.0
    else:
        try:
            t = np.loadtxt(path, dtype=float, ndmin=1)
        except ValueError as exc:
            raise FrameError(f"{path}: expected a column 't_min' or 't_s', or one number (minutes) per line") from exc
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise FrameError(f"{path}: expected finite numbers, found non-numeric entries")
    if len(t) != n_frames:
        raise FrameError(f"{path}: expected {n_frames} times (one per frame), found {len(t)}")
    if np.any(np.diff(t) <= 0):
        raise FrameError(f"{path}: expected strictly increasing times")
    return t


def frame_times(n_frames: int, *, times_file: str | Path | None = None, fps: float | None = None,
                video_fps: float | None = None) -> np.ndarray:
    """Frame times (minutes): from a times file, a frame rate, the video's own rate, or frame index."""
    if times_file is not None:
        return read_times(times_file, n_frames)
    rate = fps or video_fps
    if rate is not None:
        if not (math.isfinite(rate) and rate > 0):
            raise FrameError(f"fps: expected a positive frame rate, found {rate}")
        return np.arange(n_frames) / rate / 60.0
    return np.arange(n_frames, dtype=float)
