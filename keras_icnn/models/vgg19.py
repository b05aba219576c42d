"""Encoders: VGG19 with separate activations, pre-activation exposure for any Keras CNN, and
feature extraction by layer name.

The published iCNN features are **pre-ReLU** outputs named as in Caffe (``conv1_1`` ...
``conv5_4``, ``fc6``, ``fc7``, ``fc8``).  Keras fuses activations into its convolutions, so a
Keras layer's output is post-ReLU; :func:`vgg19` builds the network with the activations as
layers of their own, and :func:`expose_preactivations` does the same for any Keras model.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import keras
import numpy as np

from keras_icnn import imaging
from keras_icnn.errors import WeightsUnavailableError

__all__ = [
    "VGG19_CONV_LAYERS", "VGG19_FC_LAYERS", "VGG19_LAYERS", "KERAS_VGG19_NAMES",
    "vgg19", "copy_keras_vgg19_weights", "expose_preactivations", "feature_extractor",
    "extract_features", "get_cnn_features", "sort_layers", "check_layers",
]

_VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
VGG19_CONV_LAYERS = tuple(
    f"conv{b}_{i}" for b, (_, n) in enumerate(_VGG19_BLOCKS, start=1) for i in range(1, n + 1))
VGG19_FC_LAYERS = ("fc6", "fc7", "fc8")
#: All the layers of the published data, in network order.
VGG19_LAYERS = VGG19_CONV_LAYERS + VGG19_FC_LAYERS
#: Caffe name -> layer name in ``keras.applications.VGG19``.
KERAS_VGG19_NAMES = {
    **{f"conv{b}_{i}": f"block{b}_conv{i}"
       for b, (_, n) in enumerate(_VGG19_BLOCKS, start=1) for i in range(1, n + 1)},
    "fc6": "fc1", "fc7": "fc2", "fc8": "predictions",
}

_KERAS_WEIGHTS = {
    True: ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
           "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
           "cbe5617147190e668d6c5d5026f83318"),
    False: ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "253f8cb515780f3b799900260a226db6"),
}


def vgg19(weights="imagenet", include_top=True, input_shape=(224, 224, 3), name="vgg19"):
    """VGG19 (Simonyan & Zisserman) with activations as separate layers, named as in Caffe.

    Layers: ``conv1_1`` ... ``conv5_4`` (pre-ReLU), ``relu1_1`` ... ``relu5_4``, ``pool1`` ...
    ``pool5``; with the top: ``flatten``, ``fc6``, ``relu6``, ``fc7``, ``relu7``, ``fc8``,
    ``prob`` (softmax).  Input: ``[N, H, W, 3]`` in Caffe's input space (BGR, 0-255, minus the
    mean; see :mod:`keras_icnn.imaging`).

    Args:
        weights: ``"imagenet"`` (Keras' published VGG19 weights, ported from the same Oxford
            release, fetched and checked against their published hash, cached in
            ``~/.keras/models``), ``None`` (random initialisation), a ``.weights.h5`` file
            saved from this model, ``"caffe"`` or a ``.caffemodel`` path (the Oxford
            ``VGG_ILSVRC_19_layers.caffemodel``, converted by :mod:`keras_icnn.caffe`).
        include_top: include ``fc6`` ... ``prob`` (requires a 224x224 input).
        input_shape: ``(H, W, 3)``; ``H, W >= 32``, or ``None`` for any size without the top.
    """
    input_shape = _check_input_shape(input_shape, include_top)
    inputs = keras.Input(shape=input_shape, name="data")
    x = inputs
    for b, (filters, n) in enumerate(_VGG19_BLOCKS, start=1):
        for i in range(1, n + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{b}_{i}")(x)
            x = keras.layers.ReLU(name=f"relu{b}_{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{b}")(x)
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(4096, name="fc6")(x)
        x = keras.layers.ReLU(name="relu6")(x)
        x = keras.layers.Dense(4096, name="fc7")(x)
        x = keras.layers.ReLU(name="relu7")(x)
        x = keras.layers.Dense(1000, name="fc8")(x)
        x = keras.layers.Softmax(name="prob")(x)
    model = keras.Model(inputs, x, name=name)
    _load_vgg19_weights(model, weights, include_top)
    return model


def _check_input_shape(input_shape, include_top):
    if input_shape is None:
        if include_top:
            raise ValueError("input_shape: the fully connected top needs (224, 224, 3), got None")
        return (None, None, 3)
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"input_shape: expected (H, W, 3), got {input_shape}")
    if include_top and shape[:2] != (224, 224):
        raise ValueError(f"input_shape: VGG19 with include_top=True needs (224, 224, 3), got "
                         f"{shape}; use include_top=False for other sizes")
    for s in shape[:2]:
        if s is not None and (int(s) != s or s < 32):
            raise ValueError(f"input_shape: H and W must be integers >= 32, got {shape}")
    return shape


def _load_vgg19_weights(model, weights, include_top):
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights: expected 'imagenet', 'caffe', None or a file path, got {weights!r}")
    w = os.fspath(weights)
    if w == "imagenet":
        url, md5 = _KERAS_WEIGHTS[bool(include_top)]
        try:
            path = keras.utils.get_file(url.rsplit("/", 1)[1], url, file_hash=md5,
                                        cache_subdir="models")
        except Exception as e:  # no network here, blocked host, bad cache ...
            raise WeightsUnavailableError(
                f"could not fetch Keras' VGG19 ImageNet weights from {url} ({e}). Download the "
                "file on a machine with internet into ~/.keras/models/, or pass weights=None "
                "(random weights) or weights=PATH") from None
        source = keras.applications.VGG19(weights=None, include_top=include_top,
                                          input_shape=model.input_shape[1:]
                                          if include_top else (None, None, 3))
        source.load_weights(path)
        copy_keras_vgg19_weights(source, model)
    elif w == "caffe" or w.endswith(".caffemodel"):
        from keras_icnn.caffe import load_caffe_weights, fetch_vgg19_caffemodel
        path = fetch_vgg19_caffemodel() if w == "caffe" else w
        load_caffe_weights(model, path)
    else:
        if not os.path.isfile(w):
            raise FileNotFoundError(f"weights: no such file {w!r} (expected 'imagenet', 'caffe', "
                                    "None, a .weights.h5 or a .caffemodel path)")
        try:
            model.load_weights(w)
        except Exception as e:
            raise ValueError(f"weights: could not load {w!r} into VGG19 "
                             f"(include_top={include_top}): {e}") from None


def copy_keras_vgg19_weights(source, target):
    """Copy the weights of a ``keras.applications.VGG19`` into a :func:`vgg19` model."""
    for ours, theirs in KERAS_VGG19_NAMES.items():
        try:
            dst = target.get_layer(ours)
        except ValueError:
            continue  # no top in target
        try:
            src = source.get_layer(theirs)
        except ValueError:
            raise ValueError(f"source model has no layer {theirs!r} for {ours!r}; expected "
                             "keras.applications.VGG19 with the same include_top") from None
        sw, dw = src.get_weights(), dst.get_weights()
        if [a.shape for a in sw] != [b.shape for b in dw]:
            raise ValueError(f"layer {ours!r}: weight shapes {[b.shape for b in dw]} differ from "
                             f"the source's {theirs!r} {[a.shape for a in sw]}")
        dst.set_weights(sw)


# --------------------------------------------------------------------------------------------
# Pre-activation outputs for any Keras model

def _splittable_types():
    L = keras.layers
    return tuple(getattr(L, n) for n in (
        "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
        "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
        "DepthwiseConv1D", "DepthwiseConv2D") if hasattr(L, n))


def _has_fused_activation(layer):
    act = getattr(layer, "activation", None)
    return (isinstance(layer, _splittable_types()) and act is not None
            and act is not keras.activations.linear
            and getattr(act, "__name__", "") != "linear")


class PreActivation(keras.layers.Layer):
    """Calls a layer with its fused activation switched off; shares the layer's weights."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=kwargs.pop("name", layer.name), **kwargs)
        self.layer = layer

    def call(self, inputs):
        act = self.layer.activation
        self.layer.activation = keras.activations.linear
        try:
            return self.layer(inputs)
        finally:
            self.layer.activation = act

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def _split_call(layer, *args, **kwargs):
    if not _has_fused_activation(layer):
        return layer(*args, **kwargs)
    pre = PreActivation(layer)(*args, **kwargs)
    return keras.layers.Activation(layer.activation, name=f"{layer.name}_activation")(pre)


def expose_preactivations(model):
    """An equivalent model with every fused activation split out into its own layer.

    Each Dense/Conv-type layer ``L`` with a fused activation becomes ``L`` (pre-activation output,
    same name, same weight variables) followed by an ``Activation`` layer named
    ``L_activation``.  Outputs are identical to ``model``'s; weights are shared, not copied.
    Works for functional and Sequential models (e.g. ``keras.applications.ResNet50``, a user's
    own CNN); layers inside nested sub-models are left as they are.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model: expected a keras.Model, got {type(model).__name__}")
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError("model: a Sequential model must be built with an Input shape first "
                             "(e.g. keras.Sequential([keras.Input((224, 224, 3)), ...]))")
        inputs = keras.Input(batch_shape=model.inputs[0].shape, name=model.inputs[0].name)
        x = inputs
        for layer in model.layers:
            x = _split_call(layer, x)
        return keras.Model(inputs, x, name=model.name)
    if not hasattr(model, "_operations") or not getattr(model, "_is_graph_network", True):
        raise ValueError("model: expected a functional or Sequential model; subclassed models "
                         "have no graph whose layers can be split")
    try:
        inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0])
                  for t in model.inputs]
        return keras.models.clone_model(model, input_tensors=inputs if len(inputs) > 1
                                        else inputs[0], clone_function=lambda layer: layer,
                                        call_function=_split_call)
    except ValueError as e:
        raise ValueError(f"model {model.name!r}: could not rebuild it with separate "
                         f"activations ({e})") from None


# --------------------------------------------------------------------------------------------
# Feature extraction

def _layer_names(model):
    return [layer.name for layer in model.layers]


def check_layers(model, layers: Iterable[str]) -> list[str]:
    """Validate layer names against ``model``; error lists the model's layers."""
    names = _layer_names(model)
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer name")
    unknown = [l for l in layers if l not in names]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown} for model {model.name!r}; its layers are: "
                         f"{', '.join(names)}")
    return layers


def sort_layers(model, layers: Iterable[str]) -> list[str]:
    """Layers in the order they appear in ``model`` (input to output)."""
    layers = check_layers(model, layers)
    order = {n: i for i, n in enumerate(_layer_names(model))}
    return sorted(dict.fromkeys(layers), key=order.__getitem__)


def feature_extractor(model, layers: Sequence[str]):
    """A ``keras.Model`` mapping the encoder input to ``{layer: output}``.

    Only the part of ``model`` needed for the deepest requested layer is computed.
    """
    layers = sort_layers(model, layers)
    outputs = {}
    for name in layers:
        layer = model.get_layer(name)
        try:
            outputs[name] = layer.output
        except (AttributeError, ValueError) as e:
            raise ValueError(f"layer {name!r} has no single output in model {model.name!r} ({e})"
                             ) from None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_features")


def extract_features(model, images, layers, mean=None, batch_size=16,
                     data_format="channels_last") -> dict:
    """Features of RGB 0-255 images ``[N, H, W, 3]`` (or one ``[H, W, 3]``) at ``layers``.

    Returns ``{layer: array}`` with a batch axis; ``data_format="channels_first"`` gives Caffe's
    ``[N, C, H, W]`` layout for conv layers.
    """
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format: expected 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    x = imaging.rgb_to_caffe(images, mean)
    if x.ndim == 3:
        x = x[None]
    _check_image_size(model, x.shape[1:3])
    ext = feature_extractor(model, layers)
    outs = [ext(x[i:i + batch_size], training=False) for i in range(0, len(x), batch_size)]
    feats = {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}
    if data_format == "channels_first":
        feats = {k: np.moveaxis(v, -1, 1) if v.ndim > 2 else v for k, v in feats.items()}
    return feats


def _check_image_size(model, hw):
    want = tuple(model.input_shape[1:3])
    if any(w is not None and w != h for w, h in zip(want, hw)):
        raise ValueError(f"images: the model {model.name!r} expects {want[0]}x{want[1]} images, "
                         f"got {hw[0]}x{hw[1]}; resize them first "
                         "(e.g. keras_icnn.io.load_image(path, size=...))")


def get_cnn_features(net, img, layer_list, mean=None) -> dict:
    """The original iCNN helper: features of one RGB 0-255 image ``[H, W, 3]``.

    Returns ``{layer: array}`` in Caffe's layout without a batch axis (``[C, H, W]`` for conv
    layers, ``[D]`` for fc), as the original did; the reconstruction functions accept it.
    """
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"img: expected one RGB image [H, W, 3], got shape {img.shape}")
    feats = extract_features(net, img, layer_list, mean=mean, data_format="channels_first")
    return {k: v[0] for k, v in feats.items()}
