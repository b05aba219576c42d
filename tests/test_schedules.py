"""Schedules: configs that round-trip (plain JSON values, the same values at every step) and
clear errors for bad configs."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from keras_icnn import config

from config_cases import roundtrip
from keras_icnn.optimizers.schedules import Constant, KerasSchedule, Linear, Schedule, as_schedule

SETTINGS = settings(max_examples=25, deadline=None)
NUMBERS = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def values(schedule, total, steps=(0, 1, 2, 5, 17, 99)):
    """The schedule's float32 values at ``steps`` (those below ``total``), as raw bytes."""
    return [schedule(tf.constant(t), total).numpy().tobytes() for t in steps if t < total]


def assert_same_values(piece, total):
    for other in roundtrip(piece):
        assert values(other, total) == values(piece, total)


@SETTINGS
@given(value=NUMBERS, total=st.integers(1, 100))
def test_constant_roundtrip(value, total):
    s = Constant(value)
    assert s.get_config() == {"value": float(value)}
    assert_same_values(s, total)


@SETTINGS
@given(start=NUMBERS, end=NUMBERS, total=st.integers(1, 100))
def test_linear_roundtrip(start, end, total):
    s = Linear(start, end)
    assert s.get_config() == {"start": float(start), "end": float(end)}
    assert_same_values(s, total)


@SETTINGS
@given(initial=st.floats(1e-6, 10.0), steps=st.integers(1, 1000), rate=st.floats(0.01, 1.0),
       staircase=st.booleans(), total=st.integers(1, 100))
def test_keras_schedule_roundtrip(initial, steps, rate, staircase, total):
    inner = keras.optimizers.schedules.ExponentialDecay(initial, steps, rate, staircase)
    s = KerasSchedule(inner)
    assert s.get_config()["schedule"]["class_name"] == "ExponentialDecay"
    assert_same_values(s, total)


def test_keras_schedule_kinds():
    for inner in (keras.optimizers.schedules.PiecewiseConstantDecay([3, 7], [1.0, 0.5, 0.1]),
                  keras.optimizers.schedules.CosineDecay(0.5, 20, alpha=0.1)):
        assert_same_values(KerasSchedule(inner), 30)


def test_as_schedule_reads_serialised_schedules():
    s = as_schedule(config.serialize(Linear(2.0, 1e-10)), "learning rate", low=0.0)
    assert isinstance(s, Linear) and (s.start, s.end) == (2.0, 1e-10)
    inner = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    k = as_schedule(config.serialize(inner), "learning rate")
    assert isinstance(k, KerasSchedule) and values(k, 20) == values(KerasSchedule(inner), 20)
    k = as_schedule(config.serialize(KerasSchedule(inner)), "learning rate")
    assert isinstance(k, KerasSchedule)


def test_as_schedule_checks_the_range_of_serialised_schedules():
    with pytest.raises(ValueError, match=r"momentum: 2.0 is outside its valid range \[0.0, 1.0\]"):
        as_schedule(config.serialize(Constant(2.0)), "momentum", low=0.0, high=1.0)
    with pytest.raises(ValueError, match="momentum: -1.0 is outside"):
        as_schedule(config.serialize(Linear(0.5, -1.0)), "momentum", low=0.0, high=1.0)


@pytest.mark.parametrize("bad, match", [
    ({"class_name": "Nope", "config": {}}, "momentum: cannot rebuild 'Nope'"),
    ({"value": 1.0}, "momentum: expected a serialised piece"),
    (config.serialize(keras.optimizers.SGD()), "momentum: the config describes .*SGD"),
])
def test_as_schedule_bad_dicts(bad, match):
    with pytest.raises(ValueError, match=match):
        as_schedule(bad, "momentum")


@pytest.mark.parametrize("cls, cfg, match", [
    (Constant, {"value": 1.0, "rate": 2.0}, "Constant config: unknown key 'rate'"),
    (Constant, {}, r"Constant config: missing key\(s\) \['value'\]"),
    (Constant, {"value": "1.0"}, "value: expected a number"),
    (Constant, {"value": float("inf")}, "value: expected a finite number"),
    (Constant, [1.0], "Constant config: expected a dict"),
    (Linear, {"start": 1.0, "end": None}, "end: expected a number"),
    (Linear, {"start": 1.0, "stop": 0.0}, "Linear config: unknown key 'stop'"),
    (Linear, {1: 2.0}, "Linear config: keys must be strings"),
    (KerasSchedule, {"schedule": "exponential"}, "schedule: expected a keras.optimizers"),
    (KerasSchedule, {"schedule": {"class_name": "Nope", "config": {}}},
     "KerasSchedule schedule: cannot rebuild 'Nope'"),
    (KerasSchedule, {"schedule": config.serialize(Constant(1.0))},
     "schedule: expected a keras.optimizers"),
])
def test_bad_configs(cls, cfg, match):
    with pytest.raises(ValueError, match=match):
        cls.from_config(cfg)


def test_bad_serialised_configs_name_the_piece():
    cfg = config.serialize(Linear(1.0, 0.0))
    cfg["config"]["middle"] = 0.5
    with pytest.raises(ValueError, match="cannot rebuild 'keras_icnn>Linear'.*unknown key "
                                         "'middle'"):
        config.deserialize(cfg)


def test_a_schedule_without_get_config_says_so():
    class Steps(Schedule):
        def __call__(self, step, total):
            return tf.constant(1.0)

    with pytest.raises(NotImplementedError, match="Steps defines no get_config"):
        Steps().get_config()


def test_configs_are_registered_under_the_package():
    for s in (Constant(1.0), Linear(1.0, 0.0),
              KerasSchedule(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))):
        assert config.serialize(s)["registered_name"] == f"keras_icnn>{type(s).__name__}"
    assert np.isclose(Constant.from_config({"value": 3}).value, 3.0)
