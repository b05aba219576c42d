"""Momentum gradient descent with the original iCNN's tricks (the ``icnn_gd`` loop's step)."""
from __future__ import annotations

import tensorflow as tf

from keras_icnn import config
from keras_icnn.optimizers.gradient import GradientOptimizer, Gradients, Update
from keras_icnn.optimizers.jitter import Jitter
from keras_icnn.optimizers.schedules import as_schedule
from keras_icnn.optimizers.transforms import Context

__all__ = ["MomentumGD"]


@config.register
class MomentumGD(GradientOptimizer):
    """Momentum gradient descent, one compiled step per iteration.

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

    State: the momentum buffer ``delta`` (``get_state()["delta"]``).

    Args:
        learning_rate, momentum: numbers, ``(start, end)`` pairs or schedules.
        grad_normalize, jitter, transforms, iterations, jit_compile: see
            :class:`~keras_icnn.optimizers.gradient.GradientOptimizer`.
    """

    def __init__(self, learning_rate=(2.0, 1e-10), momentum=0.9, grad_normalize=True,
                 jitter=None, transforms=(), iterations=200, jit_compile="auto"):
        super().__init__(grad_normalize, jitter, transforms, iterations, jit_compile)
        self.learning_rate = as_schedule(learning_rate, "learning rate", low=0.0)
        self.momentum = as_schedule(momentum, "momentum", low=0.0, high=1.0)

    def make_state(self, z):
        self.state_vars = {"delta": tf.Variable(tf.zeros_like(z), trainable=False,
                                                name="momentum_buffer")}

    def update(self, t, ctx):
        lr, mom = self.learning_rate(t, self.total), self.momentum(t, self.total)
        x, d = self.z.read_value(), self.state_vars["delta"].read_value()
        off = self.offsets(t)
        if off is not None:
            x, d = Jitter.shift(x, *off), Jitter.shift(d, *off)
        grads = Gradients(self.objective, x, t, self.total, self.grad_normalize)
        d = d * mom + grads.g
        for gp in grads.prior:  # each prior normalised on its own
            d = d + gp
        x = x - lr * d
        ctx = Context(step=ctx.step, total=ctx.total, grad=grads.g)
        x = self.in_frame(x, ctx)
        if off is not None:
            x = Jitter.shift(x, -off[0], -off[1])
            d = Jitter.shift(d - grads.g, -off[0], -off[1]) + grads.g
        return Update(x, grads, ctx, {"delta": d}, {"learning_rate": lr, "momentum": mom})

    def get_config(self):
        return {"learning_rate": config.serialize(self.learning_rate),
                "momentum": config.serialize(self.momentum), **super().get_config()}

    @classmethod
    def from_config(cls, cfg):
        return config.build(cls, cls.pieces_from_config(cfg))
