"""ScipyLBFGSB drives scipy's L-BFGS-B routine itself: each image's run must be exactly the run
``scipy.optimize.minimize(method="L-BFGS-B")`` makes (the reference: scipy's own loop, on the
same objective)."""
import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import minimize

from keras_icnn import Pixels, Reconstructor
from keras_icnn.models import extract_features
from keras_icnn.optimizers import ScipyLBFGSB

from conftest import tiny_cnn

LAYERS = ["c1", "c2", "fc"]


@pytest.fixture(scope="module")
def case():
    net = tiny_cnn()
    rgb = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    return net, extract_features(net, rgb, LAYERS)


def scipy_reference(rec, feats, i, iterations):
    """scipy.optimize.minimize on image ``i`` alone, with the objective of ``rec``."""
    objective, _ = rec.build_objective({k: v[i:i + 1] for k, v in feats.items()})
    shape = (1,) + rec.image_shape

    @tf.function
    def fg(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            f, _ = objective.value(tf.reshape(x, shape), 0, iterations)
        return f[0], tape.gradient(f, x)

    def fun(x):
        f, g = fg(tf.constant(x[None], tf.float32))
        return float(f), g.numpy()[0].astype(np.float64)

    lo, hi = (np.broadcast_to(b, shape).ravel().astype(np.float64) for b in rec.param.bounds())
    x0 = rec.z0[i].ravel().astype(np.float64)
    return minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                    options={"maxiter": iterations})


@pytest.mark.parametrize("iterations", [6, 40])
@pytest.mark.parametrize("i", [0, 1])
def test_each_image_is_scipys_own_run(case, iterations, i):
    net, feats = case
    one = {k: v[i:i + 1] for k, v in feats.items()}
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=ScipyLBFGSB(), seed=i)
    rec.fit(one, iterations=iterations, verbose=0)
    ref = scipy_reference(rec, one, 0, iterations)
    ours = rec.optimizer.results_[0]
    np.testing.assert_array_equal(ours.x, ref.x)                  # bit for bit
    assert (ours.nit, ours.nfev) == (ref.nit, ref.nfev)
    np.testing.assert_array_equal(rec.z.numpy()[0].ravel(), ref.x.astype(np.float32))
    assert len(rec.optimizer.evaluation_losses_[0]) == ref.nfev
    assert rec.iterations_run == ref.nit


def test_a_batch_runs_each_image_on_its_own(case):
    """N images are N runs side by side (a batched forward pass rounds a little differently
    from a single one, so the comparison is close, not bitwise)."""
    net, feats = case
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=ScipyLBFGSB(), seed=0)
    rec.fit(feats, iterations=6, verbose=0)
    for i in range(2):
        ref = scipy_reference(rec, feats, i, 6)
        np.testing.assert_allclose(rec.optimizer.results_[i].x, ref.x, atol=1e-2)
        assert rec.optimizer.results_[i].nit == ref.nit


def test_state_is_numpy_and_round_trips(case):
    net, feats = case
    rec = Reconstructor(net, optimizer="lbfgs-b", seed=0)
    rec.fit(feats, iterations=3, verbose=0)
    state = rec.optimizer.get_state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert {"wa", "iwa", "task", "isave", "dsave", "x"} <= set(state)
    rec.optimizer.set_state(state)
    for k, v in rec.optimizer.get_state().items():
        np.testing.assert_array_equal(v, state[k])
