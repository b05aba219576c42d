"""Image priors: configs that round-trip (plain JSON values, bit-identical losses, gradients and
weights) and clear errors for bad configs."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from keras_icnn import config

from config_cases import roundtrip
from keras_icnn.objective.priors import PNorm, TotalVariation
from keras_icnn.optimizers.schedules import KerasSchedule, Linear

SETTINGS = settings(max_examples=25, deadline=None)
IMAGE = tf.constant(np.random.default_rng(0).normal(0, 60, (2, 10, 10, 3)).astype(np.float32))
TOTAL = 10


def results(prior):
    """The prior's loss and gradient on ``IMAGE`` and its weights at a few steps, as bytes."""
    with tf.GradientTape() as tape:
        tape.watch(IMAGE)
        loss = prior.loss(IMAGE)
        total = tf.reduce_sum(loss)
    grad = tape.gradient(total, IMAGE)
    weights = [prior.weight(tf.constant(t), TOTAL).numpy().tobytes() for t in (0, 4, 9)]
    return [loss.numpy().tobytes(), grad.numpy().tobytes()] + weights


def assert_same_results(prior):
    for other in roundtrip(prior):
        assert results(other) == results(prior)


WEIGHTS = st.one_of(st.floats(0.0, 10.0), st.tuples(st.floats(0.0, 10.0), st.floats(0.0, 10.0)))


@SETTINGS
@given(p=st.one_of(st.integers(1, 6), st.floats(1.0, 6.0)), weight=WEIGHTS,
       normalize=st.sampled_from(["icnn", None]))
def test_p_norm_roundtrip(p, weight, normalize):
    prior = PNorm(p, weight, normalize)
    cfg = prior.get_config()
    assert cfg["p"] == float(p) and cfg["normalize"] == normalize
    assert config.deserialize(cfg["weight"]).get_config() == prior.weight.get_config()
    assert_same_results(prior)


@SETTINGS
@given(beta=st.one_of(st.just(2), st.floats(0.5, 3.0)), weight=WEIGHTS,
       normalize=st.sampled_from(["icnn", None]))
def test_total_variation_roundtrip(beta, weight, normalize):
    prior = TotalVariation(beta, weight, normalize)
    assert prior.get_config()["beta"] == float(beta)
    assert_same_results(prior)


def test_config_contents():
    cfg = PNorm(3, weight=(0.5, 0.1)).get_config()
    assert cfg == {"p": 3.0, "weight": config.serialize(Linear(0.5, 0.1)), "normalize": "icnn"}
    assert cfg["weight"]["registered_name"] == "keras_icnn>Linear"
    assert config.serialize(TotalVariation())["registered_name"] == "keras_icnn>TotalVariation"


def test_keras_schedule_weight_roundtrip():
    inner = keras.optimizers.schedules.ExponentialDecay(1.0, 3, 0.5)
    prior = TotalVariation(weight=KerasSchedule(inner))
    assert prior.get_config()["weight"]["config"]["schedule"]["class_name"] == "ExponentialDecay"
    assert_same_results(prior)


@pytest.mark.parametrize("cls, cfg, match", [
    (PNorm, {"p": 0.5}, "p: expected a number >= 1"),
    (PNorm, {"p": "3"}, "p: expected a number >= 1"),
    (PNorm, {"p": float("inf")}, "p: expected a number >= 1"),
    (PNorm, {"p": 3, "beta": 2}, "PNorm config: unknown key 'beta'"),
    (PNorm, {"weight": -1.0}, r"p_norm weight: -1.0 is outside its valid range \[0.0, inf\]"),
    (PNorm, {"weight": "0.5"}, "p_norm weight: expected a number"),
    (PNorm, {"normalize": "l2"}, "normalize: expected 'icnn' or None"),
    (TotalVariation, {"beta": 0}, "TVbeta: expected a positive number"),
    (TotalVariation, {"beta": True}, "TVbeta: expected a positive number"),
    (TotalVariation, {"weight": {"class_name": "Nope", "config": {}}},
     "tv_norm weight: cannot rebuild 'Nope'"),
    (TotalVariation, {"weight": {"value": 1.0}}, "tv_norm weight: expected a serialised piece"),
    (TotalVariation, {"p": 3}, "TotalVariation config: unknown key 'p'"),
    (TotalVariation, None, "TotalVariation config: expected a dict"),
])
def test_bad_configs(cls, cfg, match):
    with pytest.raises(ValueError, match=match):
        cls.from_config(cfg)
