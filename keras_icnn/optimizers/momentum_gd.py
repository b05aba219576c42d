"""How the objective is minimised: momentum gradient descent (the original ``icnn_gd`` loop).

An optimiser works on any parameterisation (pixels or a generator's latent): it gets an
:class:`keras_icnn.objective.Objective`, the variable ``z`` ``[N, ...]`` and a ``loop`` whose
``begin(t)``/``end(t, logs, per_image_loss)`` it calls around every iteration (the
Reconstructor turns those into Keras callback events; ``end`` returns True to stop).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_icnn.errors import NonFiniteLossError, ZeroGradientError
from keras_icnn.validation import positive_int
from keras_icnn.optimizers.transforms import ClipToBounds, Context, Transform
from keras_icnn.optimizers.jitter import Jitter
from keras_icnn.optimizers.schedules import as_schedule

__all__ = ["Optimizer", "MomentumGD", "NonFiniteLossError", "ZeroGradientError",
           "per_image_mean_abs", "get"]


def per_image_mean_abs(g):
    """Mean of ``|g|`` per sample, shaped to broadcast against ``g``."""
    m = tf.reduce_mean(tf.abs(tf.reshape(g, [tf.shape(g)[0], -1])), axis=1)
    return tf.reshape(m, [-1] + [1] * (g.shape.rank - 1))


def _normalize(g):
    """``g / mean|g|`` per sample, where that mean is > 0 (the original's normalisation)."""
    m = per_image_mean_abs(g)
    return g / tf.where(m > 0, m, tf.ones_like(m))


class Optimizer:
    """Base class: ``minimize(objective, z, iterations, loop)``."""

    #: default number of iterations
    iterations = 200
    #: the pixel bounds of ``Reconstructor(param="pixels")`` with this optimiser (``None``:
    #: unbounded, as the original momentum GD; ``"valid"``: 0-255, as the original L-BFGS)
    default_pixel_bounds = None

    def minimize(self, objective, z, iterations, loop):
        raise NotImplementedError

    def get_config(self):
        """The settings (not the results of the last run: the ``*_`` attributes)."""
        return {k: repr(v) for k, v in vars(self).items()
                if not k.startswith("_") and not k.endswith("_")}


class MomentumGD(Optimizer):
    """Momentum gradient descent with the original iCNN's tricks, one compiled step each.

    Per iteration ``t`` (the order of the published loop):

    1. jitter: shift ``z`` and the momentum buffer ``delta``;
    2. ``g`` = gradient of the feature loss, divided by its per-image mean ``|g|``
       (``grad_normalize``);
    3. ``delta = momentum * delta + g``; then for each prior, ``delta += weight * g_prior``
       (each prior's gradient normalised on its own);
    4. ``z -= lr * delta``;
    5. transforms with ``in_jitter_frame`` (the clipping of extreme / small-norm /
       small-contribution pixels);
    6. undo the jitter of ``z``; of ``delta`` all but the current ``g`` (as the original);
    7. the other transforms in order (decay, blur);
    8. projection onto the parameterisation's bounds, if it has any (the generator latent's
       ``[lower, upper]``, or valid pixels with ``Pixels(bounds="valid")``).

    Args:
        learning_rate, momentum: numbers, ``(start, end)`` pairs or schedules.
        grad_normalize: normalise gradients by their mean absolute value.
        jitter: a :class:`keras_icnn.priors.Jitter` or None.
        transforms: :class:`keras_icnn.priors.Transform` objects.
        iterations: the default number of iterations.
        jit_compile: compile the step with XLA.
    """

    def __init__(self, learning_rate=(2.0, 1e-10), momentum=0.9, grad_normalize=True,
                 jitter=None, transforms=(), iterations=200, jit_compile=False):
        self.learning_rate = as_schedule(learning_rate, "learning rate", low=0.0)
        self.momentum = as_schedule(momentum, "momentum", low=0.0, high=1.0)
        self.grad_normalize = bool(grad_normalize)
        if jitter is not None and not isinstance(jitter, Jitter):
            raise ValueError(f"jitter: expected a keras_icnn.priors.Jitter or None, got {jitter!r}")
        self.jitter = jitter
        self.transforms = list(transforms)
        for tr in self.transforms:
            if not isinstance(tr, Transform):
                raise ValueError(f"transforms: expected keras_icnn.priors.Transform objects, got "
                                 f"{tr!r}")
        self.iterations = _check_iterations(iterations)
        self.jit_compile = bool(jit_compile)

    def _step_fn(self, objective, z, delta, total):
        jitter, transforms = self.jitter, self.transforms
        before = [tr for tr in transforms if tr.in_jitter_frame]
        after = [tr for tr in transforms if not tr.in_jitter_frame]
        norm = _normalize if self.grad_normalize else (lambda g: g)
        lower, upper = objective.param.bounds()
        project = ClipToBounds(lower, upper)._clip

        def step(t):
            lr = self.learning_rate(t, total)
            mom = self.momentum(t, total)
            x, d = z.read_value(), delta.read_value()
            if jitter is not None:
                ox, oy = jitter.offsets(t)
                x, d = jitter.shift(x, ox, oy), jitter.shift(d, ox, oy)
            with tf.GradientTape(persistent=True) as tape:  # one forward pass, >1 gradient
                tape.watch(x)
                loss, per_layer, priors = objective.terms(x, t, total)
                sums = [tf.reduce_sum(v) for v in [loss] + [lp for _, _, lp in priors]]
            g = norm(tape.gradient(sums[0], x))
            d = d * mom + g
            for (_, w, _), s in zip(priors, sums[1:]):  # each prior normalised on its own
                d = d + w * norm(tape.gradient(s, x))
            del tape
            _, logs = objective.combine(loss, per_layer, priors)
            x = x - lr * d
            ctx = Context(step=t, total=tf.constant(total), grad=g)
            for tr in before:
                x = tr(x, ctx)
            if jitter is not None:
                x = jitter.shift(x, -ox, -oy)
                d = jitter.shift(d - g, -ox, -oy) + g
            for tr in after:
                x = tr(x, ctx)
            x = project(x)
            finite = tf.reduce_all(tf.math.is_finite(x)) & tf.reduce_all(tf.math.is_finite(loss))
            z.assign(tf.where(finite, x, z))
            delta.assign(tf.where(finite, d, delta))
            logs = {k: tf.reduce_mean(v) for k, v in logs.items()}
            logs["learning_rate"], logs["momentum"] = lr, mom
            stuck = tf.equal(per_image_mean_abs(g), 0.0)[:, 0] & tf.not_equal(loss, 0.0)
            return logs, loss, finite, stuck

        return tf.function(step, jit_compile=self.jit_compile, autograph=False)

    def minimize(self, objective, z, iterations, loop):
        total = _check_iterations(iterations)
        space = objective.param.space
        for tr in self.transforms + ([self.jitter] if self.jitter is not None else []):
            if getattr(tr, "space", None) not in (None, space):
                raise ValueError(f"{type(tr).__name__} works on images, but this run optimises "
                                 f"a {space} (use it with Pixels, or drop it)")
        for tr in self.transforms:
            tr.build(z.shape, total)
        delta = tf.Variable(tf.zeros_like(z), trainable=False, name="momentum_buffer")
        step = self._step_fn(objective, z, delta, total)
        for t in range(total):
            loop.begin(t)
            logs, per_image, finite, stuck = step(tf.constant(t))
            if not bool(finite):
                raise NonFiniteLossError(t + 1)
            if t == 0 and np.any(stuck):
                raise ZeroGradientError(np.flatnonzero(stuck).tolist())
            if loop.end(t, logs, per_image):
                break


def _check_iterations(n):
    return positive_int(n, "iterations")


def get(optimizer, space="pixels"):
    """An optimiser from a name, or the optimiser itself.

    ``"gd"``: momentum GD with the original's defaults: those of ``icnn_gd`` (lr 2 -> 1e-10,
    momentum 0.9, decay 0.2 -> 1e-10, Gaussian blur sigma 2 -> 0.5) when ``space`` is
    ``"pixels"``, those of ``icnn_dgn_gd`` (latent decay 0.01, no blur) for a ``"latent"``.
    ``"lbfgs"``: TensorFlow Probability's batched L-BFGS; ``"lbfgs-b"`` (or ``"scipy"``):
    scipy's L-BFGS-B, the original's.
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    from keras_icnn.optimizers.lbfgs import OPTIMIZERS as LBFGS_OPTIMIZERS# lbfgs imports this module
    names = ["gd", "momentum_gd", *LBFGS_OPTIMIZERS]
    key = optimizer.lower() if isinstance(optimizer, str) else None
    if key in ("gd", "momentum_gd"):
        if space == "latent":
            from keras_icnn.icnn_dgn_gd import build_optimizer
        else:
            from keras_icnn.icnn_gd import build_optimizer
        return build_optimizer()
    if key in LBFGS_OPTIMIZERS:
        return LBFGS_OPTIMIZERS[key]()
    raise ValueError(f"optimizer: unknown {optimizer!r}; expected one of {sorted(names)} or a "
                     "keras_icnn.optimizers.Optimizer")
