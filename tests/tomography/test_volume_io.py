"""Volume I/O: round trips per format, laziness, NeXus discovery, voxel sizes, clear errors."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
import tifffile
import zarr

from tomography import Volume, VolumeError, open_volume, save_volume

SHAPE = (20, 32, 32)


def _vol(dtype=np.uint16, shape=SHAPE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".zarr", ".h5", ".nxs", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_round_trip(tmp_path, suffix, dtype):
    a = _vol(dtype)
    out = save_volume(a, tmp_path / f"vol{suffix}", voxel_um=0.65)
    vol = open_volume(out)
    assert isinstance(vol, Volume) and isinstance(vol.data, da.Array)
    assert vol.shape == SHAPE and vol.dtype == np.dtype(dtype)
    assert vol.voxel_um == pytest.approx(0.65)
    assert vol.source == out
    np.testing.assert_array_equal(vol.compute(), a)


def test_round_trip_float64_tiff_uses_shaped_metadata(tmp_path):
    a = _vol(np.float64)
    vol = open_volume(save_volume(a, tmp_path / "v.tiff", voxel_um=3.0))
    assert vol.dtype == np.float64 and vol.voxel_um == 3.0
    np.testing.assert_array_equal(vol.compute(), a)


def test_save_volume_object_and_dask_chunkwise(tmp_path):
    a = _vol()
    src = Volume(data=da.from_array(a, chunks=(7, 16, 16)), voxel_um=1.25, source=tmp_path / "mem")
    for name in ("a.zarr", "a.h5", "a.tif"):
        back = open_volume(save_volume(src, tmp_path / name, chunks=(8, 16, 16)))
        assert back.voxel_um == 1.25
        np.testing.assert_array_equal(back.compute(), a)
    assert open_volume(tmp_path / "a.zarr").data.chunks[0] == (8, 8, 4)  # native zarr chunks


def test_save_without_voxel_gives_none(tmp_path):
    for name in ("n.zarr", "n.h5", "n.tif"):
        assert open_volume(save_volume(_vol(), tmp_path / name)).voxel_um is None


def test_hdf5_layout_is_nexus_like(tmp_path):
    p = save_volume(_vol(), tmp_path / "scan.h5", voxel_um=0.5)
    with h5py.File(p, "r") as f:
        assert f["entry"].attrs["NX_class"] == "NXentry"
        assert f["entry/data"].attrs["NX_class"] == "NXdata"
        assert f["entry/data/data"].attrs["voxel_size"] == 0.5
    assert open_volume(p).dataset == "/entry/data/data"


def test_voxel_override_and_validation(tmp_path):
    p = save_volume(_vol(), tmp_path / "v.zarr", voxel_um=0.65)
    assert open_volume(p, voxel_um=2.0).voxel_um == 2.0
    for bad in (0, -1.0, float("nan"), float("inf"), "abc"):
        with pytest.raises(VolumeError, match="positive finite"):
            open_volume(p, voxel_um=bad)
    with pytest.raises(VolumeError, match="positive finite"):
        save_volume(_vol(), tmp_path / "w.zarr", voxel_um=-1)


def test_save_refuses_existing_unless_overwrite(tmp_path):
    p = save_volume(_vol(), tmp_path / "v.h5")
    with pytest.raises(VolumeError, match="already exists"):
        save_volume(_vol(), p)
    b = _vol(seed=1)
    save_volume(b, p, overwrite=True)
    np.testing.assert_array_equal(open_volume(p).compute(), b)
    z = save_volume(_vol(), tmp_path / "v.zarr")
    save_volume(b, z, overwrite=True)
    np.testing.assert_array_equal(open_volume(z).compute(), b)


def test_save_errors(tmp_path):
    with pytest.raises(VolumeError, match="cannot infer the output format"):
        save_volume(_vol(), tmp_path / "v.png")
    with pytest.raises(VolumeError, match="3D"):
        save_volume(np.zeros((4, 4)), tmp_path / "v.zarr")
    with pytest.raises(VolumeError, match="format must be"):
        save_volume(_vol(), tmp_path / "v.zarr", format="png")


# ----------------------------------------------------------------------------- TIFF


def test_folder_of_slices_natural_sort(tmp_path):
    a = _vol()
    for i, s in enumerate(a):
        tifffile.imwrite(tmp_path / f"slice{i}.tif", s)
    vol = open_volume(tmp_path)
    assert isinstance(vol.data, da.Array) and vol.shape == SHAPE and vol.dtype == np.uint16
    np.testing.assert_array_equal(vol.compute(), a)  # slice2 before slice10
    np.testing.assert_array_equal(vol.data[10:13, 5].compute(), a[10:13, 5])


def test_folder_slice_voxel_from_resolution(tmp_path):
    for i, s in enumerate(_vol(shape=(3, 8, 8))):
        tifffile.imwrite(
            tmp_path / f"s{i:03d}.tiff", s, imagej=True, resolution=(1 / 0.8, 1 / 0.8), metadata={"unit": "um"}
        )
    assert open_volume(tmp_path).voxel_um == pytest.approx(0.8)


def test_folder_middle_slice_mismatch_raised_lazily(tmp_path):
    a = _vol()
    for i, s in enumerate(a):
        tifffile.imwrite(tmp_path / f"slice{i}.tif", s if i != 7 else s[:, :31])
    vol = open_volume(tmp_path)  # only first and last are checked eagerly
    with pytest.raises(VolumeError, match=r"slice7\.tif.*shape \(32, 31\)"):
        vol.compute()


def test_folder_last_slice_mismatch_raised_eagerly(tmp_path):
    a = _vol()
    for i, s in enumerate(a):
        tifffile.imwrite(tmp_path / f"slice{i}.tif", s if i != 19 else s.astype(np.float32))
    with pytest.raises(VolumeError, match=r"slice19\.tif.*float32"):
        open_volume(tmp_path)


def test_folder_without_tiffs(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(VolumeError, match="folder of 2D TIFF slices"):
        open_volume(tmp_path)


def test_not_a_tiff(tmp_path):
    p = tmp_path / "junk.tif"
    p.write_bytes(b"this is not a tiff file at all" * 10)
    with pytest.raises(VolumeError, match=r"junk\.tif.*not a readable TIFF"):
        open_volume(p)
    d = tmp_path / "dir"
    d.mkdir()
    tifffile.imwrite(d / "s0.tif", _vol()[0])
    (d / "s1.tif").write_bytes(b"garbage")
    with pytest.raises(VolumeError, match=r"s1\.tif.*not a readable TIFF"):
        open_volume(d)


def test_tiff_2d_is_not_a_volume(tmp_path):
    p = tmp_path / "flat.tif"
    tifffile.imwrite(p, _vol()[0])
    with pytest.raises(VolumeError, match=r"flat\.tif.*3D greyscale stack"):
        open_volume(p)


def test_compressed_imagej_tiff_micron_unit(tmp_path):
    a = _vol()
    p = tmp_path / "zlib.tif"
    tifffile.imwrite(
        p, a, imagej=True, compression="zlib", resolution=(1 / 1.5, 1 / 1.5),
        metadata={"spacing": 1.5, "unit": "micron"},
    )
    vol = open_volume(p, chunks=(6, 32, 32))
    assert vol.voxel_um == 1.5 and vol.data.chunks[0] == (6, 6, 6, 2)
    np.testing.assert_array_equal(vol.compute(), a)


def test_tiff_mm_unit_converted(tmp_path):
    p = tmp_path / "mm.tif"
    tifffile.imwrite(
        p, _vol(), imagej=True, resolution=(1 / 0.002, 1 / 0.002), metadata={"spacing": 0.002, "unit": "mm"}
    )
    assert open_volume(p).voxel_um == pytest.approx(2.0)


def test_tiff_anisotropic_needs_override(tmp_path):
    p = tmp_path / "aniso.tif"
    tifffile.imwrite(p, _vol(), imagej=True, resolution=(2.0, 2.0), metadata={"spacing": 3.0, "unit": "um"})
    with pytest.raises(VolumeError, match="anisotropic"):
        open_volume(p)
    assert open_volume(p, voxel_um=1.0).voxel_um == 1.0


# ----------------------------------------------------------------------------- HDF5 / NeXus


def test_nexus_autodiscovery_signal(tmp_path):
    a = _vol()
    p = tmp_path / "scan.nxs"
    with h5py.File(p, "w") as f:
        f.create_dataset("entry/instrument/detector/flat", data=np.ones((32, 32), np.float32))  # 2D
        g = f.create_group("entry/recon")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "volume"
        ds = g.create_dataset("volume", data=a, chunks=(4, 32, 32))
        ds.attrs["pixel_size"] = 0.00065
        ds.attrs["pixel_size_units"] = "mm"
        f.create_dataset("entry/small3d", data=np.zeros((100, 40, 40), np.uint8))  # larger but not the signal
    vol = open_volume(p)
    assert vol.dataset == "/entry/recon/volume"
    assert vol.voxel_um == pytest.approx(0.65)
    assert vol.data.chunks[0] == (20,)  # aligned to the file's chunk depth
    np.testing.assert_array_equal(vol.compute(), a)


def test_hdf5_largest_3d_with_2d_present_and_group_units(tmp_path):
    a = _vol()
    p = tmp_path / "plain.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("dark", data=np.zeros((32, 32), np.uint16))
        f.create_dataset("tiny", data=np.zeros((2, 3, 3), np.uint16))
        f.create_dataset("exp/vol", data=a)
        f["exp"].attrs["voxel_size"] = 1.2e-6
        f["exp"].attrs["units"] = "m"
    vol = open_volume(p)
    assert vol.dataset == "/exp/vol" and vol.voxel_um == pytest.approx(1.2)
    np.testing.assert_array_equal(vol.compute(), a)


def test_hdf5_entry_data_data_preferred(tmp_path):
    p = tmp_path / "e.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("entry1/data/data", data=_vol())
        f.create_dataset("other/bigger", data=np.zeros((40, 32, 32), np.uint8))
    assert open_volume(p).dataset == "/entry1/data/data"
    assert open_volume(p, dataset="other/bigger").shape == (40, 32, 32)


def test_hdf5_errors(tmp_path):
    p = tmp_path / "e.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("img", data=np.zeros((32, 32), np.uint16))
        f.create_dataset("a", data=np.zeros((4, 4, 4), np.uint16))
        f.create_dataset("b", data=np.zeros((4, 4, 4), np.float32))
    with pytest.raises(VolumeError, match=r"e\.h5.*ambiguous.*/a \(4, 4, 4\).*/b"):
        open_volume(p)
    with pytest.raises(VolumeError, match=r"e\.h5.*'/img' has shape \(32, 32\) \(2D\), expected a 3D"):
        open_volume(p, dataset="img")
    with pytest.raises(VolumeError, match=r"e\.h5.*no dataset '/missing'.*3D datasets in the file: /a"):
        open_volume(p, dataset="/missing")
    q = tmp_path / "flat.h5"
    with h5py.File(q, "w") as f:
        f.create_dataset("img", data=np.zeros((32, 32), np.uint16))
    with pytest.raises(VolumeError, match=r"flat\.h5.*no 3D numeric dataset"):
        open_volume(q)
    r = tmp_path / "junk.h5"
    r.write_bytes(b"\x00" * 100)
    with pytest.raises(VolumeError, match=r"junk\.h5.*not a readable HDF5"):
        open_volume(r)


def test_hdf5_unknown_units(tmp_path):
    p = tmp_path / "u.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("entry/data/data", data=_vol())
        ds.attrs["voxel_size"] = 1.0
        ds.attrs["voxel_size_units"] = "furlong"
    with pytest.raises(VolumeError, match="unknown length unit 'furlong'"):
        open_volume(p)
    assert open_volume(p, voxel_um=0.5).voxel_um == 0.5


# ----------------------------------------------------------------------------- zarr


def test_zarr_group_with_dataset(tmp_path):
    a = _vol()
    p = tmp_path / "g.zarr"
    root = zarr.open_group(str(p), mode="w")
    root.attrs["voxel_size"] = 0.002
    root.attrs["voxel_size_units"] = "mm"
    sub = root.create_group("recon")
    arr = sub.create_array("vol", shape=a.shape, chunks=(5, 32, 32), dtype=a.dtype) if hasattr(
        sub, "create_array"
    ) else sub.create_dataset("vol", shape=a.shape, chunks=(5, 32, 32), dtype=a.dtype)
    arr[...] = a
    sub2 = root.create_group("other")
    (sub2.create_array if hasattr(sub2, "create_array") else sub2.create_dataset)(
        "vol2", shape=(3, 4, 4), chunks=(3, 4, 4), dtype="u1"
    )
    vol = open_volume(p, dataset="recon/vol")
    assert vol.dataset == "recon/vol" and vol.voxel_um == pytest.approx(2.0)
    assert vol.data.chunks[0] == (5, 5, 5, 5)
    np.testing.assert_array_equal(vol.compute(), a)
    with pytest.raises(VolumeError, match=r"g\.zarr.*exactly one 3D array.*recon/vol"):
        open_volume(p)
    with pytest.raises(VolumeError, match=r"g\.zarr.*no array 'nope'"):
        open_volume(p, dataset="nope")


def test_not_a_zarr_store(tmp_path):
    p = tmp_path / "empty.zarr"
    p.mkdir()
    with pytest.raises(VolumeError, match=r"empty\.zarr"):
        open_volume(p)


# ----------------------------------------------------------------------------- raw


def test_raw_round_trip_big_endian_with_header(tmp_path):
    a = _vol()
    p = tmp_path / "scan.vol"
    p.write_bytes(b"H" * 512 + a.astype(">u2").tobytes())
    vol = open_volume(p, shape=SHAPE, dtype="uint16", byte_order=">", header_bytes=512, voxel_um=0.65)
    assert vol.dtype == np.dtype("uint16") and vol.dtype.isnative and vol.voxel_um == 0.65
    np.testing.assert_array_equal(vol.compute(), a)


def test_raw_is_lazy(tmp_path, monkeypatch):
    a = _vol(np.float32)
    p = tmp_path / "scan.raw"
    a.tofile(p)
    calls = []
    real = np.memmap

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "memmap", spy)
    vol = open_volume(p, shape=SHAPE, dtype=np.float32, chunks=(8, 32, 32))
    assert isinstance(vol.data, da.Array) and calls == []  # nothing mapped or read yet
    b = a + 1
    b.tofile(p)  # same size; what compute() sees proves the data was not read at open
    np.testing.assert_array_equal(vol.data[8:16].compute(), b[8:16])
    assert len(calls) == 1
    np.testing.assert_array_equal(vol.compute(), b)


def test_raw_truncated(tmp_path):
    p = tmp_path / "cut.raw"
    p.write_bytes(_vol().tobytes()[:-100])
    with pytest.raises(VolumeError, match=r"cut\.raw.*expected 40960 bytes.*found 40860 bytes.*truncated"):
        open_volume(p, shape=SHAPE, dtype="uint16")


def test_raw_wrong_dtype_size(tmp_path):
    p = tmp_path / "u16.bin"
    _vol().tofile(p)
    with pytest.raises(VolumeError, match=r"u16\.bin.*expected 81920 bytes.*found 40960 bytes"):
        open_volume(p, shape=SHAPE, dtype="float32")


def test_raw_option_errors(tmp_path):
    p = tmp_path / "v.raw"
    _vol().tofile(p)
    with pytest.raises(VolumeError, match="need shape"):
        open_volume(p, dtype="uint16")
    with pytest.raises(VolumeError, match="3 positive integers"):
        open_volume(p, shape=(20, 1024), dtype="uint16")
    with pytest.raises(VolumeError, match="byte_order"):
        open_volume(p, shape=SHAPE, dtype="uint16", byte_order="big")
    with pytest.raises(VolumeError, match="contradicts"):
        open_volume(p, shape=SHAPE, dtype=">u2")
    with pytest.raises(VolumeError, match="unknown dtype"):
        open_volume(p, shape=SHAPE, dtype="notatype")
    with pytest.raises(VolumeError, match="only apply to raw"):
        open_volume(save_volume(_vol(), tmp_path / "x.zarr"), shape=SHAPE)


# ----------------------------------------------------------------------------- dispatch


def test_unknown_extension_and_missing(tmp_path):
    p = tmp_path / "scan.xyz"
    p.write_bytes(b"0")
    with pytest.raises(VolumeError, match=r"scan\.xyz.*unknown volume format '\.xyz'"):
        open_volume(p)
    with pytest.raises(VolumeError, match=r"nothere\.h5.*no such file"):
        open_volume(tmp_path / "nothere.h5")


def test_volume_validates():
    with pytest.raises(VolumeError, match="3D"):
        Volume(data=da.zeros((4, 4)), voxel_um=None, source="x")
    v = Volume(data=da.zeros((2, 3, 4), dtype=np.uint8), voxel_um=1, source="x")
    assert v.shape == (2, 3, 4) and v.dtype == np.uint8 and v.voxel_um == 1.0
    with pytest.raises(AttributeError):
        v.voxel_um = 2.0  # type: ignore[misc]
