"""Target features: layout detection, batch axis, validation, masks and layer weights.

Users hand over ``{layer: array}`` as Keras computes them (channels-last ``[H, W, C]``) or as
the lab's files store them (Caffe ``[C, H, W]``), with or without a batch axis.  Everything is
turned here into channels-last float32 arrays ``[N, ...]`` checked against the encoder.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from keras_icnn.models import sort_layers

__all__ = ["feature_shapes", "prepare_targets", "create_feature_masks", "layer_weights",
           "inverse_norm_weights"]

_FORMATS = ("auto", "channels_last", "channels_first")


def feature_shapes(model, layers) -> dict:
    """Per-sample output shape (channels-last, no batch axis) of each layer of ``model``."""
    shapes = {}
    for name in sort_layers(model, layers):
        shape = tuple(model.get_layer(name).output.shape[1:])
        if any(s is None for s in shape):
            raise ValueError(f"layer {name!r} has an undetermined output shape {shape}; build the "
                             "encoder with a fixed input size, e.g. input_shape=(224, 224, 3)")
        shapes[name] = shape
    return shapes


def _cf(shape):
    """channels-last per-sample shape -> Caffe's channels-first shape."""
    return shape if len(shape) < 2 else (shape[-1],) + tuple(shape[:-1])


def _layout(name, arr, shape, data_format):
    """Return (array channels-last with batch axis)."""
    cl, cf = tuple(shape), _cf(shape)
    given = tuple(arr.shape)
    candidates = []  # (fmt, batched)
    for fmt, s in (("channels_last", cl), ("channels_first", cf)):
        if data_format in ("auto", fmt):
            if given == s:
                candidates.append((fmt, False))
            if len(given) == len(s) + 1 and given[1:] == s:
                candidates.append((fmt, True))
    if len(cl) < 2:  # fc layers: there is one layout
        candidates = list(dict.fromkeys((("channels_last", b) for _, b in candidates)))
    if not candidates:
        raise ValueError(
            f"features[{name!r}]: shape {given} does not fit the layer's output; expected "
            f"{cl} (channels-last) or {cf} (Caffe channels-first), optionally with a leading "
            "batch axis" + ("" if data_format == "auto" else f" (data_format={data_format!r})"))
    if len(candidates) > 1:
        raise ValueError(
            f"features[{name!r}]: shape {given} is ambiguous for a layer of output shape {cl}; "
            "state the layout with data_format='channels_last' or 'channels_first'")
    fmt, batched = candidates[0]
    if not batched:
        arr = arr[None]
    if fmt == "channels_first" and arr.ndim > 2:
        arr = np.moveaxis(arr, 1, -1)
    return np.ascontiguousarray(arr, dtype=np.float32), fmt


def prepare_targets(features, model, data_format="auto"):
    """Validate ``features`` against ``model`` and return ``(targets, layouts)``.

    ``targets``: ``{layer: float32 [N, ...]}`` channels-last, in network order, all with the same
    ``N``.  ``layouts``: the layout each layer was read in.  ``data_format`` is ``"auto"``,
    ``"channels_last"``, ``"channels_first"`` or a dict of those per layer.
    """
    if not isinstance(features, Mapping) or not features:
        raise ValueError("features: expected a non-empty dict {layer name: array}, got "
                         f"{type(features).__name__}")
    format_of = _layer_formats(features, data_format)
    shapes = feature_shapes(model, list(features))
    targets, layouts = {}, {}
    for name in shapes:
        arr = _numeric_array(name, features[name])
        targets[name], layouts[name] = _layout(name, arr, shapes[name], format_of(name))
        bad = ~np.isfinite(targets[name])
        if bad.any():
            raise ValueError(f"features[{name!r}]: contains {int(bad.sum())} NaN or Inf value(s)")
    sizes = {k: v.shape[0] for k, v in targets.items()}
    if 0 in sizes.values():
        raise ValueError(f"features: a batch of 0 targets ({sizes}); expected at least one "
                         "target per layer")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"features: layers have different batch sizes {sizes}; every layer needs "
                         "one target per image")
    for name, t in targets.items():
        zero = ~t.reshape(len(t), -1).any(axis=1)
        if zero.all():
            warnings.warn(f"features[{name!r}]: the target is all zeros", stacklevel=3)
    return targets, layouts


def _layer_formats(features, data_format):
    """Check ``data_format`` (one format, or a dict of formats per layer) and return a function
    giving the format of a layer (``"auto"`` for layers a dict does not name)."""
    if isinstance(data_format, Mapping):
        formats = dict(data_format)
        unknown = set(formats) - set(features)
        if unknown:
            raise ValueError(f"data_format names layers without features: {sorted(unknown)}")
    else:
        formats = {}
    for f in [data_format] if not isinstance(data_format, Mapping) else formats.values():
        if f not in _FORMATS:
            raise ValueError(f"data_format: expected one of {_FORMATS}, got {f!r}")
    default = "auto" if isinstance(data_format, Mapping) else data_format
    return lambda name: formats.get(name, default)


def _numeric_array(name, arr) -> np.ndarray:
    """``features[name]`` as a real numeric array."""
    try:
        arr = np.asarray(arr)
    except Exception as e:
        raise ValueError(f"features[{name!r}]: cannot be read as an array ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"features[{name!r}]: expected a numeric array, got dtype {arr.dtype}")
    return arr


# --------------------------------------------------------------------------------------------
# Masks

def _centre_fit(mask2d, hw):
    """A 2-D mask fitted to ``hw``: the overlapping centre block is copied, the rest is 1."""
    if mask2d.shape == tuple(hw):
        return mask2d
    out = np.ones(hw, dtype=np.float32)
    n = [min(a, b) for a, b in zip(mask2d.shape, hw)]
    src = [(a - k) // 2 for a, k in zip(mask2d.shape, n)]
    dst = [(a - k) // 2 for a, k in zip(hw, n)]
    out[dst[0]:dst[0] + n[0], dst[1]:dst[1] + n[1]] = \
        mask2d[src[0]:src[0] + n[0], src[1]:src[1] + n[1]]
    return out


def create_feature_masks(targets, masks=None, channels=None, layouts=None) -> dict:
    """Per-layer float32 masks broadcastable to the (channels-last) targets.

    Semantics of the original ``create_feature_masks``, in channels-last layout:

    * a mask of the feature's own shape (``[H,W,C]``, or ``[C,H,W]`` when the targets of that
      layer were given channels-first; ``[D]`` for fc layers) is used as it is;
    * a 2-D spatial mask ``[h, w]`` is tiled over channels; when ``(h, w)`` differs from the
      layer's ``(H, W)`` the overlapping centre block is copied into a mask of ones (the original
      meant this but copied only a diagonal, through NumPy fancy indexing);
    * ``channels[layer]``: indices of channels (units, for fc layers) to use; others are 0.
      Combined with a 2-D mask, both apply (the original silently dropped such a layer).
    """
    masks = {} if masks is None else masks
    channels = {} if channels is None else channels
    layouts = layouts or {}
    for arg, d in (("mask", masks), ("channel", channels)):
        if not isinstance(d, Mapping):
            raise ValueError(f"{arg}: expected a dict {{layer: array}}, got {type(d).__name__}")
        unknown = set(d) - set(targets)
        if unknown:
            raise ValueError(f"{arg} given for layer(s) {sorted(unknown)} that have no target "
                             f"features; target layers: {list(targets)}")
    out = {}
    for name, t in targets.items():
        shape = t.shape[1:]
        m = np.ones(shape, dtype=np.float32)
        if name in masks and masks[name] is not None:
            m = _layer_mask(name, masks[name], shape, layouts.get(name))
        if name in channels and channels[name] is not None:
            m = m * _channel_selection(name, channels[name], shape[-1])
        if not np.any(m):
            raise ValueError(f"mask/channel for layer {name!r} selects no unit: the layer would "
                             "not contribute to the loss")
        out[name] = m.astype(np.float32)
    return out


def _layer_mask(name, mask, shape, layout) -> np.ndarray:
    """The user's ``mask`` for layer ``name`` as an array of the (channels-last) feature
    ``shape``; ``layout`` is the layout the layer's targets were given in."""
    try:
        mk = np.asarray(mask, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"mask[{name!r}]: expected a numeric array, got {mask!r:.60}") from None
    cf_shape = _cf(shape)
    if mk.shape == shape:
        m = mk
    elif len(shape) == 3 and mk.shape == cf_shape and layout == "channels_first":
        m = np.moveaxis(mk, 0, -1)
    elif len(shape) == 3 and mk.ndim == 2:
        m = np.broadcast_to(_centre_fit(mk, shape[:2])[..., None], shape).copy()
    else:
        raise ValueError(
            f"mask[{name!r}]: shape {mk.shape} fits no use for a layer of shape {shape}; "
            f"expected {shape}" + (f", {cf_shape} (channels-first targets)"
                                   f" or a 2-D spatial mask [h, w]" if len(shape) == 3
                                   else ""))
    if not np.all(np.isfinite(m)):
        raise ValueError(f"mask[{name!r}]: contains NaN or Inf")
    if np.any(m < 0):
        raise ValueError(f"mask[{name!r}]: contains negative values; a mask weights units by "
                         "values >= 0 (1 = use, 0 = leave out): a negative weight would make "
                         "the loss unbounded below")
    return m


def _channel_selection(name, indices, n) -> np.ndarray:
    """float32 ``[n]``: 1 at the channel (or unit) ``indices`` of layer ``name``, 0 elsewhere."""
    idx = np.asarray(indices).ravel()
    if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or \
            idx.min() < -n or idx.max() >= n:
        raise ValueError(f"channel[{name!r}]: expected integer indices in [0, {n}), got "
                         f"{np.asarray(indices).tolist()}")
    sel = np.zeros(n, dtype=np.float32)
    sel[idx] = 1.0
    return sel


# --------------------------------------------------------------------------------------------
# Layer weights

def inverse_norm_weights(targets, masks=None) -> dict:
    """The paper's layer weights: per target image, ``w_l = 1 / ||f_l||^2``, normalised to sum 1.

    Returns ``{layer: float32 [N]}``.  An all-zero target makes this undefined (the original
    divided by zero and returned a black image): it is refused with an error naming the layer
    and the image.
    """
    raw = {}
    for name, t in targets.items():
        t = np.asarray(t, dtype=np.float64)
        if masks is not None and name in masks:
            t = t * masks[name]
        sq = np.sum(t.reshape(len(t), -1) ** 2, axis=1)
        if np.any(sq == 0):
            i = int(np.flatnonzero(sq == 0)[0])
            raise ValueError(f"features[{name!r}] of image {i} is all zeros: its 1/||f||^2 layer "
                             "weight is undefined; drop the layer or give layer_weight explicitly")
        raw[name] = 1.0 / sq
    total = sum(raw.values())
    return {k: (v / total).astype(np.float32) for k, v in raw.items()}


def layer_weights(targets, weights=None, masks=None) -> dict:
    """Resolve ``weights`` to ``{layer: float32 [N]}``.

    ``None`` or ``"equal"``: equal weights summing to 1 (the original default);
    ``"inverse_norm"``: see
    :func:`inverse_norm_weights`; a dict ``{layer: number or [N] array}`` used as given (every
    target layer needs one).
    """
    n = len(next(iter(targets.values())))
    if weights is None or (isinstance(weights, str) and weights == "equal"):
        return {k: np.full(n, 1.0 / len(targets), np.float32) for k in targets}
    if isinstance(weights, str):
        if weights in ("inverse_norm", "inverse-norm", "1/norm2"):
            return inverse_norm_weights(targets, masks)
        raise ValueError(f"layer_weight: unknown scheme {weights!r}; expected None/'equal', "
                         "'inverse_norm' or a dict {layer: weight}")
    if not isinstance(weights, Mapping):
        raise ValueError(f"layer_weight: expected None, 'inverse_norm' or a dict, got "
                         f"{type(weights).__name__}")
    missing = [k for k in targets if k not in weights]
    extra = [k for k in weights if k not in targets]
    if missing or extra:
        raise ValueError(f"layer_weight: needs exactly the target layers {list(targets)}; "
                         f"missing {missing}, unknown {extra}")
    out = {}
    for k in targets:
        w = np.asarray(weights[k], dtype=np.float32)
        if w.ndim == 0:
            w = np.full(n, w, np.float32)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"layer_weight[{k!r}]: expected a finite non-negative number or "
                             f"{n} per-image values, got {weights[k]!r}")
        out[k] = w
    zero = np.flatnonzero(sum(out.values()) == 0)
    if zero.size:
        raise ValueError(f"layer_weight: every layer weight of image {int(zero[0])} is 0, so "
                         "nothing would be reconstructed; give at least one positive weight")
    return out
