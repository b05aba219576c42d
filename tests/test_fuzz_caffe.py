"""Property-based tests of the Caffe readers: ``parse_prototxt`` / ``read_prototxt`` and
``parse_caffemodel`` / ``read_caffemodel`` / ``caffemodel_weights`` (V1 and V2 files).

For random text and bytes, valid files cut short or with bytes flipped/inserted/deleted, and
messages of odd but well-formed structure (blobs whose shape and data disagree, negative or
huge dimensions, double data, missing names), a reader either returns a usable network or
raises ``CaffeFormatError`` (a ``ValueError``) naming the file -- never another exception,
never a hang.  ``KERAS_ICNN_FUZZ_EXAMPLES=2000`` runs every test with 2000 examples.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

import caffe_reference as cref  # noqa: E402
from fuzz_helpers import fuzz_settings, mutated, outcome, truncations  # noqa: E402
from test_caffe import NET_GEN, NET_OPS, NET_VGG_V1  # noqa: E402

from keras_icnn import caffe  # noqa: E402
from keras_icnn.caffe import proto  # noqa: E402

TEXTS = {"gen": NET_GEN, "vgg_v1": NET_VGG_V1, "ops": NET_OPS}


class _Quiet(dict):
    def __repr__(self):
        return f"<{len(self)} entries>"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_caffe")


@pytest.fixture(scope="module")
def caffemodels():
    """{name: (bytes, {layer: [arrays]})}: V2 (packed, unpacked and double blobs) and V1
    (legacy num/channels/height/width blobs) files."""
    out = _Quiet()
    gen = cref.CaffeReference(NET_GEN, seed=1)
    gen.forward({"feat": np.zeros((1, 16), np.float32)})
    out["gen"] = (cref.make_caffemodel(NET_GEN, gen.weights, unpacked=("conv5_1",),
                                       double=("deconv3",)), gen.weights)
    vgg = cref.CaffeReference(NET_VGG_V1, seed=2)
    vgg.forward({"data": np.zeros((2, 3, 8, 8), np.float32)})
    out["vgg_v1"] = (cref.make_caffemodel(NET_VGG_V1, vgg.weights, legacy_blobs=True),
                     vgg.weights)
    return out


def _check_net(net, source):
    """A parsed net is usable: its layers normalise, its inputs are read or refused cleanly."""
    layers = caffe.net_layers(net, phase=None)
    for layer in layers:
        assert isinstance(layer.name, str) and isinstance(layer.type, str)
        assert all(isinstance(b, str) for b in layer.bottoms + layer.tops)
    caffe.net_layers(net)  # TEST-phase filtering
    try:
        inputs = caffe.net_inputs(net, source=source)
    except caffe.CaffeFormatError as exc:
        assert source in str(exc)
    else:
        assert all(isinstance(k, str) and isinstance(v, tuple) for k, v in inputs.items())
    return layers


# --------------------------------------------------------------------------------------------
# prototxt
# --------------------------------------------------------------------------------------------
@fuzz_settings(200)
@given(text=st.one_of(st.text(max_size=300),
                      st.text(alphabet='layer{}:"name type bottom top input_dim 0123456789-.\n',
                              max_size=300),
                      st.binary(max_size=300)))
def test_prototxt_random_text(text):
    net = outcome(caffe.parse_prototxt, text, names="random.prototxt", source="random.prototxt")
    if net is not None:
        _check_net(net, "random.prototxt")


@fuzz_settings(200)
@given(name=st.sampled_from(sorted(TEXTS)), data=st.data())
def test_prototxt_damaged_file(workdir, name, data):
    base = TEXTS[name].encode()
    path = workdir / f"damaged_{name}.prototxt"
    path.write_bytes(data.draw(st.one_of(truncations(base), mutated(base, max_edits=3))))
    net = outcome(caffe.read_prototxt, path, names=path)
    if net is not None:
        _check_net(net, str(path))


_FIELDS = [  # (field, values): scalars, enums, wrong types, out-of-range numbers
    ("name", ['"a"', '"conv1"', '""', '"\\xff"', "3", "x"]),
    ("type", ['"Convolution"', '"ReLU"', '"Nope"', "CONVOLUTION", "RELU", "99", "-1"]),
    ("bottom", ['"data"', '"a"', "1"]), ("top", ['"a"', '"b"']),
    ("loss_weight", ["1", "-1e39", "nan", "inf", '"x"']),
    ("propagate_down", ["true", "false", "2", "yes"]),
    ("phase", ["TRAIN", "TEST", "2", "-1"]),
    ("convolution_param", ["{ num_output: 4 kernel_size: 3 }", "{ num_output: -1 }",
                           "{ num_output: 4294967296 }", "{ kernel_size: 1 kernel_size: 2 }",
                           "{ weight_filler { type: \"gaussian\" std: 1e400 } }",
                           "{ engine: CUDNN }", "{ engine: 7 }", "{ pad: 1.5 }"]),
    ("pooling_param", ["{ pool: MAX kernel_size: 2 }", "{ pool: 9 }", "{ round_mode: FLOOR }"]),
    ("inner_product_param", ["{ num_output: 3 }", "{ num_output: 0x10 }", "{ axis: 99999999999 }"]),
    ("include", ["{ phase: TRAIN }", "{ stage: \"x\" }", "{ min_level: 3 }"]),
    ("exclude", ["{ phase: TEST }"]),
    ("blobs", ["{ shape { dim: 2 dim: -3 } data: 1 data: 2 }", "{ double_data: 1e308 }"]),
    ("transform_param", ["{ scale: 0.5 mirror: true }", "{ a { b { c { } } } }"]),
    ("unknown_field", ["1", '"x"', "{ }", "[1, 2]"]),
]
_NET_FIELDS = ['input: "data"', "input_dim: 1", "input_dim: -3", "input_dim: 99999999999",
               "input_shape { dim: 1 dim: 3 }", 'name: "net"', "force_backward: true",
               "state { phase: TRAIN }", "debug_info: 3"]


@st.composite
def _prototxt(draw):
    """Prototxt text built from the schema's fields with good and bad values, V1 or V2."""
    legacy = draw(st.booleans())
    parts = draw(st.lists(st.sampled_from(_NET_FIELDS), max_size=5))
    for _ in range(draw(st.integers(0, 4))):
        fields = draw(st.lists(st.sampled_from(_FIELDS), max_size=6))
        body = " ".join(f"{f}{'' if v.startswith('{') else ':'} {v}"
                        for f, values in fields for v in [draw(st.sampled_from(values))])
        parts.append(f"{'layers' if legacy else 'layer'} {{ {body} }}")
    if draw(st.booleans()):  # deep nesting of an unknown field
        depth = draw(st.integers(1, 3000))
        parts.append("layer { name: \"deep\" " + "x { " * depth + "} " * depth + "}")
    return "\n".join(parts)


@fuzz_settings(200)
@given(text=_prototxt())
def test_prototxt_structures(text):
    net = outcome(caffe.parse_prototxt, text, names="gen.prototxt", source="gen.prototxt")
    if net is not None:
        _check_net(net, "gen.prototxt")


@pytest.mark.parametrize("what", [None, 3, ["layer {}"], object()])
def test_prototxt_non_text(what):
    with pytest.raises(ValueError):
        caffe.parse_prototxt(what)
    with pytest.raises(ValueError):
        caffe.read_prototxt(what)


# --------------------------------------------------------------------------------------------
# caffemodel
# --------------------------------------------------------------------------------------------
def _read_weights(path):
    """read_caffemodel + caffemodel_weights, checked: ``None`` after a documented error."""
    net = outcome(caffe.read_caffemodel, path, names=path)
    if net is None:
        return None
    _check_net(net, str(path))
    weights = outcome(caffe.caffemodel_weights, net, names=path, source=str(path))
    if weights is None:
        return None
    for name, lw in weights.items():
        assert isinstance(name, str) and name == lw.name
        for blob, arr in zip(lw.layer.blobs, lw.arrays):
            assert arr.dtype == np.float32 and arr.shape == caffe.blob_shape(blob)
    return weights


@fuzz_settings(200)
@given(magic=st.sampled_from([b"", b"\xa2\x06", b"\x12", b"\x0a\x03net\xa2\x06\x10\x0a\x01a"]),
       data=st.binary(max_size=2000))
def test_caffemodel_random_bytes(workdir, magic, data):
    path = workdir / "random.caffemodel"
    path.write_bytes(magic + data)
    _read_weights(path)


@fuzz_settings(200)
@given(name=st.sampled_from(["gen", "vgg_v1"]), data=st.data())
def test_caffemodel_truncated(workdir, caffemodels, name, data):
    base, weights = caffemodels[name]
    path = workdir / f"truncated_{name}.caffemodel"
    path.write_bytes(data.draw(truncations(base)))
    got = _read_weights(path)
    if got is not None:  # cut between two layer records: a shorter, valid file
        for layer, lw in got.items():
            assert layer in weights
            for arr, want in zip(lw.arrays, weights[layer], strict=True):
                np.testing.assert_array_equal(arr.reshape(want.shape), want)


@fuzz_settings(300)
@given(name=st.sampled_from(["gen", "vgg_v1"]), data=st.data())
def test_caffemodel_damaged(workdir, caffemodels, name, data):
    base, _ = caffemodels[name]
    path = workdir / f"damaged_{name}.caffemodel"
    path.write_bytes(data.draw(mutated(base)))
    _read_weights(path)


_DIMS = st.one_of(st.integers(0, 4), st.integers(-3, -1), st.integers(2**31, 2**40))


@st.composite
def _blob(draw):
    blob = proto.BlobProto()
    style = draw(st.sampled_from(["shape", "legacy", "none", "both"]))
    if style in ("shape", "both"):
        blob.shape.dim.extend(draw(st.lists(_DIMS, max_size=4)))
    if style in ("legacy", "both"):
        for f in draw(st.lists(st.sampled_from(["num", "channels", "height", "width"]),
                               min_size=1, max_size=4, unique=True)):
            setattr(blob, f, draw(st.one_of(st.integers(0, 4), st.integers(-2**31, -1),
                                            st.integers(2**30, 2**31 - 1))))
    values = draw(st.lists(st.floats(width=32), max_size=30))
    if draw(st.booleans()):
        blob.double_data.extend(values)
    else:
        blob.data.extend(values)
    if draw(st.booleans()):
        blob.diff.extend([1.0])
    return blob


@st.composite
def _net(draw):
    net = proto.NetParameter()
    legacy = draw(st.booleans())
    names = draw(st.lists(st.one_of(st.text(max_size=6), st.sampled_from(["conv1", "fc6"])),
                          min_size=1, max_size=3))
    for name in names:
        layer = net.layers.add() if legacy else net.layer.add()
        layer.name = name
        if legacy:
            layer.type = draw(st.sampled_from([0, 4, 14, 18, 39]))
        else:
            layer.type = draw(st.sampled_from(["Convolution", "InnerProduct", "", "Ünïcode"]))
        for _ in range(draw(st.integers(0, 3))):
            layer.blobs.add().CopyFrom(draw(_blob()))
    return net


def _expected_array(blob):
    """The array a blob must give, or None when it must be refused."""
    shape = caffe.blob_shape(blob)
    values = list(blob.double_data) or list(blob.data)
    if any(d < 0 for d in shape) or math.prod(shape) != len(values):
        return None
    try:
        return np.asarray(values, dtype=np.float64).astype(np.float32).reshape(shape)
    except ValueError:  # no values, but dimensions numpy cannot index
        return None


@fuzz_settings(200)
@given(net=_net())
def test_caffemodel_structures(workdir, net):
    path = workdir / "structure.caffemodel"
    path.write_bytes(net.SerializeToString())
    got = _read_weights(path)
    layers = list(net.layer) or list(net.layers)
    if any(not layer.name for layer in layers):
        assert got is None, "a layer without a name must be refused"
        return
    if any(_expected_array(b) is None for layer in layers for b in layer.blobs):
        # (in any layer: an earlier layer of the same name too, as Caffe copies it as well)
        assert got is None, "a blob whose shape and data disagree must be refused"
        return
    last = {layer.name: layer for layer in layers if len(layer.blobs)}
    want = {name: [_expected_array(b) for b in layer.blobs] for name, layer in last.items()}
    assert got is not None and set(got) == set(want)
    for name, arrays in want.items():
        for arr, w in zip(got[name].arrays, arrays, strict=True):
            np.testing.assert_array_equal(arr, w)


@pytest.mark.parametrize("what", [None, 3, "text", ["x"]])
def test_caffemodel_non_bytes(what):
    with pytest.raises(ValueError):
        caffe.parse_caffemodel(what)


def test_invalid_utf8_names_are_format_errors(workdir):
    """Protobuf strings are UTF-8: a name, bottom or top with other bytes is a damaged file."""
    def record(field, payload):
        return bytes([field << 3 | 2, len(payload)]) + payload

    for field in (1, 3, 4):  # LayerParameter name, bottom, top
        layer = record(1, b"ok") + record(field, b"\xff\xfe")
        path = workdir / f"utf8_{field}.caffemodel"
        path.write_bytes(b"\xa2\x06" + bytes([len(layer)]) + layer)
        _read_weights(path)
        prototxt = workdir / f"utf8_{field}.prototxt"
        prototxt.write_bytes(b'layer { name: "a" bottom: "\xff" }')
        assert outcome(caffe.read_prototxt, prototxt, names=prototxt) is None
