"""Shared plumbing of the four original-compatible ``reconstruct_image`` functions (``icnn_gd`` ...)."""
from __future__ import annotations

import os
from datetime import datetime

import numpy as np

from keras_icnn.engine.callbacks import PrintLoss, Snapshot
from keras_icnn.engine.reconstructor import Reconstructor


def run(features, net, *, param="pixels", optimizer, iterations, initial, layer_weight,
        channel, mask, loss_type, priors=(), disp_every=1, save_intermediate=False,
        save_intermediate_every=1, save_intermediate_path=None, prefix="icnn", img_mean=None,
        seed=None, data_format="auto", callbacks=None, verbose=None):
    """Run a Reconstructor the way the original functions did; return ``(img, loss_list, rec)``.

    ``img`` is float32 RGB ``[H, W, 3]`` (``[N, H, W, 3]`` for a batch of targets);
    ``loss_list`` float32 ``[iterations]`` (``[iterations, N]`` for a batch).  When the run
    diverges (:class:`~keras_icnn.errors.NonFiniteLossError`) or is interrupted (Ctrl-C), the
    exception carries the partial result as ``error.result = (img, loss_list)``: the last
    finite image and the losses of the iterations done.
    """
    rec = Reconstructor(net, param=param, optimizer=optimizer, loss=loss_type,
                        layer_weight=layer_weight, mask=mask, channel=channel, priors=priors,
                        mean=img_mean, data_format=data_format, seed=seed)
    cbs = list(callbacks or [])
    if save_intermediate:
        if save_intermediate_path is None:
            save_intermediate_path = os.path.join(
                ".", f"recon_img_by_{prefix}_" + datetime.now().strftime("%Y%m%dT%H%M%S"))
        cbs.append(Snapshot(save_intermediate_path, every=save_intermediate_every))
    if verbose is None:
        verbose = 0
        if disp_every:
            cbs.append(PrintLoss(disp_every))
    try:
        rec.fit(features, iterations=iterations, initial=initial, callbacks=cbs,
                verbose=verbose)
    except (FloatingPointError, KeyboardInterrupt) as e:  # keep what was computed
        if rec.z is not None:
            e.result = result(rec)
        raise
    return (*result(rec), rec)


def result(rec):
    """``(img, loss_list)`` as the original functions returned them (the last finite image)."""
    img, loss = rec.images, rec.loss_history_.astype(np.float32)
    if img.shape[0] == 1:
        img, loss = img[0], loss[:, 0]
    return img, loss
