"""bdpy's seven generators as Keras models: architecture, state-dict keys, and equality with
bdpy's PyTorch modules (random weights, the real latent shapes of the cookbook's configs).
Run with ``-s`` to see the maximum relative errors."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import torch_reference as tref  # noqa: E402
from keras_icnn import models  # noqa: E402
from keras_icnn.models import generators  # noqa: E402

TOL = 1e-5

#: name -> (the cookbook's latent_shape, bdpy's output (C, H, W), the output is 255 * tanh)
CASES = {
    "relu7generator": ((4096,), (3, 256, 256), False),
    "relu6generator": ((4096,), (3, 256, 256), False),
    "pool5generator": ((256, 6, 6), (3, 256, 256), False),
    "relu4generator": ((384, 13, 13), (3, 256, 256), True),
    "relu3generator": ((384, 13, 13), (3, 256, 256), True),
    "norm2generator": ((256, 13, 13), (3, 240, 240), True),
    "norm1generator": ((96, 27, 27), (3, 240, 240), True),
}


def test_specs_cover_bdpy_generators_and_relu7_is_deepsim_fc7():
    assert tuple(generators.GENERATOR_SPECS) == tuple(CASES) == models.GENERATOR_NAMES
    assert generators.GENERATOR_SPECS["relu7generator"] is generators.DEEPSIM_FC7
    assert generators.GENERATOR_SPECS["relu6generator"] is generators.DEEPSIM_FC7
    for name, (latent, _, _) in CASES.items():
        assert generators.GENERATOR_SPECS[name].latent_shape == latent


@pytest.mark.parametrize("name", list(CASES))
def test_generator_shapes_layers_and_kinds(name):
    latent, (c, h, w), tanh = CASES[name]
    model = models.generator(name)
    assert model.name == name
    shape = latent if len(latent) == 1 else (latent[1], latent[2], latent[0])
    assert tuple(model.input.shape[1:]) == shape
    assert tuple(model.output.shape[1:]) == (h, w, c)
    spec = generators.GENERATOR_SPECS[name]
    for layer_name in spec.plain_convs:
        layer = model.get_layer(layer_name)
        assert isinstance(layer, keras.layers.Conv2D), layer_name
    for layer_name, *_ in spec.deconvs:
        if layer_name not in spec.plain_convs:
            assert isinstance(model.get_layer(layer_name), keras.layers.Conv2DTranspose)
    slopes = {l.negative_slope for l in model.layers if isinstance(l, keras.layers.LeakyReLU)}
    assert slopes == {0.3}
    assert (model.layers[-1].name == "conv1_1_tanh_elt") == tanh


@pytest.mark.parametrize("name", list(CASES))
def test_torch_layer_names_are_bdpys_state_dict_keys(name):
    module = tref.reference_module(name)
    table = models.torch_layer_names(name)
    keys = {f"{prefix}.{p}" for prefixes in table.values() for prefix in prefixes
            for p in ("weight", "bias")}
    assert keys == set(module.state_dict())
    for layer, (attribute, alias) in table.items():
        assert tref.submodule(module, attribute) is tref.submodule(
            module, f"{alias.split('.')[0]}[{alias.split('.')[1]}]")


@pytest.mark.parametrize("name", list(CASES))
def test_converted_generator_equals_bdpy_module(name, tmp_path):
    latent, _, tanh = CASES[name]
    module = tref.reference_module(name, seed=2)
    pt = tref.save_state_dict(module, tmp_path / "generator.pt")
    z = np.random.default_rng(2).standard_normal((2,) + latent).astype(np.float32)
    hooked_layers = ["conv1_1"] if tanh else []
    out, hooked = tref.run_with_hooks(module, z, hooked_layers)
    model = models.build(name, weights=pt)
    refs = {layer: hooked[layer] for layer in hooked_layers}
    refs[model.layers[-1].name] = out
    errors = tref.compare_layers(model, z, refs, f"{name} vs bdpy, latent {latent}")
    assert max(errors.values()) < TOL
    if tanh:  # the output is not saturated: the comparison above means something
        assert 0.05 < np.mean(np.abs(out) < 250)


def test_spec_checks():
    with pytest.raises(ValueError, match="exactly one of latent_dim"):
        generators.build_generator(dataclasses.replace(generators.POOL5_GENERATOR,
                                                       latent_dim=5))
    with pytest.raises(ValueError, match=r"plain_convs \['nope'\]"):
        generators.build_generator(dataclasses.replace(generators.NORM1_GENERATOR,
                                                       plain_convs=("nope",)))
    with pytest.raises(ValueError, match="unknown generator 'fc8generator'"):
        models.generator("fc8generator")
    with pytest.raises(ValueError, match="unexpected argument"):
        models.build("norm1generator", include_top=False)
