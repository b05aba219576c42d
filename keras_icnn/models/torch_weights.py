"""PyTorch state dicts (``.pt`` files, as bdpy distributes them) into the Keras models.

PyTorch is imported only when a ``.pt`` file is read; without it, :func:`read_state_dict`
raises :class:`TorchUnavailableError` (an ``ImportError``) saying ``pip install
keras-icnn[torch]``.

Layer names
-----------
A *torch-name table* ``{Keras layer: (PyTorch module, alias, ...)}`` says which state-dict
entries hold a Keras layer's weights: ``"fc6": ("classifier.0",)`` takes
``classifier.0.weight`` and ``classifier.0.bias``.  bdpy's generators register each layer
twice (as an attribute and inside an ``nn.Sequential``), so their state dicts hold every tensor
under two keys (``defc7.weight`` and ``defc.0.weight``): the first name found is used, and any
alias present must hold the same values.  The tables of the bdpy networks come with the models
(:func:`keras_icnn.models.torch_layer_names`).

Conversion rules
----------------
* ``Conv2d`` weight ``(out, in/groups, kh, kw)`` (OIHW) -> Keras ``Conv2D`` kernel
  ``(kh, kw, in/groups, out)`` (HWIO); grouped convolutions keep their groups' order, so the
  same transposition serves ``Conv2D(groups=g)``.
* ``ConvTranspose2d`` weight ``(in, out, kh, kw)`` -> Keras ``Conv2DTranspose`` kernel
  ``(kh, kw, out, in)``; no spatial flip (both are the adjoint of the same correlation).
* ``Linear`` weight ``(out, in)`` -> ``Dense`` kernel ``(in, out)``.  When the Dense layer reads
  a ``Flatten`` of a 4-D NHWC tensor (the first fc layer after a conv stack), PyTorch flattened
  in C,H,W order and Keras in H,W,C order: the rows are permuted accordingly
  (:func:`keras_icnn.caffe.flatten_source_shape` finds those layers).
* Biases are copied as they are.

Every problem is found before any weight is set: missing or unexpected keys, a shape that does
not fit (the message names the key, its shape and the expected one), an alias that disagrees.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping

import keras
import numpy as np

from keras_icnn.caffe.convert import manifest_path, sha256_file
from keras_icnn.caffe.download import keras_cache_dir
from keras_icnn.caffe.weights import flatten_source_shape
from keras_icnn.io.atomic import atomic_path
from keras_icnn.models.weights_file import load_keras_weights

__all__ = ["TorchUnavailableError", "import_torch", "read_state_dict", "load_state_dict",
           "convert_torch_file", "load_weights_file", "cached_weights_name", "torch_cache_dir",
           "TORCH_LAYOUT"]

_SUFFIX = ".weights.h5"
_PT_SUFFIXES = (".pt", ".pth")

#: The layouts :func:`load_state_dict` converts from (written into the manifests).
TORCH_LAYOUT = ("PyTorch NCHW; Conv2d (out, in/groups, kh, kw) -> Keras (kh, kw, in/groups, "
                "out); ConvTranspose2d (in, out, kh, kw) -> (kh, kw, out, in); Linear (out, in) "
                "-> (in, out), rows C,H,W -> H,W,C after a Flatten of a 4-D tensor")


class TorchUnavailableError(ImportError):
    """PyTorch is needed (to read a ``.pt`` file) but not installed."""


def import_torch():
    """The ``torch`` module, or :class:`TorchUnavailableError` with the install command."""
    try:
        import torch
    except ImportError:
        raise TorchUnavailableError(
            "reading PyTorch .pt files needs PyTorch, which is not installed: "
            "pip install keras-icnn[torch] (or pip install torch)") from None
    return torch


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def _file_path(path, what):
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what}: expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file {path!r}")
    return path


def read_state_dict(path) -> dict:
    """The tensors of a PyTorch ``.pt`` state dict as float32 NumPy arrays, by key.

    Read with ``torch.load(weights_only=True)`` (no code from the file is run); a checkpoint
    ``{"state_dict": {...}}`` is unwrapped.  Raises ``FileNotFoundError`` for a missing file,
    ``ValueError`` naming the file for a truncated/corrupt one or one that holds no state dict,
    :class:`TorchUnavailableError` without PyTorch.
    """
    path = _file_path(path, "pt")
    torch = import_torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (zip, pickle, EOF errors: a damaged file)
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"{path}: not a readable PyTorch state dict (truncated or corrupt "
                         f"file, or a pickled module instead of its state_dict()): "
                         f"{type(e).__name__}: {first}") from None
    return _state_arrays(obj, path, torch)


def _state_arrays(obj, path, torch) -> dict:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict (save "
                         "module.state_dict() with torch.save)")
    arrays = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        arrays[str(key)] = value.detach().cpu().float().numpy()
    return arrays


# ---------------------------------------------------------------------------
# Matching keys to layers
# ---------------------------------------------------------------------------

def _param_names(layer):
    return ("weight", "bias") if getattr(layer, "use_bias", False) else ("weight",)


def _weight_layers(model, torch_names) -> dict:
    """``{name: layer}`` of the model's layers with weights; each must be in the table."""
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    unknown = [name for name in layers if name not in torch_names]
    if unknown:
        raise ValueError(f"model {model.name!r}: layer(s) {unknown} have weights but no "
                         f"PyTorch counterpart in the table (known: {sorted(torch_names)})")
    return layers


def _choose_prefixes(layers, state, torch_names, source) -> dict:
    """``{Keras layer: the PyTorch module name whose keys the state dict has}``."""
    chosen, missing = {}, []
    for name, layer in layers.items():
        params = _param_names(layer)
        found = [p for p in torch_names[name] if all(f"{p}.{s}" in state for s in params)]
        if found:
            chosen[name] = found[0]
        else:
            first = torch_names[name][0]
            missing += [f"{first}.{s}" for s in params if f"{first}.{s}" not in state]
    if missing:
        raise ValueError(f"{source}: missing key(s) {missing}; is this the state dict of "
                         "the same network?")
    return chosen


def _table_keys(torch_names, layers) -> dict:
    """Every key the table accounts for -> its Keras layer."""
    keys = {}
    for name, prefixes in torch_names.items():
        params = _param_names(layers[name]) if name in layers else ("weight", "bias")
        keys.update({f"{p}.{s}": name for p in prefixes for s in params})
    return keys


def _check_leftovers(state, layers, torch_names, chosen, source) -> list:
    """Raise for unexpected keys and disagreeing aliases; return the keys of table layers the
    model does not have (e.g. the fc layers of a model built without its top)."""
    table = _table_keys(torch_names, layers)
    unexpected = [k for k in state if k not in table]
    if unexpected:
        raise ValueError(f"{source}: unexpected key(s) {unexpected[:8]}"
                         f"{' ...' if len(unexpected) > 8 else ''}; is this the state dict of "
                         "the same network?")
    for key, name in table.items():
        if key not in state or name not in chosen:
            continue
        used = f"{chosen[name]}.{key.rsplit('.', 1)[1]}"
        if key != used and not np.array_equal(state[key], state[used]):
            raise ValueError(f"{source}: key {key!r} differs from {used!r}; both should hold "
                             f"the weights of layer {name!r}")
    return sorted(k for k in state if table[k] not in layers)


# ---------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------

def _expect(array, shape, key, source):
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{source}: key {key!r} has shape {tuple(array.shape)}, but the Keras "
                         f"model expects {tuple(shape)} (PyTorch layout)")
    return array


def _kernel(layer, key, w, source):
    """``(Keras kernel, rows permuted?)`` from the PyTorch weight ``w`` of ``layer``."""
    shape = tuple(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw, cout, cin = shape
        return _expect(w, (cin, cout, kh, kw), key, source).transpose(2, 3, 1, 0), False
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = shape
        return _expect(w, (cout, cin, kh, kw), key, source).transpose(2, 3, 1, 0), False
    if isinstance(layer, keras.layers.Dense):
        n_in, n_out = shape
        w = _expect(w, (n_out, n_in), key, source)
        hwc = flatten_source_shape(layer)
        if hwc is None:
            return w.T, False
        h, wd, c = hwc
        return w.reshape(n_out, c, h, wd).transpose(2, 3, 1, 0).reshape(n_in, n_out), True
    raise ValueError(f"layer {layer.name!r}: loading PyTorch weights into a "
                     f"{type(layer).__name__} is not supported (Conv2D, Conv2DTranspose, Dense)")


def _layer_values(layer, prefix, state, source):
    kernel, permuted = _kernel(layer, f"{prefix}.weight", state[f"{prefix}.weight"], source)
    values = [np.ascontiguousarray(kernel, dtype=np.float32)]
    if getattr(layer, "use_bias", False):
        bias = _expect(state[f"{prefix}.bias"], layer.bias.shape, f"{prefix}.bias", source)
        values.append(np.asarray(bias, dtype=np.float32))
    return values, permuted


def _as_array(value):
    """A tensor (any dtype, any device) or array as a float32 NumPy array."""
    if hasattr(value, "detach"):  # a torch.Tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def load_state_dict(model, state_dict, torch_names, source="state dict") -> dict:
    """Copy a PyTorch state dict (``{key: array or tensor}``) into ``model``, by layer name.

    ``torch_names``: the model's torch-name table (see the module docstring).  Every weight
    layer of the model must find its keys; every key must belong to the table (keys of table
    layers the model lacks, e.g. the fc layers of a model without its top, are reported as
    ``"unused"``).  Nothing is set unless everything fits.

    Returns ``{"loaded": {Keras layer: PyTorch module}, "unused": [keys],
    "flatten_permuted": [Dense layers whose rows were reordered C,H,W -> H,W,C]}``.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{source}: expected a state dict (mapping), got "
                         f"{type(state_dict).__name__}")
    state = {str(k): _as_array(v) for k, v in state_dict.items()}
    layers = _weight_layers(model, torch_names)
    chosen = _choose_prefixes(layers, state, torch_names, source)
    unused = _check_leftovers(state, layers, torch_names, chosen, source)
    plan = {name: _layer_values(layers[name], chosen[name], state, source) for name in layers}
    for name, (values, _) in plan.items():
        layers[name].set_weights(values)
    return {"loaded": chosen, "unused": unused,
            "flatten_permuted": [name for name, (_, permuted) in plan.items() if permuted]}


# ---------------------------------------------------------------------------
# Files: conversion and the conversion cache
# ---------------------------------------------------------------------------

def _check_out(out):
    out = os.fspath(out)
    if not out.endswith(_SUFFIX):
        raise ValueError(f"out: Keras weights files must end with '{_SUFFIX}', got {out!r}")
    return out


def _manifest(model, name, pt, out, report) -> dict:
    return {"format": "keras-icnn torch conversion", "format_version": 1, "model": name,
            "keras_model": model.name, "keras_version": keras.__version__,
            "weights_file": os.path.basename(out), "weights_sha256": sha256_file(out),
            "source": {"file": os.path.basename(pt), "path": os.path.abspath(pt),
                       "bytes": os.path.getsize(pt), "sha256": sha256_file(pt)},
            "layers": report["loaded"], "flatten_permuted": report["flatten_permuted"],
            "unused_keys": report["unused"], "layout": TORCH_LAYOUT}


def convert_torch_file(model, pt, torch_names, out, name=None) -> dict:
    """Load the ``.pt`` state dict ``pt`` into ``model`` and save its weights to ``out``
    (``*.weights.h5``) and a manifest ``*.weights.json`` (sources' SHA-256, the key of each
    layer), both written atomically.  Returns the manifest."""
    out = _check_out(out)
    pt = _file_path(pt, "pt")
    report = load_state_dict(model, read_state_dict(pt), torch_names, source=pt)
    with atomic_path(out, suffix=_SUFFIX, makedirs=True) as tmp:
        model.save_weights(tmp)
    manifest = _manifest(model, name or model.name, pt, out, report)
    with atomic_path(manifest_path(out), makedirs=True) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2)
            fh.write("\n")
    return manifest


def torch_cache_dir(cache_dir=None) -> str:
    """Where conversions of ``.pt`` files go when their own directory is not writable."""
    return os.path.join(keras_cache_dir(cache_dir), "torch")


def cached_weights_name(model, pt, name) -> str:
    """The cache file name of ``pt`` converted for ``model``: ``<stem>.<name>.<architecture
    hash>.<file hash>.weights.h5`` (a changed file or architecture gets a new name)."""
    shapes = ";".join(f"{w.path}:{tuple(w.shape)}" for w in model.weights)
    arch = hashlib.sha256(shapes.encode()).hexdigest()[:8]
    stem = os.path.splitext(os.path.basename(pt))[0]
    return f"{stem}.{name}.{arch}.{sha256_file(pt)[:16]}{_SUFFIX}"


def _load_cached(model, places) -> str | None:
    for place in places:
        if os.path.isfile(place):
            try:
                model.load_weights(place)
                return place
            except Exception as e:  # noqa: BLE001  (a damaged cache file: convert again)
                warnings.warn(f"ignoring the unreadable cached conversion {place}: {e}",
                              stacklevel=4)
    return None


def _save_cache(model, places) -> str | None:
    for place in places:
        try:
            with atomic_path(place, suffix=_SUFFIX, makedirs=True) as tmp:
                model.save_weights(tmp)
            return place
        except OSError:
            continue
    return None


def load_weights_file(model, path, torch_names, name, cache_dir=None) -> str:
    """Load ``path`` into ``model``: a ``.weights.h5`` file saved from the same architecture,
    or a PyTorch ``.pt``/``.pth`` state dict, converted once and cached (atomically) next to it,
    or under :func:`torch_cache_dir` when its directory is not writable.  Returns the path of
    the ``.weights.h5`` loaded (``path`` itself when the conversion could not be cached)."""
    path = _file_path(path, "weights")
    if path.endswith(".h5"):
        load_keras_weights(model, path, name)
        return path
    if not path.endswith(_PT_SUFFIXES):
        raise ValueError(f"weights: expected a .weights.h5 or a PyTorch .pt file, got {path!r}")
    fname = cached_weights_name(model, path, name)
    places = [os.path.join(os.path.dirname(os.path.abspath(path)), fname),
              os.path.join(torch_cache_dir(cache_dir), fname)]
    cached = _load_cached(model, places)
    if cached is not None:
        return cached
    load_state_dict(model, read_state_dict(path), torch_names, source=path)
    saved = _save_cache(model, places)
    if saved is None:
        warnings.warn(f"could not cache the conversion of {path} (tried {places})", stacklevel=3)
    return saved or path
