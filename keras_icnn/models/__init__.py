"""The networks: VGG19 with its pre-activation outputs, any Keras CNN's pre-activations, feature
extraction, and the DeepSim generators."""
from keras_icnn.models import generators
from keras_icnn.models.features import (check_layers, extract_features, feature_extractor,
                                        get_cnn_features, sort_layers)
from keras_icnn.models.preactivations import PreActivation, expose_preactivations
from keras_icnn.models.vgg19 import (KERAS_VGG19_NAMES, VGG19_CONV_LAYERS, VGG19_FC_LAYERS,
                                     VGG19_LAYERS, copy_keras_vgg19_weights, vgg19)
from keras_icnn.errors import WeightsUnavailableError

__all__ = ["VGG19_CONV_LAYERS", "VGG19_FC_LAYERS", "VGG19_LAYERS", "KERAS_VGG19_NAMES", "vgg19",
           "copy_keras_vgg19_weights", "expose_preactivations", "PreActivation",
           "feature_extractor", "extract_features", "get_cnn_features", "sort_layers",
           "check_layers", "generators", "WeightsUnavailableError"]
