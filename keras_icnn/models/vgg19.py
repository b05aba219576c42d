"""VGG19 with separate activations, named as in Caffe, and its weights.

The published iCNN features are **pre-ReLU** outputs named as in Caffe (``conv1_1`` ...
``conv5_4``, ``fc6``, ``fc7``, ``fc8``).  Keras fuses activations into its convolutions, so a
Keras layer's output is post-ReLU; :func:`vgg19` builds the network with the activations as
layers of their own (:func:`keras_icnn.models.preactivations.expose_preactivations` does the
same for any Keras model).
"""
from __future__ import annotations

import os

import keras

from keras_icnn.errors import WeightsUnavailableError
from keras_icnn.models.weights_file import load_keras_weights

__all__ = [
    "VGG19_CONV_LAYERS", "VGG19_FC_LAYERS", "VGG19_LAYERS", "KERAS_VGG19_NAMES",
    "vgg19", "copy_keras_vgg19_weights",
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
        load_keras_weights(model, w, f"VGG19 (include_top={include_top})")


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
