"""The in-graph L-BFGS (``LBFGS``, "tfp" below for history) vs scipy L-BFGS-B vs momentum GD on the same target and iteration budget.

    python benchmarks/compare_optimizers.py                   # VGG19 (random weights) 64x64
    python benchmarks/compare_optimizers.py --size 224        # the paper's image size
    python benchmarks/compare_optimizers.py --layers conv3_1,conv4_1 --iterations 200
    python benchmarks/compare_optimizers.py --model relu      # a tiny conv net (seconds)

The target is the features of a smooth random image; every optimiser starts from the same
random noise image and gets the same number of iterations.  The L-BFGS runs keep the pixels in
the valid range (``Pixels(bounds='valid')``, as the original ``icnn_lbfgs``); momentum GD runs
as the original ``icnn_gd`` (``keras_icnn.icnn_gd.build_optimizer()`` defaults: unbounded
pixels, lr 2 -> 1e-10, momentum 0.9, decay, Gaussian blur).  Layer weights are the paper's
(``inverse_norm``).

Printed per optimiser: iterations run, the first iteration's seconds (includes tracing /
compilation), seconds per iteration after it (median), objective evaluations (forward+backward
passes) per iteration, the feature loss at the start and at the end, the final loss relative to
the start, and what ended the run.  With the default tolerances the L-BFGS runs may stop before
the budget (scipy's ``ftol`` is relative to ``max(|f|, 1)``, so a loss below 1 stops it early);
``--full`` disables that.  Asserts nothing.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn import Pixels, Reconstructor, icnn_gd  # noqa: E402
from keras_icnn.optimizers import LBFGS, ScipyLBFGSB  # noqa: E402
from keras_icnn.models import VGG19_CONV_LAYERS, extract_features, vgg19  # noqa: E402


class _Clock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.t0, self.ends = time.perf_counter(), []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


def _smooth_image(size, seed):
    """A smooth random RGB 0-255 image (low-pass filtered noise)."""
    rng = np.random.default_rng(seed)
    k = max(size // 8, 2)
    small = rng.uniform(0, 255, (k, k, 3)).astype(np.float32)
    img = tf.image.resize(small[None], (size, size), method="bicubic")[0].numpy()
    return np.clip(img, 0, 255)


def _tiny_net(size):
    inp = keras.Input((size, size, 3), name="data")
    x = inp
    for i, f in enumerate((16, 32, 32), start=1):
        x = keras.layers.Conv2D(f, 3, padding="same", name=f"conv{i}",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=i))(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inp, x, name="tiny"), ["conv1", "conv2", "conv3"]


def run(name, model, feats, param, optimizer, iterations):
    rec = Reconstructor(model, param=param, optimizer=optimizer, layer_weight="inverse_norm",
                        data_format="channels_last", seed=0)
    clock = _Clock()
    rec.fit(feats, iterations=iterations, callbacks=[clock], verbose=0)
    ends = np.asarray(clock.ends)
    first = ends[0] - clock.t0
    per_it = float(np.median(np.diff(ends))) if len(ends) > 1 else float("nan")
    loss = rec.history.history["loss"]
    opt = rec.optimizer
    objective, _ = rec.build_objective(feats)
    z0 = rec.param.project_initial(rec.param.initial(1, None, seed=0))
    start = float(objective.value(tf.constant(z0), 0, iterations)[1]["loss"][0])
    if isinstance(opt, ScipyLBFGSB):
        evals = len(opt.evaluation_losses_[0]) / rec.iterations_run
    elif isinstance(opt, LBFGS):
        evals = rec.history.history["evaluations"][-1] / rec.iterations_run
    else:
        evals = 1.0
    rel = loss[-1] / start
    if isinstance(opt, ScipyLBFGSB):
        why = opt.results_[0].message
    elif isinstance(opt, LBFGS):
        r = opt.results_
        why = (f"converged={bool(r['converged'][0])} failed={bool(r['failed'][0])} "
               f"restarts={r['restarts']}")
    else:
        why = "budget"
    print(f"{name:<22} {rec.iterations_run:>5} {first:>9.2f} {per_it:>9.4f} {evals:>7.2f} "
          f"{start:>12.5g} {loss[-1]:>12.5g} {rel:>11.3g}  {why}", flush=True)
    return rec


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=64, help="image size S (S x S)")
    p.add_argument("--model", choices=("vgg19", "relu"), default="vgg19",
                   help="vgg19: VGG19 (weights=None, include_top=False); relu: a tiny conv net")
    p.add_argument("--layers", default=None,
                   help="comma-separated target layers (default: all conv layers)")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--only", default="tfp,scipy,gd",
                   help="comma-separated subset of tfp,scipy,gd")
    p.add_argument("--seed", type=int, default=0, help="seed of the random network weights")
    p.add_argument("--full", action="store_true",
                   help="no early stop: scipy ftol=gtol=0 and LBFGS tolerance=0, so every "
                        "optimiser spends the whole iteration budget")
    a = p.parse_args()
    keras.utils.set_random_seed(a.seed)
    if a.model == "vgg19":
        model = vgg19(weights=None, include_top=False, input_shape=(a.size, a.size, 3))
        layers = list(VGG19_CONV_LAYERS)
    else:
        model, layers = _tiny_net(a.size)
    if a.layers:
        layers = [s.strip() for s in a.layers.split(",") if s.strip()]
    feats = extract_features(model, _smooth_image(a.size, 1), layers)
    print(f"{a.model} {a.size}x{a.size}, {len(layers)} target layers, {a.iterations} iterations;"
          f" TF {tf.__version__}, {len(tf.config.list_physical_devices('GPU'))} GPU(s), "
          f"{os.cpu_count()} CPU(s)")
    print(f"{'optimiser':<22} {'iters':>5} {'first(s)':>9} {'s/iter':>9} {'eval/it':>7} "
          f"{'start loss':>12} {'final loss':>12} {'final/start':>11}  stopped by")
    which = {s.strip() for s in a.only.split(",")}
    if "tfp" in which:
        run("L-BFGS (TF)", model, feats, Pixels(bounds="valid"),
            LBFGS(iterations=a.iterations, **({"tolerance": 0.0} if a.full else {})),
            a.iterations)
    if "scipy" in which:
        run("scipy L-BFGS-B", model, feats, Pixels(bounds="valid"),
            ScipyLBFGSB(iterations=a.iterations, **({"ftol": 0.0, "gtol": 0.0} if a.full
                                                    else {})), a.iterations)
    if "gd" in which:
        rec = run("momentum GD (icnn_gd)", model, feats, "pixels",
                  icnn_gd.build_optimizer(iter_n=a.iterations), a.iterations)
        del rec


if __name__ == "__main__":
    main()
