"""``optimizers.get``: an optimiser from what users write (a name, a Keras optimiser, a config)."""
from __future__ import annotations

import keras

from keras_icnn import config, presets
from keras_icnn.optimizers.base import Optimizer
from keras_icnn.optimizers.keras_optimizer import KerasOptimizer
from keras_icnn.optimizers.lbfgs import LBFGS
from keras_icnn.optimizers.lbfgs_b import ScipyLBFGSB

__all__ = ["NAMES", "OPTIMIZERS", "get"]

#: the L-BFGS step objects by name
OPTIMIZERS = {"lbfgs": LBFGS, "lbfgs-b": ScipyLBFGSB, "lbfgs_b": ScipyLBFGSB,
              "scipy": ScipyLBFGSB}
#: the names ``get`` takes besides Keras' own optimiser names ("adam", "adamw", "sgd", ...)
NAMES = ("gd", "momentum_gd", *OPTIMIZERS)


def get(optimizer, space="pixels"):
    """An optimiser from ``optimizer``:

    * an :class:`~keras_icnn.optimizers.base.Optimizer`: itself;
    * a ``keras.optimizers.Optimizer`` (Adam, AdamW, SGD, ...): wrapped in
      :class:`~keras_icnn.optimizers.keras_optimizer.KerasOptimizer`;
    * ``"gd"``: momentum GD with the original's settings, the ``icnn_gd`` preset's for
      ``space="pixels"``, the ``icnn_dgn_gd`` preset's for a ``"latent"``;
    * ``"lbfgs"``: the batched L-BFGS written in TensorFlow; ``"lbfgs-b"`` (or ``"scipy"``):
      scipy's L-BFGS-B, the original's;
    * another string: a Keras optimiser by name (``"adam"``, ``"adamw"``, ...), its defaults;
    * a dict: a serialised optimiser (``get_config()``'s form).
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return KerasOptimizer(optimizer)
    if isinstance(optimizer, dict):
        return _checked(config.deserialize(optimizer, "optimizer"))
    key = optimizer.lower() if isinstance(optimizer, str) else None
    if key in ("gd", "momentum_gd"):
        preset = presets.get("icnn_dgn_gd" if space == "latent" else "icnn_gd")
        return config.deserialize(preset["optimizer"], "optimizer")
    if key in OPTIMIZERS:
        return OPTIMIZERS[key]()
    return KerasOptimizer(_keras_by_name(optimizer))


def _keras_by_name(name):
    if isinstance(name, str):
        try:
            return keras.optimizers.get(name)
        except ValueError:
            pass
    raise ValueError(f"optimizer: unknown {name!r}; expected one of {', '.join(NAMES)}, a "
                     "Keras optimiser name ('adam', 'adamw', 'sgd', 'rmsprop', ...), a "
                     "keras_icnn.optimizers.Optimizer or a keras.optimizers.Optimizer")


def _checked(opt):
    if isinstance(opt, keras.optimizers.Optimizer):
        return KerasOptimizer(opt)
    if not isinstance(opt, Optimizer):
        raise ValueError(f"optimizer: the config describes a {type(opt).__name__}, not an "
                         "optimiser")
    return opt
