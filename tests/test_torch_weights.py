"""keras_icnn.models.torch_weights and the bdpy names (keras_icnn.models.catalog): the
conversion rules on a tiny PyTorch module, VGG19 against bdpy's module, errors, the cache.
Run with ``-s`` to see the maximum relative errors."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import torch_reference as tref  # noqa: E402
from keras_icnn import models  # noqa: E402
from keras_icnn.caffe.layers import CaffeConv2D  # noqa: E402
from keras_icnn.models import torch_weights as tw  # noqa: E402

TOL = 1e-5

# ---------------------------------------------------------------------------
# The rules, on a tiny network: grouped and strided convolutions, a transposed convolution,
# the flatten order before a Linear layer.
# ---------------------------------------------------------------------------

TINY_NAMES = {"conv": ("0",), "convs2": ("2",), "deconv": ("4",), "fc": ("7",)}


def tiny_torch(seed=0):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=2, groups=3), nn.LeakyReLU(0.3),
        nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(5 * 12 * 12, 7)).eval()


def tiny_keras():
    x = inputs = keras.Input((9, 9, 4))
    x = keras.layers.Conv2D(6, 3, padding="same", groups=2, name="conv")(x)
    x = keras.layers.ReLU()(x)
    x = CaffeConv2D(6, 3, strides=2, groups=3, caffe_pad=2, name="convs2")(x)
    x = keras.layers.LeakyReLU(0.3)(x)
    x = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", name="deconv")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(7, name="fc")(x), name="tiny")


def tiny_output(module, x):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_conversion_rules_on_a_tiny_network():
    module, model = tiny_torch(), tiny_keras()
    report = tw.load_state_dict(model, module.state_dict(), TINY_NAMES)
    assert report == {"loaded": {"conv": "0", "convs2": "2", "deconv": "4", "fc": "7"},
                      "unused": [], "flatten_permuted": ["fc"]}
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 9)).astype(np.float32)
    got = keras.ops.convert_to_numpy(model(tref.to_nhwc(x)))
    err = tref.rel_err(got, tiny_output(module, x))
    print(f"\n[tiny network: groups, strided pad 2, transposed, flatten] {err:.2e}")
    assert err < TOL


def test_state_dict_errors_name_the_key_and_change_nothing():
    state = {k: v.numpy() for k, v in tiny_torch().state_dict().items()}
    model = tiny_keras()
    before = [w.copy() for w in model.get_weights()]
    cases = [
        ({k: v for k, v in state.items() if k != "4.bias"}, r"missing key\(s\) \['4.bias'\]"),
        ({**state, "8.weight": state["7.weight"]}, r"unexpected key\(s\) \['8.weight'\]"),
        ({**state, "2.weight": state["2.weight"][:, :1]},
         r"key '2.weight' has shape \(6, 1, 3, 3\).*expects \(6, 2, 3, 3\)"),
        ({**state, "7.weight": state["7.weight"].T}, r"key '7.weight' has shape \(720, 7\)"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            tw.load_state_dict(model, bad, TINY_NAMES, source="tiny.pt")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"layer\(s\) \['fc'\] have weights but no PyTorch"):
        tw.load_state_dict(model, state, {k: v for k, v in TINY_NAMES.items() if k != "fc"})


def test_aliases_are_accepted_and_must_agree():
    state = {k: v.numpy() for k, v in tiny_torch().state_dict().items()}
    names = {**TINY_NAMES, "fc": ("fc", "7")}
    report = tw.load_state_dict(tiny_keras(), state, names)  # only the alias is there
    assert report["loaded"]["fc"] == "7"
    both = {**state, "fc.weight": state["7.weight"], "fc.bias": state["7.bias"]}
    assert tw.load_state_dict(tiny_keras(), both, names)["loaded"]["fc"] == "fc"
    both["7.bias"] = both["7.bias"] + 1
    with pytest.raises(ValueError, match=r"key '7.bias' differs from 'fc.bias'.*'fc'"):
        tw.load_state_dict(tiny_keras(), both, names)


def test_unreadable_pt_files_are_named(tmp_path):
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pt"
    torch.save(tiny_torch().state_dict(), good)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4000))
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"a": 1}, tmp_path / "entry.pt")
    torch.save(tiny_torch(), tmp_path / "module.pt")
    for name, match in (("truncated", "not a readable PyTorch state dict"),
                        ("noise", "not a readable"), ("list", "holds a list, not a state dict"),
                        ("entry", "entry 'a' is a int"), ("module", "pickled module")):
        path = tmp_path / f"{name}.pt"
        with pytest.raises(ValueError, match=match) as info:
            tw.read_state_dict(path)
        assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        tw.read_state_dict(tmp_path / "missing.pt")
    torch.save({"state_dict": tiny_torch().state_dict()}, tmp_path / "checkpoint.pt")
    assert sorted(tw.read_state_dict(tmp_path / "checkpoint.pt")) == sorted(
        tw.read_state_dict(good))


def test_without_torch_the_error_says_how_to_install(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    path.write_bytes(b"whatever")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(tw.TorchUnavailableError, match=r"pip install keras-icnn\[torch\]"):
        tw.read_state_dict(path)
    assert issubclass(tw.TorchUnavailableError, ImportError)


# ---------------------------------------------------------------------------
# The conversion cache (load_weights of a .pt) and .weights.h5 files
# ---------------------------------------------------------------------------

@pytest.fixture()
def norm2_pt(tmp_path):
    module = tref.reference_module("norm2generator", seed=3)
    z = np.random.default_rng(3).standard_normal((1, 256, 13, 13)).astype(np.float32)
    out, _ = tref.run_with_hooks(module, z, [])
    (tmp_path / "pt").mkdir()
    return tref.save_state_dict(module, tmp_path / "pt" / "generator.pt"), z, out


def check_equal(model, z, out):
    got = keras.ops.convert_to_numpy(model(tref.to_nhwc(z)))
    assert tref.rel_err(tref.to_nchw(got), out) < TOL


def test_pt_is_converted_once_and_cached_next_to_it(norm2_pt, tmp_path, monkeypatch):
    pt, z, out = norm2_pt
    model = models.build("norm2generator")
    cached = models.load_weights(model, pt, "norm2generator", cache_dir=tmp_path / "cache")
    assert os.path.dirname(cached) == os.path.dirname(pt)
    assert os.path.basename(cached).startswith("generator.norm2generator.")
    assert cached.endswith(".weights.h5") and not (tmp_path / "cache").exists()
    check_equal(model, z, out)

    def no_reading(path):
        raise AssertionError("the .pt was read again")

    monkeypatch.setattr(tw, "read_state_dict", no_reading)
    again = models.build("norm2generator", weights=pt, cache_dir=tmp_path / "cache")
    check_equal(again, z, out)
    assert sorted(os.listdir(os.path.dirname(pt))) == sorted(
        ["generator.pt", os.path.basename(cached)])


def test_cache_falls_back_and_follows_the_file(norm2_pt, tmp_path):
    pt, z, out = norm2_pt
    model = models.build("norm2generator")
    blocked = os.path.join(os.path.dirname(pt), tw.cached_weights_name(model, pt,
                                                                        "norm2generator"))
    os.mkdir(blocked)  # the directory of the .pt cannot take the cache file
    cached = models.load_weights(model, pt, "norm2generator", cache_dir=tmp_path / "cache")
    assert cached == os.path.join(tw.torch_cache_dir(tmp_path / "cache"),
                                  os.path.basename(blocked))
    check_equal(model, z, out)
    os.rmdir(blocked)
    # A damaged cache file is ignored (with a warning) and replaced.
    Path(cached).write_bytes(b"not hdf5")
    with pytest.warns(UserWarning, match="unreadable cached conversion"):
        again = models.load_weights(models.build("norm2generator"), pt, "norm2generator",
                                    cache_dir=tmp_path / "cache")
    assert again == blocked
    # Another file under the same name gets its own cache entry.
    module = tref.reference_module("norm2generator", seed=4)
    tref.save_state_dict(module, pt)
    other = models.load_weights(model, pt, "norm2generator", cache_dir=tmp_path / "cache")
    assert other != again
    check_equal(model, z, tref.run_with_hooks(module, z, [])[0])


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weights_h5_files_and_bad_paths(norm2_pt, tmp_path):
    pt, z, out = norm2_pt
    h5 = models.load_weights(models.build("norm2generator"), pt, "norm2generator")
    model = models.build("norm2generator", weights=h5)
    check_equal(model, z, out)
    with pytest.raises(ValueError, match=r"could not load .* into norm1generator"):
        models.build("norm1generator", weights=h5)
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected a .weights.h5 or a PyTorch .pt"):
        models.build("norm2generator", weights=tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        models.build("norm2generator", weights=tmp_path / "nothing.pt")
    with pytest.raises(ValueError, match=r"generator.pt: key 'Rconv6.weight' has shape "
                       r"\(256, 256, 3, 3\), but the Keras model expects \(128, 96, 3, 3\)"):
        models.build("norm1generator", weights=pt, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------
# bdpy's names; VGG19 against bdpy's module
# ---------------------------------------------------------------------------

def test_names_and_layer_maps_are_bdpys():
    _, bdpy_models = tref.require_bdpy()
    for name in models.ENCODER_NAMES:
        assert models.layer_map(name) == bdpy_models.layer_map(name)
    for name in models.MODEL_NAMES:
        assert type(bdpy_models.model_factory(name)).__module__ == bdpy_models.__name__
    with pytest.raises(ValueError, match="is a generator"):
        models.layer_map("relu7generator")
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        models.build("resnet50")


@pytest.fixture(scope="module")
def vgg19_module():
    return tref.reference_module("vgg19", seed=5)


def test_vgg19_equals_bdpy_module_at_224(vgg19_module):
    table = models.torch_layer_names("vgg19")
    state = vgg19_module.state_dict()
    assert {f"{p[0]}.{s}" for p in table.values() for s in ("weight", "bias")} == set(state)
    x = np.random.default_rng(5).standard_normal((1, 3, 224, 224)).astype(np.float32) * 50
    lmap = models.layer_map("vgg19")
    out, hooked = tref.run_with_hooks(vgg19_module, x, lmap.values())
    model = models.vgg19(weights=None)
    report = tw.load_state_dict(model, state, table)
    assert report["unused"] == [] and report["flatten_permuted"] == ["fc6"]
    errors = tref.compare_layers(model, x, {k: hooked[v] for k, v in lmap.items()},
                                 "vgg19 vs bdpy, 224x224")
    assert max(errors.values()) < TOL
    np.testing.assert_array_equal(hooked["classifier[6]"], out)


def test_vgg19_conv_layers_at_a_small_size(vgg19_module):
    x = np.random.default_rng(6).standard_normal((2, 3, 48, 48)).astype(np.float32) * 50
    lmap = {k: v for k, v in models.layer_map("vgg19").items() if k.startswith("conv")}
    _, hooked = tref.run_with_hooks(vgg19_module, x, lmap.values())
    model = models.build("vgg19", include_top=False, input_shape=(48, 48, 3))
    report = tw.load_state_dict(model, vgg19_module.state_dict(),
                                models.torch_layer_names("vgg19"))
    assert report["unused"] == [f"classifier.{i}.{s}" for i in (0, 3, 6)
                                for s in ("bias", "weight")]
    errors = tref.compare_layers(model, x, {k: hooked[v] for k, v in lmap.items()},
                                 "vgg19 conv layers, 48x48")
    assert max(errors.values()) < TOL


def test_half_precision_tensors_are_converted():
    torch = pytest.importorskip("torch")
    module = tiny_torch()
    half = {k: v.to(torch.bfloat16) for k, v in module.state_dict().items()}
    model = tiny_keras()
    tw.load_state_dict(model, half, TINY_NAMES)
    np.testing.assert_array_equal(model.get_layer("fc").bias.numpy(),
                                  half["7.bias"].float().numpy())
