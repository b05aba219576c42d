"""Loading and checking the brain-decoding cookbook's reconstruction YAML
(:mod:`keras_icnn.cli.study_config`): Hydra-style composition of the ``defaults`` groups,
interpolations with ``${_analysis_name_}``, paths relative to the working directory, and the
errors (unknown keys by their full path, missing keys, wrong values)."""
import os

import pytest

from keras_icnn.cli.study_config import (KERAS_ICNN_DEFAULTS, compose, is_yaml_config,
                                         load_study_config)

# The cookbook's config (recon_icnn_vgg19_relu7generator_gd_1000iter_decoded_ImageNet.yaml)
# and group files, keys and layout as they are.
RECON = """\
# Reconstruction configuration file

defaults:
  - encoder: vgg19
  - generator: relu7generator

decoded_features:
  name: ImageNetTest_deeprecon_VGG19
  path: ./data/decoded_features/ImageNetTest/caffe/VGG19
  subjects:
    - sub-01
  rois:
    - VC
  decoders:
    path: ./data/feature_decoders/ImageNetTraining/caffe/VGG19

icnn:
  num_iteration: 1000
  feature_scaling: feature_std_train_mean_center

output:
  path: ./data/reconstruction/icnn/${_analysis_name_}_${encoder.name}_${generator.name}_scaling_${icnn.feature_scaling}_${icnn.num_iteration}iter/decoded/${decoded_features.name}
  prefix: recon_image-
  ext: tiff

evaluation:
  true_image:
    path: ./data/images/ImageNetTest/source
    ext: JPEG
"""
ENCODER = """\
# @package _group_

name: vgg19
parameters_file: /models/pytorch/VGG_ILSVRC_19_layers/VGG_ILSVRC_19_layers.pt
input_image_shape: [224, 224, 3]
image_mean_file: /models/caffe/VGG_ILSVRC_19_layers/ilsvrc_2012_mean.npy
feature_std_file: /models/caffe/VGG_ILSVRC_19_layers/estimated_feat_std/std_chwise_dof1.mat
layers:
  - conv1_1
  - conv5_4
  - fc6
  - fc7
  - fc8
"""
GENERATOR = """\
# @package _group_

name: relu7generator
input_layer: relu7
parameters_file: /models/pytorch/relu7/generator.pt
image_mean_file: /models/caffe/bvlc_reference_caffenet/ilsvrc_2012_mean.npy
feature_std_file: /models/caffe/bvlc_reference_caffenet/std_chwise_dof1.mat
latent_shape: [4096]
latent_upper_bound_file: /models/pytorch/relu7/act_range_3x.txt
latent_upper_bound_shape: [4096]
"""
OUTPUT = ("data/reconstruction/icnn/recon_vgg19_relu7generator_scaling_"
          "feature_std_train_mean_center_1000iter/decoded/ImageNetTest_deeprecon_VGG19")


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """``<tmp>/reconstruction/config/{recon.yaml, encoder/vgg19.yaml, generator/...}``; the
    working directory is ``<tmp>/reconstruction`` (where the cookbook runs its script)."""
    d = tmp_path / "reconstruction" / "config"
    _write(str(d / "recon.yaml"), RECON)
    _write(str(d / "encoder" / "vgg19.yaml"), ENCODER)
    _write(str(d / "generator" / "relu7generator.yaml"), GENERATOR)
    monkeypatch.chdir(tmp_path / "reconstruction")
    return d


def _load(config_dir, text=None, name="recon.yaml"):
    if text is not None:
        _write(str(config_dir / name), text)
    return load_study_config(os.path.join("config", name))


def _error(config_dir, text, name="recon.yaml"):
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        _load(config_dir, text, name)
    return str(info.value)


def test_cookbook_config_as_it_is(config_dir):
    cfg = _load(config_dir)
    cwd = os.getcwd()
    assert cfg.encoder["name"] == "vgg19" and cfg.generator["name"] == "relu7generator"
    assert cfg.encoder["layers"] == ["conv1_1", "conv5_4", "fc6", "fc7", "fc8"]
    assert cfg.generator["latent_upper_bound_shape"] == [4096]
    assert cfg.analysis_name == "recon"
    assert cfg.output_dir == os.path.join(cwd, OUTPUT)  # relative to the working directory
    assert cfg.features_dir == os.path.join(cwd, "data/decoded_features/ImageNetTest/caffe/VGG19")
    assert cfg.decoders_dir.startswith(cwd) and cfg.decoded
    assert cfg.selections == [("sub-01", "VC")]
    assert (cfg.num_iteration, cfg.feature_scaling) == (1000, "feature_std_train_mean_center")
    assert (cfg.prefix, cfg.ext) == ("recon_image-", "tiff")
    assert cfg.true_image_dir == os.path.join(cwd, "data/images/ImageNetTest/source")
    assert cfg.true_image_ext == "JPEG"
    assert cfg.options == KERAS_ICNN_DEFAULTS
    assert cfg.encoder["parameters_file"] == \
        "/models/pytorch/VGG_ILSVRC_19_layers/VGG_ILSVRC_19_layers.pt"


def test_relative_paths_follow_the_working_directory(config_dir, monkeypatch):
    monkeypatch.chdir(config_dir)
    cfg = load_study_config("recon.yaml")
    assert cfg.output_dir == os.path.join(str(config_dir), OUTPUT)
    assert cfg.path == str(config_dir / "recon.yaml")


def test_analysis_name_and_keras_icnn_section(config_dir):
    cfg = _load(config_dir, RECON + "keras_icnn:\n  analysis_name: recon_icnn_image_gd\n"
                "  batch_size: 8\n  checkpoint_every: 50\n  seed: 3\n  overwrite: true\n"
                "  preset: paper_dgn_gd\n", name="other.yml")
    assert cfg.analysis_name == "recon_icnn_image_gd"
    assert cfg.output_dir.endswith("icnn/recon_icnn_image_gd_vgg19_relu7generator_scaling_"
                                   "feature_std_train_mean_center_1000iter/decoded/"
                                   "ImageNetTest_deeprecon_VGG19")
    assert cfg.options == {**KERAS_ICNN_DEFAULTS, "analysis_name": "recon_icnn_image_gd",
                           "batch_size": 8, "checkpoint_every": 50, "seed": 3,
                           "overwrite": True, "preset": "paper_dgn_gd"}
    assert _load(config_dir, RECON, name="recon_x.yaml").analysis_name == "recon_x"


def test_config_keys_override_its_defaults(config_dir):
    cfg = _load(config_dir, RECON + "encoder:\n  input_image_shape: [64, 64, 3]\n")
    assert cfg.encoder["input_image_shape"] == [64, 64, 3]
    assert cfg.encoder["name"] == "vgg19"  # the rest from the group file
    first = RECON.replace("defaults:\n", "defaults:\n  - _self_\n")
    cfg = _load(config_dir, first + "encoder:\n  input_image_shape: [64, 64, 3]\n")
    assert cfg.encoder["input_image_shape"] == [224, 224, 3]  # _self_ first: the group wins


def test_global_package_and_null_group(config_dir):
    _write(str(config_dir / "generator" / "flat.yaml"),
           "# @package _global_\ngenerator:\n" + "".join(
               "  " + line + "\n" for line in GENERATOR.splitlines()[2:]))
    cfg = _load(config_dir, RECON.replace("generator: relu7generator", "generator: flat"))
    assert cfg.generator["latent_shape"] == [4096]
    line = _error(config_dir, RECON.replace("generator: relu7generator", "generator: null"))
    assert "missing key(s) generator.name, generator.parameters_file, " \
           "generator.latent_upper_bound_file" in line


def test_unknown_keys_named_by_full_path(config_dir):
    text = RECON.replace("  num_iteration: 1000", "  num_iteration: 1000\n  n_iter: 5") \
        .replace("    ext: JPEG", "    ext: JPEG\n    glob: '*'") + "devices: cpu\n"
    line = _error(config_dir, text)
    assert "unknown key(s) icnn.n_iter, evaluation.true_image.glob, devices" in line
    assert "icnn: num_iteration, feature_scaling" in line and "top level: defaults" in line
    _write(str(config_dir / "encoder" / "vgg19.yaml"), ENCODER + "layer_mapping: x\n")
    assert "unknown key(s) encoder.layer_mapping" in _error(config_dir, RECON)


def test_defaults_errors(config_dir):
    line = _error(config_dir, RECON.replace("encoder: vgg19", "encoder: vgg16"))
    assert "encoder: vgg16" in line and os.path.join("encoder", "vgg16.yaml") in line
    line = _error(config_dir, RECON.replace("  - encoder: vgg19", "  - override x: y"))
    assert "defaults: unsupported entry" in line
    _write(str(config_dir / "encoder" / "vgg19.yaml"), "# @package foo.bar\n" + ENCODER)
    assert "@package foo.bar" in _error(config_dir, RECON)


def test_missing_and_conditional_keys(config_dir):
    assert "missing key(s) icnn.num_iteration" in _error(
        config_dir, RECON.replace("  num_iteration: 1000\n", ""))
    no_decoders = RECON.replace("  decoders:\n    path: ./data/feature_decoders/ImageNetTraining/"
                                "caffe/VGG19\n", "")
    assert "missing key(s) decoded_features.decoders.path" in _error(config_dir, no_decoders)
    cfg = _load(config_dir, no_decoders.replace("feature_std_train_mean_center",
                                                "feature_std"))
    assert cfg.decoders_dir is None and cfg.feature_scaling == "feature_std"
    cfg = _load(config_dir, no_decoders.replace("feature_std_train_mean_center", "null"))
    assert cfg.feature_scaling is None and "_scaling_None_1000iter" in cfg.output_dir
    line = _error(config_dir, RECON.replace("  feature_scaling: feature_std_train_mean_center\n",
                                            ""))  # optional, but the output path uses it
    assert "output.path: Interpolation key 'icnn.feature_scaling' not found" in line


def test_true_features(config_dir):
    start, end = RECON.index("decoded_features:"), RECON.index("icnn:")
    true = RECON[:start] + "features:\n  name: ImageNetTest\n  path: ./features\n\n" + \
        RECON[end:].replace("${decoded_features.name}", "${features.name}")
    cfg = _load(config_dir, true)
    assert not cfg.decoded and cfg.selections == [(None, None)]
    assert cfg.subjects is None and cfg.output_dir.endswith("decoded/ImageNetTest")
    assert "got both" in _error(config_dir, true + RECON[start:end])
    assert "got neither" in _error(config_dir, true.replace("features:\n  name: ImageNetTest"
                                                            "\n  path: ./features\n", ""))


@pytest.mark.parametrize("old, new, message", [
    ("num_iteration: 1000", "num_iteration: 0", "icnn.num_iteration: expected a positive"),
    ("num_iteration: 1000", "num_iteration: true", "icnn.num_iteration: expected a positive"),
    ("feature_scaling: feature_std_train_mean_center", "feature_scaling: zscore",
     "icnn.feature_scaling: expected one of feature_std, feature_std_train_mean_center"),
    ("  subjects:\n    - sub-01\n", "  subjects: sub-01\n", "decoded_features.subjects: "
     "expected a non-empty list"),
    ("icnn:\n  num_iteration: 1000\n  feature_scaling: feature_std_train_mean_center\n",
     "icnn: 3\n", "icnn: expected a section"),
    ("${encoder.name}", "${encoder.nam}", "output.path: Interpolation key 'encoder.nam' not "
     "found"),
    ("prefix: recon_image-", "prefix: ???", "output.prefix"),
])
def test_value_errors(config_dir, old, new, message):
    assert old in RECON
    line = _error(config_dir, RECON.replace(old, new))
    assert line.startswith(os.path.join("config", "recon.yaml") + ": ") and message in line


def test_unreadable_files(config_dir):
    assert "expected a mapping" in _error(config_dir, "- a\n- b\n")
    assert "not a readable YAML file" in _error(config_dir, "a: [\n")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_study_config("config/none.yaml")


def test_compose_keeps_interpolations(config_dir):
    from omegaconf import OmegaConf
    cfg = OmegaConf.to_container(compose(str(config_dir / "recon.yaml")), resolve=False)
    assert "${_analysis_name_}" in cfg["output"]["path"]
    assert "defaults" not in cfg and cfg["encoder"]["name"] == "vgg19"


def test_is_yaml_config():
    assert is_yaml_config("a/recon.yaml") and is_yaml_config("R.YML")
    assert not is_yaml_config("x_options.json") and not is_yaml_config(None)
