"""The batched L-BFGS pieces (keras_icnn.optimizers.lbfgs_search) against independent
references: the dense BFGS inverse update, the Wolfe conditions, and scipy's minimiser."""
import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import minimize, rosen, rosen_der

from keras_icnn.optimizers.lbfgs_search import (C1, C2, Point, line_search, push_pair,
                                                search_direction)


def dense_lbfgs_direction(g, pairs):
    """-H g with H the BFGS inverse built from gamma I by the pairs (oldest first)."""
    s_last, y_last = pairs[-1]
    h = np.eye(len(g)) * (s_last @ y_last) / (y_last @ y_last)
    for s, y in pairs:
        rho = 1.0 / (y @ s)
        v = np.eye(len(g)) - rho * np.outer(y, s)
        h = v.T @ h @ v + rho * np.outer(s, s)
    return -h @ g


def as_memory(pairs_per_image, m, d):
    """Stacked ``[m, N, D]`` memories, the newest pair last, empty slots zero."""
    s = np.zeros((m, len(pairs_per_image), d), np.float32)
    y = np.zeros_like(s)
    for n, pairs in enumerate(pairs_per_image):
        for k, (si, yi) in enumerate(pairs):
            s[m - len(pairs) + k, n], y[m - len(pairs) + k, n] = si, yi
    return tf.constant(s), tf.constant(y)


def test_two_loop_matches_the_dense_bfgs_inverse():
    rng = np.random.default_rng(0)
    d, m = 6, 4
    a = rng.normal(size=(d, d))
    hess = a @ a.T + d * np.eye(d)  # SPD: y = A s has s'y > 0
    pairs = [[(s, hess @ s) for s in rng.normal(size=(k, d))] for k in (3, 1, 0)]
    g = rng.normal(size=(3, d))
    s, y = as_memory(pairs, m, d)
    out, has = search_direction(tf.constant(g, tf.float32), s, y)
    np.testing.assert_array_equal(has.numpy(), [True, True, False])
    for n in range(2):
        np.testing.assert_allclose(out.numpy()[n], dense_lbfgs_direction(g[n], pairs[n]),
                                   rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.numpy()[2], -g[2], rtol=1e-6)  # empty memory: -g


def test_push_pair_drops_the_oldest_and_skips_bad_curvature_per_image():
    m, d = 2, 3
    s, y = as_memory([[(np.ones(d), np.ones(d))]] * 3, m, d)
    s_new = tf.constant([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0]])
    y_new = tf.constant([[2.0, 0, 0], [-1.0, 0, 0], [2.0, 0, 0]])  # image 1: s'y < 0
    s2, y2, kept = push_pair(s, y, s_new, y_new, tf.constant([True, True, False]))
    np.testing.assert_array_equal(kept.numpy(), [True, False, False])
    np.testing.assert_array_equal(s2.numpy()[:, 0], [np.ones(d), [1, 0, 0]])
    np.testing.assert_array_equal(s2.numpy()[:, 1], s.numpy()[:, 1])
    np.testing.assert_array_equal(y2.numpy()[:, 2], y.numpy()[:, 2])


def quadratic(curv):
    """Per image ``f = sum(c_n x^2) / 2`` (curvature ``c_n``); counts its calls."""
    c = tf.constant(curv, tf.float32)[:, None]
    calls = []

    def evaluate(x):
        calls.append(1)
        return 0.5 * tf.reduce_sum(c * x * x, axis=1), c * x, {"loss": tf.zeros_like(x[:, 0])}

    return evaluate, calls


def search(evaluate, x, d, alpha0, active=None, project=None, max_evals=20):
    f, g, logs = evaluate(x)
    start = Point(tf.zeros_like(f), f, tf.reduce_sum(g * d, 1), g, logs, x)
    active = tf.ones_like(f, tf.bool) if active is None else tf.constant(active)
    return line_search(evaluate, x, start, d, tf.constant(alpha0, tf.float32), active,
                       max_evals, project), start


def test_line_search_each_image_its_own_wolfe_step():
    curv = [1.0, 1.0, 1.0, 3.0]
    evaluate, calls = quadratic(curv)
    x = tf.ones([4, 5])
    # unit step exact / far too long / far too short / inactive
    alpha0 = [1.0, 50.0, 1e-3, 1.0]
    (lo, evals, bad), start = search(evaluate, x, -x, alpha0, [True, True, True, False])
    a, f, g = lo.a.numpy(), lo.f.numpy(), lo.g.numpy()
    assert a[0] == 1.0 and a[3] == 0.0 and not bad.numpy().any()
    assert int(evals) == len(calls) - 1 <= 10
    for n in range(3):  # the weak Wolfe conditions, along p = x_new - x
        p = (lo.x.numpy() - x.numpy())[n]
        slope0 = start.g.numpy()[n] @ p
        assert slope0 < 0 and f[n] <= start.f.numpy()[n] + C1 * slope0
        assert g[n] @ p >= C2 * slope0
    np.testing.assert_array_equal(lo.x.numpy()[3], x.numpy()[3])  # inactive: did not move


def test_line_search_unit_step_costs_one_evaluation():
    evaluate, calls = quadratic([2.0, 0.5])
    x = tf.constant([[1.0, -2.0], [3.0, 1.0]])
    d = -x  # the Newton step is a unit step scaled by 1/c: 0.5 and 2 are both acceptable
    (lo, evals, _), _ = search(evaluate, x, d, [0.5, 1.5])
    assert int(evals) == 1 and list(lo.a.numpy()) == [0.5, 1.5]


def test_line_search_steps_back_from_nonfinite_points_and_reports_them():
    def evaluate(x):
        f = 0.5 * tf.reduce_sum(x * x, axis=1)
        f = tf.where(tf.reduce_max(tf.abs(x), axis=1) > 10, np.float32(np.nan), f)
        return f, x, {}

    x = tf.ones([2, 3])
    (lo, _, bad), _ = search(evaluate, x, -x, [100.0, 1.0])
    assert list(bad.numpy()) == [True, False]
    assert 0 < lo.a.numpy()[0] < 11 and np.isfinite(lo.f.numpy()).all()


def test_line_search_on_a_projected_path_keeps_the_box():
    evaluate, _ = quadratic([1.0])
    x = tf.constant([[2.0, 2.0]])
    project = lambda v: tf.clip_by_value(v, 0.5, 5.0)  # noqa: E731
    (lo, _, _), _ = search(evaluate, x, tf.constant([[-4.0, -1.0]]), [1.0], project=project)
    np.testing.assert_allclose(lo.x.numpy(), [[0.5, 1.0]])  # first clipped, second exact


def minimise(evaluate, x0, m=5, iterations=200):
    """A bare batched L-BFGS driver on the pieces (as LBFGS's compiled step combines them)."""
    x = tf.constant(x0, tf.float32)
    f, g, logs = evaluate(x)
    s = y = tf.zeros([m] + list(x.shape))
    for _ in range(iterations):
        d, has = search_direction(g, s, y)
        alpha0 = tf.where(has, 1.0, 1.0 / tf.norm(g, axis=1))
        start = Point(tf.zeros_like(f), f, tf.reduce_sum(g * d, 1), g, logs, x)
        active = tf.reduce_max(tf.abs(g), axis=1) > 1e-4
        if not bool(tf.reduce_any(active)):
            break
        lo, _, _ = line_search(evaluate, x, start, d, alpha0, active, 20)
        s, y, _ = push_pair(s, y, lo.x - x, lo.g - g, lo.a > 0)
        x, f, g = lo.x, lo.f, lo.g
    return x.numpy()


def batched_rosenbrock(x):
    """Per row the 4-d Rosenbrock function (float64 inside for an exact reference)."""
    x64 = tf.cast(x, tf.float64)
    a, b = x64[:, :-1], x64[:, 1:]
    f = tf.reduce_sum(100.0 * (b - a * a) ** 2 + (1 - a) ** 2, axis=1)
    g = tf.stack([tf.constant(rosen_der(r)) for r in x64.numpy()])
    return tf.cast(f, tf.float32), tf.cast(g, tf.float32), {}


@pytest.mark.parametrize("rows", [[0], [1], [2], [0, 1, 2]])
def test_rosenbrock_batch_reaches_scipys_minimum_each_image_alone(rows):
    x0 = np.array([[-1.2, 1.0, -0.5, 0.8], [0.0, 0.0, 0.0, 0.0], [1.5, 2.0, 1.0, 1.2]])[rows]
    got = minimise(batched_rosenbrock, x0)
    for n, r in enumerate(rows):
        ref = minimize(rosen, x0[n], jac=rosen_der, method="L-BFGS-B").x
        np.testing.assert_allclose(got[n], ref, atol=2e-3)
        assert rosen(got[n]) < 1e-5
