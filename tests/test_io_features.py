import os

import h5py
import numpy as np
import pytest
import scipy.io

from keras_icnn import io as kio


def _caffe_features(rng, n=None):
    """Lab-style channels-first features: conv [C,H,W] (or [N,C,H,W]) and fc [D] (or [N,D])."""
    if n is None:
        return {"conv1": rng.standard_normal((4, 3, 5)).astype(np.float32),
                "fc6": rng.standard_normal(7).astype(np.float32)}
    return {"conv1": rng.standard_normal((n, 4, 3, 5)).astype(np.float32),
            "fc6": rng.standard_normal((n, 7)).astype(np.float32)}


def _write_mat_v73(path, arrays):
    """Write a file laid out like MATLAB -v7.3: HDF5 with a 512-byte MAT header user block and
    every array stored transposed (MATLAB is column-major), with MATLAB_class attributes."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, a in arrays.items():
            ds = f.create_dataset(name, data=np.asarray(a).T)
            ds.attrs["MATLAB_class"] = np.bytes_("single" if a.dtype == np.float32 else "double")
        ref = f.create_group("#refs#")
        ref.create_dataset("a", data=np.zeros(2))
        s = f.create_dataset("subject", data=np.frombuffer("S1".encode("utf-16-le"), np.uint16)[:, None])
        s.attrs["MATLAB_class"] = np.bytes_("char")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)

def test_mat_v5_channels_first_to_channels_last(tmp_path):
    rng = np.random.default_rng(0)
    feats = _caffe_features(rng)
    p = tmp_path / "f.mat"
    scipy.io.savemat(p, feats)
    out = kio.load_features(p)
    assert list(out) == ["conv1", "fc6"]
    assert out["conv1"].shape == (1, 3, 5, 4)
    assert out["fc6"].shape == (1, 7)
    # value check: channel c, position (h, w)
    assert out["conv1"][0, 2, 4, 1] == feats["conv1"][1, 2, 4]
    np.testing.assert_array_equal(out["conv1"][0], feats["conv1"].transpose(1, 2, 0))
    np.testing.assert_array_equal(out["fc6"][0], feats["fc6"])
    assert out["conv1"].dtype == np.float32
    assert out["conv1"].flags["C_CONTIGUOUS"]


def test_mat_v73_transposed_storage_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    feats = _caffe_features(rng)
    feats["fc6"] = feats["fc6"][None]  # MATLAB has no 1-D arrays: [1, D]
    p = tmp_path / "v73.mat"
    _write_mat_v73(p, feats)
    # h5py sees the reversed axes
    with h5py.File(p, "r") as f:
        assert f["conv1"].shape == (5, 3, 4)
    with pytest.warns(UserWarning, match="subject"):
        raw = kio.load_features(p, data_format=None, add_batch_axis=False)
    assert set(raw) == {"conv1", "fc6"}  # '#refs#' and the char variable skipped
    np.testing.assert_array_equal(raw["conv1"], feats["conv1"])
    np.testing.assert_array_equal(raw["fc6"], feats["fc6"])
    out = kio.load_features(p, layers=["conv1"])
    np.testing.assert_array_equal(out["conv1"][0], feats["conv1"].transpose(1, 2, 0))
    with pytest.raises(ValueError, match="subject.*not a numeric"):
        kio.load_features(p, layers="subject")


def test_npz_and_h5_batched(tmp_path):
    rng = np.random.default_rng(2)
    feats = _caffe_features(rng, n=3)
    np.savez(tmp_path / "f.npz", **feats)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        for k, v in feats.items():
            f.create_dataset(k, data=v)
    with h5py.File(tmp_path / "g.hdf5", "w") as f:
        g = f.create_group("features")
        for k, v in feats.items():
            g.create_dataset(k, data=v)
    for name in ("f.npz", "f.h5", "g.hdf5"):
        out = kio.load_features(tmp_path / name)
        assert out["conv1"].shape == (3, 3, 5, 4), name
        np.testing.assert_array_equal(out["conv1"], feats["conv1"].transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(out["fc6"], feats["fc6"])
    out = kio.load_features(tmp_path / "g.hdf5", group="features", layers="fc6")
    assert list(out) == ["fc6"]
    with pytest.raises(ValueError, match="group 'nope' not found.*features"):
        kio.load_features(tmp_path / "g.hdf5", group="nope")


def test_channels_last_and_none(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 5, 4)).astype(np.float32)
    v = rng.standard_normal(6)
    np.savez(tmp_path / "f.npz", conv=a, fc=v)
    out = kio.load_features(tmp_path / "f.npz", data_format="channels_last")
    np.testing.assert_array_equal(out["conv"], a[None])
    np.testing.assert_array_equal(out["fc"], v[None])
    out = kio.load_features(tmp_path / "f.npz", data_format=None, add_batch_axis=False)
    assert out["conv"].shape == (3, 5, 4) and out["fc"].shape == (6,)
    out = kio.load_features(tmp_path / "f.npz", data_format="channels_first", add_batch_axis=False)
    assert out["conv"].shape == (5, 4, 3)


def test_layers_selection_order_and_unknown(tmp_path):
    rng = np.random.default_rng(4)
    feats = _caffe_features(rng)
    for ext in (".mat", ".npz", ".h5"):
        p = tmp_path / f"f{ext}"
        kio.save_features(p, {k: v[None] if v.ndim == 1 else v.transpose(1, 2, 0)[None]
                              for k, v in feats.items()})
        out = kio.load_features(p, layers=["fc6", "conv1"])
        assert list(out) == ["fc6", "conv1"]
        with pytest.raises(ValueError) as ei:
            kio.load_features(p, layers=["conv1", "conv9"])
        msg = str(ei.value)
        assert "conv9" in msg and "conv1" in msg and "fc6" in msg and str(p) in msg


@pytest.mark.parametrize("ext", [".mat", ".npz", ".h5", ".hdf5"])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_save_load_round_trip(tmp_path, ext, data_format):
    rng = np.random.default_rng(5)
    feats = {"conv1_1": rng.standard_normal((2, 3, 5, 4)).astype(np.float32),
             "fc7": rng.standard_normal((2, 6)).astype(np.float32)}
    p = tmp_path / f"feat{ext}"
    kio.save_features(p, feats, data_format=data_format)
    out = kio.load_features(p, data_format=data_format)
    for k in feats:
        np.testing.assert_array_equal(out[k], feats[k])
        assert out[k].dtype == np.float32
    # no temporary files left behind
    assert sorted(os.listdir(tmp_path)) == [f"feat{ext}"]


def test_save_channels_first_writes_caffe_layout(tmp_path):
    rng = np.random.default_rng(6)
    conv = rng.standard_normal((1, 3, 5, 4)).astype(np.float32)
    kio.save_features(tmp_path / "a.mat", {"conv1": conv}, squeeze_batch=True)
    m = scipy.io.loadmat(tmp_path / "a.mat")
    assert m["conv1"].shape == (4, 3, 5)
    np.testing.assert_array_equal(m["conv1"], conv[0].transpose(2, 0, 1))
    kio.save_features(tmp_path / "b.npz", {"conv1": conv})
    assert np.load(tmp_path / "b.npz")["conv1"].shape == (1, 4, 3, 5)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mat"):
        kio.load_features(tmp_path / "missing.mat")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="unsupported feature file extension '.txt'"):
        kio.load_features(tmp_path / "x.txt")
    (tmp_path / "bad.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="bad.mat"):
        kio.load_features(tmp_path / "bad.mat")
    (tmp_path / "bad.h5").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="bad.h5.*HDF5"):
        kio.load_features(tmp_path / "bad.h5")
    np.savez(tmp_path / "f.npz", a=np.zeros((1, 2, 3, 4, 5)))
    with pytest.raises(ValueError, match="layer 'a' has shape"):
        kio.load_features(tmp_path / "f.npz")
    np.savez(tmp_path / "s.npz", names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="'names' is not a real numeric"):
        kio.load_features(tmp_path / "s.npz")
    np.savez(tmp_path / "ok.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="data_format"):
        kio.load_features(tmp_path / "ok.npz", data_format="NCHW")
    with pytest.raises(ValueError, match="layers"):
        kio.load_features(tmp_path / "ok.npz", layers=[1])


def test_save_errors(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        kio.save_features(tmp_path / "f.txt", {"a": np.zeros(3)})
    with pytest.raises(ValueError, match="non-empty dict"):
        kio.save_features(tmp_path / "f.npz", {})
    with pytest.raises(ValueError, match="'conv1/1' is not a valid MATLAB"):
        kio.save_features(tmp_path / "f.mat", {"conv1/1": np.zeros(3)})
    with pytest.raises(ValueError, match=r"features\['a'\].*shape"):
        kio.save_features(tmp_path / "f.npz", {"a": np.zeros((1, 1, 1, 1, 1))})
    with pytest.raises(ValueError, match=r"features\['a'\].*dtype"):
        kio.save_features(tmp_path / "f.npz", {"a": np.array(["x"])})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kio.save_features(tmp_path / "nodir" / "f.npz", {"a": np.zeros(3)})
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_upper_case_extensions_are_written_in_place(tmp_path):
    """savez/savemat append '.npz'/'.mat' to names without it in lower case; the file the user
    named must hold the data, and no stray file may be left."""
    feats = {"fc6": np.arange(10, dtype=np.float32)[None]}
    for name in ("B.NPZ", "C.MAT"):
        kio.save_features(tmp_path / name, feats)
        np.testing.assert_array_equal(kio.load_features(tmp_path / name)["fc6"], feats["fc6"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B.NPZ", "C.MAT"]


def test_file_name_helpers(tmp_path):
    assert kio.file_extension(tmp_path / "a.B.MAT") == ".mat"
    assert kio.file_extension("noext") == ""
    with pytest.raises(ValueError, match="file name"):
        kio.check_file_name(3)
    with pytest.raises(FileNotFoundError, match="feature file not found"):
        kio.check_existing_file(tmp_path / "x.mat", "feature file")
    with pytest.raises(ValueError, match="got a directory"):
        kio.check_existing_file(tmp_path)
    assert kio.is_matlab_name("conv1_1") and not kio.is_matlab_name("1conv")
