"""The published settings are data: every preset builds, the original functions' defaults are
the presets', and presets that need the paper's latent bounds say so."""
import numpy as np
import pytest

from keras_icnn import Reconstructor, config, icnn_dgn_gd, icnn_gd, icnn_lbfgs, presets

from conftest import tiny_cnn, tiny_generator


def optimizer_config(name):
    return config.deserialize(presets.get(name)["optimizer"]).get_config()


def test_the_original_defaults_are_the_presets():
    assert icnn_gd.build_optimizer().get_config() == optimizer_config("icnn_gd")
    assert icnn_dgn_gd.build_optimizer().get_config() == optimizer_config("icnn_dgn_gd")
    assert icnn_lbfgs.build_optimizer(disp=False).get_config() == \
        optimizer_config("icnn_lbfgs")


def test_gd_by_name_is_the_original():
    from keras_icnn import optimizers
    assert optimizers.get("gd").get_config() == optimizer_config("icnn_gd")
    assert optimizers.get("gd", space="latent").get_config() == optimizer_config("icnn_dgn_gd")


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_builds_and_runs(name, tmp_path):
    net, gen = tiny_cnn(), tiny_generator()
    upper = tmp_path / "act_range.txt"
    np.savetxt(upper, np.full((1, 8), 3.0))
    rec = Reconstructor.from_preset(name, net, generator=gen, latent_upper=str(upper),
                                    initial="random" if "dgn" not in name else "normal")
    preset = presets.get(name)
    assert rec.optimizer.iterations == preset["optimizer"]["config"]["iterations"]
    assert rec.layer_weight == preset["layer_weight"]
    assert type(rec.param).__name__ == preset["param"]["class_name"]
    feats = {"c1": np.random.default_rng(0).normal(size=(1, 32, 32, 8)).astype("float32")}
    rec.fit(feats, iterations=2, verbose=0)
    assert np.all(np.isfinite(rec.images))
    assert presets.get(name)["description"]


def test_paper_presets_need_the_act_range():
    with pytest.raises(ValueError, match="latent_upper"):
        Reconstructor.from_preset("paper_dgn_gd", tiny_cnn(), generator=tiny_generator())
    with pytest.raises(ValueError, match="unknown 'nope'"):
        presets.get("nope")


def test_presets_are_plain_data():
    for name in presets.names():
        preset = presets.get(name)
        assert config.check_plain(preset) == preset
        preset["initial"] = "changed"
        assert presets.get(name)["initial"] != "changed"   # a copy each time
