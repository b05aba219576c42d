"""``keras-icnn reconstruct --config recon.yaml`` end to end on a small synthetic cookbook
study: a config folder as the cookbook's (recon yaml + encoder/ and generator/ group files,
``${_analysis_name_}`` interpolations, paths relative to the working directory), a decoded
feature tree of 2 subjects x 2 ROIs x 3 labels, the decoders' training means, a reference std
file, an image mean, latent bounds, and random weights for VGG19 (at 64 px, conv layers) and
the real DeepSim fc7 generator."""
import os
import shutil
import textwrap

import numpy as np
import pytest
import scipy.io

from keras_icnn.cli import main

from lab_trees import make_decoded_tree, write_mat

LAYERS = ["conv2_1", "conv3_1"]
SHAPES = {"conv2_1": (1, 128, 32, 32), "conv3_1": (1, 256, 16, 16)}  # VGG19 at 64 px
SUBJECTS, ROIS, LABELS = ["sub-01", "sub-02"], ["V1", "VC"], ["n01", "n02", "n03"]
BGR_MEAN = [104.0, 117.0, 123.0]
OUT = ("data/reconstruction/icnn/recon_test_vgg19_relu7generator_scaling_"
       "feature_std_train_mean_center_2iter/decoded/TestDecoded")

RECON_YAML = """\
# Reconstruction configuration file (the cookbook's layout)

defaults:
  - encoder: vgg19
  - generator: relu7generator

decoded_features:
  name: TestDecoded
  path: ./data/decoded_features/VGG19
  subjects: [sub-01, sub-02]
  rois: [V1, VC]
  decoders:
    path: ./data/feature_decoders/VGG19

icnn:
  num_iteration: 2
  feature_scaling: feature_std_train_mean_center

output:
  path: ./data/reconstruction/icnn/${_analysis_name_}_${encoder.name}_${generator.name}_scaling_${icnn.feature_scaling}_${icnn.num_iteration}iter/decoded/${decoded_features.name}
  prefix: recon_image-
  ext: tiff

evaluation:
  true_image:
    path: ./data/images/test
    ext: JPEG

keras_icnn:
  batch_size: 3
"""
ENCODER_YAML = """\
# @package _group_

name: vgg19
parameters_file: ./models/vgg19_64px.weights.h5
input_image_shape: [64, 64, 3]
image_mean_file: ./models/ilsvrc_2012_mean.npy
feature_std_file: ./models/estimated_cnn_feat_std_VGG19_chwise_dof1.mat
layers:
  - conv2_1
  - conv3_1
"""
GENERATOR_YAML = """\
# @package _group_

name: relu7generator
input_layer: relu7
parameters_file: ./models/relu7generator.weights.h5
image_mean_file: /nowhere/ilsvrc_2012_mean.npy
feature_std_file: /nowhere/estimated_cnn_feat_std_bvlc_reference_caffenet.mat
latent_shape: [4096]
latent_upper_bound_file: ./models/act_range_3x.txt
latent_upper_bound_shape: [4096]
"""


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _networks(models):
    """Random weights for the networks, saved as .weights.h5 files."""
    import keras

    from keras_icnn.models import vgg19
    from keras_icnn.models.generators import deepsim_fc7
    keras.utils.set_random_seed(0)
    vgg19(weights=None, include_top=False, input_shape=(64, 64, 3)).save_weights(
        os.path.join(models, "vgg19_64px.weights.h5"))
    deepsim_fc7(weights=None).save_weights(os.path.join(models, "relu7generator.weights.h5"))


def _scaling_files(root, rng):
    """The image mean, latent bounds, reference std (channel-wise) and decoders' y_mean."""
    models = os.path.join(root, "models")
    np.save(os.path.join(models, "ilsvrc_2012_mean.npy"),
            np.stack([np.full((8, 8), v) for v in BGR_MEAN]) + rng.normal(0, 1, (3, 8, 8)))
    np.savetxt(os.path.join(models, "act_range_3x.txt"), rng.uniform(1, 5, (1, 4096)))
    scipy.io.savemat(os.path.join(models, "estimated_cnn_feat_std_VGG19_chwise_dof1.mat"),
                     {n: rng.uniform(5, 20, (1, s[1])) for n, s in SHAPES.items()})
    for layer, shape in SHAPES.items():
        for s in SUBJECTS:
            for r in ROIS:
                write_mat(os.path.join(root, "data/feature_decoders/VGG19", layer, s, r,
                                       "model/y_mean.mat"),
                          {"y_mean": rng.normal(0.5, 1, shape).astype(np.float32)}, "v73")


@pytest.fixture(scope="module")
def study_template(tmp_path_factory):
    """The study, written once; each test copies it (the weights are linked)."""
    root = str(tmp_path_factory.mktemp("cookbook"))
    os.makedirs(os.path.join(root, "models"))
    _networks(os.path.join(root, "models"))
    _scaling_files(root, np.random.default_rng(0))
    make_decoded_tree(os.path.join(root, "data/decoded_features/VGG19"), SHAPES, SUBJECTS,
                      ROIS, LABELS, decoded_level=False)
    _write(os.path.join(root, "config/recon_test.yaml"), RECON_YAML)
    _write(os.path.join(root, "config/encoder/vgg19.yaml"), ENCODER_YAML)
    _write(os.path.join(root, "config/generator/relu7generator.yaml"), GENERATOR_YAML)
    return root


@pytest.fixture
def study(study_template, tmp_path, monkeypatch):
    """A fresh copy of the study; the working directory is its root (as the cookbook's)."""
    root = str(tmp_path / "study")
    shutil.copytree(study_template, root, copy_function=_link_weights)
    monkeypatch.chdir(root)
    return root


def _link_weights(src, dst):
    if src.endswith(".weights.h5"):
        os.symlink(src, dst)
    else:
        shutil.copy2(src, dst)


def _recon(*extra):
    return main(["reconstruct", "--config", "config/recon_test.yaml", "--quiet", *extra])


def _outputs(root):
    found = []
    for d, _, files in os.walk(os.path.join(root, OUT)):
        found += [os.path.relpath(os.path.join(d, f), os.path.join(root, OUT)) for f in files]
    return sorted(found)


def _expected_outputs():
    return sorted(f"{s}/{r}/recon_image-{n}.{e}" for s in SUBJECTS for r in ROIS
                  for n in LABELS for e in ("mat", "tiff"))


# -- the cookbook's scaling, transcribed independently (bdpy normalize_feature) -------------------
def _cookbook_scaling(ft, ref_std, y_mean, ddof=1):
    """``feature_std_train_mean_center`` as recon_icnn_image_gd.py computes it."""
    x = (ft - y_mean)[0]
    mean = np.mean(x, keepdims=True)
    std = np.mean(np.std(x, axis=(1, 2), ddof=ddof, keepdims=True), keepdims=True)
    return ((x - mean) / std * np.mean(ref_std) + mean)[np.newaxis] + y_mean


def _capture_fit(monkeypatch):
    """Record the targets of every ``Reconstructor.fit``."""
    from keras_icnn import Reconstructor
    calls, fit = [], Reconstructor.fit

    def recording(self, features, *args, **kwargs):
        calls.append({k: np.array(v) for k, v in features.items()})
        calls[-1].update(mean=np.array(self.mean), upper=np.array(self.param.upper))
        return fit(self, features, *args, **kwargs)
    monkeypatch.setattr(Reconstructor, "fit", recording)
    return calls


def test_end_to_end_layout_scaling_and_skip(study, monkeypatch, capsys):
    calls = _capture_fit(monkeypatch)
    assert _recon() == 0
    assert _outputs(study) == _expected_outputs()
    mat = scipy.io.loadmat(os.path.join(OUT, "sub-01/V1/recon_image-n01.mat"))
    assert mat["recon_image"].shape == (64, 64, 3) and mat["recon_image"].dtype == np.float32
    assert mat["loss_history"].shape == (1, 2) and np.all(np.isfinite(mat["loss_history"]))
    # 4 selections x (a batch of 3): the first batch is sub-01/V1, its first target n01
    assert len(calls) == 4 and calls[0]["conv2_1"].shape == (3, 32, 32, 128)
    mean = np.load("models/ilsvrc_2012_mean.npy")  # Caffe's [3, H, W] BGR mean image
    np.testing.assert_allclose(calls[0]["mean"], mean.reshape(3, -1).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(calls[0]["upper"].ravel(), np.loadtxt("models/act_range_3x.txt"),
                               rtol=1e-6)
    ref = scipy.io.loadmat("models/estimated_cnn_feat_std_VGG19_chwise_dof1.mat")
    from keras_icnn.io import load_features
    for layer in LAYERS:
        ft = scipy.io.loadmat(f"data/decoded_features/VGG19/{layer}/sub-01/V1/n01.mat")["feat"]
        y_mean = load_features(f"data/feature_decoders/VGG19/{layer}/sub-01/V1/model/y_mean.mat",
                               data_format=None, add_batch_axis=False)["y_mean"]
        expected = _cookbook_scaling(ft.astype(np.float64), ref[layer], y_mean)
        np.testing.assert_allclose(calls[0][layer][0], expected[0].transpose(1, 2, 0),
                                   rtol=1e-5, atol=1e-5)
    capsys.readouterr()
    assert _recon() == 0  # everything done: skipped, nothing computed
    assert len(calls) == 4
    assert "12 label(s), 12 done already, 0 to do" in capsys.readouterr().out


def test_killed_run_redone_and_overwrite(study, monkeypatch, capsys):
    calls = _capture_fit(monkeypatch)
    assert _recon() == 0
    image = os.path.join(OUT, "sub-02/VC/recon_image-n03.tiff")
    os.remove(image)  # as if killed between the .mat and the image
    stamp = os.path.getmtime(os.path.join(OUT, "sub-01/V1/recon_image-n01.tiff"))
    capsys.readouterr()
    assert _recon() == 0
    out = capsys.readouterr().out
    assert "11 done already, 1 to do" in out and "doing it again" in out
    assert os.path.isfile(image) and len(calls) == 5 and len(calls[-1]["conv3_1"]) == 1
    assert os.path.getmtime(os.path.join(OUT, "sub-01/V1/recon_image-n01.tiff")) == stamp
    assert _recon("--overwrite", "--batch-size", "6") == 0  # all again, 6 at a time
    assert len(calls) == 5 + 4 * 1 and _outputs(study) == _expected_outputs()


def _one_line_error(capsys, *extra, code=2):
    assert _recon(*extra) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_inputs_stop_before_any_work(study, capsys):
    os.remove("data/feature_decoders/VGG19/conv3_1/sub-02/VC/model/y_mean.mat")
    line = _one_line_error(capsys)
    assert "y_mean.mat" in line and "sub-02/VC" in line
    assert not os.path.exists(OUT)
    shutil.rmtree("data/decoded_features/VGG19/conv3_1/sub-01/V1")
    line = _one_line_error(capsys)
    assert "decoded_features.path" in line and "sub-01" in line
    os.remove("models/act_range_3x.txt")
    assert "act_range_3x.txt" in _one_line_error(capsys)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras, on the wrong weights file
def test_missing_network_files_and_torch_weights(study, capsys):
    import keras_icnn.models
    text = open("config/encoder/vgg19.yaml").read()
    _write("config/encoder/vgg19.yaml", text.replace("vgg19_64px.weights.h5", "vgg.pt"))
    assert "encoder.parameters_file" in _one_line_error(capsys)
    open("models/vgg.pt", "wb").close()
    if getattr(keras_icnn.models, "load_weights", None) is None:
        line = _one_line_error(capsys)
        assert "convert-torch" in line and "vgg.pt" in line
    _write("config/encoder/vgg19.yaml", text.replace("vgg19_64px", "relu7generator"))
    line = _one_line_error(capsys)  # the networks are loaded before any reconstruction
    assert "cannot load it into the vgg19 encoder" in line and not os.path.exists(OUT)
    os.remove("models/ilsvrc_2012_mean.npy")
    _write("config/encoder/vgg19.yaml", text)
    assert "encoder.image_mean_file" in _one_line_error(capsys)


def test_unknown_keys_and_flags(study, capsys):
    _write("config/recon_test.yaml", RECON_YAML.replace("  num_iteration: 2",
                                                        "  num_iterations: 2"))
    line = _one_line_error(capsys)
    assert "unknown key(s) icnn.num_iterations" in line
    _write("config/recon_test.yaml", RECON_YAML)
    line = _one_line_error(capsys, "--layers", "conv1_1")
    assert "--layers" in line and "not with a cookbook config" in line
    assert "--out" in _one_line_error(capsys, "--out", "elsewhere")


def test_output_location_taken(study, capsys):
    os.makedirs(os.path.join(OUT, "sub-01"))
    open(os.path.join(OUT, "sub-01", "V1"), "w").close()
    line = _one_line_error(capsys)
    assert "output.path" in line and "is not a directory" in line


def test_json_config_still_requires_features_and_out(tmp_path, capsys):
    assert main(["reconstruct", "--config", str(tmp_path / "x_options.json")]) == 2
    assert "FEATURES and --out required" in capsys.readouterr().err


def _interrupt_at(monkeypatch, iteration):
    """Make the first ``Reconstructor.fit`` stop with Ctrl-C after ``iteration`` iterations;
    returns the list of the iterations each fit ran."""
    import keras

    from keras_icnn import Reconstructor
    fit, ran = Reconstructor.fit, []

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ran[-1] += 1
            if len(ran) == 1 and epoch + 1 == iteration:
                raise KeyboardInterrupt

    def interrupted(self, features, *args, callbacks=None, **kwargs):
        ran.append(0)
        return fit(self, features, *args, callbacks=list(callbacks or []) + [CtrlC()],
                   **kwargs)
    monkeypatch.setattr(Reconstructor, "fit", interrupted)
    return ran


def test_checkpoints_resume(study, monkeypatch, capsys):
    """A run interrupted in its batch resumes from the batch's backup in
    ``<subject>/<roi>/.checkpoints/`` and ends as an uninterrupted run (up to float rounding:
    VGG19 and the DeepSim generator rebuilt on CPU are not bit-reproducible from one run to the
    next, interrupted or not; ``tests/test_cli_checkpoint.py`` checks bit for bit)."""
    from keras_icnn.cli.study_config import load_study_config
    text = RECON_YAML.replace("[sub-01, sub-02]", "[sub-01]").replace("[V1, VC]", "[V1]")
    _write("config/recon_test.yaml", text.replace("num_iteration: 2", "num_iteration: 6"))
    out = os.path.join(load_study_config("config/recon_test.yaml").output_dir, "sub-01/V1")
    ran = _interrupt_at(monkeypatch, 4)
    assert _recon("--checkpoint-every", "2") == 130
    assert os.path.isfile(os.path.join(out, ".checkpoints/n01..n03/run_state.npz"))
    assert not os.path.exists(os.path.join(out, "recon_image-n01.mat"))
    capsys.readouterr()
    assert _recon("--checkpoint-every", "2") == 0
    assert "resuming from iteration 4" in capsys.readouterr().out and ran == [4, 2]
    assert not os.path.exists(os.path.join(out, ".checkpoints"))
    resumed = {n: scipy.io.loadmat(os.path.join(out, f"recon_image-{n}.mat")) for n in LABELS}
    shutil.rmtree(out)
    assert _recon() == 0 and ran == [4, 2, 6]  # uninterrupted, no checkpoints
    for n in LABELS:
        fresh = scipy.io.loadmat(os.path.join(out, f"recon_image-{n}.mat"))
        assert resumed[n]["loss_history"].shape == fresh["loss_history"].shape == (1, 6)
        np.testing.assert_allclose(resumed[n]["loss_history"], fresh["loss_history"],
                                   rtol=1e-5)
        np.testing.assert_allclose(resumed[n]["recon_image"], fresh["recon_image"], atol=1e-2)


def test_true_features(study, capsys):
    from lab_trees import make_true_tree
    make_true_tree("data/true_features/VGG19", SHAPES, ["t1", "t2"])
    start, end = RECON_YAML.index("decoded_features:"), RECON_YAML.index("icnn:")
    text = (RECON_YAML[:start] + "features:\n  name: TestTrue\n  path: ./data/true_features/"
            "VGG19\n\n" + RECON_YAML[end:]).replace("decoded/${decoded_features.name}",
                                                    "true/${features.name}")
    _write("config/recon_test.yaml", text.replace("num_iteration: 2", "num_iteration: 1"))
    assert _recon() == 0
    out = ("data/reconstruction/icnn/recon_test_vgg19_relu7generator_scaling_"
           "feature_std_train_mean_center_1iter/true/TestTrue")
    assert sorted(os.listdir(out)) == ["recon_image-t1.mat", "recon_image-t1.tiff",
                                       "recon_image-t2.mat", "recon_image-t2.tiff"]
    assert "true features are not rescaled" in capsys.readouterr().out


def test_evaluate_from_the_same_config(study, capsys):
    """The lab's second command: ``keras-icnn evaluate --config recon.yaml`` scores the tree
    that ``reconstruct --config`` wrote, against ``evaluation.true_image``."""
    from PIL import Image
    assert _recon() == 0
    os.makedirs("data/images/test")
    rng = np.random.default_rng(1)
    for label in LABELS:
        img = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
        Image.fromarray(img).save(f"data/images/test/{label}.JPEG")
    capsys.readouterr()
    assert main(["evaluate", "--config", "config/recon_test.yaml", "--no-figures"]) == 0
    assert "4 subject x ROI pair(s) evaluated" in capsys.readouterr().out
    with open(os.path.join(OUT, "quality.csv")) as f:
        rows = f.read().splitlines()
    assert len(rows) > 1 and {r.split(",")[0] for r in rows[1:]} == set(SUBJECTS)
    assert main(["evaluate", "--config", "config/recon_test.yaml", "--rois", "V1",
                 "--no-figures", "--redo"]) == 0
    assert main(["evaluate", "somewhere", "--config", "config/recon_test.yaml"]) == 2
