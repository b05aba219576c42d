"""L-BFGS optimisers: TFP's batched L-BFGS and scipy's L-BFGS-B (keras_icnn.lbfgs)."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import Pixels, Reconstructor, icnn_lbfgs, imaging, losses, optimizers
from keras_icnn.optimizers import LBFGS, OPTIMIZERS, ScipyLBFGSB
from keras_icnn.errors import ZeroGradientError
from keras_icnn.errors import NonFiniteLossError

# -- tiny encoders ----------------------------------------------------------------------------


def linear_net(size=8, units=256, seed=0):
    """A single linear layer (injective, well conditioned): the l2 inversion is convex and its
    optimum is the true image."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.Flatten()(inp)
    out = keras.layers.Dense(units, use_bias=False, name="fc", kernel_initializer=(
        keras.initializers.RandomNormal(stddev=1 / np.sqrt(units), seed=seed)))(x)
    return keras.Model(inp, out)


def relu_net(size=16, seed=0):
    """conv -> ReLU (zero bias) -> conv: non-convex, and a zero image has zero gradient."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1",
                            kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(inp)
    out = keras.layers.Conv2D(8, 3, padding="same", name="conv2",
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1))(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def lin():
    net = linear_net()
    rng = np.random.default_rng(1)
    imgs = rng.uniform(20, 235, (2, 8, 8, 3)).astype(np.float32)
    feats = np.asarray(net(imaging.rgb_to_caffe(imgs)))
    return net, imgs, feats


@pytest.fixture(scope="module")
def relu():
    net = relu_net()
    img = np.random.default_rng(2).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    feat = np.asarray(net(imaging.rgb_to_caffe(img)[None]))
    return net, img, {"conv2": feat}


def in_valid_range(rec, tol=1e-3):
    rgb = rec.images
    return rgb.min() >= -tol and rgb.max() <= 255 + tol


def fit(net, features, optimizer, iterations, **kw):
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=optimizer, seed=0)
    rec.fit(features, iterations=iterations, verbose=0, **kw)
    return rec


# -- names ---------------------------------------------------------------------------------------


def test_names_registered():
    assert set(OPTIMIZERS) == {"lbfgs", "lbfgs-b", "lbfgs_b", "scipy"}
    assert isinstance(optimizers.get("lbfgs"), LBFGS)
    for name in ("lbfgs-b", "lbfgs_b", "scipy", "LBFGS-B"):
        assert isinstance(optimizers.get(name), ScipyLBFGSB)
    assert LBFGS().iterations == 500 and ScipyLBFGSB().iterations == 500
    assert LBFGS().num_correction_pairs == 10
    with pytest.raises(ValueError, match="bounds_method"):
        LBFGS(bounds_method="project")
    with pytest.raises(ValueError, match="maxcor"):
        ScipyLBFGSB(maxcor=0)
    assert LBFGS().get_config()["bounds_method"] == "clip"  # plain values, not repr()s
    assert not any(k.endswith("_") for k in ScipyLBFGSB().get_config())


# -- convergence to a known answer --------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "scipy"])
def test_convex_inversion_reaches_the_true_image(lin, optimizer):
    net, imgs, feats = lin
    cb = Counter("fc")
    rec = fit(net, {"fc": feats[:1]}, optimizer, 200, callbacks=[cb])
    loss = rec.history.history["loss"]
    assert loss[-1] < 1e-6 * loss[0]
    np.testing.assert_allclose(rec.images[0], imgs[0], atol=0.05)
    assert in_valid_range(rec)
    assert rec.iterations_run < 200  # converged on its own
    # every iteration reported, begun and ended, none after the end
    assert cb.begun == cb.ended == list(range(rec.iterations_run))


# -- bounds ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outside(lin):
    """Features of an image far outside 0-255: the optimum pulls pixels out of the valid range;
    the bounded optimum found by scipy's L-BFGS-B is the reference."""
    net = lin[0]
    img = np.random.default_rng(3).uniform(-300, 555, (1, 8, 8, 3)).astype(np.float32)
    feats = {"fc": np.asarray(net(imaging.rgb_to_caffe(img)))}
    rec = fit(net, feats, ScipyLBFGSB(), 300)
    return net, feats, rec


def test_scipy_bounds_hold(outside):
    _, _, rec = outside
    loss = rec.history.history["loss"]
    assert in_valid_range(rec, tol=0)
    assert loss[-1] < 0.5 * rec.optimizer.initial_losses_[0]
    # many pixels end on the bounds: the constraint is active
    rgb = rec.images
    assert np.mean((rgb <= 1e-3) | (rgb >= 255 - 1e-3)) > 0.2
    ev = rec.optimizer.evaluation_losses_[0]
    assert len(ev) == rec.optimizer.results_[0].nfev


@pytest.mark.parametrize("method", ["clip", "sigmoid"])
def test_tfp_bounds_hold(outside, method):
    net, feats, ref = outside
    rec = fit(net, feats, LBFGS(bounds_method=method), 150)
    loss = rec.history.history["loss"]
    assert in_valid_range(rec, tol=0)
    z = rec.z.numpy()
    lo, hi = rec.param.bounds()
    assert np.all(z >= lo) and np.all(z <= hi)
    assert loss[-1] < 0.5 * rec.optimizer.initial_losses_[0]
    best = ref.history.history["loss"][-1]
    if method == "clip":  # exact penalty: the same bounded optimum as L-BFGS-B
        assert loss[-1] <= best * 1.01
        np.testing.assert_allclose(rec.images, ref.images, atol=1.0)


def test_initial_image_outside_is_clipped_with_one_warning(relu):
    net, img, feat = relu
    start = np.random.default_rng(4).uniform(-60, 320, img.shape).astype(np.float32)
    for opt in (ScipyLBFGSB(), LBFGS()):
        rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=opt)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            rec.fit(feat, iterations=15, initial=start, verbose=0)
        assert sum("outside the bounds" in str(x.message) for x in w) == 1
        assert rec.iterations_run == 15
        assert in_valid_range(rec)
        loss = rec.history.history["loss"]
        assert loss[-1] < loss[0]


# -- TFP vs scipy, batches ----------------------------------------------------------------------


def test_tfp_and_scipy_reach_comparable_losses(relu):
    net, _, feat = relu
    out = {}
    for name, opt in (("scipy", ScipyLBFGSB()), ("tfp", LBFGS())):
        rec = fit(net, feat, opt, 60)
        loss = rec.history.history["loss"]
        assert len(loss) == rec.iterations_run
        assert loss[-1] < 0.01 * rec.optimizer.initial_losses_[0]
        out[name] = loss[-1]
    ratio = out["tfp"] / out["scipy"]
    assert 0.1 < ratio < 10, out


@pytest.mark.parametrize("optimizer", [ScipyLBFGSB, LBFGS])
def test_batch_equals_single_runs(lin, optimizer):
    net, _, feats = lin
    batch = fit(net, {"fc": feats}, optimizer(), 25)
    for i in range(2):
        single = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=optimizer(), seed=0)
        start = Pixels(bounds="valid")
        start.build((8, 8, 3), None)
        init = imaging.caffe_to_rgb(start.initial(2, None, seed=0))[i]
        single.fit({"fc": feats[i:i + 1]}, iterations=25, initial=init, verbose=0)
        np.testing.assert_allclose(batch.images[i], single.images[0], atol=0.05)
        np.testing.assert_allclose(batch.loss_history_[:single.iterations_run, i],
                                   single.loss_history_[:, 0], rtol=1e-3, atol=1e-2)


def test_scipy_batch_with_an_image_done_at_the_start(lin):
    """Image 0 starts at its answer (scipy stops it at once); image 1 goes on alone, and the
    loop keeps hearing about every iteration."""
    net, imgs, feats = lin
    start = np.stack([imgs[0], np.full((8, 8, 3), 128.0, np.float32)])
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=ScipyLBFGSB())
    rec.fit({"fc": feats}, iterations=100, initial=start, verbose=0)
    res = rec.optimizer.results_
    assert res[0].nit == 0 and res[1].nit == rec.iterations_run > 5
    assert len(rec.history.history["loss"]) == rec.iterations_run
    assert np.all(rec.loss_history_[:, 0] == 0)
    # the logs average the images still running: here image 1 alone
    np.testing.assert_allclose(rec.history.history["loss"], rec.loss_history_[:, 1], rtol=1e-6)
    np.testing.assert_allclose(rec.images, imgs, atol=0.05)


# -- callbacks -------------------------------------------------------------------------------------


class Counter(keras.callbacks.Callback):
    def __init__(self, layer="conv2", stop_at=None):
        super().__init__()
        self.layer, self.stop_at, self.begun, self.ended = layer, stop_at, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begun.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.ended.append(epoch)
        assert {"loss", f"{self.layer}_loss", "grad_max", "evaluations"} <= set(logs)
        if self.stop_at is not None and epoch + 1 == self.stop_at:
            self.model.stop_training = True


@pytest.mark.parametrize("optimizer", [ScipyLBFGSB, LBFGS])
def test_callbacks_see_every_iteration_and_can_stop(relu, optimizer):
    net, _, feat = relu
    cb = Counter()
    rec = fit(net, feat, optimizer(), 7, callbacks=[cb])
    assert cb.ended == list(range(7)) and cb.begun == list(range(7))
    assert len(rec.history.history["loss"]) == rec.iterations_run == 7
    assert rec.loss_history_.shape == (7, 1)
    cb = Counter(stop_at=4)
    rec.fit(feat, iterations=50, callbacks=[cb], verbose=0)
    assert cb.ended == list(range(4))
    assert len(rec.history.history["loss"]) == rec.iterations_run == 4
    np.testing.assert_allclose(rec.loss_history_[-1],
                               rec.optimizer.iteration_losses_[-1], rtol=1e-6)


# -- pitfalls ------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", [ScipyLBFGSB, LBFGS])
def test_zero_gradient_start_is_an_error(relu, optimizer):
    net, _, feat = relu
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=optimizer())
    with pytest.raises(ZeroGradientError, match="gradient at the initial point is zero"):
        rec.fit(feat, iterations=10, initial="mean", verbose=0)
    assert isinstance(ZeroGradientError([0]), ValueError)
    assert rec.iterations_run == 0


def _nan_after(k):
    """An l2 loss that turns NaN everywhere after ``k`` evaluations."""
    counter = tf.Variable(0, trainable=False)

    def loss(feat, target, mask=1.0):
        counter.assign_add(1)
        value = losses.l2(feat, target, mask)
        return tf.where(counter > k, tf.fill(tf.shape(value), np.float32(np.nan)), value)

    return loss


@pytest.mark.parametrize("optimizer", [ScipyLBFGSB, LBFGS])
def test_nan_loss_stops_with_error_and_keeps_last_finite_image(relu, optimizer):
    net, _, feat = relu
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=optimizer(),
                        loss=_nan_after(8), seed=0)
    with pytest.raises(NonFiniteLossError) as e:
        rec.fit(feat, iterations=50, verbose=0)
    t = e.value.iteration
    assert 1 <= t < 50 and f"iteration {t}" in str(e.value)
    assert rec.iterations_run == t - 1 and rec.loss_history_.shape == (t - 1, 1)
    assert np.all(np.isfinite(rec.images)) and in_valid_range(rec)


# -- the seed-compatible function ------------------------------------------------------------------


def test_icnn_lbfgs_reconstruct_image(relu, capsys):
    net, _, feat = relu
    feat_cf = {"conv2": np.moveaxis(feat["conv2"][0], -1, 0)}  # Caffe layout, no batch axis
    img, loss_list = icnn_lbfgs.reconstruct_image(feat_cf, net, maxiter=12, disp=True, seed=0)
    out = capsys.readouterr().out
    assert "iter=1; err=" in out and "L-BFGS-B:" in out
    assert img.shape == (16, 16, 3) and img.dtype == np.float32
    assert img.min() >= -1e-3 and img.max() <= 255 + 1e-3
    # one entry per objective evaluation (at least one per iteration, plus the start)
    assert loss_list.dtype == np.float32 and len(loss_list) >= 13
    assert loss_list.min() < 0.5 * loss_list[0]
    img2, loss2 = icnn_lbfgs.reconstruct_image(feat_cf, net, maxiter=12, disp=False, seed=0,
                                               method="tfp")
    assert capsys.readouterr().out == ""
    assert img2.shape == (16, 16, 3) and len(loss2) == 12
    assert img2.min() >= -1e-3 and img2.max() <= 255 + 1e-3
    assert loss2[-1] < 0.5 * loss_list[0]
    with pytest.raises(ValueError, match="method"):
        icnn_lbfgs.reconstruct_image(feat_cf, net, maxiter=2, method="adam")


# -- the in-graph L-BFGS: settings, evaluations, reuse ------------------------------------------


def test_lbfgs_config_round_trip_and_older_configs():
    opt = LBFGS(iterations=7, num_correction_pairs=4, max_line_search_iterations=9,
                bounds_method="sigmoid", restart=False, jit_compile=True)
    cfg = opt.get_config()
    assert LBFGS.from_config(cfg).get_config() == cfg
    assert LBFGS().get_config()["jit_compile"] == "auto"
    old = dict(LBFGS().get_config(), penalty=0.01, max_line_search_iterations=50)
    with pytest.warns(UserWarning, match="penalty"):
        assert LBFGS.from_config(old).max_line_search_iterations == 50
    for bad in ("yes", 2, None):
        with pytest.raises(ValueError, match="jit_compile"):
            LBFGS(jit_compile=bad)


def test_lbfgs_takes_the_unit_step_mostly(relu):
    """After the first iteration (a scaled steepest-descent step that may extrapolate), an
    iteration costs about one batched evaluation, as scipy's L-BFGS-B."""
    net, _, feat = relu
    rec = fit(net, feat, LBFGS(tolerance=0.0), 30)
    ev = np.asarray(rec.history.history["evaluations"])
    assert ev[-1] == rec.optimizer.results_["num_objective_evaluations"]
    assert (ev[-1] - ev[0]) / (len(ev) - 1) < 1.4, np.diff(ev)
    ref = fit(net, feat, ScipyLBFGSB(ftol=0.0, gtol=0.0), 30)
    assert rec.loss_history_[-1, 0] < 2 * ref.loss_history_[-1, 0]


def test_lbfgs_reuses_its_compiled_step(relu):
    net, _, feat = relu
    rec = Reconstructor(net, param=Pixels(bounds="valid"), optimizer=LBFGS(), seed=0)
    for _ in range(3):
        rec.fit(feat, iterations=4, verbose=0)
    opt = rec.optimizer
    assert opt.one_iteration.experimental_get_tracing_count() == 1
    assert opt.vg.experimental_get_tracing_count() == 1


def test_lbfgs_images_that_stop_do_not_move(lin):
    """Image 0 starts at its answer (converged at once: projected gradient 0 with a huge
    tolerance relative to it); image 1 goes on alone and reaches its answer."""
    net, imgs, feats = lin
    start = np.stack([imgs[0], np.full((8, 8, 3), 128.0, np.float32)])
    rec = Reconstructor(net, param=Pixels(bounds="valid"), seed=0,
                        optimizer=LBFGS(tolerance=1e-3))
    rec.fit({"fc": feats}, iterations=100, initial=start, verbose=0)
    assert list(rec.optimizer.results_["converged"]) == [True, True]
    np.testing.assert_allclose(rec.images, imgs, atol=0.05)
    assert np.all(rec.loss_history_[:, 0] == rec.loss_history_[0, 0])
