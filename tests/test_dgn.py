"""The generator parameterisation and DGN-GD (``icnn_dgn_gd``)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import Reconstructor, icnn_dgn_gd, imaging
from keras_icnn.models import extract_features
from keras_icnn.params import Generator, load_latent_bounds

from conftest import tiny_generator

LAYERS = ["c1", "c2", "fc"]


@pytest.fixture(scope="module")
def gen():
    return tiny_generator()


@pytest.fixture
def target(net, gen):
    """Features of an image the generator can make (so the optimum is reachable)."""
    z_true = np.abs(np.random.default_rng(2).normal(1, 1, (1, 8))).astype(np.float32)
    img = np.asarray(gen(z_true))[:, 4:36, 4:36]
    rgb = imaging.caffe_to_rgb(img)
    return extract_features(net, rgb, LAYERS), z_true


def reference_dgn_gd(net, gen, feats, z0, o):
    """The original icnn_dgn_gd loop in NumPy; gradients from TF through both networks."""
    model = keras.Model(net.inputs[0], [net.get_layer(l).output for l in LAYERS])
    z, delta, losses = z0.astype(np.float64), np.zeros_like(z0, np.float64), []
    n = o["iter_n"]
    lin = lambda a, b, t: a + t * (b - a) / n  # noqa: E731
    for t in range(n):
        lr, mom = lin(o["lr_start"], o["lr_end"], t), lin(0.9, 0.9, t)
        decay = lin(o["decay_start"], o["decay_end"], t)
        x = tf.constant(z[None], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            outs = model(gen(x)[:, 4:36, 4:36])
            loss = sum(tf.reduce_sum(tf.square(f - feats[l])) / 3 for f, l in zip(outs, LAYERS))
        g = tape.gradient(loss, x).numpy()[0]
        losses.append(float(loss))
        g = g / np.abs(g).mean()
        delta = delta * mom + g
        z = z - lr * delta
        z = (1 - decay) * z
        z = np.minimum(np.maximum(z, o["feat_lower_bound"]), o["feat_upper_bound"])
    return z, np.array(losses)


def test_dgn_gd_matches_reference(net, gen, target):
    feats, _ = target
    z0 = np.random.default_rng(0).uniform(0, 1, 8).astype(np.float32)  # inside the bounds
    o = dict(iter_n=10, lr_start=1.0, lr_end=0.1, decay_start=0.02, decay_end=0.01,
             feat_lower_bound=0.0, feat_upper_bound=np.linspace(1.0, 3.0, 8))
    ref_z, ref_loss = reference_dgn_gd(net, gen, feats, z0, o)
    img, loss, z = icnn_dgn_gd.reconstruct_image(feats, net, gen, initial_gen_feat=z0,
                                                 disp_every=0, return_gen_feat=True, **o)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
    np.testing.assert_allclose(z, ref_z, rtol=1e-4, atol=1e-5)
    assert img.shape == (32, 32, 3)
    expect = imaging.caffe_to_rgb(np.asarray(gen(ref_z[None].astype(np.float32)))[0, 4:36, 4:36])
    np.testing.assert_allclose(img, expect, atol=1e-2)
    assert np.all(z >= 0) and np.all(z <= o["feat_upper_bound"])
    assert loss[-1] < loss[0]


def test_dgn_reconstructor_reaches_target(net, gen, target):
    feats, z_true = target
    rec = Reconstructor(net, param=Generator(gen, lower=0, upper=10), seed=0)
    hist = rec.fit(feats, iterations=60, verbose=0)
    assert hist.history["loss"][-1] < 0.2 * hist.history["loss"][0]
    assert rec.images.shape == (1, 32, 32, 3)
    assert np.all(rec.z.numpy() >= 0) and np.all(rec.z.numpy() <= 10)


def test_latent_bounds_file(tmp_path, gen):
    p = tmp_path / "act_range.txt"
    p.write_text(" ".join(str(v) for v in range(2, 10)))
    np.testing.assert_array_equal(load_latent_bounds(p), np.arange(2, 10))
    g = Generator(gen, upper=str(p))
    np.testing.assert_array_equal(g.bounds()[1], np.arange(2, 10))
    (tmp_path / "bad.txt").write_text("1 2 x")
    with pytest.raises(ValueError, match="numbers"):
        load_latent_bounds(tmp_path / "bad.txt")


def test_initial_latents(gen):
    g = Generator(gen, lower=0, upper=1)
    g.build((32, 32, 3), None)
    z = g.initial(3, None, seed=0)
    assert z.shape == (3, 8) and z.min() >= 0 and z.max() <= 1
    assert np.all(g.initial(1, "zeros") == 0)
    with pytest.raises(ValueError, match="latents of shape"):
        g.initial(1, np.zeros(5))


@pytest.mark.parametrize("kwargs, match", [
    (dict(lower=2, upper=1), "lower exceeds upper"),
    (dict(upper=np.ones(5)), "8 values"),
    (dict(crop="top"), "crop"),
    (dict(postprocess=3), "postprocess"),
])
def test_bad_generator_options(gen, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Generator(gen, **kwargs)


def test_generator_smaller_than_encoder(net):
    small = tiny_generator(out=20)
    with pytest.raises(ValueError, match="smaller than the encoder's input 32x32"):
        Reconstructor(net, param=Generator(small))


def test_seed_keywords(net, gen, target):
    feats, _ = target
    with pytest.raises(ValueError, match="output_layer_gen: unknown layer 'nope'"):
        icnn_dgn_gd.reconstruct_image(feats, net, gen, output_layer_gen="nope", iter_n=1)
    with pytest.raises(ValueError, match="input_layer_gen"):
        icnn_dgn_gd.reconstruct_image(feats, net, gen, input_layer_gen="defc", iter_n=1)
    img, loss = icnn_dgn_gd.reconstruct_image(feats, net, gen, output_layer_gen="generated",
                                              iter_n=2, disp_every=0)
    assert img.shape == (32, 32, 3) and loss.shape == (2,)


def test_dgn_lbfgs_keeps_bounds_and_reduces_loss(net, gen, target):
    from keras_icnn import icnn_dgn_lbfgs
    feats, _ = target
    img, loss, z = icnn_dgn_lbfgs.reconstruct_image(
        feats, net, gen, gen_feat_bounds=[(0.0, 2.0)] * 8, maxiter=15, disp=False,
        return_gen_feat=True, seed=0)
    assert img.shape == (32, 32, 3) and loss.ndim == 1 and loss[-1] < 0.5 * loss[0]
    assert np.all(z >= 0) and np.all(z <= 2)
    # the original's default N(0, 1) start lies outside (0, 100): it is clipped, not fatal
    img, loss = icnn_dgn_lbfgs.reconstruct_image(feats, net, gen, maxiter=3, disp=False,
                                                 method="tfp", seed=1)
    assert np.all(np.isfinite(img)) and len(loss) >= 1


def test_dgn_lbfgs_bound_arguments(net, gen, target):
    from keras_icnn import icnn_dgn_lbfgs
    feats, _ = target
    lo, hi = icnn_dgn_lbfgs.bounds_from_pairs([(None, 1.0), (0.0, None)])
    assert lo.tolist() == [-np.inf, 0.0] and hi.tolist() == [1.0, np.inf]
    with pytest.raises(ValueError, match="either gen_feat_bounds"):
        icnn_dgn_lbfgs.reconstruct_image(feats, net, gen, gen_feat_bounds=[(0, 1)] * 8,
                                         feat_upper_bound=3.0, maxiter=1)
    with pytest.raises(ValueError, match="lower bound: expected a number or 8 values"):
        icnn_dgn_lbfgs.reconstruct_image(feats, net, gen, gen_feat_bounds=[(0, 1)] * 3,
                                         maxiter=1)


def test_pixel_transforms_refused_for_a_latent(net, gen, target):
    from keras_icnn import Jitter, MomentumGD, transforms
    feats, _ = target
    for opt in (MomentumGD(transforms=[transforms.GaussianBlur()]),
                MomentumGD(jitter=Jitter(2))):
        rec = Reconstructor(net, param=Generator(gen), optimizer=opt)
        with pytest.raises(ValueError, match="works on images.*latent"):
            rec.fit(feats, iterations=2, verbose=0)


def test_dgn_lbfgs_one_sided_bound_keeps_the_other_default(net, gen, target):
    from keras_icnn import icnn_dgn_lbfgs
    feats, _ = target
    img, loss, z = icnn_dgn_lbfgs.reconstruct_image(
        feats, net, gen, feat_upper_bound=5.0, initial_gen_feat=np.full(8, 0.5, np.float32),
        maxiter=5, disp=False, return_gen_feat=True)
    assert z.min() >= 0.0 and z.max() <= 5.0
