"""Writers of small synthetic lab data trees (bdpy / cookbook layouts) for the tests."""
import os

import h5py
import numpy as np
import scipy.io

FORMATS = ("v5", "v73")


def write_mat(path, arrays, fmt="v5"):
    """A MATLAB file: v5 (``scipy.io.savemat``) or v7.3 laid out as ``hdf5storage`` writes it:
    HDF5 with a 512-byte MAT header user block, every array stored transposed (MATLAB is
    column-major), with ``MATLAB_class`` attributes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt == "v5":
        scipy.io.savemat(path, arrays)
        return
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, a in arrays.items():
            a = np.asarray(a)
            ds = f.create_dataset(name, data=a.T)
            ds.attrs["MATLAB_class"] = np.bytes_("single" if a.dtype == np.float32 else "double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)


def layer_shapes(n_layers):
    """``{layer: feature shape with batch axis}``: conv layers ``[1, C, H, W]``, the last fc."""
    shapes = {f"conv{i + 1}": (1, 2 + i, 3, 4 - i % 2) for i in range(n_layers - 1)}
    shapes["fc6"] = (1, 5)
    return shapes


def make_true_tree(root, shapes, labels, fmt="v5", seed=0):
    """``<root>/<layer>/<label>.mat`` (key ``feat``); returns ``{(layer, label): array}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer, shape in shapes.items():
        for label in labels:
            a = rng.standard_normal(shape).astype(np.float32)
            write_mat(os.path.join(root, layer, f"{label}.mat"), {"feat": a}, fmt)
            out[(layer, label)] = a
    return out


def decoded_dir(root, layer, subject, roi, fold=None, decoded_level=True):
    parts = [root, layer, subject, roi] + ([fold] if fold else [])
    return os.path.join(*parts, *(["decoded_features"] if decoded_level else []))


def make_decoded_tree(root, shapes, subjects, rois, labels, folds=None, decoded_level=True,
                      fmt="v5", seed=0):
    """A decoded-feature tree; returns ``{(layer, subject, roi, fold, label): array}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer, shape in shapes.items():
        for subject in subjects:
            for roi in rois:
                for fold in (folds or [None]):
                    d = decoded_dir(root, layer, subject, roi, fold, decoded_level)
                    for label in labels:
                        a = rng.standard_normal(shape).astype(np.float32)
                        write_mat(os.path.join(d, f"{label}.mat"), {"feat": a}, fmt)
                        out[(layer, subject, roi, fold, label)] = a
    return out
