"""vision: 2D digital image correlation, surface crack analytics and crack-onset detection.

Public API (everything else is private):

- `correlate`, `correlate_sequence`, `DICResult`, `PointStatus`: subset DIC (ZNSSD,
  IC-GN, bicubic B-splines, reliability-guided repair).
- `strain_field`, `StrainResult`: Green-Lagrange and principal strains on the DIC grid.
- `segment_cracks`, `crack_metrics`, `CrackMetrics`, `analyse_sequence`,
  `first_visible_time`: visible crack segmentation and metrics.
- `OnsetDetector`, `OnsetEstimate`: streaming crack-onset prediction from DIC.
"""

from ._correlate import DICResult, PointStatus, correlate, correlate_sequence
from ._cracks import CrackMetrics, analyse_sequence, crack_metrics, first_visible_time, segment_cracks
from ._onset import OnsetDetector, OnsetEstimate
from ._strain import StrainResult, strain_field

__all__ = [
    "CrackMetrics",
    "DICResult",
    "OnsetDetector",
    "OnsetEstimate",
    "PointStatus",
    "StrainResult",
    "analyse_sequence",
    "correlate",
    "correlate_sequence",
    "crack_metrics",
    "first_visible_time",
    "segment_cracks",
    "strain_field",
]
