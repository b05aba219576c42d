"""Tests for keras_icnn.caffe: parsing, model building, weight loading.

Every numerical test compares the Keras model, layer by layer, with the
NumPy reference of Caffe's forward pass in ``tests/caffe_reference.py``;
run with ``-s`` to see the per-layer maximum relative errors.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from google.protobuf import message as pb_message

sys.path.insert(0, str(Path(__file__).parent))

import caffe_reference as cref  # noqa: E402
from keras_icnn import caffe  # noqa: E402
from keras_icnn.caffe import proto  # noqa: E402
from keras_icnn.caffe.layers import (  # noqa: E402
    CaffeConv2D,
    CaffeConv2DTranspose,
    CaffeLRN,
    CaffePooling2D,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "caffe"
TOL = 1e-5

# ---------------------------------------------------------------------------
# Test networks
# ---------------------------------------------------------------------------

# (a) The DeepSim generator's layer types, scaled down, plus every
# deconvolution/convolution code path of the builder ("same", "valid",
# explicit crop/pad fallbacks) and an in-place ReLU.
NET_GEN = """
name: "mini_generator"
input: "feat"
input_shape { dim: 1 dim: 16 }
layer { name: "defc7" type: "InnerProduct" bottom: "feat" top: "defc7"
        inner_product_param { num_output: 24 } }
layer { name: "relu_defc7" type: "ReLU" bottom: "defc7" top: "relu_defc7"
        relu_param { negative_slope: 0.3 } }
layer { name: "defc5" type: "InnerProduct" bottom: "relu_defc7" top: "defc5"
        inner_product_param { num_output: 64 } }
layer { name: "relu_defc5" type: "ReLU" bottom: "defc5" top: "relu_defc5"
        relu_param { negative_slope: 0.3 } }
layer { name: "reshape_relu_defc5" type: "Reshape" bottom: "relu_defc5"
        top: "reshape_relu_defc5" reshape_param { shape { dim: 1 dim: 4 dim: 4 dim: 4 } } }
layer { name: "deconv5" type: "Deconvolution" bottom: "reshape_relu_defc5" top: "deconv5"
        param { lr_mult: 1 decay_mult: 0 } param { lr_mult: 0 decay_mult: 0 }
        convolution_param { num_output: 6 pad: 1 kernel_size: 4 stride: 2 } }
layer { name: "relu_deconv5" type: "ReLU" bottom: "deconv5" top: "deconv5"
        relu_param { negative_slope: 0.3 } }
layer { name: "conv5_1" type: "Deconvolution" bottom: "deconv5" top: "conv5_1"
        convolution_param { num_output: 5 pad: 1 kernel_size: 3 stride: 1 } }
layer { name: "relu_conv5_1" type: "ReLU" bottom: "conv5_1" top: "relu_conv5_1"
        relu_param { negative_slope: 0.3 } }
layer { name: "deconv4" type: "Deconvolution" bottom: "relu_conv5_1" top: "deconv4"
        convolution_param { num_output: 4 pad: 1 kernel_size: 3 stride: 2 } }
layer { name: "relu_deconv4" type: "ReLU" bottom: "deconv4" top: "relu_deconv4"
        relu_param { negative_slope: 0.3 } }
layer { name: "deconv3" type: "Deconvolution" bottom: "relu_deconv4" top: "deconv3"
        convolution_param { num_output: 4 kernel_size: 2 stride: 2 } }
layer { name: "relu_deconv3" type: "ReLU" bottom: "deconv3" top: "relu_deconv3"
        relu_param { negative_slope: 0.3 } }
layer { name: "conv3" type: "Convolution" bottom: "relu_deconv3" top: "conv3"
        convolution_param { num_output: 4 pad: 1 kernel_size: 3 stride: 2 } }
layer { name: "relu_conv3" type: "ReLU" bottom: "conv3" top: "relu_conv3"
        relu_param { negative_slope: 0.3 } }
layer { name: "deconv0" type: "Deconvolution" bottom: "relu_conv3" top: "generated"
        convolution_param { num_output: 3 pad: 1 kernel_size: 4 stride: 2 } }
"""

# (b) VGG-style legacy V1 net: fc6 follows a conv stack with 2x2 spatial size.
NET_VGG_V1 = """
name: "mini_vgg"
input: "data"
input_dim: 2
input_dim: 3
input_dim: 8
input_dim: 8
layers { bottom: "data" top: "conv1_1" name: "conv1_1" type: CONVOLUTION
         convolution_param { num_output: 4 pad: 1 kernel_size: 3 } }
layers { bottom: "conv1_1" top: "relu1_1" name: "relu1_1" type: RELU }
layers { bottom: "relu1_1" top: "pool1" name: "pool1" type: POOLING
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { bottom: "pool1" top: "conv2_1" name: "conv2_1" type: CONVOLUTION
         convolution_param { num_output: 6 pad: 1 kernel_size: 3 } }
layers { bottom: "conv2_1" top: "relu2_1" name: "relu2_1" type: RELU }
layers { bottom: "relu2_1" top: "pool2" name: "pool2" type: POOLING
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { bottom: "pool2" top: "fc6" name: "fc6" type: INNER_PRODUCT
         inner_product_param { num_output: 7 } }
layers { bottom: "fc6" top: "relu6" name: "relu6" type: RELU }
layers { bottom: "relu6" top: "drop6" name: "drop6" type: DROPOUT
         dropout_param { dropout_ratio: 0.5 } }
layers { bottom: "drop6" top: "fc7" name: "fc7" type: INNER_PRODUCT
         inner_product_param { num_output: 5 } }
layers { bottom: "fc7" top: "relu7" name: "relu7" type: RELU }
layers { bottom: "relu7" top: "fc8" name: "fc8" type: INNER_PRODUCT
         inner_product_param { num_output: 4 } }
layers { bottom: "fc8" top: "prob" name: "prob" type: SOFTMAX }
"""

# (c) Caffe-specific arithmetic: ceil-mode MAX pooling, padded AVE pooling,
# strided padded convolution, LRN, Eltwise, explicit Flatten, global pooling,
# an Input layer and in-place ReLUs.
NET_OPS = """
name: "ops"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 pad: 1 kernel_size: 3
                            weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 8 pad: 1 kernel_size: 3 stride: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "conv2b" type: "Convolution" bottom: "pool1" top: "conv2b"
        convolution_param { num_output: 8 kernel_size: 1 stride: 2 bias_term: false } }
layer { name: "sum2" type: "Eltwise" bottom: "conv2" bottom: "conv2b" top: "sum2" }
layer { name: "pool2" type: "Pooling" bottom: "sum2" top: "pool2"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool3" type: "Pooling" bottom: "sum2" top: "pool3"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "gpool" type: "Pooling" bottom: "sum2" top: "gpool"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "flat" type: "Flatten" bottom: "pool2" top: "flat" }
layer { name: "fc6" type: "InnerProduct" bottom: "flat" top: "fc6"
        inner_product_param { num_output: 10 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc7" top: "prob" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc7" top: "loss"
        include { phase: TRAIN } }
"""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def nchw(x):
    x = np.asarray(x)
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


def nhwc(x):
    x = np.asarray(x)
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-12))


def layer_outputs(model, names, inputs):
    fm = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = fm(inputs)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    return [keras.ops.convert_to_numpy(o) for o in outs]


def compare(model, ref_outputs, inputs_nchw, label, names=None):
    """Per-layer max relative error between ``model`` and the reference."""
    names = list(names or ref_outputs)
    keras_inputs = [nhwc(inputs_nchw[t.name]) for t in model.inputs]
    got = layer_outputs(model, names, keras_inputs)
    errors = {n: rel_err(nchw(g), ref_outputs[n]) for n, g in zip(names, got)}
    print(f"\n[{label}] max relative error per layer (Keras vs NumPy Caffe reference):")
    for n, e in errors.items():
        print(f"    {n:<20s} {e:.2e}")
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, f"{label}: layer {worst} differs by {errors[worst]:.2e}"
    return errors


def run_reference(text, inputs, seed=0):
    ref = cref.CaffeReference(text, seed=seed)
    return ref, ref.forward(inputs)


@pytest.fixture(scope="module")
def gen_case(tmp_path_factory):
    rng = np.random.default_rng(1)
    inputs = {"feat": rng.standard_normal((1, 16)).astype(np.float32)}
    ref, outs = run_reference(NET_GEN, inputs, seed=1)
    d = tmp_path_factory.mktemp("gen")
    (d / "gen.prototxt").write_text(NET_GEN)
    (d / "gen.caffemodel").write_bytes(
        cref.make_caffemodel(NET_GEN, ref.weights, unpacked=("conv5_1",), double=("deconv3",))
    )
    return d, ref, inputs, outs


@pytest.fixture(scope="module")
def vgg_case(tmp_path_factory):
    rng = np.random.default_rng(2)
    inputs = {"data": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)}
    ref, outs = run_reference(NET_VGG_V1, inputs, seed=2)
    d = tmp_path_factory.mktemp("vgg")
    (d / "vgg.prototxt").write_text(NET_VGG_V1)
    (d / "vgg.caffemodel").write_bytes(
        cref.make_caffemodel(NET_VGG_V1, ref.weights, legacy_blobs=True)
    )
    return d, ref, inputs, outs


def hand_built_vgg(flatten_name="flatten"):
    """An NHWC model like keras_icnn.models.vgg19(): plain Keras layers,
    Flatten over NHWC, no Dropout layers."""
    x = inputs = keras.Input((8, 8, 3), name="data")
    for b, (filters, n) in enumerate([(4, 1), (6, 1)], start=1):
        for i in range(1, n + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{b}_{i}")(x)
            x = keras.layers.ReLU(name=f"relu{b}_{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{b}")(x)
    x = keras.layers.Flatten(name=flatten_name)(x)
    x = keras.layers.Dense(7, name="fc6")(x)
    x = keras.layers.ReLU(name="relu6")(x)
    x = keras.layers.Dense(5, name="fc7")(x)
    x = keras.layers.ReLU(name="relu7")(x)
    x = keras.layers.Dense(4, name="fc8")(x)
    x = keras.layers.Softmax(name="prob")(x)
    return keras.Model(inputs, x, name="hand_vgg")


# ---------------------------------------------------------------------------
# Schema and parsing
# ---------------------------------------------------------------------------


def test_schema_uses_caffe_field_numbers():
    def num(msg, field):
        return msg.DESCRIPTOR.fields_by_name[field].number

    net = proto.NetParameter
    assert (num(net, "layer"), num(net, "layers"), num(net, "input"),
            num(net, "input_shape"), num(net, "input_dim")) == (100, 2, 3, 8, 4)
    lp = proto.LayerParameter
    assert (num(lp, "blobs"), num(lp, "convolution_param"), num(lp, "inner_product_param"),
            num(lp, "pooling_param"), num(lp, "relu_param"), num(lp, "reshape_param"),
            num(lp, "input_param")) == (7, 106, 117, 121, 123, 133, 143)
    v1 = proto.V1LayerParameter
    assert (num(v1, "name"), num(v1, "type"), num(v1, "blobs"),
            num(v1, "convolution_param"), num(v1, "inner_product_param")) == (4, 5, 6, 10, 17)
    blob = proto.BlobProto
    assert (num(blob, "data"), num(blob, "shape"), num(blob, "double_data"),
            num(blob, "num"), num(blob, "width")) == (5, 7, 8, 1, 4)
    assert blob.DESCRIPTOR.fields_by_name["data"].GetOptions().packed
    conv = proto.message_class("ConvolutionParameter")()
    assert conv.bias_term is True and conv.group == 1
    enum = v1.DESCRIPTOR.enum_types_by_name["LayerType"]
    assert enum.values_by_name["DECONVOLUTION"].number == 39
    assert enum.values_by_name["INNER_PRODUCT"].number == 14


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Caffe reference files absent")
def test_parse_shared_prototxts():
    vgg = caffe.read_prototxt(SHARED / "VGG_ILSVRC_19_layers.prototxt")
    layers = caffe.net_layers(vgg)
    assert len(layers) == 45 and layers[0].legacy
    assert caffe.net_inputs(vgg) == {"data": (10, 3, 224, 224)}
    assert [l.type for l in layers[:3]] == ["Convolution", "ReLU", "Convolution"]
    gen = caffe.read_prototxt(SHARED / "deepsim_fc7_generator.prototxt")
    glayers = caffe.net_layers(gen)
    assert caffe.net_inputs(gen) == {"feat": (1, 4096)}
    assert glayers[-1].name == "deconv0" and glayers[-1].tops == ("generated",)


def test_prototxt_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer {\n  name "a"\n  type: "ReLU"\n}\n')
    with pytest.raises(caffe.CaffeFormatError, match=r"bad\.prototxt, line 3"):
        caffe.read_prototxt(bad)
    empty = tmp_path / "empty.prototxt"
    empty.write_text('name: "nothing"\n')
    with pytest.raises(caffe.CaffeFormatError, match="no layers"):
        caffe.read_prototxt(empty)


def test_blob_encodings():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7
    packed = proto.BlobProto()
    cref.fill_blob(packed, arr)
    legacy = proto.BlobProto()
    cref.fill_blob(legacy, arr.reshape(6, 4), legacy=True)
    double = proto.BlobProto()
    cref.fill_blob(double, arr, double=True)
    unpacked = proto.BlobProto.FromString(cref.unpacked_blob_bytes(arr))
    assert caffe.blob_shape(legacy) == (1, 1, 6, 4)
    np.testing.assert_array_equal(caffe.blob_to_array(packed), arr)
    np.testing.assert_array_equal(caffe.blob_to_array(legacy), arr.reshape(1, 1, 6, 4))
    np.testing.assert_array_equal(caffe.blob_to_array(double), arr)
    np.testing.assert_array_equal(caffe.blob_to_array(unpacked), arr)
    short = proto.BlobProto()
    short.shape.dim.extend([2, 3])
    short.data.extend([1.0, 2.0])
    with pytest.raises(caffe.CaffeFormatError, match=r"needs 6 values.*holds 2"):
        caffe.blob_to_array(short, context="layer 'x' blob #0")


# ---------------------------------------------------------------------------
# Numerical agreement with the Caffe reference
# ---------------------------------------------------------------------------


def test_generator_net_matches_reference(gen_case):
    d, ref, inputs, outs = gen_case
    model = caffe.build_model(d / "gen.prototxt")
    # The builder picks exact plain Keras layers where possible, Caffe layers otherwise.
    kinds = {l.name: type(l) for l in model.layers}
    assert kinds["deconv5"] is keras.layers.Conv2DTranspose
    assert kinds["conv5_1"] is keras.layers.Conv2DTranspose
    assert kinds["deconv4"] is CaffeConv2DTranspose  # k3 s2 p1: crop fallback
    assert kinds["deconv3"] is keras.layers.Conv2DTranspose  # p0: valid
    assert kinds["conv3"] is CaffeConv2D  # strided + padded
    assert kinds["relu_deconv5"] is keras.layers.LeakyReLU
    assert model.input.name == "feat" and tuple(model.output.shape) == (None, 30, 30, 3)
    report = caffe.load_caffe_weights(model, d / "gen.caffemodel", d / "gen.prototxt")
    assert report["missing"] == [] and report["flatten_permuted"] == []
    errors = compare(model, outs, inputs, "(a) mini generator, prototxt builder")
    # In-place ReLU: the conv layer's Keras output is pre-activation.
    assert np.min(outs["deconv5"]) < 0 and "relu_deconv5" in errors


def test_vgg_v1_net_matches_reference_via_builder(vgg_case):
    d, ref, inputs, outs = vgg_case
    model = caffe.build_model(d / "vgg.prototxt")
    assert isinstance(model.get_layer("fc6_flatten"), keras.layers.Flatten)
    report = caffe.load_caffe_weights(model, d / "vgg.caffemodel")
    assert report["flatten_permuted"] == ["fc6"]
    compare(model, outs, inputs, "(b) mini VGG (V1 layers), prototxt builder")


def test_vgg_v1_weights_into_hand_built_nhwc_model(vgg_case):
    d, ref, inputs, outs = vgg_case
    model = hand_built_vgg()
    report = caffe.load_caffe_weights(model, d / "vgg.caffemodel")
    assert report["flatten_permuted"] == ["fc6"]
    assert report["unused"] == [] and report["missing"] == []
    names = [n for n in outs if n not in ("drop6",)]
    compare(model, outs, inputs, "(b) mini VGG (V1 layers), hand-built NHWC model", names)


def test_ops_net_matches_reference(tmp_path):
    rng = np.random.default_rng(3)
    inputs = {"data": rng.standard_normal((2, 3, 12, 12)).astype(np.float32)}
    ref, outs = run_reference(NET_OPS, inputs, seed=3)
    path = tmp_path / "ops.caffemodel"
    path.write_bytes(cref.make_caffemodel(NET_OPS, ref.weights))
    model = caffe.build_model(caffe.parse_prototxt(NET_OPS))
    kinds = {l.name: type(l) for l in model.layers}
    assert kinds["pool1"] is CaffePooling2D and kinds["pool2"] is CaffePooling2D
    assert kinds["norm1"] is CaffeLRN and "loss" not in kinds
    assert [t.name for t in model.outputs] and len(model.outputs) == 3  # pool3, gpool, prob
    assert outs["pool1"].shape == (2, 6, 6, 6)  # ceil((12-3)/2)+1 = 6; Keras 'valid' gives 5
    assert outs["pool3"].shape == (2, 8, 2, 2)  # last window clipped out of the padding
    report = caffe.load_caffe_weights(model, path)
    assert report["flatten_permuted"] == []  # explicit Caffe Flatten keeps C,H,W order
    compare(model, outs, inputs, "(c) Caffe-specific ops (ceil pooling, AVE pad, LRN, ...)")


def test_models_with_caffe_layers_survive_keras_serialization(tmp_path):
    model = caffe.build_model(caffe.parse_prototxt(NET_OPS))
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 3)).astype(np.float32)
    path = tmp_path / "ops.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    for a, b in zip(model(x), again(x)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a),
                                   keras.ops.convert_to_numpy(b), rtol=1e-6, atol=1e-6)
    gen = caffe.build_model(caffe.parse_prototxt(NET_GEN))
    again = keras.Model.from_config(gen.get_config())
    assert isinstance(again.get_layer("deconv4"), CaffeConv2DTranspose)
    assert again.get_layer("conv3").caffe_pad == (1, 1)


def test_pooling_output_sizes_follow_caffe():
    from keras_icnn.caffe.layers import caffe_pool_output_size as size

    assert size(12, 3, 2, 0) == 6  # ceil((12-3)/2)+1, Keras 'valid' would give 5
    assert size(224, 2, 2, 0) == 112
    assert size(3, 3, 2, 1) == 2
    assert size(5, 2, 2, 1) == 3  # clipped: the 4th window would start in the padding
    assert size(12, 3, 2, 0, ceil_mode=False) == 5


# ---------------------------------------------------------------------------
# Conversion (CLI function) and weights file compatibility
# ---------------------------------------------------------------------------


def test_main_convert_writes_weights_and_manifest(vgg_case, tmp_path, capsys):
    d, ref, inputs, outs = vgg_case
    out = tmp_path / "sub" / "mini_vgg.weights.h5"
    rc = caffe.main_convert(["--prototxt", str(d / "vgg.prototxt"),
                             "--caffemodel", str(d / "vgg.caffemodel"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    manifest_file = tmp_path / "sub" / "mini_vgg.weights.json"
    assert out.is_file() and manifest_file.is_file()
    assert sorted(os.listdir(out.parent)) == ["mini_vgg.weights.h5", "mini_vgg.weights.json"]
    manifest = json.loads(manifest_file.read_text())
    assert manifest["sources"]["caffemodel"]["sha256"] == caffe.convert.sha256_file(
        d / "vgg.caffemodel")
    assert manifest["weights_sha256"] == caffe.convert.sha256_file(out)
    assert [l["name"] for l in manifest["layers"]] == [
        "conv1_1", "conv2_1", "fc6", "fc7", "fc8"]
    assert manifest["layers"][0]["weights"][0]["shape"] == [3, 3, 3, 4]
    assert manifest["flatten_permuted"] == ["fc6"]
    # The .weights.h5 loads into a hand-built NHWC model (other weightless layers).
    hand = hand_built_vgg(flatten_name="flatten")
    hand.load_weights(out)
    names = [n for n in outs if n != "drop6"]
    compare(hand, outs, inputs, "(b) mini VGG, .weights.h5 from main_convert into hand-built model",
            names)


def test_main_convert_reports_errors(tmp_path, capsys):
    rc = caffe.main_convert(["--prototxt", str(tmp_path / "none.prototxt"),
                             "--caffemodel", str(tmp_path / "none.caffemodel"),
                             "--out", str(tmp_path / "w.weights.h5")])
    assert rc == 1 and "not found" in capsys.readouterr().err
    assert caffe.main_convert(["--prototxt", "x"]) == 2  # argparse usage error
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        caffe.convert_caffe("a.prototxt", "b.caffemodel", tmp_path / "w.h5")


def test_add_convert_parser_subcommand(vgg_case, tmp_path):
    import argparse

    d, *_ = vgg_case
    parser = argparse.ArgumentParser(prog="keras-icnn")
    caffe.add_convert_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "w.weights.h5"
    ns = parser.parse_args(["convert-caffe", "--prototxt", str(d / "vgg.prototxt"),
                            "--caffemodel", str(d / "vgg.caffemodel"), "--out", str(out)])
    assert ns.func(ns) == 0 and out.is_file()


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_truncated_caffemodel_names_file_offset_and_layer(vgg_case, gen_case, tmp_path):
    d, *_ = vgg_case
    data = (d / "vgg.caffemodel").read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 7, 1):
        path = tmp_path / f"cut{cut}.caffemodel"
        path.write_bytes(data[:cut])
        with pytest.raises(caffe.CaffeFormatError) as info:
            caffe.read_caffemodel(path)
        msg = str(info.value)
        assert str(path) in msg and "byte offset" in msg, msg
        assert isinstance(info.value, ValueError)
    # V2 files end with the last layer's record: a cut names that layer.
    gen_data = (gen_case[0] / "gen.caffemodel").read_bytes()
    path = tmp_path / "gen_cut.caffemodel"
    path.write_bytes(gen_data[:-10])
    with pytest.raises(caffe.CaffeFormatError,
                       match=r"gen_cut.caffemodel.*byte offset \d+.*layer #\d+ 'deconv0'"):
        caffe.read_caffemodel(path)


def test_decode_error_becomes_caffe_format_error(tmp_path):
    path = tmp_path / "garbage.caffemodel"
    path.write_bytes(b"\xff\xff\xff\xff")  # an invalid tag
    with pytest.raises(caffe.CaffeFormatError, match="garbage.caffemodel") as info:
        caffe.read_caffemodel(path)
    assert isinstance(info.value.__cause__, pb_message.DecodeError)
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(caffe.CaffeFormatError, match="empty"):
        caffe.read_caffemodel(empty)
    text = tmp_path / "text.caffemodel"
    text.write_text(NET_GEN)
    with pytest.raises(caffe.CaffeFormatError, match="prototxt"):
        caffe.read_caffemodel(text)


def test_random_bytes_never_crash_the_parser():
    rng = np.random.default_rng(1234)
    for i in range(3000):
        data = rng.bytes(int(rng.integers(1, 2048)))
        if i % 3 == 0:  # start like a real layer record, then garbage
            data = b"\xa2\x06" + data
        try:
            net = caffe.parse_caffemodel(data, source="random")
        except caffe.CaffeFormatError:
            continue
        # Whatever parses is either usable or rejected with CaffeFormatError.
        try:
            caffe.caffemodel_weights(net, source="random")
        except caffe.CaffeFormatError:
            pass


def test_every_truncation_is_reported(gen_case):
    d = gen_case[0]
    data = (d / "gen.caffemodel").read_bytes()
    n_full = len(caffe.net_layers(caffe.parse_caffemodel(data)))
    model = caffe.build_model(d / "gen.prototxt")
    for cut in range(0, len(data), 7):
        try:
            net = caffe.parse_caffemodel(data[:cut], source="cut.caffemodel")
        except caffe.CaffeFormatError as exc:
            assert "cut.caffemodel" in str(exc)
            continue
        # A cut exactly between two layer records is a valid, shorter file;
        # loading it then fails on the missing layers.
        assert len(caffe.net_layers(net)) < n_full
        with pytest.raises(caffe.CaffeFormatError, match="no weights"):
            caffe.load_caffe_weights(model, net)


def test_unsupported_layer_type_names_layer_and_type():
    text = NET_GEN.replace('type: "ReLU" bottom: "conv5_1"', 'type: "PReLU" bottom: "conv5_1"')
    with pytest.raises(caffe.UnsupportedLayerError, match=r"relu_conv5_1.*PReLU"):
        caffe.build_model(caffe.parse_prototxt(text))
    grouped = NET_GEN.replace("num_output: 5 pad: 1 kernel_size: 3 stride: 1",
                              "num_output: 4 pad: 1 kernel_size: 3 stride: 1 group: 2")
    with pytest.raises(caffe.UnsupportedLayerError, match=r"conv5_1.*group=2"):
        caffe.build_model(caffe.parse_prototxt(grouped))  # a grouped Deconvolution


def test_blob_shape_mismatch_names_layer_and_shapes(vgg_case, tmp_path):
    d, ref, *_ = vgg_case
    weights = dict(ref.weights)
    weights["conv2_1"] = [np.zeros((6, 4, 5, 5), np.float32), weights["conv2_1"][1]]
    path = tmp_path / "bad_shape.caffemodel"
    path.write_bytes(cref.make_caffemodel(NET_VGG_V1, weights))
    model = caffe.build_model(d / "vgg.prototxt")
    with pytest.raises(caffe.CaffeFormatError,
                       match=r"conv2_1.*\(6, 4, 5, 5\).*\(6, 4, 3, 3\)"):
        caffe.load_caffe_weights(model, path)


def test_missing_weights_are_reported(vgg_case, tmp_path):
    d, ref, *_ = vgg_case
    weights = {k: v for k, v in ref.weights.items() if k != "fc7"}
    path = tmp_path / "no_fc7.caffemodel"
    path.write_bytes(cref.make_caffemodel(NET_VGG_V1, weights))
    with pytest.raises(caffe.CaffeFormatError, match=r"fc7.*INNER|fc7.*InnerProduct"):
        caffe.load_caffe_weights(hand_built_vgg(), path, d / "vgg.prototxt")
    with pytest.raises(caffe.CaffeFormatError, match=r"no weights for Keras layer\(s\) \['fc7'\]"):
        caffe.load_caffe_weights(hand_built_vgg(), path)
    report = caffe.load_caffe_weights(hand_built_vgg(), path, strict=False)
    assert report["missing"] == ["fc7"]
    # A bias mismatch (Caffe bias_term false vs Keras use_bias) is also explicit.
    weights = dict(ref.weights)
    weights["fc8"] = weights["fc8"][:1]
    path.write_bytes(cref.make_caffemodel(NET_VGG_V1, weights))
    with pytest.raises(caffe.CaffeFormatError, match=r"fc8.*1 blob"):
        caffe.load_caffe_weights(hand_built_vgg(), path)


def test_builder_rejects_dangling_bottom():
    text = NET_GEN.replace('bottom: "relu_defc7" top: "defc5"', 'bottom: "nope" top: "defc5"')
    with pytest.raises(caffe.CaffeFormatError, match=r"defc5.*'nope'"):
        caffe.build_model(caffe.parse_prototxt(text))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Caffe reference files absent")
def test_vgg19_prototxt_matches_models_vgg19():
    """The Oxford VGG19 prototxt builds the same weight layers as
    keras_icnn.models.vgg19(), and both flatten NHWC before fc6, so the
    caffemodel (and .weights.h5 files converted from it) load into either."""
    models = pytest.importorskip("keras_icnn.models")
    if not hasattr(models, "vgg19"):
        pytest.skip("keras_icnn.models.vgg19 not available")
    lead = models.vgg19(weights=None)
    built = caffe.build_model(SHARED / "VGG_ILSVRC_19_layers.prototxt")

    def weight_layers(model):
        return [(l.name, type(l).__name__, [tuple(w.shape) for w in l.weights])
                for l in model.layers if l.weights]

    assert weight_layers(built) == weight_layers(lead)
    assert built.get_layer("conv1_1").padding == "same"
    assert isinstance(built.get_layer("pool5"), keras.layers.MaxPooling2D)
    assert caffe.flatten_source_shape(lead.get_layer("fc6")) == (7, 7, 512)
    assert caffe.flatten_source_shape(built.get_layer("fc6")) == (7, 7, 512)
    assert caffe.flatten_source_shape(lead.get_layer("fc7")) is None


def test_caffe_imports_only_leaf_modules_of_the_package():
    """keras_icnn.caffe depends on the rest of the package only through the
    leaf modules keras_icnn.errors and keras_icnn.io.atomic (no cycles)."""
    import ast

    allowed = {"keras_icnn.errors", "keras_icnn.io.atomic"}
    root = Path(caffe.__file__).parent
    found = {}
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if not node.level else ["<relative>"]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "<relative>" or (
                    name.split(".")[0] == "keras_icnn"
                    and name not in allowed
                    and not (name + ".").startswith("keras_icnn.caffe.")
                ):
                    found.setdefault(path.name, []).append(name)
    assert found == {}
