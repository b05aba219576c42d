"""One table of reconstruction speed: per-image seconds per iteration of each variant x batch x
precision x XLA, next to the bare forward+backward of the same encoder.

    python benchmarks/speed_table.py                                   # everything (hours on CPU)
    python benchmarks/speed_table.py --batches 1 8 --precisions float32 mixed_bfloat16
    python benchmarks/speed_table.py --variants icnn_gd lbfgs --xla off --size 96 --iterations 3

Variants: icnn_gd, icnn_lbfgs (scipy L-BFGS-B), icnn_dgn_gd, icnn_dgn_lbfgs (DeepSim fc7
generator, random weights) and lbfgs (the in-graph batched L-BFGS on pixels), each with its
preset's settings; VGG19 with random weights, all conv layers (and fc6-fc8 at 224 px).  A row
runs ``1 + --iterations`` iterations: the first (tracing, compiling) is printed on its own
("first s"), the per-image mean of the others is "s/iter/img".  "bare/img" is one compiled
forward pass to the same layers plus the gradient of an l2 loss with respect to the image, at
the same batch, precision and XLA setting, per image; "ratio" = s/iter/img / bare/img (the
DGN variants also run the generator, L-BFGS iterations may evaluate several times).  A
combination that fails (e.g. float16 kernels missing on a device) prints "n/a" with the
reason.  Prints the figures; asserts nothing.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn import Reconstructor, config, presets  # noqa: E402
from keras_icnn.models import (VGG19_CONV_LAYERS, VGG19_FC_LAYERS, extract_features,  # noqa: E402
                               feature_extractor, vgg19)
from keras_icnn.models.precision import (PRECISIONS, Float32Boundary,  # noqa: E402
                                         low_precision_twin)

#: variant -> (preset, optimiser class replacing the preset's, or None)
VARIANTS = {"icnn_gd": ("icnn_gd", None), "icnn_lbfgs": ("icnn_lbfgs", None),
            "icnn_dgn_gd": ("icnn_dgn_gd", None), "icnn_dgn_lbfgs": ("icnn_dgn_lbfgs", None),
            "lbfgs": ("icnn_lbfgs", "LBFGS")}


class Times(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.stamps = [time.perf_counter()]

    def on_epoch_end(self, epoch, logs=None):
        self.stamps.append(time.perf_counter())

    def first_and_mean(self):
        d = np.diff(self.stamps)
        return d[0], (float(np.mean(d[1:])) if len(d) > 1 else float("nan"))


def device_name():
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown CPU") \
        if os.path.exists("/proc/cpuinfo") else "CPU"
    return f"CPU: {model}, {os.cpu_count()} cores"


def bare(twin, layers, feats, precision, xla, repeats):
    ext = Float32Boundary(feature_extractor(twin, layers), precision)
    targets = {k: tf.constant(v) for k, v in feats.items()}
    n = len(next(iter(feats.values())))
    x = tf.Variable(tf.random.normal([n] + list(twin.input_shape[1:]), stddev=50.0))

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            out = ext(x, training=False)
            loss = tf.add_n([tf.reduce_sum(tf.square(out[k] - targets[k])) for k in layers])
        return tape.gradient(loss, x)

    step().numpy()
    t = time.perf_counter()
    for _ in range(repeats):
        step().numpy()
    return (time.perf_counter() - t) / repeats / n


def reconstructor(variant, model, generator, precision, xla, iterations):
    preset, replace = VARIANTS[variant]
    opt = dict(presets.get(preset)["optimizer"])
    opt = {"class_name": replace or opt["class_name"],
           "config": {} if replace else dict(opt["config"])}
    opt["config"].update(iterations=iterations, jit_compile=xla)
    dgn = "dgn" in variant
    return Reconstructor.from_preset(
        preset, model, generator=generator if dgn else None,
        latent_upper=100.0 if dgn else None, optimizer=config.deserialize(opt, "optimizer"),
        precision=precision, data_format="channels_last", seed=0)


def row(a, ctx, variant, n, precision, xla):
    model, layers, feats, twins, bares = ctx
    key = (n, precision, xla)
    batch = {k: v[:n] for k, v in feats.items()}
    if key not in bares:
        twins.setdefault(precision, low_precision_twin(model, precision))
        bares[key] = bare(twins[precision], layers, batch, precision, xla, a.iterations)
    gen = ctx_generator(ctx) if "dgn" in variant else None
    rec = reconstructor(variant, model, gen, precision, xla, 1 + a.iterations)
    times = Times()
    rec.fit(batch, iterations=1 + a.iterations, callbacks=[times], verbose=0)
    first, mean = times.first_and_mean()
    return first, mean / n, bares[key]


_GENERATOR = []


def ctx_generator(ctx):
    if not _GENERATOR:
        from keras_icnn.models.generators import deepsim_fc7
        _GENERATOR.append(deepsim_fc7(weights=None))
    return _GENERATOR[0]


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument("--xla", nargs="+", default=["off", "on"], choices=["off", "on"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--iterations", type=int, default=3,
                   help="timed iterations after the first (default 3)")
    return p.parse_args()


def main():
    a = parse()
    top = a.size == 224
    keras.utils.set_random_seed(0)
    model = vgg19(weights=None, include_top=top, input_shape=(a.size, a.size, 3))
    layers = list(VGG19_CONV_LAYERS) + (list(VGG19_FC_LAYERS) if top else [])
    images = np.random.default_rng(0).uniform(0, 255, (max(a.batches), a.size, a.size, 3))
    feats = extract_features(model, images, layers)
    ctx = (model, layers, feats, {}, {})
    print(f"{device_name()}; TF {tf.__version__}; VGG19 {a.size}x{a.size}, {len(layers)} "
          f"layers; {a.iterations} timed iterations after the first")
    print(f"{'variant':<16}{'batch':>6} {'precision':<15}{'xla':<5}{'first s':>9}"
          f"{'s/iter/img':>12}{'bare/img':>10}{'ratio':>7}", flush=True)
    for variant in a.variants:
        for n in a.batches:
            for precision in a.precisions:
                for x in a.xla:
                    head = f"{variant:<16}{n:>6} {precision:<15}{x:<5}"
                    try:
                        first, per, b = row(a, ctx, variant, n, precision, x == "on")
                        print(f"{head}{first:>9.2f}{per:>12.4f}{b:>10.4f}{per / b:>7.2f}",
                              flush=True)
                    except Exception as e:  # noqa: BLE001 -- a table row, not a crash
                        reason = (str(e).strip().splitlines() or [""])[0][:80]
                        print(f"{head}{'n/a':>9}  ({type(e).__name__}: {reason})", flush=True)


if __name__ == "__main__":
    main()
