"""Feature losses: small callables ``loss(feat, target, mask) -> [N]`` (one value per image).

The definitions and normalisations are the original iCNN's (``l2``, ``l1``, ``inner``,
``gram``); ``cosine`` and ``correlation`` are added.  Gradients come from autodiff.
:class:`FeatureLoss` combines layers with their weights and masks.

A reconstructor's feature loss (a name, a callable, or a dict ``{layer: name or callable}``)
goes into a config with :func:`serialize` and comes back with :func:`deserialize`; a user's
loss function must be registered with :func:`keras_icnn.config.register` for that.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import tensorflow as tf

from keras_icnn import config as _config

__all__ = ["l2", "l1", "inner", "gram", "cosine", "correlation", "LOSSES", "get",
           "serialize", "deserialize", "FeatureLoss"]


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


def _is_function_config(config):
    return isinstance(config, Mapping) and "class_name" in config and "config" in config


def serialize(loss):
    """A feature loss as plain JSON values: a name stays a name (checked); a built-in loss
    function becomes its name; a function registered with :func:`keras_icnn.config.register`
    becomes its serialised form; a dict ``{layer: loss}`` becomes a dict of those.  An
    unregistered function is a ``ValueError`` that names it."""
    if isinstance(loss, Mapping):
        bad = [k for k, v in loss.items() if not isinstance(k, str) or isinstance(v, Mapping)]
        if bad:
            raise ValueError(f"loss_type: expected {{layer name (a string): loss name or "
                             f"function}}, got {bad[0]!r}: {loss[bad[0]]!r}")
        return {k: serialize(v) for k, v in loss.items()}
    if isinstance(loss, str):
        get(loss)  # an unknown name is a ValueError now, not when the config is read
        return loss
    for name, fn in LOSSES.items():
        if loss is fn:
            return name
    if not callable(loss):
        get(loss)  # raises the ValueError that says what a loss may be
    return _config.serialize_function(loss, "loss_type")


def deserialize(config):
    """The feature loss a :func:`serialize` config describes: names stay names, serialised
    functions become the registered functions, a dict ``{layer: config}`` a dict of those."""
    if isinstance(config, str):
        get(config)
        return config
    if _is_function_config(config):
        return get(_config.deserialize_function(config, "loss_type"))
    if isinstance(config, Mapping):
        nested = [k for k, v in config.items() if isinstance(v, Mapping)
                  and not _is_function_config(v)]
        if nested:
            raise ValueError(f"loss_type: layer {nested[0]!r}: expected a loss name or a "
                             f"serialised loss function, got {config[nested[0]]!r}")
        return {k: deserialize(v) for k, v in config.items()}
    raise ValueError(f"loss_type: expected a loss name, a serialised loss function or a dict "
                     f"of those per layer, got {config!r}")


def _variable(value):
    return tf.Variable(tf.constant(value, tf.float32), trainable=False)


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
        self.targets = {k: _variable(v) for k, v in targets.items()}
        self.weights = {k: _variable(weights[k]) for k in self.layers}
        masks = masks or {}
        self.masks = {k: _variable(masks[k]) if k in masks else 1.0 for k in self.layers}
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

    def signature(self):
        """What a compiled step depends on: the layers, the shapes, the loss functions (not the
        values of the targets, weights and masks, which are variables)."""
        def shape(v):
            return None if isinstance(v, float) else tuple(v.shape)
        return tuple((k, shape(self.targets[k]), shape(self.weights[k]), shape(self.masks[k]),
                      self.losses[k]) for k in self.layers)

    def assign(self, other):
        """Take ``other``'s targets, weights and masks (a FeatureLoss of the same
        :meth:`signature`), so that steps compiled for this one serve ``other``'s run."""
        for mine, theirs in ((self.targets, other.targets), (self.weights, other.weights),
                             (self.masks, other.masks)):
            for k, v in mine.items():
                if not isinstance(v, float):
                    v.assign(theirs[k])

    def __call__(self, features):
        """``features``: ``{layer: [N, ...]}`` -> ``(total [N], {layer: weighted loss [N]})``."""
        per_layer = {k: self.weights[k] * self.losses[k](features[k], self.targets[k],
                                                         self.masks[k])
                     for k in self.layers}
        return tf.add_n(list(per_layer.values())), per_layer
