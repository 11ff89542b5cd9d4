"""Tests of the vision node's estimator (frames -> CrackEstimate messages)."""

from __future__ import annotations

import numpy as np
import pytest

import sim_line
from controller import CrackEstimate, Frame, decode, encode
from controller._vision_estimate import VISIBLE_CRACK_SCORE, SurfaceEstimator

T0 = 1_767_225_600.0


def _frame(snapshot, frame_id: int, t_s: float, **kw) -> tuple[Frame, sim_line.SurfaceFrame]:
    fr = sim_line.render_surface(snapshot, shape_px=(256, 256), um_per_px=5.0, bit_depth=8, **kw)
    return Frame.from_image(fr.image, frame_id=frame_id, um_per_px=5.0, position_m=8.0, timestamp_s=t_s,
                            source="sim-line", seq=frame_id), fr


@pytest.fixture(scope="module")
def line():
    return sim_line.Line(None, seed=0)


def test_crack_free_and_cracked_coating(line):
    est = SurfaceEstimator()
    wet, _ = _frame(line.snapshot_at(3.0), 1, T0)  # zone 2: still consolidating, no cracks
    e = est.estimate(wet, now_s=T0 + 0.5)
    assert not e.alarm and not e.onset and e.score == 0.0 and e.evidence["surface_cif"] == 0.0
    cracked, truth = _frame(line.snapshot_at(9.0), 2, T0 + 2)  # past the crack point of the default recipe
    e = est.estimate(cracked, now_s=T0 + 2.5)
    assert e.alarm and e.onset and e.onset_timestamp_s == T0 + 2 and e.score == VISIBLE_CRACK_SCORE
    # segmentation against the renderer's ground truth: within 15 % of the crack area
    assert e.evidence["surface_cif"] == pytest.approx(truth.crack_mask.mean(), rel=0.15)
    assert len(e.sites_um) == 1 and e.position_m == 8.0 and e.frame_id == 2
    # moving web: the next crack-free frame is new coating, onset is not latched
    assert not est.estimate(wet, now_s=T0 + 5).onset
    back = decode("mudcrack/pilot-1/estimates/surface", encode(e), now_s=T0 + 3)
    assert isinstance(back, CrackEstimate) and back == e


def test_web_registered_runs_the_dic_detector():
    run = sim_line.simulate_lab(300, seed=0, output_interval_s=15.0)
    onset = run.frame.attrs["crack_onset_min"]
    est = SurfaceEstimator(web_registered=True)
    declared = None
    for i, t in enumerate(np.arange(onset - 2.0, onset + 0.01, 0.25)):
        f, _ = _frame(run.snapshot_at(float(t)), i + 1, T0 + 60.0 * t, seed=0)
        e = est.estimate(f, now_s=T0 + 60.0 * t)
        if i:
            assert "dic_score" in e.evidence
        if e.onset and declared is None:
            declared = t
    assert declared is not None and declared <= onset + 0.01


def test_bad_option():
    with pytest.raises(ValueError, match="min_cif"):
        SurfaceEstimator(min_cif=1.5)
