"""``keras-icnn reconstruct``'s options: the parser, and ``--config`` (a ``<target>_options.json``
of an earlier run, whose settings become the defaults of the flags).

A ``<target>_options.json`` holds three kinds of entries:

* the settings (:data:`SETTINGS`): the flags that made the run, with their effective values
  (``layers`` as a list, paths absolute);
* ``"reconstructor"``: the run's ``Reconstructor.get_config()``: optimiser, parameterisation,
  loss, layer weights, start, seed ...;
* records (:data:`RECORDS`): what the run was and used (versions, the source file, the weights
  actually used, the outputs written ...), read by people; ``--config`` ignores them, except
  that weights that fell back to random ones are random in the rerun.

``--config FILE`` reruns it: its settings replace the flags' defaults, flags given on the
command line replace its settings, and the Reconstructor is rebuilt from its config (with
``--iterations``, ``--seed``, ``--initial``, ``--layer-weight`` and ``--latent-upper`` written
in when given; ``--preset``, ``--variant`` or ``--lbfgs-impl`` build it from the preset
instead, and with ``--preset``/``--variant`` the preset's own settings (:data:`METHOD_SETTINGS`)
are the new preset's).  An unknown key is an error naming it.
"""
from __future__ import annotations

import argparse
import json
import textwrap

from keras_icnn.cli.build import VARIANTS
from keras_icnn.cli.common import EXIT_STATUS_HELP
from keras_icnn.models.precision import PRECISIONS

__all__ = ["SETTINGS", "RECORDS", "RECONSTRUCTOR", "REBUILD_FLAGS", "METHOD_SETTINGS",
           "add_parser",
           "add_arguments", "explicit_flags", "apply_config", "settings_of"]

#: The settings of a run (the ``dest`` of the flags), as written to and read from the file.
SETTINGS = ("preset", "variant", "layers", "size", "weights", "generator_weights",
            "latent_upper", "lbfgs_impl", "initial", "data_format", "layer_weight",
            "std_correction", "batch_size", "normalize", "seed", "iterations", "precision")
#: The key of the Reconstructor's config.
RECONSTRUCTOR = "reconstructor"
#: What a run was and used: written for people, ignored by ``--config``.
RECORDS = ("package", "version", "tensorflow", "keras", "command", "encoder", "target",
           "source", "index_in_file", "batch", "iterations_run", "initial_seed", "outputs",
           "weights_used", "generator_weights_used", "latent_bounds", "pixel_bounds",
           "optimizer", "reference_std")
#: Flags that replace the file's Reconstructor config by the preset's when given.
REBUILD_FLAGS = ("preset", "variant", "lbfgs_impl")
#: Settings that belong to a preset: with ``--preset``/``--variant`` given beside ``--config``
#: they are the new preset's (unless given too), not the file's.
METHOD_SETTINGS = ("initial", "layer_weight", "latent_upper", "iterations")

DESCRIPTION = (
    "Reconstructs one image per target from VGG19 feature files (.mat v5/v7.3, .npz, .h5; one "
    "target per file, or a batch axis of N > 1 giving N targets named <stem>_<i>). Writes "
    "<stem>_options.json, <stem>_loss.json and <stem>.png per target into --out; targets whose "
    "three files exist are skipped, so a killed job restarts where it stopped (with "
    "--checkpoint-every, inside the batch it was in).")
EPILOG = "\n\n".join(textwrap.fill(par, 79) for par in (
    "example: keras-icnn reconstruct decoded/*.mat --out recon --variant dgn-gd "
    "--std-correction estimated_vgg19_cnn_feat_std.mat",
    "cookbook: keras-icnn reconstruct --config config/recon_icnn_vgg19_relu7generator_gd_"
    "1000iter_decoded_ImageNet.yaml (the brain-decoding cookbook's config as it is: its "
    "subjects x ROIs x labels, scaling and outputs; relative paths are relative to the "
    "working directory, as in the cookbook; keras-icnn's settings under keras_icnn:, and "
    "--batch-size, --checkpoint-every, --seed, --overwrite, --logdir, --quiet beside it)",
    "rerun: keras-icnn reconstruct --config recon/x_options.json decoded/*.mat --out recon2 "
    "(the settings and the reconstructor of that run; flags given beside it override them)",
    "files in --out: keras-icnn replaces only files it wrote itself (those listed in a "
    "<target>_options.json); any other file under an output's name stops the job before any "
    "work, unless --overwrite is given. Temporary files a killed run left are removed.",
    EXIT_STATUS_HELP))


def add_parser(sub):
    """The ``reconstruct`` sub-command."""
    p = sub.add_parser("reconstruct", help="reconstruct images from feature files (batch job, "
                       "restartable)", description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def add_arguments(p):
    """Add the flags to the parser ``p``; returns ``{dest: action}``."""
    actions = [a for group in (_input_arguments, _method_arguments, _network_arguments,
                               _job_arguments) for a in group(p)]
    return {a.dest: a for a in actions}


def _input_arguments(p):
    return [
        p.add_argument("features", nargs="*", metavar="FEATURES",
                       help="feature files, directories (their .mat/.npz/.h5/.hdf5 files) or "
                       "globs (required unless --config is a cookbook .yaml)"),
        p.add_argument("--out", help="output directory (required unless --config is a "
                       "cookbook .yaml)"),
        p.add_argument("--config", metavar="CONFIG",
                       help="a <target>_options.json: rerun its settings (flags given beside it "
                       "override them); or a brain-decoding cookbook reconstruction .yaml/.yml "
                       "(recon_icnn_*.yaml, with its encoder/ and generator/ folders): run it "
                       "over its subjects x ROIs x labels, as the cookbook's "
                       "recon_icnn_image_gd.py"),
        p.add_argument("--layers", help="comma-separated VGG19 layers (conv1_1 ... conv5_4, fc6, "
                       "fc7, fc8); default: every VGG19 layer in the first feature file"),
        p.add_argument("--data-format", default="auto",
                       choices=["auto", "channels_first", "channels_last"],
                       help="layout of conv features in the files: channels_first = Caffe "
                       "[C, H, W] (the lab's .mat files), channels_last = Keras [H, W, C], auto = "
                       "detect (refuses ambiguous shapes). Default auto"),
        p.add_argument("--std-correction", metavar="REF_STD_FILE",
                       help="rescale each target layer to this reference std first (decoded "
                       "features: .mat/.npz/.h5 with one std per layer, e.g. the lab's "
                       "estimated_vgg19_cnn_feat_std.mat, or one from "
                       "keras_icnn.scaling.save_feature_std)"),
    ]


def _method_arguments(p):
    from keras_icnn import presets
    return [
        p.add_argument("--preset", choices=presets.names(),
                       help="the published settings to use (see keras_icnn.presets): "
                       + "; ".join(f"{n}: {presets.get(n)['description']}"
                                   for n in presets.names())),
        p.add_argument("--variant", choices=list(VARIANTS),
                       help="shorthand: " + ", ".join(f"{v} = --preset {n}" for v, n in
                                                      VARIANTS.items())
                       + " (lbfgs starting from random pixels; the DGN variants with "
                       "--latent-upper 100 by default). Default gd"),
        p.add_argument("--iterations", type=int, help="iterations (default: the preset's; 200, "
                       "500 for dgn-lbfgs)"),
        p.add_argument("--initial", choices=["random", "mean", "zeros", "normal"],
                       help="the start of each target (default: the preset's; random pixels for "
                       "--variant gd/lbfgs, a zero latent for dgn-*): random/normal are drawn from "
                       "--seed and the target's name only"),
        p.add_argument("--layer-weight", choices=["equal", "inverse_norm"],
                       help="layer weights: 1/||f||^2 normalised (the paper) or equal (default: "
                       "the preset's; inverse_norm for the variants)"),
        p.add_argument("--latent-upper",
                       help="DGN presets: upper bound of the generator's input, a number or a "
                       "text file of per-unit bounds (the paper's act_range/3x/fc7.txt). Default "
                       "100 with --variant dgn-*; the lower bound is 0"),
        p.add_argument("--lbfgs-impl", default="scipy", choices=["scipy", "tfp"],
                       help="L-BFGS presets: scipy's L-BFGS-B (the original, default) or "
                       "keras-icnn's batched L-BFGS in TensorFlow (runs on the GPU; 'tfp' "
                       "is the name it had when it was TensorFlow Probability's)"),
    ]


def _network_arguments(p):
    return [
        p.add_argument("--weights", default="imagenet",
                       help="VGG19 weights: 'imagenet' (random weights, with a note, when they "
                       "cannot be downloaded), 'random', 'caffe', or a .weights.h5/.caffemodel "
                       "file. Default imagenet"),
        p.add_argument("--generator-weights", default="deepsim-fc7",
                       help="DGN presets: 'deepsim-fc7' (random weights, with a note, when they "
                       "cannot be downloaded), 'random', or a .weights.h5/.caffemodel file"),
        p.add_argument("--size", type=int, default=224,
                       help="encoder input size in pixels (default 224; fc6-fc8 need 224)"),
        p.add_argument("--seed", type=int, default=0,
                       help="seed of the weights fallback and the initial images (each target's "
                       "start depends only on the seed and its name, not on the batch). Default 0"),
        p.add_argument("--precision", default="float32",
                       choices=list(PRECISIONS),
                       help="float32 (exact, default); mixed_bfloat16 (CPUs with AVX512-BF16/AMX, "
                       "GPUs with bf16) or mixed_float16 (GPUs): the networks compute in 16 bits, "
                       "the image, loss and optimiser stay float32"),
    ]


def _job_arguments(p):
    return [
        p.add_argument("--batch-size", type=int, default=4,
                       help="targets reconstructed together in one run (default 4)"),
        p.add_argument("--checkpoint-every", type=int, metavar="K",
                       help="back each batch up every K iterations into <out>/.checkpoints/<batch> "
                       "(removed when its outputs are written): a killed job run again resumes "
                       "the batch and ends as an uninterrupted one, bit for bit"),
        p.add_argument("--logdir", help="write TensorBoard logs (scalars and images) here, one run "
                       "per batch"),
        p.add_argument("--normalize", default="none", choices=["none", "minmax", "clip_extreme"],
                       help="how the PNG is made from the RGB 0-255 result: none = clip to 0-255 "
                       "(default), minmax = the original's normalise_img, clip_extreme = 2%% at "
                       "each tail clipped first (the paper's figures)"),
        p.add_argument("--overwrite", action="store_true",
                       help="redo targets whose outputs exist instead of skipping them, and "
                       "replace files under the outputs' names that keras-icnn did not write"),
        p.add_argument("--quiet", action="store_true", help="no progress bar"),
        p.add_argument("--dask", metavar="SPEC",
                       help="run the batches on a Dask cluster (pip install "
                       "\"keras-icnn[dask]\"): local:N = N local worker processes, or a "
                       "scheduler's address (tcp://HOST:PORT) or scheduler file to join; the "
                       "outputs are those of the serial run, bit for bit"),
    ]


# -- --config -----------------------------------------------------------------------------
def _standalone(suppress=False):
    """A parser of ``reconstruct``'s flags and its ``{dest: action}``; ``suppress``: no
    defaults (what it parses is what was given) and nothing required."""
    p = argparse.ArgumentParser(prog="keras-icnn reconstruct", add_help=False)
    actions = add_arguments(p)
    if suppress:
        for action in actions.values():
            action.default, action.required = argparse.SUPPRESS, False
    return p, actions


def explicit_flags(argv):
    """The ``dest`` of the options given on the command line ``argv`` (of ``reconstruct``)."""
    ns, _ = _standalone(suppress=True)[0].parse_known_args(argv)
    return set(vars(ns))


def _read(path):
    try:
        with open(path) as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"--config {path}: not a readable JSON file ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {path}: expected a JSON object (a <target>_options.json), "
                         f"got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(SETTINGS) - set(RECORDS) - {RECONSTRUCTOR})
    if unknown:
        raise ValueError(f"--config {path}: unknown key(s) {', '.join(unknown)}; expected the "
                         f"settings {', '.join(SETTINGS)}, '{RECONSTRUCTOR}' and the records "
                         "of a <target>_options.json")
    return cfg


def _check_value(action, value, where):
    """``value`` of the setting ``action.dest`` from a file, checked as the flag would be."""
    if action.dest == "layers" and isinstance(value, list) and \
            all(isinstance(v, str) for v in value):
        return ",".join(value)
    if value is None:
        return action.default
    if action.dest == "latent_upper" and isinstance(value, (int, float)) and \
            not isinstance(value, bool):
        return str(value)
    kind = action.type or str
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{where}: '{action.dest}' must be {kind.__name__}, got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{where}: '{action.dest}' must be one of "
                         f"{', '.join(map(str, action.choices))}, got {value!r}")
    return value


def settings_of(cfg, where):
    """The settings of an options file, checked, as ``{dest: value}`` for the parser; weights
    that fell back to random ones in that run are random."""
    actions = _standalone()[1]
    values = {k: _check_value(actions[k], cfg[k], where) for k in SETTINGS if k in cfg}
    for key in ("weights", "generator_weights"):
        if cfg.get(f"{key}_used") == "random" and values.get(key) not in (None, "random"):
            print(f"note: {where}: that run used random {key.replace('_', ' ')} ({values[key]} "
                  "could not be loaded): this one does too", flush=True)
            values[key] = "random"
    return values


def apply_config(args, argv):
    """Fill ``args`` from ``args.config``: its settings where no flag was given; sets
    ``args.reconstructor`` (its Reconstructor config, or None when a flag in
    :data:`REBUILD_FLAGS` was given) and ``args.explicit`` (the flags given)."""
    args.explicit = explicit_flags(argv)
    args.reconstructor = None
    if not args.config:
        return args
    cfg = _read(args.config)
    other_preset = args.explicit & {"preset", "variant"}
    for key, value in settings_of(cfg, f"--config {args.config}").items():
        if key not in args.explicit and not (other_preset and key in METHOD_SETTINGS):
            setattr(args, key, value)
    if args.variant and args.preset and "preset" not in args.explicit:
        args.preset = None  # the variant's (from the file or given) stands for it
    elif args.variant and args.preset and "variant" not in args.explicit:
        args.variant = None
    if not isinstance(cfg.get(RECONSTRUCTOR), (dict, type(None))):
        raise ValueError(f"--config {args.config}: '{RECONSTRUCTOR}' must be a Reconstructor "
                         f"config (a JSON object), got {cfg[RECONSTRUCTOR]!r}")
    rebuild = args.explicit & set(REBUILD_FLAGS)
    if cfg.get(RECONSTRUCTOR) is not None and not rebuild:
        args.reconstructor = cfg[RECONSTRUCTOR]
    elif cfg.get(RECONSTRUCTOR) is not None:
        print(f"note: --{sorted(rebuild)[0].replace('_', '-')} given: the reconstructor is "
              f"built from the preset, not from {args.config}", flush=True)
    return args
