"""Surface crack estimates from camera frames (the pure core of the vision node).

On the line the camera sees moving web: at 3 m/min the web moves 100 mm between frames
2 s apart, 40 times the 2.56 mm field of view, so consecutive frames never show the same
material and DIC against a reference frame is impossible.  The line estimate is therefore
built from the visible cracks of each frame (`vision.segment_cracks`), which says whether
the coating passing the camera has cracked; the DIC precursor detector
(`vision.OnsetDetector`) needs frames of the same material (a stationary sample, or a
web-tracked pair of cameras) and runs in `SurfaceEstimator` when consecutive frames share
their position along the web (``position_m`` and an explicit ``web_registered`` flag).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._frames import Frame
from ._messages import CrackEstimate

__all__ = ["SurfaceEstimator", "VISIBLE_CRACK_SCORE"]

#: Score given to a frame with visible cracks (above the controller's default risk
#: threshold of 6, in the detector's robust-z units): a visible crack is certain evidence.
VISIBLE_CRACK_SCORE = 20.0


@dataclass
class SurfaceEstimator:
    """Turns camera frames into `CrackEstimate` messages (one per frame).

    Parameters
    ----------
    source : str
        Sender id of the estimates.
    min_cif : float
        Surface crack area fraction above which a frame counts as cracked (segmentation
        noise on crack-free rendered frames is 0; 1e-4 ignores single specks).
    web_registered : bool
        True when consecutive frames image the same material (stationary sample or
        web-tracked cameras): then the DIC onset detector runs against the first frame.
    """

    source: str = "vision-node"
    min_cif: float = 1e-4
    web_registered: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_cif) and 0.0 <= self.min_cif < 1.0):
            raise ValueError(f"min_cif must be in [0, 1), got {self.min_cif!r}")
        self._seq = 0
        self._detector = None
        self._onset_ts: float | None = None

    def estimate(self, frame: Frame, *, now_s: float) -> CrackEstimate:
        """Estimate of one frame (CPU-bound: run it in a worker thread).

        Parameters
        ----------
        frame : Frame
            A decoded camera frame.
        now_s : float
            Time stamp of the estimate, s since the epoch (the node's clock).

        Returns
        -------
        CrackEstimate
            ``kind="surface"``; ``evidence`` holds ``surface_cif``, ``crack_length_mm_per_mm2``,
            ``max_crack_width_um`` and, with the DIC detector, ``dic_score``.  On moving web
            ``onset`` says whether this frame's coating has cracked; web-registered, it
            latches at the first cracked or DIC-alarming frame.
        """
        from vision import OnsetDetector, crack_metrics, segment_cracks

        meta = frame.meta
        mask = segment_cracks(frame.image, um_per_px=meta.um_per_px)
        metrics = crack_metrics(mask, um_per_px=meta.um_per_px)
        cif = float(metrics.surface_cif)
        cracked = cif > self.min_cif
        score = VISIBLE_CRACK_SCORE if cracked else 0.0
        sites: tuple[tuple[float, ...], ...] = ()
        area_mm2 = mask.size * (meta.um_per_px * 1e-3) ** 2
        evidence = {"surface_cif": cif, "crack_length_mm_per_mm2": float(metrics.total_length_um) * 1e-3 / area_mm2,
                    "max_crack_width_um": float(metrics.max_width_um)}
        if cracked:
            rows, cols = np.nonzero(mask)
            sites = ((float(rows.mean() * meta.um_per_px), float(cols.mean() * meta.um_per_px)),)
        if self.web_registered:
            if self._detector is None:
                self._detector = OnsetDetector(frame.image)
            else:
                est = self._detector.update(frame.image, meta.timestamp_s / 60.0)
                evidence["dic_score"] = float(est.score)
                score = max(score, float(est.score))
                if est.onset and not sites:
                    sites = tuple((float(r * meta.um_per_px), float(c * meta.um_per_px)) for r, c in est.sites[:8])
                cracked = cracked or est.onset
        if self.web_registered:  # the same material: onset latches, as the detector's does
            if cracked and self._onset_ts is None:
                self._onset_ts = meta.timestamp_s
            onset_ts = self._onset_ts
        else:  # moving web: each frame is new coating; onset = this coating has cracked
            onset_ts = meta.timestamp_s if cracked else None
        self._seq += 1
        return CrackEstimate(timestamp_s=now_s, source=self.source, seq=self._seq, kind="surface", score=score,
                             risk=float(min(1.0, score / VISIBLE_CRACK_SCORE)), alarm=cracked,
                             onset=onset_ts is not None, onset_timestamp_s=onset_ts,
                             sample_timestamp_s=meta.timestamp_s, position_m=meta.position_m,
                             frame_id=meta.frame_id, sites_um=sites, evidence=evidence)
