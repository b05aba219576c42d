"""The networks: VGG19 with its pre-activation outputs, AlexNet and CaffeNet, any Keras CNN's
pre-activations, feature extraction, the DeepSim generators, and bdpy's PyTorch models by name
(:func:`build`, :func:`load_weights`: ``.pt`` state dicts converted to Keras weights)."""
from keras_icnn.models import generators, precision, torch_weights
from keras_icnn.models.alexnet import (ALEXNET_LAYER_MAP, REFERENCE_NET_LAYER_MAP, alexnet,
                                       reference_net)
from keras_icnn.models.catalog import (ENCODER_NAMES, GENERATOR_NAMES, MODEL_NAMES,
                                       VGG19_LAYER_MAP, build, layer_map, load_weights,
                                       torch_layer_names)
from keras_icnn.models.features import (check_layers, extract_features, feature_extractor,
                                        get_cnn_features, sort_layers)
from keras_icnn.models.generators import generator
from keras_icnn.models.preactivations import PreActivation, expose_preactivations
from keras_icnn.models.torch_weights import TorchUnavailableError
from keras_icnn.models.vgg19 import (KERAS_VGG19_NAMES, VGG19_CONV_LAYERS, VGG19_FC_LAYERS,
                                     VGG19_LAYERS, copy_keras_vgg19_weights, vgg19)
from keras_icnn.errors import WeightsUnavailableError

__all__ = ["VGG19_CONV_LAYERS", "VGG19_FC_LAYERS", "VGG19_LAYERS", "KERAS_VGG19_NAMES", "vgg19",
           "copy_keras_vgg19_weights", "expose_preactivations", "PreActivation",
           "feature_extractor", "extract_features", "get_cnn_features", "sort_layers",
           "check_layers", "generators", "WeightsUnavailableError",
           "alexnet", "reference_net", "generator", "build", "load_weights", "layer_map",
           "torch_layer_names", "MODEL_NAMES", "ENCODER_NAMES", "GENERATOR_NAMES",
           "VGG19_LAYER_MAP", "ALEXNET_LAYER_MAP", "REFERENCE_NET_LAYER_MAP",
           "torch_weights", "TorchUnavailableError", "precision"]
