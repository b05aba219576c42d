"""Seed-compatible ``icnn_dgn_gd``: momentum gradient descent on a generator's input.

``img, loss_list = reconstruct_image(features, net, net_gen, **opts)`` with the original
keywords and defaults; ``net`` and ``net_gen`` are Keras models (e.g.
:func:`keras_icnn.models.vgg19` and :func:`keras_icnn.generators.deepsim_fc7`).
"""
from __future__ import annotations

from keras_icnn.engine import original
from keras_icnn.imaging import normalise_img
from keras_icnn.optimizers.momentum_gd import MomentumGD
from keras_icnn.params import Generator
from keras_icnn.optimizers.transforms import Decay

__all__ = ["reconstruct_image", "normalise_img", "generator_param", "build_optimizer"]


def generator_param(net_gen, feat_upper_bound=100., feat_lower_bound=0., input_layer_gen=None,
                    output_layer_gen=None, preprocess=None, postprocess=None):
    """The :class:`keras_icnn.params.Generator` that the original keywords describe."""
    import keras
    if not isinstance(net_gen, keras.Model):
        raise ValueError(f"net_gen: expected a keras.Model, got {type(net_gen).__name__}")
    if input_layer_gen is not None and input_layer_gen not in {
            t.name.split(":")[0] for t in net_gen.inputs} | {
            l.name for l in net_gen.layers if isinstance(l, keras.layers.InputLayer)}:
        raise ValueError(f"input_layer_gen: {input_layer_gen!r} is not an input of the "
                         "generator; only the model's own input can be optimised")
    if output_layer_gen is not None:
        try:
            out = net_gen.get_layer(output_layer_gen).output
        except ValueError:
            raise ValueError(f"output_layer_gen: unknown layer {output_layer_gen!r}; the "
                             f"generator's layers are: "
                             f"{', '.join(l.name for l in net_gen.layers)}") from None
        net_gen = keras.Model(net_gen.inputs[0], out, name=net_gen.name)
    return Generator(net_gen, lower=feat_lower_bound, upper=feat_upper_bound,
                     preprocess=preprocess, postprocess=postprocess)


def build_optimizer(iter_n=200, lr_start=2., lr_end=1e-10, momentum_start=0.9, momentum_end=0.9,
                    decay_start=0.01, decay_end=0.01):
    """The :class:`MomentumGD` of the original DGN-GD: normalised gradients, latent decay."""
    return MomentumGD(learning_rate=(lr_start, lr_end), momentum=(momentum_start, momentum_end),
                      grad_normalize=True, transforms=[Decay((decay_start, decay_end))],
                      iterations=iter_n)


def reconstruct_image(features, net, net_gen, layer_weight=None, channel=None, mask=None,
                      initial_gen_feat=None, feat_upper_bound=100., feat_lower_bound=0.,
                      input_layer_gen=None, output_layer_gen=None, loss_type='l2', iter_n=200,
                      lr_start=2., lr_end=1e-10, momentum_start=0.9, momentum_end=0.9,
                      decay_start=0.01, decay_end=0.01, disp_every=1,
                      save_intermediate=False, save_intermediate_every=1,
                      save_intermediate_path=None, return_gen_feat=False, img_mean=None,
                      seed=None, data_format="auto", callbacks=None, verbose=None):
    """Reconstruct an image by optimising a generator's input (original API).

    ``feat_upper_bound``/``feat_lower_bound``: numbers, per-unit arrays or the path of an
    ``act_range`` text file.  ``initial_gen_feat``: None (N(0,1), clipped into the bounds),
    ``"zeros"`` (the paper's scripts) or a latent.  The image returned is generated from the
    final latent (the original returned the one of the last forward pass, one update earlier).

    Returns ``(img, loss_list)``, or ``(img, loss_list, gen_feat)`` with ``return_gen_feat``.
    """
    param = generator_param(net_gen, feat_upper_bound, feat_lower_bound, input_layer_gen,
                            output_layer_gen)
    opt = build_optimizer(iter_n, lr_start, lr_end, momentum_start, momentum_end, decay_start,
                          decay_end)
    img, loss, rec = original.run(
        features, net, param=param, optimizer=opt, iterations=iter_n, initial=initial_gen_feat,
        layer_weight=layer_weight, channel=channel, mask=mask, loss_type=loss_type,
        disp_every=disp_every, save_intermediate=save_intermediate,
        save_intermediate_every=save_intermediate_every,
        save_intermediate_path=save_intermediate_path, prefix="icnn_dgn_gd", img_mean=img_mean,
        seed=seed, data_format=data_format, callbacks=callbacks, verbose=verbose)
    if return_gen_feat:
        z = rec.z.numpy()
        return img, loss, (z[0] if len(z) == 1 else z)
    return img, loss
