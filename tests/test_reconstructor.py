import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import (MomentumGD, NonFiniteLossError, Reconstructor, Snapshot, icnn_gd,
                        imaging, priors, transforms, Jitter)
from keras_icnn.models import extract_features

LAYERS = ["c1", "c2", "fc"]


@pytest.fixture
def two_images(rgb_image):
    return np.stack([rgb_image, rgb_image[::-1, :, ::-1]])


def _corr(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_reconstruction_recovers_the_image(net, rgb_image):
    feats = extract_features(net, rgb_image, LAYERS)
    rec = Reconstructor(net, optimizer=icnn_gd.build_optimizer(image_blur=False,
                                                               decay_start=0.0, decay_end=0.0),
                        seed=0)
    hist = rec.fit(feats, iterations=150, verbose=0)
    loss = hist.history["loss"]
    assert len(loss) == 150 and loss[-1] < 0.05 * loss[0]
    out = rec.images[0]
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    assert _corr(out, rgb_image) > 0.8
    u8 = rec.images_uint8
    assert u8.dtype == np.uint8 and u8.shape == (1, 32, 32, 3)
    # per-layer losses are the weighted parts of the total
    parts = sum(np.array(hist.history[f"{l}_loss"]) for l in LAYERS)
    np.testing.assert_allclose(parts, loss, rtol=1e-5)
    assert rec.loss_history_.shape == (150, 1)


def test_batch_equals_single_runs(net, two_images):
    feats = extract_features(net, two_images, LAYERS)
    rng = np.random.default_rng(5)
    init = rng.integers(0, 256, two_images.shape).astype(np.float32)

    def make():
        return Reconstructor(
            net, optimizer=icnn_gd.build_optimizer(image_jitter=True, jitter_size=2,
                                                   clip_extreme=True, clip_extreme_every=2,
                                                   clip_small_norm=True,
                                                   clip_small_contribution=True, seed=3),
            layer_weight="inverse_norm", priors=[priors.PNorm(), priors.TotalVariation()])
    batch = make()
    batch.fit(feats, iterations=12, initial=init, verbose=0)
    for i in range(2):
        single = make()
        single.fit({k: v[i:i + 1] for k, v in feats.items()}, iterations=12,
                   initial=init[i], verbose=0)
        np.testing.assert_allclose(batch.images[i], single.images[0], rtol=1e-4, atol=2e-3)
        np.testing.assert_allclose(batch.loss_history_[:, i], single.loss_history_[:, 0],
                                   rtol=1e-4)
    assert not np.allclose(batch.images[0], batch.images[1])


def test_keras_callbacks(net, rgb_image, tmp_path):
    feats = extract_features(net, rgb_image, LAYERS)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, float(logs["loss"]), self.model.images.shape))

    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e30, patience=2)
    rec = Reconstructor(net, seed=1)
    hist = rec.fit(feats, iterations=50, callbacks=[Spy(), stop,
                                                    Snapshot(tmp_path / "snap", every=1)],
                   verbose=0)
    assert rec.iterations_run == 3 and len(hist.history["loss"]) == 3
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][2] == (1, 32, 32, 3)
    assert sorted(os.listdir(tmp_path / "snap")) == ["00001.jpg", "00002.jpg", "00003.jpg",
                                                     "initial_img.png"]
    assert {"learning_rate", "momentum"} <= set(hist.history)


def test_seed_compatible_icnn_gd(net, rgb_image, tmp_path, capsys):
    feats = {k: v[0] for k, v in extract_features(net, rgb_image, LAYERS,
                                                  data_format="channels_first").items()}
    img, loss = icnn_gd.reconstruct_image(feats, net, iter_n=4, disp_every=2,
                                          save_intermediate=True, save_intermediate_every=2,
                                          save_intermediate_path=str(tmp_path / "s"))
    assert img.shape == (32, 32, 3) and img.dtype == np.float32
    assert loss.shape == (4,) and loss.dtype == np.float32
    out = capsys.readouterr().out
    assert "iter=2; err=" in out and "iter=4; err=" in out and "iter=1;" not in out
    assert sorted(os.listdir(tmp_path / "s")) == ["00002.jpg", "00004.jpg", "initial_img.png"]
    assert icnn_gd.normalise_img(np.array([[-1.0, 1.0]])).tolist() == [[0, 255]]


def test_nonfinite_loss_stops_and_keeps_last_image(net, rgb_image):
    feats = extract_features(net, rgb_image, ["fc"])
    calls = tf.Variable(0)

    def bad_after_two(f, t, m):
        calls.assign_add(1)
        l2 = tf.reduce_sum(tf.square(f - t), axis=1)
        return tf.where(calls > 2, np.float32(np.nan), l2)

    rec = Reconstructor(net, loss=bad_after_two, seed=0)
    with pytest.raises(NonFiniteLossError, match="iteration 3"):
        rec.fit(feats, iterations=10, verbose=0)
    assert np.all(np.isfinite(rec.images)) and rec.iterations_run == 2


@pytest.mark.parametrize("kwargs, fit_kwargs, match", [
    (dict(loss="l3"), {}, "unknown loss"),
    ({}, dict(iterations=-1), "positive integer"),
    ({}, dict(iterations=2.5), "positive integer"),
    (dict(layer_weight="inverse_norm"), dict(zero="fc"), r"features\['fc'\] of image 0 is all"),
    (dict(mask={"c1": np.ones(3)}), {}, "fits no use"),
    (dict(mask={"zz": np.ones(3)}), {}, "no target features"),
    ({}, dict(initial=np.zeros((5, 5, 3))), "initial: expected RGB images"),
    ({}, dict(initial="noise"), "initial: expected"),
    ({}, dict(initial=np.full((32, 32, 3), np.nan)), "initial: the image contains NaN"),
    (dict(mask={"c1": "abc"}), {}, r"mask\['c1'\]: expected a numeric array"),
    ({}, dict(verbose=5), "verbose"),
    (dict(param="latent"), {}, "param"),
    (dict(optimizer="adamx"), {}, "unknown 'adamx'"),  # 'adam' is Keras' Adam now
    (dict(priors=["tv"]), {}, "Prior"),
])
def test_bad_input(net, rgb_image, kwargs, fit_kwargs, match):
    feats = extract_features(net, rgb_image, LAYERS)
    zero = fit_kwargs.pop("zero", None)
    if zero:
        feats[zero] = np.zeros_like(feats[zero])
    with pytest.raises(ValueError, match=match):
        Reconstructor(net, **kwargs).fit(feats, **{"iterations": 2, "verbose": 0, **fit_kwargs})


def test_bad_encoder_and_unfitted():
    with pytest.raises(ValueError, match="keras.Model"):
        Reconstructor("vgg19")
    inp = keras.Input((None, None, 3))
    with pytest.raises(ValueError, match="fixed shape"):
        Reconstructor(keras.Model(inp, keras.layers.Conv2D(2, 3)(inp)))
    inp = keras.Input((8, 8, 3))
    with pytest.raises(RuntimeError, match="fit"):
        Reconstructor(keras.Model(inp, keras.layers.Conv2D(2, 3)(inp))).images


@pytest.mark.parametrize("kwargs, match", [
    (dict(learning_rate=(-1, 1)), "learning rate"),
    (dict(momentum=1.5), "momentum"),
    (dict(jitter=3), "Jitter"),
    (dict(transforms=[lambda z, c: z]), "Transform"),
])
def test_bad_optimizer_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MomentumGD(**kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda: transforms.Decay(1.5), "decay"),
    (lambda: transforms.ClipExtreme(pct=150), "percentage"),
    (lambda: transforms.ClipSmallNorm(every=0), "positive integer"),
    (lambda: transforms.GaussianBlur(sigma=-1), "sigma"),
    (lambda: priors.PNorm(p=0.5), "p:"),
    (lambda: priors.TotalVariation(beta=0), "TVbeta"),
    (lambda: Jitter(-2), "jitter_size"),
])
def test_bad_prior_options(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_blur_too_wide_for_image(net, rgb_image):
    feats = extract_features(net, rgb_image, ["fc"])
    rec = Reconstructor(net, optimizer=icnn_gd.build_optimizer(sigma_start=10.0))
    with pytest.raises(ValueError, match="blur"):
        rec.fit(feats, iterations=2, verbose=0)


def test_schedules():
    from keras_icnn.optimizers.schedules import Linear, as_schedule
    s = Linear(2.0, 1e-10)
    vals = s.values(4)
    np.testing.assert_allclose(vals, [2 + t * (1e-10 - 2) / 4 for t in range(4)], rtol=1e-6)
    assert as_schedule(0.9).bounds(10) == (0.9, 0.9)
    lr = keras.optimizers.schedules.ExponentialDecay(1.0, 1, 0.5)
    np.testing.assert_allclose(as_schedule(lr).values(3), [1, 0.5, 0.25])
    with pytest.raises(ValueError, match="start, end"):
        as_schedule((1, 2, 3), "lr")
    with pytest.raises(ValueError, match="finite"):
        as_schedule(float("nan"), "lr")


def test_default_pixel_bounds_follow_the_optimizer(net):
    from keras_icnn.params import valid_pixel_range
    assert Reconstructor(net).param.bounds() == (None, None)  # momentum GD: unbounded
    for name in ("lbfgs", "lbfgs-b"):
        lo, hi = Reconstructor(net, optimizer=name).param.bounds()
        np.testing.assert_allclose(lo, valid_pixel_range()[0])
        np.testing.assert_allclose(hi, valid_pixel_range()[1])


def test_gd_zero_gradient_start_is_an_error(rgb_image):
    """An all-zero (mean) start in front of a ReLU has no gradient: GD would never move."""
    from keras_icnn import ZeroGradientError
    inp = keras.Input((16, 16, 3))
    x = keras.layers.ReLU(name="r")(inp)
    out = keras.layers.Conv2D(2, 3, name="c")(x)
    net = keras.Model(inp, out)
    feats = {"c": np.ones((1, 14, 14, 2), np.float32)}
    with pytest.raises(ZeroGradientError, match="image 0"):
        Reconstructor(net).fit(feats, iterations=3, initial="mean", verbose=0)


def test_gd_by_name_is_the_original_algorithm(net):
    from keras_icnn.params import Generator
    from conftest import tiny_generator
    opt = Reconstructor(net).optimizer
    kinds = [type(t).__name__ for t in opt.transforms]
    assert kinds == ["Decay", "GaussianBlur"]
    np.testing.assert_allclose(opt.learning_rate.values(2)[0], 2.0)
    assert opt.transforms[0].rate.bounds(200)[1] == pytest.approx(0.2)
    gen_opt = Reconstructor(net, param=Generator(tiny_generator())).optimizer
    assert [type(t).__name__ for t in gen_opt.transforms] == ["Decay"]
    assert gen_opt.transforms[0].rate.bounds(200) == (0.01, 0.01)


def test_single_objects_where_lists_are_expected(net, rgb_image, tmp_path):
    from keras_icnn.models import get_cnn_features
    assert list(get_cnn_features(net, rgb_image, "c1")) == ["c1"]
    feats = extract_features(net, rgb_image, ["fc"])
    rec = Reconstructor(net, priors=priors.PNorm())
    hist = rec.fit(feats, iterations=2, callbacks=keras.callbacks.History(), verbose=0)
    assert "p_norm_loss" in hist.history
    with pytest.raises(ValueError, match="ext"):
        Snapshot(tmp_path, ext="jpg")
