"""Caffe ``.caffemodel`` weights into Keras models, by layer name.

:func:`load_caffe_weights` copies the weights of a ``.caffemodel`` into any
Keras model whose layers are named like the Caffe layers (models built by
:func:`keras_icnn.caffe.build_model`, or hand-built ones such as
:func:`keras_icnn.models.vgg19`).

Layout conversion
-----------------
Every Keras layer that has weights (``Conv2D``, ``Conv2DTranspose``,
``Dense`` and their subclasses) is looked up by name among the Caffe layers
with blobs.  Convolution ``(out, in, kh, kw)`` -> ``(kh, kw, in, out)``;
Deconvolution ``(in, out, kh, kw)`` -> ``(kh, kw, out, in)``; InnerProduct
``(out, in)`` -> ``(in, out)``.  Legacy 4-D blob shapes such as ``(1, 1,
out, in)`` are accepted.

Flatten order
-------------
Caffe's InnerProduct flattens a 4-D blob in C,H,W order, a Keras ``Flatten``
of an NHWC tensor in H,W,C order.  Whenever a ``Dense`` layer's input comes
(possibly through Dropout/activation layers) from such a ``Flatten``, the
rows of its Caffe weight matrix are permuted from C,H,W to H,W,C order (see
:func:`flatten_source_shape`).  A ``Flatten`` preceded by ``Permute((3, 1,
2))`` (how the builder translates a Caffe ``Flatten`` layer) already has
Caffe's element order, and its Dense layers get unpermuted weights.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_icnn.caffe.reader import (
    CaffeFormatError,
    UnsupportedLayerError,
    caffemodel_weights,
    load_net,
    net_layers,
)

__all__ = [
    "WEIGHT_LAYER_TYPES",
    "caffe_weight_type",
    "flatten_source_shape",
    "load_caffe_weights",
]

#: Caffe layer types that carry weights, with their Keras counterparts.
WEIGHT_LAYER_TYPES = {
    "Convolution": "Conv2D",
    "Deconvolution": "Conv2DTranspose",
    "InnerProduct": "Dense",
}


def caffe_weight_type(layer) -> str | None:
    """The Caffe layer type whose weights the Keras ``layer`` takes.

    ``"Deconvolution"`` for ``Conv2DTranspose``, ``"Convolution"`` for
    ``Conv2D``, ``"InnerProduct"`` for ``Dense`` (subclasses included);
    None for any other layer.
    """
    if isinstance(layer, keras.layers.Conv2DTranspose):
        return "Deconvolution"
    if isinstance(layer, keras.layers.Conv2D):
        return "Convolution"
    if isinstance(layer, keras.layers.Dense):
        return "InnerProduct"
    return None


# ---------------------------------------------------------------------------
# Flatten order
# ---------------------------------------------------------------------------

_PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.Identity,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.Activation,
    keras.layers.ELU,
)


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, None
    return history[0], history[1]


def _first_input(operation, node_index):
    node = operation._inbound_nodes[node_index]
    tensors = node.input_tensors
    return tensors[0] if tensors else None


def flatten_source_shape(dense_layer) -> tuple[int, int, int] | None:
    """(H, W, C) when ``dense_layer`` reads an H,W,C-order flattening.

    Follows the Dense layer's input back through Dropout/Identity/activation
    layers; if it reaches a ``Flatten`` (or a rank-1 ``Reshape``) of a 4-D
    tensor with more than one spatial position whose flattening is in H,W,C
    order (i.e. not preceded by ``Permute((3, 1, 2))``), returns that
    tensor's (H, W, C).  Otherwise None: Caffe's weight rows can be used as
    they are.
    """
    if not dense_layer._inbound_nodes:
        return None
    tensor = dense_layer._inbound_nodes[0].input_tensors[0]
    op, node_index = _skip_pass_through(tensor)
    if op is None or not _is_flatten(op):
        return None
    return _flattened_hwc(op, node_index)


def _skip_pass_through(tensor):
    """The (operation, node index) producing ``tensor``, looking through
    shape-preserving layers; (None, None) when there is none."""
    for _ in range(1000):
        op, node_index = _producer(tensor)
        if op is None or not isinstance(op, _PASS_THROUGH):
            return op, node_index
        tensor = _first_input(op, node_index)
        if tensor is None:
            return None, None
    return None, None


def _is_flatten(op) -> bool:
    return isinstance(op, keras.layers.Flatten) or (
        isinstance(op, keras.layers.Reshape) and len(op.target_shape) == 1
    )


def _flattened_hwc(op, node_index):
    """(H, W, C) of the 4-D tensor ``op`` flattens in H,W,C order, or None."""
    src = _first_input(op, node_index)
    if src is None or len(src.shape) != 4:
        return None
    src_op, _ = _producer(src)
    if isinstance(src_op, keras.layers.Permute) and tuple(src_op.dims) == (3, 1, 2):
        return None  # already C,H,W order
    shape = tuple(src.shape)
    if isinstance(op, keras.layers.Flatten) and op.data_format == "channels_first":
        c, h, w = shape[1], shape[2], shape[3]
    else:
        h, w, c = shape[1], shape[2], shape[3]
    if None in (h, w, c) or h * w == 1:
        return None
    return (int(h), int(w), int(c))


# ---------------------------------------------------------------------------
# Blob layouts
# ---------------------------------------------------------------------------


def _strip_ones(shape):
    shape = tuple(shape)
    i = 0
    while i < len(shape) - 1 and shape[i] == 1:
        i += 1
    return shape[i:]


def _check_blob(array, expected, layer_name, blob_label, source):
    given = tuple(array.shape)
    if given == tuple(expected):
        return array
    if len(given) <= 4 and _strip_ones(given) == _strip_ones(expected):
        return array.reshape(expected)  # legacy 4-D (1, 1, out, in) etc.
    raise CaffeFormatError(
        f"{source}: layer '{layer_name}': {blob_label} blob has shape {given}, "
        f"but the model expects {tuple(expected)} (Caffe layout)"
    )


def _conv_kernel(layer, kind, w, source):
    """A (De)Convolution weight blob as the Keras kernel of ``layer``."""
    kernel_shape = tuple(int(d) for d in layer.kernel.shape)
    if kind == "Convolution":
        kh, kw, cin, cout = kernel_shape
        w = _check_blob(w, (cout, cin, kh, kw), layer.name, "weight", source)
    else:
        kh, kw, cout, cin = kernel_shape
        w = _check_blob(w, (cin, cout, kh, kw), layer.name, "weight", source)
    return w.transpose(2, 3, 1, 0)


def _dense_kernel(layer, info, w, source):
    """An InnerProduct weight blob as the Keras kernel of the Dense ``layer``.

    Returns (kernel, permuted): ``permuted`` tells whether the rows were
    reordered from C,H,W to H,W,C (see :func:`flatten_source_shape`).
    """
    n_in, n_out = (int(d) for d in layer.kernel.shape)
    if info.param_or_default("inner_product_param").transpose:
        w_oi = _check_blob(w, (n_in, n_out), layer.name, "weight", source).T
    else:
        w_oi = _check_blob(w, (n_out, n_in), layer.name, "weight", source)
    hwc = flatten_source_shape(layer)
    if hwc is None:
        return w_oi.T, False
    h, wd, c = hwc
    if h * wd * c != n_in:
        raise CaffeFormatError(
            f"layer '{layer.name}': flattened input {hwc} does not "
            f"match the Dense input size {n_in}"
        )
    kernel = w_oi.reshape(n_out, c, h, wd).transpose(2, 3, 1, 0).reshape(n_in, n_out)
    return kernel, True


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Plan:
    """What :func:`load_caffe_weights` will do, before any weight is set."""

    updates: list = dataclasses.field(default_factory=list)
    loaded: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    permuted: list = dataclasses.field(default_factory=list)

    def check_complete(self, weights, source) -> None:
        """Raise when a Keras layer with weights found none in the caffemodel."""
        if self.missing:
            raise CaffeFormatError(
                f"{source}: no weights for Keras layer(s) {self.missing}; the caffemodel "
                f"has weights for {sorted(weights)}"
            )

    def report(self, weights) -> dict:
        used = set(self.loaded)
        return {
            "loaded": self.loaded,
            "missing": self.missing,
            "unused": [name for name in weights if name not in used],
            "flatten_permuted": self.permuted,
        }


def _prototxt_layers(prototxt, weights, source) -> dict:
    """``{name: CaffeLayer}`` of ``prototxt`` (empty when None), after checking
    that the caffemodel has weights for each of its weight layers."""
    if prototxt is None:
        return {}
    proto_net, proto_source = load_net(prototxt, "prototxt")
    proto_layers = {layer.name: layer for layer in net_layers(proto_net)}
    absent = [
        f"'{layer.name}' ({layer.type})"
        for layer in proto_layers.values()
        if layer.type in WEIGHT_LAYER_TYPES and layer.name not in weights
    ]
    if absent:
        raise CaffeFormatError(
            f"{source}: no weights for layer(s) {', '.join(absent)} of "
            f"{proto_source}; is this the caffemodel for that prototxt?"
        )
    return proto_layers


def _check_entry(layer, kind, entry, source) -> bool:
    """Check that the Caffe layer ``entry`` fits the Keras ``layer``; returns
    whether the layer has a bias."""
    if kind is None:
        raise UnsupportedLayerError(
            f"Keras layer '{layer.name}' ({type(layer).__name__}) has "
            "weights, but loading Caffe weights into this layer class is "
            "not supported (Conv2D, Conv2DTranspose and Dense are)"
        )
    if entry.type != kind:
        raise CaffeFormatError(
            f"{source}: layer '{layer.name}' is a Caffe '{entry.type}' "
            f"layer but a Keras {type(layer).__name__} (expects a Caffe "
            f"'{kind}' layer)"
        )
    use_bias = bool(getattr(layer, "use_bias", False))
    n_expected = 2 if use_bias else 1
    if len(entry.arrays) != n_expected:
        raise CaffeFormatError(
            f"{source}: layer '{layer.name}' has {len(entry.arrays)} blob(s) "
            f"but the Keras layer expects {n_expected} "
            f"({'weights and bias' if use_bias else 'weights only, no bias'})"
        )
    return use_bias


def _layer_values(layer, entry, info, source):
    """(values for ``layer.set_weights``, whether Dense rows were permuted)."""
    kind = caffe_weight_type(layer)
    use_bias = _check_entry(layer, kind, entry, source)
    permuted = False
    if kind == "InnerProduct":
        kernel, permuted = _dense_kernel(layer, info, entry.arrays[0], source)
    else:
        kernel = _conv_kernel(layer, kind, entry.arrays[0], source)
    values = [np.ascontiguousarray(kernel, dtype=np.float32)]
    if use_bias:
        bias = _check_blob(
            entry.arrays[1], (int(layer.bias.shape[0]),), layer.name, "bias", source
        )
        values.append(np.asarray(bias, dtype=np.float32))
    return values, permuted


def _plan(model, weights, proto_layers, source) -> _Plan:
    """The weights of every Keras layer of ``model`` found in ``weights``."""
    plan = _Plan()
    for layer in model.layers:
        if not layer.weights:
            continue
        entry = weights.get(layer.name)
        if entry is None:
            plan.missing.append(layer.name)
            continue
        info = proto_layers.get(layer.name, entry.layer)
        values, permuted = _layer_values(layer, entry, info, source)
        if permuted:
            plan.permuted.append(layer.name)
        plan.updates.append((layer, values))
        plan.loaded.append(layer.name)
    return plan


def load_caffe_weights(model: keras.Model, caffemodel, prototxt=None, *,
                       strict: bool = True) -> dict:
    """Copy the weights of a ``.caffemodel`` into ``model``, by layer name.

    Layouts are converted, and Dense rows permuted where needed, as the
    module docstring (:mod:`keras_icnn.caffe.weights`) describes.

    Args:
        model: a Keras model (e.g. from :func:`build_model`, or a hand-built
            NHWC model with Caffe layer names).
        caffemodel: ``.caffemodel`` path or parsed NetParameter.
        prototxt: optional ``.prototxt`` path or NetParameter; when given,
            every Convolution/Deconvolution/InnerProduct layer it defines
            must have weights in the caffemodel.
        strict: if True (default), every Keras layer with weights must be
            found in the caffemodel; if False such layers keep their weights
            and are listed under ``"missing"``.

    Returns:
        ``{"loaded": [...], "missing": [...], "unused": [...],
        "flatten_permuted": [...]}`` -- Keras layers loaded / not found,
        Caffe layers with blobs that the model does not use, and Dense
        layers whose rows were permuted.

    Raises:
        CaffeFormatError: damaged file, missing weights, a layer type or
            bias mismatch, or blob shapes that disagree with the model (the
            message names the layer, the expected and the given shapes).
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    net, source = load_net(caffemodel, "caffemodel")
    weights = caffemodel_weights(net, source=source)
    plan = _plan(model, weights, _prototxt_layers(prototxt, weights, source), source)
    if strict:
        plan.check_complete(weights, source)
    for layer, values in plan.updates:
        layer.set_weights(values)
    return plan.report(weights)
