"""The cookbook's two feature scalings (recon_icnn_image_gd.py + bdpy normalize_feature),
checked against a NumPy transcription of the cookbook's arithmetic written here."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from keras_icnn import io as kio
from keras_icnn.objective import scaling
from lab_trees import FORMATS, layer_shapes, make_decoded_tree, write_mat


# ------------------------------------------------------- transcription of the cookbook's code
def _normalize_feature_transcribed(feature, scale, std_ddof):
    """bdpy normalize_feature(feature, channel_wise_mean=False, channel_wise_std=False,
    channel_axis=0, shift='self', scale=scale, std_ddof=std_ddof), line by line."""
    if feature.ndim == 1:
        axes_along = None
    else:
        axes = list(range(feature.ndim))
        axes.remove(0)
        axes_along = tuple(axes)
    feat_mean = np.mean(feature, keepdims=True)
    feat_std = np.mean(np.std(feature, axis=axes_along, ddof=std_ddof, keepdims=True), keepdims=True)
    shift = feat_mean
    feat_n = (feature - feat_mean) / feat_std
    feat_n = feat_n * scale
    feat_n = feat_n + shift
    return feat_n


def _cookbook_transcribed(feat, feature_scaling, feat_std0, feat_mean0_train, std_ddof=1):
    """The normalisation loop of recon_icnn_image_gd.py."""
    feat = dict(feat)
    for layer, ft in feat.items():
        if feature_scaling == "feature_std":
            ft = _normalize_feature_transcribed(ft[0], np.mean(feat_std0[layer]), std_ddof)[np.newaxis]
        elif feature_scaling == "feature_std_train_mean_center":
            ft = ft - feat_mean0_train[layer]
            ft = _normalize_feature_transcribed(ft[0], np.mean(feat_std0[layer]), std_ddof)[np.newaxis]
            ft = ft + feat_mean0_train[layer]
        feat.update({layer: ft})
    return feat


# ------------------------------------------------------------------------------- fixtures
def _write_decoders(root, shapes, subjects, rois, fmt="v73", seed=1):
    """<root>/<layer>/<subject>/<roi>/model/y_mean.mat, key y_mean, [1, ...] (hdf5storage)."""
    rng = np.random.default_rng(seed)
    means = {}
    for layer, shape in shapes.items():
        for s in subjects:
            for r in rois:
                m = (rng.standard_normal(shape) + 2).astype(np.float32)
                write_mat(os.path.join(root, layer, s, r, "model", "y_mean.mat"), {"y_mean": m}, fmt)
                means[(layer, s, r)] = m
    return means


def _write_reference_std(path, shapes, fmt="v5", seed=2):
    """A chwise reference std file: one positive value per channel of each layer."""
    rng = np.random.default_rng(seed)
    stds = {layer: (rng.uniform(0.5, 3.0, (1, shape[1]))) for layer, shape in shapes.items()}
    write_mat(str(path), stds, fmt)
    return stds


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("method", scaling.COOKBOOK_SCALINGS)
def test_scalings_on_a_lab_tree_match_the_cookbook(tmp_path, fmt, method):
    shapes = layer_shapes(3)
    subjects, rois, labels = ["sub-01", "sub-02"], ["VC", "V1"], ["a", "b", "c"]
    make_decoded_tree(tmp_path / "dec", shapes, subjects, rois, labels, fmt=fmt)
    means = _write_decoders(tmp_path / "decoders", shapes, subjects, rois, fmt=fmt)
    std_file = tmp_path / "estimated_cnn_feat_std_VGG19_ImgSize_224x224_chwise_dof1.mat"
    stds = _write_reference_std(std_file, shapes, fmt)
    tree = kio.DecodedFeatureTree(tmp_path / "dec")
    ref_std = kio.load_reference_std(std_file)
    ddof = kio.std_file_ddof(std_file)
    assert ddof == 1
    for s in subjects:
        for r in rois:
            for label in labels:
                feat = tree.load(label, subject=s, roi=r)
                ymean = kio.load_train_mean(tmp_path / "decoders", tree.layers, s, r)
                got = scaling.apply_cookbook_scaling(feat, method, ref_std, ymean, ddof=ddof)
                want = _cookbook_transcribed(
                    feat, method, stds, {k: means[(k, s, r)] for k in shapes})
                for layer in shapes:
                    assert got[layer].shape == feat[layer].shape
                    assert got[layer].dtype == np.float32
                    np.testing.assert_allclose(got[layer], want[layer], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("method", scaling.COOKBOOK_SCALINGS)
@pytest.mark.parametrize("ddof", [0, 1])
def test_float64_matches_transcription_closely(method, ddof):
    rng = np.random.default_rng(5)
    feat = {"conv": rng.standard_normal((1, 3, 4, 5)) * 7 + 1, "fc": rng.standard_normal((1, 9))}
    stds = {"conv": rng.uniform(1, 2, (3, 1, 1)), "fc": np.array([[2.5]])}
    means = {"conv": rng.standard_normal((1, 3, 4, 5)), "fc": rng.standard_normal((1, 9))}
    got = scaling.apply_cookbook_scaling(feat, method, stds, means, ddof=ddof)
    want = _cookbook_transcribed(feat, method, stds, means, std_ddof=ddof)
    for layer in feat:
        assert got[layer].dtype == np.float64
        np.testing.assert_allclose(got[layer], want[layer], rtol=1e-12, atol=1e-12)
    if method == "feature_std":
        # the feature's own mean is kept, not removed (shift='self')
        np.testing.assert_allclose(got["fc"].mean(), feat["fc"].mean(), rtol=1e-12)


def test_channels_last_equals_channels_first():
    rng = np.random.default_rng(6)
    cf = {"conv": rng.standard_normal((1, 4, 3, 2)).astype(np.float32)}
    ym = {"conv": rng.standard_normal((1, 4, 3, 2)).astype(np.float32)}
    stds = {"conv": np.full(4, 1.5)}
    a = scaling.scale_feature_std_train_mean_center(cf, stds, ym)
    b = scaling.scale_feature_std_train_mean_center(
        {"conv": cf["conv"].transpose(0, 2, 3, 1)}, stds,
        {"conv": ym["conv"].transpose(0, 2, 3, 1)}, data_format="channels_last")
    np.testing.assert_allclose(b["conv"].transpose(0, 3, 1, 2), a["conv"], rtol=1e-6)


def test_each_sample_of_a_batch_is_scaled_alone():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 3, 3))
    stds = {"conv": np.array([2.0])}
    batch = scaling.scale_feature_std({"conv": x}, stds)["conv"]
    for i in range(3):
        one = scaling.scale_feature_std({"conv": x[i:i + 1]}, stds)["conv"]
        np.testing.assert_allclose(batch[i:i + 1], one, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 4), h=st.integers(2, 4), w=st.integers(1, 4), ddof=st.integers(0, 1),
       scale=st.floats(0.1, 10), seed=st.integers(0, 2 ** 16), fc=st.booleans())
def test_result_has_the_reference_std_and_own_mean(c, h, w, ddof, scale, seed, fc):
    rng = np.random.default_rng(seed)
    shape = (1, c * h * w + 1) if fc else (1, c, h, w)
    x = rng.standard_normal(shape) * rng.uniform(0.1, 5) + rng.uniform(-3, 3)
    y = scaling.scale_feature_std({"l": x}, {"l": np.array([scale])}, ddof=ddof)["l"]
    np.testing.assert_allclose(y.mean(), x.mean(), rtol=1e-9, atol=1e-9)
    std = y.std(ddof=ddof) if fc else y[0].std(axis=(1, 2), ddof=ddof).mean()
    np.testing.assert_allclose(std, scale, rtol=1e-9)
    want = _cookbook_transcribed({"l": x}, "feature_std", {"l": scale}, None, std_ddof=ddof)["l"]
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


def test_no_scaling_returns_a_copy():
    x = {"fc": np.ones((1, 3), np.float32)}
    out = scaling.apply_cookbook_scaling(x, None)
    np.testing.assert_array_equal(out["fc"], x["fc"])
    assert out["fc"] is not x["fc"]


# --------------------------------------------------------------------------------- errors
def test_errors_name_the_problem():
    x = {"fc": np.arange(6.0).reshape(1, 6)}
    ref = {"fc": np.array([1.0])}
    with pytest.raises(ValueError, match="unsupported feature scaling 'std'"):
        scaling.apply_cookbook_scaling(x, "std", ref)
    with pytest.raises(ValueError, match="needs reference_std"):
        scaling.apply_cookbook_scaling(x, "feature_std")
    with pytest.raises(ValueError, match="needs train_mean"):
        scaling.apply_cookbook_scaling(x, "feature_std_train_mean_center", ref)
    with pytest.raises(ValueError, match="no reference std for layer 'fc'"):
        scaling.scale_feature_std(x, {"conv": 1.0})
    with pytest.raises(ValueError, match="no training mean for layer 'fc'"):
        scaling.scale_feature_std_train_mean_center(x, ref, {})
    with pytest.raises(ValueError, match=r"training mean of shape \(1, 5\) does not match"):
        scaling.scale_feature_std_train_mean_center(x, ref, {"fc": np.zeros((1, 5))})
    with pytest.raises(ValueError, match="std is 0.0"):
        scaling.scale_feature_std({"fc": np.ones((1, 6))}, ref)
    with pytest.raises(ValueError, match="ddof=1 is too large for 1 values per channel"):
        scaling.scale_feature_std({"c": np.ones((1, 4, 1, 1))}, {"c": 1.0})
    with pytest.raises(ValueError, match="batch axis"):
        scaling.scale_feature_std({"fc": np.ones(6)}, ref)
    with pytest.raises(ValueError, match="ddof"):
        scaling.scale_feature_std(x, ref, ddof=-1)
    with pytest.raises(ValueError, match="mean -1.0; expected positive"):
        scaling.scale_feature_std(x, {"fc": -1.0})
    with pytest.raises(ValueError, match="data_format"):
        scaling.scale_feature_std(x, ref, data_format="NCHW")


# ----------------------------------------------------------------------------- the files
def test_std_file_ddof_reads_the_name():
    assert kio.std_file_ddof("/m/estimated_cnn_feat_std_VGG_ILSVRC_19_layers_ImgSize_224x224_chwise_dof1.mat") == 1
    assert kio.std_file_ddof("std_ddof0.mat") == 0
    assert kio.std_file_ddof("/m/estimated_vgg19_cnn_feat_std.mat") is None
    assert kio.std_file_ddof("dofus.mat") is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_reference_std_and_train_mean_files(tmp_path, fmt):
    shapes = {"conv1": (1, 3, 2, 2), "fc6": (1, 4)}
    stds = _write_reference_std(tmp_path / "std.mat", shapes, fmt)
    got = kio.load_reference_std(tmp_path / "std.mat")
    assert set(got) == set(shapes)
    for layer in shapes:
        np.testing.assert_allclose(got[layer], stds[layer])
    write_mat(str(tmp_path / "bad.mat"), {"fc6": np.array([[0.0, 1.0]])}, fmt)
    with pytest.raises(ValueError, match="bad.mat: std of layer 'fc6' must be positive"):
        kio.load_reference_std(tmp_path / "bad.mat")
    means = _write_decoders(tmp_path / "dec", shapes, ["s"], ["r"], fmt)
    ym = kio.load_train_mean(tmp_path / "dec", ["conv1", "fc6"], "s", "r")
    for layer in shapes:
        assert ym[layer].dtype == np.float32
        np.testing.assert_array_equal(ym[layer], means[(layer, "s", "r")])
    with pytest.raises(FileNotFoundError, match=r"fc6.*dec/fc6/s/x/model/y_mean\.mat"):
        kio.load_train_mean(tmp_path / "dec", "fc6", "s", "x")


def test_train_mean_path_with_a_fold():
    assert kio.train_mean_path("/d", "fc6", "s1", "VC") == os.path.join("/d", "fc6", "s1", "VC", "model", "y_mean.mat")
    assert kio.train_mean_path("/d", "fc6", "s1", "VC", "cv-fold2") == os.path.join(
        "/d", "fc6", "s1", "VC", "cv-fold2", "model", "y_mean.mat")
    with pytest.raises(ValueError, match="subject"):
        kio.train_mean_path("/d", "fc6", None, "VC")
