"""L-BFGS optimisers: TFP's batched L-BFGS and scipy's exact L-BFGS-B (the original ``icnn_lbfgs``).

Both minimise ``objective.value(z, step, total)`` (feature loss plus weighted priors), treat a
batch of N images as N independent problems, call ``loop.begin(t)`` / ``loop.end(t, logs,
per_image_loss)`` around every iteration (so every Keras callback sees every iteration and can
stop the run) and keep ``z`` within ``objective.param.bounds()``.

* :class:`ScipyLBFGSB` (``"lbfgs-b"``, ``"lbfgs_b"``, ``"scipy"``) is what the original code
  ran: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True, bounds=...)`` with the bounds
  element by element.  The objective and its gradient come from one compiled TensorFlow function
  (float32 inside, float64 at scipy's interface).  For N images, N scipy runs go on side by side
  in lock step, one iteration at a time (each in a helper thread, all TensorFlow work in the
  calling thread): the objective evaluations they ask for at the same moment are computed in one
  batched call, and the loop is told about iteration ``t`` once every image still running has
  finished its iteration ``t``.  Each image's run is exactly the run scipy makes on that image
  alone (a summed problem would couple the line searches).  BLAS is held to one thread during
  the run (OpenBLAS's spinning workers otherwise steal the cores TensorFlow needs).
* :class:`LBFGS` (``"lbfgs"``) runs ``tfp.optimizer.lbfgs_minimize`` on the batch flattened to
  ``[N, D]`` (TFP solves the rows as independent problems), resumed for one iteration at a time
  through ``previous_optimizer_results`` so that the loop sees every iteration.  It runs entirely
  in TensorFlow (GPU friendly), but TFP has no box constraints: by default the objective is
  evaluated at ``clip(u, lower, upper)`` plus an exact penalty on ``u``'s excursion, with
  restarts from the projected point when L-BFGS stalls on the kinks (see ``bounds_method``).
  Its Hager-Zhang line search costs about 3 evaluations per iteration (scipy's about 1), and the
  first iteration compiles a large graph (seconds).

Pitfalls that are turned into errors: a start where the gradient is exactly zero (an all-zero
image in front of ReLUs with zero bias: L-BFGS would report convergence after zero iterations
and return the untouched start) raises :class:`ZeroGradientError`; a loss or gradient that
becomes NaN/Inf raises :class:`keras_icnn.optimizers.NonFiniteLossError` naming the iteration,
with the last finite point kept in ``z``.  (A start outside the bounds is clipped into them,
with a warning, by the parameterisation before the optimiser sees it.)
"""
from __future__ import annotations

import queue
import threading

import numpy as np
import tensorflow as tf

from keras_icnn.validation import finite_number, positive_int
from keras_icnn.errors import NonFiniteLossError, ZeroGradientError
from keras_icnn.optimizers.momentum_gd import Optimizer, _check_iterations

__all__ = ["LBFGS", "ScipyLBFGSB", "OPTIMIZERS"]

#: LBFGS restarts when the last segment reduced some image's objective by more than this
#: (relative): every image stopped, but not because nothing can be gained.
_RESTART_PROGRESS = 1e-6


# ------------------------------------------------------------------------------------------
# shared helpers


def _flat_bounds(param, shape):
    """Per-element ``(lower, upper)`` float64 ``[N, D]`` (``-inf``/``inf`` where unbounded), or
    ``(None, None)`` when nothing is bounded."""
    lo, hi = param.bounds()
    if lo is None and hi is None:
        return None, None
    n, d = shape[0], int(np.prod(shape[1:]))

    def full(b, fill):
        if b is None:
            return np.full((n, d), fill, np.float64)
        b = np.asarray(b, np.float64)
        try:
            return np.broadcast_to(b, shape).reshape(n, d).copy()
        except ValueError:
            raise ValueError(f"param.bounds(): a bound of shape {b.shape} does not broadcast to "
                             f"z of shape {tuple(shape)}") from None

    lo, hi = full(lo, -np.inf), full(hi, np.inf)
    if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo > hi):
        raise ValueError("param.bounds(): a lower bound exceeds its upper bound (or is NaN)")
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return None, None
    return lo, hi


def _check_start(f0, g0, iteration=0):
    """Raise on a non-finite start or a start with zero gradient (per image)."""
    f0 = np.asarray(f0)
    g0 = np.asarray(g0).reshape(len(f0), -1)
    if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(g0))):
        raise NonFiniteLossError(iteration)
    zero = np.flatnonzero((np.max(np.abs(g0), axis=1) == 0) & (f0 != 0))
    if zero.size:
        raise ZeroGradientError(zero.tolist())


def _value_fn(objective, shape, step, total):
    """``z_flat [N, D] -> (objective [N], gradient [N, D], logs {name: [N]})``, not compiled."""

    def fn(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            f, logs = objective.value(tf.reshape(x, shape), step, total)
            summed = tf.reduce_sum(f)
        g = tape.gradient(summed, x)
        if g is None:
            g = tf.zeros_like(x)
        return f, g, logs

    return fn


def _mean_logs(logs, rows=None):
    """Per-image logs ``{name: [N]}`` -> scalar means (over ``rows`` if given)."""
    if rows is None:
        return {k: tf.reduce_mean(v) for k, v in logs.items()}
    return {k: tf.constant(float(np.mean(np.asarray(v)[rows])), tf.float32)
            for k, v in logs.items()}


# ------------------------------------------------------------------------------------------
# TFP L-BFGS


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
    batch (:class:`~keras_icnn.optimizers.NonFiniteLossError`): TFP's line search steps back from
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
        self.iterations = _check_iterations(iterations)
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

    # -- bounds --------------------------------------------------------------------------------
    def _reparam(self, lo, hi):
        """``(to_u(z) numpy, from_u(u) tensor, penalty(u, z, mu) tensor or None)``."""
        if lo is None:
            return (lambda z: z), (lambda u: u), None
        if self.bounds_method == "clip":
            lo32, hi32 = tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)

            def from_u(u):
                return tf.clip_by_value(u, lo32, hi32)

            def penalty(u, z, mu):
                return 0.5 * mu * tf.reduce_sum(tf.square(u - z), axis=1)

            return (lambda z: z), from_u, penalty
        both = np.isfinite(lo) & np.isfinite(hi)
        free = ~np.isfinite(lo) & ~np.isfinite(hi)
        if not np.all(both | free):
            raise ValueError("bounds_method='sigmoid' needs two-sided bounds (or none) for every "
                             "element; use bounds_method='clip' for one-sided bounds")
        base = np.where(both, lo, 0.0)
        width = np.where(both, hi - lo, 0.0)
        eps = 1e-4

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

    # -- the run -------------------------------------------------------------------------------
    def minimize(self, objective, z, iterations, loop):
        import tensorflow_probability as tfp

        total = _check_iterations(iterations)
        shape = tuple(int(s) for s in z.shape)
        n, d = shape[0], int(np.prod(shape[1:]))
        lo, hi = _flat_bounds(objective.param, shape)
        to_u, from_u, penalty = self._reparam(lo, hi)
        step = tf.Variable(0, dtype=tf.int32, trainable=False, name="lbfgs_step")
        mu = tf.Variable(tf.zeros([n], tf.float32), trainable=False, name="lbfgs_penalty")
        # the names of the logs, to stash those of the last evaluation
        _, probe_logs = objective.value(z, 0, total)
        stash_u = tf.Variable(tf.zeros([n, d], tf.float32), trainable=False)
        stash = {k: tf.Variable(tf.zeros([n], tf.float32), trainable=False) for k in probe_logs}
        nonfinite = tf.Variable(tf.zeros([n], tf.bool), trainable=False)

        def objective_of_u(u):
            zc = from_u(u)
            f, logs = objective.value(tf.reshape(zc, shape), step, total)
            if penalty is not None:
                f = f + penalty(u, zc, mu)
            return f, logs

        # one compiled function for every place TFP evaluates the objective (traced once);
        # it keeps the logs of its last evaluation, and whether it met NaN/Inf
        @tf.function(jit_compile=self.jit_compile)
        def value_and_gradient(u):
            with tf.GradientTape() as tape:
                tape.watch(u)
                f, logs = objective_of_u(u)
                summed = tf.reduce_sum(f)
            g = tape.gradient(summed, u)
            if g is None:
                g = tf.zeros_like(u)
            stash_u.assign(u)
            for k, v in stash.items():
                v.assign(tf.cast(logs[k], tf.float32))
            bad = ~tf.math.is_finite(f) | tf.reduce_any(~tf.math.is_finite(g), axis=1)
            nonfinite.assign(nonfinite | bad)
            return f, g

        options = dict(num_correction_pairs=self.num_correction_pairs, tolerance=self.tolerance,
                       x_tolerance=self.x_tolerance,
                       f_relative_tolerance=self.f_relative_tolerance,
                       f_absolute_tolerance=self.f_absolute_tolerance,
                       max_line_search_iterations=self.max_line_search_iterations)

        @tf.function(autograph=False)
        def one_iteration(state):
            nonfinite.assign(tf.zeros([n], tf.bool))
            new = tfp.optimizer.lbfgs_minimize(
                value_and_gradient, None, previous_optimizer_results=state,
                max_iterations=state.num_iterations + 1, **options)
            # the logs at the accepted point: those of the last evaluation when it was there
            # (the usual case), else one more forward pass
            same = tf.reduce_all(tf.equal(stash_u.read_value(), new.position))
            logs = tf.cond(same, lambda: {k: v.read_value() for k, v in stash.items()},
                           lambda: {k: tf.cast(v, tf.float32) for k, v in
                                    objective.value(tf.reshape(from_u(new.position), shape),
                                                    step, total)[1].items()})
            finite = (tf.reduce_all(tf.math.is_finite(new.objective_value)) &
                      tf.reduce_all(tf.math.is_finite(new.objective_gradient)) &
                      tf.reduce_all(tf.math.is_finite(new.position)))
            newly_failed = new.failed & ~state.failed
            finite &= ~tf.reduce_any(newly_failed & nonfinite)
            grad_max = tf.reduce_max(tf.abs(new.objective_gradient), axis=1)
            return new, logs, finite, grad_max, tf.reshape(from_u(new.position), shape)

        u0 = to_u(np.asarray(z.numpy(), np.float64).reshape(n, d)).astype(np.float32)
        # the initial state, eagerly (max_iterations=0: TFP's loop body is not traced twice)
        state = tfp.optimizer.lbfgs_minimize(value_and_gradient, initial_position=tf.constant(u0),
                                             max_iterations=0, **options)
        g0 = state.objective_gradient.numpy()
        self.initial_losses_ = state.objective_value.numpy().astype(np.float32)
        _check_start(self.initial_losses_, g0)
        if penalty is not None:
            mu.assign(self.penalty * np.mean(np.abs(g0), axis=1).astype(np.float32))
            # the start is inside the box: its penalty (and the penalty's gradient) is zero
        losses = []
        segment_f = state.objective_value.numpy()
        evals_before, restarts = 0, 0
        try:
            for t in range(total):
                if bool(tf.reduce_all(state.converged | state.failed)):
                    f_now = state.objective_value.numpy()
                    if not (self.restart and np.any(
                            f_now < segment_f - _RESTART_PROGRESS * np.abs(segment_f))):
                        break
                    # every image stopped but the last segment made progress: restart from the
                    # point (projected onto the box: no penalty left) with an empty memory
                    evals_before += int(state.num_objective_evaluations)
                    u = from_u(state.position) if penalty is not None else state.position
                    state = tfp.optimizer.lbfgs_minimize(value_and_gradient, initial_position=u,
                                                         max_iterations=0, **options)
                    restarts += 1
                    segment_f = state.objective_value.numpy()
                    if bool(tf.reduce_all(state.converged | state.failed)):
                        break
                loop.begin(t)
                step.assign(t)
                new, logs, finite, grad_max, z_new = one_iteration(state)
                if not bool(finite):
                    raise NonFiniteLossError(t + 1)
                z.assign(z_new)
                state = new
                losses.append(np.asarray(logs.get("total_loss", logs["loss"]), np.float32))
                report = _mean_logs(logs)
                report["grad_max"] = tf.reduce_mean(grad_max)
                report["evaluations"] = tf.cast(new.num_objective_evaluations + evals_before,
                                                tf.float32)
                if loop.end(t, report, logs["loss"]):
                    break
        finally:
            self.iteration_losses_ = (np.stack(losses) if losses
                                      else np.zeros((0, n), np.float32))
            self.results_ = {
                "converged": state.converged.numpy(), "failed": state.failed.numpy(),
                "num_iterations": len(losses), "restarts": restarts,
                "num_objective_evaluations": evals_before + int(
                    state.num_objective_evaluations)}


# ------------------------------------------------------------------------------------------
# scipy L-BFGS-B


def _single_threaded_blas():
    """Run scipy's L-BFGS-B with one BLAS thread (``threadpoolctl``).

    Its vector operations are small; OpenBLAS's worker threads, which keep spinning after each
    call, would otherwise take the cores TensorFlow needs (on a 2-core machine VGG19 iterations
    ran 3.7x slower).
    """
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


class _Abort(Exception):
    """Ends a helper thread's scipy run from inside its objective function."""


class _Run(threading.Thread):
    """One image's ``scipy.optimize.minimize`` run; talks to the calling thread by queues."""

    def __init__(self, i, x0, bounds, options, inbox):
        super().__init__(name=f"keras_icnn-lbfgsb-{i}", daemon=True)
        self.i, self.x0, self.bounds, self.options, self.inbox = i, x0, bounds, options, inbox
        self.replies = queue.Queue()

    def _fun(self, x):
        self.inbox.put(("eval", self.i, np.array(x, dtype=np.float64, copy=True)))
        reply = self.replies.get()
        if reply[0] != "result":
            raise _Abort()
        return reply[1], reply[2]

    def _callback(self, intermediate_result):
        self.inbox.put(("iter", self.i, np.array(intermediate_result.x, np.float64, copy=True)))
        if self.replies.get()[0] != "continue":
            raise StopIteration

    def run(self):
        from scipy.optimize import minimize
        try:
            res = minimize(self._fun, self.x0, method="L-BFGS-B", jac=True, bounds=self.bounds,
                           callback=self._callback, options=self.options)
        except _Abort:
            res = None
        except BaseException as e:  # noqa: BLE001  (handed to the calling thread)
            self.inbox.put(("error", self.i, e))
            return
        self.inbox.put(("done", self.i, res))


class ScipyLBFGSB(Optimizer):
    """``scipy.optimize.minimize(method="L-BFGS-B", jac=True, bounds=...)``, as the original.

    Bounds are element by element from ``param.bounds()`` (unbounded elements get none), passed
    as ``scipy.optimize.Bounds`` arrays (what scipy turns the original's list of pairs into).
    The objective and gradient come from one compiled TensorFlow function in float32; scipy
    sees float64.  N images are N separate scipy runs advanced in lock step (see the module
    docstring): per iteration ``t`` the loop gets the logs averaged over the images whose runs
    are still going, and ``per_image_loss`` with each image's latest feature loss.

    Args:
        iterations: ``maxiter`` (default 500, the original function's default; the paper's
            scripts used 200).
        maxcor, ftol, gtol, maxfun, maxls: scipy's L-BFGS-B options (scipy's defaults).
        disp: print scipy's final message per image at the end (scipy >= 1.15 ignores its own
            ``disp``; per-iteration printing is the ``PrintLoss`` callback's job).
        jit_compile: compile the objective and gradient with XLA.

    After a run: ``initial_losses_`` float32 ``[N]`` (objective at the start);
    ``evaluation_losses_``: per image, the objective at every evaluation scipy asked
    for (the original ``loss_list``), float32 arrays; ``iteration_losses_`` float32
    ``[iterations run, N]``; ``results_``: scipy's ``OptimizeResult`` per image (None for a run
    ended by an error).  Logs add ``grad_max`` (mean sup-norm of the projected gradient, what
    ``gtol`` is tested against) and ``evaluations`` (mean evaluations per running image so far).
    """

    iterations = 500
    default_pixel_bounds = "valid"

    def __init__(self, iterations=500, maxcor=10, ftol=2.220446049250313e-09, gtol=1e-05,
                 maxfun=15000, maxls=20, disp=False, jit_compile=False):
        self.iterations = _check_iterations(iterations)
        self.maxcor = positive_int(maxcor, "maxcor")
        self.maxfun = positive_int(maxfun, "maxfun")
        self.maxls = positive_int(maxls, "maxls")
        self.ftol, self.gtol = finite_number(ftol, "ftol"), finite_number(gtol, "gtol")
        self.disp = bool(disp)
        self.jit_compile = bool(jit_compile)
        self.initial_losses_ = None
        self.evaluation_losses_ = None
        self.iteration_losses_ = None
        self.results_ = None

    def minimize(self, objective, z, iterations, loop):
        from scipy.optimize import Bounds

        total = _check_iterations(iterations)
        shape = tuple(int(s) for s in z.shape)
        n, d = shape[0], int(np.prod(shape[1:]))
        lo, hi = _flat_bounds(objective.param, shape)
        step = tf.Variable(0, dtype=tf.int32, trainable=False, name="lbfgsb_step")
        evaluate = tf.function(_value_fn(objective, shape, step, total),
                               jit_compile=self.jit_compile)

        def batch_eval(x):
            f, g, logs = evaluate(tf.constant(x, tf.float32))
            return (f.numpy().astype(np.float64), g.numpy().astype(np.float64),
                    {k: np.asarray(v, np.float32) for k, v in logs.items()})

        x = np.asarray(z.numpy(), np.float64).reshape(n, d)
        f0, g0, logs0 = batch_eval(x)
        self.initial_losses_ = f0.astype(np.float32)
        _check_start(f0, g0)

        current = x.copy()          # the latest accepted point of each image
        requested = x.copy()        # the latest point each image asked about
        last = [(x[i].copy(), f0[i], g0[i], {k: v[i] for k, v in logs0.items()})
                for i in range(n)]  # the last evaluation of each image
        accepted_logs = [{k: v[i] for k, v in logs0.items()} for i in range(n)]
        evals = [[] for _ in range(n)]
        losses = []
        results = [None] * n
        options = {"maxiter": total, "maxcor": self.maxcor, "ftol": self.ftol,
                   "gtol": self.gtol, "maxfun": self.maxfun, "maxls": self.maxls}
        inbox = queue.Queue()
        runs = [_Run(i, x[i].copy(), None if lo is None else Bounds(lo[i], hi[i]), options,
                     inbox) for i in range(n)]
        state = ["running"] * n     # running | eval | barrier | done
        pending_eval = {}

        def answer_evals(t):
            rows = sorted(pending_eval)
            for i in rows:
                requested[i] = pending_eval[i]
            hit = [i for i in rows if np.array_equal(requested[i], last[i][0])]
            miss = [i for i in rows if i not in hit]
            if miss:
                f, g, logs = batch_eval(requested)
                for i in miss:
                    last[i] = (requested[i].copy(), f[i], g[i], {k: v[i] for k, v in logs.items()})
            for i in rows:
                _, fi, gi, _ = last[i]
                if not (np.isfinite(fi) and np.all(np.isfinite(gi))):
                    raise NonFiniteLossError(t + 1)
            for i in rows:
                _, fi, gi, _ = last[i]
                evals[i].append(np.float32(fi))
                state[i] = "running"
                runs[i].replies.put(("result", float(fi), gi))
            pending_eval.clear()

        def receive(timeout=None):
            kind, i, payload = inbox.get(timeout=timeout)
            if kind == "error":
                state[i] = "done"
                raise payload
            if kind == "eval":
                state[i] = "eval"
                pending_eval[i] = payload
            elif kind == "iter":
                state[i] = "barrier"
                current[i] = payload
            else:
                state[i] = "done"
                results[i] = payload

        def release():
            """Let the runs waiting at the end of an iteration go on; return once none is
            running without having asked for something (so a run that converged is done)."""
            for i in range(n):
                if state[i] == "barrier":
                    state[i] = "running"
                    runs[i].replies.put(("continue",))
            while "running" in state:
                receive()

        def advance(t):
            """Let every image run until it finished iteration ``t`` (or its run ended)."""
            while any(s in ("running", "eval") for s in state):
                if "running" in state:
                    receive()
                else:
                    answer_evals(t)

        ending = ["stop"]  # what runs waiting at an iteration's end are told at shutdown

        def shutdown():
            """End every helper run (after the last iteration, a stop, an error or an
            interrupt)."""
            for _ in range(10 * n + 10):
                for i in range(n):
                    if state[i] == "barrier":
                        state[i] = "running"
                        runs[i].replies.put((ending[0],))
                    elif state[i] == "eval":
                        state[i] = "running"
                        runs[i].replies.put(("abort",))
                pending_eval.clear()
                if all(s == "done" for s in state):
                    break
                try:
                    receive(timeout=60)
                except queue.Empty:  # pragma: no cover  (a helper that does not answer)
                    break
                except BaseException:  # noqa: BLE001  (already failing or stopping)
                    pass
            for r in runs:
                r.join(timeout=10)

        blas = _single_threaded_blas()
        try:
            blas.__enter__()
            for r in runs:
                r.start()
            for t in range(total):
                step.assign(t)
                release()
                if all(s == "done" for s in state):
                    break
                loop.begin(t)
                advance(t)
                going = [i for i in range(n) if state[i] == "barrier"]
                if not going:
                    break
                stale = [i for i in going if not np.array_equal(current[i], last[i][0])]
                if stale:
                    f, g, logs = batch_eval(np.where(
                        np.isin(np.arange(n), stale)[:, None], current, requested))
                    for i in stale:
                        last[i] = (current[i].copy(), f[i], g[i],
                                   {k: v[i] for k, v in logs.items()})
                for i in going:
                    accepted_logs[i] = last[i][3]
                z.assign(current.reshape(shape).astype(np.float32))
                per_image = {k: np.array([accepted_logs[i][k] for i in range(n)], np.float32)
                             for k in accepted_logs[0]}
                losses.append(per_image.get("total_loss", per_image["loss"]))
                report = _mean_logs(per_image, going)
                pg = []
                for i in going:
                    gi = last[i][2]
                    if lo is None:
                        pg.append(np.max(np.abs(gi)))
                    else:
                        pg.append(np.max(np.abs(np.clip(current[i] - gi, lo[i], hi[i])
                                                - current[i])))
                report["grad_max"] = tf.constant(float(np.mean(pg)), tf.float32)
                report["evaluations"] = tf.constant(float(np.mean([len(evals[i])
                                                                   for i in going])),
                                                    tf.float32)
                if loop.end(t, report, per_image["loss"]):
                    break
            else:  # the budget is spent: scipy ends the runs itself (its maxiter message)
                ending[0] = "continue"
        finally:
            shutdown()
            blas.__exit__(None, None, None)
            self.evaluation_losses_ = [np.asarray(e, np.float32) for e in evals]
            self.iteration_losses_ = (np.stack(losses) if losses
                                      else np.zeros((0, n), np.float32))
            self.results_ = results
        finals = [i for i in range(n) if results[i] is not None and
                  np.all(np.isfinite(results[i].x))]
        if finals:
            current[finals] = np.stack([results[i].x for i in finals])
            z.assign(current.reshape(shape).astype(np.float32))
        if self.disp:
            for i, res in enumerate(results):
                if res is not None:
                    who = "" if n == 1 else f" image {i}"
                    print(f"L-BFGS-B{who}: {res.message} (nit={res.nit}, nfev={res.nfev}, "
                          f"f={res.fun:g})", flush=True)


OPTIMIZERS = {"lbfgs": LBFGS, "lbfgs-b": ScipyLBFGSB, "lbfgs_b": ScipyLBFGSB,
              "scipy": ScipyLBFGSB}
