"""Pre-activation outputs for any Keras model: fused activations split out into layers of
their own.

Keras fuses activations into its Dense and convolution layers, so such a layer's output is
post-activation; the published iCNN features are pre-activation outputs.
:func:`expose_preactivations` rebuilds a model with each fused activation as a separate layer.
"""
from __future__ import annotations

import keras

__all__ = ["PreActivation", "expose_preactivations"]


def _splittable_types():
    L = keras.layers
    return tuple(getattr(L, n) for n in (
        "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
        "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
        "DepthwiseConv1D", "DepthwiseConv2D") if hasattr(L, n))


def _has_fused_activation(layer):
    act = getattr(layer, "activation", None)
    return (isinstance(layer, _splittable_types()) and act is not None
            and act is not keras.activations.linear
            and getattr(act, "__name__", "") != "linear")


class PreActivation(keras.layers.Layer):
    """Calls a layer with its fused activation switched off; shares the layer's weights."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=kwargs.pop("name", layer.name), **kwargs)
        self.layer = layer

    def call(self, inputs):
        act = self.layer.activation
        self.layer.activation = keras.activations.linear
        try:
            return self.layer(inputs)
        finally:
            self.layer.activation = act

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def _split_call(layer, *args, **kwargs):
    if not _has_fused_activation(layer):
        return layer(*args, **kwargs)
    pre = PreActivation(layer)(*args, **kwargs)
    return keras.layers.Activation(layer.activation, name=f"{layer.name}_activation")(pre)


def expose_preactivations(model):
    """An equivalent model with every fused activation split out into its own layer.

    Each Dense/Conv-type layer ``L`` with a fused activation becomes ``L`` (pre-activation output,
    same name, same weight variables) followed by an ``Activation`` layer named
    ``L_activation``.  Outputs are identical to ``model``'s; weights are shared, not copied.
    Works for functional and Sequential models (e.g. ``keras.applications.ResNet50``, a user's
    own CNN); layers inside nested sub-models are left as they are.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model: expected a keras.Model, got {type(model).__name__}")
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError("model: a Sequential model must be built with an Input shape first "
                             "(e.g. keras.Sequential([keras.Input((224, 224, 3)), ...]))")
        inputs = keras.Input(batch_shape=model.inputs[0].shape, name=model.inputs[0].name)
        x = inputs
        for layer in model.layers:
            x = _split_call(layer, x)
        return keras.Model(inputs, x, name=model.name)
    if not hasattr(model, "_operations") or not getattr(model, "_is_graph_network", True):
        raise ValueError("model: expected a functional or Sequential model; subclassed models "
                         "have no graph whose layers can be split")
    try:
        inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0])
                  for t in model.inputs]
        return keras.models.clone_model(model, input_tensors=inputs if len(inputs) > 1
                                        else inputs[0], clone_function=lambda layer: layer,
                                        call_function=_split_call)
    except ValueError as e:
        raise ValueError(f"model {model.name!r}: could not rebuild it with separate "
                         f"activations ({e})") from None
