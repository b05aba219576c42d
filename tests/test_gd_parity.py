"""Parity of the momentum-GD loop with the original iCNN ``icnn_gd`` arithmetic.

The reference below is written from the published algorithm (Shen et al.'s ``icnn_gd.py`` and
``utils.py``) in NumPy, in Caffe's ``[C, H, W]`` BGR layout, with SciPy's Gaussian filter and
NumPy's percentiles.  Only the network's backward pass comes from TensorFlow (as Caffe's
``net.backward`` did in the original): the feature-loss gradients are injected at the layer
outputs, exactly as the original set ``blob.diff``.
"""
import numpy as np
import pytest
import scipy.ndimage as nd
import tensorflow as tf
import keras

from keras_icnn import icnn_gd, imaging
from keras_icnn.models import get_cnn_features
from keras_icnn.optimizers.jitter import Jitter

MEAN = np.float32(imaging.KERAS_MEAN_BGR)


# ------------------------------------------------------------------ reference (NumPy, CHW)
def img_preprocess(img):
    return np.float32(np.transpose(img, (2, 0, 1))[::-1]) - MEAN.reshape(3, 1, 1)


def img_deprocess(img):
    return np.dstack((img + MEAN.reshape(3, 1, 1))[::-1])


def p_norm(x, p):
    return np.sum(np.abs(x) ** p), p * (np.abs(x) ** (p - 1)) * np.sign(x)


def tv_norm(x, beta):
    beta = float(beta)
    d1 = np.roll(x, -1, 1)
    d1[:, -1, :] = x[:, -1, :]
    d1 = d1 - x
    d2 = np.roll(x, -1, 2)
    d2[:, :, -1] = x[:, :, -1]
    d2 = d2 - x
    v = (np.sqrt(d1 * d1 + d2 * d2)) ** beta
    loss = v.sum()
    v[v < 1e-5] = 1e-5
    d1_ = (v ** (2 * (beta / 2 - 1) / beta)) * d1
    d2_ = (v ** (2 * (beta / 2 - 1) / beta)) * d2
    d11 = np.roll(d1_, 1, 1) - d1_
    d22 = np.roll(d2_, 1, 2) - d2_
    d11[:, 0, :] = -d1_[:, 0, :]
    d22[:, :, 0] = -d2_[:, :, 0]
    return loss, beta * (d11 + d22)


def image_norm(img):
    return np.sqrt(img[0] ** 2 + img[1] ** 2 + img[2] ** 2)


def clip_extreme_value(img, pct):
    return np.clip(img, np.percentile(img, pct / 2.), np.percentile(img, 100 - pct / 2.))


def clip_small(img, score, pct):
    small = score < np.percentile(score, pct)
    img = img.copy()
    for c in range(3):
        img[c][small] = 0
    return img


def gaussian_blur(img, sigma):
    if sigma > 0:
        img = np.stack([nd.gaussian_filter(img[c], sigma, order=0) for c in range(3)])
    return img


class CaffeLikeNet:
    """Forward to the requested layers, then inject loss gradients at their outputs."""

    def __init__(self, net, layers, targets_chw, weights):
        self.layers = layers
        self.model = keras.Model(net.inputs[0], [net.get_layer(l).output for l in layers])
        self.targets, self.weights = targets_chw, weights

    def loss_and_grad(self, img_chw):
        x = tf.constant(np.transpose(img_chw, (1, 2, 0))[None], tf.float32)  # HWC, BGR
        with tf.GradientTape() as tape:
            tape.watch(x)
            outs = self.model(x, training=False)
        loss, diffs = 0.0, []
        for layer, out in zip(self.layers, outs):
            f = np.asarray(out)[0]
            f = np.moveaxis(f, -1, 0) if f.ndim == 3 else f  # to Caffe layout
            d = f - self.targets[layer]
            loss += self.weights[layer] * (d * d).sum()
            g = self.weights[layer] * 2 * d
            g = np.moveaxis(g, 0, -1) if g.ndim == 3 else g
            diffs.append(tf.constant(g[None], tf.float32))
        grad = tape.gradient(outs, x, output_gradients=diffs)[0].numpy()
        return loss, np.transpose(grad, (2, 0, 1))


def reference_icnn_gd(oracle, initial_rgb, o):
    n = o["iter_n"]
    h, w = initial_rgb.shape[:2]
    img_norm0 = np.sqrt(h * w * 3 * 255.0 * 511.0 / 6.0) / 2.0  # E||noise|| of the original
    img = img_preprocess(initial_rgb).astype(np.float64)
    delta = np.zeros_like(img)
    jitter = Jitter(o["jitter_size"], seed=o["seed"])
    losses = []

    def lin(a, b, t):
        return a + t * (b - a) / n

    for t in range(n):
        lr = lin(o["lr_start"], o["lr_end"], t)
        mom = lin(o["momentum_start"], o["momentum_end"], t)
        decay = lin(o["decay_start"], o["decay_end"], t)
        sigma = lin(o["sigma_start"], o["sigma_end"], t)
        ox, oy = (int(v) for v in jitter.offsets(t)) if o["image_jitter"] else (0, 0)
        img = np.roll(np.roll(img, ox, -1), oy, -2)
        delta = np.roll(np.roll(delta, ox, -1), oy, -2)
        loss, grad = oracle.loss_and_grad(img)
        losses.append(loss)
        if np.abs(grad).mean() > 0:
            grad = grad / np.abs(grad).mean()
        delta = delta * mom + grad
        for use, fn, lam in ((o["use_p_norm_reg"], lambda x: p_norm(x, o["p"]),
                              lin(o["lamda_start"], o["lamda_end"], t)),
                             (o["use_TV_norm_reg"], lambda x: tv_norm(x, o["TVbeta"]),
                              lin(o["TVlamda_start"], o["TVlamda_end"], t))):
            if not use:
                continue
            _, grad_r = fn(img)
            grad_r = grad_r / img_norm0 ** 2
            if np.abs(grad_r).mean() > 0:
                grad_r = grad_r / np.abs(grad_r).mean()
            delta = delta + lam * grad_r
        img = img - lr * delta
        if o["clip_extreme"] and (t + 1) % o["clip_extreme_every"] == 0:
            img = clip_extreme_value(img, lin(o["e_pct_start"], o["e_pct_end"], t))
        if o["clip_small_norm"] and (t + 1) % o["clip_small_norm_every"] == 0:
            img = clip_small(img, image_norm(img), lin(o["n_pct_start"], o["n_pct_end"], t))
        if o["clip_small_contribution"] and (t + 1) % o["clip_small_contribution_every"] == 0:
            img = clip_small(img, image_norm(img * grad), lin(o["c_pct_start"], o["c_pct_end"], t))
        img = np.roll(np.roll(img, -ox, -1), -oy, -2)
        delta = delta - grad
        delta = np.roll(np.roll(delta, -ox, -1), -oy, -2)
        delta = delta + grad
        img = (1 - decay) * img
        if o["image_blur"]:
            img = gaussian_blur(img, sigma)
    return img_deprocess(img), np.array(losses)


OPTIONS = dict(
    iter_n=8, lr_start=2.0, lr_end=0.5, momentum_start=0.9, momentum_end=0.5,
    decay_start=0.05, decay_end=0.01, image_jitter=True, jitter_size=3,
    image_blur=True, sigma_start=1.0, sigma_end=0.5,
    use_p_norm_reg=True, p=3, lamda_start=0.5, lamda_end=0.2,
    use_TV_norm_reg=True, TVbeta=2, TVlamda_start=0.5, TVlamda_end=0.1,
    clip_extreme=True, clip_extreme_every=2, e_pct_start=2, e_pct_end=1,
    clip_small_norm=True, clip_small_norm_every=3, n_pct_start=5., n_pct_end=3.,
    clip_small_contribution=True, clip_small_contribution_every=4, c_pct_start=5.,
    c_pct_end=2., seed=7,
)


def test_gd_matches_reference_loop_with_all_options(net, rgb_image):
    layers = ["c1", "c2", "fc"]
    feats = get_cnn_features(net, rgb_image, layers)  # Caffe layout
    rng = np.random.default_rng(3)
    initial = rng.integers(0, 256, rgb_image.shape).astype(np.float32)
    oracle = CaffeLikeNet(net, layers, feats, {l: 1.0 / 3 for l in layers})
    ref_img, ref_loss = reference_icnn_gd(oracle, initial, OPTIONS)

    img, loss = icnn_gd.reconstruct_image(feats, net, initial_image=initial, disp_every=0,
                                          data_format="channels_first", **OPTIONS)
    assert img.shape == (32, 32, 3) and loss.shape == (OPTIONS["iter_n"],)
    np.testing.assert_allclose(loss, ref_loss, rtol=2e-4)
    scale = np.abs(ref_img - img_deprocess(np.zeros((3, 1, 1)))).max()
    err = np.abs(img - ref_img).max() / scale
    print(f"max relative pixel difference {err:.2e}")
    assert err < 1e-4, f"max relative pixel difference {err:.2e}"
    # the run must have changed the image a lot, or the comparison proves nothing
    assert np.abs(ref_img - initial).max() > 50


def test_gd_matches_reference_without_tricks(net, rgb_image):
    """Plain momentum GD (no blur, decay or jitter) over more steps."""
    layers = ["c1", "fc"]
    feats = get_cnn_features(net, rgb_image, layers)
    initial = np.full(rgb_image.shape, 128.0, np.float32)
    o = dict(OPTIONS, iter_n=20, image_jitter=False, jitter_size=0, image_blur=False,
             decay_start=0.0, decay_end=0.0, use_p_norm_reg=False, use_TV_norm_reg=False,
             clip_extreme=False, clip_small_norm=False, clip_small_contribution=False)
    oracle = CaffeLikeNet(net, layers, feats, {l: 0.5 for l in layers})
    ref_img, ref_loss = reference_icnn_gd(oracle, initial, o)
    img, loss = icnn_gd.reconstruct_image(feats, net, initial_image=initial, disp_every=0,
                                          data_format="channels_first", **o)
    np.testing.assert_allclose(loss, ref_loss, rtol=2e-4)
    np.testing.assert_allclose(img, ref_img, rtol=1e-4, atol=1e-2)
    assert loss[-1] < 0.5 * loss[0]


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7, 2.0])
def test_blur_equals_scipy(sigma):
    from keras_icnn.optimizers.transforms import Context, GaussianBlur
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, (2, 20, 24, 3)).astype(np.float32)
    blur = GaussianBlur((2.0, 0.5))
    blur.build(x.shape, 10)
    ours = blur._blur(tf.constant(x), tf.constant(sigma, tf.float32)).numpy()
    ref = np.stack([np.stack([nd.gaussian_filter(x[n, :, :, c].astype(np.float64), sigma)
                              for c in range(3)], -1) for n in range(2)])
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_tv_gradient_matches_original_for_beta_1():
    from keras_icnn.objective.priors import TotalVariation
    rng = np.random.default_rng(0)
    x = rng.normal(0, 10, (1, 6, 7, 3))
    x[0, 2:4, 2:4] = 1.0  # flat patch: variation 0 there, where the floor matters
    tv = TotalVariation(beta=1, normalize=None)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        val = tv.loss(xt)
        s = tf.reduce_sum(val)
    g = tape.gradient(s, xt).numpy()
    ref_loss, ref_grad = tv_norm(np.transpose(x[0], (2, 0, 1)), 1)
    np.testing.assert_allclose(float(val[0]), ref_loss, rtol=1e-5)
    np.testing.assert_allclose(np.transpose(g[0], (2, 0, 1)), ref_grad, rtol=1e-4, atol=1e-4)
