"""Exact checkpoint and resume of a run: :class:`BackupAndRestore`.

It follows ``keras.callbacks.BackupAndRestore``'s contract: a backup directory; every
``save_freq`` iterations the complete state of the run is written there (atomically: a kill at
any moment leaves the previous backup or the new one, never half of one); a run started again
with the same callback resumes where the backup stands; the backup is deleted when the run
completes.  The state is everything the run carries from one iteration to the next
(``Reconstructor.get_run_state``: the optimised variable, the optimiser's state such as the
momentum buffer or the L-BFGS memory, the iterations done, the per-image losses) and the
``History`` so far; random numbers need no state (the start is drawn from the seed before the
first iteration, jitter is a pure function of its seed and the iteration).  A resumed run ends
with the same image, bit for bit, as one that was never interrupted.
"""
from __future__ import annotations

import hashlib
import json
import os

import keras
import numpy as np

from keras_icnn.io import atomic_path
from keras_icnn.io.paths import check_output_dir

__all__ = ["BackupAndRestore", "run_fingerprint"]

STATE_FILE = "run_state.npz"


def run_fingerprint(rec, total):
    """A short hash of what makes a run: the start ``z``, the targets, the number of iterations
    and the optimiser's kind (a backup of another run is refused rather than resumed)."""
    h = hashlib.sha256()
    for arr in [rec.z0, *rec.target_arrays()]:
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(f"{int(total)} {type(rec.optimizer).__name__}".encode())
    return h.hexdigest()[:16]


class BackupAndRestore(keras.callbacks.Callback):
    """Back a run up every ``save_freq`` iterations into ``backup_dir``; resume from it.

    Args:
        backup_dir: the directory of the backup (created when needed).
        save_freq: iterations between backups (a positive int, or ``"epoch"`` = 1).
        delete_checkpoint: delete the backup when the run completes (not after an error or an
            interrupt: then the next run resumes from it).
        verbose: say when a run resumes.
    """

    def __init__(self, backup_dir, save_freq=1, delete_checkpoint=True, verbose=True):
        super().__init__()
        if save_freq == "epoch":
            save_freq = 1
        if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1:
            raise ValueError(f"save_freq: expected a positive number of iterations or "
                             f"'epoch', got {save_freq!r}")
        self.backup_dir = check_output_dir(backup_dir, "backup_dir")
        self.save_freq, self.delete_checkpoint = save_freq, bool(delete_checkpoint)
        self.verbose = verbose
        self.path = os.path.join(self.backup_dir, STATE_FILE)

    def on_train_begin(self, logs=None):
        self.fingerprint = run_fingerprint(self.model, self.params.get("epochs"))
        if not os.path.exists(self.path):
            return
        arrays, meta = self.read()
        if meta.get("fingerprint") != self.fingerprint:
            raise ValueError(f"backup_dir: {self.backup_dir} holds the backup of another run "
                             "(other targets, start, iterations or optimiser); delete it or "
                             "choose another directory")
        self.model.set_run_state(arrays)
        self.model.history.history = {k: list(v) for k, v in meta["history"].items()}
        self.model.history.epoch = list(range(self.model.initial_epoch))
        if self.verbose:
            print(f"resuming from iteration {self.model.initial_epoch} ({self.path})",
                  flush=True)

    def read(self):
        try:
            with np.load(self.path) as data:
                arrays = {k: data[k] for k in data.files if k != "__meta__"}
                meta = json.loads(str(data["__meta__"]))
        except Exception as e:  # noqa: BLE001  (a truncated or foreign file)
            raise ValueError(f"backup_dir: {self.path} is not a readable keras-icnn backup "
                             f"({type(e).__name__}: {e}); delete it to start afresh") from None
        return arrays, meta

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.save_freq == 0:
            self.save(epoch, logs or {})

    def history_until(self, epoch, logs):
        """The History up to and including ``epoch`` (its own ``on_epoch_end`` may come after
        this callback's)."""
        hist = self.model.history
        history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        if len(hist.epoch) <= epoch:
            for k, v in logs.items():
                history.setdefault(k, []).append(float(v))
        return history

    def save(self, epoch, logs):
        history = self.history_until(epoch, logs)
        meta = json.dumps({"fingerprint": self.fingerprint, "history": history,
                           "iterations_run": int(self.model.iterations_run)})
        arrays = self.model.get_run_state()
        with atomic_path(self.path, suffix=".npz", makedirs=True) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, __meta__=np.asarray(meta), **arrays)

    def on_train_end(self, logs=None):
        if self.model.run_failed or not self.delete_checkpoint:
            return
        if os.path.exists(self.path):
            os.remove(self.path)
        try:
            os.rmdir(self.backup_dir)  # only if nothing else is in it
        except OSError:
            pass
