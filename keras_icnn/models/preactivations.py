"""Pre-activation outputs for any Keras model: fused activations split out into layers of
their own.

Keras fuses activations into its Dense and convolution layers, so such a layer's output is
post-activation; the published iCNN features are pre-activation outputs.
:func:`expose_preactivations` rebuilds a model with each fused activation as a separate layer.
"""
from __future__ import annotations

import keras

__all__ = ["PreActivation", "expose_preactivations", "share_variables"]


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


def _linear_twin(layer):
    """A new, unbuilt layer of ``layer``'s class and config with a linear activation."""
    config = dict(layer.get_config(), activation="linear")
    try:
        return type(layer).from_config(config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"layer {layer.name!r}: cannot re-create it from its get_config() "
                         f"with a linear activation ({e})") from None


class _Untracked:
    """Holds a layer out of sight of Keras' tracking and saving (it owns no weights of its
    own: they are the wrapped layer's, which is tracked)."""

    __slots__ = ("layer",)

    def __init__(self, layer):
        self.layer = layer


def _shared_variable_lookup(layer):
    """An ``add_weight`` stand-in that hands out ``layer``'s own variables, matched by name."""
    variables = {}
    for v in layer.weights:
        if v.name in variables:
            raise ValueError(f"layer {layer.name!r}: two weights named {v.name!r}; cannot "
                             "share them with a pre-activation twin")
        variables[v.name] = v

    def add_weight(*args, shape=None, name=None, **kwargs):
        v = variables.get(name)
        if v is None or (shape is not None and tuple(v.shape) != tuple(shape)):
            raise ValueError(f"layer {layer.name!r}: no weight {name!r} of shape {shape} to "
                             f"share (it has {[(w.name, tuple(w.shape)) for w in layer.weights]})")
        return v
    return add_weight


def share_variables(twin, layer, input_shape):
    """Builds ``twin`` (an unbuilt layer of ``layer``'s class and config) on ``layer``'s
    variables (the same objects) instead of new ones; ``layer`` is not changed."""
    twin.add_weight = _shared_variable_lookup(layer)
    try:
        twin.build(input_shape)
    finally:
        del twin.add_weight
    if sorted(map(id, twin.weights)) != sorted(map(id, layer.weights)):
        raise ValueError(f"layer {layer.name!r}: its pre-activation twin does not use exactly "
                         "the layer's own weights")


class PreActivation(keras.layers.Layer):
    """A layer's output with its fused activation left out; shares the layer's weights.

    Never changes ``layer``: it calls a twin of ``layer`` (same class and config, but a linear
    activation) built on ``layer``'s own weight variables, so it is safe from several threads
    and weights loaded into either are seen by both.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(name=kwargs.pop("name", layer.name), **kwargs)
        self.layer = layer
        self._linear = _Untracked(_linear_twin(layer))  # weight lists and files as before

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        if not self._linear.layer.built:
            share_variables(self._linear.layer, self.layer, input_shape)

    def call(self, inputs):
        return self._linear.layer(inputs)

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
