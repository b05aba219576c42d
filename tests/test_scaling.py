import importlib

import numpy as np
import pytest
import scipy.io

from keras_icnn import scaling


def _original_estimate_cnn_feat_std(cnn_feat):
    """The original iCNN ``estimate_cnn_feat_std`` (Caffe layout [C, H, W] or [D] / [1, D])."""
    s = cnn_feat.shape
    nd = cnn_feat.ndim
    if nd == 1 or (nd == 2 and s[0] == 1) or (nd == 3 and s[1] == 1 and s[2] == 1):
        return np.std(cnn_feat)
    stds = np.zeros(s[0], dtype="float32")
    for j in range(s[0]):
        stds[j] = np.std(cnn_feat[j, :])
    return np.mean(stds)


def test_feature_std_matches_original():
    rng = np.random.default_rng(0)
    conv = (rng.standard_normal((6, 5, 4)) * rng.uniform(0.5, 3, 4)).astype(np.float32)  # [H,W,C]
    fc = rng.standard_normal(10).astype(np.float32) * 2.5
    conv11 = rng.standard_normal((1, 1, 8)).astype(np.float32)
    assert scaling.feature_std(conv) == pytest.approx(
        float(_original_estimate_cnn_feat_std(conv.transpose(2, 0, 1))), rel=1e-6)
    assert scaling.feature_std(fc) == pytest.approx(float(_original_estimate_cnn_feat_std(fc)),
                                                    rel=1e-6)
    # 1x1 conv counts as fc: the std over channels (per-channel std would be 0)
    assert scaling.feature_std(conv11) == pytest.approx(float(np.std(conv11)), rel=1e-6)
    assert scaling.feature_std(conv11) > 0
    # hand value: channel 0 = [0, 2] (std 1), channel 1 = [1, 1] (std 0) -> mean 0.5
    hand = np.array([[[0.0, 1.0]], [[2.0, 1.0]]])  # [H=2, W=1, C=2]
    assert scaling.feature_std(hand) == pytest.approx(0.5)
    assert scaling.feature_std(hand, ddof=1) == pytest.approx(np.sqrt(2) / 2)


def test_feature_std_batched_per_sample():
    rng = np.random.default_rng(1)
    conv = rng.standard_normal((3, 4, 4, 2)) * np.array([1.0, 2.0, 3.0])[:, None, None, None]
    fc = rng.standard_normal((3, 9))
    s = scaling.feature_std(conv)
    assert s.shape == (3,)
    np.testing.assert_allclose(s, [scaling.feature_std(c) for c in conv])
    assert s[0] < s[1] < s[2]
    np.testing.assert_allclose(scaling.feature_std(fc), fc.std(axis=1))
    with pytest.raises(ValueError, match="shape"):
        scaling.feature_std(np.float32(3.0))
    with pytest.raises(ValueError, match="ddof"):
        scaling.feature_std(fc, ddof=-1)
    with pytest.raises(ValueError, match="ddof=9 is too large"):
        scaling.feature_std(fc, ddof=9)


def test_correct_feature_scale():
    rng = np.random.default_rng(2)
    feats = {"conv1": (rng.standard_normal((2, 4, 4, 3)) * 7 + 1).astype(np.float32),
             "fc1": rng.standard_normal((2, 5)).astype(np.float32) * 0.1}
    ref = {"conv1": 2.0, "fc1": 0.5, "unused": 9.0}
    out = scaling.correct_feature_scale(feats, ref)
    assert set(out) == {"conv1", "fc1"}
    for layer in feats:
        assert out[layer].dtype == np.float32 and out[layer].shape == feats[layer].shape
        np.testing.assert_allclose(scaling.feature_std(out[layer]), [ref[layer]] * 2, rtol=1e-5)
        # a pure rescaling per sample: the ratio is the same everywhere in a sample
        ratio = out[layer][0] / feats[layer][0]
        np.testing.assert_allclose(ratio, ratio.ravel()[0], rtol=1e-5)
    exp = feats["fc1"][1] / feats["fc1"][1].std() * 0.5
    np.testing.assert_allclose(out["fc1"][1], exp, rtol=1e-5)
    # single samples keep their shape
    single = scaling.correct_feature_scale({"conv1": feats["conv1"][0]}, ref)
    np.testing.assert_allclose(single["conv1"], out["conv1"][0], rtol=1e-6)


def test_correct_feature_scale_errors():
    feats = {"conv1": np.ones((2, 3, 3, 2)), "fc1": np.arange(6.0).reshape(2, 3)}
    with pytest.raises(ValueError, match=r"no reference std for layer 'fc1'"):
        scaling.correct_feature_scale({"fc1": feats["fc1"]}, {"conv1": 1.0})
    with pytest.raises(ValueError, match=r"features\['conv1'\]: sample 0 has std 0"):
        scaling.correct_feature_scale(feats, {"conv1": 1.0, "fc1": 1.0})
    bad = np.arange(6.0).reshape(2, 3)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"features\['fc1'\]: sample 1 has std nan"):
        scaling.correct_feature_scale({"fc1": bad}, {"fc1": 1.0})
    with pytest.raises(ValueError, match=r"reference_std\['fc1'\].*positive"):
        scaling.correct_feature_scale({"fc1": feats["fc1"]}, {"fc1": 0.0})
    with pytest.raises(ValueError, match="non-empty dict"):
        scaling.correct_feature_scale({}, {"fc1": 1.0})


def _tiny_model():
    import keras

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(5, name="fc1")(x)
    return keras.Model(inp, out)


def _expected_std(model, images, mean):
    """Reference computed the long way: Caffe input, the two layer outputs, the original std."""
    import keras

    from keras_icnn.imaging import rgb_to_caffe

    sub = keras.Model(model.inputs, [model.get_layer("conv1").output, model.get_layer("fc1").output])
    conv, fc = sub.predict(rgb_to_caffe(images, mean=mean), verbose=0)
    return {
        "conv1": np.mean([_original_estimate_cnn_feat_std(c.transpose(2, 0, 1)) for c in conv]),
        "fc1": np.mean([_original_estimate_cnn_feat_std(f) for f in fc]),
    }


def test_std_from_extractor_core():
    import keras

    model = _tiny_model()
    extractor = keras.Model(model.inputs, {"conv1": model.get_layer("conv1").output,
                                           "fc1": model.get_layer("fc1").output})
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    exp = _expected_std(model, images, None)
    got = scaling.std_from_extractor(extractor, images, ["conv1", "fc1"], batch_size=2)
    assert set(got) == {"conv1", "fc1"}
    for k in exp:
        assert got[k] == pytest.approx(float(exp[k]), rel=1e-5)
    # images of another size are resized to the model's 8x8 input first
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    got_big = scaling.std_from_extractor(extractor, big, ["conv1", "fc1"], batch_size=4)
    from keras_icnn.evaluation.metrics import resize_images

    exp_big = _expected_std(model, resize_images(big, 8), None)
    for k in exp:
        assert got_big[k] == pytest.approx(float(exp_big[k]), rel=1e-5)


def test_estimate_feature_std_with_models_feature_extractor(tmp_path):
    try:
        models = importlib.import_module("keras_icnn.models")
        models.feature_extractor  # noqa: B018
    except (ImportError, AttributeError):
        pytest.skip("keras_icnn.models.feature_extractor is not available yet")
    from PIL import Image

    model = _tiny_model()
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    mean = (100.0, 110.0, 120.0)
    exp = _expected_std(model, images, mean)
    got = scaling.estimate_feature_std(model, images, ["conv1", "fc1"], batch_size=2, mean=mean)
    for k in exp:
        assert got[k] == pytest.approx(float(exp[k]), rel=1e-5)
    # the same from image files
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    got_files = scaling.estimate_feature_std(model, paths, ["conv1", "fc1"], mean=mean)
    for k in exp:
        assert got_files[k] == pytest.approx(float(exp[k]), rel=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        scaling.estimate_feature_std(model, images, ["conv1"], batch_size=0)
    with pytest.raises(ValueError, match="layers"):
        scaling.estimate_feature_std(model, images, [])


@pytest.mark.parametrize("ext", [".npz", ".mat"])
def test_save_load_feature_std(tmp_path, ext):
    stds = {"conv1_1": 12.5, "fc7": np.float32(0.25)}
    p = tmp_path / f"std{ext}"
    scaling.save_feature_std(p, stds)
    got = scaling.load_feature_std(p)
    assert got == {"conv1_1": 12.5, "fc7": 0.25}
    assert all(isinstance(v, float) for v in got.values())
    with pytest.raises(ValueError, match="positive"):
        scaling.save_feature_std(p, {"fc7": -1.0})
    with pytest.raises(ValueError, match="extension"):
        scaling.save_feature_std(tmp_path / "s.txt", stds)


def test_load_feature_std_lab_style_mat(tmp_path):
    # the lab's estimated_vgg19_cnn_feat_std.mat: one 1x1 double per layer
    p = tmp_path / "estimated_feat_std.mat"
    scipy.io.savemat(p, {"conv1_1": np.array([[31.5]]), "fc8": np.array([[1.25]])})
    assert scaling.load_feature_std(p) == {"conv1_1": 31.5, "fc8": 1.25}
    scipy.io.savemat(p, {"conv1_1": np.ones((1, 3))})
    with pytest.raises(ValueError, match="'conv1_1' has shape"):
        scaling.load_feature_std(p)
