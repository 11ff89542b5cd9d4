"""tomography: 3D CT volumes of drying coatings.

Public API:

- `open_volume`, `save_volume`, `Volume`, `VolumeError`: lazy (dask) reading and chunked
  writing of TIFF (slice folders or multipage), HDF5 / NeXus, zarr and raw binary volumes,
  with the voxel size carried along.
- `correlate`, `DVCResult`, `PointStatus`: subvolume digital volume correlation (IC-GN,
  12-parameter affine shape function, tricubic B-spline), points and displacements
  (N, 3) in (z, y, x) order.
- `correlate_chunked`: the same DVC chunk by chunk within a memory budget (halos of
  subvolume + search range), in-process or on a dask.distributed cluster.
- `remove_background`, `BackgroundFit`, `normalised_median_test`, `regularise`:
  post-processing of DVC point clouds.
- `OnsetDetector`, `CTOnsetEstimate`: streaming crack-onset prediction from CT scan series.
- CT analytics on phase volumes: `height_map`, `solvent_level`, `porosity_profile`,
  `crack_intensity_3d`, `cif_profile`, `detect_delamination`, `coating_layer`,
  `resample_volume` (`Phase` codes, typed results).
- Segmentation: `segment_phases` (multi-Otsu / histogram peaks), `train_segmenter` ->
  `PhaseClassifier` (random forest, ilastik style), `segment_cracks_3d`, `detect_bubbles`.
- Local packing: `label_particles` (distance-transform watershed), `packing_maps`
  (18^3 kernel count density and volume fraction), `packing_near_cracks`.
"""

from ._dvc import DVCResult, PointStatus, correlate
from correlation import BackgroundFit, normalised_median_test, regularise, remove_background
from ._io import Volume, VolumeError, open_volume
from ._io_write import save_volume
from ._onset import CTOnsetEstimate, OnsetDetector
from ._analytics import (CifProfile, Delamination, HeightMap, Phase, PorosityProfile, SolventLevel,
                         cif_profile, coating_layer, crack_intensity_3d, detect_delamination, height_map,
                         porosity_profile, solvent_level)
from ._resample import Resampled, resample_volume
from ._packing import (PackingComparison, PackingMaps, ParticleLabels, label_particles, packing_maps,
                       packing_near_cracks)
from ._segment import (Bubble, BubbleDetection, CrackSegmentation, PhaseClassifier, PhaseSegmentation,
                       detect_bubbles, segment_cracks_3d, segment_phases, train_segmenter)
from ._chunked import correlate_chunked

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
    "Bubble",
    "BubbleDetection",
    "CifProfile",
    "CrackSegmentation",
    "Delamination",
    "HeightMap",
    "PackingComparison",
    "PackingMaps",
    "ParticleLabels",
    "Phase",
    "PhaseClassifier",
    "PhaseSegmentation",
    "PorosityProfile",
    "Resampled",
    "SolventLevel",
    "cif_profile",
    "coating_layer",
    "crack_intensity_3d",
    "detect_bubbles",
    "detect_delamination",
    "height_map",
    "label_particles",
    "packing_maps",
    "packing_near_cracks",
    "porosity_profile",
    "resample_volume",
    "segment_cracks_3d",
    "segment_phases",
    "solvent_level",
    "train_segmenter",
    "correlate_chunked",
]
