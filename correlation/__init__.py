"""correlation: the n-D subset correlation core that `vision` (2D DIC) and `tomography`
(3D DVC) stand on.

Everything dimension-independent is written once here (status codes, B-spline
coefficients, seeds, reliability-guided repair, outliers, regularisation, robust
statistics, background removal, site clustering); the dimension-specific IC-GN numba
kernels sit side by side (`_kernel2d`, `_kernel3d`).  Users call `vision.correlate` and
`tomography.correlate`; this package's face is for those two and for code that handles
displacement fields of either dimension.

Public API:

- `CorrelationResult`, `PointStatus`: the result of a correlation and its status codes.
- `correlate_nd`: the shared pipeline (`vision.correlate` / `tomography.correlate`
  document the options).
- `remove_background`, `BackgroundFit`: robust translation / rigid / affine background.
- `normalised_median_test`, `regularise`, `neighbour_table`: point-cloud operations.
- `robust_centre_scale`, `lower_scale`, `robust_z`, `noise_std`: robust statistics.
- Building blocks for drivers of the engine (e.g. the out-of-core DVC): `SubsetSolver`
  (IC-GN on one pair), `Field`, `repair`, `restart_outliers`, `noise_aware_gate`,
  `phase_shift`, `shift_params`, `from_displacement`, `displacement_and_gradient`,
  `SPLINE_PAD`, `RADIUS_SPACINGS`.
- `opening_map`, `judge_plane`, `PlaneJudgement`, `QuietNoise`, `matched_residual`,
  `find_sites`, `Sites`: crack-precursor evidence on displacement grids, the noise it is
  judged against and its clustering into predicted sites (both onset detectors).
- `ReferenceTracker`, `TrackedField`, `warp_mask`: cumulative correlation of a sequence
  against a reference that moves only when the correlation degrades.
"""

from ._background import BACKGROUND_MODELS, BackgroundFit, remove_background
from ._bspline import SPLINE_PAD
from ._engine import (GATE_FLOOR, INTERPOLATIONS, CorrelationResult, SubsetSolver, check_data, check_int,
                      check_number, default_grid, noise_aware_gate)
from ._engine import correlate as correlate_nd
from ._neighbours import RADIUS_SPACINGS
from ._repair import Field, repair, restart_outliers
from ._seeds import phase_shift
from ._warp import displacement_and_gradient, from_displacement, shift_params
from ._evidence import PlaneJudgement, QuietNoise, Sites, find_sites, judge_plane, matched_residual, opening_map
from ._field import neighbour_median, normalised_median_test, regularise
from ._neighbours import neighbour_table
from ._robust import MAD_TO_SIGMA, lower_scale, noise_std, robust_centre_scale, robust_z
from ._status import PointStatus
from ._tracking import ReferenceTracker, TrackedField, warp_mask

__all__ = [
    "BACKGROUND_MODELS",
    "Field",
    "PlaneJudgement",
    "QuietNoise",
    "matched_residual",
    "Sites",
    "find_sites",
    "judge_plane",
    "opening_map",
    "GATE_FLOOR",
    "INTERPOLATIONS",
    "RADIUS_SPACINGS",
    "SPLINE_PAD",
    "SubsetSolver",
    "displacement_and_gradient",
    "from_displacement",
    "noise_aware_gate",
    "phase_shift",
    "repair",
    "restart_outliers",
    "shift_params",
    "BackgroundFit",
    "CorrelationResult",
    "MAD_TO_SIGMA",
    "PointStatus",
    "ReferenceTracker",
    "TrackedField",
    "check_data",
    "check_int",
    "check_number",
    "correlate_nd",
    "default_grid",
    "lower_scale",
    "neighbour_median",
    "neighbour_table",
    "noise_std",
    "normalised_median_test",
    "regularise",
    "remove_background",
    "robust_centre_scale",
    "robust_z",
    "warp_mask",
]
