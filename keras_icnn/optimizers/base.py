"""The optimiser interface: a step object with explicit state, and no loop of its own.

``Reconstructor.fit`` owns the one loop.  For a run it calls ``optimizer.build(objective, z,
total)`` once (fresh state for the variable ``z`` ``[N, ...]`` and ``total`` iterations), then
``optimizer.step(t)`` for ``t = start .. total-1``; each step advances ``z`` by one iteration
and returns a :class:`StepReport`.  ``get_state()`` / ``set_state()`` expose everything the
optimiser carries from one step to the next (a momentum buffer, an L-BFGS memory) as NumPy
arrays, so that a run can be checkpointed and resumed bit for bit.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_icnn import config

__all__ = ["Optimizer", "StepReport", "per_image_mean_abs", "normalize_per_image",
           "mean_logs"]


@dataclass
class StepReport:
    """What one iteration tells the loop.

    Attributes:
        logs: scalar logs for the callbacks (``loss``, ``<layer>_loss``, ...).
        loss: the feature loss of each image after the step, float32 ``[N]``.
        finite: False when the loss or ``z`` became NaN/Inf (``z`` keeps its last finite value).
        zero_gradient: per image, True where the gradient at the start was exactly zero while
            the loss was not (reported by the first step; None when not known).
    """
    logs: dict
    loss: np.ndarray
    finite: bool = True
    zero_gradient: np.ndarray | None = None


#: the optimisers running a reconstruction now (by id), and the lock that guards the set
_BUSY = set()
_BUSY_LOCK = threading.Lock()


def per_image_mean_abs(g):
    """Mean of ``|g|`` per sample, shaped to broadcast against ``g``."""
    m = tf.reduce_mean(tf.abs(tf.reshape(g, [tf.shape(g)[0], -1])), axis=1)
    return tf.reshape(m, [-1] + [1] * (g.shape.rank - 1))


def normalize_per_image(g):
    """``g / mean|g|`` per sample, where that mean is > 0 (the original's normalisation)."""
    m = per_image_mean_abs(g)
    return g / tf.where(m > 0, m, tf.ones_like(m))


def mean_logs(logs):
    """Per-image logs ``{name: [N]}`` -> their means over the images (scalar tensors)."""
    return {k: tf.reduce_mean(v) for k, v in logs.items()}


class Optimizer(config.Configurable):
    """Base class of the step objects (see the module docstring)."""

    #: default number of iterations
    iterations = 200
    #: the pixel bounds of ``Reconstructor(param="pixels")`` with this optimiser (``None``:
    #: unbounded, as the original momentum GD; ``"valid"``: 0-255, as the original L-BFGS)
    default_pixel_bounds = None

    def build(self, objective, z, total):
        """Fresh state for minimising ``objective`` over the variable ``z`` in ``total``
        iterations."""
        raise NotImplementedError

    def start_check(self):
        """``(finite, zero_gradient)`` at the start, where the optimiser evaluated it while
        building (L-BFGS); ``(True, None)`` where the first step reports it."""
        return True, None

    def has_next(self):
        """Prepare the next iteration; False when there is none (every image converged)."""
        return True

    def step(self, t) -> StepReport:
        """Iteration ``t``: update ``z`` in place and report."""
        raise NotImplementedError

    def finish(self):
        """Called once after the last step (or a stop, or an error)."""

    def get_state(self) -> dict:
        """The state carried between steps, ``{name: np.ndarray}``."""
        return {}

    def set_state(self, state):
        """Restore what :meth:`get_state` returned (after :meth:`build`)."""
        unknown = set(state) - set(self.get_state())
        if unknown:
            raise ValueError(f"optimizer state: unknown entries {sorted(unknown)} for "
                             f"{type(self).__name__}")

    @contextlib.contextmanager
    def claimed(self):
        """Hold this optimiser for one run: it carries that run's state, so a second run that
        wants it at the same time (another thread's Reconstructor sharing the object) gets a
        clear error instead of silently mixing the two runs' states."""
        with _BUSY_LOCK:
            if id(self) in _BUSY:
                raise RuntimeError(
                    f"this {type(self).__name__} is running another reconstruction right now; "
                    "give each concurrent Reconstructor its own optimiser (e.g. "
                    "type(opt).from_config(opt.get_config()))")
            _BUSY.add(id(self))
        try:
            yield self
        finally:
            with _BUSY_LOCK:
                _BUSY.discard(id(self))

    def reusable(self, objective, z, total):
        """True when the last :meth:`build` was for the same objective, variable and number of
        iterations (its compiled functions can serve again); records this build otherwise."""
        key = (id(objective), id(z), int(total))
        if getattr(self, "built_for", None) == key:
            return True
        self.built_for = key
        return False

    def check_space(self, space, pieces):
        """Refuse pixel-only ``pieces`` (blur, jitter, pixel clipping) on a latent."""
        for piece in pieces:
            if getattr(piece, "space", None) not in (None, space):
                raise ValueError(f"{type(piece).__name__} works on images, but this run "
                                 f"optimises a {space} (use it with Pixels, or drop it)")
