"""How :class:`~keras_icnn.optimizers.lbfgs.LBFGS` keeps ``z`` within box bounds: it runs on
``u`` and evaluates the objective at ``z = from_u(u)``.

* ``"clip"``: ``z = u``, kept in the box by projecting (clipping) L-BFGS's trial points onto it;
* ``"sigmoid"``: ``z = lower + (upper - lower) * sigmoid(u)`` (two-sided bounds only), ``u``
  unconstrained.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["METHODS", "reparam"]

METHODS = ("clip", "sigmoid")


def reparam(method, lo, hi):
    """``(to_u(z) numpy, from_u(u) tensor, box)`` for the flat bounds ``lo, hi`` ``[N, D]``
    (``None``: unbounded); ``box`` is the float32 ``(lower, upper)`` that ``u`` must keep to
    (``"clip"``), or None."""
    if lo is None:
        return (lambda z: z), (lambda u: u), None
    if method == "clip":
        lo32, hi32 = tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)
        return (lambda z: z), (lambda u: u), (lo32, hi32)
    return sigmoid_reparam(lo, hi)


def sigmoid_reparam(lo, hi):
    """``z = lower + (upper - lower) * sigmoid(u)`` where both bounds are finite, ``z = u``
    where neither is; a start on a bound is nudged inside by 1e-4 of the range."""
    both = np.isfinite(lo) & np.isfinite(hi)
    free = ~np.isfinite(lo) & ~np.isfinite(hi)
    if not np.all(both | free):
        raise ValueError("bounds_method='sigmoid' needs two-sided bounds (or none) for every "
                         "element; use bounds_method='clip' for one-sided bounds")
    base, width, eps = np.where(both, lo, 0.0), np.where(both, hi - lo, 0.0), 1e-4

    def to_u(z):
        r = np.where(width > 0, (z - base) / np.where(width > 0, width, 1.0), 0.5)
        r = np.clip(r, eps, 1.0 - eps)
        return np.where(both, np.log(r) - np.log1p(-r), z).astype(np.float32)

    both_t = tf.constant(both)
    base_t, width_t = tf.constant(base, tf.float32), tf.constant(width, tf.float32)
    lo32 = tf.constant(np.where(both, lo, -np.inf), tf.float32)
    hi32 = tf.constant(np.where(both, hi, np.inf), tf.float32)

    def from_u(u):
        s = base_t + width_t * tf.sigmoid(u)
        return tf.clip_by_value(tf.where(both_t, s, u), lo32, hi32)

    return to_u, from_u, None
