"""``keras-icnn reconstruct --config`` (``keras_icnn/cli/options.py``): a run's
``<target>_options.json`` reruns it exactly; flags beside it override it."""
import json

import pytest

from keras_icnn.cli import main, options
from test_cli import COMMON, feature_dir, one_line_error, true_features  # noqa: F401


def _same_outputs(one, two, names):
    for name in names:
        assert (one / f"{name}.png").read_bytes() == (two / f"{name}.png").read_bytes(), name
        assert (one / f"{name}_loss.json").read_bytes() == \
            (two / f"{name}_loss.json").read_bytes(), name


def test_options_file_holds_the_settings_and_the_reconstructor(feature_dir, tmp_path):
    out = tmp_path / "one"
    assert main(["reconstruct", str(feature_dir), "--out", str(out), "--layers", "conv1_1",
                 "--seed", "3", "--normalize", "minmax", "--batch-size", "2"] + COMMON) == 0
    opts = json.loads((out / "a_options.json").read_text())
    assert set(opts) == set(options.SETTINGS) | set(options.RECORDS) | {"reconstructor"}
    assert opts["outputs"] == ["a_options.json", "a_loss.json", "a.png"]
    assert opts["layers"] == ["conv1_1"] and opts["seed"] == 3 == opts["reconstructor"]["seed"]
    assert opts["normalize"] == "minmax" and opts["batch_size"] == 2
    assert opts["reconstructor"]["optimizer"]["config"]["iterations"] == 3
    assert opts["reconstructor"]["data_format"] == "channels_last"  # the CLI prepares targets


@pytest.mark.parametrize("method", [[], ["--variant", "dgn-gd", "--generator-weights",
                                         "random", "--latent-upper", "9"]])
def test_config_reruns_bit_for_bit(feature_dir, tmp_path, capsys, method):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["reconstruct", str(feature_dir), "--out", str(one), "--layers", "conv1_1",
                 "--seed", "3", "--normalize", "minmax", "--batch-size", "2"]
                + COMMON + method) == 0
    capsys.readouterr()
    assert main(["reconstruct", "--config", str(one / "a_options.json"), str(feature_dir),
                 "--out", str(two)]) == 0
    assert "batch 1/2: a, b" in capsys.readouterr().out  # the batch size of the file
    _same_outputs(one, two, "abc")
    a, b = (json.loads((d / "c_options.json").read_text()) for d in (one, two))
    assert a["reconstructor"] == b["reconstructor"]
    assert {k: a[k] for k in options.SETTINGS} == {k: b[k] for k in options.SETTINGS}


def test_flags_beside_config_override_it(feature_dir, tmp_path, capsys):
    one = tmp_path / "one"
    assert main(["reconstruct", str(feature_dir / "a.mat"), "--out", str(one)] + COMMON) == 0
    config = str(one / "a_options.json")
    # --iterations and --seed are written into the file's reconstructor
    assert main(["reconstruct", "--config", config, str(feature_dir / "a.mat"), "--out",
                 str(tmp_path / "two"), "--iterations", "2", "--seed", "5"]) == 0
    opts = json.loads((tmp_path / "two" / "a_options.json").read_text())
    assert opts["iterations"] == 2 == opts["reconstructor"]["optimizer"]["config"]["iterations"]
    assert opts["seed"] == 5 == opts["reconstructor"]["seed"]
    assert len(json.loads((tmp_path / "two" / "a_loss.json").read_text())["loss"]) == 2
    # --variant builds the reconstructor from its preset instead, with that preset's start,
    # bounds and iterations (the file's size, weights, layers ... stay)
    capsys.readouterr()
    assert main(["reconstruct", "--config", config, str(feature_dir / "a.mat"), "--out",
                 str(tmp_path / "three"), "--variant", "dgn-gd", "--generator-weights",
                 "random", "--iterations", "2"]) == 0
    assert "--variant given: the reconstructor is built from the preset" in \
        capsys.readouterr().out
    opts = json.loads((tmp_path / "three" / "a_options.json").read_text())
    assert (opts["variant"], opts["preset"]) == ("dgn-gd", "paper_dgn_gd")
    assert opts["reconstructor"]["param"]["class_name"] == "Generator"
    assert opts["initial"] == "zeros" and opts["latent_bounds"] == [0.0, 100.0]
    assert opts["iterations"] == 2 and opts["size"] == 32 and opts["weights"] == "random"


def _edited(tmp_path, source, **changes):
    opts = json.loads(source.read_text())
    opts.update(changes)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(opts))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"bogus": 1, "other": 2}, "unknown key(s) bogus, other"),
    ({"normalize": "sideways"}, "'normalize' must be one of none, minmax, clip_extreme"),
    ({"size": "32"}, "'size' must be int"),
    ({"reconstructor": {"optimizer": "gd", "colour": 1}}, "unknown key(s) ['colour']"),
])
def test_bad_config_exits_2(feature_dir, tmp_path, capsys, changes, message):
    one = tmp_path / "one"
    assert main(["reconstruct", str(feature_dir / "a.mat"), "--out", str(one)] + COMMON) == 0
    capsys.readouterr()
    path = _edited(tmp_path, one / "a_options.json", **changes)
    assert main(["reconstruct", "--config", str(path), str(feature_dir / "a.mat"),
                 "--out", str(tmp_path / "two")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert message in line and "--config" in line, line


def test_config_that_is_not_an_options_file_exits_2(feature_dir, tmp_path, capsys):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    for name, message in (("list.json", "expected a JSON object"),
                          ("broken.json", "not a readable JSON file"),
                          ("missing.json", "no such file")):
        assert main(["reconstruct", "--config", str(tmp_path / name), str(feature_dir),
                     "--out", str(tmp_path / "out")] + COMMON) == 2
        assert message in one_line_error(capsys.readouterr().err)


def test_explicit_flags():
    assert options.explicit_flags(["a.mat", "--out", "x", "--seed", "0", "--quiet"]) == {
        "features", "out", "seed", "quiet"}
    assert options.explicit_flags(["a.mat", "--out=x", "--iter", "5"]) == {
        "features", "out", "iterations"}
