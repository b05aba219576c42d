"""Keras models from Caffe prototxts, and Caffe weights into Keras models.

:func:`build_model` translates a Caffe network description into a Keras 3
functional model; :func:`load_caffe_weights` copies the weights of a
``.caffemodel`` into any Keras model whose layers are named like the Caffe
layers (models built here, or hand-built ones such as
:func:`keras_icnn.models.vgg19`).

Conventions
-----------
* **Layout.** 4-D Caffe blobs (N, C, H, W) are channels-last (N, H, W, C)
  tensors in Keras; blobs of other ranks keep Caffe's axis order.
* **Names.** Each Caffe layer becomes one Keras layer with the same name, and
  that layer's output is the Caffe layer's top blob (so ``conv1_1`` of VGG19
  is the pre-ReLU convolution).  In-place layers (top == bottom, e.g. an
  in-place ReLU) still get their own Keras layer, named after the Caffe
  layer; from then on the blob name refers to the post-activation tensor, as
  in Caffe.  Net inputs become ``keras.Input`` layers named after the input
  blob.  A few Caffe layers need a helper Keras layer, whose name is the
  Caffe name plus a suffix: ``<ip>_flatten`` (see below), ``<reshape>_chw``
  and ``<flatten>_chw`` (C,H,W element order).
* **Exactness.** Plain Keras layers are used whenever they compute exactly
  Caffe's result: ``Conv2D(padding="same")`` when Caffe's explicit padding is
  equivalent to TensorFlow's "same", ``Conv2DTranspose(padding="same")`` when
  ``kernel - stride == 2 * pad``, ``MaxPooling2D`` / ``AveragePooling2D`` when
  Caffe's ceil rounding and padding make no difference.  Otherwise the layers
  of :mod:`keras_icnn.caffe.layers` reproduce Caffe's arithmetic.
* **Flatten order (InnerProduct after a conv stack).** Caffe's InnerProduct
  flattens a 4-D blob in C,H,W order.  The builder inserts a plain NHWC
  ``Flatten`` named ``<ip>_flatten`` and :func:`load_caffe_weights` permutes
  the rows of the weight matrix from C,H,W to H,W,C order.  The same rule
  serves hand-built models: whenever a ``Dense`` layer's input comes (possibly
  through Dropout/activation layers) from a ``Flatten`` of a 4-D NHWC tensor,
  its Caffe weights are permuted.  A Caffe ``Flatten`` *layer* is built as
  ``Permute((3, 1, 2))`` + ``Flatten`` so that its blob has Caffe's element
  order; Dense layers after it get unpermuted weights.
"""

from __future__ import annotations

import math
import os
from typing import Iterable, Mapping

import keras
import numpy as np

from keras_icnn.caffe import proto
from keras_icnn.caffe.layers import (
    CaffeConv2D,
    CaffeConv2DTranspose,
    CaffeLRN,
    CaffePooling2D,
    CaffeReshape,
    caffe_pool_output_size,
)
from keras_icnn.caffe.reader import (
    CaffeFormatError,
    CaffeLayer,
    UnsupportedLayerError,
    caffemodel_weights,
    net_inputs,
    net_layers,
    read_caffemodel,
    read_prototxt,
)

__all__ = [
    "SUPPORTED_LAYER_TYPES",
    "WEIGHT_LAYER_TYPES",
    "build_model",
    "conv_geometry",
    "load_caffe_weights",
]

#: Caffe layer types :func:`build_model` translates.
SUPPORTED_LAYER_TYPES = (
    "Input", "Convolution", "Deconvolution", "InnerProduct", "ReLU",
    "Sigmoid", "TanH", "Pooling", "Dropout", "Softmax", "Reshape", "Flatten",
    "LRN", "Concat", "Eltwise", "Split", "Silence",
)

#: Caffe layer types that carry weights, with their Keras counterparts.
WEIGHT_LAYER_TYPES = {
    "Convolution": "Conv2D",
    "Deconvolution": "Conv2DTranspose",
    "InnerProduct": "Dense",
}


def _is_net(obj) -> bool:
    return isinstance(obj, proto.NetParameter)


def _load_net(obj, what: str):
    if _is_net(obj):
        return obj, f"<{what}>"
    if isinstance(obj, (str, os.PathLike)):
        if what == "prototxt":
            return read_prototxt(obj), os.fspath(obj)
        return read_caffemodel(obj), os.fspath(obj)
    raise ValueError(
        f"{what} must be a file path or a parsed NetParameter, got "
        f"{type(obj).__name__}"
    )


# ---------------------------------------------------------------------------
# Geometry helpers (shared with the generators)
# ---------------------------------------------------------------------------


def _hw(values, h_field, w_field, param, default, what, layer_name):
    """Resolve Caffe's "one value, two values or *_h/*_w" convention."""
    if h_field is not None and (param.HasField(h_field) or param.HasField(w_field)):
        return (int(getattr(param, h_field)), int(getattr(param, w_field)))
    values = [int(v) for v in values]
    if not values:
        if default is None:
            raise CaffeFormatError(f"layer '{layer_name}': {what} is not set")
        return (default, default)
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) == 2:
        return (values[0], values[1])
    raise UnsupportedLayerError(
        f"layer '{layer_name}': {what} has {len(values)} values; only 2-D "
        "convolutions are supported"
    )


def conv_geometry(layer: CaffeLayer) -> dict:
    """Kernel, stride, pad, dilation, outputs of a (De)Convolution layer.

    Returns a dict with keys ``kernel``, ``stride``, ``pad``, ``dilation``
    (each an (h, w) pair), ``num_output``, ``bias_term`` and ``group``.
    """
    p = layer.param_or_default("convolution_param")
    geometry = {
        "kernel": _hw(p.kernel_size, "kernel_h", "kernel_w", p, None,
                      "kernel_size", layer.name),
        "stride": _hw(p.stride, "stride_h", "stride_w", p, 1, "stride",
                      layer.name),
        "pad": _hw(p.pad, "pad_h", "pad_w", p, 0, "pad", layer.name),
        "dilation": _hw(p.dilation, None, None, p, 1, "dilation", layer.name),
        "num_output": int(p.num_output),
        "bias_term": bool(p.bias_term),
        "group": int(p.group),
    }
    if geometry["num_output"] < 1:
        raise CaffeFormatError(
            f"layer '{layer.name}' ({layer.type}): num_output must be >= 1"
        )
    if min(geometry["kernel"]) < 1 or min(geometry["stride"]) < 1 or min(
        geometry["dilation"]
    ) < 1:
        raise CaffeFormatError(
            f"layer '{layer.name}' ({layer.type}): kernel, stride and "
            f"dilation must be >= 1, got {geometry}"
        )
    return geometry


def _effective_kernel(kernel, dilation):
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _conv_same_equivalent(size, k_eff, stride, pad) -> bool:
    """Does TF's "same" padding reproduce Caffe's symmetric ``pad``?"""
    caffe_out = (size + 2 * pad - k_eff) // stride + 1
    tf_out = -(-size // stride)
    total = max((tf_out - 1) * stride + k_eff - size, 0)
    return caffe_out == tf_out and total // 2 == pad


def _f32(value) -> float:
    """A float32 protobuf value as its shortest decimal (0.3f -> 0.3)."""
    return float(str(np.float32(value)))


def _axis_to_keras(axis: int, rank: int, layer_name: str) -> int:
    """Map a Caffe axis (N,C,H,W order) to the Keras tensor's axis."""
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise CaffeFormatError(
            f"layer '{layer_name}': axis {axis} out of range for a {rank}-D blob"
        )
    if rank == 4:
        return {0: 0, 1: 3, 2: 1, 3: 2}[axis]
    return axis


def _caffe_shape(tensor) -> tuple:
    """The Caffe shape (batch included, as None) of a Keras tensor."""
    shape = tuple(tensor.shape)
    if len(shape) == 4:
        return (shape[0], shape[3], shape[1], shape[2])
    return shape


def _keras_shape(caffe_shape_wo_batch: tuple) -> tuple:
    if len(caffe_shape_wo_batch) == 3:
        c, h, w = caffe_shape_wo_batch
        return (h, w, c)
    return tuple(caffe_shape_wo_batch)


def caffe_reshape_shape(in_shape: tuple, param, layer_name: str) -> tuple:
    """Caffe ``ReshapeLayer`` output shape for a full input shape."""
    rank = len(in_shape)
    axis = int(param.axis)
    start = axis + rank + 1 if axis < 0 else axis
    num_axes = int(param.num_axes)
    end = rank if num_axes == -1 else start + num_axes
    if not (0 <= start <= rank and start <= end <= rank):
        raise CaffeFormatError(
            f"layer '{layer_name}': reshape axis={axis}, num_axes={num_axes} "
            f"out of range for input shape {in_shape}"
        )
    spec = [int(d) for d in param.shape.dim]
    new = []
    infer = None
    for i, d in enumerate(spec):
        if d == 0:
            if start + i >= rank:
                raise CaffeFormatError(
                    f"layer '{layer_name}': reshape dim {i} is 0 but the input "
                    f"has no axis {start + i}"
                )
            new.append(in_shape[start + i])
        elif d == -1:
            if infer is not None:
                raise CaffeFormatError(
                    f"layer '{layer_name}': reshape has more than one -1"
                )
            infer = i
            new.append(1)
        elif d < -1:
            raise CaffeFormatError(
                f"layer '{layer_name}': invalid reshape dim {d}"
            )
        else:
            new.append(d)
    out = list(in_shape[:start]) + new + list(in_shape[end:])
    count = math.prod(in_shape)
    if infer is not None:
        known = math.prod(out)
        if known == 0 or count % known:
            raise CaffeFormatError(
                f"layer '{layer_name}': cannot infer the -1 reshape dim from "
                f"input shape {in_shape} and spec {spec}"
            )
        out[start + infer] = count // known
    if math.prod(out) != count:
        raise CaffeFormatError(
            f"layer '{layer_name}': reshape {spec} of input shape {in_shape} "
            f"gives {tuple(out)}, which has a different element count"
        )
    return tuple(out)


# ---------------------------------------------------------------------------
# Model builder
# ---------------------------------------------------------------------------


class _Builder:
    def __init__(self, net, source, input_shapes):
        self.net = net
        self.source = source
        self.input_shapes = dict(input_shapes or {})
        self.blobs: dict[str, object] = {}
        self.available: dict[str, None] = {}  # ordered set of unconsumed blobs
        self.inputs: list = []
        self.used_names: set[str] = set()
        self.batch = None  # Caffe batch size of the inputs (for Reshape)

    # -- helpers -----------------------------------------------------------
    def _name(self, name: str) -> str:
        candidate, i = name, 1
        while candidate in self.used_names:
            candidate = f"{name}_{i}"
            i += 1
        self.used_names.add(candidate)
        return candidate

    def _add_input(self, blob: str, caffe_shape: tuple):
        if blob in self.input_shapes:
            shape = tuple(int(d) for d in self.input_shapes[blob])
            caffe_shape = (caffe_shape[0] if caffe_shape else 1,) + shape
        if len(caffe_shape) < 2 or any(int(d) < 1 for d in caffe_shape[1:]):
            raise CaffeFormatError(
                f"{self.source}: input '{blob}' has shape {caffe_shape}; need "
                "(N, C, H, W), (N, D) or similar with positive sizes"
            )
        if self.batch is None:
            self.batch = int(caffe_shape[0]) if caffe_shape[0] else 1
        tensor = keras.Input(
            shape=_keras_shape(tuple(int(d) for d in caffe_shape[1:])),
            name=self._name(blob),
        )
        self.inputs.append(tensor)
        self._set_top(blob, tensor)

    def _set_top(self, blob, tensor):
        self.blobs[blob] = tensor
        self.available.pop(blob, None)
        self.available[blob] = None

    def _bottom(self, layer: CaffeLayer, i: int = 0):
        if len(layer.bottoms) <= i:
            raise CaffeFormatError(
                f"{self.source}: layer '{layer.name}' ({layer.type}) needs "
                f"{i + 1} bottom blob(s), has {len(layer.bottoms)}"
            )
        name = layer.bottoms[i]
        if name not in self.blobs:
            raise CaffeFormatError(
                f"{self.source}: layer '{layer.name}': bottom blob '{name}' is "
                "not produced by any earlier layer or net input"
            )
        self.available.pop(name, None)
        return self.blobs[name]

    def _one_top(self, layer: CaffeLayer) -> str:
        if len(layer.tops) != 1:
            raise UnsupportedLayerError(
                f"{self.source}: layer '{layer.name}' ({layer.type}) has "
                f"{len(layer.tops)} top blobs; exactly 1 is supported"
            )
        return layer.tops[0]

    def _unsupported(self, layer, why):
        raise UnsupportedLayerError(
            f"{self.source}: layer '{layer.name}' (type '{layer.type}'): {why}"
        )

    def _require_rank(self, layer, x, rank):
        if len(x.shape) != rank:
            raise CaffeFormatError(
                f"{self.source}: layer '{layer.name}' ({layer.type}) needs a "
                f"{rank}-D input blob, got Caffe shape {_caffe_shape(x)}"
            )

    # -- main loop ---------------------------------------------------------
    def build(self, outputs, name):
        for blob, shape in net_inputs(self.net, source=self.source).items():
            self._add_input(blob, shape)
        layers = net_layers(self.net)
        seen = set()
        for layer in layers:
            if not layer.name:
                raise CaffeFormatError(
                    f"{self.source}: layer #{layer.index} has no name"
                )
            if layer.name in seen:
                raise CaffeFormatError(
                    f"{self.source}: more than one layer is named "
                    f"'{layer.name}'; Keras layer names must be unique"
                )
            seen.add(layer.name)
        # Reserve Caffe layer names so helper layers never steal them.
        reserved = {layer.name for layer in layers if layer.type != "Input"}
        self.used_names |= reserved
        for layer in layers:
            handler = getattr(self, f"_layer_{layer.type}", None)
            if handler is None:
                self._unsupported(
                    layer,
                    "this layer type cannot be converted (supported: "
                    + ", ".join(SUPPORTED_LAYER_TYPES) + ")",
                )
            self.used_names.discard(layer.name)
            handler(layer)
            self.used_names.add(layer.name)
        if not self.inputs:
            raise CaffeFormatError(
                f"{self.source}: the network has no inputs (no net-level "
                "'input' and no Input layer)"
            )
        if outputs is None:
            outputs = list(self.available)
            if not outputs:
                raise CaffeFormatError(f"{self.source}: the network has no output blob")
        else:
            if isinstance(outputs, str):
                outputs = [outputs]
            outputs = list(outputs)
            missing = [o for o in outputs if o not in self.blobs]
            if missing:
                raise ValueError(
                    f"outputs: blob(s) {missing} not found in {self.source}; "
                    f"known blobs: {sorted(self.blobs)}"
                )
        out_tensors = [self.blobs[o] for o in outputs]
        model_name = name or self.net.name or "caffe_net"
        return keras.Model(
            self.inputs[0] if len(self.inputs) == 1 else self.inputs,
            out_tensors[0] if len(out_tensors) == 1 else out_tensors,
            name=_sanitize(model_name),
        )

    # -- layer handlers ----------------------------------------------------
    def _layer_Input(self, layer):
        p = layer.param_or_default("input_param")
        shapes = [tuple(int(d) for d in s.dim) for s in p.shape]
        if not layer.tops:
            raise CaffeFormatError(f"{self.source}: Input layer '{layer.name}' has no top")
        for i, top in enumerate(layer.tops):
            if len(shapes) == 1:
                shape = shapes[0]
            elif len(shapes) == len(layer.tops):
                shape = shapes[i]
            elif top in self.input_shapes:
                shape = (1,)
            else:
                raise CaffeFormatError(
                    f"{self.source}: Input layer '{layer.name}' defines "
                    f"{len(shapes)} shapes for {len(layer.tops)} tops"
                )
            self._add_input(top, shape)

    def _layer_Convolution(self, layer):
        x = self._bottom(layer)
        self._require_rank(layer, x, 4)
        g = conv_geometry(layer)
        if g["group"] != 1:
            self._unsupported(layer, f"group={g['group']} (only group=1 is supported)")
        if int(layer.param_or_default("convolution_param").axis) != 1:
            self._unsupported(layer, "axis != 1")
        if max(g["dilation"]) > 1 and max(g["stride"]) > 1:
            self._unsupported(layer, "dilation > 1 together with stride > 1")
        k_eff = _effective_kernel(g["kernel"], g["dilation"])
        size = (x.shape[1], x.shape[2])
        for s, k, p, st in zip(size, k_eff, g["pad"], g["stride"]):
            if s + 2 * p < k:
                raise CaffeFormatError(
                    f"{self.source}: layer '{layer.name}': kernel {g['kernel']} "
                    f"is larger than the padded input {size} + 2*{g['pad']}"
                )
        common = dict(
            filters=g["num_output"], kernel_size=g["kernel"], strides=g["stride"],
            dilation_rate=g["dilation"], use_bias=g["bias_term"], name=layer.name,
        )
        if g["pad"] == (0, 0):
            keras_layer = keras.layers.Conv2D(padding="valid", **common)
        elif all(
            _conv_same_equivalent(s, k, st, p)
            for s, k, st, p in zip(size, k_eff, g["stride"], g["pad"])
        ):
            keras_layer = keras.layers.Conv2D(padding="same", **common)
        else:
            keras_layer = CaffeConv2D(caffe_pad=g["pad"], **common)
        self._set_top(self._one_top(layer), keras_layer(x))

    def _layer_Deconvolution(self, layer):
        x = self._bottom(layer)
        self._require_rank(layer, x, 4)
        g = conv_geometry(layer)
        if g["group"] != 1:
            self._unsupported(layer, f"group={g['group']} (only group=1 is supported)")
        if max(g["dilation"]) > 1 and max(g["stride"]) > 1:
            self._unsupported(layer, "dilation > 1 together with stride > 1")
        k_eff = _effective_kernel(g["kernel"], g["dilation"])
        for s, k, p, st in zip((x.shape[1], x.shape[2]), k_eff, g["pad"], g["stride"]):
            if st * (s - 1) + k - 2 * p < 1:
                raise CaffeFormatError(
                    f"{self.source}: layer '{layer.name}': pad {g['pad']} leaves "
                    "no output pixels"
                )
        common = dict(
            filters=g["num_output"], kernel_size=g["kernel"], strides=g["stride"],
            dilation_rate=g["dilation"], use_bias=g["bias_term"], name=layer.name,
        )
        if all(k - s == 2 * p for k, s, p in zip(k_eff, g["stride"], g["pad"])):
            keras_layer = keras.layers.Conv2DTranspose(padding="same", **common)
        elif g["pad"] == (0, 0) and all(k >= s for k, s in zip(k_eff, g["stride"])):
            keras_layer = keras.layers.Conv2DTranspose(padding="valid", **common)
        else:
            keras_layer = CaffeConv2DTranspose(caffe_pad=g["pad"], **common)
        self._set_top(self._one_top(layer), keras_layer(x))

    def _layer_InnerProduct(self, layer):
        x = self._bottom(layer)
        p = layer.param_or_default("inner_product_param")
        rank = len(x.shape)
        axis = int(p.axis)
        if (axis + rank if axis < 0 else axis) != 1:
            self._unsupported(layer, f"axis={axis} (only axis=1 is supported)")
        if int(p.num_output) < 1:
            raise CaffeFormatError(
                f"{self.source}: layer '{layer.name}': num_output must be >= 1"
            )
        if rank > 2:
            x = keras.layers.Flatten(name=self._name(f"{layer.name}_flatten"))(x)
        dense = keras.layers.Dense(
            int(p.num_output), use_bias=bool(p.bias_term), name=layer.name
        )
        self._set_top(self._one_top(layer), dense(x))

    def _layer_ReLU(self, layer):
        x = self._bottom(layer)
        slope = _f32(layer.param_or_default("relu_param").negative_slope)
        if slope == 0.0:
            act = keras.layers.ReLU(name=layer.name)
        else:
            act = keras.layers.LeakyReLU(negative_slope=slope, name=layer.name)
        self._set_top(self._one_top(layer), act(x))

    def _layer_Sigmoid(self, layer):
        x = self._bottom(layer)
        act = keras.layers.Activation("sigmoid", name=layer.name)
        self._set_top(self._one_top(layer), act(x))

    def _layer_TanH(self, layer):
        x = self._bottom(layer)
        act = keras.layers.Activation("tanh", name=layer.name)
        self._set_top(self._one_top(layer), act(x))

    def _layer_Dropout(self, layer):
        # Caffe's Dropout scales at training time only: identity at test time.
        x = self._bottom(layer)
        self._set_top(self._one_top(layer), keras.layers.Identity(name=layer.name)(x))

    def _layer_Softmax(self, layer):
        x = self._bottom(layer)
        axis = _axis_to_keras(
            int(layer.param_or_default("softmax_param").axis), len(x.shape), layer.name
        )
        self._set_top(self._one_top(layer), keras.layers.Softmax(axis=axis, name=layer.name)(x))

    def _layer_Pooling(self, layer):
        x = self._bottom(layer)
        self._require_rank(layer, x, 4)
        p = layer.param_or_default("pooling_param")
        method = {0: "max", 1: "ave"}.get(int(p.pool))
        if method is None:
            self._unsupported(layer, "STOCHASTIC pooling is not supported")
        size = (int(x.shape[1]), int(x.shape[2]))
        if p.global_pooling:
            kernel, stride, pad = size, (1, 1), (0, 0)
        else:
            kernel = _hw([p.kernel_size] if p.HasField("kernel_size") else [],
                         "kernel_h", "kernel_w", p, None, "kernel_size", layer.name)
            stride = _hw([p.stride], "stride_h", "stride_w", p, 1, "stride", layer.name)
            pad = _hw([p.pad], "pad_h", "pad_w", p, 0, "pad", layer.name)
        if min(kernel) < 1 or min(stride) < 1:
            raise CaffeFormatError(
                f"{self.source}: layer '{layer.name}': pooling kernel and "
                f"stride must be >= 1, got {kernel}, {stride}"
            )
        if any(pp >= k for pp, k in zip(pad, kernel)):
            raise CaffeFormatError(
                f"{self.source}: layer '{layer.name}': pad {pad} must be "
                f"smaller than the kernel {kernel}"
            )
        ceil_mode = int(p.round_mode) == 0
        try:
            for s, k, st, pp in zip(size, kernel, stride, pad):
                caffe_pool_output_size(s, k, st, pp, ceil_mode)
        except ValueError as exc:
            raise CaffeFormatError(f"{self.source}: layer '{layer.name}': {exc}") from None
        plain = pad == (0, 0) and all(
            (s - k) % st == 0 for s, k, st in zip(size, kernel, stride)
        )
        if plain:
            cls = keras.layers.MaxPooling2D if method == "max" else keras.layers.AveragePooling2D
            pool = cls(pool_size=kernel, strides=stride, padding="valid", name=layer.name)
        else:
            pool = CaffePooling2D(method=method, pool_size=kernel, strides=stride,
                                  caffe_pad=pad, ceil_mode=ceil_mode, name=layer.name)
        self._set_top(self._one_top(layer), pool(x))

    def _layer_Reshape(self, layer):
        x = self._bottom(layer)
        in_shape = _caffe_shape(x)
        batch = self.batch or 1
        full_in = (batch,) + tuple(int(d) for d in in_shape[1:])
        out = caffe_reshape_shape(
            full_in, layer.param_or_default("reshape_param"), layer.name
        )
        if out[0] != batch:
            self._unsupported(
                layer,
                f"the reshape changes the batch axis ({full_in} -> {out}); "
                "only reshapes that keep axis 0 are supported",
            )
        target = out[1:]
        if len(in_shape) == 2 and len(target) == 3:
            # e.g. DeepSim: 4096 -> (256, 4, 4) in C,H,W order, then NHWC.
            y = keras.layers.Reshape(target, name=self._name(f"{layer.name}_chw"))(x)
            y = keras.layers.Permute((2, 3, 1), name=layer.name)(y)
        elif len(in_shape) != 4 and len(target) != 3:
            y = keras.layers.Reshape(target, name=layer.name)(x)
        else:
            y = CaffeReshape(target, name=layer.name)(x)
        self._set_top(self._one_top(layer), y)

    def _layer_Flatten(self, layer):
        x = self._bottom(layer)
        p = layer.param_or_default("flatten_param")
        rank = len(x.shape)
        axis = int(p.axis) + (rank if p.axis < 0 else 0)
        end = int(p.end_axis) + (rank if p.end_axis < 0 else 0)
        if axis != 1 or end != rank - 1:
            self._unsupported(layer, "only axis=1, end_axis=-1 is supported")
        if rank == 4:
            x = keras.layers.Permute((3, 1, 2), name=self._name(f"{layer.name}_chw"))(x)
        self._set_top(self._one_top(layer), keras.layers.Flatten(name=layer.name)(x))

    def _layer_LRN(self, layer):
        x = self._bottom(layer)
        self._require_rank(layer, x, 4)
        p = layer.param_or_default("lrn_param")
        if int(p.norm_region) != 0:
            self._unsupported(layer, "only norm_region ACROSS_CHANNELS is supported")
        lrn = CaffeLRN(local_size=int(p.local_size), alpha=_f32(p.alpha),
                       beta=_f32(p.beta), k=_f32(p.k), name=layer.name)
        self._set_top(self._one_top(layer), lrn(x))

    def _layer_Concat(self, layer):
        xs = [self._bottom(layer, i) for i in range(len(layer.bottoms))]
        p = layer.param_or_default("concat_param")
        axis = int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis)
        axis = _axis_to_keras(axis, len(xs[0].shape), layer.name)
        if len(xs) == 1:
            y = keras.layers.Identity(name=layer.name)(xs[0])
        else:
            y = keras.layers.Concatenate(axis=axis, name=layer.name)(xs)
        self._set_top(self._one_top(layer), y)

    def _layer_Eltwise(self, layer):
        xs = [self._bottom(layer, i) for i in range(len(layer.bottoms))]
        if len(xs) < 2:
            raise CaffeFormatError(
                f"{self.source}: Eltwise layer '{layer.name}' needs >= 2 bottoms"
            )
        p = layer.param_or_default("eltwise_param")
        op = int(p.operation)
        if op == 1 and any(float(c) != 1.0 for c in p.coeff):
            self._unsupported(layer, "SUM with coefficients other than 1")
        cls = {0: keras.layers.Multiply, 1: keras.layers.Add, 2: keras.layers.Maximum}[op]
        self._set_top(self._one_top(layer), cls(name=layer.name)(xs))

    def _layer_Split(self, layer):
        x = self._bottom(layer)
        for top in layer.tops:
            self._set_top(top, x)

    def _layer_Silence(self, layer):
        for i in range(len(layer.bottoms)):
            self._bottom(layer, i)


def _sanitize(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in name)
    return cleaned or "caffe_net"


def build_model(
    prototxt,
    *,
    input_shapes: Mapping[str, Iterable[int]] | None = None,
    outputs: Iterable[str] | str | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build a Keras functional model from a Caffe network description.

    Args:
        prototxt: path to a ``.prototxt`` file, or a parsed NetParameter
            (:func:`keras_icnn.caffe.read_prototxt`).
        input_shapes: optional ``{input blob: Caffe shape without the batch
            axis}``, e.g. ``{"data": (3, 256, 256)}``, overriding the
            prototxt's input shapes.
        outputs: Caffe blob name(s) to use as model outputs; default: the
            blobs no layer consumes (Caffe's net outputs).
        name: model name (default: the net's ``name`` or "caffe_net").

    Returns:
        An unweighted (randomly initialised) ``keras.Model``, channels-last;
        see the module docstring for the naming and layout conventions.  Load
        weights with :func:`load_caffe_weights`.

    Raises:
        UnsupportedLayerError: a layer type/option that cannot be converted
            (the message names the layer and its type).
        CaffeFormatError: an inconsistent network description.
    """
    net, source = _load_net(prototxt, "prototxt")
    if input_shapes is not None and not isinstance(input_shapes, Mapping):
        raise ValueError("input_shapes must be a mapping {blob name: shape}")
    return _Builder(net, source, input_shapes).build(outputs, name)


# ---------------------------------------------------------------------------
# Weight loading
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
    for _ in range(1000):
        op, node_index = _producer(tensor)
        if op is None:
            return None
        if isinstance(op, _PASS_THROUGH):
            tensor = _first_input(op, node_index)
            if tensor is None:
                return None
            continue
        is_flatten = isinstance(op, keras.layers.Flatten) or (
            isinstance(op, keras.layers.Reshape) and len(op.target_shape) == 1
        )
        if not is_flatten:
            return None
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
    return None


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


def _keras_kind(layer):
    if isinstance(layer, keras.layers.Conv2DTranspose):
        return "Deconvolution"
    if isinstance(layer, keras.layers.Conv2D):
        return "Convolution"
    if isinstance(layer, keras.layers.Dense):
        return "InnerProduct"
    return None


def load_caffe_weights(
    model: keras.Model,
    caffemodel,
    prototxt=None,
    *,
    strict: bool = True,
) -> dict:
    """Copy the weights of a ``.caffemodel`` into ``model``, by layer name.

    Every Keras layer that has weights (``Conv2D``, ``Conv2DTranspose``,
    ``Dense`` and their subclasses) is looked up by name among the Caffe
    layers with blobs.  Layouts are converted: Convolution ``(out, in, kh,
    kw)`` -> ``(kh, kw, in, out)``; Deconvolution ``(in, out, kh, kw)`` ->
    ``(kh, kw, out, in)``; InnerProduct ``(out, in)`` -> ``(in, out)``, with
    rows permuted from C,H,W to H,W,C order when the Dense layer reads an
    NHWC ``Flatten`` (see :func:`flatten_source_shape`).  Legacy 4-D blob
    shapes such as ``(1, 1, out, in)`` are accepted.

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
    net, source = _load_net(caffemodel, "caffemodel")
    weights = caffemodel_weights(net, source=source)
    proto_layers = {}
    if prototxt is not None:
        proto_net, proto_source = _load_net(prototxt, "prototxt")
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

    loaded, missing, permuted = [], [], []
    updates = []
    for layer in model.layers:
        if not layer.weights:
            continue
        kind = _keras_kind(layer)
        entry = weights.get(layer.name)
        if entry is None:
            missing.append(layer.name)
            continue
        if kind is None:
            raise UnsupportedLayerError(
                f"Keras layer '{layer.name}' ({type(layer).__name__}) has "
                "weights, but loading Caffe weights into this layer class is "
                "not supported (Conv2D, Conv2DTranspose and Dense are)"
            )
        caffe_type = entry.type
        if caffe_type != kind:
            raise CaffeFormatError(
                f"{source}: layer '{layer.name}' is a Caffe '{caffe_type}' "
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
        info = proto_layers.get(layer.name, entry.layer)
        kernel_shape = tuple(int(d) for d in layer.kernel.shape)
        w = entry.arrays[0]
        if kind == "Convolution":
            kh, kw, cin, cout = kernel_shape
            w = _check_blob(w, (cout, cin, kh, kw), layer.name, "weight", source)
            kernel = w.transpose(2, 3, 1, 0)
        elif kind == "Deconvolution":
            kh, kw, cout, cin = kernel_shape
            w = _check_blob(w, (cin, cout, kh, kw), layer.name, "weight", source)
            kernel = w.transpose(2, 3, 1, 0)
        else:
            n_in, n_out = kernel_shape
            transpose = bool(info.param_or_default("inner_product_param").transpose)
            if transpose:
                w = _check_blob(w, (n_in, n_out), layer.name, "weight", source)
                w_oi = w.T
            else:
                w_oi = _check_blob(w, (n_out, n_in), layer.name, "weight", source)
            hwc = flatten_source_shape(layer)
            if hwc is not None:
                h, wd, c = hwc
                if h * wd * c != n_in:
                    raise CaffeFormatError(
                        f"layer '{layer.name}': flattened input {hwc} does not "
                        f"match the Dense input size {n_in}"
                    )
                kernel = (
                    w_oi.reshape(n_out, c, h, wd).transpose(2, 3, 1, 0).reshape(n_in, n_out)
                )
                permuted.append(layer.name)
            else:
                kernel = w_oi.T
        values = [np.ascontiguousarray(kernel, dtype=np.float32)]
        if use_bias:
            bias = _check_blob(
                entry.arrays[1], (int(layer.bias.shape[0]),), layer.name, "bias", source
            )
            values.append(np.asarray(bias, dtype=np.float32))
        updates.append((layer, values))
        loaded.append(layer.name)

    if missing and strict:
        raise CaffeFormatError(
            f"{source}: no weights for Keras layer(s) {missing}; the caffemodel "
            f"has weights for {sorted(weights)}"
        )
    for layer, values in updates:
        layer.set_weights(values)
    used = set(loaded)
    unused = [name for name in weights if name not in used]
    return {
        "loaded": loaded,
        "missing": missing,
        "unused": unused,
        "flatten_permuted": permuted,
    }
