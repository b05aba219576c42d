"""Property-based tests of the feature-file readers: ``keras_icnn.io.load_features`` (.mat v5,
.mat v7.3, .npz, .h5), ``save_features`` round trips, and ``objective.scaling.load_feature_std``.

For random bytes, valid files cut short or with bytes flipped/inserted/deleted, and files of
odd but well-formed structure (strings, objects, complex, bool, 0-d and 5-d arrays, empty
arrays, NaN, odd MATLAB attributes, dangling links), a reader either returns the right arrays
or raises ``ValueError`` / ``FileNotFoundError`` naming the file -- never another exception,
never a hang.  ``KERAS_ICNN_FUZZ_EXAMPLES=2000`` runs every test with 2000 examples.
"""
from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, str(Path(__file__).parent))

from fuzz_helpers import fuzz_settings, mutated, outcome, time_limit, truncations  # noqa: E402
from test_io_features import _write_mat_v73  # noqa: E402

from keras_icnn import io as kio  # noqa: E402
from keras_icnn.objective import scaling  # noqa: E402

FORMATS = ("v5.mat", "v5z.mat", "v73.mat", ".npz", "z.npz", ".h5", "z.h5")
NUMERIC = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool")


class _Quiet(dict):
    """A dict that Hypothesis' failure reports show in one line."""

    def __repr__(self):
        return f"<{len(self)} entries>"


def _ext(fmt):
    return os.path.splitext(fmt)[1] or fmt


def _base_arrays():
    rng = np.random.default_rng(0)
    return {"conv1": rng.standard_normal((2, 4, 3, 5)).astype(np.float32),
            "conv2": rng.integers(-9, 9, (3, 2, 2)).astype(np.int16),
            "fc6": rng.standard_normal((1, 7)),
            "fc7": rng.standard_normal((2, 6)).astype(np.float32)}


def _write_native(path, fmt, arrays):
    """Write ``arrays`` in format ``fmt`` with the format's own writer (no checks)."""
    if fmt in ("v5.mat", "v5z.mat"):
        with open(path, "wb") as fh:
            scipy.io.savemat(fh, arrays, format="5", oned_as="row",
                             do_compression=fmt == "v5z.mat")
    elif fmt == "v73.mat":
        _write_mat_v73(path, arrays)
    elif fmt in (".npz", "z.npz"):
        with open(path, "wb") as fh:
            (np.savez_compressed if fmt == "z.npz" else np.savez)(fh, **arrays)
    else:
        with h5py.File(path, "w") as f:
            g = f.create_group("feat")
            for k, v in arrays.items():
                g.create_dataset(k, data=v, **({"compression": "gzip", "chunks": True}
                                               if fmt == "z.h5" and v.ndim else {}))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_features")


@pytest.fixture(scope="module")
def base_files(workdir):
    """{format: (bytes of a valid file, what load_features gives for it)}."""
    out = _Quiet()
    for fmt in FORMATS:
        p = workdir / f"base_{fmt.replace('.', '_')}{_ext(fmt)}"
        _write_native(p, fmt, _base_arrays())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = kio.load_features(p)
        assert set(loaded) == set(_base_arrays())
        out[fmt] = (p.read_bytes(), loaded)
    return out


def _load(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "skipping non-numeric entries"
        return outcome(kio.load_features, path, names=path, **kwargs)


def _check_sane(result):
    """What load_features returns with its defaults: batched numeric arrays."""
    assert isinstance(result, dict) and result
    for name, a in result.items():
        assert isinstance(name, str)
        assert isinstance(a, np.ndarray) and a.dtype.kind in "biuf", (name, a.dtype)
        assert a.ndim in (2, 4), (name, a.shape)


# --------------------------------------------------------------------------------------------
# damaged files
# --------------------------------------------------------------------------------------------
_MAGICS = [b"", b"\x89HDF\r\n\x1a\n", b"PK\x03\x04", b"\x93NUMPY\x01\x00",
           b"MATLAB 5.0 MAT-file".ljust(116) + b"\x00" * 8 + b"\x00\x01IM",
           b"MATLAB 5.0 MAT-file".ljust(116) + b"\x00" * 8 + b"\x01\x00MI"]


@fuzz_settings(200)
@given(fmt=st.sampled_from(FORMATS), magic=st.sampled_from(_MAGICS),
       data=st.binary(max_size=3000))
def test_random_bytes(workdir, fmt, magic, data):
    path = workdir / f"random{_ext(fmt)}"
    path.write_bytes(magic + data)
    result = _load(path)
    if result is not None:
        _check_sane(result)


@fuzz_settings(200)
@given(fmt=st.sampled_from(FORMATS), data=st.data())
def test_truncated_files(workdir, base_files, fmt, data):
    base, full = base_files[fmt]
    path = workdir / f"truncated{_ext(fmt)}"
    path.write_bytes(data.draw(truncations(base)))
    result = _load(path)
    if result is not None:  # cut between two entries: a valid, shorter file
        _check_sane(result)
        for name, a in result.items():
            assert name in full
            np.testing.assert_array_equal(a, full[name])


@fuzz_settings(300)
@given(fmt=st.sampled_from(FORMATS), data=st.data())
def test_damaged_files(workdir, base_files, fmt, data):
    base, _ = base_files[fmt]
    path = workdir / f"damaged{_ext(fmt)}"
    path.write_bytes(data.draw(mutated(base)))
    result = _load(path)
    if result is not None:
        _check_sane(result)


@fuzz_settings(100)
@given(fmt=st.sampled_from(FORMATS), data=st.data(),
       layers=st.one_of(st.none(), st.sampled_from(["conv1", "fc6", "nope"]),
                        st.lists(st.sampled_from(["conv1", "conv2", "fc6", "fc7", "x"]),
                                 min_size=1, max_size=3)),
       data_format=st.sampled_from(["channels_first", "channels_last", None]),
       add_batch_axis=st.booleans())
def test_damaged_files_with_options(workdir, base_files, fmt, data, layers, data_format,
                                    add_batch_axis):
    base, _ = base_files[fmt]
    path = workdir / f"options{_ext(fmt)}"
    path.write_bytes(data.draw(st.one_of(mutated(base), truncations(base))))
    result = _load(path, layers=layers, data_format=data_format, add_batch_axis=add_batch_axis)
    if result is not None:
        for a in result.values():
            assert isinstance(a, np.ndarray) and a.dtype.kind in "biuf"


@pytest.fixture(scope="module")
def struct_file(workdir):
    """A v5 .mat file whose struct variable 'feat' holds one field per layer (group='feat')."""
    path = workdir / "struct_base.mat"
    with open(path, "wb") as fh:
        scipy.io.savemat(fh, {"feat": _base_arrays(), "other": np.ones(2)}, format="5")
    full = kio.load_features(path, group="feat")
    assert set(full) == set(_base_arrays())
    return path.read_bytes(), _Quiet(full)


@fuzz_settings(150)
@given(data=st.data(), group=st.sampled_from(["feat", "other", "nope"]))
def test_damaged_struct_files(workdir, struct_file, data, group):
    base, full = struct_file
    path = workdir / "struct.mat"
    path.write_bytes(data.draw(st.one_of(truncations(base), mutated(base))))
    result = _load(path, group=group)
    if result is not None:
        _check_sane(result)


def test_mat_v5_damage_that_breaks_scipy(workdir):
    """Damage that makes scipy.io.loadmat crash the interpreter (segmentation fault) or fill the
    memory is found before scipy reads the file: a data element with a type code that is not a
    MATLAB type (scipy PR #25349), a complex flag on an array without an imaginary part (scipy
    reads the next variable's tag as one), a struct whose dimensions promise more arrays than
    it holds."""
    arrays = {"a": np.arange(3.0)[None], "b": np.ones((1, 2))}
    good = io.BytesIO()
    scipy.io.savemat(good, arrays, format="5")
    good = good.getvalue()
    real_tag = good.index(b"\x01\0\x01\0a\0\0\0") + 8  # after a's name (a small element)
    assert good[real_tag:real_tag + 4] == b"\x09\0\0\0"  # miDOUBLE
    bad_type = good[:real_tag] + b"\x08" + good[real_tag + 1:]
    flags = 128 + 8 + 8  # first variable: its tag, then the array flags' tag
    assert good[flags] == 6  # mxDOUBLE_CLASS
    complex_flag = good[:flags + 1] + bytes([good[flags + 1] | 0x08]) + good[flags + 2:]
    for name, data in (("bad_type", bad_type), ("complex_flag", complex_flag)):
        path = workdir / f"{name}.mat"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}.mat: damaged MATLAB .mat file"):
            kio.load_features(path)
    path = workdir / "good.mat"
    path.write_bytes(good)
    got = kio.load_features(path, data_format=None, add_batch_axis=False)
    for k, v in arrays.items():
        np.testing.assert_array_equal(got[k], v)

    # a struct whose dimensions claim 1e8 elements: scipy allocates them all (1.6 GB, seconds;
    # 1e9 and the OOM killer ends the process) before it finds the data missing
    good = io.BytesIO()
    scipy.io.savemat(good, {"feat": {"a": np.ones(2), "b": np.zeros(3)}}, format="5")
    good = good.getvalue()
    dims = 128 + 8 + 16 + 8  # variable tag, array flags, dimensions' tag
    assert good[dims:dims + 8] == b"\x01\0\0\0\x01\0\0\0"  # 1 x 1
    path = workdir / "big_struct.mat"
    path.write_bytes(good[:dims + 4] + (10**8).to_bytes(4, "little") + good[dims + 8:])
    with time_limit(5):
        with pytest.raises(ValueError, match="big_struct.mat: damaged.*need 200000000"):
            kio.load_features(path, group="feat")


# --------------------------------------------------------------------------------------------
# odd but well-formed files
# --------------------------------------------------------------------------------------------
_NAMES = st.from_regex(r"\A[a-z][a-z0-9_]{0,6}\Z")
_ODD = ("complex128", "str", "bytes", "object", "float16", "struct", "sparse", "empty_h5")


@st.composite
def _entries(draw, fmt):
    """{name: (kind, array-ish)}: numeric arrays of any dtype/ndim (0..5, zero-sized, NaN/Inf)
    and non-numeric things the format can hold."""
    names = draw(st.lists(_NAMES, min_size=1, max_size=4, unique=True))
    out = {}
    for name in names:
        kind = draw(st.sampled_from(NUMERIC + _ODD))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3))
        if kind in NUMERIC or kind in ("complex128", "float16"):
            arr = draw(hnp.arrays(kind, shape))
        elif kind == "str":
            arr = draw(hnp.arrays("U3", shape, elements=st.text("abc", max_size=3)))
        elif kind == "bytes":
            arr = draw(hnp.arrays("S3", shape, elements=st.binary(max_size=3).map(
                lambda b: b.replace(b"\0", b"x"))))
        elif kind == "object":
            arr = np.empty(2, dtype=object)
            arr[0], arr[1] = np.zeros(2), "x"
        elif kind == "struct":
            arr = {"a": np.ones(2), "b": "text"}
        elif kind == "sparse":
            arr = scipy.sparse.csc_matrix(np.eye(3))
        else:
            arr = h5py.Empty("f4")
        out[name] = (kind, arr)
    return out


def _writable(fmt, kind):
    if fmt.endswith(".mat") and fmt != "v73.mat":
        return kind not in ("bytes", "empty_h5")
    if fmt == "v73.mat" or fmt.endswith(".h5"):
        return kind not in ("struct", "sparse", "object")
    return kind not in ("struct", "sparse", "empty_h5")  # npz


def _write_entries(path, fmt, entries, attrs):
    """Write the entries natively; ``attrs`` ({name: {attr: value}}) decorate HDF5 datasets."""
    if fmt.endswith(".mat") and fmt != "v73.mat":
        arrays = {k: v for k, (kind, v) in entries.items()}
        _write_native(path, fmt, arrays)
        return
    if fmt in (".npz", "z.npz"):
        _write_native(path, fmt, {k: v for k, (kind, v) in entries.items()})
        return
    userblock = 512 if fmt == "v73.mat" else 0
    with h5py.File(path, "w", userblock_size=userblock) as f:
        for k, (kind, v) in entries.items():
            if kind == "str":
                v = np.asarray(v, dtype=h5py.string_dtype())
            if kind != "empty_h5" and fmt == "v73.mat":
                v = np.asarray(v).T
            ds = f.create_dataset(k, data=v)
            for a, val in attrs.get(k, {}).items():
                ds.attrs[a] = val


_ATTR_VALUES = {
    "MATLAB_class": [np.bytes_("double"), np.bytes_("single"), np.bytes_("logical"),
                     np.bytes_("char"), np.bytes_("cell"), np.bytes_(""), "double", 7,
                     np.array([1, 2]), np.bytes_("int8")],
    "MATLAB_empty": [0, 1, np.uint8(1), np.array([], dtype=np.int8), "yes", np.array([[0]]),
                     np.float64(np.nan), np.array([2, 0])],
}


def _expected(fmt, entries, attrs):
    """What load_features (defaults) must give: ("ok", {name: array}) or ("error", None)
    ("maybe", None) where either is right."""
    ext = _ext(fmt)
    hdf5 = fmt == "v73.mat" or ext == ".h5"
    out, bad = {}, False
    for name, (kind, v) in entries.items():
        if hdf5:
            a = attrs.get(name, {})
            if "MATLAB_class" in a or "MATLAB_empty" in a:
                # the attributes' meaning is tested by test_matlab_attributes
                return "maybe", None
            if kind in ("complex128", "str", "bytes"):
                continue  # skipped (a warning)
            if kind == "empty_h5":  # a null dataspace: no array to read
                bad = True
                continue
            stored = np.asarray(v)
        elif ext == ".npz":
            if kind not in NUMERIC and kind != "float16":
                bad = True
                continue
            stored = np.asarray(v)
        else:  # v5 .mat
            if kind in ("str", "object", "struct", "sparse"):
                continue  # skipped (a warning)
            if kind == "complex128":
                bad = True
                continue
            stored = np.asarray(v)
            if kind == "float16":
                stored = stored.astype(np.float64)
            if stored.ndim < 2:
                stored = stored.reshape((1, 1) if stored.ndim == 0 else
                                        (1, -1) if stored.size else (0, 0))
        if stored.ndim == 0 or stored.ndim > 4:
            bad = True
            continue
        if stored.ndim == 3:
            stored = stored.transpose(1, 2, 0)[None]
        elif stored.ndim == 4:
            stored = stored.transpose(0, 2, 3, 1)
        elif stored.ndim == 1:
            stored = stored[None]
        out[name] = stored
    if bad or not out:
        return "error", None
    return "ok", out


@fuzz_settings(200)
@given(fmt=st.sampled_from(FORMATS), data=st.data())
def test_odd_structures(workdir, fmt, data):
    entries = data.draw(_entries(fmt))
    entries = {k: v for k, v in entries.items() if _writable(fmt, v[0])}
    assume(entries)
    attrs = {}
    if fmt in ("v73.mat", ".h5"):
        for name in entries:
            for attr, values in _ATTR_VALUES.items():
                if data.draw(st.integers(0, 4)) == 0:
                    attrs.setdefault(name, {})[attr] = data.draw(st.sampled_from(values))
    path = workdir / f"odd{_ext(fmt)}"
    if path.exists():
        path.unlink()
    try:
        _write_entries(path, fmt, entries, attrs)
    except Exception:  # noqa: BLE001 - something the writer itself cannot store
        assume(False)
    result = _load(path)
    verdict, expected = _expected(fmt, entries, attrs)
    if verdict == "error":
        assert result is None, f"expected an error, got {result}"
    elif verdict == "ok":
        assert result is not None, "a well-formed file was refused"
        # HDF5 lists its members by name, the other formats in the order written
        assert (sorted if _ext(fmt) == ".h5" or fmt == "v73.mat" else list)(result) == \
            (sorted if _ext(fmt) == ".h5" or fmt == "v73.mat" else list)(expected)
        for name, a in expected.items():
            assert result[name].dtype == a.dtype, name
            np.testing.assert_array_equal(result[name], a)
    elif result is not None:
        _check_sane(result)


@pytest.mark.parametrize("ext", [".h5", ".mat"])
def test_matlab_attributes(workdir, ext):
    """MATLAB_class / MATLAB_empty of a v7.3 file: numeric classes are read (logical as bool),
    others and MATLAB's empty markers are skipped, unreadable markers are a clear error."""
    path = workdir / f"attrs{ext}"
    a = np.arange(6, dtype=np.uint8).reshape(2, 3) % 2

    def write(**ds_attrs):
        with h5py.File(path, "w", userblock_size=512 if ext == ".mat" else 0) as f:
            f.create_dataset("ok", data=np.ones((1, 2)))
            ds = f.create_dataset("x", data=a.T if ext == ".mat" else a)
            for k, v in ds_attrs.items():
                ds.attrs[k] = v
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return outcome(kio.load_features, path, names=path)

    got = write(MATLAB_class=np.bytes_("logical"))
    assert got["x"].dtype == bool
    np.testing.assert_array_equal(got["x"], a.astype(bool))
    assert write(MATLAB_class=np.bytes_("uint8"))["x"].dtype == np.uint8
    assert "x" not in write(MATLAB_class=np.bytes_("char"))
    assert "x" not in write(MATLAB_class=np.bytes_("double"), MATLAB_empty=np.uint8(1))
    assert "x" in write(MATLAB_class=np.bytes_("double"), MATLAB_empty=np.uint8(0))
    for odd in ("yes", np.array([], dtype=np.int8)):
        assert write(MATLAB_empty=odd) is None  # refused, naming the file


def test_dangling_links_and_external_links(workdir):
    path = workdir / "links.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=np.ones((1, 3)))
        f["soft"] = h5py.SoftLink("/nowhere")
        f["ext"] = h5py.ExternalLink(str(workdir / "missing.h5"), "/x")
    result = _load(path)
    if result is not None:
        assert list(result) == ["a"]
    with h5py.File(path, "a") as f:
        del f["a"]
    assert _load(path) is None
    assert _load(path, layers="soft") is None


# --------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------
_ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                      st.binary(max_size=4), st.lists(st.text(max_size=4), max_size=3),
                      st.lists(st.integers(), max_size=2), st.just(np.array(["a", "b"])),
                      st.just(np.bool_(True)), st.just(object()), st.just({"a": 1}))


@fuzz_settings(150)
@given(fmt=st.sampled_from([".npz", ".h5", "v5.mat", "v73.mat"]), path_kind=st.integers(0, 4),
       layers=st.one_of(_ANYTHING, st.sampled_from(["fc6", ["fc7", "conv1"]])),
       data_format=st.one_of(_ANYTHING, st.sampled_from(["channels_first", "channels_last"])),
       add_batch_axis=st.one_of(_ANYTHING, st.booleans()),
       group=st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["feat", "/", ".", "/feat"]),
                       _ANYTHING))
def test_any_arguments(workdir, base_files, fmt, path_kind, layers, data_format,
                       add_batch_axis, group):
    path = workdir / f"args{_ext(fmt)}"
    if not path.exists() or path.read_bytes() != base_files[fmt][0]:
        path.write_bytes(base_files[fmt][0])
    target = [path, str(path), workdir, workdir / "missing.npz", 12][path_kind]
    with time_limit(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = kio.load_features(target, layers=layers, data_format=data_format,
                                       add_batch_axis=add_batch_axis, group=group)
        except FileNotFoundError as exc:
            assert path_kind == 3 and str(target) in str(exc)
            return
        except ValueError as exc:
            msg = str(exc)
            assert any(w in msg for w in (str(target), "layers", "data_format", "add_batch_axis",
                                          "group", "path")), msg
            return
    assert path_kind in (0, 1)
    for a in result.values():
        assert isinstance(a, np.ndarray) and a.dtype.kind in "biuf"


# --------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------
def _layer_names(ext):
    if ext == ".mat":
        return st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,62}\Z")
    if ext == ".npz":
        return st.text(min_size=1, max_size=12)
    return st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s)


@st.composite
def _features(draw, ext):
    names = draw(st.lists(_layer_names(ext), min_size=1, max_size=3, unique=True))
    feats = {}
    for name in names:
        dtype = draw(st.sampled_from(NUMERIC + ("float16",)))
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
        feats[name] = draw(hnp.arrays(dtype, shape))
    return feats


@fuzz_settings(150)
@given(ext=st.sampled_from([".mat", ".npz", ".h5", ".hdf5"]), data=st.data(),
       data_format=st.sampled_from(["channels_first", "channels_last", None]),
       squeeze_batch=st.booleans())
def test_save_load_round_trip(workdir, ext, data, data_format, squeeze_batch):
    feats = data.draw(_features(ext))
    path = workdir / f"round{ext}"
    try:
        kio.save_features(path, feats, data_format=data_format, squeeze_batch=squeeze_batch)
    except ValueError as exc:  # names save_features refuses: they must be the unreadable ones
        msg = str(exc)
        assert "layer name" in msg, msg
        bad = [n for n in feats if n in msg or repr(n) in msg]
        assert bad, msg
        return
    got = outcome(kio.load_features, path, names=path, data_format=data_format)
    assert got is not None
    assert (sorted if ext in (".h5", ".hdf5") else list)(got) == \
        (sorted if ext in (".h5", ".hdf5") else list)(feats)
    for name, a in feats.items():
        want = a[None] if a.ndim in (1, 3) else a
        if ext == ".mat" and a.dtype == np.float16:  # MATLAB has no half floats
            want = want.astype(np.float64)
        assert got[name].dtype == want.dtype, (name, got[name].dtype, want.dtype)
        np.testing.assert_array_equal(got[name], want)


# --------------------------------------------------------------------------------------------
# load_feature_std
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def std_files(workdir):
    stds = {"conv1_1": 31.5, "fc8": 1.25, "relu7": 0.75}
    out = _Quiet()
    for ext in (".mat", ".npz"):
        p = workdir / f"std_base{ext}"
        scaling.save_feature_std(p, stds)
        out[ext] = p.read_bytes()
    return stds, out


@fuzz_settings(200)
@given(ext=st.sampled_from([".mat", ".npz"]), data=st.data())
def test_feature_std_damaged(workdir, std_files, ext, data):
    stds, files = std_files
    base = files[ext]
    path = workdir / f"std{ext}"
    path.write_bytes(data.draw(st.one_of(st.binary(max_size=600), truncations(base),
                                         mutated(base))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = outcome(scaling.load_feature_std, path, names=path)
    if result is not None:
        for k, v in result.items():
            assert isinstance(v, float) and np.isfinite(v) and v > 0


@fuzz_settings(150)
@given(ext=st.sampled_from([".mat", ".npz", ".h5"]),
       values=st.dictionaries(
           st.from_regex(r"\A[a-z][a-z0-9_]{0,6}\Z"),
           st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 2**70),
                     st.booleans(), st.complex_numbers(max_magnitude=10),
                     st.text(max_size=3).map(lambda t: t.replace("\0", "x")),
                     st.just(np.zeros((2, 2))), st.just(np.zeros((1, 1, 1))),
                     st.just(np.zeros(0)), st.just(np.array([[3.5]], dtype=np.float32))),
           min_size=1, max_size=3))
def test_feature_std_values(workdir, ext, values):
    path = workdir / f"std_values{ext}"
    arrays = {}
    for k, v in values.items():
        try:
            arrays[k] = np.asarray(v) if not isinstance(v, int) or isinstance(v, bool) \
                else np.asarray(v, dtype=np.int64 if -2**63 <= v < 2**63 else np.uint64)
        except OverflowError:
            arrays[k] = np.asarray(float(v))
    if ext == ".h5":
        with h5py.File(path, "w") as f:
            for k, a in arrays.items():
                f.create_dataset(k, data=np.asarray(a, dtype=h5py.string_dtype())
                                 if a.dtype.kind == "U" else a)
    else:
        _write_native(path, "v5.mat" if ext == ".mat" else ".npz", arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = outcome(scaling.load_feature_std, path, names=path)

    def good(a):
        return (a.dtype.kind in "iuf" and a.size == 1 and np.isfinite(float(a.ravel()[0]))
                and float(a.ravel()[0]) > 0)

    # .mat and HDF5 files skip (with a warning) what is not a MATLAB numeric class / real array
    numeric = {k: a for k, a in arrays.items() if a.dtype.kind not in ("USOc" if ext == ".h5"
                                                                        else "USO")}
    ok = all(good(a) for a in (numeric.values() if ext != ".npz" else arrays.values()))
    if ok and numeric:
        assert result == {k: float(a.ravel()[0]) for k, a in numeric.items()}
    else:
        assert result is None, f"expected an error for {values}, got {result}"
