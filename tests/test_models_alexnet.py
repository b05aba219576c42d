"""AlexNet and CaffeNet (bdpy's ``alexnet`` and ``reference_net``): architecture, and equality
with bdpy's PyTorch modules (random weights, 227x227 inputs) at every ``layer_map`` layer.
Run with ``-s`` to see the per-layer maximum relative errors."""
from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import torch_reference as tref  # noqa: E402
from keras_icnn import models  # noqa: E402
from keras_icnn.caffe.layers import CaffeLRN  # noqa: E402

TOL = 1e-5


def chain(model):
    return [layer.name for layer in model.layers]


def test_alexnet_and_caffenet_layers_shapes_and_groups():
    a, r = models.alexnet(), models.reference_net()
    assert chain(a)[:9] == ["data", "conv1", "relu1", "norm1", "pool1", "conv2", "relu2",
                            "norm2", "pool2"]
    assert chain(r)[:9] == ["data", "conv1", "relu1", "pool1", "norm1", "conv2", "relu2",
                            "pool2", "norm2"]
    tail = ["conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5", "flatten", "fc6",
            "relu6", "fc7", "relu7", "fc8", "prob"]
    for model in (a, r):
        assert chain(model)[9:] == tail
        assert set(models.layer_map(model.name)) <= set(chain(model))
        assert {n: model.get_layer(n).groups for n in ("conv1", "conv2", "conv3", "conv4",
                                                         "conv5")} == {
            "conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
        assert model.get_layer("conv2").kernel.shape == (5, 5, 48, 256)
        assert model.get_layer("conv1").output.shape[1:] == (55, 55, 96)
        assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)
        assert model.get_layer("fc6").kernel.shape == (9216, 4096)
        lrn = model.get_layer("norm1")
        assert isinstance(lrn, CaffeLRN)
        assert (lrn.local_size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)
    assert models.alexnet(include_top=False, input_shape=None).output.shape[1:] == (
        None, None, 256)


def test_the_top_needs_a_6x6_pool5_and_inputs_are_checked():
    with pytest.raises(ValueError, match=r"6x6 pool5.*\(5, 5\)"):
        models.alexnet(input_shape=(224, 224, 3))
    assert models.reference_net(include_top=False, input_shape=(224, 224, 3)).output.shape[
        1:] == (5, 5, 256)
    for bad in ((227, 227), (227, 227, 1), (66, 66, 3)):
        with pytest.raises(ValueError, match="input_shape"):
            models.alexnet(input_shape=bad)
    with pytest.raises(ValueError, match="include_top=True"):
        models.reference_net(input_shape=None)


@pytest.fixture(scope="module", params=["alexnet", "reference_net"])
def encoder_case(request, tmp_path_factory):
    name = request.param
    module = tref.reference_module(name, seed=1)
    pt = tref.save_state_dict(module, tmp_path_factory.mktemp(name) / f"{name}.pt")
    x = np.random.default_rng(1).standard_normal((2, 3, 227, 227)).astype(np.float32) * 50
    lmap = models.layer_map(name)
    out, hooked = tref.run_with_hooks(module, x, lmap.values())
    refs = {layer: hooked[path] for layer, path in lmap.items()}
    return name, pt, x, refs, out


def test_converted_encoder_equals_bdpy_module(encoder_case):
    name, pt, x, refs, out = encoder_case
    model = models.build(name, weights=pt)
    errors = tref.compare_layers(model, x, refs, f"{name} vs bdpy, 227x227")
    assert max(errors.values()) < TOL
    np.testing.assert_allclose(refs["fc8"], out)  # the module's output is fc8
    probs = keras.ops.convert_to_numpy(model(tref.to_nhwc(x)))
    e = np.exp(out - out.max(axis=1, keepdims=True))
    assert tref.rel_err(probs, e / e.sum(axis=1, keepdims=True)) < TOL


def test_encoder_without_top_uses_the_conv_weights_only(encoder_case, tmp_path):
    name, pt, x, refs, _ = encoder_case
    model = models.build(name, include_top=False, input_shape=(227, 227, 3))
    report = models.torch_weights.load_state_dict(
        model, models.torch_weights.read_state_dict(pt), models.torch_layer_names(name))
    top = [k for k in report["unused"]]
    assert top and all(k.startswith("classifier.") for k in top)
    convs = {n: r for n, r in refs.items() if n.startswith(("conv", "relu")) and r.ndim == 4}
    errors = tref.compare_layers(model, x, convs, f"{name} without top")
    assert max(errors.values()) < TOL
