"""Image generators (deep generator networks) used as image priors.

:func:`deepsim_fc7` is the DeepSim / DeePSiM generator of Dosovitskiy & Brox
(2016, "Generating images with perceptual similarity metrics based on deep
networks") trained to invert AlexNet's fc7 features -- the "DGN" prior of
Shen et al. (2019).  It maps a 4096-d feature vector to a 256x256 image in
the Caffe input space of the encoder (BGR, 0-255 scale, minus the mean), as
an NHWC tensor ``(N, 256, 256, 3)``.

The Keras model mirrors the Caffe ``generator.prototxt`` layer for layer:
layer names are the Caffe layer names, so ``keras_icnn.caffe.
load_caffe_weights`` loads the released ``generator.caffemodel`` into it
directly, and ``keras_icnn.caffe.build_model`` applied to the prototxt
produces the same layers and weight shapes.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import keras

from keras_icnn.caffe.download import (
    DEEPSIM_URL,
    fetch_deepsim_fc7_caffemodel,
    keras_cache_dir,
)
from keras_icnn.caffe.layers import CaffeConv2DTranspose

__all__ = [
    "DEEPSIM_FC7",
    "DEEPSIM_URL",
    "GeneratorSpec",
    "build_generator",
    "deepsim_fc7",
]


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """Architecture of a DeepSim-style generator (names as in Caffe).

    Attributes:
        latent_dim: size of the input feature vector.
        input_name: name of the input (the Caffe input blob).
        dense: ``(layer, activation layer, units)`` fully connected layers,
            each followed by a LeakyReLU.
        reshape_name: Caffe name of the Reshape layer.
        reshape_chw: its target shape in Caffe's (C, H, W) order.
        deconvs: ``(layer, activation layer or None, filters, kernel,
            stride, pad)`` Caffe Deconvolution layers; ``None`` means no
            activation (the last layer).
        negative_slope: LeakyReLU slope.
    """

    latent_dim: int
    input_name: str
    dense: tuple
    reshape_name: str
    reshape_chw: tuple
    deconvs: tuple
    negative_slope: float = 0.3


#: The DeepSim fc7 generator (release_deepsim_v0, ``fc7/generator.prototxt``).
DEEPSIM_FC7 = GeneratorSpec(
    latent_dim=4096,
    input_name="feat",
    dense=(
        ("defc7", "relu_defc7", 4096),
        ("defc6", "relu_defc6", 4096),
        ("defc5", "relu_defc5", 4096),
    ),
    reshape_name="reshape_relu_defc5",
    reshape_chw=(256, 4, 4),
    deconvs=(
        ("deconv5", "relu_deconv5", 256, 4, 2, 1),
        ("conv5_1", "relu_conv5_1", 512, 3, 1, 1),
        ("deconv4", "relu_deconv4", 256, 4, 2, 1),
        ("conv4_1", "relu_conv4_1", 256, 3, 1, 1),
        ("deconv3", "relu_deconv3", 128, 4, 2, 1),
        ("conv3_1", "relu_conv3_1", 128, 3, 1, 1),
        ("deconv2", "relu_deconv2", 64, 4, 2, 1),
        ("deconv1", "relu_deconv1", 32, 4, 2, 1),
        ("deconv0", None, 3, 4, 2, 1),
    ),
    negative_slope=0.3,
)


def _deconv(filters, kernel, stride, pad, name):
    """Keras layer computing Caffe's Deconvolution exactly (as the builder)."""
    common = dict(filters=filters, kernel_size=kernel, strides=stride, name=name)
    if kernel - stride == 2 * pad:
        return keras.layers.Conv2DTranspose(padding="same", **common)
    if pad == 0 and kernel >= stride:
        return keras.layers.Conv2DTranspose(padding="valid", **common)
    return CaffeConv2DTranspose(caffe_pad=pad, **common)


def build_generator(spec: GeneratorSpec, name: str = "generator") -> keras.Model:
    """Build an (unweighted) DeepSim-style generator from ``spec``."""
    if not isinstance(spec, GeneratorSpec):
        raise ValueError(f"spec must be a GeneratorSpec, got {type(spec).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    c, h, w = spec.reshape_chw
    slope = spec.negative_slope
    inputs = keras.Input(shape=(spec.latent_dim,), name=spec.input_name)
    x = inputs
    for layer_name, act_name, units in spec.dense:
        x = keras.layers.Dense(units, name=layer_name)(x)
        x = keras.layers.LeakyReLU(negative_slope=slope, name=act_name)(x)
    # Caffe reshapes the vector in C,H,W order; Keras tensors are H,W,C.
    x = keras.layers.Reshape((c, h, w), name=f"{spec.reshape_name}_chw")(x)
    x = keras.layers.Permute((2, 3, 1), name=spec.reshape_name)(x)
    for layer_name, act_name, filters, kernel, stride, pad in spec.deconvs:
        x = _deconv(filters, kernel, stride, pad, layer_name)(x)
        if act_name is not None:
            x = keras.layers.LeakyReLU(negative_slope=slope, name=act_name)(x)
    return keras.Model(inputs, x, name=name)


_CACHED_WEIGHTS = "deepsim_fc7.weights.h5"


def _load_pretrained_deepsim_fc7(model):
    cached = os.path.join(keras_cache_dir(), _CACHED_WEIGHTS)
    if os.path.isfile(cached):
        model.load_weights(cached)
        return
    from keras_icnn.caffe import load_caffe_weights, save_converted_weights

    caffemodel = fetch_deepsim_fc7_caffemodel()
    report = load_caffe_weights(model, caffemodel)
    target = os.path.join(os.path.dirname(caffemodel), _CACHED_WEIGHTS)
    try:
        save_converted_weights(model, target, caffemodel=caffemodel, report=report)
    except OSError as exc:  # a read-only cache is not fatal
        warnings.warn(f"could not cache the converted weights at {target}: {exc}",
                      stacklevel=4)  # the caller of deepsim_fc7


def deepsim_fc7(weights=None, name: str = "deepsim_fc7") -> keras.Model:
    """The DeepSim fc7 generator: 4096-d features -> (N, 256, 256, 3) image.

    Architecture (Caffe names): input ``feat`` (4096); ``defc7``, ``defc6``,
    ``defc5`` (Dense 4096, each + LeakyReLU 0.3: ``relu_defc7`` ...);
    ``reshape_relu_defc5`` (4096 -> 256x4x4 in Caffe's C,H,W order, output
    NHWC 4x4x256; helper layer ``reshape_relu_defc5_chw``); Caffe
    Deconvolution layers (Keras ``Conv2DTranspose``, "same" padding, which is
    exactly Caffe's ``pad: 1`` here) ``deconv5`` (k4 s2, 256), ``conv5_1``
    (k3 s1, 512), ``deconv4`` (k4 s2, 256), ``conv4_1`` (k3 s1, 256),
    ``deconv3`` (k4 s2, 128), ``conv3_1`` (k3 s1, 128), ``deconv2`` (k4 s2,
    64), ``deconv1`` (k4 s2, 32), each + LeakyReLU 0.3 (``relu_<name>``), and
    ``deconv0`` (k4 s2, 3, no activation; Caffe's top blob ``generated``).

    The output is in the encoder's Caffe input space (BGR, minus the mean);
    the published pipeline centre-crops it to 224x224 at offset (16, 16).

    Args:
        weights: ``None`` (random initialisation); ``"deepsim-fc7"`` (download
            ``release_deepsim_v0.zip`` from :data:`DEEPSIM_URL` into the Keras
            cache, extract ``fc7/generator.caffemodel``, convert it and cache
            ``deepsim_fc7.weights.h5``); a ``.caffemodel`` path (converted on
            the fly); or a ``.weights.h5`` path saved from this model (e.g. by
            ``keras-icnn convert-caffe``).
        name: the Keras model name.

    Raises:
        ValueError: an invalid ``weights`` argument.
        FileNotFoundError: ``weights`` names a missing file.
        keras_icnn.caffe.CaffeFormatError: a damaged or mismatched caffemodel.
        WeightsUnavailableError (a RuntimeError): the download failed; the
            message says how to fetch the file by hand.
    """
    w = _check_weights(weights)
    model = build_generator(DEEPSIM_FC7, name=name)
    if w is not None:
        _load_weights(model, w)
    return model


def _check_weights(weights):
    """The ``weights`` argument of :func:`deepsim_fc7` as ``None`` or a ``str``, checked."""
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "weights: expected None, 'deepsim-fc7', a .caffemodel or a "
            f".weights.h5 path, got {weights!r}"
        )
    w = None if weights is None else os.fspath(weights)
    if w is not None and w != "deepsim-fc7":
        if not (w.endswith(".caffemodel") or w.endswith(".h5")):
            raise ValueError(
                "weights: expected None, 'deepsim-fc7', a .caffemodel or a "
                f".weights.h5 path, got {w!r}"
            )
        if not os.path.isfile(w):
            raise FileNotFoundError(f"weights: no such file {w!r}")
    return w


def _load_weights(model, w):
    """Load ``"deepsim-fc7"``, a ``.caffemodel`` or a ``.weights.h5`` file into ``model``."""
    if w == "deepsim-fc7":
        _load_pretrained_deepsim_fc7(model)
    elif w.endswith(".caffemodel"):
        from keras_icnn.caffe import load_caffe_weights

        load_caffe_weights(model, w)
    else:
        if not os.path.isfile(w):
            raise FileNotFoundError(f"weights: no such file {w!r} (expected None, "
                                    "'deepsim-fc7', a .caffemodel or a .weights.h5 file)")
        try:
            model.load_weights(w)
        except Exception as e:  # noqa: BLE001  (h5py, Keras: a damaged or foreign file)
            raise ValueError(f"weights: could not load {w!r} into the DeepSim fc7 generator: "
                             f"{e}") from None
