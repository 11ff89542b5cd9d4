"""tomography: 3D CT volumes of drying coatings.

Public API so far (the DVC engine, CT analytics and onset prediction follow):

- `open_volume`, `save_volume`, `Volume`, `VolumeError`: lazy (dask) reading and chunked
  writing of TIFF (slice folders or multipage), HDF5 / NeXus, zarr and raw binary volumes,
  with the voxel size carried along.
"""

from ._io import Volume, VolumeError, open_volume
from ._io_write import save_volume

__all__ = ["Volume", "VolumeError", "open_volume", "save_volume"]
