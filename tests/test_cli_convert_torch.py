"""``keras-icnn convert-torch``: a bdpy state dict to a .weights.h5 file and its manifest;
refusing to replace files; bad input is one line on stderr and exit status 2."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import torch_reference as tref  # noqa: E402
from keras_icnn import models  # noqa: E402
from keras_icnn.caffe.convert import sha256_file  # noqa: E402
from keras_icnn.cli import main  # noqa: E402
from test_cli import one_line_error  # noqa: E402


@pytest.fixture(scope="module")
def norm1_case(tmp_path_factory):
    module = tref.reference_module("norm1generator", seed=7)
    d = tmp_path_factory.mktemp("convert_torch")
    pt = tref.save_state_dict(module, d / "generator.pt")
    z = np.random.default_rng(7).standard_normal((1, 96, 27, 27)).astype(np.float32)
    return pt, z, tref.run_with_hooks(module, z, [])[0]


def convert(pt, out, model="norm1generator", *extra):
    return main(["convert-torch", "--model", model, "--pt", str(pt), "--out", str(out), *extra])


def test_help_lists_the_models_and_exit_statuses(capsys):
    assert main(["convert-torch", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "relu7generator" in out and "reference_net" in out and "--overwrite" in out
    assert "exit status: 0 done" in out


def test_converts_to_weights_and_manifest(norm1_case, tmp_path, capsys):
    pt, z, ref = norm1_case
    out = tmp_path / "sub" / "norm1.weights.h5"
    assert convert(pt, out) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (11 weight layers of norm1generator)" in printed
    manifest = json.loads((tmp_path / "sub" / "norm1.weights.json").read_text())
    assert manifest["model"] == "norm1generator"
    assert manifest["source"]["sha256"] == sha256_file(pt)
    assert manifest["weights_sha256"] == sha256_file(out)
    assert manifest["layers"]["Rconv6"] == "Rconv6" and manifest["unused_keys"] == []
    model = models.build("norm1generator", weights=out)
    got = tref.to_nchw(keras.ops.convert_to_numpy(model(tref.to_nhwc(z))))
    assert tref.rel_err(got, ref) < 1e-5
    assert sorted(p.name for p in out.parent.iterdir()) == ["norm1.weights.h5",
                                                            "norm1.weights.json"]


def test_existing_output_needs_overwrite(norm1_case, tmp_path, capsys):
    pt, _, _ = norm1_case
    out = tmp_path / "w.weights.h5"
    out.write_bytes(b"precious")
    assert convert(pt, out) == 2
    assert "exists; use --overwrite" in one_line_error(capsys.readouterr().err)
    assert out.read_bytes() == b"precious"
    assert convert(pt, out, "norm1generator", "--overwrite") == 0
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize("case", ["model", "suffix", "missing", "corrupt", "mismatch"])
def test_bad_input_is_one_line_and_exit_2(case, norm1_case, tmp_path, capsys):
    pt, _, _ = norm1_case
    out, model = tmp_path / "w.weights.h5", "norm1generator"
    expected = {"model": "unknown model 'vgg16'", "suffix": "must end with .weights.h5",
                "missing": "no such file", "corrupt": "bad.pt: not a readable PyTorch",
                "mismatch": "generator.pt: key 'Rconv6.weight' has shape (128, 96, 3, 3)"}[case]
    if case == "model":
        model = "vgg16"
    elif case == "suffix":
        out = tmp_path / "w.h5"
    elif case == "missing":
        pt = tmp_path / "none.pt"
    elif case == "corrupt":
        pt = tmp_path / "bad.pt"
        pt.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        model = "norm2generator"
    assert convert(pt, out, model) == 2
    assert expected in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.glob("*.weights.*")) == []


def test_without_torch_one_line_says_how_to_install(norm1_case, tmp_path, capsys, monkeypatch):
    pt, _, _ = norm1_case
    monkeypatch.setitem(sys.modules, "torch", None)
    assert convert(pt, tmp_path / "w.weights.h5") == 2
    assert "pip install keras-icnn[torch]" in one_line_error(capsys.readouterr().err)
