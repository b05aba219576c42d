"""Batched L-BFGS in TensorFlow as a step object (``optimizer="lbfgs"``).

A batch of N images is N independent problems (``z`` flattened to ``[N, D]``): each image has
its own curvature memory, search direction and step length, and the line search evaluates the
trial points of all images in one batched call.  One iteration is one call of a compiled
TensorFlow function (the two-loop recursion, the line search as a ``tf.while_loop``, the memory
update: no host round trip inside), traced once per shape and reused by later fits.  Its state
is plain tensors, which :meth:`LBFGS.get_state` hands out as NumPy arrays, so a run resumes
exactly.  The pieces are in :mod:`~keras_icnn.optimizers.lbfgs_search` (the algorithm) and
:mod:`~keras_icnn.optimizers.lbfgs_reparam` (the bounds).
"""
from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from keras_icnn import config
from keras_icnn.optimizers import xla
from keras_icnn.optimizers.base import Optimizer, StepReport, mean_logs
from keras_icnn.optimizers.lbfgs_common import flat_bounds, zero_gradient
from keras_icnn.optimizers.lbfgs_reparam import METHODS, reparam
from keras_icnn.optimizers.lbfgs_search import (Point, dot, line_search, push_pair,
                                                search_direction)
from keras_icnn.validation import finite_number, positive_int

__all__ = ["LBFGS"]

#: LBFGS restarts when the last segment reduced some image's objective by more than this
#: (relative): every image stopped, but not because nothing can be gained.
RESTART_PROGRESS = 1e-6
#: the per-image tensors of the state (besides the logs, ``logs/<name>``)
STATE_KEYS = ("u", "f", "g", "s", "y", "converged", "failed")


def with_logs(logs):
    """The logs ``{name: [N]}`` as entries of the state (``logs/<name>``)."""
    return {f"logs/{k}": v for k, v in logs.items()}


def logs_of(state):
    """The logs kept in ``state`` (see :func:`with_logs`)."""
    return {k[5:]: v for k, v in state.items() if k.startswith("logs/")}


@config.register
class LBFGS(Optimizer):
    """Batched L-BFGS written in TensorFlow (runs on a GPU without host round trips).

    Each image of the batch is its own problem.  The search direction is the two-loop
    recursion over the image's last ``num_correction_pairs`` curvature pairs with the initial
    Hessian ``s'y / y'y`` (a pair with ``s'y <= eps * y'y`` is skipped), the first step of a
    (re)started image is ``1 / ||g||`` along ``-g`` (as scipy's L-BFGS-B), later ones the unit
    step.  The line search asks for the weak Wolfe conditions (sufficient decrease 1e-3,
    curvature 0.9: scipy's constants), extrapolating (2x to 100x, where the derivative along
    the line would vanish) while the step is too short and interpolating (cubic) after a step
    that was too long; each image has its own step length,
    and the trial points of all images are evaluated together.  An iteration costs as many
    batched evaluations as its slowest image needs, mostly one.  Converged or failed images stop
    moving while the others go on; the run ends after ``iterations`` iterations, when a
    callback stops it, or when every image has stopped and a restart (see ``restart``) brings
    nothing.  An image whose line search finds no decrease drops its memory and tries again
    along ``-g``; it fails when that finds none either.

    Bounds: ``bounds_method`` chooses how ``z`` is kept within ``param.bounds()``:

    * ``"clip"`` (default): projected L-BFGS.  The elements at a bound whose gradient pushes
      them out (the binding set) are held fixed for the iteration (their gradient is zeroed
      before the two-loop recursion and their direction after it), and the line search runs on
      the projected path ``clip(z + a d, lower, upper)``, with sufficient decrease measured
      along the step actually taken.  ``tolerance`` applies to the projected gradient
      (scipy's ``pgtol``).  Where no bound is active the iterates are plain L-BFGS's.
    * ``"sigmoid"``: ``z = lower + (upper - lower) * sigmoid(u)`` (two-sided bounds only);
      smooth, but it distorts the problem near the bounds and converges much more slowly.

    ``restart``: when every image has stopped (converged or failed) but the last segment still
    reduced some image's objective by more than 1e-6 (relative), L-BFGS starts again from the
    current point with empty memories.  The restart costs one
    evaluation and is not an iteration.

    Priors' weights are evaluated at the iteration's index; L-BFGS's curvature memory assumes a
    fixed objective, so prefer constant weights.  A NaN/Inf loss in any image stops the whole
    batch (:class:`~keras_icnn.errors.NonFiniteLossError`): the line search steps back from
    non-finite trial points, so the error is raised when an image's line search failed after
    meeting one.

    Args:
        iterations: maximum number of iterations (the original ``maxiter`` default, 500).
        num_correction_pairs: L-BFGS memory (scipy's ``maxcor``).
        tolerance: an image has converged when the sup-norm of its gradient is at most this.
        x_tolerance: ... or when no element of ``u`` moved more than this in an iteration.
        f_relative_tolerance, f_absolute_tolerance: ... or when its objective decreased by at
            most this, relative to its value / absolutely (0 disables them).
        max_line_search_iterations: batched evaluations one line search may take (scipy's
            ``maxls``).
        bounds_method: ``"clip"`` or ``"sigmoid"``, see above.
        penalty: ignored (the ``"clip"`` method of keras-icnn <= 0.2 was a penalty; it now
            projects): accepted so that older configs load, with a warning.
        restart: restart a stalled run, see above.
        jit_compile: compile the objective and gradient with XLA (``"auto"``: the measured
            default of the device type, :func:`keras_icnn.optimizers.xla.resolve`).

    After a run: ``initial_losses_`` float32 ``[N]`` (objective at the start),
    ``iteration_losses_`` float32 ``[iterations run, N]`` (objective per iteration) and
    ``results_`` ``{"converged", "failed" (per image), "num_iterations", "restarts",
    "num_objective_evaluations"}`` (batched evaluations, the start's included).  Per-iteration
    logs add ``grad_max`` (mean over images of the sup-norm of the gradient that L-BFGS sees)
    and ``evaluations`` (batched objective evaluations so far).
    """

    iterations = 500
    default_pixel_bounds = "valid"

    def __init__(self, iterations=500, num_correction_pairs=10, tolerance=1e-8, x_tolerance=0.0,
                 f_relative_tolerance=0.0, f_absolute_tolerance=0.0,
                 max_line_search_iterations=20, bounds_method="clip", penalty=None,
                 restart=True, jit_compile="auto"):
        self.iterations = positive_int(iterations, "iterations")
        self.num_correction_pairs = positive_int(num_correction_pairs, "num_correction_pairs")
        self.tolerance = finite_number(tolerance, "tolerance")
        self.x_tolerance = finite_number(x_tolerance, "x_tolerance")
        self.f_relative_tolerance = finite_number(f_relative_tolerance, "f_relative_tolerance")
        self.f_absolute_tolerance = finite_number(f_absolute_tolerance, "f_absolute_tolerance")
        self.max_line_search_iterations = positive_int(max_line_search_iterations,
                                                       "max_line_search_iterations")
        if bounds_method not in METHODS:
            raise ValueError(f"bounds_method: expected 'clip' or 'sigmoid', got {bounds_method!r}")
        self.bounds_method = bounds_method
        if penalty is not None:
            warnings.warn("LBFGS(penalty=...) is ignored: bounds_method='clip' now projects "
                          "onto the bounds instead of penalising excursions", stacklevel=2)
        self.restart = bool(restart)
        self.jit_compile = xla.check(jit_compile)
        self.initial_losses_ = None
        self.iteration_losses_ = None
        self.results_ = None

    def get_config(self):
        return {k: getattr(self, k) for k in (
            "iterations", "num_correction_pairs", "tolerance", "x_tolerance",
            "f_relative_tolerance", "f_absolute_tolerance", "max_line_search_iterations",
            "bounds_method", "restart", "jit_compile")}

    # -- a run -----------------------------------------------------------------------------------
    def build(self, objective, z, total):
        if not self.reusable(objective, z, total):
            self.compile(objective, z, total)
        self.start(np.asarray(z.numpy(), np.float64).reshape(self.shape[0], -1))

    def compile(self, objective, z, total):
        """The variables and compiled functions of runs on ``objective`` and ``z``."""
        self.objective, self.z, self.total = objective, z, int(total)
        self.shape = tuple(int(s) for s in z.shape)
        self.to_u, self.from_u, self.box = reparam(
            self.bounds_method, *flat_bounds(objective.param, self.shape))
        self.step_var = tf.Variable(0, dtype=tf.int32, trainable=False, name="lbfgs_step")
        self.vg = tf.function(self.value_and_gradient, jit_compile=xla.resolve(self.jit_compile))
        self.one_iteration = tf.function(self.traced_iteration, autograph=False)

    def start(self, z0):
        self.step_var.assign(0)
        u0 = tf.constant(self.to_u(z0).astype(np.float32))
        self.state = self.fresh_state(u0)
        f0, g0 = self.state["f"].numpy(), self.state["g"].numpy()
        self.initial_losses_ = f0.astype(np.float32)
        self.start_flags = (bool(np.all(np.isfinite(f0)) and np.all(np.isfinite(g0))),
                            zero_gradient(f0, g0))
        self.segment_f, self.evaluations, self.restarts, self.losses = f0, 1, 0, []

    def fresh_state(self, u):
        """L-BFGS at ``u`` [N, D] with empty memories (one evaluation)."""
        f, g, logs = self.vg(u)
        m = self.num_correction_pairs
        none = tf.zeros([m] + list(u.shape), tf.float32)
        converged = self.grad_max(u, g) <= self.tolerance
        state = {"u": u, "f": f, "g": g, "s": none, "y": none, "converged": converged,
                 "failed": tf.zeros_like(converged)}
        state.update(with_logs(logs))
        return state

    def objective_of_u(self, u):
        return self.objective.value(tf.reshape(self.from_u(u), self.shape), self.step_var,
                                    self.total)

    def project(self, u):
        """``u`` clipped into the box (``"clip"``)."""
        return tf.clip_by_value(u, *self.box)

    def grad_max(self, u, g):
        """Per image the sup-norm of the (projected) gradient."""
        if self.box is None:
            return tf.reduce_max(tf.abs(g), axis=1)
        return tf.reduce_max(tf.abs(self.project(u - g) - u), axis=1)

    def free_gradient(self, u, g):
        """``(g with the binding set zeroed, binding set or None)``: the elements at a bound
        whose gradient pushes them out of the box."""
        if self.box is None:
            return g, None
        lo, hi = self.box
        binding = ((u <= lo) & (g > 0)) | ((u >= hi) & (g < 0))
        return tf.where(binding, tf.zeros_like(g), g), binding

    def value_and_gradient(self, u):
        """``u`` [N, D] -> ``(objective [N], gradient [N, D], logs {name: float32 [N]})``."""
        with tf.GradientTape() as tape:
            tape.watch(u)
            f, logs = self.objective_of_u(u)
            summed = tf.reduce_sum(f)
        g = tape.gradient(summed, u)
        g = tf.zeros_like(u) if g is None else g
        return f, g, {k: tf.cast(v, tf.float32) for k, v in logs.items()}

    # -- the compiled iteration ------------------------------------------------------------------
    def traced_iteration(self, state):
        """One iteration of every image still going: ``(new state, batched evaluations,
        finite, z)``."""
        u, g = state["u"], state["g"]
        active = ~(state["converged"] | state["failed"])
        free, binding = self.free_gradient(u, g)
        d, has_memory = search_direction(free, state["s"], state["y"])
        if binding is not None:
            d = tf.where(binding, tf.zeros_like(d), d)
        descent = dot(free, d) < 0
        d = tf.where(descent[:, None], d, -free)
        has_memory &= descent
        alpha0 = tf.where(has_memory, tf.ones_like(state["f"]),
                          1.0 / tf.maximum(tf.norm(free, axis=1), 1e-30))
        logs = logs_of(state)
        start = Point(tf.zeros_like(state["f"]), state["f"], dot(free, d), g, logs, u)
        lo, evals, bad = line_search(self.vg, u, start, d, alpha0, active,
                                     self.max_line_search_iterations,
                                     None if self.box is None else self.project)
        new = self.update(state, active, has_memory, lo)
        finite = ~tf.reduce_any(new["failed"] & ~state["failed"] & bad)
        return new, evals, finite, tf.reshape(self.from_u(new["u"]), self.shape)

    def update(self, state, active, has_memory, lo):
        """The state after the line search accepted ``lo``: position, memory, flags."""
        u, moved = state["u"], active & (lo.a > 0)
        u_new = tf.where(moved[:, None], lo.x, u)
        s, y, _ = push_pair(state["s"], state["y"], u_new - u, lo.g - state["g"], moved)
        forget = (active & ~moved & has_memory)[None, :, None]  # retry along -g
        s, y = tf.where(forget, tf.zeros_like(s), s), tf.where(forget, tf.zeros_like(y), y)
        df = tf.abs(state["f"] - lo.f)
        done = ((self.grad_max(u_new, lo.g) <= self.tolerance) |
                (tf.reduce_max(tf.abs(u_new - u), axis=1) <= self.x_tolerance) |
                (df <= self.f_absolute_tolerance) |
                (df <= self.f_relative_tolerance * tf.abs(state["f"])))
        new = {"u": u_new, "f": lo.f, "g": lo.g, "s": s, "y": y,
               "converged": state["converged"] | (moved & done),
               "failed": state["failed"] | (active & ~moved & ~has_memory)}
        new.update(with_logs(lo.logs))
        return new

    # -- one iteration ---------------------------------------------------------------------------
    def start_check(self):
        return self.start_flags

    def stopped(self):
        return bool(tf.reduce_all(self.state["converged"] | self.state["failed"]))

    def has_next(self):
        """False when every image stopped and a restart would bring nothing."""
        return self.restart_stalled() if self.stopped() else True

    def step(self, t):
        self.step_var.assign(t)
        new, evals, finite, z_new = self.one_iteration(self.state)
        if not bool(finite):
            return StepReport({}, self.initial_losses_, finite=False)
        self.z.assign(z_new)
        self.state = new
        self.evaluations += int(evals)
        logs = logs_of(new)
        self.losses.append(np.asarray(logs.get("total_loss", logs["loss"]), np.float32))
        report = mean_logs(logs)
        report["grad_max"] = tf.reduce_mean(self.grad_max(new["u"], new["g"]))
        report["evaluations"] = float(self.evaluations)
        return StepReport(report, np.asarray(logs["loss"], np.float32))

    def restart_stalled(self):
        """Every image stopped: restart from the (projected) point with empty memories if the
        last segment still made progress; True if L-BFGS goes on."""
        f_now = self.state["f"].numpy()
        if not (self.restart and np.any(
                f_now < self.segment_f - RESTART_PROGRESS * np.abs(self.segment_f))):
            return False
        self.state = self.fresh_state(self.state["u"])
        self.evaluations += 1
        self.restarts += 1
        self.segment_f = self.state["f"].numpy()
        return not self.stopped()

    # -- the end and the state -------------------------------------------------------------------
    def finish(self):
        n = self.shape[0]
        self.iteration_losses_ = (np.stack(self.losses) if self.losses
                                  else np.zeros((0, n), np.float32))
        self.results_ = {
            "converged": self.state["converged"].numpy(), "failed": self.state["failed"].numpy(),
            "num_iterations": len(self.losses), "restarts": self.restarts,
            "num_objective_evaluations": self.evaluations}

    def get_state(self):
        state = {f"lbfgs/{k}": np.asarray(v) for k, v in self.state.items()}
        state.update(segment_f=np.asarray(self.segment_f),
                     evaluations=np.asarray(self.evaluations),
                     restarts=np.asarray(self.restarts),
                     losses=np.asarray(self.losses, np.float32).reshape(-1, self.shape[0]))
        return state

    def set_state(self, state):
        super().set_state(state)
        missing = {f"lbfgs/{k}" for k in STATE_KEYS} - set(state)
        if missing:
            raise ValueError(f"optimizer state: {sorted(missing)} missing for LBFGS")
        self.state = {k[6:]: tf.constant(v) for k, v in state.items() if k.startswith("lbfgs/")}
        self.segment_f = np.asarray(state["segment_f"])
        self.evaluations, self.restarts = int(state["evaluations"]), int(state["restarts"])
        self.losses = list(np.asarray(state["losses"], np.float32))
