"""Reading and writing CNN feature files (``.mat`` v5/v7.3, ``.npz``, ``.h5``/``.hdf5``).

Inside keras-icnn features are dicts ``{layer name: np.ndarray}`` in **channels-last layout
with a batch axis**: conv features ``[N, H, W, C]``, fc features ``[N, D]``.  The lab's data
files (Caffe era) store **channels-first** arrays per layer: ``[C, H, W]``, ``[1, C, H, W]`` or
``[N, C, H, W]`` for conv layers and ``[D]`` / ``[1, D]`` / ``[N, D]`` for fc layers.

:func:`load_features` reads

* MATLAB v5 ``.mat`` files (``scipy.io.loadmat``; the ``__header__``-style entries are skipped),
* MATLAB v7.3 ``.mat`` files (these are HDF5 files; they are detected and read with ``h5py``),
* ``.npz`` files (one array per layer),
* ``.h5`` / ``.hdf5`` files (one dataset per layer, at the root or under a group).

**MATLAB v7.3 axis order.**  MATLAB is column-major and writes its arrays to HDF5 with the
axes reversed: a MATLAB array of size ``[C, H, W]`` comes back from ``h5py`` with shape
``(W, H, C)``.  :func:`load_features` therefore reverses all axes of every dataset of a v7.3
``.mat`` file, so that an array that was ``[C, H, W]`` in MATLAB is ``[C, H, W]`` in Python
(exactly what ``scipy.io.loadmat`` gives for a v5 file).  Plain ``.h5``/``.hdf5`` files are
read as stored (no reversal): they are assumed to have been written from row-major code
(numpy/h5py).  To build a v7.3-style file from Python, store ``array.T`` (which is what
MATLAB does) and give the file a ``.mat`` extension.

2-D arrays are always taken as ``[N, D]`` (one row per sample), which is how MATLAB and
``scipy.io.savemat`` store a feature vector (``[1, D]``).  A MATLAB *column* vector
``[D, 1]`` would be read as ``D`` samples of one value: save row vectors.

The writers write to a temporary file in the destination directory and then ``os.replace``
it (:func:`keras_icnn.io.atomic.atomic_path`), so a reader never sees a half-written file.
"""
from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Mapping

import numpy as np

from keras_icnn.validation import numeric_array

from keras_icnn.errors import FileFormatError
from keras_icnn.io.atomic import atomic_path
from keras_icnn.io.mat_v5 import loadmat
from keras_icnn.io.paths import check_existing_file, check_file_name, file_extension

__all__ = [
    "load_features",
    "save_features",
    "write_arrays",
    "is_matlab_name",
    "FEATURE_EXTENSIONS",
    "DATA_FORMATS",
]

#: File extensions understood by :func:`load_features` / :func:`save_features`.
FEATURE_EXTENSIONS = (".mat", ".npz", ".h5", ".hdf5")
#: Values accepted for ``data_format``.
DATA_FORMATS = ("channels_first", "channels_last", None)

_MATLAB_NUMERIC_CLASSES = {
    "double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
    "int64", "uint64", "logical",
}
_MATLAB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _check_data_format(data_format):
    if not (data_format is None or (isinstance(data_format, str) and data_format in DATA_FORMATS)):
        raise ValueError(
            f"data_format: expected 'channels_first', 'channels_last' or None, got {data_format!r}")


def _check_numeric(arr, name, path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise FileFormatError(
            f"{path}: entry {name!r} is not a real numeric array (dtype {arr.dtype}); "
            "expected one numeric array per layer")
    return arr


def _check_load_args(data_format, add_batch_axis, group, layers):
    """Validate the options of :func:`load_features`; returns ``layers`` normalised."""
    _check_data_format(data_format)
    if not isinstance(add_batch_axis, (bool, np.bool_)):
        raise ValueError(f"add_batch_axis: expected True or False, got {add_batch_axis!r}")
    if group is not None and not isinstance(group, str):
        raise ValueError(f"group: expected a group name (str) or None, got {group!r}")
    return _normalise_layers(layers)


def is_matlab_name(name) -> bool:
    """Whether ``name`` is a valid MATLAB variable name (letter first, then letters, digits,
    ``_``, at most 63 characters): the keys a ``.mat`` file can hold."""
    return bool(_MATLAB_NAME.match(name))


# --------------------------------------------------------------------------------------------
# readers: each returns (available names, function name -> np.ndarray, (numeric, skipped))
# --------------------------------------------------------------------------------------------
def _open_feature_file(path, layers, group):
    """Pick the reader for ``path`` by its extension (and, for ``.mat``, its content)."""
    ext = file_extension(path)
    if ext == ".mat":
        if _is_hdf5(path):
            return _read_hdf5(path, layers, group, reverse_axes=True)
        return _read_mat_v5(path, layers, group)
    if ext in (".h5", ".hdf5"):
        return _read_hdf5(path, layers, group, reverse_axes=False)
    if ext == ".npz":
        return _read_npz(path, layers, group)
    raise ValueError(f"{path}: unsupported feature file extension {ext!r}; "
                     f"expected one of {', '.join(FEATURE_EXTENSIONS)}")


def _is_hdf5(path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    sig = b"\x89HDF\r\n\x1a\n"
    # The HDF5 signature is at offset 0 or, with a user block (MATLAB v7.3: 512 bytes), at a
    # power of two >= 512.
    if head.startswith(sig) or head[512:520] == sig:
        return True
    try:
        import h5py
        return bool(h5py.is_hdf5(path))
    except Exception:  # pragma: no cover - h5py missing or unreadable file
        return False


def _read_mat_v5(path, layers, group):
    import scipy.io

    try:
        info = scipy.io.whosmat(path)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable MATLAB .mat file ({exc})") from None
    names = [n for n, _shape, _cls in info if not n.startswith("__")]
    classes = {n: cls for n, _shape, cls in info}
    if group is not None:
        return _read_mat_struct(path, names, group)

    cache = {}
    # (whosmat calls the other classes struct, cell, char, object, sparse, function, opaque)
    numeric = [n for n in names if classes.get(n) in _MATLAB_NUMERIC_CLASSES]
    skipped = [n for n in names if n not in numeric]

    def read(name):
        if classes.get(name) not in _MATLAB_NUMERIC_CLASSES:
            raise FileFormatError(f"{path}: variable {name!r} is a MATLAB {classes[name]}, "
                                  "not a numeric array")
        if not cache:
            wanted = layers if layers is not None else numeric
            try:
                cache.update(loadmat(path, wanted))
            except FileFormatError:
                raise
            except Exception as exc:
                raise FileFormatError(f"{path}: could not read the .mat file ({exc})") from None
        if name not in cache:
            raise FileFormatError(f"{path}: variable {name!r} is listed in the file's directory "
                                  "but could not be read; the file is damaged")
        arr = _check_numeric(cache[name], name, path)
        # scipy gives MATLAB logicals as uint8
        return arr.astype(bool) if classes.get(name) == "logical" else arr

    return names, read, (numeric, skipped)


def _read_mat_struct(path, names, group):
    """The fields of the 1x1 struct variable ``group`` of a v5 ``.mat`` file, one per layer."""
    if group not in names:
        raise ValueError(f"{path}: group (struct variable) {group!r} not found; "
                         f"variables in the file: {names}")
    try:
        mat = loadmat(path, [group])
    except FileFormatError:
        raise
    except Exception as exc:
        raise FileFormatError(f"{path}: could not read variable {group!r} ({exc})") from None
    if group not in mat:
        raise FileFormatError(f"{path}: variable {group!r} could not be read; the file is damaged")
    struct = mat[group]
    if struct.dtype.names is None or struct.size != 1:
        raise FileFormatError(f"{path}: variable {group!r} is not a 1x1 MATLAB struct "
                              "(expected a struct with one field per layer)")
    record = struct.reshape(-1)[0]
    fields = {n: record[n] for n in struct.dtype.names}
    return list(fields), (lambda n: _check_numeric(fields[n], f"{group}.{n}", path)), None


# MATLAB v5 files: scipy's reader is not hardened against damaged files.  A data element whose
# type code is not a MATLAB data type, or an array whose flags promise more elements than it
# holds (scipy then reads the next variable's bytes), makes it index a table out of range and
# crash the interpreter (a segmentation fault, not an exception; scipy PR #25349).  So
def _matlab_class(obj):
    """The ``MATLAB_class`` attribute of an HDF5 object as a str, or None."""
    cls = obj.attrs.get("MATLAB_class", None)
    if isinstance(cls, bytes):
        cls = cls.decode("ascii", "replace")
    return None if cls is None else str(cls)


def _h5_numeric(obj, path) -> bool:
    cls = _matlab_class(obj)
    if cls is not None and cls not in _MATLAB_NUMERIC_CLASSES:
        return False
    if "MATLAB_empty" in obj.attrs:
        empty = np.asarray(obj.attrs["MATLAB_empty"])
        if empty.dtype.kind not in "biuf" or empty.size != 1:
            raise FileFormatError(f"{path}: dataset {obj.name!r} has a MATLAB_empty attribute "
                                  f"{empty!r}; expected one number (0 or 1)")
        if empty.ravel()[0]:
            return False
    return obj.dtype.kind in "biuf"


def _hdf5_members(node, kind) -> list:
    """Names of the members of ``node`` of type ``kind`` (``h5py.Dataset`` or ``h5py.Group``),
    without metadata entries (``#refs#``, ``__...``)."""
    return [k for k, v in node.items()
            if isinstance(v, kind) and not (k.startswith("#") or k.startswith("__"))]


def _hdf5_layer_node(fh, path, group):
    """The HDF5 group holding the layer datasets: ``group``; by default the root if it holds
    datasets, else its only group."""
    import h5py

    if group is not None:
        try:
            node = fh.get(group)
        except Exception:  # noqa: BLE001 - a name HDF5 cannot look up ("", NUL, ...)
            node = None
        if not isinstance(node, h5py.Group):
            groups = _hdf5_members(fh, h5py.Group)
            raise FileFormatError(f"{path}: group {group!r} not found; groups at the root: "
                                  f"{groups}")
        return node
    if _hdf5_members(fh, h5py.Dataset):
        return fh
    groups = _hdf5_members(fh, h5py.Group)
    if len(groups) > 1:
        raise FileFormatError(f"{path}: no datasets at the root and several groups {groups}; "
                              "pass group=<name> to say which one holds the layers")
    return fh[groups[0]] if groups else fh


def _check_h5_storage(ds, path, name) -> None:
    """Refuse a dataset whose stored data cannot fill its shape.  Damaged dimensions otherwise
    make HDF5 allocate chunk buffers of the wrong rank, or fill gigabytes of memory with the
    fill value where no data was ever written (a few bytes of damage, then the OOM killer)."""
    from h5py import h5d

    if ds.shape is None or ds.size == 0:
        return
    damaged = f"{path}: dataset {name!r} is damaged or was never completely written: shape " \
              f"{ds.shape} ({ds.size * ds.dtype.itemsize} bytes)"
    if ds.chunks is None:
        plist = ds.id.get_create_plist()
        if plist.get_layout() == h5d.CONTIGUOUS and plist.get_external_count() == 0 and \
                ds.id.get_storage_size() < ds.size * ds.dtype.itemsize:
            raise FileFormatError(f"{damaged}, but {ds.id.get_storage_size()} bytes stored")
        return
    if len(ds.chunks) != ds.ndim:
        raise FileFormatError(f"{damaged}, but chunks of shape {ds.chunks}")
    needed = int(np.prod([-(-n // c) for n, c in zip(ds.shape, ds.chunks)], dtype=object))
    stored = ds.id.get_num_chunks()
    if stored < needed:
        raise FileFormatError(f"{damaged} needs {needed} chunks of shape {ds.chunks}, but "
                              f"{stored} are stored")


def _read_hdf5_datasets(node, path, names, layers, reverse_axes) -> dict:
    """Read the wanted numeric datasets of ``node`` into memory (all axes reversed if
    ``reverse_axes``); non-numeric ones are skipped, or refused if asked for by name."""
    data = {}
    wanted = names if layers is None else [n for n in layers if n in names]
    for name in wanted:
        ds = node[name]
        if not _h5_numeric(ds, path):
            if layers is None:
                continue
            raise FileFormatError(f"{path}: dataset {name!r} is not a numeric array (dtype "
                                  f"{ds.dtype}, MATLAB_class {ds.attrs.get('MATLAB_class')!r})")
        _check_h5_storage(ds, path, name)
        arr = np.asarray(ds[()])
        if reverse_axes and arr.ndim > 1:
            arr = arr.transpose(tuple(range(arr.ndim))[::-1])
        if _matlab_class(ds) == "logical":
            arr = arr.astype(bool)  # MATLAB stores logicals as uint8
        data[name] = np.asarray(arr, order="C")  # (np.ascontiguousarray makes 0-d arrays 1-d)
    return data


def _read_hdf5(path, layers, group, reverse_axes):
    import h5py

    try:
        fh = h5py.File(path, "r")
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        with fh:
            node = _hdf5_layer_node(fh, path, group)
            names = _hdf5_members(node, h5py.Dataset)
            numeric = [k for k in names if _h5_numeric(node[k], path)]
            skipped = [k for k in names if k not in numeric]
            data = _read_hdf5_datasets(node, path, names, layers, reverse_axes)
    except FileFormatError:
        raise
    except Exception as exc:  # h5py/HDF5 errors of a damaged file: OSError, RuntimeError, ...
        raise FileFormatError(f"{path}: damaged HDF5 file ({type(exc).__name__}: {exc})") from None

    def read(name):
        return _check_numeric(data[name], name, path)

    return names, read, (numeric, skipped)


def _read_npz(path, layers, group):
    if group is not None:
        raise ValueError(f"{path}: group= is only meaningful for .mat and HDF5 files")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable .npz file ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise FileFormatError(f"{path}: expected an .npz archive (one array per layer), "
                              "got a single array")
    names = list(npz.files)
    data = {}
    try:
        for name in (names if layers is None else [n for n in layers if n in names]):
            try:
                data[name] = npz[name]
            except Exception as exc:  # a damaged member: ValueError, BadZipFile, zlib.error, ...
                raise FileFormatError(f"{path}: entry {name!r} could not be read "
                                      f"({type(exc).__name__}: {exc})") from None
    finally:
        npz.close()
    return names, (lambda n: _check_numeric(data[n], n, path)), (names, [])


# --------------------------------------------------------------------------------------------
# layout conversion
# --------------------------------------------------------------------------------------------
def _from_file_layout(arr, name, path, data_format, add_batch_axis) -> np.ndarray:
    nd = arr.ndim
    if nd == 0 and data_format is None:
        return arr  # a scalar (e.g. a stored std), returned as stored
    if nd == 0 or nd > 4:
        raise FileFormatError(
            f"{path}: layer {name!r} has shape {arr.shape}; expected [D], [N, D], [C, H, W] or "
            "[N, C, H, W] (channels_first), or the channels_last equivalents")
    if data_format == "channels_first":
        if nd == 3:
            arr = arr.transpose(1, 2, 0)
        elif nd == 4:
            arr = arr.transpose(0, 2, 3, 1)
    if add_batch_axis and nd in (1, 3):
        arr = arr[None]
    return np.ascontiguousarray(arr)


def _to_file_layout(arr, name, data_format) -> np.ndarray:
    nd = arr.ndim
    if data_format == "channels_first":
        if nd == 3:
            arr = arr.transpose(2, 0, 1)
        elif nd == 4:
            arr = arr.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(arr)


def _normalise_layers(layers):
    if layers is None:
        return None
    if isinstance(layers, str):
        return [layers]
    try:
        out = list(layers)
    except TypeError:
        raise ValueError(f"layers: expected None, a layer name or a list of layer names, "
                         f"got {type(layers).__name__}") from None
    for n in out:
        if not isinstance(n, str):
            raise ValueError(f"layers: expected layer names (str), got {n!r}")
    if not out:
        raise ValueError("layers: expected at least one layer name, got an empty list")
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------------
# public API: features
# --------------------------------------------------------------------------------------------
def load_features(path, layers=None, data_format="channels_first", add_batch_axis=True,
                  group=None) -> dict:
    """Load CNN features ``{layer: array}`` from a ``.mat`` (v5 or v7.3), ``.npz`` or
    ``.h5``/``.hdf5`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  The format is chosen from the extension; a ``.mat`` file that is an HDF5
        file (MATLAB ``-v7.3``) is detected and read with ``h5py`` (axes reversed, see the
        module docstring).
    layers : str or list of str, optional
        Keys (variables / datasets) to read; default all numeric ones.  An unknown key raises
        ``ValueError`` listing the available keys.  The result follows this order.
    data_format : {"channels_first", "channels_last", None}
        The layout **in the file**.  ``"channels_first"`` (Caffe, the lab's files):
        ``[C, H, W]`` -> ``[1, H, W, C]`` and ``[N, C, H, W]`` -> ``[N, H, W, C]``.
        ``"channels_last"``: the arrays are already ``[H, W, C]`` / ``[N, H, W, C]``.
        ``None``: no layout change (0-d scalars are accepted only then).  2-D arrays are
        ``[N, D]`` in every case.
    add_batch_axis : bool
        Prepend a batch axis of 1 to single samples: 1-D ``[D]`` -> ``[1, D]`` and 3-D arrays
        (one conv sample) -> ``[1, ...]``.  Applies with every ``data_format``.
    group : str, optional
        For HDF5 files (``.h5``, ``.hdf5``, v7.3 ``.mat``): the group holding the layer
        datasets.  Default: the root if it holds datasets, else its only group.  For a v5
        ``.mat`` file: the name of a 1x1 struct variable with one field per layer.

    Returns
    -------
    dict
        ``{name: np.ndarray}``, dtype as stored (e.g. float32).
    """
    path = check_existing_file(path, "feature file")
    layers = _check_load_args(data_format, add_batch_axis, group, layers)
    names, read, lists = _open_feature_file(path, layers, group)
    wanted = _layers_to_read(path, names, lists, layers)
    return {name: _from_file_layout(read(name), name, path, data_format, add_batch_axis)
            for name in wanted}


def _layers_to_read(path, names, lists, layers) -> list:
    """The layers :func:`load_features` returns: ``layers`` (all present), or by default every
    numeric entry (warning about the others)."""
    if layers is not None:
        missing = [n for n in layers if n not in names]
        if missing:
            raise FileFormatError(f"{path}: layer(s) {missing} not found; available keys: {names}")
        return layers
    numeric, skipped = lists if lists is not None else (names, [])
    if skipped:
        # stacklevel 3: the caller of load_features
        warnings.warn(f"{path}: skipping non-numeric entries {skipped}", stacklevel=3)
    if not numeric:
        raise FileFormatError(f"{path}: no numeric feature arrays found (entries: {names})")
    return numeric


def save_features(path, features, data_format="channels_first", squeeze_batch=False) -> None:
    """Write features ``{layer: array}`` to ``.mat`` (MATLAB v5), ``.npz`` or ``.h5``/``.hdf5``.

    ``features`` are in the package layout (channels-last, ``[N, H, W, C]`` / ``[N, D]``;
    single samples ``[H, W, C]`` / ``[D]`` are accepted too).  ``data_format`` is the layout
    to write: ``"channels_first"`` (default, the lab's Caffe layout: ``[N, C, H, W]``,
    ``[C, H, W]`` for a single sample), ``"channels_last"`` or ``None`` (both: as given).
    With ``squeeze_batch=True`` a batch axis of length 1 is dropped (``[1, C, H, W]`` ->
    ``[C, H, W]``, as in the lab's per-image files; a ``[D]`` vector is stored by MATLAB as
    ``[1, D]`` anyway).  ``load_features(path, data_format=<same>)`` gives the arrays back
    with a batch axis.  ``.mat`` keys must be valid MATLAB names; HDF5 keys may not contain
    ``/``.  The file is written atomically.
    """
    check_file_name(path)
    _check_data_format(data_format)
    ext = file_extension(path)
    if ext not in FEATURE_EXTENSIONS:
        raise ValueError(f"{os.fspath(path)}: unsupported feature file extension {ext!r}; "
                         f"expected one of {', '.join(FEATURE_EXTENSIONS)}")
    if not isinstance(features, Mapping) or not features:
        raise ValueError("features: expected a non-empty dict {layer name: array}")
    arrays = {name: _file_array(name, arr, ext, data_format, squeeze_batch)
              for name, arr in features.items()}
    write_arrays(path, arrays)


def _check_layer_key(name, ext) -> None:
    """A layer name must be a non-empty string that the file format can hold as a key (and
    that :func:`load_features` gives back)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"features: layer names must be non-empty strings, got {name!r}")
    if ext == ".mat" and not is_matlab_name(name):
        raise ValueError(f"features: layer name {name!r} is not a valid MATLAB variable name "
                         "(letter first, then letters, digits, '_', at most 63 characters)")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"features: layer name {name!r} cannot be written as UTF-8") from None
    if "\0" in name:  # zip and HDF5 names end at a NUL
        raise ValueError(f"features: layer name {name!r} contains a NUL character")
    if ext in (".h5", ".hdf5"):
        if "/" in name:
            raise ValueError(f"features: layer name {name!r} contains '/', not allowed as an "
                             "HDF5 key")
        if name == "." or name.startswith(("#", "__")):
            raise ValueError(f"features: layer name {name!r} cannot be an HDF5 key ('.' is the "
                             "group itself; names starting with '#' or '__' are MATLAB's "
                             "metadata, which load_features skips)")


def _file_array(name, arr, ext, data_format, squeeze_batch) -> np.ndarray:
    """One feature of :func:`save_features`, checked and turned into the layout to write."""
    _check_layer_key(name, ext)
    a = numeric_array(arr, f"features[{name!r}]", "an array")
    if not 1 <= a.ndim <= 4:
        raise ValueError(f"features[{name!r}]: expected [N, H, W, C], [N, D], [H, W, C] or [D], "
                         f"got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"features[{name!r}]: expected at least one value, got an empty array "
                         f"of shape {a.shape}")
    a = _to_file_layout(a, name, data_format)
    if squeeze_batch and a.ndim in (2, 4) and a.shape[0] == 1:
        a = a[0]
    return a


def write_arrays(path, arrays) -> None:
    """Write ``{name: array}`` atomically in the format given by the extension of ``path``
    (``.mat`` MATLAB v5, ``.npz``, ``.h5``/``.hdf5``), arrays as given: the names and arrays
    are not checked (:func:`save_features` checks them)."""
    ext = file_extension(path)
    with atomic_path(path) as tmp:
        # file objects, not names: savemat/savez append their extension to a name that lacks
        # it in lower case (as a temporary name, or ``B.NPZ``, may)
        if ext == ".mat":
            import scipy.io
            with open(tmp, "wb") as fh:
                scipy.io.savemat(fh, arrays, format="5", oned_as="row", do_compression=False)
        elif ext == ".npz":
            # what np.savez does, without its keyword arguments: np.savez(fh, **arrays) would
            # take a layer named 'allow_pickle' or 'file' for its own argument
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, a in arrays.items():
                    with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                        np.lib.format.write_array(fh, np.asanyarray(a), allow_pickle=False)
        elif ext in (".h5", ".hdf5"):
            import h5py
            with h5py.File(tmp, "w") as fh:
                for name, a in arrays.items():
                    fh.create_dataset(name, data=a)
        else:  # pragma: no cover - checked by callers
            raise ValueError(f"{path}: unsupported extension {ext!r}")
