import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import Reconstructor, models
from keras_icnn.models import extract_features

CONVS = ["conv1", "conv2", "conv3"]
ROUNDS = 8


def _fused_cnn(seed=0):
    """Three convolutions with fused relu activations, 32x32 input."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3), name="data")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv3")(x)
    return keras.Model(inp, x, name="fused")


def _activations(model):
    return {l.name: getattr(l, "activation", None) for l in model.layers}


def _images(n, seed):
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype(np.float32)


def test_expose_preactivations_functional_and_sequential():
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(5, activation="tanh", name="dense")(x)
    model = keras.Model(inp, out)
    seq = keras.Sequential([keras.Input((16, 16, 3)),
                            keras.layers.Conv2D(4, 3, activation="elu", name="c"),
                            keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(3, activation="softmax", name="d")])
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    for src, layer, act in ((model, "conv", tf.nn.relu), (seq, "c", tf.nn.elu)):
        split = models.expose_preactivations(src)
        np.testing.assert_allclose(np.asarray(split(x)), np.asarray(src(x)), atol=1e-6)
        names = [l.name for l in split.layers]
        assert layer in names and f"{layer}_activation" in names
        f = models.feature_extractor(split, [layer, f"{layer}_activation"])(x)
        pre = np.asarray(f[layer])
        assert pre.min() < 0  # pre-activation
        np.testing.assert_allclose(np.asarray(act(pre)), np.asarray(f[f"{layer}_activation"]),
                                   atol=1e-6)
        # weights are shared, not copied
        assert split.get_layer(layer).weights[0] is src.get_layer(layer).weights[0]


def test_expose_preactivations_resnet50():
    r = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3))
    split = models.expose_preactivations(r)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(split(x)), np.asarray(r(x)), atol=1e-6)
    assert "predictions_activation" in [l.name for l in split.layers]


def test_expose_preactivations_rejects_non_models():
    with pytest.raises(ValueError, match="keras.Model"):
        models.expose_preactivations("vgg19")


def _fused_layer(kind):
    L = keras.layers
    if kind == "Dense":
        return L.Dense(5, activation="relu", name="x")
    if kind == "EinsumDense":
        return L.EinsumDense("...c,cd->...d", (5,), bias_axes="d", activation="relu", name="x")
    if kind == "GroupedConv2D":
        return L.Conv2D(4, 3, groups=2, activation="relu", name="x")
    if kind.startswith("Depthwise"):
        return getattr(L, kind)(3, activation="relu", name="x")
    return getattr(L, kind)(5, 3, activation="relu", name="x")


@pytest.mark.parametrize("kind, rank", [
    ("Conv1D", 1), ("Conv2D", 2), ("Conv3D", 3), ("Conv1DTranspose", 1),
    ("Conv2DTranspose", 2), ("Conv3DTranspose", 3), ("SeparableConv1D", 1),
    ("SeparableConv2D", 2), ("DepthwiseConv1D", 1), ("DepthwiseConv2D", 2), ("Dense", 1),
    ("EinsumDense", 2), ("GroupedConv2D", 2)])
def test_preactivation_is_the_layers_own_linear_output(kind, rank):
    """Exactly the layer's own computation without its activation, for each fused type."""
    keras.utils.set_random_seed(1)
    shape = (6,) * rank + (4,)
    layer = _fused_layer(kind)
    inp = keras.Input(shape)
    src = keras.Model(inp, layer(inp))
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype(np.float32)
    before = np.asarray(src(x))
    split = models.expose_preactivations(src)
    pre = np.asarray(models.feature_extractor(split, ["x"])(x)["x"])
    layer.activation = keras.activations.linear   # the layer's own linear computation
    expected = np.asarray(layer(x))
    layer.activation = keras.activations.relu
    np.testing.assert_array_equal(pre, expected)
    assert pre.min() < 0
    np.testing.assert_array_equal(np.asarray(split(x)), before)


def test_source_model_is_never_changed():
    src = _fused_cnn()
    seq = keras.Sequential([keras.Input((32, 32, 3))] + [
        keras.layers.Conv2D(4, 3, activation="relu", name=f"s{i}") for i in range(2)])
    x = _images(2, 0)
    for model in (src, seq):
        acts, out = _activations(model), np.asarray(model(x))
        split = models.expose_preactivations(model)
        assert _activations(model) == acts
        np.testing.assert_array_equal(np.asarray(model(x)), out)
        split(x)
        split.predict(x, verbose=0)
        models.feature_extractor(split, [l.name for l in model.layers[-2:]])(x)
        assert _activations(model) == acts
        np.testing.assert_array_equal(np.asarray(model(x)), out)


def test_weights_stay_shared(tmp_path):
    src = _fused_cnn()
    split = models.expose_preactivations(src)
    x = _images(1, 1)
    pre = models.feature_extractor(split, ["conv1"])
    kernel = src.get_layer("conv1").kernel
    assert split.get_layer("conv1").weights[0] is kernel
    kernel.assign(2.0 * np.asarray(kernel))
    bias = src.get_layer("conv1").bias
    bias.assign(np.full(bias.shape, 0.5, np.float32))
    np.testing.assert_array_equal(np.asarray(pre(x)["conv1"]),
                                  np.asarray(tf.nn.conv2d(x, kernel, 1, "SAME") + 0.5))
    np.testing.assert_array_equal(np.asarray(split(x)), np.asarray(src(x)))
    # loading weights into the source updates the exposed model too
    other = _fused_cnn(seed=7)
    src.set_weights(other.get_weights())
    np.testing.assert_array_equal(np.asarray(split(x)), np.asarray(other(x)))
    # and loading weights into the exposed model updates the source
    path = str(tmp_path / "exposed.weights.h5")
    models.expose_preactivations(_fused_cnn(seed=9)).save_weights(path)
    split.load_weights(path)
    np.testing.assert_array_equal(np.asarray(src(x)), np.asarray(_fused_cnn(seed=9)(x)))
    assert len(split.weights) == len(src.weights)


def test_layer_that_cannot_be_recreated_gives_clear_error():
    class Odd(keras.layers.Conv2D):
        def __init__(self, filters, extra, **kwargs):  # extra is not in get_config()
            super().__init__(filters, 3, activation="relu", **kwargs)
            self.extra = extra

    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, Odd(4, 1, name="odd")(inp))
    with pytest.raises(ValueError, match="'odd': cannot re-create it from its get_config"):
        models.expose_preactivations(model)
    assert model.get_layer("odd").activation is keras.activations.relu


def _fit(encoder, optimizer, target, initial):
    rec = Reconstructor(encoder, optimizer=optimizer, seed=0)
    rec.fit(target, iterations=10, initial=initial, verbose=0)
    return rec.images


def _fit_together(encoder, optimizer, targets, initial):
    """Both fits at once, in two threads, on the same encoder."""
    images, errors, start = [None] * len(targets), [], threading.Barrier(len(targets))

    def run(i):
        try:
            start.wait()
            images[i] = _fit(encoder, optimizer, targets[i], initial)
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return images


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs-b"])
def test_concurrent_fits_share_an_exposed_encoder(optimizer):
    """Two threads fitting different targets with one exposed encoder give, bit for bit, the
    images of the same fits run one after the other, and leave the source model as it was."""
    src = _fused_cnn()
    encoder = models.expose_preactivations(src)
    probe = _images(2, 3)
    acts, out = _activations(src), np.asarray(src(probe))
    targets = [extract_features(encoder, img, CONVS) for img in _images(2, 4)]
    initial = _images(1, 5)[0]
    alone = [_fit(encoder, optimizer, t, initial) for t in targets]
    for _ in range(ROUNDS):  # a race shows up in about 2 rounds out of 3
        for a, b in zip(alone, _fit_together(encoder, optimizer, targets, initial)):
            np.testing.assert_array_equal(b, a)
        assert _activations(src) == acts
        np.testing.assert_array_equal(np.asarray(src(probe)), out)
