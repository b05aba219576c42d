"""Pieces shared by the two L-BFGS step objects: flat per-element bounds, the compiled
objective-and-gradient of a flattened batch, and the start check."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_icnn.optimizers import xla

__all__ = ["flat_bounds", "value_and_gradient", "zero_gradient"]


def _full_bound(b, shape, fill):
    n, d = shape[0], int(np.prod(shape[1:]))
    if b is None:
        return np.full((n, d), fill, np.float64)
    b = np.asarray(b, np.float64)
    try:
        return np.broadcast_to(b, shape).reshape(n, d).copy()
    except ValueError:
        raise ValueError(f"param.bounds(): a bound of shape {b.shape} does not broadcast to "
                         f"z of shape {tuple(shape)}") from None


def flat_bounds(param, shape):
    """Per-element ``(lower, upper)`` float64 ``[N, D]`` (``-inf``/``inf`` where unbounded), or
    ``(None, None)`` when nothing is bounded."""
    lo, hi = param.bounds()
    if lo is None and hi is None:
        return None, None
    lo, hi = _full_bound(lo, shape, -np.inf), _full_bound(hi, shape, np.inf)
    if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo > hi):
        raise ValueError("param.bounds(): a lower bound exceeds its upper bound (or is NaN)")
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return None, None
    return lo, hi


def value_and_gradient(objective, shape, step, total, jit_compile="auto"):
    """A compiled ``x [N, D] float32 -> (objective [N], gradient [N, D], logs {name: [N]})``;
    ``step`` is a variable holding the iteration (for the priors' weights)."""

    def fn(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            f, logs = objective.value(tf.reshape(x, shape), step, total)
            summed = tf.reduce_sum(f)
        g = tape.gradient(summed, x)
        if g is None:
            g = tf.zeros_like(x)
        return f, g, logs

    return tf.function(fn, jit_compile=xla.resolve(jit_compile))


def zero_gradient(f, g):
    """Per image: the gradient is exactly zero while the objective is not."""
    g = np.asarray(g).reshape(len(f), -1)
    return (np.max(np.abs(g), axis=1) == 0) & (np.asarray(f) != 0)
