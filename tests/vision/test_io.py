"""Frame sequences on disk: natural sort, 8/16 bit, video, times files, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

from vision._io import FrameError, frame_times, open_frames, read_image, read_times


def _frames(n: int, shape=(32, 48), dtype=np.uint8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    hi = 255 if dtype == np.uint8 else 65535
    return [rng.integers(0, hi, size=shape, dtype=dtype) for _ in range(n)]


def test_folder_natural_sort_png_8bit(tmp_path):
    frames = _frames(12)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), f)
    src = open_frames(tmp_path)
    assert [p.name for p in src.files][:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert src.files[-1].name == "frame11.png"  # 11 after 2 (natural sort), not after 1
    got = list(src)
    assert len(got) == 12 and all(np.array_equal(a, b) for a, b in zip(got, frames))


def test_folder_tiff_16bit(tmp_path):
    frames = _frames(3, dtype=np.uint16)
    for i, f in enumerate(frames):
        tifffile.imwrite(tmp_path / f"s_{i:03d}.tif", f)
    src = open_frames(tmp_path)
    assert src.dtype == np.uint16 and src.shape == (32, 48)
    assert all(np.array_equal(a, b) for a, b in zip(src, frames))


def test_mismatched_frame_names_file(tmp_path):
    cv2.imwrite(str(tmp_path / "a1.png"), _frames(1)[0])
    cv2.imwrite(str(tmp_path / "a2.png"), _frames(1, shape=(32, 40))[0])
    with pytest.raises(FrameError, match=r"a2\.png: frame does not match the first frame"):
        list(open_frames(tmp_path))


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(FrameError, match=r"bad\.png: not a readable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(FrameError, match="no such folder or video file"):
        open_frames(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FrameError, match="no image files"):
        open_frames(empty)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(FrameError, match="expected a folder of images or a video"):
        open_frames(tmp_path / "x.txt")


def test_video_file(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 4.0, (48, 32), isColor=False)
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for f in _frames(5):
        writer.write(f)
    writer.release()
    src = open_frames(path)
    assert src.n_frames == 5 and src.shape == (32, 48) and src.fps == pytest.approx(4.0)
    assert len(list(src)) == 5
    np.testing.assert_allclose(frame_times(5, video_fps=src.fps), np.arange(5) / 4.0 / 60.0)


def test_times_files(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("t_min,other\n0,1\n0.5,1\n1.0,1\n")
    np.testing.assert_allclose(read_times(csv, 3), [0, 0.5, 1.0])
    secs = tmp_path / "s.csv"
    secs.write_text("t_s\n0\n30\n60\n")
    np.testing.assert_allclose(read_times(secs, 3), [0, 0.5, 1.0])
    plain = tmp_path / "p.txt"
    plain.write_text("1\n2\n3\n")
    with pytest.raises(FrameError, match=r"p\.txt: expected 4 times \(one per frame\), found 3"):
        read_times(plain, 4)
    dec = tmp_path / "d.csv"
    dec.write_text("t_min\n0\n2\n1\n")
    with pytest.raises(FrameError, match="strictly increasing"):
        read_times(dec, 3)
    np.testing.assert_allclose(frame_times(3, fps=2.0), [0, 0.5 / 60, 1.0 / 60])
    np.testing.assert_allclose(frame_times(3), [0, 1, 2])


def test_colour_images_become_grey_with_the_right_channel_order(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB order (tifffile)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    assert read_image(tmp_path / "c.tif")[0, 0] == int(200 * 0.299)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])  # OpenCV stores BGR: same red image
    assert read_image(tmp_path / "c.png")[0, 0] == int(200 * 0.299)
    tifffile.imwrite(tmp_path / "f.tif", np.full((8, 8, 3), 0.5), photometric="rgb")  # float colour: no OpenCV error
    assert read_image(tmp_path / "f.tif").dtype == np.float64
