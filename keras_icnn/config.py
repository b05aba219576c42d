"""Configs that round-trip: every piece's ``get_config()`` is plain JSON values and
``from_config(config)`` rebuilds it (Keras' convention and Keras' serialisation machinery).

Pieces register themselves with :func:`register`; :func:`serialize` turns a piece (or a Keras
optimiser, a Keras learning-rate schedule, a registered function) into
``{"class_name", "config", "registered_name", "module"}`` and :func:`deserialize` reads it back.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Mapping

import keras

__all__ = ["PACKAGE", "register", "serialize", "deserialize", "check_plain", "build",
           "is_registered", "serialize_function", "deserialize_function", "Configurable"]

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


def build(cls, config, **given):
    """``cls(**config, **given)`` after checking ``config``: a dict with string keys, each one
    an argument of ``cls.__init__``, none missing; a clear ``ValueError`` naming the key (or
    the class) otherwise.  ``given`` supplies or replaces arguments (rebuilt nested pieces,
    objects a config cannot hold)."""
    what = f"{cls.__name__} config"
    if not isinstance(config, Mapping):
        raise ValueError(f"{what}: expected a dict, got {config!r}")
    params = inspect.signature(cls.__init__).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [n for n, p in list(params.items())[1:] if p.kind in kinds]
    for key in config:
        if not isinstance(key, str):
            raise ValueError(f"{what}: keys must be strings, got {key!r}")
        if key not in names:
            raise ValueError(f"{what}: unknown key {key!r}; expected some of {names}")
    args = {**config, **given}
    missing = [n for n in names if params[n].default is inspect.Parameter.empty
               and n not in args]
    if missing:
        raise ValueError(f"{what}: missing key(s) {missing}")
    try:
        return cls(**args)
    except TypeError as e:
        raise ValueError(f"{what}: {e}") from None


def is_registered(obj):
    """Whether ``obj`` (a class or function) is registered with Keras under its name."""
    try:
        name = keras.saving.get_registered_name(obj)
    except (AttributeError, TypeError):  # an instance without __name__, an unhashable object
        return False
    return keras.saving.get_registered_object(name) is obj


def serialize_function(fn, what="function"):
    """A function registered with :func:`register` (or an instance of a registered class with
    ``get_config``) as plain JSON values; a ``ValueError`` naming ``what`` and the function,
    saying to register it, otherwise."""
    if not callable(fn):
        raise ValueError(f"{what}: expected a function, got {fn!r}")
    piece = hasattr(fn, "get_config") and is_registered(type(fn))
    if not (piece or is_registered(fn)):
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        raise ValueError(f"{what}: the function {name!r} cannot be saved in a config: register "
                         "it with @keras_icnn.config.register (and import its module before "
                         "loading the config)")
    return serialize(fn)


def deserialize_function(config, what="function"):
    """The registered function a :func:`serialize_function` config names."""
    fn = deserialize(config, what)
    if not callable(fn):
        raise ValueError(f"{what}: expected a serialised function, got {config!r}")
    return fn


class Configurable:
    """The config protocol of a piece: ``get_config()`` of plain JSON values (each piece defines
    it) and ``from_config(config)`` (:func:`build` by default)."""

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} defines no get_config(); define it "
                                  "(and from_config) to save it in a config")

    @classmethod
    def from_config(cls, config):
        return build(cls, config)
