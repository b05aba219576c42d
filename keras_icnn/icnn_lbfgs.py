"""Seed-compatible ``icnn_lbfgs``: L-BFGS-B in pixel space, pixels kept in the valid range.

``img, loss_list = reconstruct_image(features, net, **opts)`` with the original keyword names
and defaults; ``net`` is a Keras model (e.g. :func:`keras_icnn.models.vgg19`).
"""
from __future__ import annotations

import numpy as np

from keras_icnn.engine import original
from keras_icnn.imaging import normalise_img
from keras_icnn.optimizers import LBFGS, ScipyLBFGSB
from keras_icnn.params import Pixels

__all__ = ["reconstruct_image", "normalise_img", "build_optimizer", "evaluation_loss_list"]

_METHODS = ("scipy", "tfp")


def build_optimizer(maxiter=500, disp=True, method="scipy"):
    """The optimiser the original keywords describe: :class:`ScipyLBFGSB` (``method='scipy'``,
    the original) or the batched in-graph :class:`LBFGS`
    (``method='tfp'``, a name kept from 0.1, when it was TensorFlow Probability's)."""
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
    if method == "scipy":
        return ScipyLBFGSB(iterations=maxiter, disp=disp)
    return LBFGS(iterations=maxiter)


def reconstruct_image(features, net, layer_weight=None, channel=None, mask=None,
                      initial_image=None, loss_type='l2', maxiter=500, disp=True,
                      save_intermediate=False, save_intermediate_every=1,
                      save_intermediate_path=None, img_mean=None, seed=None,
                      data_format="auto", callbacks=None, verbose=None, method="scipy"):
    """Reconstruct an image from CNN features by L-BFGS-B (original API).

    Every pixel is kept in the valid range ``[-mean_c, 255 - mean_c]`` of the encoder's input
    space (:class:`keras_icnn.params.Pixels` with ``bounds='valid'``), as the original did; an
    ``initial_image`` outside 0-255 is clipped into it (with a warning).

    Beyond the original keywords: ``img_mean`` (BGR mean of the encoder's input space; Keras'
    by default), ``seed`` (the initial noise), ``data_format`` of the features, Keras
    ``callbacks``, ``verbose`` (None: with ``disp``, print ``iter=N; err=LOSS;`` every iteration
    and scipy's final message, like the original's ``disp``) and ``method``: ``'scipy'``
    (``scipy.optimize.minimize(method='L-BFGS-B')``, the original) or ``'tfp'`` (TensorFlow
    Probability's L-BFGS, see :class:`keras_icnn.lbfgs.LBFGS`).  Intermediate images
    (``save_intermediate``) are saved per iteration, not per objective evaluation.

    Returns ``(img, loss_list)``: float32 RGB ``[H, W, 3]`` (0-255 scale) and, as the original,
    with ``method='scipy'`` the loss at every objective evaluation (float32 ``[nfev]``; scipy
    evaluates more than once in some iterations), with ``method='tfp'`` the loss per iteration
    (float32 ``[iterations run]``).  A batch of N targets gives ``[N, H, W, 3]`` and, for scipy,
    a list of N such arrays (``[iterations run, N]`` for tfp).
    """
    opt = build_optimizer(maxiter, disp if verbose is None else False, method)
    img, loss, _ = original.run(
        features, net, param=Pixels(bounds="valid"), optimizer=opt, iterations=maxiter,
        initial=initial_image, layer_weight=layer_weight, channel=channel, mask=mask,
        loss_type=loss_type, disp_every=1 if disp else 0, save_intermediate=save_intermediate,
        save_intermediate_every=save_intermediate_every,
        save_intermediate_path=save_intermediate_path, prefix="icnn_lbfgs", img_mean=img_mean,
        seed=seed, data_format=data_format, callbacks=callbacks, verbose=verbose)
    return img, evaluation_loss_list(opt, img, loss)


def evaluation_loss_list(opt, img, loss):
    """The original's ``loss_list`` for a scipy run: the loss at every objective evaluation
    (a list of N arrays for a batch); for an :class:`LBFGS` run, ``loss`` (per iteration) unchanged."""
    if not isinstance(opt, ScipyLBFGSB):
        return loss
    per_image = [np.asarray(e, np.float32) for e in opt.evaluation_losses_]
    return per_image[0] if np.ndim(img) == 3 else per_image
