"""The Reconstructor's settings: checking what users pass, and turning configs and presets
into constructor arguments."""
from __future__ import annotations

import inspect

import keras
import numpy as np

from keras_icnn import config, presets
from keras_icnn.objective import losses
from keras_icnn.objective.priors import Prior
from keras_icnn.params import Generator, Param, Pixels
from keras_icnn.validation import positive_int

__all__ = ["check_encoder", "space_of", "as_param", "check_loss", "check_priors", "plain",
           "from_config", "preset_config", "check_seed", "check_callbacks", "check_iterations",
           "MAX_ITERATIONS"]

#: the most iterations a run can have (the step index is an int32 in the compiled step)
MAX_ITERATIONS = 2 ** 31 - 1


def check_encoder(encoder):
    """``(encoder, (H, W, 3))`` for a Keras model with one fixed-size image input."""
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"encoder: expected a keras.Model, got {type(encoder).__name__}")
    try:
        input_shape = encoder.input_shape
    except (AttributeError, ValueError):
        raise ValueError(f"encoder: the model {encoder.name!r} has no input shape yet (an "
                         "unbuilt Sequential?); give it one, e.g. keras.Input((224, 224, 3)) "
                         "as its first layer") from None
    shape = None if isinstance(input_shape, list) else tuple(input_shape[1:])
    if shape is None or len(shape) != 3 or shape[-1] != 3 or None in shape:
        raise ValueError(f"encoder: expected one image input of fixed shape (H, W, 3), got "
                         f"{encoder.input_shape}; build it with e.g. input_shape=(224, 224, 3)")
    return encoder, shape


def space_of(param):
    """``"pixels"`` or ``"latent"``: what ``param`` optimises."""
    return "pixels" if isinstance(param, str) else getattr(param, "space", None)


def as_param(param, default_pixel_bounds):
    """A :class:`~keras_icnn.params.Param` from ``"pixels"`` or a Param."""
    if isinstance(param, str) and param in ("pixels", "pixel"):
        return Pixels(bounds=default_pixel_bounds)
    if not isinstance(param, Param):
        raise ValueError(f"param: expected 'pixels' or a keras_icnn.params.Param, got "
                         f"{param!r}")
    return param


def check_loss(loss):
    """``loss`` itself: a known name, a callable ``loss(feat, target, mask)``, or a dict of
    those per layer."""
    for fn in (loss.values() if isinstance(loss, dict) else [loss]):
        if isinstance(fn, str) or callable(fn):
            losses.get(fn)  # validate now
        if callable(fn) and fn not in losses.LOSSES.values():
            try:
                inspect.signature(fn).bind(0, 0, 0)
            except TypeError:
                raise ValueError(f"loss: a custom loss must take (feat, target, mask) and return "
                                 f"one value per image; {fn!r} does not") from None
            except ValueError:  # a builtin without a signature: try it at run time
                pass
    return loss


def check_seed(seed):
    """None or a non-negative integer."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"seed: expected None or a non-negative integer, got {seed!r}")
    return None if seed is None else int(seed)


def check_callbacks(callbacks):
    """A list of Keras callbacks from one callback, a list of them, or None."""
    cbs = [callbacks] if isinstance(callbacks, keras.callbacks.Callback) else callbacks
    if cbs is None:
        return []
    if not isinstance(cbs, (list, tuple)) or not all(
            isinstance(c, keras.callbacks.Callback) for c in cbs):
        raise ValueError(f"callbacks: expected keras.callbacks.Callback objects (one, or a "
                         f"list), got {callbacks!r:.80}")
    return list(cbs)


def check_iterations(n):
    n = positive_int(n, "iterations")
    if n > MAX_ITERATIONS:
        raise ValueError(f"iterations: expected at most {MAX_ITERATIONS}, got {n}")
    return n


def check_priors(priors):
    priors = [priors] if isinstance(priors, Prior) else list(priors)
    for p in priors:
        if not isinstance(p, Prior):
            raise ValueError(f"priors: expected keras_icnn.priors.Prior objects, got {p!r}")
    return priors


def plain(value):
    """Arrays (masks, layer weights, an initial image) as nested lists; dicts and lists of them
    likewise; other values as they are."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


def _param(cfg, generator):
    if cfg.get("class_name") == "Generator":
        if generator is None:
            raise ValueError("generator: this config optimises a generator's input; pass "
                             "generator=<the Keras generator model>")
        return Generator.from_config(cfg["config"], generator=generator)
    return config.deserialize(cfg, "param")


def from_config(cfg, generator=None):
    """Constructor arguments of ``Reconstructor`` from its config."""
    cfg = dict(cfg)
    known = {"param", "optimizer", "loss", "layer_weight", "mask", "channel", "priors", "mean",
             "data_format", "seed", "initial", "precision"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"Reconstructor config: unknown key(s) {unknown}; expected some of "
                         f"{sorted(known)}")
    if "param" in cfg:
        cfg["param"] = _param(cfg["param"], generator)
    if "optimizer" in cfg:
        cfg["optimizer"] = config.deserialize(cfg["optimizer"], "optimizer")
    if "loss" in cfg:
        cfg["loss"] = losses.deserialize(cfg["loss"])
    cfg["priors"] = config.deserialize(cfg.get("priors", []), "priors")
    return cfg


def preset_config(preset, latent_upper=None):
    """A Reconstructor config from a preset (see :mod:`keras_icnn.presets`)."""
    param = preset["param"]
    if presets.needs_latent_upper(preset):
        if latent_upper is None:
            raise ValueError("latent_upper: this preset bounds the generator's input by the "
                             "per-unit act_range values of the paper; pass latent_upper= (a "
                             "path to act_range_3x_fc7.txt, or an array)")
        param["config"]["upper"] = latent_upper
    elif latent_upper is not None and param["class_name"] == "Generator":
        param["config"]["upper"] = latent_upper
    return {"param": param, "optimizer": preset["optimizer"],
            "layer_weight": preset["layer_weight"], "initial": preset["initial"]}
