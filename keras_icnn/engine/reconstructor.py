"""``Reconstructor``: the Keras-style entry point; its ``fit`` owns the one iteration loop.

    rec = Reconstructor(encoder, optimizer="gd")          # or "lbfgs", "adam", MomentumGD(...)
    history = rec.fit(features, iterations=200)          # {layer: target features}
    rec.images          # float32 RGB 0-255 [N, H, W, 3]
    rec.images_uint8    # clipped to 0-255, uint8

*What is optimised* (``param``: pixels, or a generator's latent) and *how* (``optimizer``:
momentum GD, any Keras optimiser, L-BFGS) are independent choices.  Per iteration the loop
calls the callbacks' ``on_epoch_begin``, the optimiser's ``step`` (one update of ``z``), checks
the step (NaN/Inf, a zero gradient at the start), records the per-image loss and calls
``on_epoch_end``; it stops after ``iterations``, when a callback sets ``stop_training`` or when
the optimiser has nothing left to do.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import config, imaging, models, optimizers, presets
from keras_icnn.engine import settings
from keras_icnn.engine.callbacks import PrintLoss, ProgressBar
from keras_icnn.errors import NonFiniteLossError, ZeroGradientError
from keras_icnn.objective import losses, targets as targets_mod
from keras_icnn.objective.objective import Objective

__all__ = ["Reconstructor"]


class Reconstructor:
    """Reconstruct images whose ``encoder`` features match target features.

    Args:
        encoder: a Keras model taking ``[N, H, W, 3]`` images in Caffe space (BGR minus mean,
            0-255), e.g. :func:`keras_icnn.models.vgg19`; any model whose layers' outputs are the
            features (see :func:`keras_icnn.models.expose_preactivations` for pre-activations).
        param: ``"pixels"`` (default: unbounded with momentum GD, kept in the valid 0-255
            range with L-BFGS, as the original functions did), or a
            :class:`keras_icnn.params.Param` (``Pixels(bounds=...)``, ``Generator(...)``).
        optimizer: ``"gd"`` (default: momentum GD with the original's settings, those of
            ``icnn_gd`` for pixels and of ``icnn_dgn_gd`` for a generator), ``"lbfgs"``
            (batched, in TensorFlow), ``"lbfgs-b"`` (scipy, the original's), a Keras optimiser
            (``keras.optimizers.AdamW(...)``, or its name), or an optimiser instance (see
            :func:`keras_icnn.optimizers.get`).
        loss: feature loss name or callable, or a dict of those per layer.
        layer_weight: ``None`` or ``"equal"`` (equal, summing to 1), ``"inverse_norm"`` (the
            paper's ``1/||f||^2`` normalised, per image) or ``{layer: weight}``.
        mask, channel: per-layer unit masks / channel lists (see
            :func:`keras_icnn.objective.targets.create_feature_masks`).
        priors: :class:`keras_icnn.priors.Prior` objects (p-norm, total variation).
        mean: the Caffe mean (BGR) of the encoder's input space.
        data_format: layout of the target features: ``"auto"``, ``"channels_last"``,
            ``"channels_first"`` (Caffe), or a dict per layer.
        seed: seed of the random initial image(s).
        initial: the default start of :meth:`fit` (see the parameterisation's ``initial``).
        precision: ``"float32"`` (default, exact), ``"mixed_bfloat16"`` or ``"mixed_float16"``:
            the encoder (and a generator) compute in bfloat16/float16 on their own float32
            variables, left unchanged; ``z``, the loss and the optimiser's state stay float32
            (see :mod:`keras_icnn.models.precision`; float16 scales the gradient itself).
    """

    def __init__(self, encoder, param="pixels", optimizer="gd", loss="l2", layer_weight=None,
                 mask=None, channel=None, priors=(), mean=None, data_format="auto", seed=None,
                 initial=None, precision="float32"):
        self.encoder, self.image_shape = settings.check_encoder(encoder)
        self.precision = models.precision.check_precision(precision)
        self.optimizer = optimizers.get(optimizer, space=settings.space_of(param))
        self.param = settings.as_param(param, self.optimizer.default_pixel_bounds)
        self.loss = settings.check_loss(loss)
        self.layer_weight = layer_weight
        self.mask, self.channel = mask, channel
        self.priors = settings.check_priors(priors)
        self.mean = imaging.as_mean(mean)
        self.data_format = data_format
        self.seed, self.initial = settings.check_seed(seed), initial
        self.param.build(self.image_shape, self.mean)
        self.stop_training = False
        self.z = self.history = self.loss_history_ = self.objective = None
        self.iterations_run = self.initial_epoch = 0
        self.run_failed = False
        self._extractors = {}
        self._twin = None

    # -- configs ----------------------------------------------------------------------------
    def get_config(self):
        """Every setting, as plain JSON values (the encoder and generator models are not in it:
        :meth:`from_config` takes them)."""
        return config.check_plain({
            "param": config.serialize(self.param), "optimizer": config.serialize(self.optimizer),
            "loss": losses.serialize(self.loss), "layer_weight": settings.plain(self.layer_weight),
            "mask": settings.plain(self.mask), "channel": settings.plain(self.channel),
            "priors": [config.serialize(p) for p in self.priors],
            "mean": [float(v) for v in self.mean], "data_format": self.data_format,
            "seed": self.seed, "initial": settings.plain(self.initial),
            "precision": self.precision}, "Reconstructor config")

    @classmethod
    def from_config(cls, cfg, encoder, generator=None):
        """The Reconstructor ``cfg`` (from :meth:`get_config`) describes, on ``encoder`` (and
        ``generator`` when it optimises a generator's input)."""
        return cls(encoder, **settings.from_config(cfg, generator))

    @classmethod
    def from_preset(cls, name, encoder, generator=None, latent_upper=None, **overrides):
        """A Reconstructor with the published settings ``name`` (see :mod:`keras_icnn.presets`);
        ``latent_upper`` gives the per-unit upper bounds (a path or an array) of presets that
        need them; ``overrides`` replace any other constructor argument."""
        cfg = settings.preset_config(presets.get(name), latent_upper)
        return cls(encoder, **{**settings.from_config(cfg, generator), **overrides})

    # -- Keras callback protocol ------------------------------------------------------------
    def get_weights(self):
        return [] if self.z is None else [self.z.numpy()]

    def set_weights(self, weights):
        if self.z is not None and weights:
            self.z.assign(weights[0])

    # -- the job ------------------------------------------------------------------------------
    def _extractor(self, layers):
        """``image -> {layer: float32 features}``, one per set of layers; under a reduced
        precision the encoder's twin (built once) computes them."""
        key = tuple(layers)
        if key not in self._extractors:
            if self.precision == "float32":
                self._extractors[key] = models.feature_extractor(self.encoder, layers)
            else:
                if self._twin is None:
                    self._twin = models.precision.low_precision_twin(self.encoder,
                                                                     self.precision)
                self._extractors[key] = models.precision.Float32Boundary(
                    models.feature_extractor(self._twin, layers), self.precision)
        return self._extractors[key]

    def build_objective(self, features):
        """Validate ``features`` and return ``(objective, n_images)``."""
        tgt, layouts = targets_mod.prepare_targets(features, self.encoder, self.data_format)
        masks = targets_mod.create_feature_masks(tgt, self.mask, self.channel, layouts)
        weights = targets_mod.layer_weights(tgt, self.layer_weight, masks)
        floss = losses.FeatureLoss(tgt, weights, masks, self.loss)
        objective = Objective(self.param, self._extractor(list(tgt)), floss, self.priors,
                              image=self.param.compute_image(self.precision))
        return objective, len(next(iter(tgt.values())))

    def _reuse(self, objective):
        """The objective of the last fit, holding the new targets, when nothing else changed
        (so that the optimiser's compiled step is reused: no retracing); else ``objective``."""
        last = getattr(self, "objective", None)
        if last is not None and last.extractor is objective.extractor and \
                last.feature_loss.signature() == objective.feature_loss.signature():
            last.feature_loss.assign(objective.feature_loss)
            return last
        return objective

    def fit(self, features, iterations=None, initial=None, callbacks=None, verbose=1):
        """Reconstruct one image per target.

        Args:
            features: ``{layer: array}`` target features (pre-ReLU for the paper's VGG19 layers),
                channels-last or Caffe channels-first, with or without a batch axis.
            iterations: number of iterations (the optimiser's default if None).
            initial: the start (the constructor's ``initial`` if None): see the
                parameterisation's ``initial`` (pixels: ``"random"``, ``"mean"`` or RGB 0-255
                images).
            callbacks: Keras callbacks; one epoch = one iteration.
                :class:`keras_icnn.BackupAndRestore` makes the run resumable.
            verbose: 0 silent, 1 progress bar, 2 one line per iteration.

        Returns:
            a ``keras.callbacks.History`` with ``loss`` (feature loss, mean over images),
            ``<layer>_loss`` (weighted per-layer losses), the optimiser's quantities and, with
            priors, ``total_loss``.  ``loss_history_`` holds the loss per iteration and image.
        """
        cbs = settings.check_callbacks(callbacks)
        objective, n = self.build_objective(features)
        total = settings.check_iterations(self.optimizer.iterations if iterations is None
                                          else iterations)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
        start = self.initial if initial is None else initial
        z0 = self.param.project_initial(self.param.initial(n, start, self.seed))
        with self.optimizer.claimed():
            self._fit(objective, z0, total, cbs, verbose)
        return self.history

    def _fit(self, objective, z0, total, cbs, verbose):
        self.objective, self.z0, n = self._reuse(objective), z0, len(z0)
        if self.z is not None and tuple(self.z.shape) == self.z0.shape:
            self.z.assign(self.z0)  # the optimiser's compiled step keeps serving
        else:
            self.z = tf.Variable(self.z0, name="z")
        self.optimizer.build(self.objective, self.z, total)
        cblist = self._callbacks(cbs, verbose, total)
        self._run(cblist, total, n)

    def _callbacks(self, callbacks, verbose, total):
        cbs = settings.check_callbacks(callbacks)
        if verbose == 1 and not any(isinstance(c, ProgressBar) for c in cbs):
            cbs.append(ProgressBar())
        elif verbose == 2 and not any(isinstance(c, PrintLoss) for c in cbs):
            cbs.append(PrintLoss())
        cblist = keras.callbacks.CallbackList(cbs, add_history=True, model=self, epochs=total,
                                              steps=1, verbose=verbose)
        self.history = next(c for c in cblist.callbacks
                            if isinstance(c, keras.callbacks.History))
        return cblist

    def _run(self, cblist, total, n):
        self.stop_training, self.run_failed = False, True
        self.iterations_run = self.initial_epoch = 0
        self._losses = []
        cblist.on_train_begin()  # a BackupAndRestore may restore a saved state here
        try:
            self._loop(cblist, total)
            self.run_failed = False
        finally:
            self.optimizer.finish()
            self.loss_history_ = (np.stack(self._losses) if self._losses
                                  else np.zeros((0, n), np.float32))
            cblist.on_train_end()

    def _loop(self, cblist, total):
        if self.initial_epoch == 0:
            self._check(*self.optimizer.start_check(), t=-1)
        for t in range(self.initial_epoch, total):
            if not self.optimizer.has_next():  # every image converged
                break
            cblist.on_epoch_begin(t)
            report = self.optimizer.step(t)
            self._check(report.finite, report.zero_gradient if t == 0 else None, t)
            self._losses.append(np.asarray(report.loss, np.float32))
            self.iterations_run = t + 1
            cblist.on_epoch_end(t, report.logs)
            if self.stop_training:
                break

    @staticmethod
    def _check(finite, zero_gradient, t):
        """NaN/Inf (``t + 1``: the iteration, 0 for the start) or a zero gradient at the
        start: errors."""
        if not finite:
            raise NonFiniteLossError(t + 1)
        if zero_gradient is not None and np.any(zero_gradient):
            raise ZeroGradientError(np.flatnonzero(zero_gradient).tolist())

    # -- the state of a run (for checkpoints) -------------------------------------------------
    def target_arrays(self):
        """The current run's target features (NumPy arrays, in layer order)."""
        floss = self.objective.feature_loss
        return [np.asarray(floss.targets[k]) for k in floss.layers]

    def get_run_state(self):
        """Everything a run carries from one iteration to the next: ``z``, the optimiser's
        state, the iterations done and the per-image losses so far (NumPy arrays)."""
        n = int(self.z.shape[0])
        state = {"z": self.z.numpy(), "iterations_run": np.asarray(self.iterations_run),
                 "losses": np.asarray(self._losses, np.float32).reshape(-1, n)}
        state.update({f"optimizer/{k}": v for k, v in self.optimizer.get_state().items()})
        return state

    def set_run_state(self, state):
        """Continue from :meth:`get_run_state`'s arrays (inside ``fit``, before the loop)."""
        if tuple(state["z"].shape) != tuple(self.z.shape):
            raise ValueError(f"run state: z of shape {tuple(state['z'].shape)} does not fit "
                             f"this run's {tuple(self.z.shape)}")
        self.z.assign(state["z"])
        self.optimizer.set_state({k[10:]: v for k, v in state.items()
                                  if k.startswith("optimizer/")})
        self.iterations_run = self.initial_epoch = int(state["iterations_run"])
        self._losses = list(np.asarray(state["losses"], np.float32))

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
