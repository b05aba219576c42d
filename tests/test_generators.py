"""Tests for keras_icnn.generators (DeepSim generator)."""

from __future__ import annotations

import dataclasses
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import caffe_reference as cref  # noqa: E402
from keras_icnn import caffe, generators  # noqa: E402
from keras_icnn.caffe import download  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "caffe"
TOL = 1e-5

# The DeepSim fc7 architecture with every layer kept, fewer channels and a
# 2x2 start (output 128x128).
SMALL = dataclasses.replace(
    generators.DEEPSIM_FC7,
    latent_dim=8,
    dense=(("defc7", "relu_defc7", 12), ("defc6", "relu_defc6", 12),
           ("defc5", "relu_defc5", 16)),
    reshape_chw=(4, 2, 2),
    deconvs=tuple(
        (name, act, 3 if name == "deconv0" else 4, k, s, p)
        for name, act, _, k, s, p in generators.DEEPSIM_FC7.deconvs
    ),
)


def spec_to_prototxt(spec) -> str:
    """Caffe text for a GeneratorSpec, written like the released prototxt."""
    lines = [f'input: "{spec.input_name}"',
             f"input_shape {{ dim: 1 dim: {spec.latent_dim} }}"]
    bottom = spec.input_name
    slope = spec.negative_slope
    for name, act, units in spec.dense:
        lines.append(f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" '
                     f'top: "{name}" inner_product_param {{ num_output: {units} }} }}')
        lines.append(f'layer {{ name: "{act}" type: "ReLU" bottom: "{name}" top: "{act}" '
                     f'relu_param {{ negative_slope: {slope} }} }}')
        bottom = act
    c, h, w = spec.reshape_chw
    lines.append(f'layer {{ name: "{spec.reshape_name}" type: "Reshape" bottom: "{bottom}" '
                 f'top: "{spec.reshape_name}" reshape_param {{ shape {{ dim: 1 dim: {c} '
                 f'dim: {h} dim: {w} }} }} }}')
    bottom = spec.reshape_name
    for name, act, filters, k, s, p in spec.deconvs:
        top = name if act else "generated"
        lines.append(
            f'layer {{ name: "{name}" type: "Deconvolution" bottom: "{bottom}" top: "{top}" '
            "param { lr_mult: 1 decay_mult: 0 } param { lr_mult: 0 decay_mult: 0 } "
            f"convolution_param {{ num_output: {filters} pad: {p} kernel_size: {k} "
            f"stride: {s} }} }}")
        if act:
            lines.append(f'layer {{ name: "{act}" type: "ReLU" bottom: "{name}" top: "{act}" '
                         f'relu_param {{ negative_slope: {slope} }} }}')
            bottom = act
    return "\n".join(lines) + "\n"


def structure(model):
    """(name, class, weight shapes) of every layer."""
    return [(l.name, type(l).__name__, [tuple(w.shape) for w in l.weights])
            for l in model.layers]


def rel_err(got, ref):
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref)) / np.max(np.abs(ref)))


def test_deepsim_fc7_architecture_matches_the_caffe_prototxt():
    model = generators.deepsim_fc7()
    assert model.name == "deepsim_fc7" and model.input.name == "feat"
    out = model(np.zeros((1, 4096), np.float32))
    assert tuple(out.shape) == (1, 256, 256, 3)
    weight_layers = [l.name for l in model.layers if l.weights]
    assert weight_layers == ["defc7", "defc6", "defc5", "deconv5", "conv5_1", "deconv4",
                             "conv4_1", "deconv3", "conv3_1", "deconv2", "deconv1", "deconv0"]
    slopes = {l.negative_slope for l in model.layers
              if isinstance(l, keras.layers.LeakyReLU)}
    assert slopes == {0.3}
    assert not isinstance(model.layers[-1], keras.layers.LeakyReLU)
    assert model.get_layer("reshape_relu_defc5").output.shape[1:] == (4, 4, 256)
    assert model.get_layer("conv5_1").kernel.shape == (3, 3, 512, 256)
    if not SHARED.is_dir():
        pytest.skip("shared Caffe reference files absent")
    built = caffe.build_model(SHARED / "deepsim_fc7_generator.prototxt")
    assert structure(built) == structure(model)
    for a, b in zip(built.layers, model.layers):
        for key in ("strides", "padding", "kernel_size", "filters", "negative_slope",
                    "target_shape", "dims", "use_bias"):
            assert getattr(a, key, None) == getattr(b, key, None), (a.name, key)


@pytest.fixture(scope="module")
def small_case(tmp_path_factory):
    text = spec_to_prototxt(SMALL)
    rng = np.random.default_rng(5)
    inputs = {"feat": rng.standard_normal((1, SMALL.latent_dim)).astype(np.float32)}
    ref = cref.CaffeReference(text, seed=5)
    outs = ref.forward(inputs)
    d = tmp_path_factory.mktemp("small_gen")
    (d / "gen.prototxt").write_text(text)
    (d / "gen.caffemodel").write_bytes(cref.make_caffemodel(text, ref.weights))
    return d, inputs, outs


def test_scaled_generator_loads_caffemodel_and_matches_reference(small_case):
    d, inputs, outs = small_case
    model = generators.build_generator(SMALL, name="small")
    report = caffe.load_caffe_weights(model, d / "gen.caffemodel", d / "gen.prototxt")
    assert report["missing"] == [] and report["unused"] == []
    names = list(outs)
    fm = keras.Model(model.input, [model.get_layer(n).output for n in names])
    got = [keras.ops.convert_to_numpy(t) for t in fm(inputs["feat"])]
    print("\n[generator (scaled DeepSim fc7), keras_icnn.generators] max relative error:")
    errors = {}
    for n, g in zip(names, got):
        g = g.transpose(0, 3, 1, 2) if g.ndim == 4 else g
        errors[n] = rel_err(g, outs[n])
        print(f"    {n:<20s} {errors[n]:.2e}")
    assert max(errors.values()) < TOL
    assert got[-1].shape == (1, 128, 128, 3)
    # The prototxt builder gives the same layers and weight shapes.
    built = caffe.build_model(d / "gen.prototxt")
    assert structure(built) == structure(model)


def test_converted_weights_file_loads_into_generator(small_case, tmp_path):
    d, inputs, outs = small_case
    out = tmp_path / "small.weights.h5"
    manifest = caffe.convert_caffe(d / "gen.prototxt", d / "gen.caffemodel", out)
    assert manifest["flatten_permuted"] == []
    model = generators.build_generator(SMALL, name="small")
    model.load_weights(out)
    got = keras.ops.convert_to_numpy(model(inputs["feat"])).transpose(0, 3, 1, 2)
    assert rel_err(got, outs["deconv0"]) < TOL


def test_deepsim_fc7_rejects_bad_weights_arguments(tmp_path):
    with pytest.raises(ValueError, match="weights"):
        generators.deepsim_fc7(weights=123)
    with pytest.raises(ValueError, match="weights"):
        generators.deepsim_fc7(weights="imagenet")
    with pytest.raises(FileNotFoundError, match="missing.caffemodel"):
        generators.deepsim_fc7(weights=str(tmp_path / "missing.caffemodel"))


def test_download_failure_explains_manual_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(RuntimeError) as info:
        generators.deepsim_fc7(weights="deepsim-fc7")
    msg = str(info.value)
    assert download.DEEPSIM_URL in msg and "fc7/generator.caffemodel" in msg
    assert "weights=" in msg and "network is unreachable" in msg
    with pytest.raises(RuntimeError, match="VGG_ILSVRC_19_layers.caffemodel"):
        caffe.fetch_vgg19_caffemodel()


def test_fetch_deepsim_extracts_fc7_generator(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    archive = tmp_path / "release_deepsim_v0.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("release_deepsim_v0/fc6/generator.caffemodel", b"fc6 weights")
        zf.writestr("release_deepsim_v0/fc7/generator.caffemodel", b"fc7 weights")
        zf.writestr("release_deepsim_v0/fc7/generator.prototxt", b"text")
    calls = []

    def fake_get_file(fname, origin, cache_subdir=None, cache_dir=None, **kwargs):
        calls.append((fname, origin, cache_subdir))
        target = tmp_path / "home" / cache_subdir / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read_bytes())
        return str(target)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    path = caffe.fetch_deepsim_fc7_caffemodel()
    assert Path(path).read_bytes() == b"fc7 weights"
    assert calls == [("release_deepsim_v0.zip", download.DEEPSIM_URL, "keras_icnn")]
    assert caffe.fetch_deepsim_fc7_caffemodel() == path and len(calls) == 1  # cached
    with pytest.raises(ValueError, match="exactly one member"):
        download.extract_zip_member(archive, "generator.caffemodel", tmp_path / "x")
