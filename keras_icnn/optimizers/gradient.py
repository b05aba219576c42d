"""What every gradient-step optimiser shares: jitter, step transforms, gradient normalisation,
bounds projection, the finite check, and one compiled step per run.

A subclass says what its state is (:meth:`GradientOptimizer.make_state`) and how one
iteration updates ``z`` (:meth:`GradientOptimizer.update`, traced once into a ``tf.function``).
"""
from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from keras_icnn import config
from keras_icnn.optimizers.base import (Optimizer, StepReport, mean_logs, normalize_per_image,
                                        per_image_mean_abs)
from keras_icnn.optimizers.jitter import Jitter
from keras_icnn.optimizers import xla
from keras_icnn.optimizers.transforms import ClipToBounds, Context, Transform
from keras_icnn.validation import positive_int

__all__ = ["GradientOptimizer", "Gradients", "Update"]


class Update(NamedTuple):
    """One traced update: ``x``, the new ``z`` before the transforms that are not
    ``in_jitter_frame``; ``grads``, the :class:`Gradients` it used; ``ctx``, the transforms'
    :class:`~keras_icnn.optimizers.transforms.Context` (with the step's gradient); ``state``,
    the new values of ``state_vars`` (kept only if the step is finite); ``logs``, extra scalar
    logs (learning rate, ...)."""
    x: tf.Tensor
    grads: "Gradients"
    ctx: Context
    state: dict
    logs: dict


class Gradients:
    """The parts of one forward pass at ``x`` and their gradients (normalised per image
    when asked): ``g`` of the feature loss and ``prior`` = sum of each prior's weighted,
    separately normalised gradient (the original's combination)."""

    def __init__(self, objective, x, t, total, normalize):
        norm = normalize_per_image if normalize else (lambda v: v)
        with tf.GradientTape(persistent=True) as tape:  # one forward pass, >1 gradient
            tape.watch(x)
            self.loss, per_layer, priors = objective.terms(x, t, total)
            sums = [tf.reduce_sum(v) for v in [self.loss] + [lp for _, _, lp in priors]]
        self.g = norm(tape.gradient(sums[0], x))
        self.prior = [w * norm(tape.gradient(s, x)) for (_, w, _), s in zip(priors, sums[1:])]
        del tape
        _, self.logs = objective.combine(self.loss, per_layer, priors)

    def total(self):
        """The feature gradient plus the priors'."""
        return self.g + tf.add_n(self.prior) if self.prior else self.g

    def stuck(self):
        """Per image: zero gradient while the loss is not zero."""
        return tf.equal(per_image_mean_abs(self.g), 0.0)[:, 0] & tf.not_equal(self.loss, 0.0)


class GradientOptimizer(Optimizer):
    """Base of :class:`~keras_icnn.optimizers.momentum_gd.MomentumGD` and
    :class:`~keras_icnn.optimizers.keras_optimizer.KerasOptimizer`.

    Args:
        grad_normalize: divide gradients by their per-image mean absolute value.
        jitter: a :class:`~keras_icnn.optimizers.jitter.Jitter` or None.
        transforms: :class:`~keras_icnn.optimizers.transforms.Transform` objects.
        iterations: the default number of iterations.
        jit_compile: compile the step with XLA: ``True``, ``False`` or ``"auto"`` (default:
            the faster on this device type, see :mod:`keras_icnn.optimizers.xla`).
    """

    def __init__(self, grad_normalize=True, jitter=None, transforms=(), iterations=200,
                 jit_compile="auto"):
        self.grad_normalize = bool(grad_normalize)
        if jitter is not None and not isinstance(jitter, Jitter):
            raise ValueError(f"jitter: expected a keras_icnn.Jitter or None, got {jitter!r}")
        self.jitter = jitter
        self.transforms = [transforms] if isinstance(transforms, Transform) else \
            list(transforms)
        for tr in self.transforms:
            if not isinstance(tr, Transform):
                raise ValueError(f"transforms: expected keras_icnn.transforms.Transform "
                                 f"objects, got {tr!r}")
        self.iterations = positive_int(iterations, "iterations")
        self.jit_compile = xla.check(jit_compile)

    # -- a run -----------------------------------------------------------------------------
    def build(self, objective, z, total):
        pieces = self.transforms + ([self.jitter] if self.jitter is not None else [])
        self.check_space(objective.param.space, pieces)
        for tr in self.transforms:
            tr.build(z.shape, total)
        if self.reusable(objective, z, total):
            for k, v in self.state_vars.items():
                v.assign(self.initial_state[k])
            return
        self.objective, self.z, self.total = objective, z, int(total)
        self.project = ClipToBounds(*objective.param.bounds())
        self.make_state(z)
        self.initial_state = self.get_state()
        self.jit_compiled_ = xla.resolve(self.jit_compile)
        self.compiled = tf.function(self.traced_step, jit_compile=self.jit_compiled_,
                                    autograph=False)

    def step(self, t):
        logs, loss, finite, stuck = self.compiled(tf.constant(t))
        return StepReport(logs=logs, loss=loss.numpy(), finite=bool(finite),
                          zero_gradient=stuck.numpy())

    def traced_step(self, t):
        up = self.update(t, Context(step=t, total=tf.constant(self.total)))
        x = up.x
        for tr in self.transforms:
            if not tr.in_jitter_frame:
                x = tr(x, up.ctx)
        x = self.project.clip(x)
        finite = tf.reduce_all(tf.math.is_finite(x)) & \
            tf.reduce_all(tf.math.is_finite(up.grads.loss))
        for name, value in up.state.items():
            var = self.state_vars[name]
            var.assign(tf.where(finite, value, var))
        self.z.assign(tf.where(finite, x, self.z))
        logs = mean_logs(up.grads.logs)
        logs.update(up.logs)
        return logs, up.grads.loss, finite, up.grads.stuck()

    # -- what subclasses define ------------------------------------------------------------
    def make_state(self, z):
        """Create ``self.state_vars`` ``{name: tf.Variable}`` for ``z``."""
        self.state_vars = {}

    def update(self, t, ctx) -> Update:
        """One update of ``z`` (traced): see :class:`Update`."""
        raise NotImplementedError

    def get_state(self):
        return {k: v.numpy() for k, v in self.state_vars.items()}

    def set_state(self, state):
        super().set_state(state)
        for k, v in state.items():
            self.state_vars[k].assign(v)

    # -- shared pieces -----------------------------------------------------------------------
    def offsets(self, t):
        return self.jitter.offsets(t) if self.jitter is not None else None

    def in_frame(self, x, ctx):
        """The transforms applied right after the update (the original's clippings)."""
        for tr in self.transforms:
            if tr.in_jitter_frame:
                x = tr(x, ctx)
        return x

    def get_config(self):
        return {"grad_normalize": self.grad_normalize,
                "jitter": config.serialize(self.jitter),
                "transforms": [config.serialize(tr) for tr in self.transforms],
                "iterations": self.iterations, "jit_compile": self.jit_compile}

    @classmethod
    def pieces_from_config(cls, cfg):
        """``cfg`` with its jitter and transforms rebuilt."""
        cfg = dict(cfg)
        cfg["jitter"] = config.deserialize(cfg.get("jitter"), "jitter")
        cfg["transforms"] = config.deserialize(cfg.get("transforms", []), "transforms")
        return cfg
