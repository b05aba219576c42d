"""The files the cookbook's feature scalings read (``recon_icnn_image_gd.py``).

* The reference std file (``encoder.feature_std_file``), e.g.
  ``estimated_cnn_feat_std_VGG_ILSVRC_19_layers_ImgSize_224x224_chwise_dof1.mat``: one
  variable per layer holding the std of the true features of many images, channel-wise
  (``chwise``: one value per channel) or one value, computed with the ``ddof`` in the name
  (``dof1``: ``ddof=1``).  The cookbook reads it with ``scipy.io.loadmat`` and uses
  ``np.mean(feat_std0[layer])``.  :func:`load_reference_std` reads it (v5 or v7.3);
  :func:`std_file_ddof` reads the ``ddof`` from the name.
* The decoders' training mean of the features, written by the feature-decoding step::

      <decoders>/<layer>/<subject>/<roi>/model/y_mean.mat            (key y_mean)
      <decoders>/<layer>/<subject>/<roi>/<fold>/model/y_mean.mat     (cross-validation)

  ``y_mean`` is ``[1, C, H, W]`` / ``[1, D]`` (Caffe layout, ``np.mean(y, axis=0)[np.newaxis]``)
  saved with ``hdf5storage`` (MATLAB v7.3).  :func:`load_train_mean` reads it.
"""
from __future__ import annotations

import os
import re

import numpy as np

from keras_icnn.io.features import load_features
from keras_icnn.io.paths import check_existing_file

__all__ = ["load_reference_std", "std_file_ddof", "train_mean_path", "load_train_mean"]

_DOF = re.compile(r"(?:^|[_\-.])d?dof(\d+)(?=$|[_\-.])", re.IGNORECASE)


def load_reference_std(path) -> dict:
    """``{layer: float64 array}`` from a reference std file (``.mat`` v5/v7.3, ``.npz``,
    ``.h5``), each array as stored (channel-wise or one value).  The cookbook's scale for a
    layer is the mean of its array (:func:`keras_icnn.objective.scale_feature_std`).
    Non-numeric entries are skipped with a warning; ``ValueError`` naming the file for an
    entry that is empty, not finite or not positive."""
    arrays = load_features(path, data_format=None, add_batch_axis=False)
    out = {}
    for layer, a in arrays.items():
        a = np.asarray(a, dtype=np.float64)
        if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"{os.fspath(path)}: std of layer {layer!r} must be positive and "
                             f"finite (shape {a.shape}, min {a.min() if a.size else None})")
        out[layer] = a
    return out


def std_file_ddof(path):
    """The ``ddof`` a reference std file name states (``..._dof1.mat`` -> 1; also ``ddof1``),
    or ``None`` if the name says none.  Pass it as ``ddof=`` to the cookbook scalings: the
    decoded feature's std must use the same ``ddof`` as the reference std."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    found = _DOF.findall(stem)
    return int(found[-1]) if found else None


def train_mean_path(decoders_dir, layer, subject, roi, fold=None) -> str:
    """``<decoders_dir>/<layer>/<subject>/<roi>[/<fold>]/model/y_mean.mat``."""
    parts = [layer, subject, roi] + ([] if fold is None else [fold])
    for what, value in zip(("layer", "subject", "roi", "fold"), parts):
        if not isinstance(value, str) or not value or "/" in value or os.sep in value:
            raise ValueError(f"{what}: expected a directory name, got {value!r}")
    return os.path.join(os.fspath(decoders_dir), *parts, "model", "y_mean.mat")


def load_train_mean(decoders_dir, layers, subject, roi, fold=None) -> dict:
    """``{layer: float32 array}``: each layer's ``y_mean`` (:func:`train_mean_path`) as
    stored (``[1, C, H, W]`` / ``[1, D]``, Caffe layout).  ``FileNotFoundError`` naming the
    file if one is missing; ``ValueError`` if it has no ``y_mean``."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer name")
    out = {}
    for layer in layers:
        path = check_existing_file(train_mean_path(decoders_dir, layer, subject, roi, fold),
                                   f"decoder training mean of layer {layer!r}")
        a = load_features(path, layers=["y_mean"], data_format=None, add_batch_axis=False)
        out[layer] = a["y_mean"].astype(np.float32, copy=False)
    return out
