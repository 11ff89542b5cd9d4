"""Tests of the surface crack analytics against sim_line ground truth and drawn networks."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
import pandas as pd
import pytest

import sim_line
from vision._cracks import (CrackMetrics, analyse_sequence, crack_metrics, first_visible_time,
                            segment_cracks)

# Rendering conditions spanning the camera specification.
CONDITIONS = {
    "nominal": dict(),
    "steep_light_noisy": dict(illumination_gradient=0.5, noise_std=0.03),
    "flat_light_16bit": dict(illumination_gradient=0.0, noise_std=0.005, bit_depth=16),
    "dim_flicker": dict(flicker_gain=0.8, noise_std=0.02),
    "bright_flicker": dict(flicker_gain=1.2, illumination_gradient=0.4),
    "fine_pixels": dict(um_per_px=2.0, noise_std=0.02),
    "coarse_pixels": dict(um_per_px=8.0),
}


@lru_cache(maxsize=None)
def _run(gap_um: int, seed: int):
    return sim_line.simulate_lab(gap_um, seed=seed)


@lru_cache(maxsize=None)
def frame(gap_um: int, seed: int, t_min: float, condition: str = "nominal"):
    return sim_line.render_surface(_run(gap_um, seed).snapshot_at(t_min), seed=seed,
                                   **CONDITIONS[condition])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


# ----------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("condition", list(CONDITIONS))
@pytest.mark.parametrize("seed", [0, 5])
def test_mask_matches_ground_truth(condition, seed):
    f = frame(300, seed, 60.0, condition)
    mask = segment_cracks(f.image, um_per_px=f.um_per_px)
    score = iou(mask, f.crack_mask)
    # Measured IoU at 60 min: 0.94-0.97 at 2-5 um/px, ~0.89 at 8 um/px.  Cracks are
    # 5-15 px wide here, so most of the disagreement is the one-pixel edge ring whose
    # gap share is near one half; at 8 um/px that ring is a larger part of the mask.
    assert score > (0.82 if condition == "coarse_pixels" else 0.88), score
    # CIF: the edge ring is ~2 / width of the mask, and errors on both sides mostly
    # cancel: 1.5 % absolute (of a 21 % CIF) covers 8 um/px.
    assert abs(mask.mean() - f.surface_cif) < 0.015


@pytest.mark.parametrize("t_min", [45.0, 50.0, 75.0])
def test_mask_over_time(t_min):
    f = frame(300, 2, t_min)
    mask = segment_cracks(f.image, um_per_px=5.0)
    # 45 min: ~2.5 px wide gaps, so edge pixels are a third of the mask.
    assert iou(mask, f.crack_mask) > (0.78 if t_min == 45.0 else 0.88)
    assert abs(mask.mean() - f.surface_cif) < 0.012


@pytest.mark.parametrize("seed", [0, 5])
def test_length_matches_ground_truth_skeleton(seed):
    f = frame(300, seed, 50.0)
    mask = segment_cracks(f.image, um_per_px=5.0)
    got = crack_metrics(mask, um_per_px=5.0)
    truth = crack_metrics(f.crack_mask, um_per_px=5.0)
    # Both skeletons are of pixelised bands; they differ by edge roughness (a pixel per
    # spur) and at the tapered crack tips.  5 % of ~36 mm is ~9 spacings' worth.
    assert got.total_length_um == pytest.approx(truth.total_length_um, rel=0.05)
    # Mean width: one pixel of edge disagreement on a ~4 px mean width.
    assert got.mean_width_um == pytest.approx(truth.mean_width_um, abs=5.0)


@pytest.mark.parametrize("condition", ["nominal", "steep_light_noisy", "fine_pixels",
                                       "coarse_pixels", "flat_light_16bit"])
@pytest.mark.parametrize("t_min", [30.0, 38.0, 40.0])
def test_no_false_positives_before_cracking(condition, t_min):
    f = frame(300, 1, t_min, condition)
    assert f.surface_cif == 0.0  # precursor motion only, no gap yet
    mask = segment_cracks(f.image, um_per_px=f.um_per_px)
    assert not mask.any()
    met = crack_metrics(mask, um_per_px=f.um_per_px)
    assert met.surface_cif < 1e-3 and met.n_segments == 0


def test_no_false_positives_on_thick_film_before_onset():
    f = frame(800, 4, 60.0, "steep_light_noisy")
    assert f.surface_cif == 0.0
    assert not segment_cracks(f.image, um_per_px=f.um_per_px).any()


def test_widths_increase_with_time():
    times = [45.0, 50.0, 60.0, 75.0]
    df = analyse_sequence([frame(300, 3, t).image for t in times], times, um_per_px=5.0)
    assert list(df["t_min"]) == times
    assert np.all(np.diff(df["mean_width_um"]) > 0)
    assert np.all(np.diff(df["surface_cif"]) > 0)
    truth = [crack_metrics(frame(300, 3, t).crack_mask, um_per_px=5.0).mean_width_um
             for t in times]
    # one pixel (5 um) of edge disagreement at most
    np.testing.assert_allclose(df["mean_width_um"], truth, atol=5.0)


def test_first_visible_time_follows_physics_onset():
    times = [30.0, 36.0, 39.0, 40.0, 41.0, 42.0, 43.0, 45.0, 50.0]
    frames = [frame(300, 0, t).image for t in times]
    df = analyse_sequence(frames, times, um_per_px=5.0)
    onset = _run(300, 0).snapshot_at  # physics onset ~40.1 min for the 300 um gap
    assert not onset(40.0).cracked and onset(41.0).cracked
    t_vis = first_visible_time(df)
    # Gaps narrower than ~1 px (5 um) are not resolved; they reach it ~2 min after onset.
    assert 41.0 <= t_vis <= 45.0
    assert math.isnan(first_visible_time(df[df["t_min"] <= 40.0]))


def test_dtypes_agree():
    f = frame(300, 0, 60.0, "flat_light_16bit")
    ref = segment_cracks(f.image, um_per_px=5.0)
    as_float = segment_cracks(f.image.astype(np.float64) / 65535.0, um_per_px=5.0)
    as_float32 = segment_cracks(f.image.astype(np.float32) * 3.0, um_per_px=5.0)
    assert iou(ref, as_float) > 0.999 and iou(ref, as_float32) > 0.999


def test_input_not_modified_and_options():
    f = frame(300, 0, 50.0)
    img = f.image.copy()
    base = segment_cracks(img, um_per_px=5.0)
    np.testing.assert_array_equal(img, f.image)
    assert base.dtype == bool and base.shape == img.shape
    # a minimum length above the frame diagonal removes every network piece that does
    # not span far; a huge one removes everything
    assert not segment_cracks(img, um_per_px=5.0, min_length_um=1e9).any()
    # lower sensitivity keeps a subset of the gap
    strict = segment_cracks(img, um_per_px=5.0, sensitivity=0.6)
    assert strict.sum() < base.sum()


# ----------------------------------------------------------------------------- metrics on drawn masks


def _canvas(n: int = 128) -> np.ndarray:
    return np.zeros((n, n), np.uint8)


@pytest.mark.parametrize("thickness", [1, 3, 5])
def test_plus_and_tee_topology_exact(thickness):
    plus = _canvas()
    cv2.line(plus, (20, 64), (108, 64), 1, thickness)
    cv2.line(plus, (64, 20), (64, 108), 1, thickness)
    met = crack_metrics(plus.astype(bool), um_per_px=1.0)
    assert (met.n_segments, met.n_junctions, met.n_endpoints) == (4, 1, 4)
    tee = _canvas()
    cv2.line(tee, (20, 30), (108, 30), 1, thickness)
    cv2.line(tee, (64, 30), (64, 108), 1, thickness)
    met = crack_metrics(tee.astype(bool), um_per_px=1.0)
    assert (met.n_segments, met.n_junctions, met.n_endpoints) == (3, 1, 3)


def test_network_of_two_junctions_and_a_loop():
    m = _canvas(160)
    cv2.line(m, (10, 80), (150, 80), 1, 1)  # horizontal
    cv2.line(m, (50, 80), (50, 150), 1, 1)  # T down at x=50
    cv2.line(m, (110, 10), (110, 80), 1, 1)  # T up at x=110
    cv2.rectangle(m, (20, 10), (60, 40), 1, 1)  # a closed cell, separate
    met = crack_metrics(m.astype(bool), um_per_px=1.0)
    assert met.n_junctions == 2
    assert met.n_segments == 5 + 1  # 3 pieces of the line, 2 stems, the loop
    assert met.n_endpoints == 4


def test_length_counts_diagonals_sqrt2():
    m = _canvas()
    cv2.line(m, (20, 20), (100, 100), 1, 1)
    met = crack_metrics(m.astype(bool), um_per_px=2.0)
    assert met.total_length_um == pytest.approx(2.0 * 80 * math.sqrt(2), rel=1e-9)
    m = _canvas()
    cv2.line(m, (10, 40), (110, 40), 1, 1)
    assert crack_metrics(m.astype(bool), um_per_px=2.0).total_length_um == pytest.approx(200.0)


@pytest.mark.parametrize("width_px", [1, 3, 5, 9])
def test_width_of_straight_band(width_px):
    m = np.zeros((64, 128), bool)
    m[30:30 + width_px, 10:118] = True
    met = crack_metrics(m, um_per_px=4.0)
    # odd band widths are exact by construction of 2 d - 1 along the band; the mean is
    # a little low because the skeleton's last ~width/2 px run into the band's ends,
    # where the distance to the background shrinks (within half a pixel here)
    assert met.max_width_um == pytest.approx(4.0 * width_px, abs=1e-6)
    assert met.mean_width_um == pytest.approx(4.0 * width_px, abs=0.5 * 4.0)
    assert met.mean_width_um <= met.max_width_um
    assert met.surface_cif == pytest.approx(m.mean())
    # skeleton ends within a half-width of the band ends
    assert abs(met.total_length_um - 4.0 * 108) <= 4.0 * width_px


@pytest.mark.parametrize("angle_deg", [7.5, 22.0, 37.5, 80.0, 100.0, 142.5, 172.0])
def test_orientation_histogram_peaks_in_right_bin(angle_deg):
    m = np.zeros((256, 256), np.uint8)
    d = np.array([math.cos(math.radians(angle_deg)), -math.sin(math.radians(angle_deg))])
    normal = np.array([-d[1], d[0]])
    for k in range(-5, 6):  # parallel cracks 20 px apart, (x, y) = (col, row)
        c = np.array([128.0, 128.0]) + 20 * k * normal
        p1, p2 = np.rint(c - 150 * d).astype(int), np.rint(c + 150 * d).astype(int)
        cv2.line(m, tuple(int(v) for v in p1), tuple(int(v) for v in p2), 1, 2)
    met = crack_metrics(m.astype(bool), um_per_px=1.0, orientation_bins=12)
    hist = np.asarray(met.orientation_hist_um)
    assert int(np.argmax(hist)) == int(angle_deg // 15)
    # at least 90 % of the length in that bin: a drawn line wanders by < 1 px, so its
    # local direction is within a few degrees of the true one, less than the 15 deg bin
    # width (the test angles sit >= 2 deg from bin edges)
    assert hist.max() >= 0.9 * hist.sum()
    assert hist.sum() == pytest.approx(met.total_length_um)


def test_empty_mask():
    met = crack_metrics(np.zeros((32, 32), bool), um_per_px=3.0, orientation_bins=6)
    assert (met.surface_cif, met.total_length_um, met.n_segments, met.n_junctions) == (0, 0, 0, 0)
    assert met.orientation_hist_um == (0.0,) * 6
    assert math.isnan(met.dominant_orientation_deg)


def test_as_dict_row():
    m = _canvas()
    cv2.line(m, (20, 64), (108, 64), 1, 1)
    met = crack_metrics(m.astype(bool), um_per_px=1.0, orientation_bins=4)
    row = met.as_dict()
    assert row["n_segments"] == 1 and row["orient_0_45_um"] == pytest.approx(88.0)
    assert len([k for k in row if k.startswith("orient_")]) == 4
    assert isinstance(met, CrackMetrics)
    with pytest.raises(AttributeError):
        met.n_segments = 3  # frozen


# ----------------------------------------------------------------------------- errors


def test_errors():
    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="image must be a 2D"):
        segment_cracks(np.zeros((4, 32, 32)), um_per_px=1.0)
    with pytest.raises(ValueError, match="at least 8 x 8"):
        segment_cracks(np.zeros((4, 4)), um_per_px=1.0)
    with pytest.raises(ValueError, match="image must be finite"):
        segment_cracks(np.full((32, 32), np.nan), um_per_px=1.0)
    with pytest.raises(ValueError, match="image must be an integer or float"):
        segment_cracks(img.astype(bool), um_per_px=1.0)
    with pytest.raises(ValueError, match="um_per_px"):
        segment_cracks(img, um_per_px=0.0)
    with pytest.raises(ValueError, match="min_length_um"):
        segment_cracks(img, um_per_px=1.0, min_length_um=-1.0)
    with pytest.raises(ValueError, match="max_width_um"):
        segment_cracks(img, um_per_px=1.0, max_width_um=float("inf"))
    with pytest.raises(ValueError, match="sensitivity"):
        segment_cracks(img, um_per_px=1.0, sensitivity=0)
    with pytest.raises(ValueError, match="mask must be boolean"):
        crack_metrics(np.full((8, 8), 0.5), um_per_px=1.0)
    with pytest.raises(ValueError, match="mask must be a 2D"):
        crack_metrics(np.zeros(8, bool), um_per_px=1.0)
    with pytest.raises(ValueError, match="orientation_bins"):
        crack_metrics(np.zeros((8, 8), bool), um_per_px=1.0, orientation_bins=0)
    with pytest.raises(ValueError, match="um_per_px"):
        crack_metrics(np.zeros((8, 8), bool), um_per_px=-2.0)
    with pytest.raises(ValueError, match="times_min must have one time per frame"):
        analyse_sequence([img, img], [1.0], um_per_px=1.0)
    with pytest.raises(ValueError, match="times_min must be finite"):
        analyse_sequence([img], [float("nan")], um_per_px=1.0)
    df = pd.DataFrame({"t_min": [1.0], "surface_cif": [0.1]})
    with pytest.raises(ValueError, match="total_length_um"):
        first_visible_time(df)
    df["total_length_um"] = [1e4]
    with pytest.raises(ValueError, match="min_cif"):
        first_visible_time(df, min_cif=2.0)
    with pytest.raises(ValueError, match="consecutive"):
        first_visible_time(df, consecutive=0)
    assert first_visible_time(df) == 1.0


def test_first_visible_time_consecutive():
    df = pd.DataFrame({"t_min": [3.0, 1.0, 2.0, 4.0], "surface_cif": [0.01, 0.01, 0.0, 0.01],
                       "total_length_um": [1e3, 1e3, 0.0, 1e3]})
    assert first_visible_time(df) == 1.0
    assert first_visible_time(df, consecutive=2) == 3.0
    assert math.isnan(first_visible_time(df, consecutive=3))
