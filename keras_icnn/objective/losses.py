"""Feature losses: small callables ``loss(feat, target, mask) -> [N]`` (one value per image).

The definitions and normalisations are the original iCNN's (``l2``, ``l1``, ``inner``,
``gram``); ``cosine`` and ``correlation`` are added.  Gradients come from autodiff.
:class:`FeatureLoss` combines layers with their weights and masks.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import tensorflow as tf

__all__ = ["l2", "l1", "inner", "gram", "cosine", "correlation", "LOSSES", "get",
           "FeatureLoss"]


def _sum(x):
    return tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def l2(feat, target, mask=1.0):
    """``sum(mask * (f - f0)^2)``."""
    d = feat - target
    return _sum(d * d * mask)


def l1(feat, target, mask=1.0):
    """``sum(|mask * (f - f0)|)``."""
    return _sum(tf.abs((feat - target) * mask))


def inner(feat, target, mask=1.0):
    """``-sum(mask * f * f0)``."""
    return -_sum(feat * target * mask)


def _gram(x):
    """``[N, H, W, C]`` -> ``[N, C, C]``."""
    shape = tf.shape(x)
    f = tf.reshape(x, [shape[0], -1, shape[-1]])
    return tf.matmul(f, f, transpose_a=True)


def gram(feat, target, mask=1.0):
    """Style loss ``sum((G - G0)^2) / (4 C^2 M^2)`` with ``M = H*W`` (Gatys et al., as iCNN)."""
    if len(feat.shape) != 4:
        raise ValueError(f"the gram loss needs convolutional features [N, H, W, C], got a tensor "
                         f"of shape {feat.shape}")
    c = tf.cast(tf.shape(feat)[-1], feat.dtype)
    m = tf.cast(tf.shape(feat)[1] * tf.shape(feat)[2], feat.dtype)
    d = _gram(feat * mask) - _gram(target * mask)
    return _sum(d * d) / (4.0 * c * c * m * m)


def cosine(feat, target, mask=1.0, eps=1e-12):
    """``1 - cos(mask * f, mask * f0)``."""
    a, b = _sum(feat * target * mask * mask), _sum(tf.square(feat * mask))
    return 1.0 - a / tf.sqrt(b * _sum(tf.square(target * mask)) + eps)


def correlation(feat, target, mask=1.0, eps=1e-12):
    """``1 - Pearson correlation`` over the units selected by a binary ``mask``."""
    w = tf.ones_like(feat) * mask
    n = _sum(w)

    def centred(x):
        mean = _sum(x * w) / n
        return (x - tf.reshape(mean, [-1] + [1] * (len(feat.shape) - 1))) * w

    x, y = centred(feat), centred(target)
    return 1.0 - _sum(x * y) / tf.sqrt(_sum(x * x) * _sum(y * y) + eps)


LOSSES = {"l2": l2, "l1": l1, "inner": inner, "gram": gram, "cosine": cosine,
          "correlation": correlation}


def get(loss) -> Callable:
    """A loss by name (``'l2'``, ``'l1'``, ``'inner'``, ``'gram'``, ``'cosine'``,
    ``'correlation'``) or a callable ``loss(feat, target, mask) -> [N]``."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss.lower() in LOSSES:
        return LOSSES[loss.lower()]
    raise ValueError(f"loss_type: unknown loss {loss!r}; expected one of {sorted(LOSSES)} "
                     "or a callable loss(feat, target, mask)")


class FeatureLoss:
    """Weighted sum over layers of a feature loss, one value per image.

    Args:
        targets: ``{layer: [N, ...]}`` channels-last target features.
        weights: ``{layer: [N]}`` per-image layer weights.
        masks: ``{layer: array}`` broadcastable to the layer's features (optional).
        loss: a loss name or callable, or a dict of those per layer.
    """

    def __init__(self, targets, weights, masks=None, loss="l2"):
        self.layers = list(targets)
        self.targets = {k: tf.constant(v, tf.float32) for k, v in targets.items()}
        self.weights = {k: tf.constant(weights[k], tf.float32) for k in self.layers}
        masks = masks or {}
        self.masks = {k: tf.constant(masks[k], tf.float32) if k in masks else 1.0
                      for k in self.layers}
        if isinstance(loss, Mapping):
            unknown = set(loss) - set(self.layers)
            if unknown:
                raise ValueError(f"loss_type given for layers without targets: {sorted(unknown)}")
            self.losses = {k: get(loss.get(k, "l2")) for k in self.layers}
        else:
            fn = get(loss)
            self.losses = {k: fn for k in self.layers}
        for k in self.layers:
            if self.losses[k] is gram and len(targets[k].shape) != 4:
                raise ValueError(f"loss_type 'gram' needs a convolutional layer; {k!r} has "
                                 f"features of shape {tuple(targets[k].shape[1:])}")

    def __call__(self, features):
        """``features``: ``{layer: [N, ...]}`` -> ``(total [N], {layer: weighted loss [N]})``."""
        per_layer = {k: self.weights[k] * self.losses[k](features[k], self.targets[k],
                                                         self.masks[k])
                     for k in self.layers}
        return tf.add_n(list(per_layer.values())), per_layer
