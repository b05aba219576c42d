"""Feature losses in configs: ``losses.serialize`` / ``losses.deserialize`` round-trip names,
built-in functions, registered functions and per-layer dicts (computing the same values) and
refuse what a config cannot hold."""
import json

import numpy as np
import pytest

from keras_icnn import config
from keras_icnn.objective import losses

RNG = np.random.default_rng(0)
TARGETS = {"conv": RNG.normal(0, 1, (2, 4, 4, 5)).astype(np.float32),
           "fc": RNG.normal(0, 1, (2, 7)).astype(np.float32)}
FEATURES = {k: (v + RNG.normal(0, 0.5, v.shape)).astype(np.float32) for k, v in TARGETS.items()}
WEIGHTS = {"conv": np.array([1.0, 0.5], np.float32), "fc": np.array([2.0, 1.0], np.float32)}


@config.register
def losses_test_scaled_l2(feat, target, mask=1.0):
    """A registered user loss."""
    return 3.0 * losses.l2(feat, target, mask)


def unregistered_loss(feat, target, mask=1.0):
    return losses.l1(feat, target, mask)


def trip(loss):
    """``deserialize(serialize(loss))`` through JSON, checking the config is plain."""
    cfg = config.check_plain(losses.serialize(loss))
    assert json.loads(json.dumps(cfg)) == cfg
    return losses.deserialize(json.loads(json.dumps(cfg)))


def values(loss):
    """The per-image total and per-layer values of a FeatureLoss with ``loss``, as bytes."""
    total, per_layer = losses.FeatureLoss(TARGETS, WEIGHTS, loss=loss)(FEATURES)
    return [total.numpy().tobytes()] + [v.numpy().tobytes() for v in per_layer.values()]


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_names_and_builtin_functions_become_names(name):
    assert losses.serialize(name) == name
    assert losses.serialize(name.upper()) == name.upper()
    assert losses.serialize(losses.LOSSES[name]) == name
    assert trip(losses.LOSSES[name]) == name
    if name != "gram":  # gram needs convolutional layers only
        assert values(trip(losses.LOSSES[name])) == values(losses.LOSSES[name])


def test_registered_function():
    cfg = losses.serialize(losses_test_scaled_l2)
    assert cfg["config"] == "keras_icnn>losses_test_scaled_l2"
    assert trip(losses_test_scaled_l2) is losses_test_scaled_l2
    assert values(trip(losses_test_scaled_l2)) == values(losses_test_scaled_l2)


def test_per_layer_dict():
    loss = {"conv": losses.gram, "fc": losses_test_scaled_l2}
    cfg = losses.serialize(loss)
    assert cfg["conv"] == "gram" and cfg["fc"]["config"] == "keras_icnn>losses_test_scaled_l2"
    back = trip(loss)
    assert back == {"conv": "gram", "fc": losses_test_scaled_l2}
    assert values(back) == values(loss)
    assert trip({"fc": "cosine"}) == {"fc": "cosine"}
    assert values({"fc": "cosine"}) == values(trip({"fc": "cosine"}))


def test_unregistered_functions_are_refused():
    with pytest.raises(ValueError, match="loss_type: the function 'unregistered_loss' cannot be "
                                         "saved.*register it with @keras_icnn.config.register"):
        losses.serialize(unregistered_loss)
    with pytest.raises(ValueError, match="the function '.*<lambda>'"):
        losses.serialize({"fc": lambda f, t, m: losses.l2(f, t, m)})


@pytest.mark.parametrize("loss, match", [
    ("l3", "loss_type: unknown loss 'l3'"),
    (3, "loss_type: unknown loss 3"),
    ({"fc": "l3"}, "loss_type: unknown loss 'l3'"),
    ({1: "l2"}, r"expected \{layer name \(a string\)"),
    ({"fc": {"a": "l2"}}, r"expected \{layer name \(a string\)"),
])
def test_serialize_bad_losses(loss, match):
    with pytest.raises(ValueError, match=match):
        losses.serialize(loss)


@pytest.mark.parametrize("cfg, match", [
    ("l3", "loss_type: unknown loss 'l3'"),
    (None, "loss_type: expected a loss name, a serialised loss function"),
    (["l2"], "loss_type: expected a loss name"),
    ({"fc": {"a": "l2"}}, "loss_type: layer 'fc': expected a loss name or a serialised"),
    ({"fc": 2}, "loss_type: expected a loss name"),
    ({"class_name": "function", "config": "keras_icnn>nope"}, "loss_type: cannot rebuild"),
    (config.serialize(config.PACKAGE), "loss_type: unknown loss 'keras_icnn'"),
])
def test_deserialize_bad_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        losses.deserialize(cfg)
