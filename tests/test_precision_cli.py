"""--precision of ``keras-icnn demo`` and ``keras-icnn reconstruct``, and the resolved
jit_compile written down with a run."""
import json

from keras_icnn.cli import main
from keras_icnn.optimizers import xla
from test_cli import COMMON, feature_dir, true_features  # noqa: F401


def test_demo_precision(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "32", "--iterations", "3", "--weights", "random",
                 "--out", str(out), "--quiet", "--precision", "mixed_bfloat16"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["precision"] == "mixed_bfloat16"
    assert summary["reconstructor"]["precision"] == "mixed_bfloat16"
    assert "mixed_bfloat16" in capsys.readouterr().out


def test_demo_bad_precision_exits_2(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--precision", "float16"]) == 2
    assert "--precision" in capsys.readouterr().err


def test_reconstruct_precision_is_recorded_and_rerun(feature_dir, tmp_path):  # noqa: F811
    out, again = tmp_path / "out", tmp_path / "again"
    target = str(feature_dir / "a.mat")
    assert main(["reconstruct", target, "--out", str(out), "--precision", "mixed_bfloat16"]
                + COMMON) == 0
    options = json.loads((out / "a_options.json").read_text())
    assert options["precision"] == "mixed_bfloat16"
    assert options["reconstructor"]["precision"] == "mixed_bfloat16"
    assert options["reconstructor"]["optimizer"]["config"]["jit_compile"] == "auto"
    assert options["optimizer"]["jit_compile"] is xla.resolve("auto")
    assert main(["reconstruct", "--config", str(out / "a_options.json"), target,
                 "--out", str(again), "--precision", "float32"] + COMMON) == 0
    rerun = json.loads((again / "a_options.json").read_text())
    assert rerun["precision"] == "float32" and rerun["reconstructor"]["precision"] == "float32"
