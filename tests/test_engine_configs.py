"""Configs that round-trip: ``Reconstructor.from_config(rec.get_config())`` rebuilds the run
bit for bit, for every variant."""
import json

import numpy as np
import pytest

from keras_icnn import Reconstructor, config

from engine_cases import VARIANTS, problem, reconstructor


@pytest.fixture(scope="module")
def case():
    return problem()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_from_config_is_bit_identical(case, variant):
    net, gen, feats = case
    rec = reconstructor(variant, net, gen)
    cfg = rec.get_config()
    text = json.dumps(cfg)                       # plain JSON values
    assert json.loads(text) == cfg
    again = Reconstructor.from_config(json.loads(text), encoder=net, generator=gen)
    assert again.get_config() == cfg
    rec.fit(feats, iterations=4, verbose=0)
    again.fit(feats, iterations=4, verbose=0)
    np.testing.assert_array_equal(rec.images, again.images)
    np.testing.assert_array_equal(rec.loss_history_, again.loss_history_)


def test_generator_config_needs_the_model(case):
    net, gen, _ = case
    cfg = reconstructor("dgn-gd", net, gen).get_config()
    with pytest.raises(ValueError, match="generator="):
        Reconstructor.from_config(cfg, encoder=net)


@pytest.mark.parametrize("bad, match", [
    ({"optimizer": {"class_name": "NoSuchOptimizer", "config": {}}}, "NoSuchOptimizer"),
    ({"learning_rate": 3}, "unknown key"),
    ({"optimizer": {"class_name": "MomentumGD", "config": {"lr": 1}}}, "unknown key 'lr'"),
])
def test_bad_configs(case, bad, match):
    net, gen, _ = case
    cfg = {**reconstructor("gd", net, gen).get_config(), **bad}
    with pytest.raises(ValueError, match=match):
        Reconstructor.from_config(cfg, encoder=net)


def test_optimizer_config_is_plain_and_rebuilds():
    from keras_icnn import optimizers
    for name in ("gd", "lbfgs", "lbfgs-b", "adam"):
        opt = optimizers.get(name)
        cfg = config.check_plain(config.serialize(opt))
        again = optimizers.get(cfg)
        assert type(again) is type(opt) and again.get_config() == opt.get_config()
