"""Exact checkpoint and resume: a run killed at iteration k and started again with the same
BackupAndRestore ends with the same image, bit for bit, as a run never interrupted."""
import os

import keras
import numpy as np
import pytest

from keras_icnn import BackupAndRestore

from engine_cases import VARIANTS, problem, reconstructor

ITERATIONS = 7


class Crash(keras.callbacks.Callback):
    """Raises at the end of iteration ``at`` (0-based), like a kill would stop the run."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt(f"killed at iteration {epoch + 1}")


@pytest.fixture(scope="module")
def case():
    return problem()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_resume_is_bit_identical(case, variant, tmp_path):
    net, gen, feats = case
    whole = reconstructor(variant, net, gen)
    whole.fit(feats, iterations=ITERATIONS, verbose=0)

    backup = tmp_path / "backup"
    rec = reconstructor(variant, net, gen)
    with pytest.raises(KeyboardInterrupt):
        rec.fit(feats, iterations=ITERATIONS, verbose=0,
                callbacks=[BackupAndRestore(backup, save_freq=2), Crash(at=4)])
    assert (backup / "run_state.npz").exists()       # kept after the interrupt
    rec = reconstructor(variant, net, gen)           # a fresh process would do the same
    history = rec.fit(feats, iterations=ITERATIONS, verbose=0,
                      callbacks=[BackupAndRestore(backup, save_freq=2, verbose=False)])
    assert rec.initial_epoch == 4                    # the backup after iteration 4
    np.testing.assert_array_equal(rec.images, whole.images)
    np.testing.assert_array_equal(rec.loss_history_, whole.loss_history_)
    assert history.history["loss"] == pytest.approx(whole.history.history["loss"], rel=0)
    assert not backup.exists()                       # deleted when the run completed


def test_a_backup_of_another_run_is_refused(case, tmp_path):
    net, gen, feats = case
    rec = reconstructor("gd", net, gen)
    with pytest.raises(KeyboardInterrupt):
        rec.fit(feats, iterations=5, verbose=0,
                callbacks=[BackupAndRestore(tmp_path, save_freq=1), Crash(at=1)])
    with pytest.raises(ValueError, match="another run"):
        reconstructor("gd", net, gen).fit(feats, iterations=6, verbose=0,
                                          callbacks=[BackupAndRestore(tmp_path)])


def test_a_corrupt_backup_is_a_clear_error(case, tmp_path):
    net, gen, feats = case
    (tmp_path / "run_state.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="not a readable keras-icnn backup"):
        reconstructor("gd", net, gen).fit(feats, iterations=3, verbose=0,
                                          callbacks=[BackupAndRestore(tmp_path)])


@pytest.mark.parametrize("kwargs, match", [
    (dict(backup_dir=""), "backup_dir"), (dict(backup_dir="x", save_freq=0), "save_freq"),
    (dict(backup_dir="x", save_freq=1.5), "save_freq")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BackupAndRestore(**kwargs)


def test_backup_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        BackupAndRestore(os.fspath(f))
