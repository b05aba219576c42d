"""The brain-decoding cookbook's reconstruction YAML (``reconstruction/config/recon_*.yaml``),
loaded with OmegaConf the way the cookbook's ``bdpy.pipeline.config.init_hydra_cfg`` (Hydra)
composes it, and checked.

Composition (Hydra's, for what the cookbook's configs use):

* ``defaults: [encoder: vgg19, generator: relu7generator]``: each ``- <group>: <option>``
  entry reads ``<group>/<option>.yaml`` beside the config file and puts it under the key
  ``<group>`` (``# @package _group_``; ``# @package _global_`` puts it at the top);
  ``<option>: null`` leaves the group out.  The config's own keys are merged after its
  defaults (Hydra >= 1.1: the config overrides its defaults; a ``_self_`` entry places it
  elsewhere), so ``encoder: {input_image_shape: ...}`` in the config changes one key of the
  group file.
* ``${...}`` interpolations (OmegaConf), with ``${_analysis_name_}``: the config file's stem
  (``recon.yaml`` -> ``recon``), or ``keras_icnn.analysis_name`` when given.  bdpy sets it
  to the *script's* name unless ``-a NAME`` is given: ``keras_icnn: {analysis_name:
  recon_icnn_image_gd}`` reproduces the output path of the cookbook's script.

Relative paths are relative to the working directory, as in the cookbook (``hydra.utils.
to_absolute_path`` for the feature, decoder and output paths; the network files are opened as
given): run the command from where the cookbook's script would run (``reconstruction/``).

Every key is checked: an unknown key anywhere is an error naming its full path (e.g.
``icnn.num_iterations``); so is a missing required key or a value of the wrong kind.  The
keys are those of :data:`SCHEMA`; keras-icnn's own settings go under ``keras_icnn:``
(:data:`KERAS_ICNN_DEFAULTS`).
"""
from __future__ import annotations

import os
import re

__all__ = ["YAML_EXTENSIONS", "SCHEMA", "KERAS_ICNN_DEFAULTS", "is_yaml_config", "compose",
           "load_study_config", "StudyConfig"]

#: The extensions of a cookbook YAML ``--config`` (anything else is a ``<target>_options.json``).
YAML_EXTENSIONS = (".yaml", ".yml")
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)\s*$")


def is_yaml_config(path):
    """Whether ``--config path`` is a cookbook YAML (by its extension)."""
    return isinstance(path, str) and path.lower().endswith(YAML_EXTENSIONS)


def _one_line(error):
    return " ".join(str(error).split())


# -- value checks (each: (value, key) -> value, or a ValueError naming the key) --------------
def _text(value, key):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _prefix(value, key):
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string, got {value!r}")
    return value


def _path(value, key):
    """A path made absolute against the working directory (the cookbook's ``to_absolute_path``)."""
    return os.path.abspath(_text(value, key))


def _names(value, key):
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key}: expected a non-empty list of names, got {value!r}")
    if len(set(value)) < len(value):
        raise ValueError(f"{key}: names given twice in {value!r}")
    return list(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _shape(value, key):
    if not isinstance(value, list) or not value or \
            not all(_is_int(v) and v > 0 for v in value):
        raise ValueError(f"{key}: expected a list of positive integers, got {value!r}")
    return list(value)


def _positive(value, key):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{key}: expected a positive integer, got {value!r}")
    return value


def _seed(value, key):
    if not _is_int(value) or value < 0:
        raise ValueError(f"{key}: expected a non-negative integer, got {value!r}")
    return value


def _bool(value, key):
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    return value


def _anything(value, key):
    return value


def _choice(*options):
    def check(value, key):
        if value not in options:
            raise ValueError(f"{key}: expected one of {', '.join(map(str, options))}, "
                             f"got {value!r}")
        return value
    return check


def _scaling(value, key):
    from keras_icnn.objective.scaling import COOKBOOK_SCALINGS
    return _choice(*COOKBOOK_SCALINGS)(value, key)


def _preset(value, key):
    from keras_icnn import presets
    return _choice(*presets.names())(value, key)


def _variant(value, key):
    from keras_icnn.cli.build import VARIANTS
    return _choice(*[v for v in VARIANTS if v.startswith("dgn")])(value, key)


#: Every key a config may have (a dict: a section; else the check of its value).  ``defaults``
#: is read by :func:`compose`; ``device`` (the cookbook's torch device) is accepted and unused,
#: as are the generator's ``input_layer``, ``image_mean_file`` and ``feature_std_file`` (the
#: cookbook's script does not read them) and ``evaluation`` (``keras-icnn evaluate``'s).
SCHEMA = {
    "defaults": _anything,
    "encoder": {"name": _text, "parameters_file": _path, "input_image_shape": _shape,
                "image_mean_file": _path, "feature_std_file": _path, "layers": _names},
    "generator": {"name": _text, "input_layer": _text, "parameters_file": _path,
                  "image_mean_file": _text, "feature_std_file": _text,
                  "latent_shape": _shape, "latent_upper_bound_file": _path,
                  "latent_upper_bound_shape": _shape},
    "decoded_features": {"name": _text, "path": _path, "subjects": _names, "rois": _names,
                         "decoders": {"path": _path}},
    "features": {"name": _text, "path": _path},
    "icnn": {"num_iteration": _positive, "feature_scaling": _scaling},
    "output": {"path": _path, "prefix": _prefix, "ext": _text},
    "evaluation": {"true_image": {"path": _path, "ext": _text}, "single_trial": _bool},
    "device": _anything,
    "keras_icnn": {"preset": _preset, "variant": _variant,
                   "lbfgs_impl": _choice("scipy", "tfp"), "batch_size": _positive,
                   "checkpoint_every": _positive, "seed": _seed, "overwrite": _bool,
                   "analysis_name": _text},
    "_analysis_name_": _text,
}
#: The keys every config needs (besides ``decoded_features`` or ``features``).
REQUIRED = ("encoder.name", "encoder.parameters_file", "encoder.input_image_shape",
            "encoder.image_mean_file", "encoder.layers", "generator.name",
            "generator.parameters_file", "generator.latent_upper_bound_file",
            "icnn.num_iteration", "output.path")
#: keras-icnn's settings (``keras_icnn:``) when not given: the cookbook's method
#: (``cookbook_dgn_gd``), 4 images a batch, no checkpoints, seed 0, finished labels skipped.
KERAS_ICNN_DEFAULTS = {"preset": None, "variant": None, "lbfgs_impl": "scipy", "batch_size": 4,
                       "checkpoint_every": None, "seed": 0, "overwrite": False,
                       "analysis_name": None}
#: The preset used when neither ``keras_icnn.preset`` nor ``keras_icnn.variant`` is given.
DEFAULT_PRESET = "cookbook_dgn_gd"


# -- composition ------------------------------------------------------------------------------
def _read_yaml(path, what):
    """A YAML file as a plain dict, interpolations kept unresolved."""
    from omegaconf import DictConfig, OmegaConf
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml and omegaconf errors
        raise ValueError(f"{what} {path}: not a readable YAML file ({_one_line(e)})") from None
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{what} {path}: expected a mapping of keys, got a list")
    return OmegaConf.to_container(cfg, resolve=False)


def _package(path):
    """The ``# @package`` of a group file (``_group_`` when it says none)."""
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            found = _PACKAGE.match(line.strip())
            if found:
                return found.group(1)
    return "_group_"


def _defaults(entries, path):
    """``defaults`` as a list of ``(group, option)`` and ``"_self_"`` (last unless placed)."""
    if entries is None:
        return ["_self_"]
    if not isinstance(entries, list):
        raise ValueError(f"{path}: defaults: expected a list such as [encoder: vgg19, "
                         f"generator: relu7generator], got {entries!r}")
    out = []
    for item in entries:
        if item == "_self_":
            out.append(item)
        elif isinstance(item, dict) and len(item) == 1 and \
                re.fullmatch(r"\w+", str(next(iter(item)))) and \
                isinstance(next(iter(item.values())), (str, type(None))):
            out.append(next(iter(item.items())))
        else:
            raise ValueError(f"{path}: defaults: unsupported entry {item!r}; expected "
                             "'- <group>: <option>' (the file <group>/<option>.yaml beside "
                             "the config) or '- _self_'")
    return out if "_self_" in out else out + ["_self_"]


def _group(config_dir, group, option, path):
    """The content of the group file ``<group>/<option>.yaml``, placed by its package."""
    file = os.path.join(config_dir, group, f"{option}.yaml")
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{path}: defaults: {group}: {option}: no such file {file}")
    content = _read_yaml(file, f"defaults {group}: {option}:")
    if "defaults" in content:
        raise ValueError(f"{file}: defaults inside a group file are not supported")
    package = _package(file)
    if package not in ("_group_", "_global_", group):
        raise ValueError(f"{file}: '# @package {package}' is not supported (expected "
                         "_group_ or _global_)")
    return content if package == "_global_" else {group: content}


def compose(path):
    """The config ``path`` with its ``defaults`` merged in, as Hydra composes it: an
    ``omegaconf.DictConfig``, interpolations unresolved."""
    from omegaconf import OmegaConf
    primary = _read_yaml(path, "--config")
    config_dir = os.path.dirname(os.path.abspath(path))
    merged = OmegaConf.create({})
    for entry in _defaults(primary.pop("defaults", None), path):
        if entry == "_self_":
            part = primary
        elif entry[1] is None:
            continue
        else:
            part = _group(config_dir, *entry, path)
        try:
            merged = OmegaConf.merge(merged, OmegaConf.create(part))
        except Exception as e:  # a section merged onto a value of another kind
            raise ValueError(f"{path}: cannot merge {entry if entry == '_self_' else entry[0]}"
                             f" ({_one_line(e)})") from None
    return merged


# -- checks -----------------------------------------------------------------------------------
def _unknown_keys(node, schema, prefix=""):
    """The full paths of the keys of ``node`` (a plain dict) that ``schema`` does not know; a
    ``ValueError`` for a section that is a value."""
    unknown = []
    for key, value in node.items():
        full = f"{prefix}{key}"
        if key not in schema:
            unknown.append(full)
        elif isinstance(schema[key], dict) and isinstance(value, dict):
            unknown += _unknown_keys(value, schema[key], full + ".")
        elif isinstance(schema[key], dict) and value is not None and \
                not (isinstance(value, str) and value.startswith("${")):
            raise ValueError(f"{full}: expected a section of keys ({', '.join(schema[key])}), "
                             f"got {value!r}")
    return unknown


def _check_unknown(container):
    unknown = _unknown_keys(container, SCHEMA)
    if not unknown:
        return
    sections = sorted({k.rsplit(".", 1)[0] if "." in k else "" for k in unknown})
    known = "; ".join(f"{s or 'top level'}: {', '.join(_section(s))}" for s in sections)
    raise ValueError(f"unknown key(s) {', '.join(unknown)} (known keys: {known})")


def _section(dotted):
    """The keys of section ``dotted`` of :data:`SCHEMA` (``""``: the top level)."""
    node = SCHEMA
    for part in filter(None, dotted.split(".")):
        node = node[part]
    return [k for k in node if not k.startswith("_")]


def _check_values(node, schema, prefix=""):
    """``node`` with every value checked (``None``: not given, kept as ``None``)."""
    out = {}
    for key, value in node.items():
        full, check = f"{prefix}{key}", schema[key]
        if value is None:
            out[key] = None
        elif isinstance(check, dict):
            if not isinstance(value, dict):
                raise ValueError(f"{full}: expected a section of keys ({', '.join(check)}), "
                                 f"got {value!r}")
            out[key] = _check_values(value, check, full + ".")
        else:
            out[key] = check(value, full)
    return out


def _get(tree, dotted):
    for part in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree


def _required(tree):
    """The required keys of this config: :data:`REQUIRED` and those its choices need."""
    decoded, true = tree.get("decoded_features") is not None, tree.get("features") is not None
    if decoded == true:
        raise ValueError("expected one of decoded_features (decoded features: path, subjects, "
                         "rois, decoders) and features (true features: path), "
                         f"got {'both' if decoded else 'neither'}")
    keys = list(REQUIRED)
    if true:
        return keys + ["features.path"]
    keys += ["decoded_features.path", "decoded_features.subjects", "decoded_features.rois"]
    scaling = _get(tree, "icnn.feature_scaling")
    if scaling is not None:
        keys.append("encoder.feature_std_file")
    if scaling == "feature_std_train_mean_center":
        keys.append("decoded_features.decoders.path")
    return keys


def _check_required(tree):
    missing = [k for k in _required(tree) if _get(tree, k) is None]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")


def _resolve(cfg):
    """The plain dict of ``cfg`` with its interpolations resolved (errors name the key)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        msg = (getattr(e, "msg", None) or str(e)).split("\n")[0]
        raise ValueError(f"{key + ': ' if key else ''}{_one_line(msg)}") from None


def _analysis_name(cfg, path):
    """``keras_icnn.analysis_name`` if given, else the config file's stem."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    try:
        name = OmegaConf.select(cfg, "keras_icnn.analysis_name", default=None)
    except OmegaConfBaseException as e:
        raise ValueError(f"keras_icnn.analysis_name: {_one_line(e)}") from None
    if name is None:
        return os.path.splitext(os.path.basename(path))[0]
    return _text(name, "keras_icnn.analysis_name")


def _container(cfg):
    """A composed config as a plain dict, interpolations unresolved."""
    from omegaconf import OmegaConf
    return OmegaConf.to_container(cfg, resolve=False)


def _checked_tree(cfg, path):
    raw = _container(cfg)
    _check_unknown(raw)
    _check_required(raw)  # before the interpolations that would refer to a missing key
    cfg["_analysis_name_"] = _analysis_name(cfg, path)
    tree = _check_values(_resolve(cfg), SCHEMA)
    _check_required(tree)
    return tree


def load_study_config(path):
    """The checked :class:`StudyConfig` of the cookbook YAML ``path``: a ``ValueError`` (or
    ``FileNotFoundError``) naming the file and the key otherwise."""
    cfg = compose(path)
    try:
        tree = _checked_tree(cfg, path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return StudyConfig(path, tree)


class StudyConfig:
    """A checked cookbook config: ``tree`` (every key, resolved, paths absolute) and what the
    runs read from it as attributes: ``decoded``, ``features_dir``, ``subjects``/``rois``
    (None for true features; :attr:`selections`), ``decoders_dir``, ``encoder``/``generator``
    (the group sections), ``num_iteration``, ``feature_scaling``, ``output_dir``, ``prefix``,
    ``ext``, ``true_image_dir``/``true_image_ext`` (``evaluation.true_image``; None/JPEG when
    not given), ``analysis_name`` and ``options`` (``keras_icnn:`` with its defaults)."""

    def __init__(self, path, tree):
        self.path, self.tree = os.path.abspath(path), tree
        self.analysis_name = tree["_analysis_name_"]
        self.encoder, self.generator = tree["encoder"], tree["generator"]
        self.decoded = tree.get("decoded_features") is not None
        source = tree["decoded_features"] if self.decoded else tree["features"]
        self.features_dir = source["path"]
        self.subjects = source["subjects"] if self.decoded else None
        self.rois = source["rois"] if self.decoded else None
        self.decoders_dir = _get(tree, "decoded_features.decoders.path")
        self.num_iteration = tree["icnn"]["num_iteration"]
        self.feature_scaling = tree["icnn"].get("feature_scaling")
        out = tree["output"]
        self.output_dir = out["path"]
        self.prefix = "recon_image-" if out.get("prefix") is None else out["prefix"]
        self.ext = out.get("ext") or "tiff"
        own = {k: v for k, v in (tree.get("keras_icnn") or {}).items() if v is not None}
        self.options = {**KERAS_ICNN_DEFAULTS, **own}
        self.true_image_dir = _get(tree, "evaluation.true_image.path")
        self.true_image_ext = _get(tree, "evaluation.true_image.ext") or "JPEG"

    @property
    def selections(self):
        """``[(subject, roi), ...]`` in the config's order (``[(None, None)]``: true features)."""
        if not self.decoded:
            return [(None, None)]
        return [(s, r) for s in self.subjects for r in self.rois]
