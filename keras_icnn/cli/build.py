"""How a run reconstructs: a preset (or a ``--variant`` shorthand for one), the few settings
the command line changes in it, and the ``Reconstructor`` (from the preset, or from the
``get_config()`` of an earlier run)."""
from __future__ import annotations

import copy
import os

from keras_icnn.presets import needs_latent_upper

__all__ = ["VARIANTS", "VARIANT_INITIAL", "RANDOM_WEIGHTS_DECAY", "INITIALS", "resolve",
           "optimises_latent", "parse_latent_upper", "optimizer_config",
           "reconstructor_from_preset", "reconstructor", "edit_config", "check_initial",
           "describe"]

#: ``--variant`` -> the preset it stands for.
VARIANTS = {"gd": "paper_gd", "lbfgs": "paper_lbfgs", "dgn-gd": "paper_dgn_gd",
            "dgn-lbfgs": "paper_dgn_lbfgs"}
#: Where a variant starts elsewhere than its preset: pixel L-BFGS has always started from
#: random pixels here (the paper's scripts: the mean image, ``--preset paper_lbfgs``).
VARIANT_INITIAL = {"lbfgs": "random"}
#: The pixel decay of momentum GD on a random-weight encoder: the published 0.2 -> 1e-10
#: suits trained weights; a random-weight encoder keeps less of the image and that strong
#: early decay washes it out.
RANDOM_WEIGHTS_DECAY = [0.01, 0.0]
#: The starts of each space (``--initial``).
INITIALS = {"pixels": ("random", "mean", "zeros"), "latent": ("normal", "zeros")}
_OPTIMIZER_NAMES = {"MomentumGD": "momentum GD", "ScipyLBFGSB": "L-BFGS-B (scipy)",
                    "LBFGS": "L-BFGS (batched, in TensorFlow)"}


def optimises_latent(cfg):
    """Whether a preset or a Reconstructor config optimises a generator's input."""
    param = cfg.get("param")
    return isinstance(param, dict) and param.get("class_name") == "Generator"


def _library_latent_upper():
    """The library's latent upper bound (that of the ``icnn_dgn_*`` presets)."""
    from keras_icnn import presets
    return presets.get("icnn_dgn_gd")["param"]["config"]["upper"]


def _resolve_latent_upper(args, preset):
    if not optimises_latent(preset) or args.latent_upper is not None:
        return
    if args.variant:  # the variants' default: the library's bound
        args.latent_upper = f"{_library_latent_upper():g}"
    elif needs_latent_upper(preset):
        raise ValueError(f"--preset {args.preset}: needs --latent-upper, the per-unit upper "
                         "bounds of the generator's input (the paper's act_range/3x/fc7.txt) "
                         "or a number")


def resolve(args):
    """Fill in what ``--preset``/``--variant`` imply (``args.preset``, ``variant``,
    ``initial``, ``latent_upper``, ``iterations``, ``layer_weight``); returns the preset."""
    from keras_icnn import presets
    if args.preset and args.variant:
        raise ValueError("--preset and --variant: give one of them (a variant is a shorthand "
                         "for a preset)")
    if not args.preset:
        args.variant = args.variant or "gd"
        args.preset = VARIANTS[args.variant]
    preset = presets.get(args.preset)
    space = "latent" if optimises_latent(preset) else "pixels"
    args.initial = args.initial or VARIANT_INITIAL.get(args.variant) or preset["initial"]
    if args.initial not in INITIALS[space]:
        raise ValueError(f"--initial {args.initial}: {args.preset} optimises {space}; expected "
                         f"one of {', '.join(INITIALS[space])}")
    _resolve_latent_upper(args, preset)
    if args.iterations is None:
        args.iterations = preset["optimizer"]["config"]["iterations"]
    if args.layer_weight is None:
        args.layer_weight = preset["layer_weight"] or "equal"
    return preset


def parse_latent_upper(text, units=4096):
    """``--latent-upper``: a positive number, or a file of ``units`` positive numbers (the
    DeepSim generator's input, made an absolute path), checked before any work is done."""
    import numpy as np

    from keras_icnn.params import load_latent_bounds
    try:
        value = float(text)
    except ValueError:
        if not os.path.isfile(text):
            raise FileNotFoundError(f"--latent-upper: expected a number or a file of per-unit "
                                    f"bounds, {text!r} is neither") from None
        values = load_latent_bounds(text)
        if values.size != units or np.any(values <= 0):
            raise ValueError(f"--latent-upper {text}: expected {units} positive numbers (one "
                             f"per unit of the generator's input), got {values.size}"
                             + (" with values <= 0" if np.any(values <= 0) else "")) from None
        return os.path.abspath(text)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"--latent-upper: expected a positive number, got {text}")
    return value


def optimizer_config(preset, iterations, lbfgs_impl="scipy", weights_used=None):
    """The preset's serialised optimiser with the command line's changes: ``iterations``,
    the in-graph L-BFGS for scipy's with ``lbfgs_impl='tfp'``, and :data:`RANDOM_WEIGHTS_DECAY`
    for pixel momentum GD on a random-weight encoder."""
    cfg = copy.deepcopy(preset["optimizer"])
    if cfg["class_name"] == "ScipyLBFGSB" and lbfgs_impl == "tfp":
        cfg = {"class_name": "LBFGS", "config": {}}
    cfg["config"]["iterations"] = iterations
    if weights_used == "random" and not optimises_latent(preset):
        for t in cfg["config"].get("transforms", []):
            if t["class_name"] == "Decay":
                t["config"]["rate"] = list(RANDOM_WEIGHTS_DECAY)
    return cfg


def reconstructor_from_preset(name, encoder, generator=None, latent_upper=None, *, iterations,
                              lbfgs_impl="scipy", weights_used=None, **overrides):
    """``Reconstructor.from_preset(name, ...)`` with :func:`optimizer_config`'s optimiser;
    ``overrides``: other constructor arguments (``layer_weight``, ``initial``, ``seed`` ...)."""
    from keras_icnn import Reconstructor, config, presets
    cfg = optimizer_config(presets.get(name), iterations, lbfgs_impl, weights_used)
    optimizer = config.deserialize(cfg, "optimizer")
    return Reconstructor.from_preset(name, encoder, generator=generator,
                                     latent_upper=latent_upper, optimizer=optimizer,
                                     **overrides)


def edit_config(cfg, args, explicit, upper):
    """A Reconstructor config read from ``--config`` with the settings given beside it
    (``explicit``: their names) written in."""
    cfg = copy.deepcopy(cfg)
    opt = cfg.get("optimizer")
    if "iterations" in explicit and isinstance(opt, dict) and "iterations" in opt.get(
            "config", {}):
        opt["config"]["iterations"] = args.iterations
    for key in ("seed", "initial", "precision"):
        if key in explicit:
            cfg[key] = getattr(args, key)
    if "layer_weight" in explicit:
        cfg["layer_weight"] = None if args.layer_weight == "equal" else args.layer_weight
    if "latent_upper" in explicit and isinstance(cfg.get("param"), dict) and \
            optimises_latent(cfg):
        cfg["param"]["config"]["upper"] = upper
    return cfg


def reconstructor(args, encoder, generator, weights_used, upper):
    """The run's Reconstructor: from the config of ``--config`` (``args.reconstructor``, with
    the flags given beside it) or from the preset."""
    from keras_icnn import Reconstructor
    if args.reconstructor is not None:
        cfg = edit_config(args.reconstructor, args, args.explicit, upper)
        try:
            rec = Reconstructor.from_config(cfg, encoder=encoder, generator=generator)
        except ValueError as e:
            raise ValueError(f"--config {args.config}: reconstructor: {e}") from None
    else:
        rec = reconstructor_from_preset(
            args.preset, encoder, generator, upper, iterations=args.iterations,
            lbfgs_impl=args.lbfgs_impl, weights_used=weights_used,
            layer_weight=None if args.layer_weight == "equal" else args.layer_weight,
            initial=args.initial, seed=args.seed, data_format="channels_last",
            precision=args.precision)
    return check_initial(rec)


def check_initial(rec):
    """``rec`` if its ``initial`` is one the command line can start each target from."""
    if rec.initial not in INITIALS[rec.param.space]:
        raise ValueError(f"initial: expected one of {', '.join(INITIALS[rec.param.space])} "
                         f"for the {rec.param.space} optimised, got {rec.initial!r}")
    return rec


def describe(rec_config, latent_upper=None):
    """A readable summary of a Reconstructor config: the optimiser's name and the bounds."""
    param, opt = rec_config["param"], rec_config["optimizer"]
    bounds, upper = param["config"].get("bounds"), param["config"].get("upper")
    latent = optimises_latent(rec_config)
    from keras_icnn.optimizers import xla
    name = _OPTIMIZER_NAMES.get(opt["class_name"], opt["class_name"])
    jit = opt.get("config", {}).get("jit_compile")
    return {"optimizer": {"name": name} if jit is None else
            {"name": name, "jit_compile": xla.resolve(jit)},  # as run on this device
            "latent_bounds": ([param["config"].get("lower"),
                               latent_upper if isinstance(upper, list) else upper]
                              if latent else None),
            "pixel_bounds": (None if latent or bounds is None
                             else "valid (0-255)" if bounds == "valid" else bounds)}
