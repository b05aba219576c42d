"""AlexNet and CaffeNet (bdpy's ``alexnet`` and ``reference_net``), activations as layers.

Both are the PyTorch modules of ``bdpy.dl.torch.models`` (ports of Caffe's ``bvlc_alexnet``
and ``bvlc_reference_caffenet``) as channels-last Keras models, with Caffe's layer names:
``conv1`` ... ``conv5`` (pre-ReLU, as VGG19's ``conv*_*``), ``relu1`` ... ``relu5``,
``norm1``/``norm2`` (LRN), ``pool1``/``pool2``/``pool5``; with the top ``flatten``, ``fc6``,
``relu6``, ``fc7``, ``relu7``, ``fc8`` and ``prob`` (softmax).  These include the names of
bdpy's ``layer_map`` (:data:`ALEXNET_LAYER_MAP`, :data:`REFERENCE_NET_LAYER_MAP`), so the
features bdpy extracts from a module are the outputs of the Keras layers of the same names.

The two networks differ in one place: AlexNet normalises then pools (``relu1 -> norm1 ->
pool1``), CaffeNet pools then normalises (``relu1 -> pool1 -> norm1``); likewise for layer 2.
``conv2``, ``conv4`` and ``conv5`` are grouped convolutions (two groups), LRN is PyTorch's
``LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1)`` (= Caffe's LRN), max pooling is 3x3
stride 2 with PyTorch's floor rounding (equal to Caffe's ceil rounding at 227x227).

Input: ``(N, H, W, 3)``, the same values as the PyTorch module's ``(N, 3, H, W)`` input (for
the lab's weights, converted from Caffe: BGR, 0-255, minus the ImageNet mean).  With the top,
the input must give a 6x6 ``pool5`` (227x227 to 230x230), where bdpy's
``AdaptiveAvgPool2d((6, 6))`` is the identity.
"""
from __future__ import annotations

import keras

from keras_icnn.caffe.layers import CaffeLRN

__all__ = ["ALEXNET_LAYER_MAP", "REFERENCE_NET_LAYER_MAP", "ALEXNET_TORCH_NAMES",
           "REFERENCE_NET_TORCH_NAMES", "alexnet", "reference_net"]

#: bdpy's ``layer_map("alexnet")``: feature name -> PyTorch module.
ALEXNET_LAYER_MAP = {
    "conv1": "features[0]", "conv2": "features[4]", "conv3": "features[8]",
    "conv4": "features[10]", "conv5": "features[12]", "fc6": "classifier[0]",
    "relu6": "classifier[1]", "fc7": "classifier[2]", "relu7": "classifier[3]",
    "fc8": "classifier[4]",
}

#: bdpy's ``layer_map("reference_net")``: feature name -> PyTorch module.
REFERENCE_NET_LAYER_MAP = {
    "conv1": "features[0]", "relu1": "features[1]", "conv2": "features[4]",
    "relu2": "features[5]", "conv3": "features[8]", "relu3": "features[9]",
    "conv4": "features[10]", "relu4": "features[11]", "conv5": "features[12]",
    "relu5": "features[13]", "fc6": "classifier[1]", "relu6": "classifier[2]",
    "fc7": "classifier[4]", "relu7": "classifier[5]", "fc8": "classifier[6]",
}

_WEIGHT_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def _torch_names(layer_map):
    """``{Keras layer: (state-dict module name,)}``: ``features[4]`` -> ``features.4``."""
    return {name: (layer_map[name].replace("[", ".").rstrip("]"),) for name in _WEIGHT_LAYERS}


#: State-dict module names of the weight layers of bdpy's ``AlexNet``.
ALEXNET_TORCH_NAMES = _torch_names(ALEXNET_LAYER_MAP)
#: State-dict module names of the weight layers of bdpy's ``ReferenceNet``.
REFERENCE_NET_TORCH_NAMES = _torch_names(REFERENCE_NET_LAYER_MAP)

#: ``(filters, kernel, stride, "same"/"valid", groups)`` of conv1 ... conv5.
_CONVS = ((96, 11, 4, "valid", 1), (256, 5, 1, "same", 2), (384, 3, 1, "same", 1),
          (384, 3, 1, "same", 2), (256, 3, 1, "same", 2))


def _conv_relu(x, i):
    filters, kernel, stride, padding, groups = _CONVS[i - 1]
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, groups=groups,
                            name=f"conv{i}")(x)
    return keras.layers.ReLU(name=f"relu{i}")(x)


def _norm(x, i):
    return CaffeLRN(local_size=5, alpha=1e-4, beta=0.75, k=1.0, name=f"norm{i}")(x)


def _pool(x, i):
    return keras.layers.MaxPooling2D(3, strides=2, name=f"pool{i}")(x)


def _top(x, name):
    if tuple(x.shape[1:3]) != (6, 6):
        raise ValueError(f"input_shape: {name} with include_top=True needs a 6x6 pool5 "
                         f"(inputs of 227x227 to 230x230), got {tuple(x.shape[1:3])}; use "
                         "include_top=False for other sizes")
    x = keras.layers.Flatten(name="flatten")(x)
    for units, i in ((4096, 6), (4096, 7)):
        x = keras.layers.Dense(units, name=f"fc{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.Dense(1000, name="fc8")(x)
    return keras.layers.Softmax(name="prob")(x)


def _input(input_shape, include_top, name):
    if input_shape is None:
        if include_top:
            raise ValueError(f"input_shape: {name} with include_top=True needs (227, 227, 3)")
        input_shape = (None, None, 3)
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] != 3 or any(
            s is not None and (int(s) != s or s < 67) for s in shape[:2]):
        raise ValueError(f"input_shape: expected (H, W, 3) with H, W >= 67, got {input_shape}")
    return keras.Input(shape=shape, name="data")


def _build(name, pool_first, weights, include_top, input_shape, torch_names, cache_dir):
    inputs = _input(input_shape, include_top, name)
    x = inputs
    for i in (1, 2):
        x = _conv_relu(x, i)
        x = _norm(_pool(x, i), i) if pool_first else _pool(_norm(x, i), i)
    for i in (3, 4, 5):
        x = _conv_relu(x, i)
    x = _pool(x, 5)
    if include_top:
        x = _top(x, name)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        from keras_icnn.models.torch_weights import load_weights_file

        load_weights_file(model, weights, torch_names, name, cache_dir=cache_dir)
    return model


def alexnet(weights=None, include_top=True, input_shape=(227, 227, 3), name="alexnet",
            cache_dir=None):
    """bdpy's ``alexnet`` (Caffe's ``bvlc_alexnet``): ``conv1 -> relu1 -> norm1 -> pool1 ->
    conv2 (2 groups) -> relu2 -> norm2 -> pool2 -> conv3 -> relu3 -> conv4 (2 groups) -> relu4
    -> conv5 (2 groups) -> relu5 -> pool5`` [``-> flatten -> fc6 -> relu6 -> fc7 -> relu7 ->
    fc8 -> prob``].

    Args:
        weights: None (random initialisation), a bdpy ``.pt`` state dict (converted once and
            cached, see :func:`keras_icnn.models.torch_weights.load_weights_file`), or a
            ``.weights.h5`` file saved from this model.
        include_top: include ``flatten`` ... ``prob`` (needs a 6x6 ``pool5``: 227x227 input).
        input_shape: ``(H, W, 3)``, or None for any size without the top.
        name: the Keras model name.
        cache_dir: where ``.pt`` conversions go when the file's directory is not writable.
    """
    return _build(name, False, weights, include_top, input_shape, ALEXNET_TORCH_NAMES,
                  cache_dir)


def reference_net(weights=None, include_top=True, input_shape=(227, 227, 3),
                  name="reference_net", cache_dir=None):
    """bdpy's ``reference_net`` (CaffeNet, Caffe's ``bvlc_reference_caffenet``): as
    :func:`alexnet` but pooling before normalising: ``relu1 -> pool1 -> norm1``, ``relu2 ->
    pool2 -> norm2``.  The arguments are :func:`alexnet`'s."""
    return _build(name, True, weights, include_top, input_shape, REFERENCE_NET_TORCH_NAMES,
                  cache_dir)
