"""Network-feature metrics (evaluation.feature_identification) with tiny random-weight models
passed explicitly; pretrained downloads and keras-hub are simulated (monkeypatch)."""
import sys
import types

import keras
import numpy as np
import pytest

from keras_icnn.errors import WeightsUnavailableError
from keras_icnn.evaluation import feature_identification as fi
from test_evaluation_reference import ref_corr, ref_identification


def _tiny(size=16, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(6, name="fc")(x)
    return keras.Model(inp, out, name="tiny")


def _images(n, size=20, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(float)


def _direct_features(model, layer, images, size, prep):
    """Features computed here without keras-icnn: Pillow bilinear resize, preprocessing,
    a sub-model up to ``layer``."""
    from PIL import Image

    rs = np.stack([np.stack([np.asarray(Image.fromarray(img[..., c].astype(np.float32))
                                        .resize((size, size), Image.Resampling.BILINEAR))
                             for c in range(3)], -1) for img in images])
    sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
    return np.asarray(sub(prep(rs.astype(np.float32)))).reshape(len(images), -1)


def test_feature_identification_any_model_and_layer():
    model = _tiny()
    true = _images(4)
    recon = true + np.random.default_rng(2).normal(0, 40, true.shape)
    got = fi.feature_identification(recon, true, model, "conv")
    fr = _direct_features(model, "conv", recon, 16, lambda x: x)
    ft = _direct_features(model, "conv", true, 16, lambda x: x)
    np.testing.assert_array_equal(got, ref_identification(fr, ft, "correlation"))
    got_e = fi.feature_identification(recon, true, model, "fc", metric="euclidean")
    fr = _direct_features(model, "fc", recon, 16, lambda x: x)
    ft = _direct_features(model, "fc", true, 16, lambda x: x)
    np.testing.assert_array_equal(got_e, ref_identification(fr, ft, "euclidean"))
    dist = fi.feature_distance(recon, true, model, "fc")
    np.testing.assert_allclose(dist, [1 - ref_corr(fr[i], ft[i]) for i in range(4)], atol=1e-6)
    with pytest.raises(ValueError, match="unknown layer"):
        fi.feature_identification(recon, true, model, "nope")


def test_presets_with_given_models_keep_preprocessing_and_measure():
    model = _tiny()
    true = _images(3)
    recon = true[::-1].copy()
    nets = fi.load_feature_nets(["alexnet2", "inception", "effnet"],
                                models={"alexnet2": (model, "conv"), "inception": model,
                                        "effnet": model})
    assert [n.measure for n in nets.values()] == ["identification"] * 2 + ["distance"]
    assert nets["alexnet2"].preprocess == "torch" and nets["inception"].preprocess == "tf"
    res = fi.feature_metrics(recon, true, nets)
    assert list(res) == ["identification accuracy by alexnet2 features",
                         "identification accuracy by inception features",
                         "correlation distance by effnet features"]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    torch_prep = lambda x: (x / 255.0 - mean) / std  # noqa: E731
    fr = _direct_features(model, "conv", recon, 16, torch_prep)
    ft = _direct_features(model, "conv", true, 16, torch_prep)
    np.testing.assert_array_equal(res["identification accuracy by alexnet2 features"],
                                  ref_identification(fr, ft, "correlation"))
    fr = _direct_features(model, "fc", recon, 16, lambda x: x / 127.5 - 1.0)
    ft = _direct_features(model, "fc", true, 16, lambda x: x / 127.5 - 1.0)
    np.testing.assert_array_equal(res["identification accuracy by inception features"],
                                  ref_identification(fr, ft, "correlation"))
    fr = _direct_features(model, "fc", recon, 16, lambda x: x)
    ft = _direct_features(model, "fc", true, 16, lambda x: x)
    np.testing.assert_allclose(res["correlation distance by effnet features"],
                               [1 - ref_corr(fr[i], ft[i]) for i in range(3)], atol=1e-6)


def test_alexnet_without_a_model_is_a_clear_error_and_left_out():
    with pytest.raises(WeightsUnavailableError, match="needs AlexNet's trained weights"):
        fi.preset("alexnet5")
    with pytest.raises(WeightsUnavailableError, match="needs AlexNet's trained weights"):
        fi.feature_identification(_images(2), _images(2), "alexnet2")
    messages = []
    with pytest.warns(UserWarning, match="alexnet5: needs AlexNet's trained weights"):
        nets = fi.load_feature_nets(["alexnet5"], log=messages.append)
    assert nets == {} and "--alexnet-weights" in messages[0]


def test_alexnet_columns_from_converted_weights(tmp_path):
    """keras-icnn's AlexNet (bdpy's) with weights from a file: relu2 / relu5 on Caffe input."""
    import keras

    from keras_icnn.models import build
    keras.utils.set_random_seed(0)
    path = str(tmp_path / "alexnet.weights.h5")
    build("alexnet", include_top=False).save_weights(path)
    net = fi.alexnet_features(path, "alexnet5")
    assert (net.layer, net.preprocess, net.input_size) == ("relu5", "caffe", (227, 227))
    acc = fi.feature_identification(_images(3), _images(3), net)
    assert acc.shape == (3,) and np.all((acc >= 0) & (acc <= 1))


def test_download_failure_leaves_the_column_out(monkeypatch):
    calls = []

    def offline(**kwargs):
        calls.append(kwargs)
        raise Exception("URL fetch failure on https://example.invalid: None -- no network")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    monkeypatch.setattr(keras.applications, "EfficientNetB1", offline)
    with pytest.raises(WeightsUnavailableError, match="InceptionV3 could not be loaded"):
        fi.preset("inception")
    with pytest.warns(UserWarning) as record:
        nets = fi.load_feature_nets(["inception", "effnet", "alexnet2"],
                                    models={"alexnet2": (_tiny(), "pool")})
    messages = [str(w.message) for w in record]
    assert any("'inception' column is left out" in m for m in messages)
    assert any("'effnet' column is left out" in m for m in messages)
    assert list(nets) == ["alexnet2"]  # no random-weight network stands in
    assert all(c["weights"] == "imagenet" for c in calls)
    assert calls[0]["pooling"] == "avg" and calls[0]["input_shape"] == (299, 299, 3)
    assert calls[-1]["input_shape"] == (240, 240, 3)


def test_clip_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # not installed
    with pytest.raises(WeightsUnavailableError, match="keras_hub is not installed"):
        fi.preset("clip")
    with pytest.warns(UserWarning, match="keras_hub is not installed"):
        assert fi.load_feature_nets(["clip"]) == {}

    class Backbone:
        @staticmethod
        def from_preset(name):
            raise OSError(f"cannot download {name}")

    hub = types.SimpleNamespace(models=types.SimpleNamespace(CLIPBackbone=Backbone),
                                layers=types.SimpleNamespace(CLIPImageConverter=Backbone))
    monkeypatch.setitem(sys.modules, "keras_hub", hub)
    with pytest.raises(WeightsUnavailableError, match="clip_vit_large_patch14"):
        fi.preset("clip")

    class Loaded:  # a stand-in CLIP: converter, then image embeddings
        @staticmethod
        def from_preset(name):
            return Loaded()

        def __call__(self, x):
            return np.asarray(x)[:, ::2, ::2] / 255.0

        def get_vision_embeddings(self, x):
            return np.asarray(x).reshape(len(x), -1)

    hub.models.CLIPBackbone = hub.layers.CLIPImageConverter = Loaded
    true = _images(3, size=8)
    recon = true + 1.0
    res = fi.feature_metrics(recon, true, fi.load_feature_nets(["clip"]))
    ft, fr = true[:, ::2, ::2].reshape(3, -1), recon[:, ::2, ::2].reshape(3, -1)
    np.testing.assert_array_equal(res["identification accuracy by clip features"],
                                  ref_identification(fr, ft, "correlation"))


def test_feature_net_checks():
    model = _tiny()
    with pytest.raises(ValueError, match="name: expected one of"):
        fi.preset("vgg")
    with pytest.raises(ValueError, match="measure"):
        fi.network_features(_images(2), fi.FeatureNet(model, measure="mean"))
    with pytest.raises(ValueError, match="preprocess"):
        fi.network_features(_images(2), fi.FeatureNet(model, preprocess="bgr"))
    with pytest.raises(ValueError, match="images: contains NaN"):
        fi.network_features(np.full((2, 8, 8, 3), np.nan), fi.FeatureNet(model))
    with pytest.raises(ValueError, match="at least 2 candidate"):
        fi.feature_identification(_images(1), _images(1), model)
    with pytest.raises(ValueError, match="batch_size"):
        fi.network_features(_images(2), fi.FeatureNet(model), batch_size=0)
    feats = fi.network_features(_images(5), fi.FeatureNet(model, "conv"), batch_size=2)
    assert feats.shape == (5, 14 * 14 * 4) and feats.dtype == np.float64
