"""Network-feature metrics of reconstructions, as current papers report them.

Two-way (pairwise) identification on the features of a network layer: for reconstruction
``i``, the fraction of the other true images ``j`` whose features are less correlated with the
reconstruction's features than those of its own true image (``r(f(recon_i), f(true_j)) <
r(f(recon_i), f(true_i))``; chance 0.5; :func:`keras_icnn.evaluation.metrics.
identification_accuracy`, bdpy's definition).  Papers report it for AlexNet conv2 / conv5,
InceptionV3 and CLIP, and the mean correlation *distance* ``1 - r(f(recon_i), f(true_i))`` for
EfficientNet-B1 (e.g. Ozcelik & VanRullen 2023; Scotti et al. 2023).

Any Keras model and layer work (:func:`feature_identification`, :func:`feature_distance`);
:func:`preset` builds the named ones:

=============  ==============================================  ======================  =======
name           network                                         input                   measure
=============  ==============================================  ======================  =======
``alexnet2``   AlexNet conv2 (after ReLU), *your* Keras model  224 (or the model's),   ident.
``alexnet5``   AlexNet conv5 (after ReLU), *your* Keras model  ImageNet mean/std       ident.
``inception``  ``keras.applications.InceptionV3`` avg pool     299, [-1, 1]            ident.
``effnet``     ``keras.applications.EfficientNetB1`` avg pool  240, 0-255 (built in)  distance
``clip``       keras-hub CLIP image embedding (optional)       CLIP's own converter    ident.
=============  ==============================================  ======================  =======

keras-icnn ships no AlexNet: the ``alexnet*`` presets need a Keras AlexNet (architecture and
trained weights) from you.  Pretrained weights are never replaced by random ones: when they
cannot be loaded (no network, no cached copy, keras-hub missing), :func:`preset` raises
:class:`~keras_icnn.errors.WeightsUnavailableError` and :func:`load_feature_nets` leaves that
column out with a warning.  Images are resized to the network input with Pillow's bilinear
filter on float data.
"""
from __future__ import annotations

import dataclasses
import importlib
import warnings
from typing import Any, Callable

import numpy as np

from keras_icnn.errors import WeightsUnavailableError
from keras_icnn.evaluation import metrics

__all__ = ["FeatureNet", "PRESETS", "CLIP_PRESET", "preset", "load_feature_nets",
           "network_features", "feature_identification", "feature_distance",
           "feature_metrics", "alexnet_features"]

#: The named networks, in the order of the papers' tables.
PRESETS = ("alexnet2", "alexnet5", "inception", "effnet", "clip")
#: The keras-hub preset of the ``clip`` column (ViT-L/14, as in Brain-Diffuser and MindEye).
CLIP_PRESET = "clip_vit_large_patch14"
_PREPROCESS_MODES = ("tf", "torch", "caffe")
_MEASURES = ("identification", "distance")


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A network whose features score reconstructions.

    ``model``: a ``keras.Model`` (its ``layer`` output, or its output if ``layer`` is None) or
    any callable mapping a float32 batch ``[B, H, W, 3]`` to features ``[B, ...]``.
    ``input_size``: ``(H, W)`` the images are resized to (None: the model's fixed input size,
    else the images as given).  ``preprocess``: ``"tf"`` ([-1, 1]), ``"torch"`` (0-1, ImageNet
    mean/std), ``"caffe"`` (BGR, ImageNet mean subtracted), a callable, or None (RGB 0-255 as
    is).  ``measure``: ``"identification"`` (two-way identification by correlation) or
    ``"distance"`` (correlation distance ``1 - r`` with the own true image).
    """

    model: Any
    layer: str | None = None
    input_size: tuple | None = None
    preprocess: str | Callable | None = None
    measure: str = "identification"
    name: str = "features"

    @property
    def column(self) -> str:
        """The metric name of this network's column (as written in the study tables)."""
        if self.measure == "distance":
            return f"correlation distance by {self.name} features"
        return f"identification accuracy by {self.name} features"


def _check_net(net) -> FeatureNet:
    if not isinstance(net, FeatureNet):
        raise ValueError(f"net: expected a FeatureNet, got {type(net).__name__}")
    if not callable(net.model):
        raise ValueError(f"{net.name}: model must be a keras.Model or a callable, got "
                         f"{type(net.model).__name__}")
    if net.measure not in _MEASURES:
        raise ValueError(f"{net.name}: measure must be one of {_MEASURES}, got {net.measure!r}")
    if not (net.preprocess is None or callable(net.preprocess)
            or net.preprocess in _PREPROCESS_MODES):
        raise ValueError(f"{net.name}: preprocess must be one of {_PREPROCESS_MODES}, a callable "
                         f"or None, got {net.preprocess!r}")
    if net.layer is not None and not hasattr(net.model, "get_layer"):
        raise ValueError(f"{net.name}: layer={net.layer!r} needs a keras.Model")
    return net


def _model_input_size(model):
    """The fixed ``(H, W)`` input of a Keras model, or None."""
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if len(shape) == 4 and shape[1] is not None and shape[2] is not None:
        return int(shape[1]), int(shape[2])
    return None


def _prepare(images, net) -> np.ndarray:
    """Images resized to the network input and preprocessed (float32)."""
    x = np.asarray(images, dtype=np.float64)
    size = net.input_size or _model_input_size(net.model)
    if size is not None and tuple(x.shape[1:3]) != tuple(size):
        x = metrics.resize_images(x, size, method="bilinear")
    x = np.asarray(x, dtype=np.float32)
    if callable(net.preprocess):
        return np.asarray(net.preprocess(x), dtype=np.float32)
    if net.preprocess is None:
        return x
    from keras.applications import imagenet_utils

    return np.asarray(imagenet_utils.preprocess_input(x.copy(), mode=net.preprocess),
                      dtype=np.float32)


def network_features(images, net, batch_size=32) -> np.ndarray:
    """Features of RGB 0-255 images ``[N, H, W, 3]`` through ``net`` (a :class:`FeatureNet`),
    one flattened row per image: ``float64 [N, D]``."""
    net = _check_net(net)
    x = metrics.check_images(images)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    fn = net.model
    if net.layer is not None:
        from keras_icnn.models import feature_extractor

        ext = feature_extractor(net.model, [net.layer])
        fn = lambda b: ext(b, training=False)[net.layer]  # noqa: E731
    rows = []
    for start in range(0, len(x), batch_size):
        out = np.asarray(fn(_prepare(x[start:start + batch_size], net)), dtype=np.float64)
        rows.append(out.reshape(out.shape[0], -1))
    feats = np.concatenate(rows)
    if not np.all(np.isfinite(feats)):
        raise ValueError(f"{net.name}: the features contain NaN or Inf")
    return feats


def _as_net(model, layer, input_size, preprocess, measure) -> FeatureNet:
    if isinstance(model, FeatureNet):
        return model
    if isinstance(model, str):
        return preset(model, layer=layer)
    name = getattr(model, "name", "features")
    return FeatureNet(model, layer, input_size, preprocess, measure,
                      f"{name}/{layer}" if layer else name)


def _pair_features(recon, true, net, batch_size):
    fr = network_features(recon, net, batch_size)
    ft = network_features(true, net, batch_size)
    return fr, ft


def feature_identification(recon, true, model, layer=None, metric="correlation",
                           input_size=None, preprocess=None, batch_size=32, recon_labels=None,
                           true_labels=None) -> np.ndarray:
    """Two-way identification accuracy of each reconstruction on network features.

    ``model``: a ``keras.Model`` (features of ``layer``, or of its output if None), a
    :class:`FeatureNet`, or a preset name (:data:`PRESETS`; may raise
    :class:`~keras_icnn.errors.WeightsUnavailableError`).  ``input_size`` / ``preprocess``: as
    in :class:`FeatureNet` (ignored for a FeatureNet or a preset).  ``metric``:
    ``"correlation"`` (the papers') or ``"euclidean"``.  Labels: as in
    :func:`keras_icnn.evaluation.metrics.identification_accuracy` (``true`` is then the
    candidate set).  Returns ``float64 [N]``.
    """
    net = _check_net(_as_net(model, layer, input_size, preprocess, "identification"))
    fr, ft = _pair_features(recon, true, net, batch_size)
    return metrics.identification_accuracy(fr, ft, metric, recon_labels, true_labels)


def feature_distance(recon, true, model, layer=None, input_size=None, preprocess=None,
                     batch_size=32) -> np.ndarray:
    """Correlation distance ``1 - r`` between the features of reconstruction ``i`` and of true
    image ``i`` (the papers' EffNet-B / SwAV columns; lower is better).  Arguments as in
    :func:`feature_identification`.  Returns ``float64 [N]`` (NaN where features are
    constant)."""
    net = _check_net(_as_net(model, layer, input_size, preprocess, "distance"))
    fr, ft = _pair_features(recon, true, net, batch_size)
    if len(fr) != len(ft):
        raise ValueError(f"recon and true: expected the same number of images, got {len(fr)} "
                         f"and {len(ft)}")
    return 1.0 - _row_correlation(fr, ft)


def _row_correlation(a, b) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _unavailable(name, what, exc) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{name}: {what} could not be loaded ({type(exc).__name__}: {exc}); no network and no "
        f"cached copy? (Keras caches ImageNet weights in ~/.keras/models). The {name!r} column "
        "is left out: random weights would give meaningless numbers")


def _keras_application(name, constructor, size, preprocess, measure) -> FeatureNet:
    import keras

    try:
        model = getattr(keras.applications, constructor)(
            include_top=False, weights="imagenet", pooling="avg", input_shape=(size, size, 3))
    except Exception as exc:  # download errors come as Exception, URLError, OSError, ...
        raise _unavailable(name, f"the ImageNet weights of keras.applications.{constructor}",
                           exc) from exc
    return FeatureNet(model, None, (size, size), preprocess, measure, name)


def _clip(clip_preset) -> FeatureNet:
    try:
        hub = importlib.import_module("keras_hub")
    except ImportError as exc:
        raise WeightsUnavailableError(
            "clip: keras_hub is not installed (pip install keras-hub); the 'clip' column is "
            "left out") from exc
    try:
        backbone = hub.models.CLIPBackbone.from_preset(clip_preset)
        converter = hub.layers.CLIPImageConverter.from_preset(clip_preset)
    except Exception as exc:
        raise _unavailable("clip", f"the keras-hub preset {clip_preset!r}", exc) from exc

    def embed(batch):
        return backbone.get_vision_embeddings(converter(batch))

    return FeatureNet(embed, None, None, None, "identification", "clip")


def alexnet_features(weights, name="alexnet2") -> FeatureNet:
    """The ``alexnet2`` / ``alexnet5`` column from keras-icnn's AlexNet (bdpy's, Caffe's
    ``bvlc_alexnet``) with trained ``weights`` (a bdpy ``.pt`` state dict or a converted
    ``.weights.h5``): ``relu2`` / ``relu5`` on 227x227 Caffe-space input (BGR minus the mean)."""
    from keras_icnn.models import build
    model = build("alexnet", weights=weights, include_top=False)
    return FeatureNet(model, f"relu{name[-1]}", (227, 227), "caffe", "identification", name)


def _user_alexnet(name, model, layer) -> FeatureNet:
    if model is None:
        raise WeightsUnavailableError(
            f"{name}: needs AlexNet's trained weights, which cannot be downloaded by keras-icnn: "
            f"give the bdpy .pt (or a converted .weights.h5), e.g. models={{{name!r}: "
            f"alexnet_features(path, {name!r})}} or keras-icnn evaluate --alexnet-weights PATH; "
            f"or your own Keras AlexNet as models={{{name!r}: (model, layer)}} with the layer of "
            f"conv{name[-1]} after its ReLU")
    size = _model_input_size(model) or (224, 224)
    return FeatureNet(model, layer, size, "torch", "identification", name)


def preset(name, model=None, layer=None, clip_preset=CLIP_PRESET) -> FeatureNet:
    """The :class:`FeatureNet` of a named column (:data:`PRESETS`).

    ``model`` (and ``layer``) replace the preset's network (needed for ``alexnet2`` /
    ``alexnet5``; for the others, e.g. a model you loaded yourself); the preset's input size
    (or the model's fixed one), preprocessing and measure are kept.  Raises
    :class:`~keras_icnn.errors.WeightsUnavailableError` (a ``RuntimeError``) with the reason
    when the pretrained network cannot be had.
    """
    if name not in PRESETS:
        raise ValueError(f"name: expected one of {PRESETS}, got {name!r}")
    if name.startswith("alexnet"):
        return _user_alexnet(name, model, layer)
    spec = {"inception": ("InceptionV3", 299, "tf", "identification"),
            "effnet": ("EfficientNetB1", 240, None, "distance"),
            "clip": (None, None, None, "identification")}[name]
    if model is not None:
        size = _model_input_size(model) or (spec[1] and (spec[1], spec[1]))
        return FeatureNet(model, layer, size, spec[2], spec[3], name)
    if name == "clip":
        return _clip(clip_preset)
    return _keras_application(name, spec[0], spec[1], spec[2], spec[3])


def _model_and_layer(entry):
    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise ValueError(f"models: expected a model or a (model, layer) pair, got a tuple "
                             f"of {len(entry)}")
        return entry
    return entry, None


def load_feature_nets(names=None, models=None, clip_preset=CLIP_PRESET, log=None) -> dict:
    """``{name: FeatureNet}`` for the columns ``names`` (default: all :data:`PRESETS`).

    ``models``: ``{name: model}`` or ``{name: (model, layer)}`` for presets (required for the
    AlexNet ones), or ``{name: FeatureNet}`` for a column of your own.  A preset whose network
    cannot be had (weights not downloadable, keras-hub missing, no AlexNet given) is left out
    with a ``UserWarning`` giving the reason (also passed to ``log``, e.g. ``print``).
    """
    models = dict(models or {})
    names = list(PRESETS if names is None else ([names] if isinstance(names, str) else names))
    names += [k for k, v in models.items() if isinstance(v, FeatureNet) and k not in names]
    nets = {}
    for name in names:
        entry = models.get(name)
        try:
            if isinstance(entry, FeatureNet):
                nets[name] = _check_net(entry)
                continue
            model, layer = _model_and_layer(entry)
            nets[name] = preset(name, model, layer, clip_preset)
        except WeightsUnavailableError as exc:
            warnings.warn(str(exc), UserWarning, stacklevel=2)
            if log is not None:
                log(f"note: {exc}")
    return nets


def feature_metrics(recon, true, nets, recon_labels=None, true_labels=None,
                    batch_size=32) -> dict:
    """``{net.column: float64 [N]}`` for each :class:`FeatureNet` in ``nets`` (a dict from
    :func:`load_feature_nets`, or a list): two-way identification (``true`` is the candidate
    set when labels are given) or the correlation distance with the own true image."""
    nets = list(nets.values()) if isinstance(nets, dict) else list(nets)
    out = {}
    for net in nets:
        fr, ft = _pair_features(recon, true, _check_net(net), batch_size)
        if net.measure == "identification":
            out[net.column] = metrics.identification_accuracy(fr, ft, "correlation",
                                                              recon_labels, true_labels)
        else:
            own = metrics.label_positions(len(fr), len(ft), recon_labels, true_labels)
            out[net.column] = 1.0 - _row_correlation(fr, ft[own])
    return out

