"""``keras-icnn demo`` (``keras_icnn/cli/demo.py``)."""
import json

from PIL import Image

from keras_icnn.cli import main
from test_cli import one_line_error, outputs_of, temp_files


def test_demo_writes_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "48", "--iterations", "3", "--weights", "random",
                 "--out", str(out), "--quiet"]) == 0
    assert outputs_of(out) == ["comparison.png", "loss.png", "reconstruction.png", "summary.json"]
    assert not temp_files(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"] == "random" and summary["iterations"] == 3
    assert len(summary["loss"]) == 3 and summary["size"] == 48
    assert Image.open(out / "reconstruction.png").size == (48, 48)
    assert "wrote" in capsys.readouterr().out


    # its record claims what it wrote: a second run replaces its own files without --overwrite
    assert summary["package"] == "keras-icnn" and summary["complete"] is True
    assert sorted(summary["outputs"]) == outputs_of(out)
    assert summary["reconstructor"]["layer_weight"] == "inverse_norm"
    decay = summary["reconstructor"]["optimizer"]["config"]["transforms"][0]
    assert decay["class_name"] == "Decay"  # random weights: the demo's gentler decay
    assert decay["config"]["rate"]["config"] == {"start": 0.01, "end": 0.0}
    assert main(["demo", "--size", "32", "--iterations", "2", "--weights", "random",
                 "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["iterations"] == 2


DEMO = ["demo", "--size", "32", "--iterations", "2", "--weights", "random", "--quiet"]


def test_demo_does_not_replace_a_users_file(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "reconstruction.png").write_bytes(b"my own picture")
    assert main(DEMO + ["--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "reconstruction.png exists and was not written by keras-icnn demo" in line
    assert "--overwrite" in line
    assert outputs_of(out) == ["reconstruction.png"]
    assert (out / "reconstruction.png").read_bytes() == b"my own picture"
    # a summary.json that is not keras-icnn's does not make the files keras-icnn's
    (out / "summary.json").write_text('{"outputs": ["reconstruction.png", "summary.json"]}')
    assert main(DEMO + ["--out", str(out)]) == 2
    assert "was not written by keras-icnn demo (and 1 more)" in capsys.readouterr().err
    assert main(DEMO + ["--out", str(out), "--overwrite"]) == 0
    assert (out / "reconstruction.png").read_bytes() != b"my own picture"


def test_demo_out_that_is_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    assert main(DEMO + ["--out", str(tmp_path / "taken")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--out" in line and "exists and is not a directory" in line
    assert (tmp_path / "taken").read_text() == "a file"
