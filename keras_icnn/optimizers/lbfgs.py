"""TensorFlow Probability's batched L-BFGS as a step object (``optimizer="lbfgs"``).

``tfp.optimizer.lbfgs_minimize`` runs on the batch flattened to ``[N, D]`` (the rows are
independent problems) and is resumed for one iteration at a time through
``previous_optimizer_results``: its state is plain tensors (position, gradient, the curvature
pairs, ...), which :meth:`LBFGS.get_state` hands out as NumPy arrays, so a run resumes exactly.
It runs entirely in TensorFlow (GPU friendly), but TFP has no box constraints: by default the
objective is evaluated at ``clip(u, lower, upper)`` plus an exact penalty on ``u``'s excursion,
with restarts from the projected point when L-BFGS stalls on the kinks (see ``bounds_method``).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_icnn import config
from keras_icnn.optimizers.base import Optimizer, StepReport, mean_logs
from keras_icnn.optimizers.lbfgs_common import flat_bounds, zero_gradient
from keras_icnn.validation import finite_number, positive_int

__all__ = ["LBFGS"]

#: LBFGS restarts when the last segment reduced some image's objective by more than this
#: (relative): every image stopped, but not because nothing can be gained.
RESTART_PROGRESS = 1e-6


def _clip_reparam(lo, hi):
    lo32, hi32 = tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)

    def from_u(u):
        return tf.clip_by_value(u, lo32, hi32)

    def penalty(u, z, mu):
        return 0.5 * mu * tf.reduce_sum(tf.square(u - z), axis=1)

    return (lambda z: z), from_u, penalty


def _sigmoid_reparam(lo, hi):
    both = np.isfinite(lo) & np.isfinite(hi)
    free = ~np.isfinite(lo) & ~np.isfinite(hi)
    if not np.all(both | free):
        raise ValueError("bounds_method='sigmoid' needs two-sided bounds (or none) for every "
                         "element; use bounds_method='clip' for one-sided bounds")
    base, width, eps = np.where(both, lo, 0.0), np.where(both, hi - lo, 0.0), 1e-4

    def to_u(z):
        r = np.where(width > 0, (z - base) / np.where(width > 0, width, 1.0), 0.5)
        r = np.clip(r, eps, 1.0 - eps)
        return np.where(both, np.log(r) - np.log1p(-r), z).astype(np.float32)

    both_t = tf.constant(both)
    base_t, width_t = tf.constant(base, tf.float32), tf.constant(width, tf.float32)
    lo32 = tf.constant(np.where(both, lo, -np.inf), tf.float32)
    hi32 = tf.constant(np.where(both, hi, np.inf), tf.float32)

    def from_u(u):
        s = base_t + width_t * tf.sigmoid(u)
        return tf.clip_by_value(tf.where(both_t, s, u), lo32, hi32)

    return to_u, from_u, None


@config.register
class LBFGS(Optimizer):
    """Batched L-BFGS from TensorFlow Probability (``tfp.optimizer.lbfgs_minimize``).

    A batch of N images is N independent problems solved together (``z`` flattened to
    ``[N, D]``); converged or failed images stop moving while the others go on.  The run ends
    after ``iterations`` iterations, when a callback stops it, or when every image has converged
    or failed (TFP's ``converged_all``) and a restart (see ``restart``) brings nothing.

    Bounds: TFP has no box constraints (TFP issue #627).  ``bounds_method`` chooses how ``z`` is
    kept within ``param.bounds()``:

    * ``"clip"`` (default): L-BFGS runs on an unconstrained ``u`` and the objective is evaluated
      at ``z = clip(u, lower, upper)``, plus a penalty ``mu_n / 2 * ||u - z||^2`` that pulls
      coordinates which left the box back towards its face, with ``mu_n = penalty *`` (the mean
      absolute gradient of image n at the start).  ``z`` is inside the bounds by construction;
      the penalised problem is continuous and its minimisers are exactly those of the bounded
      problem (any ``u`` outside the box is beaten by its projection, which has the same ``z``);
      where no bound is active the iterates are plain L-BFGS's.  The kinks at the faces make
      L-BFGS stall once many pixels sit on a bound: it then restarts (below) from the projected
      point, which is what lets it reach L-BFGS-B's bounded optimum.  A small ``penalty`` (0.01)
      worked best in our tests (0.1 and 1 stalled higher).
    * ``"sigmoid"``: ``z = lower + (upper - lower) * sigmoid(u)`` (two-sided bounds only); smooth,
      but it distorts the problem near the bounds (pixels close to a bound hardly move; a start
      exactly on a bound is nudged inside by 1e-4 of the range) and converges much more slowly.

    ``restart``: when every image has stopped (converged, which with the default tolerances
    mostly means "made no progress", or failed its line search) but the last segment still
    reduced some image's objective by more than 1e-6 (relative), L-BFGS starts again from the
    current point (projected onto the box) with an empty curvature memory.  The restart costs one
    evaluation and is not an iteration.

    Priors' weights are evaluated at the iteration's index; L-BFGS's curvature memory assumes a
    fixed objective, so prefer constant weights.  A NaN/Inf loss in any image stops the whole
    batch (:class:`~keras_icnn.errors.NonFiniteLossError`): TFP's line search steps back from
    non-finite trial points, so the error is raised when an image's line search failed after
    meeting one, or if a non-finite value was accepted.

    Args:
        iterations: maximum number of iterations (the original ``maxiter`` default, 500).
        num_correction_pairs: L-BFGS memory (scipy's ``maxcor``).
        tolerance: stop an image when the sup-norm of its gradient is below this.
        x_tolerance, f_relative_tolerance, f_absolute_tolerance: TFP's other stopping criteria
            (0 disables them).
        max_line_search_iterations: of TFP's Hager-Zhang line search.
        bounds_method: ``"clip"`` or ``"sigmoid"``, see above.
        penalty: the factor of the ``"clip"`` method's penalty.
        restart: restart a stalled run, see above.
        jit_compile: compile the objective and gradient with XLA.

    After a run: ``initial_losses_`` float32 ``[N]`` (objective at the start),
    ``iteration_losses_`` float32 ``[iterations run, N]`` (objective per iteration) and
    ``results_`` ``{"converged", "failed" (per image), "num_iterations", "restarts",
    "num_objective_evaluations"}``.  Per-iteration logs add ``grad_max`` (mean over images of
    the sup-norm of the gradient that L-BFGS sees) and ``evaluations`` (objective evaluations of
    the batch so far; TFP's Hager-Zhang line search takes about 3 per iteration, scipy's about 1).
    """

    iterations = 500
    default_pixel_bounds = "valid"

    def __init__(self, iterations=500, num_correction_pairs=10, tolerance=1e-8, x_tolerance=0.0,
                 f_relative_tolerance=0.0, f_absolute_tolerance=0.0,
                 max_line_search_iterations=50, bounds_method="clip", penalty=0.01,
                 restart=True, jit_compile=False):
        self.iterations = positive_int(iterations, "iterations")
        self.num_correction_pairs = positive_int(num_correction_pairs, "num_correction_pairs")
        self.tolerance = finite_number(tolerance, "tolerance")
        self.x_tolerance = finite_number(x_tolerance, "x_tolerance")
        self.f_relative_tolerance = finite_number(f_relative_tolerance, "f_relative_tolerance")
        self.f_absolute_tolerance = finite_number(f_absolute_tolerance, "f_absolute_tolerance")
        self.max_line_search_iterations = positive_int(max_line_search_iterations,
                                                       "max_line_search_iterations")
        if bounds_method not in ("clip", "sigmoid"):
            raise ValueError(f"bounds_method: expected 'clip' or 'sigmoid', got {bounds_method!r}")
        self.bounds_method = bounds_method
        self.penalty = finite_number(penalty, "penalty", positive=True)
        self.restart = bool(restart)
        self.jit_compile = bool(jit_compile)
        self.initial_losses_ = None
        self.iteration_losses_ = None
        self.results_ = None



    def get_config(self):
        return {k: getattr(self, k) for k in (
            "iterations", "num_correction_pairs", "tolerance", "x_tolerance",
            "f_relative_tolerance", "f_absolute_tolerance", "max_line_search_iterations",
            "bounds_method", "penalty", "restart", "jit_compile")}

    def options(self):
        return dict(num_correction_pairs=self.num_correction_pairs, tolerance=self.tolerance,
                    x_tolerance=self.x_tolerance, f_relative_tolerance=self.f_relative_tolerance,
                    f_absolute_tolerance=self.f_absolute_tolerance,
                    max_line_search_iterations=self.max_line_search_iterations)

    def reparam(self, lo, hi):
        """``(to_u(z) numpy, from_u(u) tensor, penalty(u, z, mu) tensor or None)``."""
        if lo is None:
            return (lambda z: z), (lambda u: u), None
        return (_clip_reparam if self.bounds_method == "clip" else _sigmoid_reparam)(lo, hi)

    # -- a run -----------------------------------------------------------------------------------
    def build(self, objective, z, total):
        if not self.reusable(objective, z, total):
            self.compile(objective, z, total)
        self.start(np.asarray(z.numpy(), np.float64).reshape(self.shape[0], -1))

    def compile(self, objective, z, total):
        """The variables and compiled functions of runs on ``objective`` and ``z``."""
        self.objective, self.z, self.total = objective, z, int(total)
        self.shape = tuple(int(s) for s in z.shape)
        n, d = self.shape[0], int(np.prod(self.shape[1:]))
        self.to_u, self.from_u, self.penalty_fn = self.reparam(*flat_bounds(objective.param,
                                                                           self.shape))
        self.step_var = tf.Variable(0, dtype=tf.int32, trainable=False, name="lbfgs_step")
        self.mu = tf.Variable(tf.zeros([n], tf.float32), trainable=False, name="lbfgs_penalty")
        _, probe_logs = objective.value(z, 0, total)  # the names of the logs
        self.stash_u = tf.Variable(tf.zeros([n, d], tf.float32), trainable=False)
        self.stash = {k: tf.Variable(tf.zeros([n], tf.float32), trainable=False)
                      for k in probe_logs}
        self.nonfinite = tf.Variable(tf.zeros([n], tf.bool), trainable=False)
        self.vg = tf.function(self.value_and_gradient, jit_compile=self.jit_compile)
        self.one_iteration = tf.function(self.traced_iteration, autograph=False)

    def start(self, z0):
        self.step_var.assign(0)
        self.mu.assign(tf.zeros_like(self.mu))
        u0 = self.to_u(z0).astype(np.float32)
        self.state = self.fresh_state(tf.constant(u0))
        f0, g0 = self.state.objective_value.numpy(), self.state.objective_gradient.numpy()
        self.initial_losses_ = f0.astype(np.float32)
        self.start_flags = (bool(np.all(np.isfinite(f0)) and np.all(np.isfinite(g0))),
                      zero_gradient(f0, g0))
        if self.penalty_fn is not None:  # the start is inside the box: no penalty yet
            self.mu.assign(self.penalty * np.mean(np.abs(g0), axis=1).astype(np.float32))
        self.segment_f, self.evals_before, self.restarts, self.losses = f0, 0, 0, []

    def fresh_state(self, u):
        """L-BFGS started at ``u`` with an empty memory (eagerly, ``max_iterations=0``: TFP's
        loop body is not traced twice)."""
        import tensorflow_probability as tfp
        return tfp.optimizer.lbfgs_minimize(self.vg, initial_position=u, max_iterations=0,
                                            **self.options())

    def objective_of_u(self, u):
        zc = self.from_u(u)
        f, logs = self.objective.value(tf.reshape(zc, self.shape), self.step_var, self.total)
        if self.penalty_fn is not None:
            f = f + self.penalty_fn(u, zc, self.mu)
        return f, logs

    def value_and_gradient(self, u):
        """Where TFP evaluates the objective; keeps the logs of its last evaluation, and
        whether it met NaN/Inf."""
        with tf.GradientTape() as tape:
            tape.watch(u)
            f, logs = self.objective_of_u(u)
            summed = tf.reduce_sum(f)
        g = tape.gradient(summed, u)
        g = tf.zeros_like(u) if g is None else g
        self.stash_u.assign(u)
        for k, v in self.stash.items():
            v.assign(tf.cast(logs[k], tf.float32))
        bad = ~tf.math.is_finite(f) | tf.reduce_any(~tf.math.is_finite(g), axis=1)
        self.nonfinite.assign(self.nonfinite | bad)
        return f, g

    def accepted_logs(self, position):
        """The logs at the accepted point: those of the last evaluation when it was there
        (the usual case), else one more forward pass."""
        same = tf.reduce_all(tf.equal(self.stash_u.read_value(), position))
        return tf.cond(same, lambda: {k: v.read_value() for k, v in self.stash.items()},
                       lambda: {k: tf.cast(v, tf.float32) for k, v in self.objective.value(
                           tf.reshape(self.from_u(position), self.shape), self.step_var,
                           self.total)[1].items()})

    def traced_iteration(self, state):
        import tensorflow_probability as tfp
        self.nonfinite.assign(tf.zeros_like(self.nonfinite))
        new = tfp.optimizer.lbfgs_minimize(
            self.vg, None, previous_optimizer_results=state,
            max_iterations=state.num_iterations + 1, **self.options())
        finite = (tf.reduce_all(tf.math.is_finite(new.objective_value)) &
                  tf.reduce_all(tf.math.is_finite(new.objective_gradient)) &
                  tf.reduce_all(tf.math.is_finite(new.position)))
        finite &= ~tf.reduce_any(new.failed & ~state.failed & self.nonfinite)
        grad_max = tf.reduce_max(tf.abs(new.objective_gradient), axis=1)
        return (new, self.accepted_logs(new.position), finite, grad_max,
                tf.reshape(self.from_u(new.position), self.shape))

    # -- one iteration ---------------------------------------------------------------------------
    def start_check(self):
        return self.start_flags

    def has_next(self):
        """False when every image stopped and a restart would bring nothing."""
        if bool(tf.reduce_all(self.state.converged | self.state.failed)):
            return self.restart_stalled()
        return True

    def step(self, t):
        self.step_var.assign(t)
        new, logs, finite, grad_max, z_new = self.one_iteration(self.state)
        if not bool(finite):
            return StepReport({}, self.initial_losses_, finite=False)
        self.z.assign(z_new)
        self.state = new
        self.losses.append(np.asarray(logs.get("total_loss", logs["loss"]), np.float32))
        report = mean_logs(logs)
        report["grad_max"] = tf.reduce_mean(grad_max)
        report["evaluations"] = tf.cast(new.num_objective_evaluations + self.evals_before,
                                        tf.float32)
        return StepReport(report, np.asarray(logs["loss"], np.float32))

    def restart_stalled(self):
        """Every image stopped: restart from the (projected) point with an empty memory if
        the last segment still made progress; True if L-BFGS goes on."""
        f_now = self.state.objective_value.numpy()
        if not (self.restart and np.any(
                f_now < self.segment_f - RESTART_PROGRESS * np.abs(self.segment_f))):
            return False
        self.evals_before += int(self.state.num_objective_evaluations)
        u = self.state.position
        self.state = self.fresh_state(self.from_u(u) if self.penalty_fn is not None else u)
        self.restarts += 1
        self.segment_f = self.state.objective_value.numpy()
        return not bool(tf.reduce_all(self.state.converged | self.state.failed))

    # -- the end and the state -------------------------------------------------------------------
    def finish(self):
        n = self.shape[0]
        self.iteration_losses_ = (np.stack(self.losses) if self.losses
                                  else np.zeros((0, n), np.float32))
        self.results_ = {
            "converged": self.state.converged.numpy(), "failed": self.state.failed.numpy(),
            "num_iterations": len(self.losses), "restarts": self.restarts,
            "num_objective_evaluations": self.evals_before + int(
                self.state.num_objective_evaluations)}

    def get_state(self):
        state = {f"lbfgs/{k}": np.asarray(v) for k, v in self.state._asdict().items()}
        state.update(mu=self.mu.numpy(), segment_f=np.asarray(self.segment_f),
                     evals_before=np.asarray(self.evals_before),
                     restarts=np.asarray(self.restarts),
                     losses=np.asarray(self.losses, np.float32).reshape(-1, self.shape[0]))
        return state

    def set_state(self, state):
        super().set_state(state)
        fields = {k[6:]: tf.constant(v) for k, v in state.items() if k.startswith("lbfgs/")}
        self.state = type(self.state)(**fields)
        self.mu.assign(state["mu"])
        self.segment_f = np.asarray(state["segment_f"])
        self.evals_before, self.restarts = int(state["evals_before"]), int(state["restarts"])
        self.losses = list(np.asarray(state["losses"], np.float32))
