"""bdpy's PyTorch modules as the reference of the Keras models, for tests.

The reference is bdpy itself (``bdpy.dl.torch.models.model_factory``, bdpy >= 0.26, installed
by the ``test`` extra with torch); tests that need it skip when torch or bdpy is absent.  Each
module gets random weights from ``torch.manual_seed``, is saved with ``torch.save(
module.state_dict(), path)``, and its outputs are recorded by forward hooks at bdpy's
``layer_map`` modules (cloned at once: bdpy's generators use in-place LeakyReLUs).
"""
from __future__ import annotations

import numpy as np
import pytest


def require_bdpy():
    """``(torch, bdpy.dl.torch.models)``, or skip the test."""
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("bdpy.dl.torch.models")
    return torch, models


def reference_module(name, seed=0):
    """bdpy's ``model_factory(name)`` in eval mode, with weights drawn after ``seed``."""
    torch, models = require_bdpy()
    torch.manual_seed(seed)
    return models.model_factory(name).eval()


def save_state_dict(module, path):
    torch, _ = require_bdpy()
    torch.save(module.state_dict(), str(path))
    return path


def submodule(module, path):
    """``features[4]`` or ``deconv5`` of a bdpy module."""
    if "[" not in path:
        return getattr(module, path)
    seq, index = path.rstrip("]").split("[")
    return getattr(module, seq)[int(index)]


def run_with_hooks(module, x, paths):
    """Run ``module`` on the NCHW array ``x``; returns ``(output, {path: hooked output})``."""
    torch, _ = require_bdpy()
    got, handles = {}, []
    for path in paths:
        def hook(mod, inputs, output, path=path):
            got[path] = output.detach().clone().numpy()
        handles.append(submodule(module, path).register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    finally:
        for h in handles:
            h.remove()
    return out, got


def to_nchw(array):
    array = np.asarray(array)
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


def to_nhwc(array):
    array = np.asarray(array)
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def rel_err(got, ref):
    """max |got - ref| / max |ref|."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def compare_layers(model, x_nchw, ref_by_layer, label):
    """Max relative error of each Keras layer of ``ref_by_layer`` (NCHW references) on the
    input ``x_nchw``; printed (``pytest -s``) and returned."""
    import keras

    names = list(ref_by_layer)
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outs = probe(to_nhwc(x_nchw))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    errors = {n: rel_err(to_nchw(keras.ops.convert_to_numpy(o)), ref_by_layer[n])
              for n, o in zip(names, outs)}
    print(f"\n[{label}] max relative error per layer:")
    for n, e in errors.items():
        print(f"    {n:<14s} {e:.2e}")
    return errors
