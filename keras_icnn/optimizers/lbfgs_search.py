"""The batched pieces of :class:`~keras_icnn.optimizers.lbfgs.LBFGS`, in TensorFlow.

Every tensor has the images on its first axis (``[N]``, ``[N, D]``; the curvature memory
``[m, N, D]``) and every image is its own problem: its own memory, search direction, step
length and line search.  The line search evaluates the trial points of all images in one
batched call, so an iteration costs as many batched evaluations as its slowest image needs;
with the usual scaling of the initial Hessian (``s'y / y'y``) the unit step is accepted at the
first trial most of the time, i.e. one evaluation per iteration.
"""
from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf

__all__ = ["C1", "C2", "Point", "search_direction", "push_pair", "line_search"]

#: sufficient decrease (Armijo) and curvature (weak Wolfe) constants: scipy's ``dcsrch``'s
C1, C2 = 1e-3, 0.9
#: a curvature pair enters an image's memory only if ``s'y > PAIR_EPS * y'y``
PAIR_EPS = float(np.finfo(np.float32).eps)
#: the least and the most factor by which a trial step grows while the curvature condition
#: asks for a longer one
EXTRAPOLATE = (2.0, 100.0)

#: A point on each image's search line: step ``a`` [N], objective ``f`` [N], directional
#: derivative ``dphi`` [N], gradient ``g`` [N, D], the objective's logs ``{name: [N]}`` and
#: the position ``x`` [N, D].
Point = collections.namedtuple("Point", ["a", "f", "dphi", "g", "logs", "x"])


def dot(a, b):
    """Row-wise dot products over the last axis."""
    return tf.reduce_sum(a * b, axis=-1)


def search_direction(g, s, y):
    """``(-H g, has_memory)``: the two-loop recursion over each image's pairs ``s, y``
    ``[m, N, D]`` (oldest first; an all-zero pair is empty and contributes nothing), with
    ``H0 = s'y / y'y`` of the newest pair; ``has_memory`` [N] False where an image has none."""
    sy, yy = dot(s, y), dot(y, y)
    m = int(s.shape[0])
    q, alphas = g, [None] * m
    for i in reversed(range(m)):
        alphas[i] = tf.math.divide_no_nan(dot(s[i], q), sy[i])
        q = q - alphas[i][:, None] * y[i]
    has_memory = sy[-1] > 0
    gamma = tf.where(has_memory, tf.math.divide_no_nan(sy[-1], yy[-1]), tf.ones_like(sy[-1]))
    r = gamma[:, None] * q
    for i in range(m):
        beta = tf.math.divide_no_nan(dot(y[i], r), sy[i])
        r = r + (alphas[i] - beta)[:, None] * s[i]
    return -r, has_memory


def push_pair(s, y, s_new, y_new, keep):
    """The memories with ``(s_new, y_new)`` [N, D] appended (the oldest pair dropped) for the
    images where ``keep`` [N] is True and ``s'y > PAIR_EPS * y'y``; unchanged elsewhere.
    Returns ``(s, y, kept)``."""
    kept = keep & (dot(s_new, y_new) > PAIR_EPS * dot(y_new, y_new))
    k = kept[None, :, None]
    s = tf.where(k, tf.concat([s[1:], s_new[None]], 0), s)
    y = tf.where(k, tf.concat([y[1:], y_new[None]], 0), y)
    return s, y, kept


def pick(mask, new, old):
    """Per image: ``new`` where ``mask`` [N], else ``old`` (any nest of ``[N, ...]`` tensors)."""
    def one(a, b):
        m = tf.reshape(mask, [-1] + [1] * (a.shape.rank - 1))
        return tf.where(m, a, b)
    return tf.nest.map_structure(one, new, old)


def cubic_min(a, fa, da, b, fb, db):
    """The minimiser of the cubic through ``(a, fa, da)`` and ``(b, fb, db)``; NaN where it
    has none (Nocedal & Wright, eq. 3.59)."""
    d1 = da + db - 3.0 * tf.math.divide_no_nan(fa - fb, a - b)
    disc = d1 * d1 - da * db
    d2 = tf.sign(b - a) * tf.sqrt(tf.maximum(disc, 0.0))
    t = b - (b - a) * tf.math.divide_no_nan(db + d2 - d1, db - da + 2.0 * d2)
    return tf.where(disc >= 0, t, tf.fill(tf.shape(t), np.float32(np.nan)))


def next_trial(start, lo, hi):
    """The next step of each image.  While no step failed: beyond ``lo``, where the derivative
    along the line, linear through its values at 0 and at ``lo``, vanishes (the minimiser of a
    quadratic), 2 to 100 times ``lo``.  Else the cubic interpolation between ``lo`` and the
    failed ``hi``, kept in the middle 80 % of the bracket (one tenth of it after a non-finite
    trial)."""
    a, fa, da = hi
    h = a - lo.a
    t = cubic_min(lo.a, lo.f, lo.dphi, a, fa, da)
    t = tf.where(tf.math.is_finite(t) & tf.math.is_finite(fa), t, lo.a + 0.1 * h)
    t = tf.clip_by_value(t, lo.a + 0.1 * h, a - 0.1 * h)
    secant = lo.a * tf.math.divide_no_nan(start.dphi, start.dphi - lo.dphi)
    secant = tf.where(secant > 0, secant, EXTRAPOLATE[1] * lo.a)
    far = tf.clip_by_value(secant, EXTRAPOLATE[0] * lo.a, EXTRAPOLATE[1] * lo.a)
    return tf.where(tf.math.is_finite(a), t, far)


def line_search(evaluate, x, start, d, alpha0, active, max_evals, project=None):
    """A batched weak-Wolfe line search from ``x`` [N, D] along ``d`` (on the projected path
    ``project(x + a d)`` when ``project`` is given, e.g. onto a box).

    ``evaluate(x) -> (f [N], g [N, D], logs)`` is called once per round on every image's trial
    point (images that are done re-evaluate ``x``); ``start`` is the :class:`Point` at step 0;
    ``alpha0`` [N] the first trial steps; only ``active`` [N] images search.  With ``p`` the
    trial's step from ``x``, an image is done when a trial satisfies the sufficient decrease
    ``f <= f0 + C1 g0'p`` and the curvature condition ``g'p >= C2 g0'p``; after ``max_evals``
    rounds it keeps its best sufficient-decrease point, if any.  Returns ``(lo, evals,
    nonfinite)``: the accepted :class:`Point` (``a == 0`` where an image did not move), the
    rounds run and, per image, whether a trial met NaN/Inf."""
    none = tf.fill(tf.shape(start.f), np.float32(np.inf))
    hi = (none, none, tf.zeros_like(none))

    def body(k, alpha, lo, hi, done, bad):
        step = tf.where(done, tf.zeros_like(alpha), alpha)
        xt = x + step[:, None] * d
        xt = xt if project is None else project(xt)
        f, g, logs = evaluate(xt)
        p = xt - x
        trial = Point(alpha, f, tf.math.divide_no_nan(dot(g, p), alpha), g, logs, xt)
        lo, hi, done, nonfinite = judge(start, trial, dot(start.g, p), lo, hi, done)
        return k + 1, next_trial(start, lo, hi), lo, hi, done, bad | nonfinite

    k, _, lo, _, _, bad = tf.while_loop(
        lambda k, alpha, lo, hi, done, bad: (k < max_evals) & tf.reduce_any(~done), body,
        (tf.constant(0), alpha0, start, hi, ~active, tf.zeros_like(active)))
    return lo, k, bad


def judge(start, trial, slope0, lo, hi, done):
    """One round of :func:`line_search` for the images not ``done`` (``slope0 = g0'p``): a
    trial with sufficient decrease (and no higher than ``lo``) becomes ``lo``, and ends the
    search when it meets the curvature condition too; any other becomes ``hi``.  Returns
    ``(lo, hi, done, nonfinite)`` (the images searching that met NaN/Inf)."""
    live = ~done
    finite = tf.math.is_finite(trial.f) & tf.reduce_all(tf.math.is_finite(trial.g), axis=-1)
    ok = finite & (trial.f <= start.f + C1 * slope0) & (trial.f <= lo.f) & (slope0 < 0)
    lo = pick(live & ok, trial, lo)
    inf = tf.fill(tf.shape(trial.f), np.float32(np.inf))
    failed = (trial.a, tf.where(finite, trial.f, inf),
              tf.where(finite, trial.dphi, tf.zeros_like(inf)))
    hi = pick(live & ~ok, failed, hi)
    done = done | (live & ok & (trial.dphi * trial.a >= C2 * slope0))
    return lo, hi, done, live & ~finite
