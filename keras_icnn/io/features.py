"""Reading and writing CNN features and images.

Features
--------
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

Images
------
:func:`load_image` gives ``float32 [H, W, 3]`` RGB in 0-255; :func:`save_image` writes uint8
PNG/JPEG (or any format Pillow knows by extension) atomically.

All writers in keras-icnn write to a temporary file in the destination directory and then
``os.replace`` it, so a reader never sees a half-written file.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping

import numpy as np

from keras_icnn.io.atomic import atomic_path

__all__ = [
    "load_features",
    "save_features",
    "load_image",
    "save_image",
    "FEATURE_EXTENSIONS",
    "DATA_FORMATS",
    "atomic_path",
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


def _check_path_exists(path, what="file") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path: expected a file name (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path}: expected a file ({what}), got a directory")
    return path


def _ext(path) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def _check_data_format(data_format):
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"data_format: expected 'channels_first', 'channels_last' or None, got {data_format!r}")


def _check_numeric(arr, name, path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{path}: entry {name!r} is not a real numeric array (dtype {arr.dtype}); "
            "expected one numeric array per layer")
    return arr


# --------------------------------------------------------------------------------------------
# readers: each returns (available names, function name -> np.ndarray)
# --------------------------------------------------------------------------------------------
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
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({exc})") from None
    names = [n for n, _shape, _cls in info if not n.startswith("__")]
    classes = {n: cls for n, _shape, cls in info}
    if group is not None:
        if group not in names:
            raise ValueError(f"{path}: group (struct variable) {group!r} not found; "
                             f"variables in the file: {names}")
        try:
            mat = scipy.io.loadmat(path, variable_names=[group])
        except Exception as exc:
            raise ValueError(f"{path}: could not read variable {group!r} ({exc})") from None
        struct = mat[group]
        if struct.dtype.names is None or struct.size != 1:
            raise ValueError(f"{path}: variable {group!r} is not a 1x1 MATLAB struct "
                             "(expected a struct with one field per layer)")
        record = struct.reshape(-1)[0]
        fields = {n: record[n] for n in struct.dtype.names}
        return list(fields), (lambda n: _check_numeric(fields[n], f"{group}.{n}", path)), None

    _cache = {}
    non_numeric = ("struct", "cell", "char", "object", "function_handle", "sparse")

    def read(name):
        if classes.get(name) in non_numeric:
            raise ValueError(f"{path}: variable {name!r} is a MATLAB {classes[name]}, "
                             "not a numeric array")
        if not _cache:
            wanted = layers if layers is not None else numeric
            try:
                _cache.update(scipy.io.loadmat(path, variable_names=wanted))
            except Exception as exc:
                raise ValueError(f"{path}: could not read the .mat file ({exc})") from None
        return _check_numeric(_cache[name], name, path)

    numeric = [n for n in names if classes.get(n) not in non_numeric]
    skipped = [n for n in names if n not in numeric]
    return names, read, (numeric, skipped)


def _h5_numeric(obj) -> bool:
    cls = obj.attrs.get("MATLAB_class", None)
    if isinstance(cls, bytes):
        cls = cls.decode("ascii", "replace")
    if cls is not None and str(cls) not in _MATLAB_NUMERIC_CLASSES:
        return False
    if "MATLAB_empty" in obj.attrs and int(np.asarray(obj.attrs["MATLAB_empty"]).ravel()[0]):
        return False
    return obj.dtype.kind in "biuf"


def _read_hdf5(path, layers, group, reverse_axes):
    import h5py

    try:
        fh = h5py.File(path, "r")
    except Exception as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        def is_meta(name):
            return name.startswith("#") or name.startswith("__")

        if group is not None:
            node = fh.get(group)
            if not isinstance(node, h5py.Group):
                groups = [k for k, v in fh.items() if isinstance(v, h5py.Group) and not is_meta(k)]
                raise ValueError(f"{path}: group {group!r} not found; groups at the root: {groups}")
        else:
            node = fh
            root_ds = [k for k, v in fh.items() if isinstance(v, h5py.Dataset) and not is_meta(k)]
            if not root_ds:
                groups = [k for k, v in fh.items() if isinstance(v, h5py.Group) and not is_meta(k)]
                if len(groups) == 1:
                    node = fh[groups[0]]
                elif len(groups) > 1:
                    raise ValueError(f"{path}: no datasets at the root and several groups {groups}; "
                                     "pass group=<name> to say which one holds the layers")
        names = [k for k, v in node.items() if isinstance(v, h5py.Dataset) and not is_meta(k)]
        numeric = [k for k in names if _h5_numeric(node[k])]
        skipped = [k for k in names if k not in numeric]
        data = {}
        wanted = names if layers is None else [n for n in layers if n in names]
        for name in wanted:
            ds = node[name]
            if not _h5_numeric(ds):
                if layers is None:
                    continue
                raise ValueError(f"{path}: dataset {name!r} is not a numeric array "
                                 f"(dtype {ds.dtype}, MATLAB_class {ds.attrs.get('MATLAB_class')!r})")
            arr = np.asarray(ds[()])
            if reverse_axes and arr.ndim > 1:
                arr = arr.transpose(tuple(range(arr.ndim))[::-1])
            data[name] = np.ascontiguousarray(arr)
    finally:
        fh.close()

    def read(name):
        return _check_numeric(data[name], name, path)

    return names, read, (numeric, skipped)


def _read_npz(path, layers, group):
    if group is not None:
        raise ValueError(f"{path}: group= is only meaningful for .mat and HDF5 files")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive (one array per layer), got a single array")
    names = list(npz.files)
    data = {}
    try:
        for name in (names if layers is None else [n for n in layers if n in names]):
            try:
                data[name] = npz[name]
            except ValueError as exc:
                raise ValueError(f"{path}: entry {name!r} could not be read ({exc})") from None
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
        raise ValueError(
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
    path = _check_path_exists(path, "feature file")
    _check_data_format(data_format)
    if not isinstance(add_batch_axis, (bool, np.bool_)):
        raise ValueError(f"add_batch_axis: expected True or False, got {add_batch_axis!r}")
    if group is not None and not isinstance(group, str):
        raise ValueError(f"group: expected a group name (str) or None, got {group!r}")
    layers = _normalise_layers(layers)
    ext = _ext(path)
    if ext == ".mat":
        if _is_hdf5(path):
            names, read, lists = _read_hdf5(path, layers, group, reverse_axes=True)
        else:
            names, read, lists = _read_mat_v5(path, layers, group)
    elif ext in (".h5", ".hdf5"):
        names, read, lists = _read_hdf5(path, layers, group, reverse_axes=False)
    elif ext == ".npz":
        names, read, lists = _read_npz(path, layers, group)
    else:
        raise ValueError(f"{path}: unsupported feature file extension {ext!r}; "
                         f"expected one of {', '.join(FEATURE_EXTENSIONS)}")

    if layers is None:
        numeric, skipped = lists if lists is not None else (names, [])
        if skipped:
            warnings.warn(f"{path}: skipping non-numeric entries {skipped}", stacklevel=2)
        if not numeric:
            raise ValueError(f"{path}: no numeric feature arrays found (entries: {names})")
        wanted = numeric
    else:
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(f"{path}: layer(s) {missing} not found; available keys: {names}")
        wanted = layers
    out = {}
    for name in wanted:
        arr = read(name)
        out[name] = _from_file_layout(arr, name, path, data_format, add_batch_axis)
    return out


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
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path: expected a file name (str or os.PathLike), got {type(path).__name__}")
    _check_data_format(data_format)
    ext = _ext(path)
    if ext not in FEATURE_EXTENSIONS:
        raise ValueError(f"{os.fspath(path)}: unsupported feature file extension {ext!r}; "
                         f"expected one of {', '.join(FEATURE_EXTENSIONS)}")
    if not isinstance(features, Mapping) or not features:
        raise ValueError("features: expected a non-empty dict {layer name: array}")
    arrays = {}
    for name, arr in features.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"features: layer names must be non-empty strings, got {name!r}")
        if ext == ".mat" and not _MATLAB_NAME.match(name):
            raise ValueError(f"features: layer name {name!r} is not a valid MATLAB variable name "
                             "(letter first, then letters, digits, '_', at most 63 characters)")
        if ext in (".h5", ".hdf5") and "/" in name:
            raise ValueError(f"features: layer name {name!r} contains '/', not allowed as an HDF5 key")
        try:
            a = np.asarray(arr)
        except Exception:
            raise ValueError(f"features[{name!r}]: expected an array, got {type(arr).__name__}") from None
        if a.dtype.kind not in "biuf":
            raise ValueError(f"features[{name!r}]: expected a real numeric array, got dtype {a.dtype}")
        if not 1 <= a.ndim <= 4:
            raise ValueError(f"features[{name!r}]: expected [N, H, W, C], [N, D], [H, W, C] or [D], "
                             f"got shape {a.shape}")
        a = _to_file_layout(a, name, data_format)
        if squeeze_batch and a.ndim in (2, 4) and a.shape[0] == 1:
            a = a[0]
        arrays[name] = a
    _write_arrays(path, arrays)


def _write_arrays(path, arrays) -> None:
    """Write ``{name: array}`` atomically in the format given by the extension."""
    ext = _ext(path)
    with atomic_path(path) as tmp:
        # file objects, not names: savemat/savez append their extension to a name that lacks
        # it in lower case (as a temporary name, or ``B.NPZ``, may)
        if ext == ".mat":
            import scipy.io
            with open(tmp, "wb") as fh:
                scipy.io.savemat(fh, arrays, format="5", oned_as="row", do_compression=False)
        elif ext == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        elif ext in (".h5", ".hdf5"):
            import h5py
            with h5py.File(tmp, "w") as fh:
                for name, a in arrays.items():
                    fh.create_dataset(name, data=a)
        else:  # pragma: no cover - checked by callers
            raise ValueError(f"{path}: unsupported extension {ext!r}")


# --------------------------------------------------------------------------------------------
# public API: images
# --------------------------------------------------------------------------------------------
def _resample(name):
    from PIL import Image

    filters = getattr(Image, "Resampling", Image)
    table = {"nearest": filters.NEAREST, "bilinear": filters.BILINEAR,
             "bicubic": filters.BICUBIC, "lanczos": filters.LANCZOS}
    if name not in table:
        raise ValueError(f"method: expected one of {sorted(table)}, got {name!r}")
    return table[name]


def _as_size(size, name="size"):
    """int -> (size, size); (H, W) pair -> (H, W); validated positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    else:
        try:
            hw = tuple(int(s) for s in size)
            ok = len(hw) == 2 and all(float(s) == int(s) for s in size)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name}: expected an int or an (height, width) pair, got {size!r}")
    if min(hw) < 1:
        raise ValueError(f"{name}: expected positive sizes, got {size!r}")
    return hw


def _resize_float(img, hw, method="bicubic") -> np.ndarray:
    """Resize one ``[H, W, C]`` float image to ``hw = (H', W')`` channel by channel with Pillow
    (mode "F": no rounding, no clipping; bicubic may overshoot slightly)."""
    from PIL import Image

    resample = _resample(method)
    h, w = hw
    if img.shape[:2] == (h, w):
        return img.astype(np.float32, copy=True)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32))
                        .resize((w, h), resample), dtype=np.float32)
             for c in range(img.shape[-1])]
    return np.stack(chans, axis=-1)


def load_image(path, size=None) -> np.ndarray:
    """Load an image as ``float32 [H, W, 3]`` RGB in 0-255.

    Grayscale, palette, CMYK, RGBA, ... images are converted with Pillow's ``convert("RGB")``
    (alpha is dropped, as in the lab's scripts); 16-bit grayscale is scaled to 0-255.  EXIF
    orientation is not applied (the pixels are used as stored).  ``size`` (an int, or an
    ``(height, width)`` pair) resizes the whole image to that size with Pillow's bicubic filter
    (no crop; the aspect ratio is not kept): ``size=224`` gives ``[224, 224, 3]``.
    """
    from PIL import Image, UnidentifiedImageError

    path = _check_path_exists(path, "image file")
    hw = None if size is None else _as_size(size)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                arr = np.asarray(im, dtype=np.float32)
                if im.mode.startswith("I;16"):
                    arr = arr * (255.0 / 65535.0)
                arr = np.repeat(arr[..., None], 3, axis=-1)
                return arr if hw is None else _resize_float(arr, hw)
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            rgb = im.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None
    except OSError as exc:
        raise ValueError(f"{path}: could not read the image ({exc})") from None
    if hw is not None and (rgb.height, rgb.width) != hw:
        rgb = rgb.resize((hw[1], hw[0]), _resample("bicubic"))
    return np.asarray(rgb, dtype=np.float32)


def _image_uint8(img, normalize, pct, name="img") -> np.ndarray:
    """Validate one image and turn it into uint8 ``[H, W, 3]`` or ``[H, W]``."""
    from keras_icnn import imaging

    try:
        x = np.asarray(img)
    except Exception:
        raise ValueError(f"{name}: expected an image array, got {type(img).__name__}") from None
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {x.dtype}")
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)) or x.size == 0:
        raise ValueError(f"{name}: expected an RGB image [H, W, 3] (or grayscale [H, W]), "
                         f"got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or Inf")
    if normalize is True:
        normalize = "minmax"
    if normalize is False or normalize is None:
        return imaging.to_uint8(x)
    if normalize == "minmax":
        return imaging.normalise_img(x)
    if normalize == "clip_extreme":
        if not isinstance(pct, (int, float, np.integer, np.floating)) or not 0 <= pct <= 100:
            raise ValueError(f"pct: expected a percentage in [0, 100], got {pct!r}")
        return imaging.normalise_img(imaging.clip_extreme(x, pct=float(pct)))
    raise ValueError(f"normalize: expected False, 'minmax' or 'clip_extreme', got {normalize!r}")


def save_image(path, img, normalize=False, pct=4) -> None:
    """Save one RGB image (``[H, W, 3]``, ``[1, H, W, 3]`` or grayscale ``[H, W]``) as uint8.

    ``normalize``:

    * ``False`` (default): clip to 0-255 and round (the image is taken as RGB 0-255);
    * ``"minmax"`` (or ``True``): the original iCNN ``normalise_img``: min -> 0, max -> 255
      (truncated to uint8, as the original did);
    * ``"clip_extreme"``: first clip ``pct / 2`` % of the values at each tail (percentiles over
      the whole image, all channels together), then min-max: the paper's figures (``pct=4``).

    The format follows the extension (``.png``, ``.jpg``/``.jpeg``, or any other Pillow knows).
    The file is written atomically.
    """
    from PIL import Image

    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path: expected a file name (str or os.PathLike), got {type(path).__name__}")
    ext = _ext(path)
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{os.fspath(path)}: unsupported image extension {ext!r}; "
                         "use .png or .jpg (or another extension Pillow can write)")
    u8 = _image_uint8(img, normalize, pct)
    pil = Image.fromarray(u8)
    params = {"quality": 95} if fmt == "JPEG" else {}
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt, **params)
