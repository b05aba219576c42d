"""Any Keras optimiser (Adam, AdamW, SGD, RMSprop, ... with Keras learning-rate schedules) as a
step object, with the same jitter, transforms, bounds projection and gradient normalisation as
:class:`~keras_icnn.optimizers.momentum_gd.MomentumGD`."""
from __future__ import annotations

import keras
import tensorflow as tf

from keras_icnn import config
from keras_icnn.optimizers.gradient import GradientOptimizer, Gradients, Update
from keras_icnn.optimizers.jitter import Jitter
from keras_icnn.optimizers.transforms import Context

__all__ = ["KerasOptimizer"]


@config.register
class KerasOptimizer(GradientOptimizer):
    """Minimise with a Keras optimiser, e.g. ``KerasOptimizer(keras.optimizers.AdamW(0.1))``
    (the lab's newer PyTorch pipeline optimises a generator's latent with AdamW).

    Per iteration: jitter ``z`` (if asked), take the gradient of the objective (the feature
    loss's gradient plus each prior's weighted gradient, each normalised per image with
    ``grad_normalize``), undo the jitter on the gradient, let the Keras optimiser apply it to
    ``z``, then the transforms (in order) and the projection onto the bounds.

    Every run starts from a fresh copy of ``optimizer`` (rebuilt from its config), so its
    moments never leak from one ``fit`` into the next; its variables (``iterations``, moments)
    are the step's state (``get_state()``).  Keras counts steps in ``optimizer.iterations``,
    which is what its learning-rate schedules see.

    Args:
        optimizer: a ``keras.optimizers.Optimizer`` (or its serialised config).
        grad_normalize: default False (Adam-type optimisers normalise on their own).
        jitter, transforms, iterations, jit_compile: see
            :class:`~keras_icnn.optimizers.gradient.GradientOptimizer`.
    """

    def __init__(self, optimizer, grad_normalize=False, jitter=None, transforms=(),
                 iterations=200, jit_compile="auto"):
        super().__init__(grad_normalize, jitter, transforms, iterations, jit_compile)
        if isinstance(optimizer, dict):
            optimizer = config.deserialize(optimizer, "optimizer")
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(f"optimizer: expected a keras.optimizers.Optimizer, got "
                             f"{optimizer!r}")
        self.optimizer = optimizer

    def make_state(self, z):
        self.keras_optimizer = keras.optimizers.deserialize(
            keras.optimizers.serialize(self.optimizer))
        self.keras_optimizer.build([z])
        # by path without the optimiser's own (auto-numbered) name: "iteration", "z_0_momentum"
        self.state_vars = {v.path.split("/", 1)[-1]: v for v in self.keras_optimizer.variables}

    def update(self, t, ctx):
        x = self.z.read_value()
        off = self.offsets(t)
        if off is not None:
            x = Jitter.shift(x, *off)
        grads = Gradients(self.objective, x, t, self.total, self.grad_normalize)
        g = grads.total()
        if off is not None:
            g = Jitter.shift(g, -off[0], -off[1])
        self.keras_optimizer.apply_gradients([(g, self.z)])
        ctx = Context(step=ctx.step, total=ctx.total, grad=g)
        x = self.in_frame(self.z.read_value(), ctx)
        lr = tf.cast(self.keras_optimizer.learning_rate, tf.float32)
        return Update(x, grads, ctx, {}, {"learning_rate": lr})

    def get_config(self):
        return {"optimizer": keras.optimizers.serialize(self.optimizer),
                **super().get_config()}

    @classmethod
    def from_config(cls, cfg):
        return config.build(cls, cls.pieces_from_config(cfg))
