"""Keras models from Caffe prototxts.

:func:`build_model` translates a Caffe network description into a Keras 3
functional model, unweighted; :func:`keras_icnn.caffe.weights.
load_caffe_weights` then copies a ``.caffemodel``'s weights into it.  The shape
arithmetic lives in :mod:`keras_icnn.caffe.geometry`, the Keras layers that
reproduce Caffe's arithmetic in :mod:`keras_icnn.caffe.layers`.

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
* **Groups.** A Convolution's ``group`` becomes Keras' ``Conv2D(groups=...)`` (same kernel
  layout per group: Caffe's ``(out, in/group, kh, kw)`` blob is the ``(kh, kw, in/group, out)``
  kernel transposed); grouped Deconvolutions are not supported.
* **Exactness.** Plain Keras layers are used whenever they compute exactly
  Caffe's result: ``Conv2D(padding="same")`` when Caffe's explicit padding is
  equivalent to TensorFlow's "same", ``Conv2DTranspose(padding="same")`` when
  ``kernel - stride == 2 * pad``, ``MaxPooling2D`` / ``AveragePooling2D`` when
  Caffe's ceil rounding and padding make no difference.  Otherwise the layers
  of :mod:`keras_icnn.caffe.layers` reproduce Caffe's arithmetic.
* **Flatten order (InnerProduct after a conv stack).** Caffe's InnerProduct
  flattens a 4-D blob in C,H,W order.  The builder inserts a plain NHWC
  ``Flatten`` named ``<ip>_flatten`` and :func:`~keras_icnn.caffe.weights.
  load_caffe_weights` permutes the rows of the weight matrix from C,H,W to
  H,W,C order.  The same rule serves hand-built models: whenever a ``Dense``
  layer's input comes (possibly through Dropout/activation layers) from a
  ``Flatten`` of a 4-D NHWC tensor, its Caffe weights are permuted.  A Caffe ``Flatten`` *layer* is built as
  ``Permute((3, 1, 2))`` + ``Flatten`` so that its blob has Caffe's element
  order; Dense layers after it get unpermuted weights.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import keras
import numpy as np

from keras_icnn.caffe.geometry import (
    axis_to_keras,
    caffe_reshape_shape,
    caffe_shape_of,
    conv_geometry,
    conv_same_equivalent,
    effective_kernel,
    keras_shape_from_caffe,
    pool_window,
)
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
    load_net,
    net_inputs,
    net_layers,
)

__all__ = [
    "SUPPORTED_LAYER_TYPES",
    "build_model",
]

#: Caffe layer types :func:`build_model` translates.
SUPPORTED_LAYER_TYPES = (
    "Input", "Convolution", "Deconvolution", "InnerProduct", "ReLU",
    "Sigmoid", "TanH", "Pooling", "Dropout", "Softmax", "Reshape", "Flatten",
    "LRN", "Concat", "Eltwise", "Split", "Silence",
)


def _f32(value) -> float:
    """A float32 protobuf value as its shortest decimal (0.3f -> 0.3)."""
    return float(str(np.float32(value)))



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
            shape=keras_shape_from_caffe(tuple(int(d) for d in caffe_shape[1:])),
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
                f"{rank}-D input blob, got Caffe shape {caffe_shape_of(x)}"
            )

    # -- main loop ---------------------------------------------------------
    def build(self, outputs, name):
        for blob, shape in net_inputs(self.net, source=self.source).items():
            self._add_input(blob, shape)
        layers = net_layers(self.net)
        self._check_layer_names(layers)
        self._translate(layers)
        if not self.inputs:
            raise CaffeFormatError(
                f"{self.source}: the network has no inputs (no net-level "
                "'input' and no Input layer)"
            )
        out_tensors = [self.blobs[o] for o in self._output_blobs(outputs)]
        model_name = name or self.net.name or "caffe_net"
        return keras.Model(
            self.inputs[0] if len(self.inputs) == 1 else self.inputs,
            out_tensors[0] if len(out_tensors) == 1 else out_tensors,
            name=_sanitize(model_name),
        )

    def _check_layer_names(self, layers):
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

    def _translate(self, layers):
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

    def _output_blobs(self, outputs) -> list:
        """The requested output blob names, or the blobs no layer consumes."""
        if outputs is None:
            outputs = list(self.available)
            if not outputs:
                raise CaffeFormatError(f"{self.source}: the network has no output blob")
            return outputs
        if isinstance(outputs, str):
            outputs = [outputs]
        outputs = list(outputs)
        missing = [o for o in outputs if o not in self.blobs]
        if missing:
            raise ValueError(
                f"outputs: blob(s) {missing} not found in {self.source}; "
                f"known blobs: {sorted(self.blobs)}"
            )
        return outputs

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
        self._check_groups(layer, g["group"], x.shape[-1], g["num_output"])
        if int(layer.param_or_default("convolution_param").axis) != 1:
            self._unsupported(layer, "axis != 1")
        if max(g["dilation"]) > 1 and max(g["stride"]) > 1:
            self._unsupported(layer, "dilation > 1 together with stride > 1")
        k_eff = effective_kernel(g["kernel"], g["dilation"])
        size = (x.shape[1], x.shape[2])
        for s, k, p, st in zip(size, k_eff, g["pad"], g["stride"]):
            if s + 2 * p < k:
                raise CaffeFormatError(
                    f"{self.source}: layer '{layer.name}': kernel {g['kernel']} "
                    f"is larger than the padded input {size} + 2*{g['pad']}"
                )
        common = dict(
            filters=g["num_output"], kernel_size=g["kernel"], strides=g["stride"],
            dilation_rate=g["dilation"], use_bias=g["bias_term"], groups=g["group"],
            name=layer.name,
        )
        if g["pad"] == (0, 0):
            keras_layer = keras.layers.Conv2D(padding="valid", **common)
        elif all(
            conv_same_equivalent(s, k, st, p)
            for s, k, st, p in zip(size, k_eff, g["stride"], g["pad"])
        ):
            keras_layer = keras.layers.Conv2D(padding="same", **common)
        else:
            keras_layer = CaffeConv2D(caffe_pad=g["pad"], **common)
        self._set_top(self._one_top(layer), keras_layer(x))

    def _check_groups(self, layer, group, channels, num_output):
        """Caffe's ``group``: both channel counts must be multiples of it."""
        if group < 1 or channels % group or num_output % group:
            raise CaffeFormatError(
                f"{self.source}: layer '{layer.name}': group={group} must divide the input "
                f"channels ({channels}) and num_output ({num_output})"
            )

    def _layer_Deconvolution(self, layer):
        x = self._bottom(layer)
        self._require_rank(layer, x, 4)
        g = conv_geometry(layer)
        if g["group"] != 1:
            self._unsupported(layer, f"group={g['group']} (only group=1 is supported)")
        if max(g["dilation"]) > 1 and max(g["stride"]) > 1:
            self._unsupported(layer, "dilation > 1 together with stride > 1")
        k_eff = effective_kernel(g["kernel"], g["dilation"])
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
        axis = axis_to_keras(
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
        kernel, stride, pad = pool_window(p, size, layer.name)
        ceil_mode = int(p.round_mode) == 0
        self._check_pool_window(layer, size, kernel, stride, pad, ceil_mode)
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

    def _check_pool_window(self, layer, size, kernel, stride, pad, ceil_mode):
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
        try:
            for s, k, st, pp in zip(size, kernel, stride, pad):
                caffe_pool_output_size(s, k, st, pp, ceil_mode)
        except ValueError as exc:
            raise CaffeFormatError(f"{self.source}: layer '{layer.name}': {exc}") from None

    def _layer_Reshape(self, layer):
        x = self._bottom(layer)
        in_shape = caffe_shape_of(x)
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
        axis = axis_to_keras(axis, len(xs[0].shape), layer.name)
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
    net, source = load_net(prototxt, "prototxt")
    if input_shapes is not None and not isinstance(input_shapes, Mapping):
        raise ValueError("input_shapes must be a mapping {blob name: shape}")
    return _Builder(net, source, input_shapes).build(outputs, name)
