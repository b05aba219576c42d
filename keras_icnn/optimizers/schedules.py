"""Annealed quantities: every value that changes over a run is a schedule object.

A schedule is called as ``schedule(step, total)`` inside the compiled step and returns a float32
scalar tensor.  :func:`as_schedule` turns what users write into one: a number (constant), a
``(start, end)`` pair (the original iCNN's linear schedule), a :class:`Schedule`, or a
``keras.optimizers.schedules.LearningRateSchedule`` (called with the step alone), or a
serialised schedule (the dict :func:`keras_icnn.config.serialize` writes, as found in configs).

Schedules are Keras-serialisable: ``get_config()`` is plain JSON values and
``from_config(config)`` rebuilds the schedule.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import keras
import tensorflow as tf

from keras_icnn import config as _config

__all__ = ["Schedule", "Constant", "Linear", "KerasSchedule", "as_schedule"]


class Schedule(_config.Configurable):
    """Base class: ``__call__(step, total) -> float32 scalar``."""

    def __call__(self, step, total):
        raise NotImplementedError

    def values(self, total):
        """The values at steps ``0 .. total-1`` as Python floats (for checks and plots)."""
        return [float(self(tf.constant(t), total)) for t in range(total)]

    def bounds(self, total):
        """``(min, max)`` over steps ``0 .. total-1``."""
        v = self.values(max(int(total), 1))
        return min(v), max(v)


@_config.register
class Constant(Schedule):
    def __init__(self, value):
        self.value = _number(value, "value")

    def get_config(self):
        return {"value": self.value}

    def __call__(self, step, total):
        return tf.constant(self.value, tf.float32)

    def bounds(self, total):
        return self.value, self.value

    def __repr__(self):
        return f"Constant({self.value!r})"


@_config.register
class Linear(Schedule):
    """``start + t * (end - start) / total`` for ``t = 0 .. total-1``, as the original iCNN.

    The end value itself is never reached (the last step is ``start + (total-1)/total *
    (end - start)``), exactly as in the published code.
    """

    def __init__(self, start, end):
        self.start = _number(start, "start")
        self.end = _number(end, "end")

    def get_config(self):
        return {"start": self.start, "end": self.end}

    def __call__(self, step, total):
        t = tf.cast(step, tf.float64)
        n = tf.cast(total, tf.float64)
        return tf.cast(self.start + t * (self.end - self.start) / n, tf.float32)

    def bounds(self, total):
        last = self.start + (max(int(total), 1) - 1) * (self.end - self.start) / max(int(total), 1)
        return min(self.start, last), max(self.start, last)

    def __repr__(self):
        return f"Linear({self.start!r}, {self.end!r})"


@_config.register
class KerasSchedule(Schedule):
    """Adapts a ``keras.optimizers.schedules.LearningRateSchedule`` (called with the step).

    Its config holds the Keras schedule as Keras serialises it."""

    def __init__(self, schedule):
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise ValueError(f"schedule: expected a keras.optimizers.schedules."
                             f"LearningRateSchedule, got {schedule!r}")
        self.schedule = schedule

    def get_config(self):
        return {"schedule": _config.serialize(self.schedule)}

    @classmethod
    def from_config(cls, config):
        inner = config.get("schedule") if isinstance(config, Mapping) else None
        if not isinstance(inner, Mapping):
            return _config.build(cls, config)
        return _config.build(cls, config,
                             schedule=_config.deserialize(inner, "KerasSchedule schedule"))

    def __call__(self, step, total):
        return tf.cast(self.schedule(step), tf.float32)

    def __repr__(self):
        return f"KerasSchedule({self.schedule!r})"


def _number(x, name):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name}: expected a number, got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name}: expected a finite number, got {x}")
    return x


def as_schedule(value, name="value", low=None, high=None) -> Schedule:
    """Turn a number, a ``(start, end)`` pair or a schedule into a :class:`Schedule`.

    ``low``/``high`` are inclusive bounds checked on the start and end values (for numbers and
    pairs); the error names ``name``.  A serialised schedule (a dict) is rebuilt first.
    """
    if isinstance(value, Mapping):
        value = _config.deserialize(value, name)
        if not isinstance(value, (Schedule, keras.optimizers.schedules.LearningRateSchedule)):
            raise ValueError(f"{name}: the config describes {value!r}, not a schedule")
    if isinstance(value, Schedule):
        sched = value
    elif isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return KerasSchedule(value)
    elif isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected a number or a (start, end) pair, got {value!r}")
        sched = Linear(_number(value[0], f"{name} start"), _number(value[1], f"{name} end"))
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        sched = Constant(_number(value, name))
    else:
        raise ValueError(f"{name}: expected a number, a (start, end) pair or a Schedule, "
                         f"got {value!r}")
    ends = ([sched.value] if isinstance(sched, Constant)
            else [sched.start, sched.end] if isinstance(sched, Linear) else [])
    for v in ends:
        if (low is not None and v < low) or (high is not None and v > high):
            rng = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise ValueError(f"{name}: {v} is outside its valid range {rng}")
    return sched
