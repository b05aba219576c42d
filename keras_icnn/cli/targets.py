"""Feature files -> named targets: expanding the FEATURES arguments, choosing the layers,
loading and checking the features, and each target's start."""
from __future__ import annotations

import collections
import os
import warnings

__all__ = ["Target", "expand_features", "parse_layers", "default_layers", "load_target_file",
           "collect_targets", "BatchLoader", "start"]

#: One target: its ``name`` (the file's stem, ``<stem>_<i>`` for entry ``i`` of a file with a
#: batch axis), the file and the entry (None: the whole file).
Target = collections.namedtuple("Target", "name path index")


def _files_of(spec, extensions):
    """The files one FEATURES argument names: a directory's feature files, a file, a glob."""
    import glob
    if os.path.isdir(spec):
        found = sorted(os.path.join(spec, f) for f in os.listdir(spec)
                       if f.lower().endswith(extensions) and not f.startswith(".")
                       and os.path.isfile(os.path.join(spec, f)))
        if not found:
            raise ValueError(f"{spec}: directory without feature files "
                             f"({', '.join(extensions)})")
        return found
    if os.path.isfile(spec):
        return [spec]
    if glob.has_magic(spec):
        found = sorted(f for f in glob.glob(spec) if os.path.isfile(f))
        if not found:
            raise FileNotFoundError(f"{spec}: no file matches this pattern")
        return found
    raise FileNotFoundError(f"{spec}: no such file or directory")


def _check_unique_stems(files):
    stems = {}
    for f in files:
        stems.setdefault(os.path.splitext(os.path.basename(f))[0], []).append(f)
    for stem, paths in stems.items():
        if len(paths) > 1:
            raise ValueError(f"several feature files would write the same outputs {stem}.png: "
                             f"{', '.join(paths)}; rename them or run them into different "
                             "--out directories")


def expand_features(specs):
    """Feature files from files, directories and globs, in order, without duplicates."""
    from keras_icnn.io import FEATURE_EXTENSIONS
    files, seen = [], set()
    for spec in specs:
        for f in _files_of(spec, FEATURE_EXTENSIONS):
            if not f.lower().endswith(FEATURE_EXTENSIONS):
                raise ValueError(f"{f}: not a feature file; expected one of "
                                 f"{', '.join(FEATURE_EXTENSIONS)}")
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                files.append(f)
    _check_unique_stems(files)
    return files


def parse_layers(text):
    """``--layers``: comma-separated VGG19 layer names, in the network's order."""
    from keras_icnn.models import VGG19_LAYERS
    layers = [t.strip() for t in text.split(",") if t.strip()]
    if not layers:
        raise ValueError("--layers: expected comma-separated layer names, got none")
    unknown = [n for n in layers if n not in VGG19_LAYERS]
    if unknown:
        raise ValueError(f"--layers: unknown layer(s) {', '.join(unknown)}; VGG19's layers "
                         f"are {', '.join(VGG19_LAYERS)}")
    return sorted(dict.fromkeys(layers), key=VGG19_LAYERS.index)


def default_layers(path):
    """Every VGG19 layer in the feature file ``path`` (saying which entries are ignored)."""
    from keras_icnn.io import load_features
    from keras_icnn.models import VGG19_LAYERS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keys = list(load_features(path, data_format=None))
    layers = [n for n in VGG19_LAYERS if n in keys]
    if not layers:
        raise ValueError(f"{path}: no VGG19 layer in this file (entries: {', '.join(keys)}); "
                         "VGG19's layers are conv1_1 ... conv5_4, fc6, fc7, fc8")
    other = [k for k in keys if k not in layers]
    if other:
        print(f"note: ignoring entries of {path} that are not VGG19 layers: "
              f"{', '.join(other)}", flush=True)
    return layers


def load_target_file(path, layers, encoder, data_format, ref_std):
    """``{layer: float32 [N, ...]}`` channels-last, validated, std-corrected."""
    from keras_icnn.io import load_features
    from keras_icnn.objective import scaling, targets
    feats = load_features(path, layers=layers, data_format=None)
    try:
        tgt, _ = targets.prepare_targets(feats, encoder, data_format)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if ref_std is not None:
        try:
            tgt = scaling.correct_feature_scale(tgt, ref_std)
        except ValueError as e:
            raise ValueError(f"{path}: --std-correction: {e}") from None
    return tgt


def collect_targets(files, load):
    """The targets of ``files`` (``load(path)`` gives a file's checked features): one per file,
    or ``<stem>_<i>`` per entry of a file with a batch axis."""
    targets = []
    for path in files:
        n = len(next(iter(load(path).values())))
        stem = os.path.splitext(os.path.basename(path))[0]
        targets += ([Target(stem, path, None)] if n == 1
                    else [Target(f"{stem}_{i}", path, i) for i in range(n)])
    names = [t.name for t in targets]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ValueError(f"several targets are named {dup[0]} (a file {dup[0]} and a batch "
                         "entry of another file); rename the file")
    return targets


class BatchLoader:
    """The features of a batch of targets, keeping one file's features in memory."""

    def __init__(self, load, layers):
        self.load, self.layers = load, layers
        self._path = self._features = None

    def file(self, path):
        if path != self._path:
            self._features, self._path = self.load(path), path
        return self._features

    def batch(self, targets):
        """``{layer: [len(targets), ...]}``."""
        import numpy as np
        feats = []
        for t in targets:
            tgt = self.file(t.path)
            feats.append({k: v[t.index:t.index + 1] if t.index is not None else v
                          for k, v in tgt.items()})
        return {k: np.concatenate([f[k] for f in feats]) for k in self.layers}


def start(param, initial, name, seed):
    """The start of one target, from (seed, name) only: the same whatever the batch.

    Returns ``(start, key)``: pixels as RGB 0-255 (``"random"``: uniform random integers
    0-255, the original's; ``"mean"``: the mean image), a latent (``"zeros"``, or
    ``"normal"`` drawn from ``key``), and the random generator's ``key``."""
    import zlib

    import numpy as np

    from keras_icnn.imaging import caffe_to_rgb
    key = [int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))]
    if param.space != "pixels":
        return param.initial(1, initial, key)[0], key
    if initial in (None, "random"):
        h, w, _ = param.image_shape
        rgb = np.random.default_rng(key).integers(0, 256, (h, w, 3)).astype(np.float32)
        return rgb, key
    return caffe_to_rgb(param.initial(1, initial, key), param.mean)[0], key
