"""Command line (``keras-icnn ...`` or ``python -m keras_icnn ...``):

* ``keras-icnn demo``: reconstruct the shipped photo from its own VGG19 features;
* ``keras-icnn reconstruct FEATURES... --out DIR``: batch reconstruction of feature files
  (e.g. features decoded from brain activity), restartable;
* ``keras-icnn convert-caffe``: convert a Caffe model to Keras weights.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources

__all__ = ["main"]

DEMO_IMAGE = "astronaut.jpg"


def _demo_parser(sub):
    p = sub.add_parser("demo", help="reconstruct a photo from its own VGG19 features",
                       description="Reconstructs a photo shipped with keras-icnn from its VGG19 "
                       "features (all conv and fc layers, pre-ReLU, 1/||f||^2 layer weights) by "
                       "the original iCNN momentum gradient descent, and writes the result, a "
                       "side-by-side figure and the loss curve.")
    p.add_argument("--image", help="an image file to use instead of the shipped photo")
    p.add_argument("--size", type=int, default=224,
                   help="image size in pixels (224: with fc6-fc8; smaller: conv layers only, "
                   "faster; default 224)")
    p.add_argument("--iterations", type=int, default=200, help="iterations (default 200)")
    p.add_argument("--weights", default="imagenet",
                   help="'imagenet' (falls back to random weights when they cannot be "
                   "downloaded), 'random', or a .weights.h5/.caffemodel file")
    p.add_argument("--optimizer", default="gd", choices=["gd", "lbfgs", "lbfgs-b"],
                   help="momentum GD (default), TFP L-BFGS, or scipy L-BFGS-B")
    p.add_argument("--out", default="icnn_demo_output", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)


def _encoder(weights, size, seed, include_top=None):
    """VGG19 at ``size`` px; ``weights`` 'imagenet' falls back to random weights (with a note)
    when they cannot be downloaded.  Returns ``(model, weights used)``.  ``include_top``:
    default with the fc layers at 224 px only."""
    import keras

    from keras_icnn.errors import WeightsUnavailableError
    from keras_icnn.models import vgg19
    top = size == 224 if include_top is None else bool(include_top)
    keras.utils.set_random_seed(seed)
    if weights == "random":
        return vgg19(weights=None, include_top=top, input_shape=(size, size, 3)), "random"
    try:
        return vgg19(weights=weights, include_top=top, input_shape=(size, size, 3)), weights
    except WeightsUnavailableError as e:
        print(f"note: {e}\nnote: continuing with random weights (features of a random-weight "
              "VGG19 still invert well: He, Wang & Hopcroft, NeurIPS 2016).", flush=True)
        keras.utils.set_random_seed(seed)
        return vgg19(weights=None, include_top=top, input_shape=(size, size, 3)), "random"


def _gd_decay(weights_used):
    """The pixel decay of momentum GD: the published 0.2 -> 1e-10 suits trained weights; a
    random-weight encoder keeps less of the image and that strong early decay washes it out."""
    return (0.2, 1e-10) if weights_used != "random" else (0.01, 0.0)


def _demo(args):
    from keras_icnn import icnn_gd, io
    from keras_icnn.evaluation import metrics, plots
    from keras_icnn.engine.callbacks import IterationTimer
    from keras_icnn.models import VGG19_CONV_LAYERS, VGG19_FC_LAYERS, extract_features
    from keras_icnn.engine.reconstructor import Reconstructor

    if args.size < 32:
        raise ValueError(f"--size: VGG19 needs images of at least 32 pixels, got {args.size}")
    if args.iterations < 1:
        raise ValueError(f"--iterations: expected a positive number, got {args.iterations}")
    os.makedirs(args.out, exist_ok=True)
    if args.image:
        image = io.load_image(args.image, size=args.size)
    else:
        with resources.as_file(resources.files("keras_icnn") / "data" / DEMO_IMAGE) as p:
            image = io.load_image(p, size=args.size)
    model, used = _encoder(args.weights, args.size, args.seed)
    layers = list(VGG19_CONV_LAYERS) + (list(VGG19_FC_LAYERS) if args.size == 224 else [])
    features = extract_features(model, image, layers)
    print(f"keras-icnn demo: {args.size}x{args.size} image, VGG19 ({used} weights), "
          f"{len(layers)} layers, {args.iterations} iterations, optimizer {args.optimizer}",
          flush=True)
    optimizer = args.optimizer
    if optimizer == "gd":
        decay = _gd_decay(used)
        optimizer = icnn_gd.build_optimizer(iter_n=args.iterations, seed=args.seed,
                                            decay_start=decay[0], decay_end=decay[1])
        print(f"momentum GD: lr 2 -> 1e-10, momentum 0.9, blur sigma 2 -> 0.5, decay "
              f"{decay[0]:g} -> {decay[1]:g}", flush=True)
    rec = Reconstructor(model, optimizer=optimizer, layer_weight="inverse_norm",
                        data_format="channels_last", seed=args.seed)
    timer = IterationTimer()
    history = rec.fit(features, iterations=args.iterations, callbacks=[timer],
                      verbose=0 if args.quiet else 1)
    recon = rec.images[0]
    io.save_image(os.path.join(args.out, "reconstruction.png"), recon)
    plots.plot_reconstructions(image[None], recon[None], titles=["demo"],
                               path=os.path.join(args.out, "comparison.png"))
    plots.plot_loss(history, path=os.path.join(args.out, "loss.png"))
    corr = float(metrics.pattern_correlation(recon[None], image[None])[0])
    summary = {"weights": used, "size": args.size, "layers": layers,
               "iterations": rec.iterations_run, "optimizer": args.optimizer,
               "seconds_per_iteration": (None if timer.per_iteration != timer.per_iteration
                                         else timer.per_iteration), "final_loss":
               float(history.history["loss"][-1]), "pixel_correlation": corr,
               "loss": [float(v) for v in history.history["loss"]]}
    from keras_icnn.io import atomic_path
    with atomic_path(os.path.join(args.out, "summary.json")) as tmp:
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"done: {rec.iterations_run} iterations, {timer.per_iteration:.3f} s/iteration "
          f"(after the first), final loss {summary['final_loss']:.4g}, pixel correlation with "
          f"the original {corr:.3f}\nwrote {args.out}/reconstruction.png, comparison.png, "
          "loss.png, summary.json")
    return 0



# ------------------------------------------------------------------------------------------
# keras-icnn reconstruct

VARIANTS = ("gd", "lbfgs", "dgn-gd", "dgn-lbfgs")
#: Default iterations per variant: the paper's scripts (200), the DGN L-BFGS default maxiter.
DEFAULT_ITERATIONS = {"gd": 200, "lbfgs": 200, "dgn-gd": 200, "dgn-lbfgs": 500}
OUTPUT_SUFFIXES = ("_loss.json", "_options.json", ".png")  # in the order they are written


def _reconstruct_parser(sub):
    p = sub.add_parser(
        "reconstruct", help="reconstruct images from feature files (batch job, restartable)",
        description="Reconstructs one image per target from VGG19 feature files (.mat v5/v7.3, "
        ".npz, .h5; one target per file, or a batch axis of N > 1 giving N targets named "
        "<stem>_<i>). Writes <stem>.png, <stem>_loss.json and <stem>_options.json per target "
        "into --out; targets whose three files exist are skipped, so a killed job restarts "
        "where it stopped.",
        epilog="example: keras-icnn reconstruct decoded/*.mat --out recon --variant dgn-gd "
        "--std-correction estimated_vgg19_cnn_feat_std.mat")
    p.add_argument("features", nargs="+", metavar="FEATURES",
                   help="feature files, directories (their .mat/.npz/.h5/.hdf5 files) or globs")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--variant", default="gd", choices=VARIANTS,
                   help="gd: pixel momentum GD (icnn_gd); lbfgs: pixel L-BFGS-B, pixels kept "
                   "in 0-255 (icnn_lbfgs); dgn-gd / dgn-lbfgs: the same on the DeepSim fc7 "
                   "generator's input (icnn_dgn_gd / icnn_dgn_lbfgs). Default gd")
    p.add_argument("--layers", help="comma-separated VGG19 layers (conv1_1 ... conv5_4, fc6, "
                   "fc7, fc8); default: every VGG19 layer in the first feature file")
    p.add_argument("--iterations", type=int,
                   help="iterations (default 200; 500 for dgn-lbfgs)")
    p.add_argument("--weights", default="imagenet",
                   help="VGG19 weights: 'imagenet' (random weights, with a note, when they "
                   "cannot be downloaded), 'random', 'caffe', or a .weights.h5/.caffemodel "
                   "file. Default imagenet")
    p.add_argument("--generator-weights", default="deepsim-fc7",
                   help="DGN variants: 'deepsim-fc7' (random weights, with a note, when they "
                   "cannot be downloaded), 'random', or a .weights.h5/.caffemodel file")
    p.add_argument("--latent-upper", default="100",
                   help="DGN variants: upper bound of the generator's input, a number or a "
                   "text file of per-unit bounds (the paper's act_range/3x/fc7.txt). Default "
                   "100 (the library's); the lower bound is 0")
    p.add_argument("--lbfgs-impl", default="scipy", choices=["scipy", "tfp"],
                   help="L-BFGS variants: scipy's L-BFGS-B (the original, default) or "
                   "TensorFlow Probability's batched L-BFGS (runs on the GPU)")
    p.add_argument("--data-format", default="auto",
                   choices=["auto", "channels_first", "channels_last"],
                   help="layout of conv features in the files: channels_first = Caffe "
                   "[C, H, W] (the lab's .mat files), channels_last = Keras [H, W, C], auto = "
                   "detect (refuses ambiguous shapes). Default auto")
    p.add_argument("--layer-weight", default="inverse_norm", choices=["equal", "inverse_norm"],
                   help="layer weights: 1/||f||^2 normalised (the paper, default) or equal")
    p.add_argument("--std-correction", metavar="REF_STD_FILE",
                   help="rescale each target layer to this reference std first (decoded "
                   "features: .mat/.npz/.h5 with one std per layer, e.g. the lab's "
                   "estimated_vgg19_cnn_feat_std.mat, or one from "
                   "keras_icnn.scaling.save_feature_std)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="targets reconstructed together in one run (default 4)")
    p.add_argument("--logdir", help="write TensorBoard logs (scalars and images) here, one run "
                   "per batch")
    p.add_argument("--size", type=int, default=224,
                   help="encoder input size in pixels (default 224; fc6-fc8 need 224)")
    p.add_argument("--normalize", default="none", choices=["none", "minmax", "clip_extreme"],
                   help="how the PNG is made from the RGB 0-255 result: none = clip to 0-255 "
                   "(default), minmax = the original's normalise_img, clip_extreme = 2%% at "
                   "each tail clipped first (the paper's figures)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weights fallback and the initial images (each target's "
                   "start depends only on the seed and its name, not on the batch). Default 0")
    p.add_argument("--overwrite", action="store_true",
                   help="redo targets whose outputs exist instead of skipping them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_reconstruct)


def _expand_features(specs):
    """Feature files from files, directories and globs, in order, without duplicates."""
    import glob

    from keras_icnn.io import FEATURE_EXTENSIONS
    files = []
    for spec in specs:
        if os.path.isdir(spec):
            found = sorted(os.path.join(spec, f) for f in os.listdir(spec)
                           if f.lower().endswith(FEATURE_EXTENSIONS) and not f.startswith(".")
                           and os.path.isfile(os.path.join(spec, f)))
            if not found:
                raise ValueError(f"{spec}: directory without feature files "
                                 f"({', '.join(FEATURE_EXTENSIONS)})")
        elif os.path.isfile(spec):
            found = [spec]
        elif glob.has_magic(spec):
            found = sorted(f for f in glob.glob(spec) if os.path.isfile(f))
            if not found:
                raise FileNotFoundError(f"{spec}: no file matches this pattern")
        else:
            raise FileNotFoundError(f"{spec}: no such file or directory")
        for f in found:
            if not f.lower().endswith(FEATURE_EXTENSIONS):
                raise ValueError(f"{f}: not a feature file; expected one of "
                                 f"{', '.join(FEATURE_EXTENSIONS)}")
        files.extend(found)
    seen, out = set(), []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            out.append(f)
    stems = {}
    for f in out:
        stems.setdefault(os.path.splitext(os.path.basename(f))[0], []).append(f)
    dup = {k: v for k, v in stems.items() if len(v) > 1}
    if dup:
        k, v = next(iter(dup.items()))
        raise ValueError(f"several feature files would write the same outputs {k}.png: "
                         f"{', '.join(v)}; rename them or run them into different --out "
                         "directories")
    return out


def _parse_layers(text):
    from keras_icnn.models import VGG19_LAYERS
    layers = [t.strip() for t in text.split(",") if t.strip()]
    if not layers:
        raise ValueError("--layers: expected comma-separated layer names, got none")
    unknown = [n for n in layers if n not in VGG19_LAYERS]
    if unknown:
        raise ValueError(f"--layers: unknown layer(s) {', '.join(unknown)}; VGG19's layers "
                         f"are {', '.join(VGG19_LAYERS)}")
    return sorted(dict.fromkeys(layers), key=VGG19_LAYERS.index)


def _default_layers(path):
    import warnings

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


def _latent_upper(text, units=4096):
    """``--latent-upper``: a positive number, or a file of ``units`` positive numbers (the
    DeepSim generator's input), checked before any work is done."""
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


def _generator(weights, seed):
    """The DeepSim fc7 generator; 'deepsim-fc7' falls back to random weights with a note."""
    import keras

    from keras_icnn.models.generators import deepsim_fc7
    from keras_icnn.errors import WeightsUnavailableError
    keras.utils.set_random_seed(seed)
    if weights == "random":
        return deepsim_fc7(weights=None), "random"
    try:
        return deepsim_fc7(weights=weights), weights
    except WeightsUnavailableError as e:
        print(f"note: {e}\nnote: continuing with a random-weight generator (a random DeepSim "
              "generator is no image prior: expect noise-like images).", flush=True)
        keras.utils.set_random_seed(seed)
        return deepsim_fc7(weights=None), "random"


def _load_target_file(path, layers, encoder, data_format, ref_std):
    """``{layer: float32 [N, ...]}`` channels-last, validated, std-corrected."""
    from keras_icnn.objective import scaling, targets
    from keras_icnn.io import load_features
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


def _outputs(out, name):
    return [os.path.join(out, name + s) for s in OUTPUT_SUFFIXES]


def _initial(param, name, seed):
    """The start of one target, from (seed, name) only: the same whatever the batch."""
    import zlib

    import numpy as np

    from keras_icnn.params import Pixels
    key = [int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))]
    if isinstance(param, Pixels):  # the original: uniform random integers 0-255 (RGB)
        h, w, _ = param.image_shape
        rgb = np.random.default_rng(key).integers(0, 256, (h, w, 3)).astype(np.float32)
        return rgb, key
    return param.initial(1, "zeros")[0], key  # the paper's scripts: a zero latent


def _json_dump(path, obj):
    from keras_icnn.io import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)


def _reconstruct(args):
    import keras
    import numpy as np

    from keras_icnn import __version__, icnn_dgn_gd, icnn_gd, icnn_lbfgs, io
    from keras_icnn.engine.callbacks import TensorBoardImages
    from keras_icnn.icnn_dgn_gd import generator_param
    from keras_icnn.models import VGG19_FC_LAYERS
    from keras_icnn.errors import NonFiniteLossError, ZeroGradientError
    from keras_icnn.params import Pixels
    from keras_icnn.engine.reconstructor import Reconstructor
    from keras_icnn.objective.scaling import load_feature_std

    # -- check everything before any work ---------------------------------------------------
    variant, dgn = args.variant, args.variant.startswith("dgn")
    iterations = DEFAULT_ITERATIONS[variant] if args.iterations is None else args.iterations
    if iterations < 1:
        raise ValueError(f"--iterations: expected a positive number, got {iterations}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size: expected a positive number, got {args.batch_size}")
    if args.size < 32:
        raise ValueError(f"--size: VGG19 needs images of at least 32 pixels, got {args.size}")
    if dgn and args.size > 256:
        raise ValueError(f"--size: the generator makes 256x256 images; the encoder input "
                         f"must be at most 256, got {args.size}")
    files = _expand_features(args.features)
    layers = _parse_layers(args.layers) if args.layers else _default_layers(files[0])
    fc = [n for n in layers if n in VGG19_FC_LAYERS]
    if fc and args.size != 224:
        raise ValueError(f"--size {args.size}: the fully connected layers ({', '.join(fc)}) "
                         "need 224x224 images; use --size 224 or choose conv layers with "
                         "--layers")
    ref_std = load_feature_std(args.std_correction) if args.std_correction else None
    upper = _latent_upper(args.latent_upper) if dgn else None

    encoder, used = _encoder(args.weights, args.size, args.seed, include_top=bool(fc))
    targets = []  # (name, file, index in the file or None)
    for path in files:
        tgt = _load_target_file(path, layers, encoder, args.data_format, ref_std)
        n = len(next(iter(tgt.values())))
        stem = os.path.splitext(os.path.basename(path))[0]
        targets += [(stem, path, None)] if n == 1 else \
            [(f"{stem}_{i}", path, i) for i in range(n)]
    names = [t[0] for t in targets]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ValueError(f"several targets are named {dup[0]} (a file {dup[0]} and a batch "
                         "entry of another file); rename the file")
    os.makedirs(args.out, exist_ok=True)
    pending = []
    for t in targets:
        if not args.overwrite and all(os.path.exists(p) for p in _outputs(args.out, t[0])):
            print(f"skip {t[0]}: {os.path.join(args.out, t[0])}.png, _loss.json and "
                  "_options.json exist", flush=True)
        else:
            pending.append(t)
    print(f"keras-icnn reconstruct: {len(targets)} target(s) in {len(files)} file(s), "
          f"{len(targets) - len(pending)} done already, {len(pending)} to do; variant "
          f"{variant}, VGG19 ({used} weights) at {args.size}x{args.size}, {len(layers)} "
          f"layer(s), {iterations} iterations", flush=True)
    if not pending:
        return 0

    # -- the engine ---------------------------------------------------------------------------
    gen_used = None
    if dgn:
        gen, gen_used = _generator(args.generator_weights, args.seed)
        param = generator_param(gen, feat_upper_bound=upper, feat_lower_bound=0.0)
    else:
        param = Pixels(bounds="valid") if variant == "lbfgs" else Pixels()
    if variant.endswith("lbfgs"):
        optimizer = icnn_lbfgs.build_optimizer(iterations, disp=False, method=args.lbfgs_impl)
        opt_desc = {"name": "L-BFGS-B (scipy)" if args.lbfgs_impl == "scipy" else
                    "L-BFGS (TensorFlow Probability)"}
    elif variant == "gd":
        decay = _gd_decay(used)
        optimizer = icnn_gd.build_optimizer(iter_n=iterations, seed=args.seed,
                                            decay_start=decay[0], decay_end=decay[1])
        opt_desc = {"name": "momentum GD", "learning_rate": [2.0, 1e-10], "momentum": 0.9,
                    "decay": list(decay), "blur_sigma": [2.0, 0.5], "grad_normalize": True}
    else:  # dgn-gd, as icnn_dgn_gd
        optimizer = icnn_dgn_gd.build_optimizer(iterations)
        opt_desc = {"name": "momentum GD", "learning_rate": [2.0, 1e-10], "momentum": 0.9,
                    "decay": [0.01, 0.01], "grad_normalize": True}
    if variant.endswith("lbfgs"):
        opt_desc.update({k: v for k, v in vars(optimizer).items()
                         if not k.startswith("_") and not k.endswith("_")
                         and isinstance(v, (int, float, str, bool))})
    rec = Reconstructor(encoder, param=param, optimizer=optimizer,
                        layer_weight=None if args.layer_weight == "equal" else "inverse_norm",
                        data_format="channels_last", seed=args.seed)
    common = {
        "package": "keras-icnn", "version": __version__, "tensorflow": _version("tensorflow"),
        "keras": keras.__version__, "command": "reconstruct", "variant": variant,
        "layers": layers, "iterations": iterations, "encoder": "vgg19", "size": args.size,
        "weights": args.weights, "weights_used": used,
        "generator_weights": args.generator_weights if dgn else None,
        "generator_weights_used": gen_used,
        "latent_bounds": [0.0, upper] if dgn else None,
        "pixel_bounds": "valid (0-255)" if variant == "lbfgs" else None,
        "optimizer": opt_desc, "data_format": args.data_format,
        "layer_weight": args.layer_weight,
        "std_correction": os.path.abspath(args.std_correction) if args.std_correction else None,
        "reference_std": {k: ref_std[k] for k in layers} if ref_std else None,
        "batch_size": args.batch_size, "normalize": args.normalize, "seed": args.seed,
    }

    failed, cache = [], {}
    batches = [pending[i:i + args.batch_size] for i in range(0, len(pending), args.batch_size)]
    for b, batch in enumerate(batches, 1):
        bnames = [t[0] for t in batch]
        print(f"batch {b}/{len(batches)}: {', '.join(bnames)}", flush=True)
        feats = []
        for name, path, index in batch:
            if path not in cache:
                cache.clear()  # keep one file's features in memory
                cache[path] = _load_target_file(path, layers, encoder, args.data_format,
                                                ref_std)
            tgt = cache[path]
            feats.append({k: v[index:index + 1] if index is not None else v
                          for k, v in tgt.items()})
        features = {k: np.concatenate([f[k] for f in feats]) for k in layers}
        starts = [_initial(rec.param, name, args.seed) for name in bnames]
        callbacks = []
        if args.logdir:
            run = bnames[0] if len(bnames) == 1 else f"{bnames[0]}..{bnames[-1]}"
            logdir = os.path.join(args.logdir, run)
            callbacks += [keras.callbacks.TensorBoard(logdir, write_graph=False),
                          TensorBoardImages(logdir, every=max(1, iterations // 20))]
        try:
            rec.fit(features, iterations=iterations, initial=np.stack([s[0] for s in starts]),
                    callbacks=callbacks, verbose=0 if args.quiet else 1)
        except (NonFiniteLossError, ZeroGradientError) as e:  # fail this batch, go on
            print(f"error: batch {b} ({', '.join(bnames)}): {e}; nothing written for these "
                  "targets", file=sys.stderr, flush=True)
            failed += bnames
            continue
        images, losses = rec.images, rec.loss_history_
        if rec.iterations_run == 0:
            results = getattr(optimizer, "results_", None)
            why = (getattr(results[0], "message", None) if isinstance(results, list) and results
                   else None)
            print(f"note: batch {b}: the optimiser stopped before its first iteration"
                  f"{f' ({why})' if why else ''}; the images are the starting points",
                  flush=True)
        initial_losses = getattr(optimizer, "initial_losses_", None)
        for i, (name, path, index) in enumerate(batch):
            loss = [float(v) for v in losses[:, i]]
            png, loss_json, options_json = (os.path.join(args.out, name + s)
                                            for s in (".png", "_loss.json", "_options.json"))
            _json_dump(loss_json, {"target": name, "loss": loss,
                                   "initial_loss": None if initial_losses is None
                                   else float(initial_losses[i]),
                                   "iterations_run": int(rec.iterations_run),
                                   "final_loss": loss[-1] if loss else None,
                                   "note": "feature loss of this image per iteration (the "
                                   "weighted sum over layers)"})
            _json_dump(options_json, {**common, "target": name,
                                      "source": os.path.abspath(path), "index_in_file": index,
                                      "iterations_run": int(rec.iterations_run),
                                      "initial": "zeros" if dgn else "random",
                                      "initial_seed": starts[i][1],
                                      "batch": bnames})
            io.save_image(png, images[i], normalize=False if args.normalize == "none"
                          else args.normalize)  # last: the target is done when this exists
        print(f"wrote {', '.join(n + '.png' for n in bnames)} (+ _loss.json, _options.json) "
              f"to {args.out}", flush=True)
    if failed:
        print(f"keras-icnn reconstruct: {len(failed)} target(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    print(f"done: {len(pending)} target(s) reconstructed into {args.out}", flush=True)
    return 0


def _version(package):
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:  # pragma: no cover
        return None


def _convert_parser(sub):
    p = sub.add_parser("convert-caffe", help="convert a Caffe model to Keras weights",
                       add_help=False)
    p.set_defaults(func=None)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="keras-icnn", description="Reconstruct images from "
                                     "CNN features (inverting CNNs) with TensorFlow/Keras.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _demo_parser(sub)
    _reconstruct_parser(sub)
    _convert_parser(sub)
    if argv and argv[0] == "convert-caffe":
        from .caffe.convert import main_convert
        return main_convert(argv[1:])
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (argparse printed it): no traceback
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"keras-icnn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
