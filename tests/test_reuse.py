"""Repeated fits with the same shapes and settings reuse the compiled step (no retracing,
no TensorFlow retracing warnings) and give what a fresh Reconstructor gives."""
import numpy as np
import pytest

from keras_icnn import Reconstructor
from keras_icnn.models import extract_features

from conftest import tiny_cnn


@pytest.fixture(scope="module")
def case():
    net = tiny_cnn()
    rgb = np.random.default_rng(5).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    return net, extract_features(net, rgb, ["c1", "c2", "fc"])


def traced(opt):
    fn = {"MomentumGD": "compiled", "KerasOptimizer": "compiled", "LBFGS": "one_iteration",
          "ScipyLBFGSB": "evaluate"}[type(opt).__name__]
    return getattr(opt, fn).experimental_get_tracing_count()


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs-b", "lbfgs", "adam"])
def test_batches_reuse_the_compiled_step(case, optimizer):
    net, feats = case
    rec = Reconstructor(net, optimizer=optimizer, seed=0)
    for b in range(3):
        rec.fit({k: v[2 * b:2 * b + 2] for k, v in feats.items()}, iterations=4, verbose=0)
        if b == 0:
            first = traced(rec.optimizer)
    assert traced(rec.optimizer) == first
    fresh = Reconstructor(net, optimizer=optimizer, seed=0)
    fresh.fit({k: v[4:6] for k, v in feats.items()}, iterations=4, verbose=0)
    np.testing.assert_array_equal(rec.images, fresh.images)
    np.testing.assert_array_equal(rec.loss_history_, fresh.loss_history_)


def test_other_shapes_build_anew(case):
    net, feats = case
    rec = Reconstructor(net, seed=0)
    rec.fit({k: v[:2] for k, v in feats.items()}, iterations=2, verbose=0)
    rec.fit({k: v[:3] for k, v in feats.items()}, iterations=2, verbose=0)
    assert rec.images.shape[0] == 3
    rec.fit({"c1": feats["c1"][:1]}, iterations=3, verbose=0)
    assert rec.loss_history_.shape == (3, 1)


def test_one_optimiser_cannot_run_two_reconstructions_at_once(case):
    """An optimiser object carries its run's state: sharing it between two concurrent runs
    is refused with a clear error, never silently mixed."""
    import threading

    import keras

    from keras_icnn import MomentumGD
    net, feats = case
    opt = MomentumGD()
    started, release, errors = threading.Event(), threading.Event(), []

    class Hold(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            started.set()
            release.wait(30)

    first = threading.Thread(target=lambda: Reconstructor(net, optimizer=opt).fit(
        {k: v[:1] for k, v in feats.items()}, iterations=1, verbose=0, callbacks=[Hold()]))
    first.start()
    assert started.wait(60)
    try:
        with pytest.raises(RuntimeError, match="running another reconstruction"):
            Reconstructor(net, optimizer=opt).fit(feats, iterations=1, verbose=0)
    finally:
        release.set()
        first.join()
    Reconstructor(net, optimizer=opt).fit(feats, iterations=1, verbose=0)  # free again
