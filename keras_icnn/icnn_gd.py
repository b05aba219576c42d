"""Seed-compatible ``icnn_gd``: momentum gradient descent in pixel space.

``img, loss_list = reconstruct_image(features, net, **opts)`` with the original keyword names
and defaults; ``net`` is a Keras model (e.g. :func:`keras_icnn.models.vgg19`).
"""
from __future__ import annotations

from keras_icnn.engine import original
from keras_icnn.imaging import normalise_img
from keras_icnn.optimizers.momentum_gd import MomentumGD
from keras_icnn.optimizers.transforms import ClipExtreme, ClipSmallContribution, ClipSmallNorm, Decay, GaussianBlur
from keras_icnn.optimizers.jitter import Jitter
from keras_icnn.objective.priors import PNorm, TotalVariation

__all__ = ["reconstruct_image", "normalise_img", "build_optimizer", "build_priors"]


def build_optimizer(iter_n=200, lr_start=2., lr_end=1e-10, momentum_start=0.9, momentum_end=0.9,
                    decay_start=0.2, decay_end=1e-10, grad_normalize=True, image_jitter=False,
                    jitter_size=32, image_blur=True, sigma_start=2., sigma_end=0.5,
                    clip_extreme=False, clip_extreme_every=4, e_pct_start=1, e_pct_end=1,
                    clip_small_norm=False, clip_small_norm_every=4, n_pct_start=5.,
                    n_pct_end=5., clip_small_contribution=False, clip_small_contribution_every=4,
                    c_pct_start=5., c_pct_end=5., seed=None, jit_compile="auto"):
    """The :class:`MomentumGD` optimiser that the original keywords describe."""
    transforms = []
    if clip_extreme:
        transforms.append(ClipExtreme((e_pct_start, e_pct_end), clip_extreme_every))
    if clip_small_norm:
        transforms.append(ClipSmallNorm((n_pct_start, n_pct_end), clip_small_norm_every))
    if clip_small_contribution:
        transforms.append(ClipSmallContribution((c_pct_start, c_pct_end),
                                                clip_small_contribution_every))
    transforms.append(Decay((decay_start, decay_end)))
    if image_blur:
        transforms.append(GaussianBlur((sigma_start, sigma_end)))
    jitter = Jitter(jitter_size, seed=0 if seed is None else seed) if image_jitter else None
    return MomentumGD(learning_rate=(lr_start, lr_end), momentum=(momentum_start, momentum_end),
                      grad_normalize=grad_normalize, jitter=jitter, transforms=transforms,
                      iterations=iter_n, jit_compile=jit_compile)


def build_priors(use_p_norm_reg=False, p=3, lamda_start=0.5, lamda_end=0.5,
                 use_TV_norm_reg=False, TVbeta=2, TVlamda_start=0.5, TVlamda_end=0.5):
    """The image priors that the original keywords describe."""
    priors = []
    if use_p_norm_reg:
        priors.append(PNorm(p, (lamda_start, lamda_end)))
    if use_TV_norm_reg:
        priors.append(TotalVariation(TVbeta, (TVlamda_start, TVlamda_end)))
    return priors


def reconstruct_image(features, net, layer_weight=None, channel=None, mask=None,
                      initial_image=None, loss_type='l2', iter_n=200,
                      lr_start=2., lr_end=1e-10, momentum_start=0.9, momentum_end=0.9,
                      decay_start=0.2, decay_end=1e-10, grad_normalize=True,
                      image_jitter=False, jitter_size=32,
                      image_blur=True, sigma_start=2., sigma_end=0.5,
                      use_p_norm_reg=False, p=3, lamda_start=0.5, lamda_end=0.5,
                      use_TV_norm_reg=False, TVbeta=2, TVlamda_start=0.5, TVlamda_end=0.5,
                      clip_extreme=False, clip_extreme_every=4, e_pct_start=1, e_pct_end=1,
                      clip_small_norm=False, clip_small_norm_every=4, n_pct_start=5.,
                      n_pct_end=5., clip_small_contribution=False,
                      clip_small_contribution_every=4, c_pct_start=5., c_pct_end=5.,
                      disp_every=1, save_intermediate=False, save_intermediate_every=1,
                      save_intermediate_path=None, img_mean=None, seed=None,
                      data_format="auto", callbacks=None, verbose=None):
    """Reconstruct an image from CNN features by momentum gradient descent (original API).

    Beyond the original keywords: ``img_mean`` (BGR mean of the encoder's input space; Keras'
    by default), ``seed`` (initial noise and jitter), ``data_format`` of the features,
    Keras ``callbacks`` and ``verbose`` (None: print like the original every ``disp_every``).

    Returns ``(img, loss_list)``: float32 RGB ``[H, W, 3]`` (0-255 scale, not clipped) and the
    feature loss per iteration, float32 ``[iter_n]``.  A batch of N targets gives
    ``[N, H, W, 3]`` and ``[iter_n, N]``.
    """
    opt = build_optimizer(
        iter_n, lr_start, lr_end, momentum_start, momentum_end, decay_start, decay_end,
        grad_normalize, image_jitter, jitter_size, image_blur, sigma_start, sigma_end,
        clip_extreme, clip_extreme_every, e_pct_start, e_pct_end, clip_small_norm,
        clip_small_norm_every, n_pct_start, n_pct_end, clip_small_contribution,
        clip_small_contribution_every, c_pct_start, c_pct_end, seed)
    img, loss, _ = original.run(
        features, net, optimizer=opt, iterations=iter_n, initial=initial_image,
        layer_weight=layer_weight, channel=channel, mask=mask, loss_type=loss_type,
        priors=build_priors(use_p_norm_reg, p, lamda_start, lamda_end, use_TV_norm_reg,
                            TVbeta, TVlamda_start, TVlamda_end), disp_every=disp_every, save_intermediate=save_intermediate,
        save_intermediate_every=save_intermediate_every,
        save_intermediate_path=save_intermediate_path, prefix="icnn_gd", img_mean=img_mean,
        seed=seed, data_format=data_format, callbacks=callbacks, verbose=verbose)
    return img, loss
