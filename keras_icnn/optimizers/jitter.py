"""Random shifts of the image before a step, undone after it (the original's ``image_jitter``)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_icnn import config as _config

__all__ = ["Jitter"]


@_config.register
class Jitter:
    """Random shifts of the image (and momentum) by up to ``size`` pixels, undone after the
    update; the same shift for every image of a batch.  The shift of step ``t`` is a pure
    function of ``(seed, t)``: see :meth:`offsets`."""

    space = "pixels"

    def __init__(self, size=32, seed=0):
        if isinstance(size, bool) or not (isinstance(size, int) and size >= 0):
            raise ValueError(f"jitter_size: expected a non-negative integer, got {size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"jitter seed: expected an integer, got {seed!r}")
        self.size, self.seed = size, int(seed)

    def get_config(self):
        return {"size": self.size, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return _config.build(cls, config)

    def offsets(self, step):
        """``(ox, oy)``: the shift along width and height at ``step``, in ``[-size, size]``."""
        o = tf.random.stateless_uniform([2], seed=tf.stack([tf.constant(self.seed, tf.int64),
                                                             tf.cast(step, tf.int64)]),
                                        minval=-self.size, maxval=self.size + 1, dtype=tf.int32)
        return o[0], o[1]

    @staticmethod
    def shift(x, ox, oy):
        return tf.roll(x, shift=tf.stack([oy, ox]), axis=[1, 2])
