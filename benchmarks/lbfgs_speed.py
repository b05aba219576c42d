"""Speed of the in-graph L-BFGS (``optimizer="lbfgs"``) against scipy's L-BFGS-B (``"lbfgs-b"``).

    python benchmarks/lbfgs_speed.py                 # VGG19 224x224, 19 layers, batch 1 and 8
    python benchmarks/lbfgs_speed.py --batches 1 --iterations 50
    python benchmarks/lbfgs_speed.py --size 64       # conv layers only (quick)

VGG19 with random weights (``weights=None``; at 224 with its fc layers: the 19 layers the demo
uses), targets the features of smooth random images, start the same random noise, pixels kept in
0-255 (``Pixels(bounds="valid")``), layer weights ``inverse_norm``, both optimisers with their
stopping tolerances at 0 so that both run the whole budget. Printed per optimiser and batch
size: ``build+1st``: seconds from ``fit()`` to the end of the first iteration (tracing, the
start's evaluation); ``1st``: the first iteration alone; ``refit 1st``: the same on a later
``fit`` of the same Reconstructor (the compiled step reused); ``s/iter``: median seconds per
iteration after the first (the least over ``--repeats`` fits, run alternately with the other
optimiser's, so that a load from elsewhere hits both alike), and per image; ``eval/it``:
objective evaluations per iteration (the start's included; L-BFGS: batched evaluations,
L-BFGS-B: per image, the batch evaluates at least that often); ``final loss``: the feature loss
after the last iteration, mean over the images. Uses the public API only, so it also runs
against older versions. Asserts nothing.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn import Pixels, Reconstructor  # noqa: E402
from keras_icnn.models import (VGG19_CONV_LAYERS, VGG19_FC_LAYERS, extract_features,  # noqa: E402
                               vgg19)
from keras_icnn.optimizers import LBFGS, ScipyLBFGSB  # noqa: E402


class Clock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.t0, self.ends = time.perf_counter(), []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


def smooth_images(n, size, seed=1):
    """``n`` smooth random RGB 0-255 images (low-pass filtered noise)."""
    rng = np.random.default_rng(seed)
    k = max(size // 8, 2)
    small = rng.uniform(0, 255, (n, k, k, 3)).astype(np.float32)
    return np.clip(tf.image.resize(small, (size, size), method="bicubic").numpy(), 0, 255)


def make(name, iterations):
    if name == "lbfgs":
        return LBFGS(iterations=iterations, tolerance=0.0)
    return ScipyLBFGSB(iterations=iterations, ftol=0.0, gtol=0.0)


def timed_fit(rec, feats, iterations):
    clock = Clock()
    t = time.perf_counter()
    rec.fit(feats, iterations=iterations, callbacks=[clock], verbose=0)
    ends = np.asarray(clock.ends)
    per_it = float(np.median(np.diff(ends))) if len(ends) > 1 else float("nan")
    return ends[0] - t, ends[0] - clock.t0, per_it


def evals_per_iteration(rec):
    opt = rec.optimizer
    if isinstance(opt, ScipyLBFGSB):
        return float(np.mean([len(e) for e in opt.evaluation_losses_])) / rec.iterations_run
    return rec.history.history["evaluations"][-1] / rec.iterations_run


def run(names, model, feats, n, iterations, repeats):
    """Fit each optimiser ``repeats`` times, alternating (the same Reconstructor: the later
    fits reuse the compiled step), and print its row."""
    recs = {name: Reconstructor(model, param=Pixels(bounds="valid"),
                                optimizer=make(name, iterations), layer_weight="inverse_norm",
                                data_format="channels_last", seed=0) for name in names}
    times, rows = {name: [] for name in names}, {}
    for r in range(repeats):
        for name, rec in recs.items():
            times[name].append(timed_fit(rec, feats, iterations))
            if r == 0:
                rows[name] = (rec.iterations_run, evals_per_iteration(rec),
                              float(np.mean(rec.optimizer.initial_losses_)),
                              float(np.mean(rec.loss_history_[-1])))
    for name in names:
        (build_first, first, _), later = times[name][0], times[name][1:]
        again = min([t[1] for t in later], default=float("nan"))
        per_it = min(t[2] for t in times[name])
        its, evals, start, final = rows[name]
        print(f"{name:<8} {n:>5} {its:>5} {build_first:>9.2f} {first:>7.2f} {again:>9.2f} "
              f"{per_it:>8.3f} {per_it / n:>9.3f} {evals:>7.2f} {start:>11.5g} {final:>11.5g}",
              flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--only", default="lbfgs,lbfgs-b", help="subset of lbfgs,lbfgs-b")
    p.add_argument("--repeats", type=int, default=2,
                   help="fits per optimiser, alternating between the optimisers (>= 2: the "
                        "refit figures; seconds per iteration: the least over the fits)")
    a = p.parse_args()
    keras.utils.set_random_seed(0)
    top = a.size == 224
    model = vgg19(weights=None, include_top=top, input_shape=(a.size, a.size, 3))
    layers = list(VGG19_CONV_LAYERS) + (list(VGG19_FC_LAYERS) if top else [])
    print(f"VGG19 {a.size}x{a.size} (random weights), {len(layers)} layers, {a.iterations} "
          f"iterations; TF {tf.__version__}, {len(tf.config.list_physical_devices('GPU'))} "
          f"GPU(s), {os.cpu_count()} CPU(s)")
    print(f"{'opt':<8} {'batch':>5} {'iters':>5} {'build+1st':>9} {'1st':>7} {'refit 1st':>9} "
          f"{'s/iter':>8} {'s/it/img':>9} {'eval/it':>7} {'start loss':>11} {'final loss':>11}")
    for n in [int(b) for b in a.batches.split(",")]:
        feats = extract_features(model, smooth_images(n, a.size), layers)
        run([s.strip() for s in a.only.split(",")], model, feats, n, a.iterations, a.repeats)


if __name__ == "__main__":
    main()
