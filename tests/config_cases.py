"""Shared checks of the configs tests."""
import json

from keras_icnn import config


def roundtrip(piece):
    """Both rebuilds of ``piece`` (``from_config`` and ``config.deserialize``) after a JSON
    trip, checking that its config is plain and comes back equal."""
    cfg = piece.get_config()
    assert config.check_plain(cfg) == cfg
    rebuilt = type(piece).from_config(json.loads(json.dumps(cfg)))
    serialised = config.check_plain(config.serialize(piece))
    again = config.deserialize(json.loads(json.dumps(serialised)))
    assert type(rebuilt) is type(again) is type(piece)
    assert rebuilt.get_config() == again.get_config() == cfg
    return rebuilt, again
