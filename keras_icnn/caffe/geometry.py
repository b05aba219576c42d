"""Caffe shape arithmetic: window parameters, axis and layout mapping, Reshape.

Pure functions on Caffe parameters and shapes, used by the model builder
(:mod:`keras_icnn.caffe.builder`); they build no Keras layer.

* :func:`hw_pair`, :func:`conv_geometry`, :func:`pool_window` -- resolve
  Caffe's "one value, two values or ``*_h``/``*_w``" window parameters.
* :func:`effective_kernel`, :func:`conv_same_equivalent` -- dilation, and
  whether TensorFlow's "same" padding equals Caffe's symmetric padding.
* :func:`axis_to_keras`, :func:`caffe_shape_of`, :func:`keras_shape_from_caffe`
  -- 4-D Caffe blobs (N, C, H, W) are channels-last (N, H, W, C) in Keras;
  blobs of other ranks keep Caffe's axis order.
* :func:`caffe_reshape_shape` -- the output shape of Caffe's ``Reshape``.

Errors raise :class:`~keras_icnn.errors.CaffeFormatError` (or its subclass
:class:`~keras_icnn.errors.UnsupportedLayerError`) naming the layer.
"""

from __future__ import annotations

import math

from keras_icnn.errors import CaffeFormatError, UnsupportedLayerError

__all__ = [
    "axis_to_keras",
    "caffe_reshape_shape",
    "caffe_shape_of",
    "conv_geometry",
    "conv_same_equivalent",
    "effective_kernel",
    "hw_pair",
    "keras_shape_from_caffe",
    "pool_window",
]


# ---------------------------------------------------------------------------
# Window parameters
# ---------------------------------------------------------------------------


def hw_pair(values, h_field, w_field, param, default, what, layer_name):
    """Resolve Caffe's "one value, two values or *_h/*_w" convention.

    ``values`` are the repeated values of the field, ``h_field``/``w_field``
    the names of the explicit height/width fields of ``param`` (None when
    the field has none) and ``default`` the value when nothing is set (None:
    the field is required).  Returns an (h, w) pair of ints.
    """
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


def conv_geometry(layer) -> dict:
    """Kernel, stride, pad, dilation, outputs of a (De)Convolution layer.

    ``layer`` is a :class:`~keras_icnn.caffe.reader.CaffeLayer`.  Returns a
    dict with keys ``kernel``, ``stride``, ``pad``, ``dilation`` (each an
    (h, w) pair), ``num_output``, ``bias_term`` and ``group``.
    """
    p = layer.param_or_default("convolution_param")
    geometry = {
        "kernel": hw_pair(p.kernel_size, "kernel_h", "kernel_w", p, None,
                          "kernel_size", layer.name),
        "stride": hw_pair(p.stride, "stride_h", "stride_w", p, 1, "stride",
                          layer.name),
        "pad": hw_pair(p.pad, "pad_h", "pad_w", p, 0, "pad", layer.name),
        "dilation": hw_pair(p.dilation, None, None, p, 1, "dilation", layer.name),
        "num_output": int(p.num_output),
        "bias_term": bool(p.bias_term),
        "group": int(p.group),
    }
    _check_conv_geometry(geometry, layer)
    return geometry


def _check_conv_geometry(geometry: dict, layer) -> None:
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


def pool_window(param, size, layer_name: str):
    """(kernel, stride, pad) of a Pooling layer, each an (h, w) pair.

    ``param`` is the layer's ``pooling_param`` and ``size`` the (H, W) of
    its input; global pooling covers the whole input.  The values are not
    validated here.
    """
    if param.global_pooling:
        return size, (1, 1), (0, 0)
    kernel = hw_pair([param.kernel_size] if param.HasField("kernel_size") else [],
                     "kernel_h", "kernel_w", param, None, "kernel_size", layer_name)
    stride = hw_pair([param.stride], "stride_h", "stride_w", param, 1, "stride",
                     layer_name)
    pad = hw_pair([param.pad], "pad_h", "pad_w", param, 0, "pad", layer_name)
    return kernel, stride, pad


def effective_kernel(kernel, dilation):
    """The extent of a dilated kernel: ``d * (k - 1) + 1`` per axis."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def conv_same_equivalent(size, k_eff, stride, pad) -> bool:
    """Does TF's "same" padding reproduce Caffe's symmetric ``pad``?"""
    caffe_out = (size + 2 * pad - k_eff) // stride + 1
    tf_out = -(-size // stride)
    total = max((tf_out - 1) * stride + k_eff - size, 0)
    return caffe_out == tf_out and total // 2 == pad


# ---------------------------------------------------------------------------
# Axes and layouts
# ---------------------------------------------------------------------------


def axis_to_keras(axis: int, rank: int, layer_name: str) -> int:
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


def caffe_shape_of(tensor) -> tuple:
    """The Caffe shape (batch included, as None) of a Keras tensor."""
    shape = tuple(tensor.shape)
    if len(shape) == 4:
        return (shape[0], shape[3], shape[1], shape[2])
    return shape


def keras_shape_from_caffe(caffe_shape_wo_batch: tuple) -> tuple:
    """The Keras shape (no batch axis) of a Caffe shape without batch axis."""
    if len(caffe_shape_wo_batch) == 3:
        c, h, w = caffe_shape_wo_batch
        return (h, w, c)
    return tuple(caffe_shape_wo_batch)


# ---------------------------------------------------------------------------
# Reshape
# ---------------------------------------------------------------------------


def caffe_reshape_shape(in_shape: tuple, param, layer_name: str) -> tuple:
    """Caffe ``ReshapeLayer`` output shape for a full input shape."""
    start, end = _reshape_span(in_shape, param, layer_name)
    spec = [int(d) for d in param.shape.dim]
    new, infer = _reshape_dims(spec, in_shape, start, layer_name)
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


def _reshape_span(in_shape: tuple, param, layer_name: str) -> tuple[int, int]:
    """The [start, end) input axes a Reshape replaces (``axis``, ``num_axes``)."""
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
    return start, end


def _reshape_dims(spec, in_shape: tuple, start: int, layer_name: str):
    """The replacement dims (a -1 as 1) and the index of the -1 (or None)."""
    new = []
    infer = None
    for i, d in enumerate(spec):
        if d == -1:
            if infer is not None:
                raise CaffeFormatError(
                    f"layer '{layer_name}': reshape has more than one -1"
                )
            infer = i
        new.append(_reshape_dim(d, i, in_shape, start, layer_name))
    return new, infer


def _reshape_dim(d: int, i: int, in_shape: tuple, start: int, layer_name: str) -> int:
    """One entry of the reshape spec: 0 copies the input dim, -1 is inferred later."""
    if d == 0:
        if start + i >= len(in_shape):
            raise CaffeFormatError(
                f"layer '{layer_name}': reshape dim {i} is 0 but the input "
                f"has no axis {start + i}"
            )
        return in_shape[start + i]
    if d == -1:
        return 1
    if d < -1:
        raise CaffeFormatError(
            f"layer '{layer_name}': invalid reshape dim {d}"
        )
    return d
