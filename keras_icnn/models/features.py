"""Feature extraction by layer name: checking and ordering layer names, extractor models, and
the features of RGB images.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import keras
import numpy as np

from keras_icnn import imaging

__all__ = ["check_layers", "sort_layers", "feature_extractor", "extract_features",
           "get_cnn_features"]


def _layer_names(model):
    return [layer.name for layer in model.layers]


def check_layers(model, layers: Iterable[str]) -> list[str]:
    """Validate layer names against ``model``; error lists the model's layers."""
    names = _layer_names(model)
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer name")
    unknown = [l for l in layers if l not in names]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown} for model {model.name!r}; its layers are: "
                         f"{', '.join(names)}")
    return layers


def sort_layers(model, layers: Iterable[str]) -> list[str]:
    """Layers in the order they appear in ``model`` (input to output)."""
    layers = check_layers(model, layers)
    order = {n: i for i, n in enumerate(_layer_names(model))}
    return sorted(dict.fromkeys(layers), key=order.__getitem__)


def feature_extractor(model, layers: Sequence[str]):
    """A ``keras.Model`` mapping the encoder input to ``{layer: output}``.

    Only the part of ``model`` needed for the deepest requested layer is computed.
    """
    layers = sort_layers(model, layers)
    outputs = {}
    for name in layers:
        layer = model.get_layer(name)
        try:
            outputs[name] = layer.output
        except (AttributeError, ValueError) as e:
            raise ValueError(f"layer {name!r} has no single output in model {model.name!r} ({e})"
                             ) from None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_features")


def extract_features(model, images, layers, mean=None, batch_size=16,
                     data_format="channels_last") -> dict:
    """Features of RGB 0-255 images ``[N, H, W, 3]`` (or one ``[H, W, 3]``) at ``layers``.

    Returns ``{layer: array}`` with a batch axis; ``data_format="channels_first"`` gives Caffe's
    ``[N, C, H, W]`` layout for conv layers.
    """
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format: expected 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    x = imaging.rgb_to_caffe(images, mean)
    if x.ndim == 3:
        x = x[None]
    _check_image_size(model, x.shape[1:3])
    ext = feature_extractor(model, layers)
    outs = [ext(x[i:i + batch_size], training=False) for i in range(0, len(x), batch_size)]
    feats = {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}
    if data_format == "channels_first":
        feats = {k: np.moveaxis(v, -1, 1) if v.ndim > 2 else v for k, v in feats.items()}
    return feats


def _check_image_size(model, hw):
    want = tuple(model.input_shape[1:3])
    if any(w is not None and w != h for w, h in zip(want, hw)):
        raise ValueError(f"images: the model {model.name!r} expects {want[0]}x{want[1]} images, "
                         f"got {hw[0]}x{hw[1]}; resize them first "
                         "(e.g. keras_icnn.io.load_image(path, size=...))")


def get_cnn_features(net, img, layer_list, mean=None) -> dict:
    """The original iCNN helper: features of one RGB 0-255 image ``[H, W, 3]``.

    Returns ``{layer: array}`` in Caffe's layout without a batch axis (``[C, H, W]`` for conv
    layers, ``[D]`` for fc), as the original did; the reconstruction functions accept it.
    """
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"img: expected one RGB image [H, W, 3], got shape {img.shape}")
    feats = extract_features(net, img, layer_list, mean=mean, data_format="channels_first")
    return {k: v[0] for k, v in feats.items()}
