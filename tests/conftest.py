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
