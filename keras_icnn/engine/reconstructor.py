"""``Reconstructor``: the Keras-style entry point that ties the pieces together.

    rec = Reconstructor(encoder, optimizer="gd")          # or "lbfgs", MomentumGD(...), ...
    history = rec.fit(features, iterations=200)          # {layer: target features}
    rec.images          # float32 RGB 0-255 [N, H, W, 3]
    rec.images_uint8    # clipped to 0-255, uint8

*What is optimised* (``param``: pixels, or a generator's latent) and *how* (``optimizer``:
momentum GD, L-BFGS) are independent choices.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import imaging, models, optimizers
from keras_icnn.validation import positive_int
from keras_icnn.objective import losses, targets as targets_mod
from keras_icnn.engine.callbacks import PrintLoss, ProgressBar
from keras_icnn.objective.objective import Objective
from keras_icnn.params import Param, Pixels
from keras_icnn.objective.priors import Prior

__all__ = ["Reconstructor"]


class _Loop:
    """Turns an optimiser's per-iteration reports into Keras callback events."""

    def __init__(self, rec, callbacks):
        self.rec, self.callbacks, self.per_image = rec, callbacks, []

    def begin(self, t):
        self.callbacks.on_epoch_begin(t)

    def end(self, t, logs, per_image_loss):
        self.per_image.append(np.asarray(per_image_loss, dtype=np.float32))
        self.rec.iterations_run = t + 1
        self.callbacks.on_epoch_end(t, logs)
        return bool(self.rec.stop_training)


class Reconstructor:
    """Reconstruct images whose ``encoder`` features match target features.

    Args:
        encoder: a Keras model taking ``[N, H, W, 3]`` images in Caffe space (BGR minus mean,
            0-255), e.g. :func:`keras_icnn.models.vgg19`; any model whose layers' outputs are the
            features (see :func:`keras_icnn.models.expose_preactivations` for pre-activations).
        param: ``"pixels"`` (default: unbounded with momentum GD, kept in the valid 0-255
            range with L-BFGS, as the original functions did), or a
            :class:`keras_icnn.params.Param` (``Pixels(bounds=...)``, ``Generator(...)``).
        optimizer: ``"gd"`` (default: :class:`keras_icnn.optimizers.MomentumGD` with the
            original's settings, those of ``icnn_gd`` for pixels and of ``icnn_dgn_gd`` for a
            generator), ``"lbfgs"`` (TensorFlow Probability), ``"lbfgs-b"`` (scipy, the
            original's), or an optimiser instance (see :func:`keras_icnn.optimizers.get`).
        loss: feature loss name or callable, or a dict of those per layer.
        layer_weight: ``None`` (equal, summing to 1), ``"inverse_norm"`` (the paper's
            ``1/||f||^2`` normalised, per image) or ``{layer: weight}``.
        mask, channel: per-layer unit masks / channel lists (see
            :func:`keras_icnn.targets.create_feature_masks`).
        priors: :class:`keras_icnn.priors.Prior` objects (p-norm, total variation).
        mean: the Caffe mean (BGR) of the encoder's input space.
        data_format: layout of the target features: ``"auto"``, ``"channels_last"``,
            ``"channels_first"`` (Caffe), or a dict per layer.
        seed: seed of the random initial image(s).
    """

    def __init__(self, encoder, param="pixels", optimizer="gd", loss="l2", layer_weight=None,
                 mask=None, channel=None, priors=(), mean=None, data_format="auto", seed=None):
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"encoder: expected a keras.Model, got {type(encoder).__name__}")
        shape = tuple(encoder.input_shape[1:]) if not isinstance(encoder.input_shape, list) \
            else None
        if shape is None or len(shape) != 3 or shape[-1] != 3 or None in shape:
            raise ValueError(f"encoder: expected one image input of fixed shape (H, W, 3), got "
                             f"{encoder.input_shape}; build it with e.g. input_shape=(224, 224, 3)")
        self.encoder = encoder
        self.image_shape = shape
        self.optimizer = optimizers.get(
            optimizer, space="pixels" if isinstance(param, str) else getattr(param, "space", None))
        if isinstance(param, str):
            if param not in ("pixels", "pixel"):
                raise ValueError(f"param: expected 'pixels' or a keras_icnn.params.Param, got "
                                 f"{param!r}")
            param = Pixels(bounds=self.optimizer.default_pixel_bounds)
        if not isinstance(param, Param):
            raise ValueError(f"param: expected 'pixels' or a keras_icnn.params.Param, got "
                             f"{param!r}")
        self.param = param
        if isinstance(loss, str) or callable(loss):
            losses.get(loss)  # validate now
        self.loss = loss
        self.layer_weight = layer_weight
        self.mask, self.channel = mask, channel
        self.priors = [priors] if isinstance(priors, Prior) else list(priors)
        for p in self.priors:
            if not isinstance(p, Prior):
                raise ValueError(f"priors: expected keras_icnn.priors.Prior objects, got {p!r}")
        self.mean = imaging.as_mean(mean)
        self.data_format = data_format
        self.seed = seed
        self.param.build(self.image_shape, self.mean)
        self.stop_training = False
        self.z = None
        self.history = None
        self.loss_history_ = None
        self.iterations_run = 0
        self._extractors = {}

    # -- Keras callback protocol ------------------------------------------------------------
    def get_weights(self):
        return [] if self.z is None else [self.z.numpy()]

    def set_weights(self, weights):
        if self.z is not None and weights:
            self.z.assign(weights[0])

    # -- the job ------------------------------------------------------------------------------
    def _extractor(self, layers):
        key = tuple(layers)
        if key not in self._extractors:
            self._extractors[key] = models.feature_extractor(self.encoder, layers)
        return self._extractors[key]

    def build_objective(self, features):
        """Validate ``features`` and return ``(objective, n_images)``."""
        tgt, layouts = targets_mod.prepare_targets(features, self.encoder, self.data_format)
        masks = targets_mod.create_feature_masks(tgt, self.mask, self.channel, layouts)
        weights = targets_mod.layer_weights(tgt, self.layer_weight, masks)
        floss = losses.FeatureLoss(tgt, weights, masks, self.loss)
        objective = Objective(self.param, self._extractor(list(tgt)), floss, self.priors)
        return objective, len(next(iter(tgt.values())))

    def fit(self, features, iterations=None, initial=None, callbacks=None, verbose=1):
        """Reconstruct one image per target.

        Args:
            features: ``{layer: array}`` target features (pre-ReLU for the paper's VGG19 layers),
                channels-last or Caffe channels-first, with or without a batch axis.
            iterations: number of iterations (the optimiser's default if None).
            initial: the start: see the parameterisation's ``initial`` (pixels: ``"random"``,
                ``"mean"`` or RGB 0-255 images).
            callbacks: Keras callbacks; one epoch = one iteration.
            verbose: 0 silent, 1 progress bar, 2 one line per iteration.

        Returns:
            a ``keras.callbacks.History`` with ``loss`` (feature loss, mean over images),
            ``<layer>_loss`` (weighted per-layer losses), the optimiser's quantities and, with
            priors, ``total_loss``.  ``loss_history_`` holds the loss per iteration and image.
        """
        objective, n = self.build_objective(features)
        iterations = self.optimizer.iterations if iterations is None else iterations
        iterations = positive_int(iterations, "iterations")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
        z0 = self.param.project_initial(self.param.initial(n, initial, self.seed))
        self.z = tf.Variable(z0, name="z")
        cbs = ([callbacks] if isinstance(callbacks, keras.callbacks.Callback)
               else list(callbacks or []))
        if verbose == 1 and not any(isinstance(c, ProgressBar) for c in cbs):
            cbs.append(ProgressBar())
        elif verbose == 2 and not any(isinstance(c, PrintLoss) for c in cbs):
            cbs.append(PrintLoss())
        cblist = keras.callbacks.CallbackList(cbs, add_history=True, model=self,
                                              epochs=iterations, steps=1, verbose=verbose)
        self.stop_training = False
        self.iterations_run = 0
        loop = _Loop(self, cblist)
        cblist.on_train_begin()
        try:
            self.optimizer.minimize(objective, self.z, iterations, loop)
        finally:
            self.loss_history_ = (np.stack(loop.per_image) if loop.per_image
                                  else np.zeros((0, n), np.float32))
            self.history = next(c for c in cblist.callbacks
                                if isinstance(c, keras.callbacks.History))
            cblist.on_train_end()
        return self.history

    # -- results --------------------------------------------------------------------------------
    def _need_fit(self):
        if self.z is None:
            raise RuntimeError("no reconstruction yet: call fit(features) first")

    @property
    def caffe_images(self):
        """The current encoder input, Caffe space ``[N, H, W, 3]`` (BGR minus mean)."""
        self._need_fit()
        return np.asarray(self.param.image(self.z))

    @property
    def images(self):
        """The current reconstructions, RGB 0-255 float32 ``[N, H, W, 3]`` (not clipped)."""
        return imaging.caffe_to_rgb(self.caffe_images, self.mean)

    @property
    def images_uint8(self):
        """The current reconstructions clipped to 0-255 and rounded, uint8."""
        return imaging.to_uint8(self.images)
