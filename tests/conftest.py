import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def tiny_cnn(size=32, seed=0, name="tiny"):
    """A small VGG-like network with separate activations (layers c1, r1, p1, c2, r2, fc)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="data")
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.ReLU(name="r1")(x)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(12, 3, padding="same", name="c2")(x)
    x = keras.layers.ReLU(name="r2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(10, name="fc")(x)
    return keras.Model(inp, x, name=name)


def tiny_generator(latent=8, out=40, seed=0):
    """A small generator: latent [8] -> image [out, out, 3] (Caffe-space scale)."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((latent,), name="feat")
    x = keras.layers.Dense(5 * 5 * 8, name="defc")(z)
    x = keras.layers.LeakyReLU(0.3)(x)
    x = keras.layers.Reshape((5, 5, 8))(x)
    x = keras.layers.Conv2DTranspose(8, 4, strides=2, padding="same", name="deconv1")(x)
    x = keras.layers.LeakyReLU(0.3)(x)
    x = keras.layers.Conv2DTranspose(3, 4, strides=(out // 10), padding="same",
                                     name="deconv0")(x)
    x = keras.layers.Rescaling(60.0, name="generated")(x)
    return keras.Model(z, x, name="gen")


@pytest.fixture(scope="session")
def net():
    return tiny_cnn()


@pytest.fixture
def rgb_image():
    rng = np.random.default_rng(1)
    # a smooth, structured picture: gradients + a square
    y, x = np.mgrid[0:32, 0:32] / 31.0
    img = np.stack([255 * x, 255 * y, 255 * (1 - x) * y], -1)
    img[8:20, 10:22] = [200, 40, 90]
    return (img + rng.normal(0, 5, img.shape)).clip(0, 255).astype(np.float32)
