"""Configs that round-trip: every piece's ``get_config()`` is plain JSON values and
``from_config(config)`` rebuilds it (Keras' convention and Keras' serialisation machinery).

Pieces register themselves with :func:`register`; :func:`serialize` turns a piece (or a Keras
optimiser, a Keras learning-rate schedule, a registered function) into
``{"class_name", "config", "registered_name", "module"}`` and :func:`deserialize` reads it back.
"""
from __future__ import annotations

import json

import keras

__all__ = ["PACKAGE", "register", "serialize", "deserialize", "check_plain", "build"]

#: The Keras registration package of keras-icnn's pieces (``"keras_icnn>Decay"``).
PACKAGE = "keras_icnn"


def register(obj):
    """Class or function decorator: make ``obj`` (de)serialisable by name."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(obj)


def serialize(obj):
    """A piece (or None, a number, a string, a list of those) as plain JSON values."""
    return keras.saving.serialize_keras_object(obj)


def deserialize(config, what="config", custom_objects=None):
    """The piece a :func:`serialize` config describes; a clear ``ValueError`` naming ``what``
    when the config is not one (an unknown class, a malformed entry)."""
    if config is None or isinstance(config, (bool, int, float, str)):
        return config
    if isinstance(config, list):
        return [deserialize(c, f"{what}[{i}]", custom_objects) for i, c in enumerate(config)]
    if not (isinstance(config, dict) and "class_name" in config):
        raise ValueError(f"{what}: expected a serialised piece (a dict with 'class_name' and "
                         f"'config'), got {config!r}")
    try:
        return keras.saving.deserialize_keras_object(_complete(config),
                                                     custom_objects=custom_objects)
    except (TypeError, ValueError) as e:
        name = config.get("registered_name") or config.get("class_name")
        raise ValueError(f"{what}: cannot rebuild {name!r} from its config ({e})") from None


def _complete(config):
    """Let ``{"class_name": "Decay", "config": ...}`` (the presets' short form) name the
    registered piece ``keras_icnn>Decay``."""
    name = f"{PACKAGE}>{config['class_name']}"
    if "registered_name" not in config and \
            keras.saving.get_registered_object(name) is not None:
        return {**config, "registered_name": name}
    return config


def check_plain(config, what="config"):
    """``config`` itself if it is plain JSON values (what ``json.dumps`` writes and reads back
    equal), else a ``ValueError`` naming ``what``."""
    try:
        text = json.dumps(config, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not plain JSON values ({e})") from None
    if json.loads(text) != config:
        raise ValueError(f"{what}: does not survive a JSON round trip (tuples or non-string "
                         "keys?); use lists and string keys")
    return config


def build(cls, config):
    """``cls(**config)``, with a ``ValueError`` naming any key ``cls`` does not take."""
    import inspect
    if not isinstance(config, dict):
        raise ValueError(f"{cls.__name__} config: expected a dict, got {config!r}")
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(config) - set(params) - {"self"})
        if unknown:
            raise ValueError(f"{cls.__name__} config: unknown key(s) {unknown}; expected some "
                             f"of {sorted(set(params) - {'self'})}")
    return cls(**config)
