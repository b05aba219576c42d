"""The four published variants (and Keras optimisers) on tiny networks, for the engine tests."""
import keras
import numpy as np

from keras_icnn import Reconstructor, imaging
from keras_icnn.models import extract_features
from keras_icnn.params import Generator

from conftest import tiny_cnn, tiny_generator

LAYERS = ["c1", "c2", "fc"]

#: name -> (param kind, optimizer)
VARIANTS = {
    "gd": ("pixels", "gd"),
    "lbfgs": ("pixels", "lbfgs"),
    "lbfgs-b": ("pixels", "lbfgs-b"),
    "dgn-gd": ("latent", "gd"),
    "dgn-lbfgs-b": ("latent", "lbfgs-b"),
    "adamw": ("pixels", "adamw"),
}


def problem(batch=2):
    """``(encoder, generator, features)``: targets the generator can make."""
    net, gen = tiny_cnn(), tiny_generator()
    z = np.abs(np.random.default_rng(2).normal(1, 1, (batch, 8))).astype(np.float32)
    rgb = imaging.caffe_to_rgb(np.asarray(gen(z))[:, 4:36, 4:36])
    return net, gen, extract_features(net, rgb, LAYERS)


def reconstructor(variant, net, gen):
    kind, opt = VARIANTS[variant]
    if opt == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=2.0)
    param = Generator(gen, lower=0.0, upper=3.0) if kind == "latent" else "pixels"
    return Reconstructor(net, param=param, optimizer=opt, seed=3,
                         layer_weight="inverse_norm")
