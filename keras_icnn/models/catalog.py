"""The networks by bdpy's model names (``bdpy.dl.torch.models.model_factory``).

* :func:`build` -- the Keras model of a bdpy name, optionally with weights;
* :func:`load_weights` -- a bdpy ``.pt`` state dict (converted once and cached) or a
  ``.weights.h5`` file into such a model: what a cookbook config's ``parameters_file`` names;
* :func:`layer_map` -- bdpy's ``layer_map``: the feature names of the encoders, which are
  also the names of the Keras layers that output those features;
* :func:`torch_layer_names` -- which state-dict keys hold each Keras layer's weights.

Encoders: ``vgg19``, ``alexnet``, ``reference_net``.  Generators: ``relu7generator``,
``relu6generator``, ``pool5generator``, ``relu4generator``, ``relu3generator``,
``norm2generator``, ``norm1generator`` (see :mod:`keras_icnn.models.generators`).
"""
from __future__ import annotations

from keras_icnn.models.alexnet import (ALEXNET_LAYER_MAP, ALEXNET_TORCH_NAMES,
                                       REFERENCE_NET_LAYER_MAP, REFERENCE_NET_TORCH_NAMES,
                                       alexnet, reference_net)
from keras_icnn.models.generators import GENERATOR_SPECS, generator
from keras_icnn.models.generators import torch_layer_names as _generator_torch_names
from keras_icnn.models.torch_weights import load_weights_file
from keras_icnn.models.vgg19 import VGG19_CONV_LAYERS, vgg19

__all__ = ["ENCODER_NAMES", "GENERATOR_NAMES", "MODEL_NAMES", "VGG19_LAYER_MAP", "build",
           "layer_map", "load_weights", "torch_layer_names"]

ENCODER_NAMES = ("vgg19", "alexnet", "reference_net")
GENERATOR_NAMES = tuple(GENERATOR_SPECS)
#: Every name :func:`build` knows, bdpy's ``model_factory`` names.
MODEL_NAMES = ENCODER_NAMES + GENERATOR_NAMES

_VGG19_FEATURES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

#: bdpy's ``layer_map("vgg19")``: feature name -> PyTorch module.
VGG19_LAYER_MAP = {
    **{name: f"features[{i}]" for name, i in zip(VGG19_CONV_LAYERS, _VGG19_FEATURES)},
    "fc6": "classifier[0]", "relu6": "classifier[1]", "fc7": "classifier[3]",
    "relu7": "classifier[4]", "fc8": "classifier[6]",
}

_LAYER_MAPS = {"vgg19": VGG19_LAYER_MAP, "alexnet": ALEXNET_LAYER_MAP,
               "reference_net": REFERENCE_NET_LAYER_MAP}


def _check_name(name):
    if name not in MODEL_NAMES:
        raise ValueError(f"name: unknown model {name!r}; expected one of {list(MODEL_NAMES)}")
    return name


def layer_map(name) -> dict:
    """bdpy's ``layer_map(name)`` of an encoder: ``{feature name: PyTorch module}``.  The
    Keras models have a layer of each feature name, with the same output (NHWC)."""
    if _check_name(name) not in _LAYER_MAPS:
        raise ValueError(f"name: {name!r} is a generator; layer maps exist for the encoders "
                         f"{list(ENCODER_NAMES)}")
    return dict(_LAYER_MAPS[name])


def torch_layer_names(name) -> dict:
    """``{Keras layer: (state-dict module name, alias, ...)}`` of the model ``name``."""
    if _check_name(name) == "vgg19":
        return {layer: (module.replace("[", ".").rstrip("]"),)
                for layer, module in VGG19_LAYER_MAP.items() if not layer.startswith("relu")}
    if name == "alexnet":
        return dict(ALEXNET_TORCH_NAMES)
    if name == "reference_net":
        return dict(REFERENCE_NET_TORCH_NAMES)
    return _generator_torch_names(GENERATOR_SPECS[name])


def load_weights(model, path, name, cache_dir=None) -> str:
    """Load ``path`` into ``model`` (built by :func:`build` ``(name)``): a bdpy ``.pt`` state
    dict, converted on first use and cached next to it (or under ``cache_dir``, default the
    Keras cache ``~/.keras/keras_icnn/torch``, when its directory is not writable), or a
    ``.weights.h5`` file.  Returns the ``.weights.h5`` file loaded.

    Raises ``ValueError`` for a state dict that does not fit (missing or unexpected keys, a
    shape mismatch: the message names the key) or a damaged file (named),
    ``FileNotFoundError``, and :class:`~keras_icnn.models.torch_weights.TorchUnavailableError`
    when a ``.pt`` must be converted without PyTorch installed.
    """
    return load_weights_file(model, path, torch_layer_names(name), _check_name(name),
                             cache_dir=cache_dir)


def build(name, weights=None, cache_dir=None, **kwargs):
    """The Keras model of bdpy's ``model_factory(name)``.

    Args:
        name: one of :data:`MODEL_NAMES`.
        weights: None (random), a bdpy ``.pt`` state dict or a ``.weights.h5`` file (see
            :func:`load_weights`).
        cache_dir: see :func:`load_weights`.
        **kwargs: ``include_top``, ``input_shape`` for the encoders
            (:func:`~keras_icnn.models.vgg19`, :func:`~keras_icnn.models.alexnet`,
            :func:`~keras_icnn.models.reference_net`).
    """
    builders = {"vgg19": vgg19, "alexnet": alexnet, "reference_net": reference_net}
    if _check_name(name) in builders:
        model = builders[name](weights=None, **kwargs)
    elif kwargs:
        raise ValueError(f"{name}: unexpected argument(s) {sorted(kwargs)}")
    else:
        model = generator(name)
    if weights is not None:
        load_weights(model, weights, name, cache_dir=cache_dir)
    return model
