"""Step transforms: they change the optimised variable between steps, ``transform(z, ctx) -> z``.

:class:`Decay`, :class:`GaussianBlur`, :class:`ClipExtreme`, :class:`ClipSmallNorm`,
:class:`ClipSmallContribution`, :class:`ClipToBounds`.  ``ctx`` carries the step, the number of
steps and the (normalised) gradient of the step.  Images are channels-last ``[N, H, W, 3]`` in
the encoder's input space; every statistic (percentiles) is taken per image.

Transforms are Keras-serialisable: ``get_config()`` is plain JSON values (schedule-valued
arguments as serialised schedules, bounds as nested lists) and ``from_config(config)`` rebuilds
the transform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_icnn import config as _config
from keras_icnn.optimizers.schedules import as_schedule
from keras_icnn.validation import finite_number, positive_int

__all__ = ["Transform", "Context", "Decay", "GaussianBlur", "ClipExtreme", "ClipSmallNorm",
           "ClipSmallContribution", "ClipToBounds"]

@dataclass
class Context:
    """What a transform may read: the step, the number of steps, the step's gradient."""
    step: tf.Tensor
    total: tf.Tensor
    grad: tf.Tensor | None = None


class Transform(_config.Configurable):
    """``transform(z, ctx) -> z``.  ``in_jitter_frame``: applied right after the update, before
    the jitter is undone (the original's clipping); otherwise after (decay, blur, bounds)."""

    in_jitter_frame = False
    #: ``"pixels"`` for transforms that only make sense on an image (blur, pixel clipping);
    #: ``None`` for any parameterisation (decay, bounds).
    space = None

    def build(self, shape, total):
        """Called once per run with the parameter's shape and the number of steps."""

    def __call__(self, z, ctx):
        raise NotImplementedError


class _Every(Transform):
    """Applies ``_apply`` when ``(step + 1) % every == 0``."""

    in_jitter_frame = True
    space = "pixels"

    def __init__(self, pct, every, name):
        self.pct = as_schedule(pct, f"{name} percentage", low=0.0, high=100.0)
        self.every = positive_int(every, f"{name}_every")

    def get_config(self):
        return {"pct": _config.serialize(self.pct), "every": self.every}

    def __call__(self, z, ctx):
        pct = tf.clip_by_value(self.pct(ctx.step, ctx.total), 0.0, 100.0)
        return tf.cond(tf.equal((ctx.step + 1) % self.every, 0),
                       lambda: self._apply(z, pct, ctx), lambda: z)


def _percentile(x, q):
    """NumPy's linear-interpolation percentile of each image's values; x ``[N, ...]``."""
    import tensorflow_probability as tfp
    flat = tf.reshape(x, [tf.shape(x)[0], -1])
    return tfp.stats.percentile(flat, q, axis=1, interpolation="linear")


def _per_image(v, rank):
    return tf.reshape(v, [-1] + [1] * (rank - 1))


@_config.register
class ClipExtreme(_Every):
    """Clip each image to its ``pct/2`` and ``100 - pct/2`` percentiles."""

    def __init__(self, pct=1.0, every=4):
        super().__init__(pct, every, "clip_extreme")

    def _apply(self, z, pct, ctx):
        lo = _per_image(_percentile(z, pct / 2.0), 4)
        hi = _per_image(_percentile(z, 100.0 - pct / 2.0), 4)
        return tf.clip_by_value(z, lo, hi)


def _zero_small(z, score, pct):
    """Zero the pixels whose ``score [N,H,W]`` is below the image's ``pct`` percentile."""
    thr = _per_image(_percentile(score, pct), 3)
    return z * tf.cast(score >= thr, z.dtype)[..., None]


@_config.register
class ClipSmallNorm(_Every):
    """Zero the pixels whose colour-vector norm is below the ``pct`` percentile."""

    def __init__(self, pct=5.0, every=4):
        super().__init__(pct, every, "clip_small_norm")

    def _apply(self, z, pct, ctx):
        return _zero_small(z, tf.norm(z, axis=-1), pct)


@_config.register
class ClipSmallContribution(_Every):
    """Zero the pixels whose ``|| image * grad ||`` (over colours) is below the percentile."""

    def __init__(self, pct=5.0, every=4):
        super().__init__(pct, every, "clip_small_contribution")

    def _apply(self, z, pct, ctx):
        return _zero_small(z, tf.norm(z * ctx.grad, axis=-1), pct)


@_config.register
class Decay(Transform):
    """``z <- (1 - rate) * z`` (the original's L2 decay)."""

    def __init__(self, rate=(0.2, 1e-10)):
        self.rate = as_schedule(rate, "decay", low=0.0, high=1.0)

    def get_config(self):
        return {"rate": _config.serialize(self.rate)}

    def __call__(self, z, ctx):
        return (1.0 - self.rate(ctx.step, ctx.total)) * z


@_config.register
class GaussianBlur(Transform):
    """Per-channel Gaussian smoothing equal to ``scipy.ndimage.gaussian_filter`` (mode
    'reflect', truncate 4), with an annealed ``sigma``; ``sigma <= 0`` leaves the image."""

    space = "pixels"

    def __init__(self, sigma=(2.0, 0.5), truncate=4.0):
        self.sigma = as_schedule(sigma, "sigma", low=0.0)
        self.truncate = finite_number(truncate, "truncate")
        self.radius = None

    def get_config(self):
        return {"sigma": _config.serialize(self.sigma), "truncate": self.truncate}

    def _r(self, sigma):
        return int(self.truncate * sigma + 0.5)

    def build(self, shape, total):
        self.radius = self._r(self.sigma.bounds(total)[1])
        h, w = int(shape[1]), int(shape[2])
        if self.radius >= min(h, w):
            raise ValueError(f"blur: a sigma of {self.sigma.bounds(total)[1]} needs images larger "
                             f"than {self.radius} pixels; got {h}x{w}")

    def __call__(self, z, ctx):
        sigma = self.sigma(ctx.step, ctx.total)
        return tf.cond(sigma > 0, lambda: self._blur(z, sigma), lambda: z)

    def _blur(self, z, sigma):
        r = self.radius
        if r == 0:
            return z
        x = tf.range(-r, r + 1, dtype=tf.float32)
        lim = tf.floor(self.truncate * sigma + 0.5)
        k = tf.exp(-0.5 * tf.square(x / sigma)) * tf.cast(tf.abs(x) <= lim, tf.float32)
        k = k / tf.reduce_sum(k)
        c = z.shape[-1]
        kh = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, c, 1])
        kw = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, c, 1])
        z = tf.pad(z, [[0, 0], [r, r], [0, 0], [0, 0]], mode="SYMMETRIC")
        z = tf.nn.depthwise_conv2d(z, kh, [1, 1, 1, 1], "VALID")
        z = tf.pad(z, [[0, 0], [0, 0], [r, r], [0, 0]], mode="SYMMETRIC")
        return tf.nn.depthwise_conv2d(z, kw, [1, 1, 1, 1], "VALID")


@_config.register
class ClipToBounds(Transform):
    """Keep ``z`` within ``[lower, upper]`` (numbers or arrays broadcastable to ``z``, held as
    float32; or None).  Its config holds them as (nested) lists of numbers."""

    def __init__(self, lower=None, upper=None):
        self.lower, self.upper = _bound(lower, "lower"), _bound(upper, "upper")
        if self.lower is not None and self.upper is not None:
            try:
                above = np.any(self.lower > self.upper)
            except ValueError:
                raise ValueError(f"bounds: lower {self.lower.shape} and upper "
                                 f"{self.upper.shape} do not broadcast together") from None
            if above:
                raise ValueError("bounds: lower exceeds upper")

    def get_config(self):
        return {"lower": None if self.lower is None else self.lower.tolist(),
                "upper": None if self.upper is None else self.upper.tolist()}

    def __call__(self, z, ctx):
        return self.clip(z)

    def clip(self, z):
        """``z`` clipped into ``[lower, upper]`` (a side that is None is not clipped)."""
        if self.lower is not None:
            z = tf.maximum(z, self.lower)
        if self.upper is not None:
            z = tf.minimum(z, self.upper)
        return z


def _bound(b, name):
    """A bound as a float32 array (or None); a ValueError naming ``name`` if it is not numbers."""
    if b is None:
        return None
    try:
        arr = np.asarray(b)
    except (TypeError, ValueError):  # ragged nesting
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a number, an array of numbers or None, got "
                         f"{b!r}")
    arr = arr.astype(np.float32)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name}: contains NaN")
    return arr

