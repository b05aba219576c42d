"""Step transforms and jitter: configs that round-trip (plain JSON values, bit-identical results
on a fixed tensor and context) and clear errors for bad configs."""
import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from keras_icnn import config

from config_cases import roundtrip
from keras_icnn.optimizers.jitter import Jitter
from keras_icnn.optimizers.schedules import Constant, Linear
from keras_icnn.optimizers.transforms import (ClipExtreme, ClipSmallContribution, ClipSmallNorm,
                                              ClipToBounds, Context, Decay, GaussianBlur)

SETTINGS = settings(max_examples=25, deadline=None)
SHAPE = (2, 12, 12, 3)
TOTAL = 8
Z = tf.constant(np.random.default_rng(0).normal(0, 50, SHAPE).astype(np.float32))
GRAD = tf.constant(np.random.default_rng(1).normal(0, 1, SHAPE).astype(np.float32))


def outputs(transform, steps=(0, 3, 7)):
    """The transform applied to ``Z`` at ``steps`` with a fixed context, as raw bytes."""
    transform.build(SHAPE, TOTAL)
    return [transform(Z, Context(step=tf.constant(t), total=tf.constant(TOTAL),
                                 grad=GRAD)).numpy().tobytes() for t in steps]


def assert_same_outputs(piece):
    for other in roundtrip(piece):
        assert outputs(other) == outputs(piece)


def schedules(low, high):
    """Numbers, (start, end) pairs and Schedule objects within [low, high]."""
    x = st.floats(low, high, allow_nan=False)
    return st.one_of(x, st.tuples(x, x), x.map(Constant), st.tuples(x, x).map(lambda p:
                                                                                Linear(*p)))


@SETTINGS
@given(pct=schedules(0.0, 100.0), every=st.integers(1, 5),
       cls=st.sampled_from([ClipExtreme, ClipSmallNorm, ClipSmallContribution]))
def test_percentile_clips_roundtrip(pct, every, cls):
    t = cls(pct, every)
    assert set(t.get_config()) == {"pct", "every"} and t.get_config()["every"] == every
    assert_same_outputs(t)


@SETTINGS
@given(rate=schedules(0.0, 1.0))
def test_decay_roundtrip(rate):
    assert_same_outputs(Decay(rate))


@SETTINGS
@given(sigma=schedules(0.0, 2.5), truncate=st.floats(0.0, 4.0))
def test_gaussian_blur_roundtrip(sigma, truncate):
    t = GaussianBlur(sigma, truncate)
    assert t.get_config()["truncate"] == truncate
    assert_same_outputs(t)


BOUND_SHAPES = [(), (3,), (12, 1, 3), SHAPE[1:]]


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), lo_shape=st.sampled_from(BOUND_SHAPES + [None]),
       hi_shape=st.sampled_from(BOUND_SHAPES + [None]))
def test_clip_to_bounds_roundtrip(seed, lo_shape, hi_shape):
    rng = np.random.default_rng(seed)
    lo = None if lo_shape is None else rng.normal(-40, 20, lo_shape)
    hi = None if hi_shape is None else rng.normal(40, 20, hi_shape)
    if lo is not None and hi is not None:
        hi = np.maximum(lo, hi)
    t = ClipToBounds(lo, hi)
    cfg = t.get_config()
    for key, b in (("lower", lo), ("upper", hi)):
        assert cfg[key] is None if b is None else np.shape(cfg[key]) == np.shape(b)
    assert_same_outputs(t)


def test_clip_to_bounds_config_and_clip():
    t = ClipToBounds(0, np.array([1.0, 2.0, 3.0]))
    assert t.get_config() == {"lower": 0.0, "upper": [1.0, 2.0, 3.0]}
    assert ClipToBounds().get_config() == {"lower": None, "upper": None}
    z = tf.constant([[-1.0, 1.5, 4.0]])
    np.testing.assert_array_equal(t.clip(z), [[0.0, 1.5, 3.0]])
    np.testing.assert_array_equal(ClipToBounds(None, 1.0).clip(z), [[-1.0, 1.0, 1.0]])


@SETTINGS
@given(size=st.integers(0, 40), seed=st.integers(-2 ** 62, 2 ** 62))
def test_jitter_roundtrip(size, seed):
    j = Jitter(size, seed)
    assert j.get_config() == {"size": size, "seed": seed}
    for other in roundtrip(j):
        for t in (0, 1, 9):
            a, b = other.offsets(t), j.offsets(t)
            assert [int(v) for v in a] == [int(v) for v in b]
            assert np.array_equal(other.shift(Z, *a), j.shift(Z, *b))


@pytest.mark.parametrize("cls, cfg, match", [
    (ClipExtreme, {"pct": 1.0, "every": 4, "often": 2}, "ClipExtreme config: unknown key "
                                                        "'often'"),
    (ClipExtreme, {"pct": 150.0, "every": 4}, "clip_extreme percentage: 150.0 is outside"),
    (ClipSmallNorm, {"pct": (1.0, 101.0)}, "clip_small_norm percentage: 101.0 is outside"),
    (ClipSmallContribution, {"every": 0}, "clip_small_contribution_every: expected a positive"),
    (ClipSmallNorm, {"every": "4"}, "clip_small_norm_every: expected a positive integer"),
    (ClipExtreme, {"pct": "1"}, "clip_extreme percentage: expected a number"),
    (ClipExtreme, {"pct": {"class_name": "Nope", "config": {}}}, "cannot rebuild 'Nope'"),
    (Decay, {"rate": 2.0}, r"decay: 2.0 is outside its valid range \[0.0, 1.0\]"),
    (Decay, {"rate": config.serialize(Constant(-0.5))}, "decay: -0.5 is outside"),
    (Decay, {"decay": 0.5}, "Decay config: unknown key 'decay'"),
    (GaussianBlur, {"sigma": -1.0}, "sigma: -1.0 is outside"),
    (GaussianBlur, {"truncate": "4"}, "truncate: expected a finite non-negative number"),
    (GaussianBlur, {"truncate": -1.0}, "truncate: expected a finite non-negative number"),
    (ClipToBounds, {"lower": "low"}, "lower: expected a number"),
    (ClipToBounds, {"upper": [1.0, None]}, "upper: expected a number"),
    (ClipToBounds, {"lower": [float("nan")]}, "lower: contains NaN"),
    (ClipToBounds, {"lower": 2.0, "upper": [1.0, 3.0]}, "bounds: lower exceeds upper"),
    (ClipToBounds, {"lower": [1.0, 2.0], "upper": [3.0, 4.0, 5.0]}, "do not broadcast"),
    (ClipToBounds, {"low": 1.0}, "ClipToBounds config: unknown key 'low'"),
    (Jitter, {"size": -1}, "jitter_size: expected a non-negative integer"),
    (Jitter, {"size": 2.5}, "jitter_size: expected a non-negative integer"),
    (Jitter, {"seed": 1.5}, "jitter seed: expected an integer"),
    (Jitter, {"size": 4, "offset": 1}, "Jitter config: unknown key 'offset'"),
    (Jitter, "size=4", "Jitter config: expected a dict"),
])
def test_bad_configs(cls, cfg, match):
    with pytest.raises(ValueError, match=match):
        cls.from_config(cfg)


def test_bad_serialised_configs_name_the_piece():
    cfg = config.serialize(GaussianBlur())
    cfg["config"]["radius"] = 3
    with pytest.raises(ValueError, match="cannot rebuild 'keras_icnn>GaussianBlur'.*unknown key "
                                         "'radius'"):
        config.deserialize(cfg)


def test_registered_names():
    for t in (ClipExtreme(), ClipSmallNorm(), ClipSmallContribution(), Decay(), GaussianBlur(),
              ClipToBounds(), Jitter()):
        assert config.serialize(t)["registered_name"] == f"keras_icnn>{type(t).__name__}"
