"""``keras-icnn reconstruct`` (``keras_icnn/cli/reconstruct.py``, ``targets.py``, ``build.py``):
the batch job, its targets and its presets."""
import json
import os
import zlib

import numpy as np
import pytest
from PIL import Image

import keras_icnn
from keras_icnn import io, scaling
from keras_icnn.cli import main
from test_cli import (COMMON, LAYERS, SIZE, feature_dir, outputs_of, temp_files,  # noqa: F401
                      true_features)


def test_reconstruct_resumes_and_skips_done_targets(feature_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["reconstruct", str(feature_dir), "--out", str(out), "--batch-size", "2"] + COMMON
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "3 to do" in first and "batch 1/2: a, b" in first and "batch 2/2: c" in first
    names = [f"{s}{x}" for s in "abc" for x in (".png", "_loss.json", "_options.json")]
    assert outputs_of(out) == sorted(names)
    assert not temp_files(out)

    options = json.loads((out / "a_options.json").read_text())
    assert options["version"] == keras_icnn.__version__ and options["package"] == "keras-icnn"
    assert options["variant"] == "gd" and options["layers"] == LAYERS
    assert options["weights"] == "random" and options["weights_used"] == "random"
    assert options["iterations"] == 3 and options["size"] == SIZE and options["seed"] == 0
    assert options["batch"] == ["a", "b"] and options["source"].endswith("a.mat")
    assert options["layer_weight"] == "inverse_norm" and options["std_correction"] is None
    loss = json.loads((out / "c_loss.json").read_text())
    assert loss["target"] == "c" and len(loss["loss"]) == 3 and loss["iterations_run"] == 3
    assert all(np.isfinite(loss["loss"]))
    assert Image.open(out / "b.png").size == (SIZE, SIZE)

    # a second run does nothing and says so; no file is rewritten
    mtimes = {f: os.stat(out / f).st_mtime_ns for f in names}
    assert main(args) == 0
    second = capsys.readouterr().out
    for s in "abc":
        assert f"skip {s}:" in second
    assert "3 done already, 0 to do" in second and "batch" not in second
    assert {f: os.stat(out / f).st_mtime_ns for f in names} == mtimes

    # a target whose PNG (written last) is missing was not finished: it is redone, alone
    os.remove(out / "b.png")
    assert main(args) == 0
    third = capsys.readouterr().out
    assert "skip a:" in third and "skip c:" in third and "skip b" not in third
    assert "batch 1/1: b" in third
    assert outputs_of(out) == sorted(names)
    now = {f: os.stat(out / f).st_mtime_ns for f in names}
    assert all(now[f] == mtimes[f] for f in names if not f.startswith("b"))
    assert all(now[f] != mtimes[f] for f in names if f.startswith("b") and f != "b.png")
    # the start of a target depends on the seed and its name only, not on its batch
    b_options = json.loads((out / "b_options.json").read_text())
    assert b_options["batch"] == ["b"]
    assert b_options["initial_seed"] == [0, zlib.crc32(b"b")]
    assert options["initial_seed"] == [0, zlib.crc32(b"a")]


def test_reconstruct_result_does_not_depend_on_the_batch(feature_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["reconstruct", str(feature_dir), "--out", str(one), "--batch-size", "1"]
                + COMMON) == 0
    assert main(["reconstruct", str(feature_dir / "*.mat"), str(feature_dir / "c.h5"),
                 "--out", str(two), "--batch-size", "3"] + COMMON) == 0
    assert outputs_of(two) == [f for f in outputs_of(one) if not f.startswith("b")]
    for s in "ac":
        a = np.asarray(Image.open(one / f"{s}.png"), np.int32)
        b = np.asarray(Image.open(two / f"{s}.png"), np.int32)
        assert np.abs(a - b).max() <= 1
        la = json.loads((one / f"{s}_loss.json").read_text())["loss"]
        lb = json.loads((two / f"{s}_loss.json").read_text())["loss"]
        np.testing.assert_allclose(la, lb, rtol=1e-4)


def test_reconstruct_batch_file_std_correction_and_tensorboard(true_features, tmp_path):
    io.save_features(tmp_path / "decoded.mat", {k: 0.1 * v[:3] for k, v in true_features.items()})
    ref = {k: scaling.feature_std(v).mean() for k, v in true_features.items()}
    scaling.save_feature_std(tmp_path / "ref_std.npz", ref)
    out, logs = tmp_path / "out", tmp_path / "logs"
    assert main(["reconstruct", str(tmp_path / "decoded.mat"), "--out", str(out),
                 "--std-correction", str(tmp_path / "ref_std.npz"), "--data-format",
                 "channels_first", "--layer-weight", "equal", "--batch-size", "2",
                 "--logdir", str(logs)] + COMMON) == 0
    assert [f for f in outputs_of(out) if f.endswith(".png")] == [
        "decoded_0.png", "decoded_1.png", "decoded_2.png"]
    options = json.loads((out / "decoded_2_options.json").read_text())
    assert options["index_in_file"] == 2 and options["batch"] == ["decoded_2"]
    assert options["reference_std"] == pytest.approx(ref)
    assert options["std_correction"].endswith("ref_std.npz")
    assert options["layer_weight"] == "equal" and options["data_format"] == "channels_first"
    assert sorted(os.listdir(logs)) == ["decoded_0..decoded_1", "decoded_2"]
    assert sorted(os.listdir(logs / "decoded_2")) == ["images", "train"]


@pytest.mark.parametrize("variant", ["lbfgs", "dgn-gd", "dgn-lbfgs"])
def test_reconstruct_variants(feature_dir, tmp_path, variant, capsys):
    out = tmp_path / "out"
    args = ["reconstruct", str(feature_dir / "a.mat"), "--out", str(out), "--variant", variant,
            "--generator-weights", "random", "--latent-upper", "5"] + COMMON
    assert main(args) == 0
    options = json.loads((out / "a_options.json").read_text())
    assert options["variant"] == variant
    if variant.startswith("dgn"):
        assert options["generator_weights_used"] == "random"
        assert options["latent_bounds"] == [0.0, 5.0]
    else:
        assert options["pixel_bounds"].startswith("valid") and options["latent_bounds"] is None
    if variant.endswith("lbfgs"):
        assert options["optimizer"]["name"].startswith("L-BFGS")
        rgb = np.asarray(Image.open(out / "a.png"))
        assert rgb.shape == (SIZE, SIZE, 3)
    loss = json.loads((out / "a_loss.json").read_text())
    assert loss["iterations_run"] == len(loss["loss"]) <= 3


@pytest.mark.parametrize("extra, message", [
    (["--variant", "gan"], "invalid choice: 'gan'"),
    (["--layers", "conv1_1,conv9_9"], "unknown layer(s) conv9_9"),
    (["--layers", "conv1_1,fc7"], "need 224x224 images"),
    (["--layers", "conv3_1"], "['conv3_1'] not found"),
    (["--iterations", "0"], "--iterations: expected a positive number"),
    (["--batch-size", "0"], "--batch-size: expected a positive number"),
    (["--data-format", "channels_last"], "does not fit the layer"),
    (["--std-correction", "missing_std.mat"], "not found"),
    (["--variant", "dgn-gd", "--latent-upper", "bounds.txt"], "--latent-upper"),
    (["--variant", "dgn-gd", "--latent-upper", "short.txt"], "expected 4096 positive numbers"),
    (["--variant", "dgn-gd", "--latent-upper", "-1"], "expected a positive number"),
])
def test_reconstruct_bad_input_exits_2(feature_dir, tmp_path, capsys, extra, message):
    (tmp_path / "short.txt").write_text("1 2 3")
    extra = [str(tmp_path / e) if e == "short.txt" else e for e in extra]
    out = tmp_path / "out"
    argv = ["reconstruct", str(feature_dir), "--out", str(out)] + COMMON + extra
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert not out.exists() or not os.listdir(out)


def test_reconstruct_missing_inputs_exit_2(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path / "nope.mat"), "--out", str(tmp_path)]) == 2
    assert "nope.mat: no such file or directory" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "*.npz"), "--out", str(tmp_path)]) == 2
    assert "no file matches" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["reconstruct", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "without feature files" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("")
    assert main(["reconstruct", str(tmp_path / "x.txt"), "--out", str(tmp_path)]) == 2
    assert "not a feature file" in capsys.readouterr().err
    assert main(["reconstruct", "--out", str(tmp_path)]) == 2  # no FEATURES
    assert "required" in capsys.readouterr().err
    assert main(["reconstruct", "--help"]) == 0
    assert "--std-correction" in capsys.readouterr().out


def test_reconstruct_refuses_clashing_names(true_features, tmp_path, capsys):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        io.save_features(tmp_path / d / "same.npz", {k: v[:1] for k, v in true_features.items()})
    assert main(["reconstruct", str(tmp_path / "x"), str(tmp_path / "y"),
                 "--out", str(tmp_path / "out")] + COMMON) == 2
    assert "same outputs same.png" in capsys.readouterr().err


def test_variant_is_a_shorthand_for_its_preset(feature_dir, tmp_path, capsys):
    one, two = tmp_path / "variant", tmp_path / "preset"
    target = str(feature_dir / "a.mat")
    assert main(["reconstruct", target, "--out", str(one), "--variant", "gd"] + COMMON) == 0
    assert main(["reconstruct", target, "--out", str(two), "--preset", "paper_gd"] + COMMON) == 0
    assert "preset paper_gd" in capsys.readouterr().out
    assert (one / "a.png").read_bytes() == (two / "a.png").read_bytes()
    assert (one / "a_loss.json").read_bytes() == (two / "a_loss.json").read_bytes()
    a, b = (json.loads((d / "a_options.json").read_text()) for d in (one, two))
    assert a["reconstructor"] == b["reconstructor"]
    assert (a["variant"], a["preset"]) == ("gd", "paper_gd")
    assert (b["variant"], b["preset"]) == (None, "paper_gd")


def test_preset_settings_are_the_presets(feature_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["reconstruct", str(feature_dir / "a.mat"), "--out", str(out), "--preset",
                 "paper_lbfgs"] + COMMON) == 0
    options = json.loads((out / "a_options.json").read_text())
    rec = options["reconstructor"]
    assert options["initial"] == "mean" == rec["initial"]  # the paper's start, not --variant's
    assert rec["optimizer"]["class_name"] == "ScipyLBFGSB"
    assert rec["optimizer"]["config"]["iterations"] == 3 == options["iterations"]
    assert rec["param"]["config"]["bounds"] == "valid" and rec["layer_weight"] == "inverse_norm"
    assert options["layer_weight"] == "inverse_norm"
    # icnn_gd: the original function's defaults (equal layer weights), the decay of a
    # random-weight encoder, and --initial
    assert main(["reconstruct", str(feature_dir / "b.npz"), "--out", str(out), "--preset",
                 "icnn_gd", "--initial", "mean"] + COMMON) == 0
    options = json.loads((out / "b_options.json").read_text())
    rec = options["reconstructor"]
    assert options["layer_weight"] == "equal" and rec["layer_weight"] is None
    assert rec["initial"] == "mean" and options["optimizer"]["name"] == "momentum GD"
    decay = rec["optimizer"]["config"]["transforms"][0]["config"]["rate"]["config"]
    assert decay == {"start": 0.01, "end": 0.0}


def test_lbfgs_impl_swaps_the_presets_optimiser():
    from keras_icnn import presets
    from keras_icnn.cli import build
    cfg = build.optimizer_config(presets.get("paper_lbfgs"), 7, "tfp")
    assert cfg == {"class_name": "LBFGS", "config": {"iterations": 7}}
    cfg = build.optimizer_config(presets.get("paper_lbfgs"), 7, "scipy", "random")
    assert cfg["class_name"] == "ScipyLBFGSB" and cfg["config"]["iterations"] == 7
    gd = presets.get("paper_dgn_gd")
    assert build.optimizer_config(gd, 9, weights_used="random")["config"]["transforms"] == \
        gd["optimizer"]["config"]["transforms"]  # the latent decay is not the pixels'


def test_a_dgn_preset(feature_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["reconstruct", str(feature_dir / "b.npz"), "--out", str(out), "--preset",
                 "cookbook_dgn_gd", "--latent-upper", "7", "--generator-weights", "random"]
                + COMMON) == 0
    options = json.loads((out / "b_options.json").read_text())
    assert options["initial"] == "normal" and options["latent_bounds"] == [0.0, 7.0]
    assert options["generator_weights"] == "random" == options["generator_weights_used"]
    assert options["reconstructor"]["param"]["class_name"] == "Generator"
    assert options["variant"] is None and options["preset"] == "cookbook_dgn_gd"


@pytest.mark.parametrize("extra, message", [
    (["--preset", "paper_dgn_gd"], "--preset paper_dgn_gd: needs --latent-upper"),
    (["--preset", "paper_gd", "--variant", "gd"], "--preset and --variant: give one"),
    (["--preset", "nonesuch"], "invalid choice: 'nonesuch'"),
    (["--preset", "paper_gd", "--initial", "normal"], "--initial normal: paper_gd optimises "
     "pixels"),
    (["--checkpoint-every", "0"], "--checkpoint-every: expected a positive number"),
])
def test_preset_bad_input_exits_2(feature_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["reconstruct", str(feature_dir), "--out", str(out)] + COMMON + extra) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert not out.exists()
