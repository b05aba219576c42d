"""Any Keras optimiser through the same loop: transforms, jitter, bounds, state."""
import keras
import numpy as np
import pytest

from keras_icnn import Jitter, KerasOptimizer, Pixels, Reconstructor, transforms
from keras_icnn.models import extract_features
from keras_icnn.params import Generator, valid_pixel_range

from engine_cases import problem

LAYERS = ["c1", "c2", "fc"]


@pytest.fixture(scope="module")
def case():
    return problem(batch=1)


@pytest.mark.parametrize("make", [lambda: keras.optimizers.Adam(learning_rate=4.0),
                                  lambda: keras.optimizers.AdamW(learning_rate=4.0,
                                                                 weight_decay=0.01)])
def test_adam_and_adamw_reconstruct_pixels_within_bounds(case, make):
    net, _, feats = case
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=make(), seed=0,
                        layer_weight="inverse_norm")
    history = rec.fit(feats, iterations=30, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    lo, hi = valid_pixel_range()
    z = rec.z.numpy()
    assert np.all(z >= lo) and np.all(z <= hi)               # bounds kept after every step
    assert "learning_rate" in history.history


def test_adamw_on_a_generator_latent(case):
    """The lab's newer pipeline: AdamW on the generator's input, bounds 0 .. upper."""
    net, gen, feats = case
    rec = Reconstructor(net, param=Generator(gen, lower=0.0, upper=3.0),
                        optimizer=keras.optimizers.AdamW(learning_rate=0.1), seed=0,
                        initial="zeros")
    history = rec.fit(feats, iterations=25, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    z = rec.z.numpy()
    assert z.min() >= 0.0 and z.max() <= 3.0


def test_transforms_and_jitter_are_applied(case):
    net, _, feats = case
    # a full decay after every step leaves the mean image (zeros in Caffe space)
    rec = Reconstructor(net, optimizer=KerasOptimizer(keras.optimizers.SGD(1.0),
                                                      transforms=[transforms.Decay(1.0)]))
    rec.fit(feats, iterations=2, verbose=0)
    np.testing.assert_array_equal(rec.z.numpy(), 0.0)
    jit = Reconstructor(net, optimizer=KerasOptimizer(keras.optimizers.Adam(1.0),
                                                      jitter=Jitter(4, seed=1)), seed=0)
    plain = Reconstructor(net, optimizer=KerasOptimizer(keras.optimizers.Adam(1.0)), seed=0)
    jit.fit(feats, iterations=3, verbose=0)
    plain.fit(feats, iterations=3, verbose=0)
    assert not np.array_equal(jit.z.numpy(), plain.z.numpy())


def test_each_fit_starts_with_fresh_moments(case):
    net, _, feats = case
    opt = KerasOptimizer(keras.optimizers.Adam(1.0))
    rec = Reconstructor(net, optimizer=opt, seed=0)
    rec.fit(feats, iterations=3, verbose=0)
    first = rec.images
    rec.fit(feats, iterations=3, verbose=0)
    np.testing.assert_array_equal(rec.images, first)
    assert int(opt.get_state()["iteration"]) == 3
    assert opt.optimizer.iterations.numpy() == 0             # the user's object is untouched


def test_keras_optimizer_by_name_and_bad_input():
    from keras_icnn import optimizers
    assert isinstance(optimizers.get("adamw"), KerasOptimizer)
    assert isinstance(optimizers.get(keras.optimizers.SGD(0.1)), KerasOptimizer)
    with pytest.raises(ValueError, match="keras.optimizers.Optimizer"):
        KerasOptimizer("adam ")
