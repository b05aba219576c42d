"""The parameterisation interface: what is optimised, mapped to the encoder's input.

A parameterisation maps the optimised tensor ``z`` ``[N, ...]`` to the encoder's input
``[N, H, W, 3]`` (Caffe space: BGR minus mean), says where ``z`` starts and within which bounds
it must stay.  Parameterisations are Keras-serialisable: ``get_config()`` is plain JSON values
and ``from_config(config)`` rebuilds one (see each class for what it needs besides).
"""
from __future__ import annotations

import warnings

import numpy as np

from keras_icnn import config as _config
from keras_icnn import imaging

__all__ = ["Param", "real_array"]


def real_array(value, name):
    """``value`` as a float32 array, or a ``ValueError`` naming ``name`` when it is not real
    numbers (strings, objects, complex numbers)."""
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or
                                 np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name}: expected an array of real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32)


class Param(_config.Configurable):
    """Base class of parameterisations."""

    #: ``"pixels"`` or ``"latent"``; pixel-space transforms (blur, jitter) need ``"pixels"``.
    space = "pixels"

    def build(self, image_shape, mean):
        """Bind to the encoder's input ``image_shape`` ``(H, W, 3)`` and the Caffe ``mean``."""
        self.image_shape = tuple(int(s) for s in image_shape)
        self.mean = imaging.as_mean(mean)

    @property
    def shape(self):
        """Per-sample shape of ``z``."""
        raise NotImplementedError

    def image(self, z):
        """``z`` -> encoder input (Caffe space, channels-last)."""
        raise NotImplementedError

    def compute_image(self, precision):
        """``z -> image`` as the objective computes it under ``precision`` (see
        :mod:`keras_icnn.models.precision`): float32 in and out; :meth:`image` itself here."""
        return self.image

    def initial(self, n, initial=None, seed=None) -> np.ndarray:
        raise NotImplementedError

    def bounds(self):
        """``(lower, upper)``: arrays broadcastable to ``z``, or ``None`` for no bound."""
        return None, None

    def project_initial(self, z0):
        """Clip a start point into the bounds, saying so once if anything moved."""
        lo, hi = self.bounds()
        if lo is None and hi is None:
            return z0
        clipped = np.clip(z0, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        moved = int(np.sum(clipped != z0))
        if moved:
            warnings.warn(f"initial point: {moved} value(s) were outside the bounds and have "
                          "been clipped into them", stacklevel=3)
        return clipped.astype(np.float32)

