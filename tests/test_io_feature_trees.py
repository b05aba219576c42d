"""The lab's feature trees (bdpy Features / DecodedFeatures layouts) read by keras_icnn.io."""
import os
import tempfile

import h5py
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from keras_icnn import io as kio
from lab_trees import FORMATS, layer_shapes, make_decoded_tree, make_true_tree, write_mat

SUBJECTS = ["sub-02", "sub-01"]
ROIS = ["VC", "LVC"]
LABELS = ["n02_b", "n01_a", "n03_c"]


# ---------------------------------------------------------------------------- true features
@pytest.mark.parametrize("fmt", FORMATS)
def test_true_tree_lists_and_loads(tmp_path, fmt):
    shapes = layer_shapes(3)
    data = make_true_tree(tmp_path, shapes, LABELS, fmt)
    tree = kio.FeatureTree(tmp_path)
    assert tree.layers == sorted(shapes)
    assert tree.labels == sorted(LABELS)
    assert tree.subjects == tree.rois == tree.folds == []
    feats = tree.load("n01_a")
    assert list(feats) == sorted(shapes)
    for layer, shape in shapes.items():
        assert feats[layer].shape == shape and feats[layer].dtype == np.float32
        np.testing.assert_array_equal(feats[layer], data[(layer, "n01_a")])
    one = tree.load("n03_c", layers="fc6")
    assert list(one) == ["fc6"]
    np.testing.assert_array_equal(one["fc6"], data[("fc6", "n03_c")])
    assert tree.file("n01_a", "conv1") == os.path.join(str(tmp_path), "conv1", "n01_a.mat")
    tree.check()


def test_v73_file_is_stored_transposed_and_read_in_matlab_order(tmp_path):
    data = make_true_tree(tmp_path, {"conv1": (1, 2, 3, 4)}, ["a"], "v73")
    with h5py.File(tmp_path / "conv1" / "a.mat", "r") as f:
        assert f["feat"].shape == (4, 3, 2, 1)  # column-major storage
    assert kio.stored_shape(str(tmp_path / "conv1" / "a.mat")) == (1, 2, 3, 4)
    out = kio.FeatureTree(tmp_path).load("a")["conv1"]
    assert out.shape == (1, 2, 3, 4)
    assert out[0, 1, 2, 3] == data[("conv1", "a")][0, 1, 2, 3]


def test_load_several_labels_stacks_them_in_order(tmp_path):
    data = make_true_tree(tmp_path, layer_shapes(2), LABELS, "v5")
    out = kio.FeatureTree(tmp_path).load(["n03_c", "n01_a"], layers=["conv1"])
    assert out["conv1"].shape == (2,) + layer_shapes(2)["conv1"][1:]
    np.testing.assert_array_equal(out["conv1"][0], data[("conv1", "n03_c")][0])
    np.testing.assert_array_equal(out["conv1"][1], data[("conv1", "n01_a")][0])


def test_true_tree_mixed_formats_and_float64_files(tmp_path):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((1, 6)), rng.standard_normal((1, 6))  # float64
    write_mat(str(tmp_path / "fc7" / "x.mat"), {"feat": a}, "v5")
    write_mat(str(tmp_path / "fc7" / "y.mat"), {"feat": b}, "v73")
    tree = kio.FeatureTree(tmp_path)
    out = tree.load(["x", "y"])["fc7"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.concatenate([a, b]).astype(np.float32))


def test_hidden_files_and_dirs_without_features_are_ignored(tmp_path):
    make_true_tree(tmp_path, {"fc6": (1, 3)}, ["a", "b"], "v5")
    (tmp_path / "fc6" / ".a.tmp.mat").write_bytes(b"partial")
    (tmp_path / "notes").mkdir()
    (tmp_path / ".cache").mkdir()
    (tmp_path / "README.txt").write_text("x")
    tree = kio.FeatureTree(tmp_path)
    assert tree.layers == ["fc6"] and tree.labels == ["a", "b"]


# ------------------------------------------------------------------------- decoded features
LAYOUTS = [("fold", ["cv-fold1", "cv-fold2"], True), ("decoded_features", None, True),
           ("flat", None, False)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layout,folds,level", LAYOUTS)
def test_decoded_tree_lists_and_loads(tmp_path, fmt, layout, folds, level):
    shapes = layer_shapes(3)
    data = make_decoded_tree(tmp_path, shapes, SUBJECTS, ROIS, LABELS, folds, level, fmt)
    tree = kio.DecodedFeatureTree(tmp_path)
    assert tree.layout == layout
    assert (tree.layers, tree.subjects, tree.rois) == (sorted(shapes), sorted(SUBJECTS), sorted(ROIS))
    assert tree.folds == (folds or [])
    assert tree.labels == sorted(LABELS)
    fold = folds[1] if folds else None
    feats = tree.load("n02_b", subject="sub-01", roi="VC", fold=fold)
    for layer, shape in shapes.items():
        assert feats[layer].shape == shape and feats[layer].dtype == np.float32
        np.testing.assert_array_equal(feats[layer], data[(layer, "sub-01", "VC", fold, "n02_b")])
    assert tree.labels_of(subject="sub-02", roi="LVC", fold=fold) == sorted(LABELS)
    tree.check()


def test_decoded_tree_follows_bdpys_layout_precedence(tmp_path):
    """bdpy tries <fold>/decoded_features first, then decoded_features, then the flat one."""
    shapes = {"fc6": (1, 4)}
    make_decoded_tree(tmp_path, shapes, ["s1"], ["r1"], ["a"], decoded_level=False)
    assert kio.DecodedFeatureTree(tmp_path).layout == "flat"
    make_decoded_tree(tmp_path, shapes, ["s1"], ["r1"], ["b"], decoded_level=True)
    tree = kio.DecodedFeatureTree(tmp_path)
    assert tree.layout == "decoded_features" and tree.labels == ["b"]
    make_decoded_tree(tmp_path, shapes, ["s1"], ["r1"], ["c"], folds=["f1"])
    tree = kio.DecodedFeatureTree(tmp_path)
    assert tree.layout == "fold" and tree.labels == ["c"] and tree.folds == ["f1"]


def test_single_subject_roi_fold_are_picked_by_default(tmp_path):
    data = make_decoded_tree(tmp_path, {"fc6": (1, 4)}, ["s1"], ["r1"], ["a"], folds=["f1"])
    out = kio.DecodedFeatureTree(tmp_path).load("a")
    np.testing.assert_array_equal(out["fc6"], data[("fc6", "s1", "r1", "f1", "a")])


# ---------------------------------------------------------------------------- errors
def test_missing_and_empty_trees(tmp_path):
    with pytest.raises(ValueError, match="not found.*not a directory"):
        kio.FeatureTree(tmp_path / "nope")
    with pytest.raises(ValueError, match=f"{tmp_path}.*empty"):
        kio.FeatureTree(tmp_path)
    (tmp_path / "conv1").mkdir()
    with pytest.raises(ValueError, match="empty true-feature tree"):
        kio.FeatureTree(tmp_path)
    with pytest.raises(ValueError, match="empty decoded-feature tree"):
        kio.DecodedFeatureTree(tmp_path)
    f = tmp_path / "file.mat"
    f.write_bytes(b"")
    with pytest.raises(ValueError, match="not a directory"):
        kio.DecodedFeatureTree(f)


def test_label_missing_in_one_layer_names_the_layer(tmp_path):
    make_true_tree(tmp_path, layer_shapes(3), LABELS, "v5")
    os.remove(tmp_path / "conv2" / "n02_b.mat")
    tree = kio.FeatureTree(tmp_path)
    assert tree.labels == sorted(LABELS)
    assert tree.labels_of() == ["n01_a", "n03_c"]
    assert tree.labels_of(layers=["conv1", "fc6"]) == sorted(LABELS)
    with pytest.raises(ValueError, match="label 'n02_b' missing in layer 'conv2'"):
        tree.load("n02_b")
    assert set(tree.load("n02_b", layers=["conv1", "fc6"])) == {"conv1", "fc6"}
    with pytest.raises(ValueError, match="label 'n02_b' missing in layer 'conv2'"):
        tree.check()
    tree.check(layers=["conv1", "fc6"])


def test_decoded_label_missing_names_layer_and_selection(tmp_path):
    make_decoded_tree(tmp_path, layer_shapes(2), SUBJECTS, ROIS, LABELS)
    os.remove(tmp_path / "fc6" / "sub-02" / "VC" / "decoded_features" / "n03_c.mat")
    tree = kio.DecodedFeatureTree(tmp_path)
    with pytest.raises(ValueError, match="'n03_c' missing in layer 'fc6' .subject='sub-02', roi='VC'"):
        tree.load("n03_c", subject="sub-02", roi="VC")
    with pytest.raises(ValueError, match="missing in layer 'fc6'"):
        tree.check()


def test_mixed_shapes_in_one_layer(tmp_path):
    make_true_tree(tmp_path, {"conv1": (1, 2, 3, 3)}, ["a", "b"], "v5")
    write_mat(str(tmp_path / "conv1" / "c.mat"), {"feat": np.zeros((1, 2, 4, 4), np.float32)}, "v73")
    tree = kio.FeatureTree(tmp_path)
    with pytest.raises(ValueError, match="mixed shapes in layer 'conv1'.*c.mat"):
        tree.load(["a", "c"])
    with pytest.raises(ValueError, match="mixed shapes in layer 'conv1'"):
        tree.check()
    assert tree.load("c")["conv1"].shape == (1, 2, 4, 4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_file_without_feat(tmp_path, fmt):
    make_true_tree(tmp_path, {"fc6": (1, 3)}, ["a"], "v5")
    write_mat(str(tmp_path / "fc6" / "b.mat"), {"x": np.ones((1, 3))}, fmt)
    tree = kio.FeatureTree(tmp_path)
    with pytest.raises(ValueError, match=r"b\.mat.*'feat'"):
        tree.load("b")
    with pytest.raises(ValueError, match=r"b\.mat: no variable 'feat'"):
        tree.check()
    assert kio.FeatureTree(tmp_path, key="x").load("b")["fc6"].shape == (1, 3)


def test_file_with_several_samples_is_refused(tmp_path):
    write_mat(str(tmp_path / "fc6" / "a.mat"), {"feat": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"a\.mat.*shape \(2, 3\).*one sample"):
        kio.FeatureTree(tmp_path).load("a")


def test_unknown_or_ambiguous_selection_lists_what_exists(tmp_path):
    make_decoded_tree(tmp_path, {"fc6": (1, 3)}, SUBJECTS, ROIS, ["a"], folds=["f1", "f2"])
    tree = kio.DecodedFeatureTree(tmp_path)
    with pytest.raises(ValueError, match=r"subject 'sub-09' not found; subjects in the tree: \['sub-01', 'sub-02'\]"):
        tree.load("a", subject="sub-09", roi="VC", fold="f1")
    with pytest.raises(ValueError, match=r"roi 'V1' not found; rois in the tree: \['LVC', 'VC'\]"):
        tree.load("a", subject="sub-01", roi="V1", fold="f1")
    with pytest.raises(ValueError, match=r"fold 'f3' not found; folds in the tree: \['f1', 'f2'\]"):
        tree.load("a", subject="sub-01", roi="VC", fold="f3")
    with pytest.raises(ValueError, match=r"several subjects \['sub-01', 'sub-02'\]; pass subject="):
        tree.load("a", roi="VC", fold="f1")
    with pytest.raises(ValueError, match=r"several folds"):
        tree.load("a", subject="sub-01", roi="VC")
    with pytest.raises(ValueError, match=r"layers \['fc7'\] not found; layers in the tree: \['fc6'\]"):
        tree.load("a", layers="fc7", subject="sub-01", roi="VC", fold="f1")
    with pytest.raises(ValueError, match="label 'zz' missing in layer 'fc6'"):
        tree.load("zz", subject="sub-01", roi="VC", fold="f1")


def test_levels_that_do_not_exist(tmp_path):
    make_true_tree(tmp_path / "t", {"fc6": (1, 3)}, ["a"])
    with pytest.raises(ValueError, match="true-feature tree has no subject level"):
        kio.FeatureTree(tmp_path / "t").load("a", subject="sub-01")
    make_decoded_tree(tmp_path / "d", {"fc6": (1, 3)}, ["s"], ["r"], ["a"])
    with pytest.raises(ValueError, match="decoded-feature tree has no fold level"):
        kio.DecodedFeatureTree(tmp_path / "d").load("a", fold="cv-fold1")


# ---------------------------------------------------------------------------- random trees
@settings(max_examples=12, deadline=None)
@given(n_layers=st.integers(1, 3), n_subjects=st.integers(1, 2), n_rois=st.integers(1, 2),
       n_labels=st.integers(1, 3), n_folds=st.integers(0, 2), level=st.booleans(),
       fmt=st.sampled_from(FORMATS), seed=st.integers(0, 2 ** 16))
def test_random_decoded_trees(n_layers, n_subjects, n_rois, n_labels, n_folds, level, fmt, seed):
    shapes = layer_shapes(n_layers + 1)
    subjects = [f"sub-{i:02d}" for i in range(n_subjects)]
    rois = [f"ROI{i}" for i in range(n_rois)]
    labels = [f"img{i}" for i in range(n_labels)]
    folds = [f"cv-fold{i + 1}" for i in range(n_folds)] or None
    level = level or bool(folds)  # the fold level always has decoded_features/ (bdpy)
    with tempfile.TemporaryDirectory() as root:
        data = make_decoded_tree(root, shapes, subjects, rois, labels, folds, level, fmt, seed)
        tree = kio.DecodedFeatureTree(root)
        assert tree.layers == sorted(shapes) and tree.subjects == subjects
        assert tree.rois == rois and tree.labels == labels and tree.folds == (folds or [])
        for (layer, subject, roi, fold, label), a in data.items():
            out = tree.load(label, layers=layer, subject=subject, roi=roi, fold=fold)
            np.testing.assert_array_equal(out[layer], a)
        tree.check()


# ---------------------------------------------------------------------------- as targets
def test_loaded_features_are_channels_first_targets(tmp_path):
    from conftest import tiny_cnn
    from keras_icnn.objective.targets import prepare_targets

    model = tiny_cnn(size=16)
    data = make_decoded_tree(tmp_path, {"c1": (1, 8, 16, 16), "fc": (1, 10)}, ["s"], ["r"], ["a"],
                             fmt="v73")
    feats = kio.DecodedFeatureTree(tmp_path).load("a")
    targets, layouts = prepare_targets(feats, model, data_format="channels_first")
    assert layouts["c1"] == "channels_first"
    np.testing.assert_array_equal(targets["c1"], data[("c1", "s", "r", None, "a")].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(targets["fc"], data[("fc", "s", "r", None, "a")])


def test_unreadable_file_is_named(tmp_path):
    make_true_tree(tmp_path, {"fc6": (1, 3)}, ["a"])
    (tmp_path / "fc6" / "b.mat").write_bytes(b"not a mat file at all" * 10)
    tree = kio.FeatureTree(tmp_path)
    with pytest.raises(ValueError, match=r"b\.mat: not a readable"):
        tree.load("b")
    with pytest.raises(ValueError, match=r"b\.mat: not a readable"):
        tree.check()
