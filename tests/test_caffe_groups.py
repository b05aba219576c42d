"""Grouped convolutions (Caffe's ``group``, as in CaffeNet/AlexNet) in keras_icnn.caffe,
against the NumPy Caffe reference of ``tests/caffe_reference.py``.  Run with ``-s`` to see the
per-layer maximum relative errors."""
from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import caffe_reference as cref  # noqa: E402
from keras_icnn import caffe, models  # noqa: E402
from keras_icnn.caffe.layers import CaffeConv2D  # noqa: E402

TOL = 1e-5

# A small CaffeNet: conv1 (stride 4), pool before LRN, grouped conv2/conv4/conv5 (conv5 strided
# with a pad Keras' "same" cannot express: CaffeConv2D with groups), then InnerProducts.
NET_CAFFENET = """
name: "mini_caffenet"
input: "data"
input_shape { dim: 2 dim: 3 dim: 67 dim: 67 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 11 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
        convolution_param { num_output: 12 pad: 2 kernel_size: 5 group: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "conv4" type: "Convolution" bottom: "conv2" top: "conv4"
        convolution_param { num_output: 8 pad: 1 kernel_size: 3 group: 4 } }
layer { name: "relu4" type: "ReLU" bottom: "conv4" top: "conv4" }
layer { name: "conv5" type: "Convolution" bottom: "conv4" top: "conv5"
        convolution_param { num_output: 6 pad: 2 kernel_size: 3 stride: 2 group: 2 } }
layer { name: "relu5" type: "ReLU" bottom: "conv5" top: "conv5" }
layer { name: "fc6" type: "InnerProduct" bottom: "conv5" top: "fc6"
        inner_product_param { num_output: 10 } }
"""


@pytest.fixture(scope="module")
def caffenet_case(tmp_path_factory):
    inputs = {"data": np.random.default_rng(4).standard_normal((2, 3, 67, 67)) * 50}
    ref = cref.CaffeReference(NET_CAFFENET, seed=4)
    outs = ref.forward(inputs)
    d = tmp_path_factory.mktemp("caffenet")
    (d / "net.prototxt").write_text(NET_CAFFENET)
    (d / "net.caffemodel").write_bytes(cref.make_caffemodel(NET_CAFFENET, ref.weights))
    return d, ref, inputs, outs


def test_the_reference_groups_like_separate_convolutions():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((6, 2, 3, 3)), np.arange(6.)
    got = cref.conv2d(x, w, b, (1, 1), (1, 1), (1, 1), group=2)
    first = cref.conv2d(x[:, :2], w[:3], b[:3], (1, 1), (1, 1), (1, 1))
    second = cref.conv2d(x[:, 2:], w[3:], b[3:], (1, 1), (1, 1), (1, 1))
    np.testing.assert_allclose(got, np.concatenate([first, second], axis=1))


def test_grouped_caffenet_matches_reference(caffenet_case):
    d, _, inputs, outs = caffenet_case
    model = caffe.build_model(d / "net.prototxt")
    assert {n: model.get_layer(n).groups for n in ("conv1", "conv2", "conv4", "conv5")} == {
        "conv1": 1, "conv2": 2, "conv4": 4, "conv5": 2}
    assert isinstance(model.get_layer("conv5"), CaffeConv2D)
    assert model.get_layer("conv2").kernel.shape == (5, 5, 4, 12)
    report = caffe.load_caffe_weights(model, d / "net.caffemodel", d / "net.prototxt")
    assert report["flatten_permuted"] == ["fc6"]
    names = [n for n in outs if n != "data"]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    got = probe(inputs["data"].transpose(0, 2, 3, 1).astype(np.float32))
    print("\n[grouped mini CaffeNet] max relative error per layer:")
    for n, g in zip(names, got):
        g = keras.ops.convert_to_numpy(g)
        g = g.transpose(0, 3, 1, 2) if g.ndim == 4 else g
        err = float(np.max(np.abs(g - outs[n])) / np.max(np.abs(outs[n])))
        print(f"    {n:<8s} {err:.2e}")
        assert err < TOL, n


def test_group_errors(caffenet_case):
    d, ref, _, _ = caffenet_case
    bad = NET_CAFFENET.replace("num_output: 8 pad: 1 kernel_size: 3 group: 4",
                               "num_output: 8 pad: 1 kernel_size: 3 group: 5")
    with pytest.raises(caffe.CaffeFormatError, match=r"conv4.*group=5 must divide.*\(12\)"):
        caffe.build_model(caffe.parse_prototxt(bad))
    weights = dict(ref.weights)
    weights["conv2"] = [np.zeros((12, 8, 5, 5), np.float32), weights["conv2"][1]]
    (d / "ungrouped.caffemodel").write_bytes(cref.make_caffemodel(NET_CAFFENET, weights))
    with pytest.raises(caffe.CaffeFormatError, match=r"conv2.*\(12, 8, 5, 5\).*\(12, 4, 5, 5\)"):
        caffe.load_caffe_weights(caffe.build_model(d / "net.prototxt"),
                                 d / "ungrouped.caffemodel")


def test_reference_net_takes_caffe_weights_too(tmp_path):
    """The hand-built CaffeNet has Caffe's layer names and kernel layouts: a caffemodel of the
    same shapes loads by name (here random weights for its weight layers)."""
    model = models.reference_net(include_top=False, input_shape=(67, 67, 3))
    text = NET_CAFFENET.split('layer { name: "conv1"')[0]
    for layer in (l for l in model.layers if l.weights):
        k = layer.kernel.shape
        text += (f'layer {{ name: "{layer.name}" type: "Convolution" bottom: "data" '
                 f'top: "{layer.name}" convolution_param {{ num_output: {k[3]} '
                 f'kernel_size: {k[0]} group: {layer.groups} }} }}\n')
    rng = np.random.default_rng(0)
    weights = {l.name: [rng.standard_normal((l.kernel.shape[3], l.kernel.shape[2])
                                            + tuple(l.kernel.shape[:2])).astype(np.float32),
                        rng.standard_normal(l.kernel.shape[3]).astype(np.float32)]
               for l in model.layers if l.weights}
    (tmp_path / "w.caffemodel").write_bytes(cref.make_caffemodel(text, weights))
    report = caffe.load_caffe_weights(model, tmp_path / "w.caffemodel")
    assert sorted(report["loaded"]) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    np.testing.assert_array_equal(model.get_layer("conv4").kernel.numpy(),
                                  weights["conv4"][0].transpose(2, 3, 1, 0))
