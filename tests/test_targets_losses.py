import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import losses, targets


def _np(x):
    return np.asarray(x)


# ------------------------------------------------------------------------------ losses
@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    f0 = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    m = (rng.uniform(size=(4, 5, 3)) > 0.3).astype(np.float32)
    return f, f0, m


def test_l2_l1_inner_definitions(pair):
    f, f0, m = pair
    d = f - f0
    np.testing.assert_allclose(_np(losses.l2(f, f0, m)), (d * d * m).sum((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(_np(losses.l1(f, f0, m)), np.abs(d * m).sum((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(_np(losses.inner(f, f0, m)), -(f * f0 * m).sum((1, 2, 3)),
                               rtol=1e-5)


def test_gram_definition_and_gradient_match_original(pair):
    # A spatial mask (the same for every channel): there, the original's hand-written gradient
    # is the true gradient of its loss.  (With masks that differ between channels the original
    # multiplied unmasked features into it; autodiff gives the exact gradient instead.)
    f, f0, m = pair
    m = np.repeat(m[..., :1], 3, axis=-1)
    # the original, per image, in Caffe layout [C, H, W]
    for n in range(2):
        fc, f0c, mc = (np.moveaxis(a, -1, 0) for a in (f[n], f0[n], m))
        N, M = fc.shape[0], fc.shape[1] * fc.shape[2]
        g = (fc * mc).reshape(N, -1) @ (fc * mc).reshape(N, -1).T
        g0 = (f0c * mc).reshape(N, -1) @ (f0c * mc).reshape(N, -1).T
        ref_loss = ((g - g0) ** 2).sum() / (4 * N ** 2 * M ** 2)
        ref_grad = ((g - g0) @ fc.reshape(N, M)).reshape(fc.shape) * mc / (N ** 2 * M ** 2)
        x = tf.constant(f[n:n + 1])
        with tf.GradientTape() as tape:
            tape.watch(x)
            val = losses.gram(x, f0[n:n + 1], m)
        grad = tape.gradient(val, x).numpy()[0]
        np.testing.assert_allclose(float(val[0]), ref_loss, rtol=1e-5)
        np.testing.assert_allclose(np.moveaxis(grad, -1, 0), ref_grad, rtol=1e-4, atol=1e-7)


def test_cosine_and_correlation(pair):
    f, f0, _ = pair
    a, b = f.reshape(2, -1), f0.reshape(2, -1)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(_np(losses.cosine(f, f0)), 1 - cos, rtol=1e-5)
    corr = [np.corrcoef(a[i], b[i])[0, 1] for i in range(2)]
    np.testing.assert_allclose(_np(losses.correlation(f, f0)), 1 - np.array(corr), rtol=1e-5)
    # invariant to scale and offset of the features
    np.testing.assert_allclose(_np(losses.correlation(3 * f + 2, f0)),
                               _np(losses.correlation(f, f0)), rtol=1e-4)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss 'l3'.*correlation"):
        losses.get("l3")


# ------------------------------------------------------------------------------ targets
def test_layouts_detected(net):
    rng = np.random.default_rng(0)
    c1_cl = rng.normal(size=(32, 32, 8))
    fc = rng.normal(size=(10,))
    for c1 in (c1_cl, np.moveaxis(c1_cl, -1, 0), c1_cl[None], np.moveaxis(c1_cl, -1, 0)[None]):
        t, _ = targets.prepare_targets({"c1": c1, "fc": fc}, net)
        assert t["c1"].shape == (1, 32, 32, 8) and t["fc"].shape == (1, 10)
        np.testing.assert_allclose(t["c1"][0], c1_cl, rtol=1e-6)
    assert list(t) == ["c1", "fc"]  # network order


def test_ambiguous_layout_is_refused_and_can_be_stated():
    inp = keras.Input((8, 8, 3))
    cube = keras.Model(inp, keras.layers.Conv2D(8, 3, padding="same", name="c")(inp))
    f = np.random.default_rng(0).normal(size=(8, 8, 8))
    with pytest.raises(ValueError, match="ambiguous.*data_format"):
        targets.prepare_targets({"c": f}, cube)
    t, _ = targets.prepare_targets({"c": f}, cube, data_format="channels_first")
    np.testing.assert_allclose(t["c"][0], np.moveaxis(f, 0, -1), rtol=1e-6)
    t, _ = targets.prepare_targets({"c": f}, cube, data_format={"c": "channels_last"})
    np.testing.assert_allclose(t["c"][0], f, rtol=1e-6)


@pytest.mark.parametrize("feats, match", [
    ({"c1": np.zeros((5, 5, 8))}, r"shape \(5, 5, 8\) does not fit.*\(32, 32, 8\)"),
    ({"conv9": np.zeros(3)}, r"unknown layer"),
    ({"fc": np.full(10, np.nan)}, "NaN or Inf"),
    ({"fc": np.zeros((2, 10)), "c1": np.zeros((3, 32, 32, 8))}, "different batch sizes"),
    ({}, "non-empty dict"),
    ({"fc": np.array(["a"] * 10)}, "numeric"),
])
def test_bad_targets(net, feats, match):
    with pytest.raises(ValueError, match=match):
        targets.prepare_targets(feats, net)


def test_masks_semantics():
    t = {"c": np.ones((1, 4, 6, 2), np.float32), "f": np.ones((1, 5), np.float32)}
    # 2-D mask of another size: centre block copied into ones
    m2 = np.zeros((2, 2))
    out = targets.create_feature_masks(t, masks={"c": m2})["c"]
    assert out.shape == (4, 6, 2)
    expect = np.ones((4, 6))
    expect[1:3, 2:4] = 0
    np.testing.assert_array_equal(out[..., 0], expect)
    np.testing.assert_array_equal(out[..., 1], expect)
    # channel list, combined with a 2-D mask
    out = targets.create_feature_masks(t, masks={"c": m2}, channels={"c": [1], "f": [0, 4]})
    np.testing.assert_array_equal(out["c"][..., 0], 0)
    np.testing.assert_array_equal(out["c"][..., 1], expect)
    np.testing.assert_array_equal(out["f"], [1, 0, 0, 0, 1])
    # 3-D mask in Caffe layout when the targets came channels-first
    m3 = np.zeros((2, 4, 6))
    m3[1, 0, 0] = 1
    out = targets.create_feature_masks(t, masks={"c": m3}, layouts={"c": "channels_first"})
    assert out["c"][0, 0, 1] == 1 and out["c"].sum() == 1


@pytest.mark.parametrize("kw, match", [
    (dict(masks={"c": np.ones(7)}), "fits no use"),
    (dict(masks={"zz": np.ones(7)}), "no target features"),
    (dict(channels={"c": [5]}), r"indices in \[0, 2\)"),
    (dict(masks={"f": np.zeros(5)}), "selects no unit"),
])
def test_bad_masks(kw, match):
    t = {"c": np.ones((1, 4, 6, 2), np.float32), "f": np.ones((1, 5), np.float32)}
    with pytest.raises(ValueError, match=match):
        targets.create_feature_masks(t, **kw)


def test_layer_weights():
    t = {"a": np.array([[1.0, 1.0], [2.0, 0.0]]), "b": np.array([[3.0, 0.0], [0.0, 1.0]])}
    w = targets.layer_weights(t)
    np.testing.assert_allclose(w["a"], [0.5, 0.5])
    w = targets.layer_weights(t, "inverse_norm")
    # image 0: 1/2 and 1/9 -> normalised; image 1: 1/4 and 1/1
    np.testing.assert_allclose(w["a"], [(1 / 2) / (1 / 2 + 1 / 9), (1 / 4) / (1 / 4 + 1)],
                               rtol=1e-6)
    np.testing.assert_allclose(w["a"] + w["b"], 1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"features\['b'\] of image 0 is all zeros"):
        targets.layer_weights({"a": t["a"], "b": np.zeros((2, 2))}, "inverse_norm")
    with pytest.raises(ValueError, match="missing"):
        targets.layer_weights(t, {"a": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        targets.layer_weights(t, {"a": -1.0, "b": 1.0})


def test_more_bad_targets_and_weights(net):
    t = {"a": np.ones((1, 2)), "b": np.ones((1, 3))}
    with pytest.raises(ValueError, match="every layer weight of image 0 is 0"):
        targets.layer_weights(t, {"a": 0.0, "b": 0.0})
    np.testing.assert_allclose(targets.layer_weights(t, "equal")["a"], [0.5])
    with pytest.raises(ValueError, match="numeric"):
        targets.prepare_targets({"fc": np.ones(10, complex)}, net)
