"""``keras-icnn reconstruct --checkpoint-every K``: a job killed with SIGKILL and run again
with the same command resumes its batch and ends with the outputs of an uninterrupted run, bit
for bit."""
import os
import subprocess
import sys
import time

import numpy as np

from test_cli import SIZE, child_env, feature_dir, run_cli, true_features  # noqa: F401

ITERATIONS = 200
KILL_AFTER = 20  # iterations backed up before the kill


def _backed_up(state):
    """The iterations in the backup ``state`` (0 while there is none)."""
    try:
        with np.load(state) as data:
            return int(data["iterations_run"])
    except (OSError, ValueError, KeyError, EOFError):
        return 0


def _kill_when_backed_up(argv, state, deadline=180):
    proc = subprocess.Popen([sys.executable, "-m", "keras_icnn", *argv], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + deadline
        while proc.poll() is None and time.monotonic() < end:
            if _backed_up(state) >= KILL_AFTER:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the job ended before it could be killed"
        proc.kill()  # SIGKILL: no clean-up of any kind
    finally:
        proc.kill()
        proc.wait()
    return _backed_up(state)


def test_killed_job_resumes_bit_for_bit(feature_dir, tmp_path):
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    argv = [str(feature_dir), "--weights", "random", "--size", str(SIZE), "--layers",
            "conv1_1,conv2_1", "--iterations", str(ITERATIONS), "--batch-size", "2",
            "--checkpoint-every", "2", "--quiet"]
    state = killed / ".checkpoints" / "a..b" / "run_state.npz"
    at = _kill_when_backed_up(["reconstruct", *argv, "--out", str(killed)], state)
    assert KILL_AFTER <= at < ITERATIONS and at % 2 == 0
    assert not (killed / "a.png").exists() and not (killed / "a_options.json").exists()

    rerun = run_cli(["reconstruct", *argv, "--out", str(killed)])
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from iteration" in rerun.stdout
    assert not (killed / ".checkpoints").exists()  # removed once the outputs are written
    done = run_cli(["reconstruct", *argv, "--out", str(fresh)])
    assert done.returncode == 0, done.stderr
    assert "resuming" not in done.stdout
    for name in "abc":
        assert (killed / f"{name}.png").read_bytes() == (fresh / f"{name}.png").read_bytes()
        assert (killed / f"{name}_loss.json").read_bytes() == \
            (fresh / f"{name}_loss.json").read_bytes()
    assert sorted(os.listdir(killed)) == sorted(os.listdir(fresh))


def test_backups_go_when_the_outputs_are_written(feature_dir, tmp_path, capsys):
    from keras_icnn.cli import main
    from test_cli import COMMON, one_line_error
    out = tmp_path / "out"
    argv = ["reconstruct", str(feature_dir / "a.mat"), "--out", str(out)] + COMMON
    # a backup that is not one (e.g. of another keras-icnn): refused, named, kept
    (out / ".checkpoints" / "a").mkdir(parents=True)
    (out / ".checkpoints" / "a" / "run_state.npz").write_bytes(b"not a backup")
    assert main(argv + ["--checkpoint-every", "1"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "run_state.npz is not a readable keras-icnn backup" in line
    assert not (out / "a.png").exists()
    # a run without --checkpoint-every writes the batch's outputs and drops its stale backup
    assert main(argv) == 0
    assert (out / "a.png").exists() and not (out / ".checkpoints").exists()
    # with it, the backup lives while the batch runs and goes with its outputs
    assert main(argv + ["--checkpoint-every", "1", "--overwrite"]) == 0
    assert "resuming" not in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["a.png", "a_loss.json", "a_options.json"]
