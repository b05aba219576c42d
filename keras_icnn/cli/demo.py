"""``keras-icnn demo``: reconstruct a photo from its own VGG19 features."""
from __future__ import annotations

import os
from importlib import resources

from keras_icnn.cli import build, outputs
from keras_icnn.cli.common import (EXIT_DONE, EXIT_STATUS_HELP, check_positive, load_encoder,
                                   versions)
from keras_icnn.models.precision import PRECISIONS

__all__ = ["DEMO_IMAGE", "OUTPUTS", "OPTIMIZERS", "add_parser", "run"]

DEMO_IMAGE = "astronaut.jpg"
#: The files written into ``--out``; ``summary.json`` is the record (written first, claiming
#: them, and again at the end with the results).
OUTPUTS = ("summary.json", "reconstruction.png", "comparison.png", "loss.png")
#: ``--optimizer`` -> (preset, L-BFGS implementation); the demo starts from random pixels.
OPTIMIZERS = {"gd": ("paper_gd", "scipy"), "lbfgs": ("paper_lbfgs", "tfp"),
              "lbfgs-b": ("paper_lbfgs", "scipy")}


def add_parser(sub):
    p = sub.add_parser("demo", help="reconstruct a photo from its own VGG19 features",
                       description="Reconstructs a photo shipped with keras-icnn from its VGG19 "
                       "features (all conv and fc layers, pre-ReLU, 1/||f||^2 layer weights) by "
                       "the original iCNN momentum gradient descent, and writes the result, a "
                       "side-by-side figure and the loss curve.", epilog=EXIT_STATUS_HELP)
    p.add_argument("--image", help="an image file to use instead of the shipped photo")
    p.add_argument("--size", type=int, default=224,
                   help="image size in pixels (224: with fc6-fc8; smaller: conv layers only, "
                   "faster; default 224)")
    p.add_argument("--iterations", type=int, default=200, help="iterations (default 200)")
    p.add_argument("--weights", default="imagenet",
                   help="'imagenet' (falls back to random weights when they cannot be "
                   "downloaded), 'random', or a .weights.h5/.caffemodel file")
    p.add_argument("--optimizer", default="gd", choices=list(OPTIMIZERS),
                   help="momentum GD (default, --preset paper_gd), batched in-graph L-BFGS, or "
                   "scipy L-BFGS-B (paper_lbfgs), from random pixels")
    p.add_argument("--out", default="icnn_demo_output", help="output directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files named like the outputs that keras-icnn did not write")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--precision", default="float32",
                   choices=list(PRECISIONS),
                   help="float32 (exact, default); mixed_bfloat16 is faster on CPUs with "
                   "AVX512-BF16/AMX and GPUs with bf16, mixed_float16 on GPUs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _check(args):
    """Everything before any work: the numbers, --out and the files in it."""
    if args.size < 32:
        raise ValueError(f"--size: VGG19 needs images of at least 32 pixels, got {args.size}")
    check_positive(args.iterations, "--iterations")
    outputs.check_directory(args.out, "--out")
    paths = [os.path.join(args.out, n) for n in OUTPUTS]
    outputs.remove_stale(paths)
    foreign = [] if args.overwrite else outputs.foreign_files(paths, paths[0])
    if foreign:
        outputs.refuse_foreign(foreign, "demo")
    return paths


def _image(args):
    from keras_icnn import io
    if args.image:
        return io.load_image(args.image, size=args.size)
    with resources.as_file(resources.files("keras_icnn") / "data" / DEMO_IMAGE) as p:
        return io.load_image(p, size=args.size)


def _reconstructor(args, model, used):
    preset, impl = OPTIMIZERS[args.optimizer]
    rec = build.reconstructor_from_preset(preset, model, iterations=args.iterations,
                                          lbfgs_impl=impl, weights_used=used,
                                          initial="random", seed=args.seed,
                                          data_format="channels_last",
                                          precision=args.precision)
    note = (f"; pixel decay {build.RANDOM_WEIGHTS_DECAY[0]:g} -> "
            f"{build.RANDOM_WEIGHTS_DECAY[1]:g} for random weights"
            if used == "random" and args.optimizer == "gd" else "")
    print(f"{preset}: {rec.optimizer.__class__.__name__}{note}", flush=True)
    return rec


def run(args, argv=None):
    from keras_icnn.engine.callbacks import IterationTimer
    from keras_icnn.models import VGG19_CONV_LAYERS, VGG19_FC_LAYERS, extract_features
    paths = _check(args)
    image = _image(args)
    model, used = load_encoder(args.weights, args.size, args.seed)
    layers = list(VGG19_CONV_LAYERS) + (list(VGG19_FC_LAYERS) if args.size == 224 else [])
    features = extract_features(model, image, layers)
    print(f"keras-icnn demo: {args.size}x{args.size} image, VGG19 ({used} weights), "
          f"{len(layers)} layers, {args.iterations} iterations, optimizer {args.optimizer}, "
          f"{args.precision}",
          flush=True)
    rec = _reconstructor(args, model, used)
    timer = IterationTimer()
    history = rec.fit(features, iterations=args.iterations, callbacks=[timer],
                      verbose=0 if args.quiet else 1)
    summary = _write(args, paths, image, rec, history, timer, used, layers)
    print(f"done: {rec.iterations_run} iterations, {timer.per_iteration:.3f} s/iteration "
          f"(after the first), final loss {summary['final_loss']:.4g}, pixel correlation with "
          f"the original {summary['pixel_correlation']:.3f}\nwrote {args.out}/"
          "reconstruction.png, comparison.png, loss.png, summary.json")
    return EXIT_DONE


def _write(args, paths, image, rec, history, timer, used, layers):
    """The outputs: the record first (claiming the names), the figures, the summary."""
    from keras_icnn import io
    from keras_icnn.evaluation import metrics, plots
    base = {**versions(), "command": "demo"}
    outputs.write_claimed(paths[0], {**base, "complete": False}, paths)
    recon = rec.images[0]
    io.save_image(paths[1], recon)
    plots.plot_reconstructions(image[None], recon[None], titles=["demo"], path=paths[2])
    plots.plot_loss(history, path=paths[3])
    corr = float(metrics.pattern_correlation(recon[None], image[None])[0])
    per_iteration = timer.per_iteration
    summary = {**base, "weights": used, "size": args.size, "layers": layers,
               "iterations": rec.iterations_run, "optimizer": args.optimizer,
               "precision": args.precision,
               "seconds_per_iteration": None if per_iteration != per_iteration
               else per_iteration, "final_loss": float(history.history["loss"][-1]),
               "pixel_correlation": corr,
               "loss": [float(v) for v in history.history["loss"]],
               "reconstructor": rec.get_config(), "complete": True}
    outputs.write_claimed(paths[0], summary, paths)
    return summary
