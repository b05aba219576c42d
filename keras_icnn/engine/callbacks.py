"""Side effects of a run, as Keras callbacks: progress, printed losses, image snapshots,
reconstructions in TensorBoard.

:meth:`keras_icnn.Reconstructor.fit` drives ``keras.callbacks.CallbackList``: one Keras *epoch*
is one iteration of the reconstruction, so ``History``, ``EarlyStopping``, ``TensorBoard`` and
any user callback work as in ``model.fit``.  ``self.model`` is the Reconstructor; its
``images`` property gives the current reconstructions (RGB 0-255).
"""
from __future__ import annotations

import os
import time

import keras

from keras_icnn.validation import positive_int
from keras_icnn.io import save_image
from keras_icnn.io.paths import check_output_dir

__all__ = ["ProgressBar", "PrintLoss", "Snapshot", "IterationTimer", "TensorBoardImages"]


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
        self.every = positive_int(every, "disp_every")

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
        every = positive_int(every, "save_intermediate_every")
        if ext not in (".jpg", ".jpeg", ".png"):
            raise ValueError(f"ext: expected '.jpg', '.jpeg' or '.png', got {ext!r}")
        if normalize not in ("minmax", None):
            raise ValueError(f"normalize: expected 'minmax' or None, got {normalize!r}")
        self.directory = check_output_dir(directory, "save_intermediate_path")
        self.every, self.normalize = every, normalize
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


class TensorBoardImages(keras.callbacks.Callback):
    """Writes the current reconstructions to TensorBoard every ``every`` iterations.

    Use it next to ``keras.callbacks.TensorBoard(log_dir)`` with the same ``log_dir``::

        rec.fit(features, callbacks=[keras.callbacks.TensorBoard(log_dir),
                                     TensorBoardImages(log_dir, every=10, target_images=img)])

    and start ``tensorboard --logdir log_dir``.  Keras' callback writes the scalars
    (``epoch_loss``, ``epoch_<layer>_loss``, ``epoch_learning_rate``, ...) into the run
    ``log_dir/train``; this callback writes its images into its own run, ``log_dir/images``
    (``subdir``), so that two writers never append to the same directory at once.  In
    TensorBoard's *Images* tab the run ``images`` holds:

    * ``reconstruction``: up to ``max_images`` images of the batch, at step ``k`` = the number
      of iterations done: step 0 is the initial image, then every ``every`` iterations, and
      the last iteration's image always (also after an early stop).  (Keras' scalars use the
      0-based iteration index: the scalar at step ``k - 1`` belongs to the image at step ``k``.)
    * ``target``: ``target_images`` (RGB 0-255 ``[N, H, W, 3]`` or one ``[H, W, 3]``, e.g.
      the photos whose features are the targets), once, at step 0, for comparison.

    Images are RGB 0-255 floats (``self.model.images``) turned into uint8 for display:
    ``normalize="minmax"`` (per image, min -> 0 and max -> 255: the original's
    ``normalise_img``, as :class:`Snapshot`) or ``None`` (clip to 0-255 and round).
    The writer is flushed after every write, so a running TensorBoard shows the images as
    they come.
    """

    def __init__(self, log_dir, every=10, target_images=None, max_images=4, normalize="minmax",
                 subdir="images"):
        super().__init__()
        if not isinstance(subdir, str) or not subdir:
            raise ValueError(f"subdir: expected a non-empty directory name, got {subdir!r}")
        check_output_dir(os.path.join(check_output_dir(log_dir, "log_dir"), subdir), "log_dir")
        every, max_images = positive_int(every, "every"), positive_int(max_images, "max_images")
        if normalize not in ("minmax", None):
            raise ValueError(f"normalize: expected 'minmax' or None, got {normalize!r}")
        self.log_dir, self.every, self.max_images = os.fspath(log_dir), every, max_images
        self.normalize, self.subdir = normalize, subdir
        self.target_images = None if target_images is None else \
            self._display(target_images, "target_images")
        self._writer = None
        self._last_step = None

    @property
    def images_dir(self):
        """The run directory the images are written to: ``log_dir/subdir``."""
        return os.path.join(self.log_dir, self.subdir)

    def _display(self, images, name):
        import numpy as np

        from keras_icnn.imaging import as_images, normalise_img, to_uint8
        x, _ = as_images(images, name)  # RGB, real, finite; [N, H, W, 3]
        if x.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one image")
        x = x.astype(np.float64)[:self.max_images]
        if self.normalize == "minmax":
            return np.stack([normalise_img(i) for i in x])
        return to_uint8(x)

    def _write(self, tag, images, step, description):
        import tensorflow as tf
        with self._writer.as_default():
            tf.summary.image(tag, images, step=step, max_outputs=self.max_images,
                             description=description)
        self._writer.flush()

    def _write_reconstruction(self, step):
        if step == self._last_step:
            return
        self._last_step = step
        self._write("reconstruction", self._display(self.model.images, "images"), step,
                    f"the current reconstructions (first {self.max_images}), step = iterations "
                    f"done, normalize={self.normalize}")

    def on_train_begin(self, logs=None):
        import tensorflow as tf
        os.makedirs(self.images_dir, exist_ok=True)
        self._writer = tf.summary.create_file_writer(self.images_dir)
        self._last_step = None
        if self.target_images is not None:
            self._write("target", self.target_images, 0,
                        f"the target images (first {self.max_images}), normalize={self.normalize}")
        self._write_reconstruction(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._write_reconstruction(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is None:
            return
        try:
            done = getattr(self.model, "iterations_run", None)
            if done:
                self._write_reconstruction(int(done))
        finally:
            self._writer.close()
            self._writer = None
