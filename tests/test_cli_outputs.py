"""Files a user owns (``keras_icnn/cli/outputs.py``, ``keras_icnn.io.atomic``'s temporary
names): nothing replaced that keras-icnn did not write, stale temporary files cleaned, output
locations checked before any work."""
import json
import os

import pytest

from keras_icnn.cli import main
from keras_icnn.io.atomic import (atomic_path, remove_stale_temporary_files,
                                  stale_temporary_files, temporary_name_pattern)
from test_cli import (COMMON, feature_dir, one_line_error, outputs_of,  # noqa: F401
                      true_features)


# -- files keras-icnn did not write -------------------------------------------------------
def test_a_users_photo_is_not_replaced(feature_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"my photo")  # beside a.mat: a.png is an output's name
    args = ["reconstruct", str(feature_dir), "--out", str(out)] + COMMON
    assert main(args) == 2
    captured = capsys.readouterr()
    line = one_line_error(captured.err)
    assert f"{out / 'a.png'} exists and was not written by keras-icnn reconstruct" in line
    assert "use --overwrite to replace it, or another --out" in line
    assert "batch" not in captured.out  # refused before any work: nothing written
    assert outputs_of(out) == ["a.png"] and (out / "a.png").read_bytes() == b"my photo"
    # a hand-written options file does not claim it either
    (out / "a_options.json").write_text(json.dumps({"outputs": ["a.png", "a_options.json"]}))
    assert main(args) == 2
    assert "(and 1 more)" in capsys.readouterr().err
    assert (out / "a.png").read_bytes() == b"my photo"
    assert main(args + ["--overwrite"]) == 0
    assert (out / "a.png").read_bytes() != b"my photo"
    options = json.loads((out / "a_options.json").read_text())
    assert options["package"] == "keras-icnn"
    assert options["outputs"] == ["a_options.json", "a_loss.json", "a.png"]


def test_its_own_unfinished_target_is_redone_without_overwrite(feature_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["reconstruct", str(feature_dir / "a.mat"), "--out", str(out)] + COMMON
    assert main(args) == 0
    # killed after the options file (written first, claiming the names) and the loss
    os.remove(out / "a.png")
    assert main(args) == 0
    assert "1 to do" in capsys.readouterr().out and (out / "a.png").exists()


def test_outputs_of_an_earlier_version_are_its_own(feature_dir, tmp_path, capsys):
    """Options files of keras-icnn 0.1 listed no outputs: they claim their target's three."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_options.json").write_text(json.dumps(
        {"package": "keras-icnn", "command": "reconstruct", "target": "a"}))
    (out / "a_loss.json").write_text("{}")
    (out / "a.png").write_bytes(b"a reconstruction")
    (out / "b.png").write_bytes(b"my photo")  # not claimed by a's options file
    (out / "b_options.json").write_text(json.dumps(
        {"package": "keras-icnn", "command": "reconstruct", "target": "a"}))
    args = ["reconstruct", str(feature_dir), "--out", str(out)] + COMMON
    assert main(args) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "b_options.json exists and was not written by keras-icnn reconstruct (and 1 more)" \
        in line  # a record of another target claims nothing here
    os.remove(out / "b.png")
    os.remove(out / "b_options.json")
    assert main(args) == 0
    assert "skip a:" in capsys.readouterr().out


def test_convert_caffe_refuses_an_existing_out(tmp_path, capsys):
    out = tmp_path / "w.weights.h5"
    base = ["convert-caffe", "--prototxt", str(tmp_path / "none.prototxt"), "--caffemodel",
            str(tmp_path / "none.caffemodel"), "--out", str(out)]
    out.write_bytes(b"my weights")
    assert main(base) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(out) in line and "--overwrite" in line
    assert out.read_bytes() == b"my weights"
    out.unlink()
    (tmp_path / "w.weights.json").write_text("{}")  # its manifest's name
    assert main(base) == 2
    assert "w.weights.json exists" in capsys.readouterr().err
    # --overwrite lifts the refusal (the conversion itself then fails: no such prototxt)
    assert main(base + ["--overwrite"]) == 1
    assert "not found" in capsys.readouterr().err


# -- stale temporary files ----------------------------------------------------------------
def test_temporary_name_pattern_matches_atomic_paths_own_names(tmp_path):
    target = tmp_path / "a_options.json"
    with atomic_path(target) as tmp:
        assert temporary_name_pattern(target).match(os.path.basename(tmp))
        assert stale_temporary_files(target) == [tmp]
        open(tmp, "w").close()
    weights = tmp_path / "w.weights.h5"
    with atomic_path(weights, suffix=".weights.h5") as tmp:
        assert temporary_name_pattern(weights, suffix=".weights.h5").match(
            os.path.basename(tmp))
        assert not temporary_name_pattern(weights).match(os.path.basename(tmp))
    pattern = temporary_name_pattern(target)
    for name in ("a_options.json", ".a_options.tmp.json", ".a_options.x1y2z3w4.tmp.json.bak",
                 ".a_loss.x1y2z3w4.tmp.json", ".a_options.x1.y2.tmp.json", "a_options.x.tmp.json",
                 ".b.a_options.x1y2z3w4.tmp.json", ".a_options.x1y2z3w4.tmp.png"):
        assert not pattern.match(name), name


def test_remove_stale_temporary_files(tmp_path):
    target = tmp_path / "a.png"
    stale = [tmp_path / ".a.k3j2h1ab.tmp.png", tmp_path / ".a.zz_9q8w7.tmp.png"]
    keep = [tmp_path / "a.png", tmp_path / ".a.png", tmp_path / ".ab.k3j2h1ab.tmp.png",
            tmp_path / "notes.tmp.png"]
    for f in stale + keep:
        f.write_text("x")
    (tmp_path / ".a.dirdirdi.tmp.png").mkdir()  # not a file: left alone
    assert stale_temporary_files(target) == sorted(str(f) for f in stale)
    assert remove_stale_temporary_files(target) == sorted(str(f) for f in stale)
    assert not any(f.exists() for f in stale) and all(f.exists() for f in keep)
    assert remove_stale_temporary_files(tmp_path / "missing" / "a.png") == []


def test_reconstruct_cleans_the_temporary_files_a_killed_run_left(feature_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (out / ".checkpoints" / "a..b").mkdir(parents=True)
    stale = [out / ".a_options.k3j2h1ab.tmp.json", out / ".b.q9w8e7r6.tmp.png",
             out / ".checkpoints" / "a..b" / ".run_state.abcd1234.tmp.npz"]
    keep = [out / ".zz_options.k3j2h1ab.tmp.json",  # no target zz in this run
            out / "my.tmp.json", out / ".a_options.json.swp"]
    for f in stale + keep:
        f.write_text("x")
    assert main(["reconstruct", str(feature_dir), "--out", str(out)] + COMMON) == 0
    assert "removed 3 temporary file(s) left by an interrupted run" in capsys.readouterr().out
    assert not any(f.exists() for f in stale) and all(f.exists() for f in keep)
    assert not (out / ".checkpoints").exists()  # left empty: removed


# -- output locations ---------------------------------------------------------------------
def _refused_before_work(capsys, argv, *words):
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = one_line_error(captured.err)
    assert all(w in line for w in words), line
    assert "keras-icnn reconstruct:" not in captured.out  # no target loaded, nothing run
    return line


def test_out_that_is_a_file_or_cannot_be_made_exits_2(feature_dir, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    base = ["reconstruct", str(feature_dir)] + COMMON
    _refused_before_work(capsys, base + ["--out", str(tmp_path / "taken")],
                         "--out", "exists and is not a directory")
    _refused_before_work(capsys, base + ["--out", str(tmp_path / "taken" / "sub")],
                         "--out", "cannot create or write this directory")
    assert (tmp_path / "taken").read_text() == "a file"


def test_logdir_and_checkpoint_dir_that_are_files_exit_2(feature_dir, tmp_path, capsys):
    (tmp_path / "logs").write_text("a file")
    out = tmp_path / "out"
    base = ["reconstruct", str(feature_dir), "--out", str(out)] + COMMON
    _refused_before_work(capsys, base + ["--logdir", str(tmp_path / "logs")],
                         "--logdir", "exists and is not a directory")
    assert outputs_of(out) == []
    (out / ".checkpoints").write_text("a file")
    _refused_before_work(capsys, base + ["--checkpoint-every", "2"], "checkpoint directory",
                         "exists and is not a directory")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_unwritable_out_exits_2(feature_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _refused_before_work(capsys, ["reconstruct", str(feature_dir), "--out", str(locked)]
                             + COMMON, "--out", "cannot create or write")
        _refused_before_work(capsys, ["reconstruct", str(feature_dir), "--out",
                                      str(locked / "new")] + COMMON, "cannot create")
    finally:
        locked.chmod(0o700)


def test_read_only_out_exits_2(feature_dir, tmp_path, capsys, monkeypatch):
    """A directory the process may not write into (simulated: the tests may run as root)."""
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    line = _refused_before_work(capsys, ["reconstruct", str(feature_dir), "--out", str(out)]
                                + COMMON, "--out", "cannot create or write this directory")
    assert "Permission denied" in line


def test_unwritable_out_in_a_child_process_exits_2(feature_dir, tmp_path):
    """The whole command as a user runs it: one line on stderr, status 2, no traceback."""
    from test_cli import run_cli
    (tmp_path / "taken").write_text("a file")
    done = run_cli(["reconstruct", str(feature_dir), "--out", str(tmp_path / "taken" / "x")]
                   + COMMON, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "keras-icnn" in line]
    assert len(errors) == 1 and "cannot create or write" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "batch" not in done.stdout
