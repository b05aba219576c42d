"""Side effects of a run, as Keras callbacks: progress, printed losses, image snapshots.

:meth:`keras_icnn.Reconstructor.fit` drives ``keras.callbacks.CallbackList``: one Keras *epoch*
is one iteration of the reconstruction, so ``History``, ``EarlyStopping``, ``TensorBoard`` and
any user callback work as in ``model.fit``.  ``self.model`` is the Reconstructor; its
``images`` property gives the current reconstructions (RGB 0-255).
"""
from __future__ import annotations

import os
import tempfile

import keras
import numpy as np

from . import imaging

__all__ = ["ProgressBar", "PrintLoss", "Snapshot", "save_png_atomic"]


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
        self._bar.update(epoch + 1, [(k, float(logs[k])) for k in keys], finalize=False)

    def on_train_end(self, logs=None):
        if self._bar is not None and self._bar._seen_so_far < (self._bar.target or 0):
            self._bar.update(self._bar._seen_so_far, finalize=True)
        elif self._bar is not None:
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


def save_png_atomic(path, img_uint8):
    """Write an image file so that a reader never sees a half-written one."""
    from PIL import Image
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    ext = os.path.splitext(path)[1] or ".png"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ext, dir=d)
    os.close(fd)
    try:
        Image.fromarray(np.asarray(img_uint8, dtype=np.uint8)).save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
        for i, img in enumerate(self.model.images):
            u8 = (imaging.normalise_img(img) if self.normalize and stem != "initial_img"
                  else imaging.to_uint8(img))
            name = stem if len(self.model.images) == 1 else f"{stem}_{i}"
            ext = ".png" if stem == "initial_img" else self.ext
            save_png_atomic(os.path.join(self.directory, name + ext), u8)

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        if self.save_initial:
            self._write("initial_img")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._write(f"{epoch + 1:05d}")
