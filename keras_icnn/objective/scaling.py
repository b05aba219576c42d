"""Scale correction of decoded features (Shen et al. 2019).

Features decoded from brain activity have the wrong overall scale.  Before reconstruction,
each layer's decoded feature is divided by its own standard deviation and multiplied by a
reference standard deviation: the average std of the *true* features of many natural images
(10,000 in the paper)::

    stds = estimate_feature_std(vgg19, images, layers)      # or load_feature_std(path)
    features = correct_feature_scale(decoded, stds)

"Std" follows the original ``estimate_cnn_feat_std``: for a conv feature, the std over the
spatial positions of each channel, averaged over channels; for an fc feature (or a conv
feature of spatial size 1x1), the std of all values; population std (``ddof=0``).

The lab's cookbook (``brain-decoding-cookbook``, ``recon_icnn_image_gd.py``) has two later
variants, :func:`scale_feature_std` and :func:`scale_feature_std_train_mean_center`
(dispatch: :func:`apply_cookbook_scaling`): they keep the feature's mean (rescaling around
it, or around the decoder's training mean), use ``ddof=1`` by default (the cookbook's
reference std file is ``..._chwise_dof1.mat``) and the mean of a channel-wise reference std.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from keras_icnn.validation import numeric_array

__all__ = [
    "feature_std",
    "correct_feature_scale",
    "estimate_feature_std",
    "std_from_extractor",
    "save_feature_std",
    "load_feature_std",
    "COOKBOOK_SCALINGS",
    "scale_feature_std",
    "scale_feature_std_train_mean_center",
    "apply_cookbook_scaling",
]


def _check_ddof(ddof):
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
        raise ValueError(f"ddof: expected a non-negative int, got {ddof!r}")
    return int(ddof)


def _as_feature(feat, name="feat") -> np.ndarray:
    a = numeric_array(feat, name, "an array")
    if not 1 <= a.ndim <= 4 or a.size == 0:
        raise ValueError(f"{name}: expected an fc feature [D] / [N, D] or a channels-last conv "
                         f"feature [H, W, C] / [N, H, W, C], got shape {a.shape}")
    return a


def _std_batched(a, ddof, name) -> np.ndarray:
    """``a``: ``[N, D]`` or ``[N, H, W, C]`` -> float64 ``[N]``."""
    a = a.astype(np.float64, copy=False)
    n = a.shape[0]
    if a.ndim == 4 and a.shape[1] * a.shape[2] > 1:
        count = a.shape[1] * a.shape[2]
    else:
        count = a[0].size
    if count - ddof <= 0:
        raise ValueError(f"{name}: ddof={ddof} is too large for {count} values per "
                         f"{'channel' if a.ndim == 4 and a.shape[1] * a.shape[2] > 1 else 'sample'}")
    if a.ndim == 4 and a.shape[1] * a.shape[2] > 1:
        # conv: std over H x W of each channel, then the mean over channels
        return a.std(axis=(1, 2), ddof=ddof).mean(axis=1)
    # fc (or conv with 1x1 spatial size): the plain std of all values
    return a.reshape(n, -1).std(axis=1, ddof=ddof)


def feature_std(feat, ddof=0):
    """The std of a CNN feature as in the original ``estimate_cnn_feat_std``.

    The rank says what ``feat`` is (channels-last):

    * ``[D]`` (fc) or ``[H, W, C]`` (conv): one sample -> a ``float``;
    * ``[N, D]`` or ``[N, H, W, C]``: a batch -> ``float64 [N]``, one value per sample.

    Conv: the std over the ``H x W`` positions of each channel, averaged over the channels; a
    conv feature of spatial size 1x1 counts as fc.  fc: the std of all values.  Computed in
    float64 (the original used float32: values agree to float32 rounding).
    """
    ddof = _check_ddof(ddof)
    a = _as_feature(feat)
    if a.ndim in (1, 3):
        return float(_std_batched(a[None], ddof, "feat")[0])
    return _std_batched(a, ddof, "feat")


def _reference_value(reference_std, layer) -> float:
    try:
        present = layer in reference_std
    except TypeError:
        present = False
    if not present:
        avail = sorted(reference_std) if isinstance(reference_std, Mapping) else "?"
        raise ValueError(f"reference_std: no reference std for layer {layer!r} "
                         f"(layers with one: {avail})")
    v = np.asarray(reference_std[layer])
    if v.size != 1 or v.dtype.kind not in "biuf":
        raise ValueError(f"reference_std[{layer!r}]: expected one number, got {v!r}")
    v = float(v.reshape(-1)[0])
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"reference_std[{layer!r}]: expected a positive finite number, got {v}")
    return v


def correct_feature_scale(features, reference_std, ddof=0) -> dict:
    """Rescale decoded features: per layer and per sample,
    ``feat / feature_std(feat) * reference_std[layer]``.

    ``features``: ``{layer: array}`` in the package layout (``[N, H, W, C]`` / ``[N, D]``;
    single samples ``[H, W, C]`` / ``[D]`` are accepted and keep their shape).
    ``reference_std``: ``{layer: float}`` (e.g. from :func:`estimate_feature_std` or
    :func:`load_feature_std`); extra entries are ignored.  Raises ``ValueError`` naming the
    layer (and sample) for a missing or non-positive reference std, or a sample whose std is
    0 or not finite (constant or NaN/Inf features cannot be rescaled).  Returns a new dict;
    floating inputs keep their dtype, integer inputs become float32.
    """
    ddof = _check_ddof(ddof)
    if not isinstance(features, Mapping) or not features:
        raise ValueError("features: expected a non-empty dict {layer name: array}")
    if not isinstance(reference_std, Mapping):
        raise ValueError(f"reference_std: expected a dict {{layer name: std}}, "
                         f"got {type(reference_std).__name__}")
    out = {}
    for layer, feat in features.items():
        ref = _reference_value(reference_std, layer)
        a = _as_feature(feat, name=f"features[{layer!r}]")
        single = a.ndim in (1, 3)
        b = a[None] if single else a
        std = _std_batched(b, ddof, f"features[{layer!r}]")
        bad = np.flatnonzero(~np.isfinite(std) | (std <= 0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"features[{layer!r}]: sample {i} has std {std[i]} (constant, NaN or Inf "
                "values); cannot correct its scale")
        dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.float32)
        scale = (ref / std).reshape((-1,) + (1,) * (b.ndim - 1))
        res = (b.astype(np.float64) * scale).astype(dtype)
        out[layer] = res[0] if single else res
    return out


# --------------------------------------------------------------------------------------------
# reference std from true features
# --------------------------------------------------------------------------------------------
def _iter_image_batches(images, batch_size):
    """Yield float32 ``[n, H, W, 3]`` RGB batches from an array or a sequence of paths/arrays."""
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, np.ndarray):
        yield from _array_batches(images, batch_size)
        return
    try:
        items = list(images)
    except TypeError:
        raise ValueError("images: expected an array [N, H, W, 3] or a list of image files / "
                         f"[H, W, 3] arrays, got {type(images).__name__}") from None
    if not items:
        raise ValueError("images: expected at least one image, got none")
    for s in range(0, len(items), batch_size):
        batch = [_one_image(item, k) for k, item in enumerate(items[s:s + batch_size], start=s)]
        if len({b.shape for b in batch}) > 1:
            # differently sized images: the caller resizes each to the model's input size
            yield batch, s
        else:
            yield np.stack(batch), s


def _array_batches(images, batch_size):
    """Batches of an array of images ``[N, H, W, 3]`` (or one ``[H, W, 3]``)."""
    arr = images
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"images: expected RGB images [N, H, W, 3] (or one [H, W, 3]), "
                         f"got shape {images.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"images: expected a real numeric array, got dtype {arr.dtype}")
    for s in range(0, arr.shape[0], batch_size):
        yield arr[s:s + batch_size].astype(np.float32), s


def _one_image(item, k) -> np.ndarray:
    """Image ``k`` of a list: loaded from a file, or an ``[H, W, 3]`` array; float32."""
    from keras_icnn.io import load_image

    if isinstance(item, (str, os.PathLike)):
        return load_image(item)
    img = np.asarray(item)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype.kind not in "biuf":
        raise ValueError(f"images[{k}]: expected an RGB image [H, W, 3], "
                         f"got shape {img.shape}, dtype {img.dtype}")
    return img.astype(np.float32)


def _model_input_hw(model):
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        shape = shape[0] if len(shape) == 1 else None
    if shape is None or len(shape) != 4:
        return None
    h, w = shape[1], shape[2]
    return (int(h), int(w)) if h is not None and w is not None else None


def std_from_extractor(extractor, images, layers, batch_size=8, mean=None) -> dict:
    """The core of :func:`estimate_feature_std` for a ready feature extractor (a Keras model
    taking Caffe-space ``[N, H, W, 3]`` and returning ``{layer: [N, ...]}`` channels-last, or
    a list of outputs in the order of ``layers``)."""
    from keras_icnn.imaging import rgb_to_caffe
    from keras_icnn.evaluation.metrics import resize_images

    hw = _model_input_hw(extractor)
    sums = {layer: 0.0 for layer in layers}
    count = 0
    for batch, start in _iter_image_batches(images, batch_size):
        if isinstance(batch, list) or (hw is not None and batch.shape[1:3] != hw):
            if hw is None:
                raise ValueError(f"images[{start}:]: images of different sizes, and the model has no "
                                 "fixed input size to resize them to")
            batch = np.stack([resize_images(b, hw) if b.shape[:2] != hw else b for b in batch])
        if not np.all(np.isfinite(batch)):
            raise ValueError(f"images[{start}:{start + len(batch)}]: contain NaN or Inf")
        x = rgb_to_caffe(batch, mean=mean)
        out = extractor.predict_on_batch(x)
        if not isinstance(out, Mapping):
            out = list(out) if isinstance(out, (list, tuple)) else [out]
            if len(out) != len(layers):
                raise ValueError(f"the feature extractor returned {len(out)} outputs for "
                                 f"{len(layers)} layers")
            out = dict(zip(layers, out))
        for layer in layers:
            if layer not in out:
                raise ValueError(f"the feature extractor returned no output for layer {layer!r} "
                                 f"(outputs: {sorted(out)})")
            f = np.asarray(out[layer])
            sums[layer] += float(_std_batched(f, 0, f"features of layer {layer!r}").sum())
        count += len(batch)
    return {layer: sums[layer] / count for layer in layers}


def estimate_feature_std(model, images, layers, batch_size=8, mean=None) -> dict:
    """Reference std per layer: :func:`feature_std` (ddof 0) of the true features of each
    image, averaged over the images.

    ``model``: the encoder (e.g. VGG19 from :mod:`keras_icnn.models`); the features are
    computed by ``keras_icnn.models.feature_extractor(model, layers)``.  ``images``: RGB 0-255
    images, an array ``[N, H, W, 3]`` (uint8 or float) or a list of image files / ``[H, W, 3]``
    arrays (loaded batch by batch, so 10,000 files need not fit in memory); they are resized
    (Pillow bicubic) to the model's input size when it is fixed and differs, then converted to
    the Caffe input space with ``keras_icnn.imaging.rgb_to_caffe(images, mean)`` (BGR minus
    ``mean``; default ``imaging.DEFAULT_MEAN``).  Returns ``{layer: float}``.
    """
    if isinstance(layers, str):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise ValueError(f"layers: expected a list of layer names, got {type(layers).__name__}") from None
    if not layers or not all(isinstance(n, str) for n in layers):
        raise ValueError(f"layers: expected a non-empty list of layer names (str), got {layers!r}")
    layers = list(dict.fromkeys(layers))
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    try:
        from keras_icnn.models import feature_extractor
    except ImportError as exc:  # pragma: no cover - depends on the rest of the package
        raise ImportError(f"estimate_feature_std needs keras_icnn.models.feature_extractor ({exc})") from exc
    extractor = feature_extractor(model, layers)
    return std_from_extractor(extractor, images, layers, batch_size=int(batch_size), mean=mean)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def save_feature_std(path, stds) -> None:
    """Write ``{layer: std}`` to ``.npz`` or ``.mat`` (one scalar per layer; a ``.mat`` file
    stores each as 1x1, like the lab's ``estimated_*_feat_std.mat``) atomically."""
    from keras_icnn.io.features import is_matlab_name, write_arrays
    from keras_icnn.io.paths import check_file_name, file_extension

    check_file_name(path)
    ext = file_extension(path)
    if ext not in (".npz", ".mat"):
        raise ValueError(f"{os.fspath(path)}: unsupported extension {ext!r}; expected .npz or .mat")
    if not isinstance(stds, Mapping) or not stds:
        raise ValueError("stds: expected a non-empty dict {layer name: std}")
    arrays = {}
    for layer in stds:
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"stds: layer names must be non-empty strings, got {layer!r}")
        if ext == ".mat" and not is_matlab_name(layer):
            raise ValueError(f"stds: layer name {layer!r} is not a valid MATLAB variable name")
        arrays[layer] = np.float64(_reference_value(stds, layer))
    write_arrays(path, arrays)


def load_feature_std(path) -> dict:
    """Read ``{layer: float}`` from a ``.npz``, ``.mat`` (v5 or v7.3) or ``.h5`` file holding
    one scalar (any array of one element) per layer, e.g. the lab's
    ``estimated_vgg19_cnn_feat_std.mat``."""
    from keras_icnn.io import load_features

    arrays = load_features(path, data_format=None, add_batch_axis=False)
    out = {}
    for layer, a in arrays.items():
        if a.dtype.kind == "b":
            raise ValueError(f"{os.fspath(path)}: entry {layer!r} is a logical (bool) array; "
                             "expected one std value (a number) per layer")
        if a.size != 1:
            raise ValueError(f"{os.fspath(path)}: entry {layer!r} has shape {a.shape}; expected "
                             "one std value per layer")
        v = float(a.reshape(-1)[0])
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{os.fspath(path)}: std of layer {layer!r} is {v}; expected a "
                             "positive finite number")
        out[layer] = v
    return out


# --------------------------------------------------------------------------------------------
# the cookbook's two scalings (brain-decoding-cookbook, recon_icnn_image_gd.py)
# --------------------------------------------------------------------------------------------
#: The cookbook's ``icnn.feature_scaling`` values (``None``: no scaling).
COOKBOOK_SCALINGS = ("feature_std", "feature_std_train_mean_center")


def _channel_axis(data_format) -> int:
    """The channel axis of one sample (batch axis removed)."""
    if data_format == "channels_first":
        return 0
    if data_format == "channels_last":
        return -1
    raise ValueError(f"data_format: expected 'channels_first' or 'channels_last', got {data_format!r}")


def _cookbook_std(sample, ddof, channel_axis, name) -> float:
    """bdpy ``normalize_feature`` with ``channel_wise_std=False``: the std of all values of a
    1-D sample, else the std over all axes but the channel axis, averaged over channels."""
    if sample.ndim == 1:
        axes, count = None, sample.size
    else:
        axes = tuple(a for a in range(sample.ndim) if a != channel_axis % sample.ndim)
        count = int(np.prod([sample.shape[a] for a in axes]))
    if count - ddof <= 0:
        raise ValueError(f"{name}: ddof={ddof} is too large for {count} values per channel")
    return float(np.mean(np.std(sample, axis=axes, ddof=ddof)))


def _rescale_sample(sample, scale, ddof, channel_axis, name) -> np.ndarray:
    """``(x - mean(x)) / std(x) * scale + mean(x)`` (float64): bdpy ``normalize_feature(x,
    channel_wise_mean=False, channel_wise_std=False, shift='self', scale=scale)``."""
    mean = float(np.mean(sample))
    std = _cookbook_std(sample, ddof, channel_axis, name)
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"{name}: std is {std} (constant, NaN or Inf values); cannot rescale")
    return (sample - mean) / std * scale + mean


def _reference_scale(reference_std, layer) -> float:
    """The cookbook's ``np.mean(feat_std0[layer])``: the mean of the layer's reference std
    (one value or one per channel), positive and finite."""
    if not isinstance(reference_std, Mapping) or layer not in reference_std:
        avail = sorted(reference_std) if isinstance(reference_std, Mapping) else "?"
        raise ValueError(f"reference_std: no reference std for layer {layer!r} "
                         f"(layers with one: {avail})")
    v = np.asarray(reference_std[layer])
    if v.size == 0 or v.dtype.kind not in "biuf":
        raise ValueError(f"reference_std[{layer!r}]: expected numbers, got {v!r}")
    scale = float(np.mean(v.astype(np.float64)))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"reference_std[{layer!r}]: mean {scale}; expected positive and finite")
    return scale


def _batched_feature(feat, name) -> np.ndarray:
    """A feature with a batch axis, ``[N, D]`` or ``[N, C, H, W]`` / ``[N, H, W, C]``."""
    a = np.asarray(feat)
    if a.dtype.kind not in "biuf" or a.ndim not in (2, 4) or a.size == 0:
        raise ValueError(f"{name}: expected a real array with a batch axis, [N, D] or "
                         f"[N, C, H, W] (channels_last: [N, H, W, C]), got shape {a.shape}, "
                         f"dtype {a.dtype}")
    return a


def _center_for(center, shape, name) -> np.ndarray:
    """The training mean as float64, checked to broadcast to the feature's ``shape``."""
    c = np.asarray(center, dtype=np.float64)
    try:
        fits = c.ndim <= len(shape) and np.broadcast_shapes(shape, c.shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name}: training mean of shape {c.shape} does not match the "
                         f"feature's shape {shape} (same layout, e.g. [1, C, H, W])")
    return c


def _scale_layer(feat, scale, ddof, data_format, name, center=None) -> np.ndarray:
    """One layer of the cookbook scalings: each sample rescaled, around ``center`` if given
    (subtracted first, added back after); float dtype kept, integers become float32."""
    a = _batched_feature(feat, name)
    x = a.astype(np.float64)
    if center is not None:
        c = _center_for(center, x.shape, name)
        x = x - c
    axis = _channel_axis(data_format)
    out = np.stack([_rescale_sample(s, scale, ddof, axis, f"{name} sample {i}")
                    for i, s in enumerate(x)])
    if center is not None:
        out = out + c
    return out.astype(a.dtype if a.dtype.kind == "f" else np.float32)


def _check_features(features) -> None:
    if not isinstance(features, Mapping) or not features:
        raise ValueError("features: expected a non-empty dict {layer name: array}")


def scale_feature_std(features, reference_std, *, ddof=1, data_format="channels_first") -> dict:
    """The cookbook's ``feature_scaling: feature_std``, per layer and per sample ``x``::

        x_new = (x - mean(x)) / std(x) * mean(reference_std[layer]) + mean(x)

    exactly bdpy ``normalize_feature(x, channel_wise_mean=False, channel_wise_std=False,
    channel_axis=0, shift='self', scale=np.mean(feat_std0[layer]), std_ddof=1)`` as
    ``recon_icnn_image_gd.py`` calls it: ``mean(x)`` is the mean of all values; ``std(x)``
    is, for a conv feature, the std over the spatial positions of each channel averaged over
    the channels, for an fc feature the std of all values, both with ``ddof``.

    ``features``: ``{layer: array}`` with a batch axis, ``[N, C, H, W]`` / ``[N, D]`` (the
    lab's Caffe layout, ``data_format="channels_first"``, as :class:`keras_icnn.io.FeatureTree`
    loads them) or ``[N, H, W, C]`` (``"channels_last"``); each sample is scaled on its own
    (the cookbook has one).  ``reference_std``: ``{layer: one value or per-channel array}``
    (e.g. :func:`keras_icnn.io.load_reference_std`); the mean of the array is used.
    ``ddof``: keyword, default 1 as the cookbook's ``std_ddof = 1``; it must be the ``ddof``
    of the reference std (the cookbook's ``..._chwise_dof1.mat``: 1; see
    :func:`keras_icnn.io.std_file_ddof`).  Computed in float64; float dtypes are kept.
    """
    ddof = _check_ddof(ddof)
    _check_features(features)
    return {layer: _scale_layer(feat, _reference_scale(reference_std, layer), ddof,
                                data_format, f"features[{layer!r}]")
            for layer, feat in features.items()}


def scale_feature_std_train_mean_center(features, reference_std, train_mean, *, ddof=1,
                                        data_format="channels_first") -> dict:
    """The cookbook's ``feature_scaling: feature_std_train_mean_center``: per layer::

        c = x - y_mean[layer]            # the decoder's training mean of the feature
        x_new = (c - mean(c)) / std(c) * mean(reference_std[layer]) + mean(c) + y_mean[layer]

    i.e. :func:`scale_feature_std` applied to ``x - y_mean`` and ``y_mean`` added back (the
    cookbook: ``ft - feat_mean0_train[layer]``, ``normalize_feature(...)``, ``+
    feat_mean0_train[layer]``).  ``train_mean``: ``{layer: array}`` in the features' layout
    and broadcastable to them (``y_mean.mat`` is ``[1, C, H, W]`` / ``[1, D]``; see
    :func:`keras_icnn.io.load_train_mean`).  ``ddof`` and the rest as in
    :func:`scale_feature_std`.
    """
    ddof = _check_ddof(ddof)
    _check_features(features)
    if not isinstance(train_mean, Mapping):
        raise ValueError(f"train_mean: expected a dict {{layer: y_mean}}, got {type(train_mean).__name__}")
    out = {}
    for layer, feat in features.items():
        if layer not in train_mean:
            raise ValueError(f"train_mean: no training mean for layer {layer!r} "
                             f"(layers with one: {sorted(train_mean)})")
        out[layer] = _scale_layer(feat, _reference_scale(reference_std, layer), ddof,
                                  data_format, f"features[{layer!r}]", center=train_mean[layer])
    return out


def apply_cookbook_scaling(features, method, reference_std=None, train_mean=None, *, ddof=1,
                           data_format="channels_first") -> dict:
    """Dispatch on the cookbook's ``icnn.feature_scaling``: ``None`` (a copy, unscaled),
    ``"feature_std"`` (:func:`scale_feature_std`) or ``"feature_std_train_mean_center"``
    (:func:`scale_feature_std_train_mean_center`, needs ``train_mean``)."""
    if method is None:
        _check_features(features)
        return {layer: np.array(feat, copy=True) for layer, feat in features.items()}
    if method not in COOKBOOK_SCALINGS:
        raise ValueError(f"method: unsupported feature scaling {method!r}; expected None or "
                         f"one of {COOKBOOK_SCALINGS}")
    if reference_std is None:
        raise ValueError(f"method={method!r} needs reference_std")
    if method == "feature_std":
        return scale_feature_std(features, reference_std, ddof=ddof, data_format=data_format)
    if train_mean is None:
        raise ValueError(f"method={method!r} needs train_mean (the decoders' y_mean)")
    return scale_feature_std_train_mean_center(features, reference_std, train_mean, ddof=ddof,
                                               data_format=data_format)
