"""Keras layers that reproduce Caffe operations Keras has no exact match for.

The model builder uses plain Keras layers whenever they compute exactly what
Caffe computes (the common case: VGG19 and the DeepSim generator need none of
the classes here).  These layers cover the rest:

* :class:`CaffeConv2D` -- ``Conv2D`` with Caffe's explicit symmetric zero
  padding (Keras' ``"same"`` pads asymmetrically for strided convolutions).
* :class:`CaffeConv2DTranspose` -- ``Conv2DTranspose`` with Caffe's
  deconvolution output size ``stride*(in-1) + kernel - 2*pad``: the full
  transposed convolution cropped by ``pad`` on each side.
* :class:`CaffePooling2D` -- MAX/AVE pooling with Caffe's ceil rounding, the
  "last window must start inside the padded input" clip, and AVE divisors
  clipped to the padded input (padding counts, the ceil overhang does not).
* :class:`CaffeReshape` -- Reshape in Caffe's C,H,W element order on NHWC
  tensors.
* :class:`CaffeLRN` -- LRN across channels.

All tensors are channels-last (NHWC) inside Keras.  The layers are
registered as Keras serializable objects (package ``keras_icnn.caffe``).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

__all__ = [
    "CaffeConv2D",
    "CaffeConv2DTranspose",
    "CaffeLRN",
    "CaffePooling2D",
    "CaffeReshape",
    "caffe_pool_output_size",
]

_PACKAGE = "keras_icnn.caffe"


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or any(v < 0 for v in value):
        raise ValueError(f"{what} must be two non-negative integers, got {value}")
    return value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeConv2D(keras.layers.Conv2D):
    """Caffe convolution: zero-pad ``caffe_pad`` pixels on every side, then
    a ``"valid"`` Conv2D.  The kernel layout is Keras' ``(kh, kw, in, out)``.
    """

    def __init__(self, *args, caffe_pad=(0, 0), **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError("CaffeConv2D supports data_format='channels_last' only")
        self.caffe_pad = _pair(caffe_pad, "caffe_pad")

    def _pad(self, x):
        ph, pw = self.caffe_pad
        if ph == 0 and pw == 0:
            return x
        return ops.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])

    def _padded_shape(self, input_shape):
        ph, pw = self.caffe_pad
        shape = list(input_shape)
        for axis, p in ((1, ph), (2, pw)):
            if shape[axis] is not None:
                shape[axis] += 2 * p
        return tuple(shape)

    def build(self, input_shape):
        super().build(self._padded_shape(input_shape))

    def call(self, inputs):
        return super().call(self._pad(inputs))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._padded_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config["caffe_pad"] = list(self.caffe_pad)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeConv2DTranspose(keras.layers.Conv2DTranspose):
    """Caffe deconvolution: a ``"valid"`` Conv2DTranspose cropped by
    ``caffe_pad`` on each side, so that the output size is
    ``stride*(in-1) + dilation*(kernel-1) + 1 - 2*pad`` as in Caffe.
    The kernel layout is Keras' ``(kh, kw, out, in)``.
    """

    def __init__(self, *args, caffe_pad=(0, 0), **kwargs):
        kwargs["padding"] = "valid"
        kwargs["output_padding"] = None
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(
                "CaffeConv2DTranspose supports data_format='channels_last' only"
            )
        self.caffe_pad = _pair(caffe_pad, "caffe_pad")

    def _caffe_size(self, size, axis):
        if size is None:
            return None
        k = self.dilation_rate[axis] * (self.kernel_size[axis] - 1) + 1
        return self.strides[axis] * (size - 1) + k - 2 * self.caffe_pad[axis]

    def call(self, inputs):
        outputs = super().call(inputs)
        ph, pw = self.caffe_pad
        shape = ops.shape(inputs)
        out_h = self._caffe_size(shape[1], 0)
        out_w = self._caffe_size(shape[2], 1)
        return outputs[:, ph:ph + out_h, pw:pw + out_w, :]

    def compute_output_shape(self, input_shape):
        return (
            input_shape[0],
            self._caffe_size(input_shape[1], 0),
            self._caffe_size(input_shape[2], 1),
            self.filters,
        )

    def get_config(self):
        config = super().get_config()
        config["caffe_pad"] = list(self.caffe_pad)
        return config


def caffe_pool_output_size(size: int, kernel: int, stride: int, pad: int,
                           ceil_mode: bool = True) -> int:
    """Caffe's pooled size along one axis (``PoolingLayer::Reshape``)."""
    span = size + 2 * pad - kernel
    if span < 0:
        raise ValueError(
            f"pooling kernel {kernel} is larger than the padded input "
            f"{size}+2*{pad}"
        )
    if ceil_mode:
        out = int(math.ceil(span / stride)) + 1
    else:
        out = span // stride + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the (padded) input
    return out


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffePooling2D(keras.layers.Layer):
    """Caffe MAX / AVE pooling on NHWC tensors with static spatial size.

    Output size ``ceil((in + 2*pad - kernel) / stride) + 1`` (or floor with
    ``ceil_mode=False``), reduced by one when the last window would start in
    the bottom/right padding.  MAX ignores padding; AVE divides each window's
    sum (padding counts as zeros) by the window area clipped to the padded
    input, exactly as Caffe's CPU/GPU kernels do.
    """

    def __init__(self, method="max", pool_size=2, strides=2, caffe_pad=0,
                 ceil_mode=True, **kwargs):
        super().__init__(**kwargs)
        if method not in ("max", "ave"):
            raise ValueError(f"method must be 'max' or 'ave', got {method!r}")
        self.method = method
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides")
        self.caffe_pad = _pair(caffe_pad, "caffe_pad")
        if min(self.pool_size) < 1 or min(self.strides) < 1:
            raise ValueError(
                f"pool_size and strides must be >= 1, got {self.pool_size}, "
                f"{self.strides}"
            )
        if any(p >= k for p, k in zip(self.caffe_pad, self.pool_size)):
            raise ValueError(
                f"caffe_pad {self.caffe_pad} must be smaller than pool_size "
                f"{self.pool_size} (as Caffe requires)"
            )
        self.ceil_mode = bool(ceil_mode)

    def _geometry(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        if h is None or w is None:
            raise ValueError(
                f"{self.name}: CaffePooling2D needs a static spatial size, got "
                f"{input_shape}"
            )
        out = []
        for size, k, s, p in zip((h, w), self.pool_size, self.strides,
                                 self.caffe_pad):
            o = caffe_pool_output_size(size, k, s, p, self.ceil_mode)
            # rows/cols to add after the input so that a 'valid' pooling of
            # the padded tensor yields exactly `o` windows (may be negative:
            # then trailing input rows are never read and get cropped).
            after = (o - 1) * s + k - size - p
            out.append((size, o, p, after))
        return out

    def compute_output_shape(self, input_shape):
        (_, oh, _, _), (_, ow, _, _) = self._geometry(input_shape)
        return (input_shape[0], oh, ow, input_shape[3])

    def _pad_or_crop(self, x, geometry, value):
        (h, _, ph, ah), (w, _, pw, aw) = geometry
        if ah < 0:
            x = x[:, : h + ah]
            ah = 0
        if aw < 0:
            x = x[:, :, : w + aw]
            aw = 0
        if ph or ah or pw or aw:
            x = ops.pad(x, [[0, 0], [ph, ah], [pw, aw], [0, 0]],
                        constant_values=value)
        return x

    def call(self, inputs):
        geometry = self._geometry(tuple(inputs.shape))
        if self.method == "max":
            lowest = float(np.finfo(np.float32).min)  # Caffe's -FLT_MAX
            x = self._pad_or_crop(inputs, geometry, lowest)
            return ops.max_pool(x, self.pool_size, self.strides, padding="valid")
        x = self._pad_or_crop(inputs, geometry, 0.0)
        sums = ops.average_pool(x, self.pool_size, self.strides, padding="valid")
        return sums * ops.convert_to_tensor(
            self._ave_scale(geometry), dtype=sums.dtype
        )

    def _ave_scale(self, geometry):
        """kernel area / Caffe divisor, per output position (1, oh, ow, 1)."""
        factors = []
        for (size, o, p, _), k, s in zip(geometry, self.pool_size, self.strides):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, size + p)
            factors.append(k / (end - start))
        scale = np.outer(factors[0], factors[1]).astype(np.float32)
        return scale[None, :, :, None]

    def get_config(self):
        config = super().get_config()
        config.update(
            method=self.method,
            pool_size=list(self.pool_size),
            strides=list(self.strides),
            caffe_pad=list(self.caffe_pad),
            ceil_mode=self.ceil_mode,
        )
        return config


def _to_nchw(shape):
    return (shape[0], shape[3], shape[1], shape[2])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeReshape(keras.layers.Layer):
    """Reshape following Caffe's element order.

    ``target_shape`` is the Caffe shape without the batch axis.  4-D tensors
    are NHWC in Keras and NCHW in Caffe, so a 4-D input is first transposed
    to NCHW and a 3-element (C, H, W) target is transposed back to NHWC.
    Tensors of other ranks keep Caffe's axis order.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(int(d) for d in target_shape)
        if not target_shape or any(d < 1 for d in target_shape):
            raise ValueError(
                f"target_shape must be positive integers, got {target_shape}"
            )
        self.target_shape = target_shape

    def compute_output_shape(self, input_shape):
        shape = (input_shape[0],) + self.target_shape
        if len(shape) == 4:
            return (shape[0], shape[2], shape[3], shape[1])
        return shape

    def call(self, inputs):
        x = inputs
        if len(x.shape) == 4:
            x = ops.transpose(x, (0, 3, 1, 2))
        x = ops.reshape(x, (-1,) + self.target_shape)
        if len(self.target_shape) == 3:
            x = ops.transpose(x, (0, 2, 3, 1))
        return x

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeLRN(keras.layers.Layer):
    """Caffe LRN, ACROSS_CHANNELS, on NHWC tensors.

    ``y = x / (k + alpha / n * sum_{window of n channels} x**2) ** beta``,
    the window centred on the channel and clipped at the ends.
    """

    def __init__(self, local_size=5, alpha=1.0, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        local_size = int(local_size)
        if local_size < 1 or local_size % 2 == 0:
            raise ValueError(f"local_size must be a positive odd integer, got {local_size}")
        self.local_size = local_size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs):
        half = (self.local_size - 1) // 2
        sq = ops.square(inputs)
        channels = inputs.shape[-1]
        padded = ops.pad(sq, [[0, 0], [0, 0], [0, 0], [half, half]])
        total = padded[..., 0:channels]
        for i in range(1, self.local_size):
            total = total + padded[..., i:i + channels]
        scale = self.k + (self.alpha / self.local_size) * total
        return inputs * ops.power(scale, -self.beta)

    def get_config(self):
        config = super().get_config()
        config.update(local_size=self.local_size, alpha=self.alpha,
                      beta=self.beta, k=self.k)
        return config
