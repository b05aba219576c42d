"""The command line, shared pieces: the fixtures and helpers of the ``test_cli_*`` modules
(one per module of ``keras_icnn/cli/``), and ``keras_icnn.cli.main`` itself: help, exit
statuses, dispatch."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_icnn import io
from keras_icnn.cli import main
from keras_icnn.models import extract_features, vgg19

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32
LAYERS = ["conv1_1", "conv2_1"]
COMMON = ["--weights", "random", "--size", str(SIZE), "--iterations", "3", "--quiet"]


def outputs_of(directory):
    return sorted(f for f in os.listdir(directory))


def temp_files(directory):
    return [f for f in os.listdir(directory) if f.startswith(".") or ".tmp" in f]


def child_env():
    """The environment of a ``python -m keras_icnn`` child: this worktree's code, no GPU."""
    return {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": ""}


def run_cli(args, timeout=300):
    """``python -m keras_icnn ARGS`` in a child process."""
    return subprocess.run([sys.executable, "-m", "keras_icnn", *args], env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(err):
    """The error line of a failed command: exactly one, and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def true_features():
    """conv1_1/conv2_1 features of 4 random images through the VGG19 the CLI builds (random
    weights, seed 0: the same network)."""
    keras.utils.set_random_seed(0)
    model = vgg19(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    images = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    return extract_features(model, images, LAYERS)


@pytest.fixture
def feature_dir(tmp_path, true_features):
    """Three lab-style files, one target each: .mat (Caffe [C, H, W]), .npz, .h5."""
    d = tmp_path / "features"
    d.mkdir()
    for i, name in enumerate(["a.mat", "b.npz", "c.h5"]):
        io.save_features(d / name, {k: v[i:i + 1] for k, v in true_features.items()},
                         squeeze_batch=True)
    (d / "notes.txt").write_text("not a feature file")  # ignored in a directory
    return d


def test_help_documents_the_exit_statuses(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit status: 0 done; 1 some target failed" in out and "2 bad input" in out
    for command in ("demo", "reconstruct"):
        assert main([command, "--help"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "exit status: 0 done" in out and "--overwrite" in out


def test_no_command_and_unknown_command_exit_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_convert_caffe_is_dispatched(tmp_path, capsys):
    assert main(["convert-caffe", "--help"]) == 0
    assert "--caffemodel" in capsys.readouterr().out
    assert main(["convert-caffe", "--prototxt", str(tmp_path / "none.prototxt"),
                 "--caffemodel", str(tmp_path / "none.caffemodel"),
                 "--out", str(tmp_path / "w.weights.h5")]) == 1
    assert "not found" in capsys.readouterr().err

