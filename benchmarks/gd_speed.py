"""Seconds per iteration of momentum-GD reconstruction vs the encoder's bare forward+backward.

    python benchmarks/gd_speed.py                 # VGG19 at 224x224, all 19 layers (the demo)
    python benchmarks/gd_speed.py --size 96       # conv layers only
    python benchmarks/gd_speed.py --xla           # also the step compiled with XLA
    python benchmarks/gd_speed.py --dgn           # also DGN-GD (DeepSim fc7 generator, 256 px)

"bare" is one compiled forward pass to the requested layers plus the gradient of an l2 feature
loss with respect to the image: the least any reconstruction step must do.  "icnn_gd" is a full
iteration of the original loop (gradient normalisation, momentum, decay, Gaussian blur), with
Keras callbacks, as `keras-icnn demo` runs it.  Prints the figures; asserts nothing.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_icnn import MomentumGD, Reconstructor, icnn_gd  # noqa: E402
from keras_icnn.optimizers.transforms import Decay  # noqa: E402
from keras_icnn.engine.callbacks import IterationTimer  # noqa: E402
from keras_icnn.models import (VGG19_CONV_LAYERS, VGG19_FC_LAYERS, extract_features,  # noqa: E402
                               feature_extractor, vgg19)


def bare(model, layers, feats, n, repeats):
    ext = feature_extractor(model, layers)
    targets = {k: tf.constant(v) for k, v in feats.items()}
    x = tf.Variable(tf.random.normal([1] + list(model.input_shape[1:]), stddev=50.0))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = ext(x, training=False)
            loss = tf.add_n([tf.reduce_sum(tf.square(out[k] - targets[k])) for k in layers])
        return tape.gradient(loss, x)

    step()
    t = time.perf_counter()
    for _ in range(repeats):
        step().numpy()
    return (time.perf_counter() - t) / repeats


def recon(model, feats, iterations, xla, param="pixels"):
    opt = (icnn_gd.build_optimizer(iter_n=iterations, jit_compile=xla) if param == "pixels" else
           MomentumGD(transforms=[Decay(0.01)], jit_compile=xla))
    rec = Reconstructor(model, param=param, optimizer=opt, layer_weight="inverse_norm",
                        data_format="channels_last", seed=0)
    timer = IterationTimer()
    rec.fit(feats, iterations=iterations, callbacks=[timer], verbose=0)
    return timer.per_iteration


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument("--xla", action="store_true")
    p.add_argument("--dgn", action="store_true")
    a = p.parse_args()
    top = a.size == 224
    model = vgg19(weights=None, include_top=top, input_shape=(a.size, a.size, 3))
    layers = list(VGG19_CONV_LAYERS) + (list(VGG19_FC_LAYERS) if top else [])
    img = np.random.default_rng(0).uniform(0, 255, (a.size, a.size, 3))
    feats = extract_features(model, img, layers)
    print(f"VGG19 {a.size}x{a.size}, {len(layers)} layers, TF {tf.__version__}, "
          f"{len(tf.config.list_physical_devices('GPU'))} GPU(s), {os.cpu_count()} CPU(s)")
    b = bare(model, layers, feats, 1, max(3, a.iterations // 2))
    print(f"bare forward+backward: {b:.3f} s")
    r = recon(model, feats, a.iterations, False)
    print(f"icnn_gd iteration:     {r:.3f} s  ({r / b:.2f}x bare)")
    if a.xla:
        rx = recon(model, feats, a.iterations, True)
        print(f"icnn_gd iteration XLA: {rx:.3f} s  ({rx / b:.2f}x bare)")
    if a.dgn:
        from keras_icnn.models.generators import deepsim_fc7
        from keras_icnn.params import Generator
        gen = Generator(deepsim_fc7(weights=None))
        rd = recon(model, feats, a.iterations, False, param=gen)
        print(f"icnn_dgn_gd iteration: {rd:.3f} s  ({rd / b:.2f}x bare)")


if __name__ == "__main__":
    main()
