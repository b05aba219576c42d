"""Parameterisations: configs that round-trip (plain JSON values; the same bounds, initial points
and images, bit for bit) and clear errors for bad configs."""
import json
import warnings

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from keras_icnn import config
from keras_icnn.params import Generator, Pixels

from conftest import tiny_generator

SETTINGS = settings(max_examples=25, deadline=None)
MEAN = np.array([104.0, 117.0, 123.0], np.float32)


@config.register
def params_test_halve(x):
    """A registered pre/postprocess function."""
    return x * 0.5


def json_trip(cfg):
    assert config.check_plain(cfg) == cfg
    return json.loads(json.dumps(cfg))


def same(a, b):
    """Equal arrays bit for bit (dtype, shape, bytes), or both None."""
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# -- Pixels ---------------------------------------------------------------------------------

def pixels_roundtrip(p):
    cfg = p.get_config()
    rebuilt = Pixels.from_config(json_trip(cfg))
    again = config.deserialize(json_trip(config.serialize(p)))
    assert type(again) is Pixels and rebuilt.get_config() == again.get_config() == cfg
    for q in (p, rebuilt, again):
        q.build((8, 6, 3), MEAN)
    for q in (rebuilt, again):
        assert all(same(x, y) for x, y in zip(q.bounds(), p.bounds()))
        for initial in (None, "mean"):
            assert same(q.initial(2, initial, seed=3), p.initial(2, initial, seed=3))
    return cfg


@pytest.mark.parametrize("bounds, expected", [
    (None, None),
    ("valid", "valid"),
    ((0, 255), [0.0, 255.0]),
    ([np.float32(-1.5), np.array([1.0, 2.0, 3.0])], [-1.5, [1.0, 2.0, 3.0]]),
    ((np.array([-104.0, -117.0, -123.0], np.float32), 100), [[-104.0, -117.0, -123.0], 100.0]),
])
def test_pixels_configs(bounds, expected):
    assert pixels_roundtrip(Pixels(bounds)) == {"bounds": expected}


@SETTINGS
@given(lo=st.lists(st.floats(-200, 0, width=32), min_size=3, max_size=3),
       hi=st.floats(0, 200, width=32), one=st.booleans())
def test_pixels_roundtrip(lo, hi, one):
    pixels_roundtrip(Pixels((lo[0] if one else np.array(lo, np.float32), hi)))


@pytest.mark.parametrize("cfg, match", [
    ({"bounds": "all"}, "bounds: expected None, 'valid' or"),
    ({"bounds": [1, 2, 3]}, "bounds: expected None, 'valid' or"),
    ({"bounds": [[1, 2], 3]}, "bounds: lower must be a number or three numbers"),
    ({"bounds": [0, "255"]}, "bounds: upper must be a number or three numbers"),
    ({"bounds": [0, None]}, "bounds: upper must be a number or three numbers"),
    ({"bounds": [5, [1, 6, 7]]}, "bounds: lower .* exceeds upper"),
    ({"bound": None}, "Pixels config: unknown key 'bound'"),
    ("valid", "Pixels config: expected a dict"),
])
def test_pixels_bad_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        Pixels.from_config(cfg)


# -- Generator ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gen():
    return tiny_generator()


def generator_roundtrip(g, model):
    cfg = g.get_config()
    rebuilt = Generator.from_config(json_trip(cfg), generator=model)
    assert rebuilt.get_config() == cfg and rebuilt.generator is model
    for q in (g, rebuilt):
        q.build((32, 32, 3), MEAN)
    assert all(same(x, y) for x, y in zip(rebuilt.bounds(), g.bounds()))
    assert rebuilt.offset == g.offset
    for initial in (None, "zeros"):
        assert same(rebuilt.initial(3, initial, seed=5), g.initial(3, initial, seed=5))
    z = tf.constant(g.initial(2, seed=1))
    assert same(rebuilt.image(z), g.image(z))
    return cfg


def test_generator_default_config(gen):
    cfg = generator_roundtrip(Generator(gen), gen)
    assert cfg == {"generator": "gen", "lower": 0.0, "upper": 100.0, "crop": "center",
                   "preprocess": None, "postprocess": None}


def test_generator_per_unit_bounds_from_a_file(gen, tmp_path):
    path = tmp_path / "act_range.txt"
    upper = np.random.default_rng(0).uniform(1, 5, 8)
    path.write_text(" ".join(repr(float(v)) for v in upper))
    g = Generator(gen, lower=None, upper=path, crop=(4, 2))
    cfg = generator_roundtrip(g, gen)
    assert cfg["lower"] is None and cfg["crop"] == [4, 2]
    assert cfg["upper"] == upper.astype(np.float32).tolist()


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), uniform=st.booleans(),
       top=st.integers(0, 8), left=st.integers(0, 8))
def test_generator_roundtrip(gen, seed, uniform, top, left):
    rng = np.random.default_rng(seed)
    lower = float(rng.uniform(-2, 0)) if uniform else rng.uniform(-2, 0, 8)
    g = Generator(gen, lower=lower, upper=rng.uniform(0, 3, (8,)), crop=(top, left))
    cfg = generator_roundtrip(g, gen)
    assert isinstance(cfg["lower"], float) == uniform and len(cfg["upper"]) == 8


def test_generator_registered_functions(gen):
    g = Generator(gen, preprocess=params_test_halve, postprocess=params_test_halve)
    cfg = generator_roundtrip(g, gen)
    assert cfg["preprocess"]["config"] == "keras_icnn>params_test_halve"
    rebuilt = Generator.from_config(cfg, generator=gen)
    assert rebuilt.preprocess is rebuilt.postprocess is params_test_halve


def test_generator_refuses_unregistered_functions(gen):
    def brighten(x):
        return x + 1.0

    with pytest.raises(ValueError, match="Generator postprocess: the function .*brighten.* "
                                         "register it with @keras_icnn.config.register"):
        Generator(gen, postprocess=brighten).get_config()
    with pytest.raises(ValueError, match="Generator preprocess: the function '.*<lambda>'"):
        Generator(gen, preprocess=lambda z: z).get_config()


def test_generator_needs_the_model(gen):
    cfg = Generator(gen).get_config()
    with pytest.raises(ValueError, match=r"holds only the generator model's name \('gen'\).*"
                                         r"Generator.from_config\(config, generator=model\)"):
        Generator.from_config(cfg)
    with pytest.raises(ValueError, match="keras_icnn>Generator.*generator=model"):
        config.deserialize(json_trip(config.serialize(Generator(gen))))


def test_generator_name_mismatch_warns(gen):
    cfg = dict(Generator(gen).get_config(), generator="other")
    with pytest.warns(UserWarning, match="written for the generator 'other'; given 'gen'"):
        Generator.from_config(cfg, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Generator.from_config(Generator(gen).get_config(), generator=gen)


@pytest.mark.parametrize("change, match", [
    ({"lower": 2.0, "upper": 1.0}, "lower exceeds upper"),
    ({"upper": [1.0, 2.0]}, "latent upper bound: expected a number or 8 values"),
    ({"upper": [[1.0, 2.0], [3.0]]}, "latent upper bound: expected a number, numbers"),
    ({"lower": [0.0] * 7 + [None]}, "latent lower bound: contains NaN"),
    ({"crop": [-1, 0]}, "crop: expected 'center' or"),
    ({"crop": [1.5, 2]}, "crop: expected 'center' or"),
    ({"crop": "top"}, "crop: expected 'center' or"),
    ({"postprocess": "halve"}, "postprocess: expected a callable or None"),
    ({"preprocess": {"class_name": "function", "config": "keras_icnn>nope"}},
     "preprocess: cannot rebuild"),
    ({"generator": 3}, "'generator' is the generator model's name"),
    ({"scale": 2.0}, "Generator config: unknown key 'scale'"),
])
def test_generator_bad_configs(gen, change, match):
    cfg = dict(Generator(gen).get_config(), **change)
    with pytest.raises(ValueError, match=match):
        Generator.from_config(cfg, generator=gen)


def test_generator_model_must_be_a_model(gen):
    with pytest.raises(ValueError, match="generator: expected a keras.Model"):
        Generator.from_config(Generator(gen).get_config(), generator="gen")
    with pytest.raises(ValueError, match="Generator config: expected a dict"):
        Generator.from_config(["gen"], generator=gen)


def test_image_shaped_latent_bounds_need_their_own_shape():
    """A generator whose input is an image (bdpy's pool5/relu4/... generators): a flat or
    [C, H, W] bound of the right size is refused (reshaping would mix the axes up)."""
    import keras
    import numpy as np
    import pytest

    from keras_icnn.params import Generator
    inp = keras.Input((3, 3, 4))
    gen = keras.Model(inp, keras.layers.Conv2DTranspose(3, 3, strides=14, padding="same")(inp))
    ok = Generator(gen, lower=0.0, upper=np.full((3, 3, 4), 2.0))
    assert ok.upper.shape == (3, 3, 4)
    for bad in (np.full(36, 2.0), np.full((4, 3, 3), 2.0)):
        with pytest.raises(ValueError, match=r"channels-last; bdpy's \[C, H, W\] bounds"):
            Generator(gen, lower=0.0, upper=bad)


def test_cookbook_bounds_of_image_latents_are_made_channels_last(tmp_path):
    import numpy as np

    from keras_icnn.cli.study import load_latent_upper
    values = np.arange(1, 25, dtype=float)          # [C=2, H=3, W=4] in bdpy's order
    (tmp_path / "upper.txt").write_text(" ".join(f"{v:g}" for v in values))
    upper = load_latent_upper({"latent_upper_bound_file": str(tmp_path / "upper.txt"),
                               "latent_upper_bound_shape": [2, 3, 4]})
    np.testing.assert_array_equal(upper, values.reshape(2, 3, 4).transpose(1, 2, 0))
