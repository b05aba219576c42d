"""precision= (keras_icnn.models.precision): low-precision twins on the user's variables, the
float32 boundary with float16 gradient scaling, and mixed runs ending close to float32 runs.

Tolerances: bfloat16 keeps 8 significant bits (relative rounding 2**-8 = 0.4% per operation),
float16 11 bits; 30 iterations of momentum GD compound these roundings, so a mixed run is not
the float32 run to the bit.  It must end near it: per-image pixel correlation with the float32
reconstruction above 0.99 (measured 0.9986-0.9994 for GD and DGN-GD) and, for pixel GD, the
final loss within 15% of the float32 one (measured within 7%).
"""
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))

from engine_cases import VARIANTS, problem  # noqa: E402
from keras_icnn import Reconstructor  # noqa: E402
from keras_icnn.models import feature_extractor  # noqa: E402
from keras_icnn.models.precision import (Float32Boundary, check_precision,  # noqa: E402
                                         compute_dtype, low_precision_twin)
from keras_icnn.params import Generator  # noqa: E402

from conftest import tiny_cnn  # noqa: E402

MIXED = ["mixed_bfloat16", "mixed_float16"]


@pytest.fixture(scope="module")
def case():
    return problem()


def _run(variant, precision, case, iterations=30):
    net, gen, feats = case
    kind, opt = VARIANTS[variant]
    param = Generator(gen, lower=0.0, upper=3.0) if kind == "latent" else "pixels"
    rec = Reconstructor(net, param=param, optimizer=opt, seed=3, layer_weight="inverse_norm",
                        precision=precision)
    rec.fit(feats, iterations=iterations, verbose=0)
    return rec


def _corr(a, b):
    return [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]


@pytest.mark.parametrize("precision", MIXED)
@pytest.mark.parametrize("variant", ["gd", "dgn-gd"])
def test_mixed_run_ends_close_to_float32(case, variant, precision):
    ref, rec = _run(variant, "float32", case), _run(variant, precision, case)
    assert min(_corr(rec.images, ref.images)) > 0.99
    if variant == "gd":
        np.testing.assert_allclose(rec.loss_history_[-1], ref.loss_history_[-1], rtol=0.15)
    assert rec.z.dtype == tf.float32 and rec.images.dtype == np.float32


@pytest.mark.parametrize("precision", MIXED)
def test_mixed_lbfgs_b_reduces_the_loss(case, precision):
    rec = _run("lbfgs-b", precision, case, iterations=10)
    assert np.all(rec.loss_history_[-1] < 0.5 * rec.loss_history_[0])


def test_float32_is_the_default_and_unchanged(case):
    net, _, feats = case
    a = Reconstructor(net, seed=3)
    b = Reconstructor(net, seed=3, precision="float32")
    a.fit(feats, iterations=5, verbose=0)
    b.fit(feats, iterations=5, verbose=0)
    assert a.precision == "float32"
    np.testing.assert_array_equal(a.images, b.images)


@pytest.mark.parametrize("precision", MIXED)
def test_users_model_is_not_changed(precision):
    net = tiny_cnn()
    before = [(v.path, v.dtype, v.numpy().copy()) for v in net.weights]
    policies = [layer.dtype_policy.name for layer in net.layers]
    twin = low_precision_twin(net, precision)
    assert [layer.dtype_policy.name for layer in net.layers] == policies
    assert [(v.path, v.dtype) for v in net.weights] == [b[:2] for b in before]
    assert all(layer.compute_dtype == compute_dtype(precision)
               for layer in twin.layers[1:])
    # the same variable objects: weights loaded into the user's model are seen by the twin
    assert {id(v) for v in twin.weights} == {id(v) for v in net.weights}
    net.get_layer("c1").kernel.assign(np.zeros(net.get_layer("c1").kernel.shape))
    out = Float32Boundary(feature_extractor(twin, ["c1"]), precision)(np.ones((1, 32, 32, 3)))
    assert out["c1"].dtype == tf.float32
    np.testing.assert_allclose(out["c1"], np.broadcast_to(net.get_layer("c1").bias.numpy(),
                                                          out["c1"].shape), atol=1e-2)
    for v, (_, _, value) in zip(net.weights, before):
        v.assign(value)


def test_float16_gradient_scaling_prevents_underflow():
    """A gradient of ~1e-10 per feature is zero in float16 (smallest subnormal 6e-8); the
    boundary scales it into range and divides it back in float32."""
    net = tiny_cnn()
    x = tf.Variable(np.random.default_rng(0).normal(0, 50, (2, 32, 32, 3)).astype(np.float32))

    def grad(extractor):
        with tf.GradientTape() as tape:
            loss = 1e-12 * tf.reduce_sum(tf.square(extractor(x)["c2"]))
        return tape.gradient(loss, x).numpy()

    ref = grad(feature_extractor(net, ["c2"]))
    twin = feature_extractor(low_precision_twin(net, "mixed_float16"), ["c2"])
    unscaled = grad(lambda im: {k: tf.cast(v, tf.float32)
                                for k, v in twin(tf.cast(im, tf.float16)).items()})
    scaled = grad(Float32Boundary(twin, "mixed_float16"))
    assert np.all(unscaled == 0) and np.any(ref != 0)
    assert np.corrcoef(scaled.ravel(), ref.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(np.abs(scaled).mean(), np.abs(ref).mean(), rtol=0.01)


def test_float16_overflow_reaches_the_nan_check():
    net = tiny_cnn()
    twin = Float32Boundary(feature_extractor(low_precision_twin(net, "mixed_float16"), ["fc"]),
                           "mixed_float16")
    out = twin(np.full((1, 32, 32, 3), 1e6, np.float32))["fc"]  # beyond float16's 65504
    assert not np.all(np.isfinite(out))


def test_config_round_trip(case):
    net, _, _ = case
    rec = Reconstructor(net, precision="mixed_bfloat16", seed=1)
    cfg = rec.get_config()
    assert cfg["precision"] == "mixed_bfloat16"
    again = Reconstructor.from_config(cfg, net)
    assert again.precision == "mixed_bfloat16" and again.get_config() == cfg


@pytest.mark.parametrize("bad", ["float16", "bfloat16", "mixed", None, 16])
def test_bad_precision_errors(case, bad):
    with pytest.raises(ValueError, match="precision: expected one of"):
        Reconstructor(case[0], precision=bad)
    with pytest.raises(ValueError, match="precision"):
        check_precision(bad)


def test_twin_of_subclassed_model_errors_clearly():
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="precision"):
        low_precision_twin(Sub(), "mixed_bfloat16")


@pytest.mark.parametrize("kind", ["sequential", "preactivations"])
def test_twin_of_other_model_kinds(kind):
    from keras_icnn.models import expose_preactivations
    keras.utils.set_random_seed(0)
    layers = [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="c"),
              keras.layers.Flatten(), keras.layers.Dense(3, activation="relu", name="d")]
    net = keras.Sequential(layers)
    if kind == "preactivations":
        net = expose_preactivations(net)
    twin = low_precision_twin(net, "mixed_bfloat16")
    assert {id(v) for v in twin.weights} == {id(v) for v in net.weights}
    x = np.random.default_rng(0).normal(0, 50, (2, 16, 16, 3)).astype(np.float32)
    out = Float32Boundary(feature_extractor(twin, ["d"]), "mixed_bfloat16")(x)["d"]
    ref = feature_extractor(net, ["d"])(x)["d"]
    np.testing.assert_allclose(out, ref, rtol=0.05, atol=0.05 * float(np.abs(ref).max()))
