"""``keras-icnn reconstruct`` on a Dask cluster (``keras_icnn.distributed``): a LocalCluster of
2 worker processes (one per module, shared by the tests) gives the serial run's outputs byte
for byte; a worker killed mid-task, a diverging target, a client killed and restarted, and a
cookbook config run through it."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import scipy.io

from keras_icnn import io
from keras_icnn.cli import main

from test_cli import ROOT, child_env, temp_files
from test_cli_study import (OUT, _expected_outputs, _outputs, study,  # noqa: F401
                            study_template)

pytest.importorskip("distributed")

SIZE = 32
NAMES = ["t0", "t1", "t2", "t3", "t4"]
ITERATIONS = 150
SETTINGS = {"weights": "random", "size": SIZE, "layers": "conv1_1,conv2_1",
            "iterations": ITERATIONS, "batch_size": 2}
FLAGS = ["--weights", "random", "--size", str(SIZE), "--layers", "conv1_1,conv2_1",
         "--iterations", str(ITERATIONS), "--batch-size", "2", "--quiet"]


@pytest.fixture(scope="module")
def client():
    from keras_icnn.distributed.cluster import connect
    env = {"PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    client, cluster = connect("local:2", env=env)
    client.wait_for_workers(2)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """5 targets, one file each (.mat, .npz, .h5): features of random images through the
    VGG19 the command builds."""
    import keras

    from keras_icnn.models import extract_features, vgg19
    keras.utils.set_random_seed(0)
    model = vgg19(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    images = np.random.default_rng(1).uniform(0, 255, (5, SIZE, SIZE, 3)).astype(np.float32)
    feats = extract_features(model, images, ["conv1_1", "conv2_1"])
    d = tmp_path_factory.mktemp("targets")
    for i, ext in enumerate([".mat", ".npz", ".h5", ".mat", ".npz"]):
        io.save_features(d / f"t{i}{ext}", {k: v[i:i + 1] for k, v in feats.items()},
                         squeeze_batch=True)
    return d


@pytest.fixture(scope="module")
def serial(targets, tmp_path_factory):
    """The serial command's outputs of ``targets``."""
    out = tmp_path_factory.mktemp("serial")
    assert main(["reconstruct", str(targets), "--out", str(out), *FLAGS]) == 0
    return out


def assert_same_outputs(out, serial, names=NAMES, copied=False):
    """The files of ``names`` in ``out`` are ``serial``'s, byte for byte (``copied``: the
    targets were copies; the options files' ``source`` differs)."""
    assert sorted(os.listdir(out)) == sorted(n + s for n in names
                                             for s in ("_options.json", "_loss.json", ".png"))
    for f in os.listdir(out):
        if copied and f.endswith("_options.json"):
            a, b = (json.loads((d / f).read_text()) for d in (out, serial))
            assert a.pop("source") != b.pop("source") and a == b
            continue
        assert (out / f).read_bytes() == (serial / f).read_bytes(), f


def test_two_workers_write_the_serial_outputs(client, targets, serial, tmp_path, capsys):
    from keras_icnn.distributed import reconstruct_many
    out = tmp_path / "out"
    report = reconstruct_many(client, targets, out, **SETTINGS)
    assert sorted(report.done) == NAMES and not report.failed and report.exit_status == 0
    assert report.workers == 2
    assert_same_outputs(out, serial)  # _options.json too: the same settings, paths, batches
    assert "done: 5 target(s) reconstructed" in capsys.readouterr().out
    again = reconstruct_many(client, [targets], str(out), **SETTINGS)
    assert again.done == [] and sorted(again.skipped) == NAMES


def _backed_up(path):
    try:
        with np.load(path) as data:
            return int(data["iterations_run"])
    except (OSError, ValueError, KeyError, EOFError):
        return 0


def _wait_for(condition, what, deadline=120):
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def _busy_worker_pid(client):
    pids = client.run(os.getpid)
    busy = [addr for addr, keys in client.processing().items() if keys]
    return pids[busy[0]]


def test_worker_killed_mid_task(client, targets, serial, tmp_path, capsys):
    """SIGKILL a worker while its batch runs: the batch runs again elsewhere (from its
    backup), every target is written once, as the serial run, nothing temporary left."""
    from keras_icnn.distributed import reconstruct_many
    out, result = tmp_path / "out", {}
    run = threading.Thread(target=lambda: result.setdefault("report", reconstruct_many(
        client, targets, out, checkpoint_every=5, **SETTINGS)))
    run.start()
    backups = [out / ".checkpoints" / b / "run_state.npz" for b in ("t0..t1", "t2..t3")]
    _wait_for(lambda: any(_backed_up(b) >= 20 for b in backups), "a backup")
    os.kill(_busy_worker_pid(client), signal.SIGKILL)
    run.join(300)
    report = result["report"]
    assert sorted(report.done) == NAMES and not report.failed
    assert "resuming from iteration" in capsys.readouterr().out
    assert_same_outputs(out, serial)
    assert not temp_files(out)  # no temporary files, no .checkpoints
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it


def test_diverging_target_is_reported(client, targets, serial, tmp_path, capsys):
    from keras_icnn.distributed import reconstruct_many
    bad = tmp_path / "targets"
    shutil.copytree(targets, bad)
    with np.load(targets / "t1.npz") as data:  # features 1e20 times too large: Inf loss
        np.savez(bad / "t9.npz", **{k: data[k] * np.float32(1e20) for k in data.files})
    out = tmp_path / "out"
    report = reconstruct_many(client, bad, out, **SETTINGS)
    assert report.exit_status == 1 and sorted(report.failed) == ["t4", "t9"]  # one batch
    assert "NaN or Inf" in report.failed["t9"]
    assert sorted(report.done) == NAMES[:4]
    assert_same_outputs(out, serial, NAMES[:4], copied=True)
    err = capsys.readouterr().err
    assert "2 target(s) failed: t4, t9" in err


def test_client_killed_and_restarted(client, targets, serial, tmp_path, capsys):
    """``--dask local:2`` killed (client and its workers) with batches done and one backed
    up: run again, it skips the done targets, resumes the backed-up batch and ends with the
    serial outputs."""
    from keras_icnn.distributed import reconstruct_many
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "keras_icnn", "reconstruct", str(targets),
                             "--out", str(out), *FLAGS, "--checkpoint-every", "5",
                             "--dask", "local:2"], env=child_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (out / "t0.png").exists() or (out / "t2.png").exists(),
                  "the first batch", 240)
        last = out / ".checkpoints" / "t4" / "run_state.npz"
        _wait_for(lambda: _backed_up(last) >= 10 or proc.poll() is not None, "a backup")
        assert proc.poll() is None, "the job ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    capsys.readouterr()
    report = reconstruct_many(client, targets, out, checkpoint_every=5, **SETTINGS)
    assert "t4" in report.done and report.skipped and not report.failed
    assert sorted(report.done + report.skipped) == NAMES
    assert "resuming from iteration" in capsys.readouterr().out
    assert_same_outputs(out, serial)
    assert not temp_files(out)


def test_cookbook_config(client, study, capsys):
    """A cookbook YAML run (2 subjects x 2 ROIs x 3 labels) through the cluster: the serial
    run's outputs (up to float rounding, as ``test_cli_study.test_checkpoints_resume``
    explains)."""
    from keras_icnn.distributed import reconstruct_many
    assert main(["reconstruct", "--config", "config/recon_test.yaml", "--quiet"]) == 0
    os.rename(OUT, OUT + "_serial")
    report = reconstruct_many(client, config="config/recon_test.yaml")
    assert report.exit_status == 0 and len(report.done) == 12
    assert "sub-02/VC/n03" in report.done
    assert _outputs(study) == _expected_outputs()
    for name in _expected_outputs():
        if name.endswith(".mat"):
            a = scipy.io.loadmat(os.path.join(OUT, name))
            b = scipy.io.loadmat(os.path.join(OUT + "_serial", name))
            np.testing.assert_allclose(a["loss_history"], b["loss_history"], rtol=1e-5)
            np.testing.assert_allclose(a["recon_image"], b["recon_image"], atol=1e-2)
    again = reconstruct_many(client, config="config/recon_test.yaml")
    assert again.done == [] and len(again.skipped) == 12

