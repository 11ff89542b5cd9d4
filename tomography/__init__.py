"""tomography: 3D CT volumes of drying coatings.

Public API:

- `open_volume`, `save_volume`, `Volume`, `VolumeError`: lazy (dask) reading and chunked
  writing of TIFF (slice folders or multipage), HDF5 / NeXus, zarr and raw binary volumes,
  with the voxel size carried along.
- `correlate`, `DVCResult`, `PointStatus`: subvolume digital volume correlation (IC-GN,
  12-parameter affine shape function, tricubic B-spline), points and displacements
  (N, 3) in (z, y, x) order.
- `remove_background`, `BackgroundFit`, `normalised_median_test`, `regularise`:
  post-processing of DVC point clouds.
- `OnsetDetector`, `CTOnsetEstimate`: streaming crack-onset prediction from CT scan series.
"""

from ._dvc import DVCResult, PointStatus, correlate
from ._dvc_post import BackgroundFit, normalised_median_test, regularise, remove_background
from ._io import Volume, VolumeError, open_volume
from ._io_write import save_volume
from ._onset import CTOnsetEstimate, OnsetDetector

__all__ = [
    "CTOnsetEstimate",
    "OnsetDetector",
    "BackgroundFit",
    "DVCResult",
    "PointStatus",
    "Volume",
    "VolumeError",
    "correlate",
    "normalised_median_test",
    "open_volume",
    "regularise",
    "remove_background",
    "save_volume",
]
