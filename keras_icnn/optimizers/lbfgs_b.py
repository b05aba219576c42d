"""scipy's L-BFGS-B (what the original ``icnn_lbfgs`` ran) as a resumable step object.

scipy's ``minimize(method="L-BFGS-B")`` is a loop around one reverse-communication routine,
``setulb``: each call either asks for the objective and gradient at ``x`` ("FG"), reports a
new iterate ("NEW_X"), or ends.  Everything L-BFGS-B carries between calls (its curvature
memory and line-search state) lives in a few NumPy arrays (``wa``, ``iwa``, ``task``,
``lsave``, ``isave``, ``dsave``, ``ln_task``).  :class:`ScipyLBFGSB` drives that routine
itself, exactly as ``minimize`` does (same start clipping, same memoised evaluations, same
``maxiter``/``maxfun`` tests), so each image's run is the run scipy makes on it alone; and its
state is those arrays, so a checkpointed run resumes bit for bit.  N images are N such runs
side by side: the evaluations they ask for at the same moment are computed in one batched call.
``setulb``'s signature is that of scipy >= 1.15 (the C translation); the parity test against
``scipy.optimize.minimize`` guards it.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy.optimize import OptimizeResult, _lbfgsb

from keras_icnn import config
from keras_icnn.optimizers.base import Optimizer, StepReport
from keras_icnn.optimizers import xla
from keras_icnn.optimizers.lbfgs_common import flat_bounds, value_and_gradient, zero_gradient
from keras_icnn.validation import finite_number, positive_int

__all__ = ["ScipyLBFGSB"]

#: ``setulb``'s task codes
_FG, _NEW_X, _CONVERGENCE, _STOP = 3, 1, 4, 5
_STATUS = {4: "CONVERGENCE", 5: "STOP", 6: "WARNING", 7: "ERROR", 8: "ABNORMAL"}
_REASONS = {401: "NORM OF PROJECTED GRADIENT <= PGTOL",
            402: "RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
            502: "TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
            504: "TOTAL NO. OF ITERATIONS REACHED LIMIT", 505: "CALLBACK REQUESTED HALT"}


def _new_runs(x0, m):
    """The arrays of N fresh ``setulb`` runs (scipy's workspace sizes)."""
    n, d = x0.shape
    zeros = np.zeros
    return {"x": x0.copy(), "f": zeros(n), "g": zeros((n, d)),
            "wa": zeros((n, 2 * m * d + 5 * d + 11 * m * m + 8 * m)),
            "iwa": zeros((n, 3 * d), np.int32), "task": zeros((n, 2), np.int32),
            "ln_task": zeros((n, 2), np.int32), "lsave": zeros((n, 4), np.int32),
            "isave": zeros((n, 44), np.int32), "dsave": zeros((n, 29)),
            "nit": zeros(n, np.int64), "nfev": np.ones(n, np.int64),
            "running": np.ones(n, bool), "waiting": np.zeros(n, bool),
            "pending": np.ones(n, bool), "last_x": x0.copy(), "last_f": zeros(n),
            "last_g": zeros((n, d))}


def single_threaded_blas():
    """Hold BLAS to one thread during a run (``threadpoolctl``; undone by
    ``.restore_original_limits()``): L-BFGS-B's vector operations are small, and OpenBLAS's
    worker threads, which keep spinning after each call, would otherwise take the cores
    TensorFlow needs (on a 2-core machine VGG19 iterations ran 3.7x slower)."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def _nbd(lo, hi):
    """scipy's bound types: 0 none, 1 lower, 2 both, 3 upper."""
    has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
    return np.select([has_lo & has_hi, has_lo, has_hi], [2, 1, 3], 0).astype(np.int32)


@config.register
class ScipyLBFGSB(Optimizer):
    """``scipy.optimize.minimize(method="L-BFGS-B", jac=True, bounds=...)``, one iteration a step.

    Bounds are element by element from ``param.bounds()``.  The objective and gradient come
    from one compiled TensorFlow function in float32; L-BFGS-B sees float64.  N images are N
    runs in lock step; an image whose run ended (converged) stays where it is while the others
    go on.  Logs are averaged over the images still running; ``grad_max`` is the mean sup-norm
    of the projected gradient (what ``gtol`` is tested against) and ``evaluations`` the mean
    number of objective evaluations so far.

    Args:
        iterations: ``maxiter`` (default 500, the original function's; the paper's scripts
            used 200).
        maxcor, ftol, gtol, maxfun, maxls: scipy's L-BFGS-B options (scipy's defaults).
        disp: print each image's final message at the end.
        jit_compile: compile the objective and gradient with XLA: ``True``, ``False`` or
            ``"auto"`` (default: the faster on this device type, see
            :mod:`keras_icnn.optimizers.xla`).

    After a run: ``initial_losses_`` float32 ``[N]``; ``evaluation_losses_`` per image the
    objective at every evaluation L-BFGS-B asked for (the original ``loss_list``);
    ``iteration_losses_`` float32 ``[iterations run, N]``; ``results_`` an ``OptimizeResult``
    per image.
    """

    iterations = 500
    default_pixel_bounds = "valid"

    def __init__(self, iterations=500, maxcor=10, ftol=2.220446049250313e-09, gtol=1e-05,
                 maxfun=15000, maxls=20, disp=False, jit_compile="auto"):
        self.iterations = positive_int(iterations, "iterations")
        self.maxcor = positive_int(maxcor, "maxcor")
        self.maxfun = positive_int(maxfun, "maxfun")
        self.maxls = positive_int(maxls, "maxls")
        self.ftol, self.gtol = finite_number(ftol, "ftol"), finite_number(gtol, "gtol")
        self.disp = bool(disp)
        self.jit_compile = xla.check(jit_compile)
        self.initial_losses_ = self.evaluation_losses_ = self.results_ = None
        self.iteration_losses_ = None

    def get_config(self):
        return {"iterations": self.iterations, "maxcor": self.maxcor, "ftol": self.ftol,
                "gtol": self.gtol, "maxfun": self.maxfun, "maxls": self.maxls,
                "disp": self.disp, "jit_compile": self.jit_compile}

    # -- a run ------------------------------------------------------------------------------
    def build(self, objective, z, total):
        self.z, self.total = z, int(total)
        self.shape = tuple(int(s) for s in z.shape)
        n, d = self.shape[0], int(np.prod(self.shape[1:]))
        lo, hi = flat_bounds(objective.param, self.shape)
        self.lo = np.zeros((n, d)) if lo is None else np.where(np.isfinite(lo), lo, 0.0)
        self.hi = np.zeros((n, d)) if hi is None else np.where(np.isfinite(hi), hi, 0.0)
        self.nbd = np.zeros((n, d), np.int32) if lo is None else _nbd(lo, hi)
        self.bounds = (lo, hi)
        if not self.reusable(objective, z, total):
            self.step_var = tf.Variable(0, dtype=tf.int32, trainable=False, name="lbfgsb_step")
            self.evaluate = value_and_gradient(objective, self.shape, self.step_var, total,
                                               self.jit_compile)
        self.step_var.assign(0)
        x0 = np.asarray(z.numpy(), np.float64).reshape(n, d)
        if lo is not None:
            x0 = np.clip(x0, lo, hi)
        self.state = _new_runs(x0, self.maxcor)
        f0, g0, logs0 = self.batch_eval(x0)
        self.remember(range(n), x0, f0, g0, logs0)
        self.initial_losses_ = f0.astype(np.float32)
        self.start_flags = (bool(np.all(np.isfinite(f0)) and np.all(np.isfinite(g0))),
                            zero_gradient(f0, g0))
        self.evals = [[np.float32(f)] for f in f0]  # one entry per evaluation, as scipy's nfev
        self.losses = []
        self.blas = single_threaded_blas()

    def batch_eval(self, x):
        f, g, logs = self.evaluate(tf.constant(x, tf.float32))
        return (f.numpy().astype(np.float64), g.numpy().astype(np.float64),
                {k: np.asarray(v, np.float32) for k, v in logs.items()})

    def remember(self, rows, x, f, g, logs):
        """Cache the evaluations of ``rows`` (scipy memoises the last point)."""
        s = self.state
        for i in rows:
            s["last_x"][i], s["last_f"][i], s["last_g"][i] = x[i], f[i], g[i]
            for k, v in logs.items():
                s.setdefault(f"logs/{k}", np.zeros(len(s["f"]), np.float32))[i] = v[i]

    # -- one iteration ------------------------------------------------------------------------
    def start_check(self):
        return self.start_flags

    def has_next(self):
        """Let each image that finished an iteration go on until it asks for an evaluation
        (or its run ends, e.g. converged); True while some image waits for one."""
        s = self.state
        for i in np.flatnonzero(s["pending"]):
            s["waiting"][i] = self.drive(i) == "eval"
        s["pending"][:] = False
        return bool(np.any(s["waiting"]))

    def step(self, t):
        self.step_var.assign(t)
        going = self.advance()
        if going is None:  # an evaluation met NaN/Inf: z keeps the last accepted point
            return StepReport({}, self.state["last_f"].astype(np.float32), finite=False)
        self.refresh(going)
        return self.report(going)

    def advance(self):
        """Answer the waiting images and run them to the end of their iteration; the images
        that made one (the others ended), or None when an evaluation was not finite."""
        s, going = self.state, []
        wanted = list(np.flatnonzero(s["waiting"]))
        while wanted:
            if not self.answer(wanted):
                return None
            done = {i: self.drive(i) for i in wanted}
            going += [i for i, r in done.items() if r == "iter"]
            wanted = [i for i, r in done.items() if r == "eval"]
        s["waiting"][:] = False
        s["pending"][going] = True
        return sorted(going)

    def drive(self, i):
        """Call ``setulb`` for image ``i`` until it needs an evaluation ("eval"), finished an
        iteration ("iter") or ended ("end")."""
        s = self.state
        while True:
            f = np.array(s["f"][i])
            _lbfgsb.setulb(self.maxcor, s["x"][i], self.lo[i], self.hi[i], self.nbd[i], f,
                           s["g"][i], self.ftol / np.finfo(float).eps, self.gtol, s["wa"][i],
                           s["iwa"][i], s["task"][i], s["lsave"][i], s["isave"][i],
                           s["dsave"][i], self.maxls, s["ln_task"][i])
            task = s["task"][i][0]
            if task == _FG and np.array_equal(s["x"][i], s["last_x"][i]):
                self.feed(i)
                continue
            if task == _FG:
                return "eval"
            if task == _NEW_X:
                return self.new_iterate(i)
            s["running"][i] = False
            return "end"

    def feed(self, i):
        """Hand image ``i``'s cached evaluation to L-BFGS-B."""
        s = self.state
        s["f"][i], s["g"][i] = s["last_f"][i], s["last_g"][i]

    def answer(self, rows):
        """Evaluate the points ``rows`` asked for, in one batch; False if one is not finite."""
        s = self.state
        x = s["last_x"].copy()
        x[rows] = s["x"][rows]
        f, g, logs = self.batch_eval(x)
        if not (np.all(np.isfinite(f[rows])) and np.all(np.isfinite(g[rows]))):
            return False
        self.remember(rows, x, f, g, logs)
        s["nfev"][rows] += 1
        for i in rows:
            self.evals[i].append(np.float32(f[i]))
            self.feed(i)
        return True

    def new_iterate(self, i):
        s = self.state
        s["nit"][i] += 1
        if s["nit"][i] >= self.total:
            s["task"][i] = (_STOP, 504)
        elif s["nfev"][i] > self.maxfun:
            s["task"][i] = (_STOP, 502)
        return "iter"

    def refresh(self, going):
        """Logs at accepted points that differ from the last evaluation (rare); scipy's memo
        of the last evaluation is left as it is."""
        s = self.state
        stale = [i for i in going if not np.array_equal(s["x"][i], s["last_x"][i])]
        self.stale_g = {}
        if stale:
            x = s["last_x"].copy()
            x[stale] = s["x"][stale]
            _, g, logs = self.batch_eval(x)
            for i in stale:
                self.stale_g[i] = g[i]
                for k, v in logs.items():
                    s[f"logs/{k}"][i] = v[i]

    def report(self, going):
        s = self.state
        self.z.assign(s["x"].reshape(self.shape).astype(np.float32))
        per_image = {k[5:]: v.copy() for k, v in s.items() if k.startswith("logs/")}
        self.losses.append(per_image.get("total_loss", per_image["loss"]))
        logs = {k: float(np.mean(v[going])) for k, v in per_image.items()}
        logs["grad_max"] = float(np.mean([self.projected_grad_max(i) for i in going]))
        logs["evaluations"] = float(np.mean([len(self.evals[i]) for i in going]))
        return StepReport(logs, per_image["loss"])

    def projected_grad_max(self, i):
        x, g = self.state["x"][i], self.stale_g.get(i, self.state["last_g"][i])
        lo, hi = self.bounds
        if lo is None:
            return np.max(np.abs(g))
        return np.max(np.abs(np.clip(x - g, lo[i], hi[i]) - x))

    # -- the end and the state ------------------------------------------------------------------
    def finish(self):
        self.blas.restore_original_limits()
        n = len(self.evals)
        for i in range(n):  # stopped by the loop (a callback, the end of the budget)
            if self.state["running"][i] and self.state["task"][i][0] != _STOP:
                self.state["task"][i] = (_STOP, 505)
        self.evaluation_losses_ = [np.asarray(e, np.float32) for e in self.evals]
        self.iteration_losses_ = (np.stack(self.losses) if self.losses
                                  else np.zeros((0, n), np.float32))
        self.results_ = [self.result(i) for i in range(n)]
        if self.disp:
            for i, res in enumerate(self.results_):
                who = "" if n == 1 else f" image {i}"
                print(f"L-BFGS-B{who}: {res.message} (nit={res.nit}, nfev={res.nfev}, "
                      f"f={res.fun:g})", flush=True)

    def result(self, i):
        s = self.state
        code, reason = (int(c) for c in s["task"][i])
        message = f"{_STATUS.get(code, 'RUNNING')}: {_REASONS.get(reason, '')}".rstrip(": ")
        return OptimizeResult(x=s["x"][i].copy(), fun=float(s["f"][i]), jac=s["g"][i].copy(),
                              nit=int(s["nit"][i]), nfev=int(s["nfev"][i]), message=message,
                              status=0 if code == _CONVERGENCE else 1,
                              success=code == _CONVERGENCE)

    def get_state(self):
        state = {k: v.copy() for k, v in self.state.items()}
        state["evaluations"] = _pad([np.asarray(e, np.float32) for e in self.evals])
        state["losses"] = np.asarray(self.losses, np.float32).reshape(-1, len(self.evals))
        return state

    def set_state(self, state):
        state = dict(state)
        counts = state.pop("evaluations")
        self.losses = list(np.asarray(state.pop("losses"), np.float32))
        self.evals = [list(row[np.isfinite(row)]) for row in counts]
        self.state = {k: np.array(v) for k, v in state.items()}


def _pad(rows):
    """Variable-length float rows as one ``[N, max]`` array padded with NaN."""
    out = np.full((len(rows), max([len(r) for r in rows] + [0])), np.nan, np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
