"""Mixed precision without touching the user's model: a low-precision twin that computes in
float16/bfloat16 on the model's own float32 variables, and a float32 boundary around it.

``precision`` is one of :data:`PRECISIONS`: ``"float32"`` (exact, the default),
``"mixed_bfloat16"`` or ``"mixed_float16"`` (Keras' policy names: float32 variables, low-precision
compute).  :func:`low_precision_twin` rebuilds a model layer by layer from the layers' configs
with the mixed dtype policy, each layer built on the original layer's variables (the same
objects: weights loaded into either are seen by both); the user's model, its layers and its
dtype policy are never changed, and no global policy is set.  :class:`Float32Boundary` runs such
a twin on float32 inputs and hands back float32 outputs; under float16 it scales the gradient
that enters the twin's backward pass (see there).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from keras_icnn.models.preactivations import PreActivation, share_variables

__all__ = ["PRECISIONS", "check_precision", "compute_dtype", "low_precision_twin",
           "Float32Boundary", "GRADIENT_TARGET_EXPONENT"]

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

#: float16 loss scaling: the gradient entering the twin's backward pass is scaled by a power of
#: two that brings its largest magnitude to ``2**GRADIENT_TARGET_EXPONENT`` (room for 2**11 of
#: growth below float16's 65504; values 2**28 smaller than the largest stay above zero).
GRADIENT_TARGET_EXPONENT = 4


def check_precision(precision):
    """``precision`` itself when it is one of :data:`PRECISIONS`, else a ``ValueError``."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(map(repr, PRECISIONS))}, got "
                         f"{precision!r}")
    return precision


def compute_dtype(precision):
    """The dtype the encoder/generator computes in: ``"float32"``, ``"bfloat16"`` or
    ``"float16"``."""
    return {"float32": "float32", "mixed_bfloat16": "bfloat16",
            "mixed_float16": "float16"}[check_precision(precision)]


def _from_config(layer, policy):
    cfg = dict(layer.get_config(), dtype=policy)
    try:
        return type(layer).from_config(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"layer {layer.name!r}: cannot re-create it from its get_config() in "
                         f"{policy.name} ({e}); use precision='float32'") from None


def _twin_layer(layer, policy):
    """``layer`` re-created in ``policy``, on ``layer``'s own variables."""
    if isinstance(layer, keras.Model):
        return low_precision_twin(layer, policy.name)
    if isinstance(layer, PreActivation):
        inner = _twin_layer(layer.layer, policy)
        return PreActivation(inner, name=layer.name, dtype=policy)
    twin = _from_config(layer, policy)
    if layer.weights:
        shape = (layer.get_build_config() or {}).get("input_shape")
        if shape is None:
            raise ValueError(f"layer {layer.name!r}: unknown build input shape; cannot build "
                             f"its {policy.name} twin")
        share_variables(twin, layer, shape)
    return twin


def low_precision_twin(model, precision):
    """``model`` itself for ``"float32"``; else a new functional model computing in
    ``precision`` on ``model``'s variables (same layer names; outputs in the compute dtype)."""
    precision = check_precision(precision)
    if precision == "float32":
        return model
    policy = keras.DTypePolicy(precision)
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(f"model: expected a built functional or Sequential keras.Model for "
                         f"precision={precision!r}, got {model!r:.80}")
    try:
        inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0])
                  for t in model.inputs]
        return keras.models.clone_model(
            model, input_tensors=inputs if len(inputs) > 1 else inputs[0],
            clone_function=lambda layer: _twin_layer(layer, policy))
    except ValueError as e:
        raise ValueError(f"model {model.name!r}: could not build its {precision} twin ({e})"
                         ) from None


def _scale_for(grads):
    """A power of two bringing the largest finite magnitude of ``grads`` to
    ``2**GRADIENT_TARGET_EXPONENT`` (1 when they are all zero or not finite)."""
    peak = tf.reduce_max(tf.stack([tf.reduce_max(tf.abs(g)) for g in grads]))
    ok = tf.math.is_finite(peak) & (peak > 0)
    safe = tf.where(ok, peak, 1.0)
    exponent = GRADIENT_TARGET_EXPONENT - tf.floor(tf.math.log(safe) / tf.math.log(2.0))
    return tf.where(ok, tf.pow(2.0, exponent), 1.0)


class Float32Boundary:
    """``model`` (a twin from :func:`low_precision_twin`) seen from float32: ``boundary(x)``
    casts ``x`` to the compute dtype, runs the model and returns its outputs (a tensor, or a
    dict of them) as float32.

    Under ``"mixed_float16"`` the backward pass is scaled per evaluation: the float32 gradient
    arriving at the outputs is multiplied by a power of two that brings its largest magnitude to
    ``2**GRADIENT_TARGET_EXPONENT`` before it enters float16 (so that small gradients do not
    underflow), and the gradient leaving at the input is divided by the same power of two in
    float32.  The scale is recomputed from the gradient itself on every evaluation, so nothing
    outside (optimisers, their state) knows about it; a gradient that still overflows reaches
    the caller as Inf/NaN and so the engine's NaN/Inf check.
    """

    def __init__(self, model, precision):
        self.model = model
        self.precision = check_precision(precision)
        self.dtype = compute_dtype(precision)

    def __call__(self, x, training=False):
        if self.precision == "float32":
            return self.model(x, training=training)
        x = tf.convert_to_tensor(x, tf.float32)
        if self.precision == "mixed_bfloat16":
            return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32),
                                         self.model(tf.cast(x, self.dtype), training=training))
        return self._scaled(x, training)

    def _scaled(self, x, training):
        structure = []

        @tf.custom_gradient
        def region(x32):
            with tf.GradientTape() as tape:
                tape.watch(x32)
                out = self.model(tf.cast(x32, self.dtype), training=training)
            flat = tf.nest.flatten(out)
            structure.append(out)

            def grad(*dys, variables=None):
                dys = [tf.zeros_like(t) if d is None else d for d, t in zip(dys, flat)]
                scale = _scale_for([tf.cast(d, tf.float32) for d in dys])
                scaled = [tf.cast(tf.cast(d, tf.float32) * scale, self.dtype) for d in dys]
                dx = tape.gradient(flat, x32, output_gradients=scaled)
                dx = tf.cast(dx, tf.float32) / scale
                return (dx, [None] * len(variables or ()))
            return [tf.cast(t, tf.float32) for t in flat], grad

        flat32 = region(x)
        return tf.nest.pack_sequence_as(structure[0], list(flat32))
