"""Command line: ``keras-icnn demo``, ``keras-icnn convert-caffe`` (``python -m keras_icnn``)."""
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


def _encoder(weights, size, seed):
    import keras

    from .models import WeightsUnavailableError, vgg19
    top = size == 224
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


def _demo(args):
    from . import icnn_gd, io, metrics, plots
    from .callbacks import IterationTimer
    from .models import VGG19_CONV_LAYERS, VGG19_FC_LAYERS, extract_features
    from .reconstructor import Reconstructor

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
        # The published settings (decay 0.2 -> 0) suit ImageNet weights; a random-weight
        # encoder keeps less of the image, and the strong early decay washes it out.
        decay = (0.2, 1e-10) if used != "random" else (0.01, 0.0)
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
               "seconds_per_iteration": timer.per_iteration, "final_loss":
               float(history.history["loss"][-1]), "pixel_correlation": corr,
               "loss": [float(v) for v in history.history["loss"]]}
    from .io import atomic_path
    with atomic_path(os.path.join(args.out, "summary.json")) as tmp:
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"done: {rec.iterations_run} iterations, {timer.per_iteration:.3f} s/iteration "
          f"(after the first), final loss {summary['final_loss']:.4g}, pixel correlation with "
          f"the original {corr:.3f}\nwrote {args.out}/reconstruction.png, comparison.png, "
          "loss.png, summary.json")
    return 0


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
    _convert_parser(sub)
    if argv and argv[0] == "convert-caffe":
        from .caffe.convert import main_convert
        return main_convert(argv[1:])
    args = parser.parse_args(argv)
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
