"""The lab's feature trees (bdpy's ``Features`` / ``DecodedFeatures`` directory layouts), read.

One MATLAB file per stimulus label and layer, holding the feature as the variable ``feat``
(bdpy's ``file_key``) in Caffe layout with a batch axis: ``[1, C, H, W]`` (conv) or ``[1, D]``
(fc).  The files are MATLAB v5 (``scipy.io.savemat``) or v7.3 (HDF5, as ``hdf5storage``
writes them: every array stored transposed, MATLAB being column-major); both are read by
:func:`keras_icnn.io.load_features`, which undoes the v7.3 transposition.

True features (:class:`FeatureTree`, bdpy ``Features``)::

    <root>/<layer>/<label>.mat

Decoded features (:class:`DecodedFeatureTree`, bdpy ``DecodedFeatures``), three layouts,
tried in this order (the first that has files is the tree's layout, as in
``DecodedFeatures.__parse_dir``)::

    "fold":             <root>/<layer>/<subject>/<roi>/<fold>/decoded_features/<label>.mat
    "decoded_features": <root>/<layer>/<subject>/<roi>/decoded_features/<label>.mat
    "flat" (older):     <root>/<layer>/<subject>/<roi>/<label>.mat

Names starting with ``.`` are ignored (as ``glob`` does; the package's atomic writers use
such temporary names).  Layers, subjects, ROIs, folds and labels are listed sorted.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from keras_icnn.io.features import load_features

__all__ = ["FeatureTree", "DecodedFeatureTree", "DECODED_LAYOUTS", "stored_shape"]

#: The decoded-feature layouts: name -> the directory levels below the root, in order.
DECODED_LAYOUTS = {
    "fold": ("layer", "subject", "roi", "fold", "decoded_features"),
    "decoded_features": ("layer", "subject", "roi", "decoded_features"),
    "flat": ("layer", "subject", "roi"),
}
_LEVELS = ("subject", "roi", "fold")


def stored_shape(path, key="feat") -> tuple:
    """The shape of variable ``key`` of a ``.mat`` file (v5 or v7.3) read from its header
    (the data are not read), as :func:`load_features` would give it with
    ``data_format=None``: v7.3 axes un-reversed, and a batch axis added to ``[D]`` /
    ``[C, H, W]``.  ``ValueError`` naming the file if it has no such variable."""
    import scipy.io

    try:
        try:
            shapes = {n: tuple(s) for n, s, _cls in scipy.io.whosmat(path)}
        except NotImplementedError:  # MATLAB v7.3: an HDF5 file
            import h5py
            with h5py.File(path, "r") as fh:
                shapes = {n: tuple(fh[n].shape[::-1]) for n in fh
                          if isinstance(fh[n], h5py.Dataset)}
    except Exception as exc:
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({exc})") from None
    if key not in shapes:
        raise ValueError(f"{path}: no variable {key!r} (variables: {sorted(shapes)})")
    shape = shapes[key]
    return (1,) + shape if len(shape) in (1, 3) else shape


def _visible(names):
    return sorted(n for n in names if not n.startswith("."))


def _check_root(path) -> str:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"path: expected a directory path, got {path!r}")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"{path}: feature tree not found (not a directory)")
    return path


def _as_names(value, what, available, path) -> list:
    """``value`` (None: all of ``available``; a name; a list of names) as a list, checked."""
    if value is None:
        return list(available)
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{what}: expected a name or a non-empty list of names, got {value!r}")
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"{path}: {what} {missing} not found; {what} in the tree: {list(available)}")
    return list(dict.fromkeys(names))


class _Tree:
    """The index shared by both trees: ``{(layer, subject, roi, fold, label): file}``."""

    kind = "feature tree"

    def __init__(self, path, key="feat"):
        self.path = _check_root(path)
        if not isinstance(key, str) or not key:
            raise ValueError(f"key: expected a variable name, got {key!r}")
        self.key = key
        self.files = self._index()
        if not self.files:
            raise ValueError(f"{self.path}: empty {self.kind}: no {self.pattern} files found")
        self._sorted = [sorted({k[i] for k in self.files if k[i] is not None})
                        for i in range(5)]

    def _values(self, i) -> list:
        return list(self._sorted[i])

    @property
    def layers(self) -> list:
        """The layers (directories with feature files), sorted."""
        return self._values(0)

    @property
    def subjects(self) -> list:
        """The subjects, sorted (empty for true features)."""
        return self._values(1)

    @property
    def rois(self) -> list:
        """The ROIs, sorted (empty for true features)."""
        return self._values(2)

    @property
    def folds(self) -> list:
        """The cross-validation folds, sorted (empty without a fold level)."""
        return self._values(3)

    @property
    def labels(self) -> list:
        """Every stimulus label found in any layer (and selection), sorted."""
        return self._values(4)

    def _select(self, subject, roi, fold) -> tuple:
        """``(subject, roi, fold)`` checked; ``None`` picks the only one there is."""
        chosen = []
        for level, value, available in zip(_LEVELS, (subject, roi, fold), self._sorted[1:4]):
            if value is None:
                if len(available) > 1:
                    raise ValueError(f"{self.path}: several {level}s {available}; "
                                     f"pass {level}=<one of them>")
                chosen.append(available[0] if available else None)
            elif not available:
                raise ValueError(f"{self.path}: this {self.kind} has no {level} level "
                                 f"({level}={value!r} given)")
            elif value not in available:
                raise ValueError(f"{self.path}: {level} {value!r} not found; "
                                 f"{level}s in the tree: {available}")
            else:
                chosen.append(value)
        return tuple(chosen)

    def labels_of(self, layers=None, subject=None, roi=None, fold=None) -> list:
        """The labels that have a file in every one of ``layers`` (default: all) for the
        selection (``subject``/``roi``/``fold``; ``None`` picks the only one), sorted."""
        layers = _as_names(layers, "layers", self.layers, self.path)
        sel = self._select(subject, roi, fold)
        sets = [{k[4] for k in self.files if k[0] == layer and k[1:4] == sel}
                for layer in layers]
        return sorted(set.intersection(*sets))

    def file(self, label, layer, subject=None, roi=None, fold=None) -> str:
        """The file of ``label`` in ``layer`` (and the selection); ``ValueError`` if none."""
        sel = self._select(subject, roi, fold)
        _as_names(layer, "layers", self.layers, self.path)
        path = self.files.get((layer, *sel, label))
        if path is None:
            where = ", ".join(f"{n}={v!r}" for n, v in zip(_LEVELS, sel) if v is not None)
            raise ValueError(f"{self.path}: label {label!r} missing in layer {layer!r}"
                             + (f" ({where})" if where else ""))
        return path

    def load(self, label, layers=None, subject=None, roi=None, fold=None) -> dict:
        """Read ``{layer: float32 array}`` for one label (``[1, C, H, W]`` / ``[1, D]``, the
        Caffe layout as stored) or a list of labels (stacked: ``[N, ...]`` in that order),
        for ``layers`` (default: all) of the selection (``None`` picks the only subject/ROI/
        fold; none for true features).  Ready as channels-first targets."""
        labels = [label] if isinstance(label, str) else list(label)
        if not labels or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"label: expected a label or a non-empty list of labels, got {label!r}")
        layers = _as_names(layers, "layers", self.layers, self.path)
        sel = self._select(subject, roi, fold)
        return {layer: self._load_layer(layer, labels, sel) for layer in layers}

    def _load_layer(self, layer, labels, sel) -> np.ndarray:
        arrays, first = [], None
        for label in labels:
            path = self.file(label, layer, *sel)
            arr = load_features(path, layers=[self.key], data_format=None)[self.key]
            if arr.ndim < 2 or arr.shape[0] != 1:
                raise ValueError(f"{path}: {self.key!r} has shape {arr.shape}; expected one "
                                 "sample [1, C, H, W] or [1, D]")
            if first is not None and arr.shape != first[1]:
                raise ValueError(f"{self.path}: mixed shapes in layer {layer!r}: {first[0]} has "
                                 f"{first[1]}, {path} has {arr.shape}")
            first = first or (path, arr.shape)
            arrays.append(arr.astype(np.float32, copy=False))
        return np.concatenate(arrays, axis=0)

    def check(self, layers=None) -> None:
        """Check the whole tree for ``layers`` (default: all) from the file headers (no data
        read): every label of each selection present in every layer, a ``key`` variable in
        every file, and one shape per layer.  ``ValueError`` naming the first problem."""
        layers = _as_names(layers, "layers", self.layers, self.path)
        for sel in sorted({k[1:4] for k in self.files}, key=str):
            labels = sorted({k[4] for k in self.files if k[1:4] == sel and k[0] in layers})
            for layer in layers:
                for label in labels:
                    self.file(label, layer, *sel)
        for layer in layers:
            shapes = {}
            for k, path in sorted(self.files.items(), key=lambda kv: kv[1]):
                if k[0] == layer:
                    shapes.setdefault(stored_shape(path, self.key), path)
            if len(shapes) > 1:
                found = "; ".join(f"{p}: {s}" for s, p in shapes.items())
                raise ValueError(f"{self.path}: mixed shapes in layer {layer!r}: {found}")

    def __repr__(self):
        return (f"{type(self).__name__}({self.path!r}: {len(self.layers)} layers, "
                f"{len(self.labels)} labels)")


class FeatureTree(_Tree):
    """True features, bdpy ``Features`` layout: ``<path>/<layer>/<label>.mat`` holding
    ``key`` (``feat``).  Layers are the sub-directories holding ``.mat`` files; labels the
    file names without ``.mat`` (bdpy ``Features.__get_labels``).  There are no subjects,
    ROIs or folds: those arguments must stay ``None``.  ``ValueError`` naming the path for a
    missing or empty tree."""

    kind = "true-feature tree"
    pattern = "<layer>/<label>.mat"

    def _index(self) -> dict:
        files = {}
        for layer in _visible(os.listdir(self.path)):
            for f in glob.glob(os.path.join(glob.escape(self.path), layer, "*.mat")):
                files[(layer, None, None, None, os.path.basename(f)[:-4])] = f
        return files


class DecodedFeatureTree(_Tree):
    """Decoded features, bdpy ``DecodedFeatures`` layouts (see the module docstring):
    ``<path>/<layer>/<subject>/<roi>[/<fold>][/decoded_features]/<label>.mat`` holding
    ``key`` (``feat``).  ``layout`` is ``"fold"``, ``"decoded_features"`` or ``"flat"``: the
    first of these that has files, as bdpy decides.  ``ValueError`` naming the path for a
    missing or empty tree."""

    kind = "decoded-feature tree"
    pattern = "<layer>/<subject>/<roi>[/<fold>][/decoded_features]/<label>.mat"

    def _index(self) -> dict:
        self.layout = None
        for layout, levels in DECODED_LAYOUTS.items():
            parts = ["*" if lv != "decoded_features" else lv for lv in levels]
            found = glob.glob(os.path.join(glob.escape(self.path), *parts, "*.mat"))
            if found:
                self.layout = layout
                return {self._key(f, levels): f for f in found}
        return {}

    def _key(self, path, levels) -> tuple:
        rel = os.path.relpath(path, self.path).split(os.sep)
        names = dict(zip(levels, rel))
        return (names["layer"], names["subject"], names["roi"], names.get("fold"),
                rel[-1][:-4])
