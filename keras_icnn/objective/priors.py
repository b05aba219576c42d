"""Image priors: losses on the image, ``prior.loss(image) -> [N]``, each with a ``weight``
schedule: :class:`PNorm`, :class:`TotalVariation`.

Images are channels-last ``[N, H, W, 3]`` in the encoder's input space (Caffe: BGR minus mean).
Priors are Keras-serialisable: ``get_config()`` is plain JSON values (the weight as a serialised
schedule) and ``from_config(config)`` rebuilds the prior.
"""
from __future__ import annotations

import math

import tensorflow as tf

from keras_icnn import config as _config
from keras_icnn.optimizers.schedules import as_schedule

__all__ = ["Prior", "PNorm", "TotalVariation", "icnn_image_scale"]

#: E[x^2] for x uniform on the integers 0..255: the original normalised its image priors by
#: the squared norm of a random 0-255 noise image, halved (drawn afresh each run); we use its
#: expectation, which the drawn value matches to about 1e-3.
_NOISE_SECOND_MOMENT = 255.0 * 511.0 / 6.0


def icnn_image_scale(shape):
    """``img_norm0 ** 2`` of the original for an image of ``shape`` ``[..., H, W, C]``."""
    h, w, c = (int(s) for s in shape[-3:])
    return h * w * c * _NOISE_SECOND_MOMENT / 4.0


def _is_finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _per_image_sum(x):
    return tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


class Prior(_config.Configurable):
    """An image prior: ``loss(image) -> [N]``, added with weight ``weight(step, total)``."""

    name = "prior"

    def __init__(self, weight=0.5, normalize="icnn"):
        self.weight = as_schedule(weight, f"{self.name} weight", low=0.0)
        if normalize not in ("icnn", None):
            raise ValueError(f"normalize: expected 'icnn' or None, got {normalize!r}")
        self.normalize = normalize

    def get_config(self):
        return {"weight": _config.serialize(self.weight), "normalize": self.normalize}

    def _scale(self, image):
        return icnn_image_scale(image.shape) if self.normalize == "icnn" else 1.0

    def loss(self, image):
        raise NotImplementedError


@_config.register
class PNorm(Prior):
    """``sum |x|^p`` (divided by the original's image scale by default)."""

    name = "p_norm"

    def __init__(self, p=3, weight=0.5, normalize="icnn"):
        super().__init__(weight, normalize)
        if not (_is_finite(p) and p >= 1):
            raise ValueError(f"p: expected a number >= 1, got {p!r}")
        self.p = float(p)

    def get_config(self):
        return {"p": self.p, **super().get_config()}

    def loss(self, image):
        return _per_image_sum(tf.abs(image) ** self.p) / self._scale(image)


@_config.register
class TotalVariation(Prior):
    """``sum (d_h^2 + d_w^2)^(beta/2)`` with forward differences (zero at the last row/column).

    The gradient is the original's, including its floor of 1e-5 on the per-pixel variation
    when ``beta < 2`` (where the plain derivative is unbounded at flat pixels).  The original's
    TV branch crashed (it read an undefined ``opts``); this one works.
    """

    name = "tv_norm"

    def __init__(self, beta=2, weight=0.5, normalize="icnn"):
        super().__init__(weight, normalize)
        if not (_is_finite(beta) and beta > 0):
            raise ValueError(f"TVbeta: expected a positive number, got {beta!r}")
        self.beta = float(beta)

    def get_config(self):
        return {"beta": self.beta, **super().get_config()}

    def loss(self, image):
        beta = self.beta

        @tf.custom_gradient
        def tv(x):
            d1 = tf.concat([x[:, 1:] - x[:, :-1], tf.zeros_like(x[:, :1])], axis=1)
            d2 = tf.concat([x[:, :, 1:] - x[:, :, :-1], tf.zeros_like(x[:, :, :1])], axis=2)
            v = tf.sqrt(d1 * d1 + d2 * d2) ** beta
            value = _per_image_sum(v)

            def grad(upstream):
                vc = tf.maximum(v, 1e-5)
                f = vc ** (2.0 * (beta / 2.0 - 1.0) / beta) if beta != 2 else tf.ones_like(vc)
                d1_, d2_ = f * d1, f * d2
                d11 = tf.concat([-d1_[:, :1], d1_[:, :-1] - d1_[:, 1:]], axis=1)
                d22 = tf.concat([-d2_[:, :, :1], d2_[:, :, :-1] - d2_[:, :, 1:]], axis=2)
                return tf.reshape(upstream, [-1, 1, 1, 1]) * beta * (d11 + d22)

            return value, grad

        return tv(image) / self._scale(image)

