from keras_icnn import errors as ki_errors
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_icnn import imaging, models


@pytest.fixture(scope="module")
def vgg_pair():
    """Our VGG19 with Keras' own VGG19 (seeded random weights) copied in."""
    keras.utils.set_random_seed(123)
    theirs = keras.applications.VGG19(weights=None)
    ours = models.vgg19(weights=None)
    models.copy_keras_vgg19_weights(theirs, ours)
    return ours, theirs


def test_vgg19_real_architecture_matches_keras(vgg_pair):
    ours, theirs = vgg_pair
    assert [l for l in models.VGG19_LAYERS if l not in {x.name for x in ours.layers}] == []
    rng = np.random.default_rng(0)
    x = imaging.rgb_to_caffe(rng.integers(0, 256, (1, 224, 224, 3)))
    post = {f"relu{l[4:]}": f"block{l[4]}_conv{l[6]}" for l in models.VGG19_CONV_LAYERS}
    post.update({"relu6": "fc1", "relu7": "fc2", "prob": "predictions"})
    a = models.feature_extractor(ours, list(post))(x)
    b = keras.Model(theirs.input, {k: theirs.get_layer(v).output for k, v in post.items()})(x)
    for k in post:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=1e-5, atol=1e-5,
                                   err_msg=k)
    # pre-ReLU outputs really are pre-ReLU: they have negative values, the relu ones do not
    pre = models.feature_extractor(ours, ["conv1_1", "fc6"])(x)
    assert float(tf.reduce_min(pre["conv1_1"])) < 0 and float(tf.reduce_min(pre["fc6"])) < 0
    np.testing.assert_allclose(np.maximum(np.asarray(pre["conv1_1"]), 0),
                               np.asarray(a["relu1_1"]), atol=1e-6)


def test_vgg19_weights_file_roundtrip(vgg_pair, tmp_path):
    ours, _ = vgg_pair
    small = models.vgg19(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg.weights.h5")
    small.save_weights(path)
    loaded = models.vgg19(weights=path, include_top=False, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).normal(0, 50, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(small(x)))


def test_vgg19_imagenet_offline_gives_clear_error(monkeypatch):
    def fail(*a, **k):
        raise OSError("no network")
    monkeypatch.setattr(keras.utils, "get_file", fail)
    with pytest.raises(ki_errors.WeightsUnavailableError, match="ImageNet weights"):
        models.vgg19(weights="imagenet", include_top=False, input_shape=(32, 32, 3))


@pytest.mark.parametrize("kwargs, match", [
    (dict(weights=None, input_shape=(64, 64, 3)), "224"),
    (dict(weights=None, include_top=False, input_shape=(16, 16, 3)), ">= 32"),
    (dict(weights=None, include_top=False, input_shape=(32, 32)), r"\(H, W, 3\)"),
    (dict(weights="/no/such/file.weights.h5", include_top=False, input_shape=(32, 32, 3)),
     "no such file"),
    (dict(weights=3), "expected 'imagenet'"),
])
def test_vgg19_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        models.vgg19(**kwargs)


def test_feature_extractor_computes_only_what_it_needs(net):
    ext = models.feature_extractor(net, ["c1"])
    names = {l.name for l in ext.layers}
    assert "c1" in names and "c2" not in names and "fc" not in names


def test_unknown_layer_lists_model_layers(net):
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['conv9'\].*c1, r1"):
        models.feature_extractor(net, ["conv9"])


def test_get_cnn_features_caffe_layout(net, rgb_image):
    f = models.get_cnn_features(net, rgb_image, ["fc", "c1"])
    assert f["c1"].shape == (8, 32, 32) and f["fc"].shape == (10,)
    g = models.extract_features(net, rgb_image[None], ["c1"])
    np.testing.assert_allclose(np.moveaxis(f["c1"], 0, -1), g["c1"][0], rtol=1e-6)
    with pytest.raises(ValueError, match="expects 32x32"):
        models.get_cnn_features(net, np.zeros((20, 20, 3)), ["c1"])


def test_rgb_caffe_roundtrip():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)
    x = imaging.rgb_to_caffe(img)
    np.testing.assert_allclose(x[..., 0], img[..., 2] - imaging.KERAS_MEAN_BGR[0], rtol=1e-6)
    np.testing.assert_allclose(imaging.caffe_to_rgb(x), img, atol=1e-4)
    with pytest.raises(ValueError, match="3 colour channels"):
        imaging.rgb_to_caffe(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        imaging.rgb_to_caffe(np.full((4, 4, 3), np.nan))
    with pytest.raises(ValueError, match="mean"):
        imaging.as_mean([1, 2])


def test_vgg19_imagenet_loading_path(tmp_path, monkeypatch):
    """The 'imagenet' path end to end, offline: get_file is given a file in Keras' published
    (legacy HDF5) format, written from a seeded keras.applications.VGG19; our model must then
    compute the same post-ReLU features as that model."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(7)
    theirs = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg19_notop.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, theirs)
    asked = {}

    def fake_get_file(fname, origin, file_hash=None, cache_subdir=None, **kw):
        asked.update(fname=fname, origin=origin, file_hash=file_hash)
        return path
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    ours = models.vgg19(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert asked["file_hash"] == "253f8cb515780f3b799900260a226db6"
    assert asked["origin"].endswith("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    x = imaging.rgb_to_caffe(np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)))
    a = models.feature_extractor(ours, ["relu5_4"])(x)["relu5_4"]
    b = keras.Model(theirs.input, theirs.get_layer("block5_conv4").output)(x)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
