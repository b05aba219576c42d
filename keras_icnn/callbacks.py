"""Side effects of a run, as Keras callbacks: progress, printed losses, image snapshots.

:meth:`keras_icnn.Reconstructor.fit` drives ``keras.callbacks.CallbackList``: one Keras *epoch*
is one iteration of the reconstruction, so ``History``, ``EarlyStopping``, ``TensorBoard`` and
any user callback work as in ``model.fit``.  ``self.model`` is the Reconstructor; its
``images`` property gives the current reconstructions (RGB 0-255).
"""
from __future__ import annotations

import os
import time

import keras

from .io import save_image

__all__ = ["ProgressBar", "PrintLoss", "Snapshot", "IterationTimer"]


class ProgressBar(keras.callbacks.Callback):
    """A ``keras.utils.Progbar`` over iterations showing the loss (and per-layer losses)."""

    def __init__(self, show_layers=False):
        super().__init__()
        self.show_layers = show_layers
        self._bar = None

    def on_train_begin(self, logs=None):
        self._bar = keras.utils.Progbar(self.params.get("epochs"), unit_name="iteration")

    def on_epoch_end(self, epoch, logs=None):
        keys = [k for k in (logs or {}) if k in ("loss", "total_loss") or
                (self.show_layers and k.endswith("_loss"))]
        self._bar.stateful_metrics.update(keys)  # show current values, not running means
        self._bar.update(epoch + 1, [(k, float(logs[k])) for k in keys], finalize=False)

    def on_train_end(self, logs=None):
        if self._bar is not None:  # close the bar, also after an early stop
            self._bar.update(self._bar._seen_so_far, finalize=True)


class PrintLoss(keras.callbacks.Callback):
    """Prints ``iter=N; err=LOSS;`` every ``every`` iterations, as the original did."""

    def __init__(self, every=1):
        super().__init__()
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"disp_every: expected a positive integer, got {every!r}")
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            err = logs.get("total_loss", logs.get("loss"))
            print(f"iter={epoch + 1}; err={float(err):g};", flush=True)


class Snapshot(keras.callbacks.Callback):
    """Saves the current reconstructions every ``every`` iterations (the original's
    ``save_intermediate``): ``{directory}/{t:05d}.jpg`` (or ``{t:05d}_{i}.jpg`` for a batch).

    ``normalize``: ``"minmax"`` (the original's ``normalise_img``) or ``None`` (clip 0-255).
    ``save_initial``: also write ``initial_img.png`` before the first iteration.
    """

    def __init__(self, directory, every=1, normalize="minmax", ext=".jpg", save_initial=True):
        super().__init__()
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"save_intermediate_every: expected a positive integer, got {every!r}")
        if normalize not in ("minmax", None):
            raise ValueError(f"normalize: expected 'minmax' or None, got {normalize!r}")
        self.directory, self.every, self.normalize = os.fspath(directory), every, normalize
        self.ext, self.save_initial = ext, save_initial

    def _write(self, stem):
        images = self.model.images
        for i, img in enumerate(images):
            name = stem if len(images) == 1 else f"{stem}_{i}"
            initial = stem == "initial_img"
            save_image(os.path.join(self.directory, name + (".png" if initial else self.ext)),
                       img, normalize=None if initial else self.normalize)

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        if self.save_initial:
            self._write("initial_img")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._write(f"{epoch + 1:05d}")


class IterationTimer(keras.callbacks.Callback):
    """Measures seconds per iteration, not counting the first (which traces and compiles)."""

    def on_train_begin(self, logs=None):
        self._n, self._t0, self._t1 = 0, None, None

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        else:
            self._n, self._t1 = self._n + 1, now

    @property
    def per_iteration(self):
        """Mean seconds per iteration after the first (NaN with fewer than two iterations)."""
        return (self._t1 - self._t0) / self._n if self._n else float("nan")
