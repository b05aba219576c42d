"""Seed-compatible ``icnn_dgn_lbfgs``: L-BFGS-B on a generator's input, within its bounds.

``img, loss_list = reconstruct_image(features, net, net_gen, **opts)`` with the original
keywords and defaults; ``net`` and ``net_gen`` are Keras models.
"""
from __future__ import annotations

import numpy as np

from keras_icnn.engine import original
from keras_icnn.icnn_dgn_gd import generator_param
from keras_icnn.icnn_lbfgs import build_optimizer, evaluation_loss_list
from keras_icnn.imaging import normalise_img

__all__ = ["reconstruct_image", "normalise_img", "bounds_from_pairs"]


def bounds_from_pairs(gen_feat_bounds):
    """The original's ``gen_feat_bounds`` — ``(min, max)`` per unit, None or +-inf meaning no
    bound — as ``(lower, upper)`` arrays (``None``: the original default ``(0, 100)``)."""
    if gen_feat_bounds is None:
        return 0.0, 100.0
    try:
        pairs = np.array([[-np.inf if lo is None else lo, np.inf if hi is None else hi]
                          for lo, hi in gen_feat_bounds], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("gen_feat_bounds: expected a (min, max) pair per unit of the "
                         "generator's input") from None
    return pairs[:, 0], pairs[:, 1]


def reconstruct_image(features, net, net_gen, layer_weight=None, channel=None, mask=None,
                      initial_gen_feat=None, gen_feat_bounds=None, input_layer_gen=None,
                      output_layer_gen=None, loss_type='l2', maxiter=500, disp=True,
                      save_intermediate=False, save_intermediate_every=1,
                      save_intermediate_path=None, feat_upper_bound=None, feat_lower_bound=None,
                      return_gen_feat=False, img_mean=None, seed=None, data_format="auto",
                      callbacks=None, verbose=None, method="scipy"):
    """Reconstruct an image by L-BFGS-B on a generator's input (original API).

    Bounds: ``gen_feat_bounds`` as the original (``(min, max)`` per unit; default ``(0, 100)``),
    or ``feat_lower_bound``/``feat_upper_bound`` (numbers, arrays or an ``act_range`` file) as
    in ``icnn_dgn_gd``; a side not given keeps its default (0 below, 100 above).  ``initial_gen_feat``: None (N(0, 1), clipped into the bounds: the
    original started outside them and scipy stopped at iteration 0, "initial X infeasible"),
    ``"zeros"`` or a latent.  ``method``: ``'scipy'`` (the original) or ``'tfp'`` (the
    batched in-graph :class:`LBFGS`).

    Returns ``(img, loss_list)`` (``loss_list`` as in :func:`keras_icnn.icnn_lbfgs.
    reconstruct_image`), or ``(img, loss_list, gen_feat)`` with ``return_gen_feat``.
    """
    lower, upper = bounds_from_pairs(gen_feat_bounds)
    if feat_lower_bound is not None or feat_upper_bound is not None:
        if gen_feat_bounds is not None:
            raise ValueError("give either gen_feat_bounds or feat_lower_bound/feat_upper_bound")
        lower = 0.0 if feat_lower_bound is None else feat_lower_bound
        upper = 100.0 if feat_upper_bound is None else feat_upper_bound
    param = generator_param(net_gen, upper, lower, input_layer_gen, output_layer_gen)
    opt = build_optimizer(maxiter, disp if verbose is None else False, method)
    img, loss, rec = original.run(
        features, net, param=param, optimizer=opt, iterations=maxiter, initial=initial_gen_feat,
        layer_weight=layer_weight, channel=channel, mask=mask, loss_type=loss_type,
        disp_every=1 if disp else 0, save_intermediate=save_intermediate,
        save_intermediate_every=save_intermediate_every,
        save_intermediate_path=save_intermediate_path, prefix="icnn_dgn_lbfgs",
        img_mean=img_mean, seed=seed, data_format=data_format, callbacks=callbacks,
        verbose=verbose)
    loss = evaluation_loss_list(opt, img, loss)
    if return_gen_feat:
        z = rec.z.numpy()
        return img, loss, (z[0] if len(z) == 1 else z)
    return img, loss
