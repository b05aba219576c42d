"""Image generators (deep generator networks) used as image priors.

Besides :func:`deepsim_fc7` (below), :func:`generator` builds the seven generators bdpy
distributes as PyTorch modules (``bdpy.dl.torch.models.model_factory``), by bdpy's names:
``relu7generator`` and ``relu6generator`` (both :data:`DEEPSIM_FC7`: 4096-d vector ->
256x256), ``pool5generator`` (6x6x256 -> 256x256), ``relu4generator`` and ``relu3generator``
(13x13x384 -> 256x256, ``255 * tanh`` output), ``norm2generator`` (13x13x256 -> 240x240) and
``norm1generator`` (27x27x96 -> 240x240), all NHWC; :data:`GENERATOR_SPECS` holds their
architectures and :func:`torch_layer_names` the state-dict keys of their layers.

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
from keras_icnn.caffe.layers import CaffeConv2D, CaffeConv2DTranspose
from keras_icnn.models.weights_file import load_keras_weights

__all__ = [
    "DEEPSIM_FC7",
    "DEEPSIM_URL",
    "GENERATOR_SPECS",
    "GeneratorSpec",
    "NORM1_GENERATOR",
    "NORM2_GENERATOR",
    "POOL5_GENERATOR",
    "RELU4_GENERATOR",
    "build_generator",
    "deepsim_fc7",
    "generator",
    "torch_layer_names",
]


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """Architecture of a DeepSim-style generator (layer names as in Caffe and bdpy).

    The network is: the input; ``dense`` layers; the ``reshape`` of the vector to an image;
    ``convs``; ``deconvs``; the optional ``output_tanh``.  Either ``latent_dim`` (a vector
    input, reshaped to ``reshape_chw``) or ``latent_chw`` (an image input) is given.

    Attributes:
        latent_dim: size of the input feature vector, or None for an image input.
        input_name: name of the input (the Caffe input blob).
        dense: ``(layer, activation layer, units)`` fully connected layers,
            each followed by a LeakyReLU.
        reshape_name: Caffe name of the Reshape layer (vector input only).
        reshape_chw: its target shape in Caffe's (C, H, W) order.
        deconvs: ``(layer, activation layer or None, filters, kernel,
            stride, pad)`` Caffe Deconvolution layers (PyTorch ``ConvTranspose2d``);
            ``None`` means no activation.  Those named in ``plain_convs`` are
            ordinary convolutions (PyTorch ``Conv2d``).
        negative_slope: LeakyReLU slope.
        latent_chw: the input image's (C, H, W) (bdpy's ``latent_shape``); the Keras
            input is (H, W, C).
        convs: ``(layer, activation layer or None, filters, kernel, stride, pad)``
            convolutions applied to an image input (bdpy's ``Rconv6`` ...).
        plain_convs: names of ``deconvs`` entries that are convolutions.
        output_tanh: ``(tanh layer, scaling layer, scale)``: the output is
            ``scale * tanh(x)``, or None for a linear output.
    """

    latent_dim: int | None
    input_name: str
    dense: tuple
    reshape_name: str | None
    reshape_chw: tuple | None
    deconvs: tuple
    negative_slope: float = 0.3
    latent_chw: tuple | None = None
    convs: tuple = ()
    plain_convs: tuple = ()
    output_tanh: tuple | None = None

    @property
    def latent_shape(self) -> tuple:
        """The input's shape as bdpy gives it: ``(latent_dim,)`` or ``(C, H, W)``."""
        return (self.latent_dim,) if self.latent_chw is None else tuple(self.latent_chw)

    @property
    def input_shape(self) -> tuple:
        """The Keras input's shape: ``(latent_dim,)`` or ``(H, W, C)``."""
        if self.latent_chw is None:
            return (self.latent_dim,)
        c, h, w = self.latent_chw
        return (h, w, c)


#: The DeepSim fc7 generator (release_deepsim_v0, ``fc7/generator.prototxt``); also bdpy's
#: ``relu7generator`` and ``relu6generator`` (``AlexNetGenerator``).
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


def _image_spec(latent_chw, convs, deconvs, plain_convs=(), output_tanh=None):
    return GeneratorSpec(latent_dim=None, input_name="feat", dense=(), reshape_name=None,
                         reshape_chw=None, deconvs=deconvs, negative_slope=0.3,
                         latent_chw=latent_chw, convs=convs, plain_convs=plain_convs,
                         output_tanh=output_tanh)


def _rconvs(*layers):
    """bdpy's ``Rconv6``/``Rrelu6`` ... layers: ``(filters, kernel, stride, pad)`` each."""
    return tuple((f"Rconv{i}", f"Rrelu{i}", *layer) for i, layer in enumerate(layers, start=6))


#: bdpy's ``pool5generator`` (``AlexNetPool5Generator``): 256x6x6 -> 3x256x256.
POOL5_GENERATOR = _image_spec(
    (256, 6, 6), _rconvs((512, 3, 1, 1), (512, 3, 1, 1), (512, 3, 1, 0)),
    DEEPSIM_FC7.deconvs)

#: bdpy's ``relu4generator`` and ``relu3generator`` (``AlexNetRelu4Generator``,
#: ``AlexNetRelu3Generator``): 384x13x13 -> 3x256x256, ``255 * tanh``.
RELU4_GENERATOR = _image_spec(
    (384, 13, 13), _rconvs((384, 3, 1, 0), (512, 3, 1, 0), (512, 2, 1, 0)),
    (("deconv5", "relu_deconv5", 256, 4, 2, 1), ("conv5_1", "relu_conv5_1", 256, 3, 1, 1),
     ("deconv4", "relu_deconv4", 128, 4, 2, 1), ("conv4_1", "relu_conv4_1", 128, 3, 1, 1),
     ("deconv3", "relu_deconv3", 128, 4, 2, 1), ("conv3_1", "relu_conv3_1", 128, 3, 1, 1),
     ("deconv2", "relu_deconv2", 64, 4, 2, 1), ("conv2_1", "relu_conv2_1", 32, 3, 1, 1),
     ("deconv1", "relu_deconv1", 16, 4, 2, 1), ("conv1_1", None, 3, 3, 1, 1)),
    plain_convs=("conv2_1", "conv1_1"), output_tanh=("conv1_1_tanh", "conv1_1_tanh_elt", 255.0))

_NORM_DECONVS = (
    ("deconv4", "relu_deconv4", 128, 4, 2, 1), ("conv4_1", "relu_conv4_1", 128, 3, 1, 1),
    ("deconv3", "relu_deconv3", 64, 4, 2, 1), ("conv3_1", "relu_conv3_1", 64, 3, 1, 1),
    ("deconv2", "relu_deconv2", 32, 4, 2, 1), ("conv2_1", "relu_conv2_1", 32, 3, 1, 1),
    ("deconv1", None, 16, 4, 2, 1), ("conv1_1", None, 3, 3, 1, 1))
_NORM_PLAIN = ("conv4_1", "conv3_1", "conv2_1", "conv1_1")
_TANH_255 = ("conv1_1_tanh", "conv1_1_tanh_elt", 255.0)

#: bdpy's ``norm2generator`` (``AlexNetNorm2Generator``): 256x13x13 -> 3x240x240,
#: ``255 * tanh``.
NORM2_GENERATOR = _image_spec(
    (256, 13, 13), _rconvs((256, 3, 1, 2), (128, 3, 1, 1), (128, 3, 1, 1)),
    _NORM_DECONVS, _NORM_PLAIN, _TANH_255)

#: bdpy's ``norm1generator`` (``AlexNetNorm1Generator``): 96x27x27 -> 3x240x240,
#: ``255 * tanh``.
NORM1_GENERATOR = _image_spec(
    (96, 27, 27), _rconvs((128, 3, 2, 2), (128, 3, 1, 1), (128, 3, 1, 1)),
    _NORM_DECONVS, _NORM_PLAIN, _TANH_255)

#: bdpy's generator names -> architectures.
GENERATOR_SPECS = {
    "relu7generator": DEEPSIM_FC7,
    "relu6generator": DEEPSIM_FC7,
    "pool5generator": POOL5_GENERATOR,
    "relu4generator": RELU4_GENERATOR,
    "relu3generator": RELU4_GENERATOR,
    "norm2generator": NORM2_GENERATOR,
    "norm1generator": NORM1_GENERATOR,
}


def _deconv(filters, kernel, stride, pad, name):
    """Keras layer computing Caffe's Deconvolution exactly (as the builder)."""
    common = dict(filters=filters, kernel_size=kernel, strides=stride, name=name)
    if kernel - stride == 2 * pad:
        return keras.layers.Conv2DTranspose(padding="same", **common)
    if pad == 0 and kernel >= stride:
        return keras.layers.Conv2DTranspose(padding="valid", **common)
    return CaffeConv2DTranspose(caffe_pad=pad, **common)


def _conv(filters, kernel, stride, pad, name):
    """Keras layer computing a Caffe/PyTorch convolution with symmetric zero padding."""
    common = dict(filters=filters, kernel_size=kernel, strides=stride, name=name)
    if pad == 0:
        return keras.layers.Conv2D(padding="valid", **common)
    if stride == 1 and kernel - 1 == 2 * pad:
        return keras.layers.Conv2D(padding="same", **common)
    return CaffeConv2D(caffe_pad=pad, **common)


def _check_spec(spec, name):
    if not isinstance(spec, GeneratorSpec):
        raise ValueError(f"spec must be a GeneratorSpec, got {type(spec).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if (spec.latent_dim is None) == (spec.latent_chw is None):
        raise ValueError("spec: give exactly one of latent_dim (a vector input) and "
                         f"latent_chw (an image input), got {spec.latent_dim!r} and "
                         f"{spec.latent_chw!r}")
    if spec.latent_dim is not None and spec.reshape_chw is None:
        raise ValueError("spec: a vector input (latent_dim) needs reshape_chw")
    deconv_names = {layer[0] for layer in spec.deconvs}
    stray = [n for n in spec.plain_convs if n not in deconv_names]
    if stray:
        raise ValueError(f"spec: plain_convs {stray} are not layers of deconvs")


def _vector_stage(spec, x):
    """The dense layers and the reshape of a vector input."""
    for layer_name, act_name, units in spec.dense:
        x = keras.layers.Dense(units, name=layer_name)(x)
        x = keras.layers.LeakyReLU(negative_slope=spec.negative_slope, name=act_name)(x)
    c, h, w = spec.reshape_chw
    # Caffe reshapes the vector in C,H,W order; Keras tensors are H,W,C.
    x = keras.layers.Reshape((c, h, w), name=f"{spec.reshape_name}_chw")(x)
    return keras.layers.Permute((2, 3, 1), name=spec.reshape_name)(x)


def _conv_stack(spec, x, layers, transposed):
    for layer_name, act_name, filters, kernel, stride, pad in layers:
        plain = not transposed or layer_name in spec.plain_convs
        make = _conv if plain else _deconv
        x = make(filters, kernel, stride, pad, layer_name)(x)
        if act_name is not None:
            x = keras.layers.LeakyReLU(negative_slope=spec.negative_slope, name=act_name)(x)
    return x


def build_generator(spec: GeneratorSpec, name: str = "generator") -> keras.Model:
    """Build an (unweighted) DeepSim-style generator from ``spec``."""
    _check_spec(spec, name)
    inputs = keras.Input(shape=spec.input_shape, name=spec.input_name)
    x = inputs if spec.latent_dim is None else _vector_stage(spec, inputs)
    x = _conv_stack(spec, x, spec.convs, transposed=False)
    x = _conv_stack(spec, x, spec.deconvs, transposed=True)
    if spec.output_tanh is not None:
        tanh_name, scale_name, scale = spec.output_tanh
        x = keras.layers.Activation("tanh", name=tanh_name)(x)
        x = keras.layers.Rescaling(scale, name=scale_name)(x)
    return keras.Model(inputs, x, name=name)


def torch_layer_names(spec: GeneratorSpec) -> dict:
    """``{Keras layer: (bdpy module, alias)}`` of a generator built from ``spec``: bdpy's
    generators hold each layer as an attribute (``defc7``, ``Rconv6``, ``deconv5`` ...) and
    again inside ``nn.Sequential`` stages (``defc`` or ``rconv``, then ``deconv``), so their
    state dicts name each tensor twice (``defc7.weight`` and ``defc.0.weight``)."""
    first = "defc" if spec.dense else "rconv"
    stages = ((first, [(n, a) for n, a, *_ in spec.dense + spec.convs]),
              ("deconv", [(n, a) for n, a, *_ in spec.deconvs]))
    names = {}
    for stage, layers in stages:
        index = 0
        for layer_name, act_name in layers:
            names[layer_name] = (layer_name, f"{stage}.{index}")
            index += 1 if act_name is None else 2
    return names


def generator(name: str, weights=None, cache_dir=None) -> keras.Model:
    """One of bdpy's generators, by bdpy's name (a key of :data:`GENERATOR_SPECS`).

    The Keras model's input is NHWC ``(N, H, W, C)`` for the image-input generators (bdpy's
    ``latent_shape`` is (C, H, W): transpose features with ``x.transpose(0, 2, 3, 1)``), or
    ``(N, 4096)``; its output is ``(N, H, W, 3)`` in the same channel order and scale as the
    PyTorch module's ``(N, 3, H, W)`` (the encoder's Caffe input space, BGR minus the mean).

    Args:
        name: ``relu7generator``, ``relu6generator``, ``pool5generator``,
            ``relu4generator``, ``relu3generator``, ``norm2generator`` or ``norm1generator``.
        weights: None (random initialisation), a bdpy ``generator.pt`` state dict (converted
            once and cached, see :func:`keras_icnn.models.torch_weights.load_weights_file`), or
            a ``.weights.h5`` file saved from this model.
        cache_dir: where conversions go when the ``.pt`` file's directory is not writable
            (default: the Keras cache, ``~/.keras/keras_icnn/torch``).
    """
    if name not in GENERATOR_SPECS:
        raise ValueError(f"name: unknown generator {name!r}; expected one of "
                         f"{sorted(GENERATOR_SPECS)}")
    spec = GENERATOR_SPECS[name]
    model = build_generator(spec, name=name)
    if weights is not None:
        from keras_icnn.models.torch_weights import load_weights_file

        load_weights_file(model, weights, torch_layer_names(spec), name, cache_dir=cache_dir)
    return model


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
        load_keras_weights(model, w, "the DeepSim fc7 generator")
