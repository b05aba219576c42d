"""Quality and speed of a mixed-precision reconstruction against float32, on the demo's photo.

    python benchmarks/precision_quality.py                      # 224 px, 200 iterations
    python benchmarks/precision_quality.py --precisions float32 mixed_bfloat16 mixed_float16
    python benchmarks/precision_quality.py --size 96 --iterations 50   # quick look

The `keras-icnn demo` settings (VGG19 with random weights, as the demo uses when the ImageNet
weights cannot be downloaded; all conv and, at 224 px, fc layers; paper_gd momentum GD from
random pixels, seed 0), once per precision in one process.  Prints per precision the pixel
correlation of the reconstruction with the photo, its difference to float32's, the final
loss and seconds per iteration (after the first).  Asserts nothing.
"""
import argparse
import os
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from keras_icnn import io  # noqa: E402
from keras_icnn.cli import build  # noqa: E402
from keras_icnn.cli.common import load_encoder  # noqa: E402
from keras_icnn.engine.callbacks import IterationTimer  # noqa: E402
from keras_icnn.evaluation import metrics  # noqa: E402
from keras_icnn.models import VGG19_CONV_LAYERS, VGG19_FC_LAYERS, extract_features  # noqa: E402
from keras_icnn.models.precision import PRECISIONS  # noqa: E402


def run(model, features, precision, iterations):
    rec = build.reconstructor_from_preset(
        "paper_gd", model, iterations=iterations, lbfgs_impl="scipy", weights_used="random",
        initial="random", seed=0, data_format="channels_last", precision=precision)
    timer = IterationTimer()
    history = rec.fit(features, iterations=iterations, callbacks=[timer], verbose=0)
    return rec.images[0], history.history["loss"][-1], timer.per_iteration


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
                   choices=PRECISIONS)
    a = p.parse_args()
    with resources.as_file(resources.files("keras_icnn") / "data" / "astronaut.jpg") as f:
        photo = io.load_image(f, size=a.size)
    model, _ = load_encoder("random", a.size, 0)
    layers = list(VGG19_CONV_LAYERS) + (list(VGG19_FC_LAYERS) if a.size == 224 else [])
    features = extract_features(model, photo, layers)
    print(f"demo photo {a.size}x{a.size}, VGG19 random weights, {len(layers)} layers, "
          f"paper_gd, {a.iterations} iterations, TF {tf.__version__}, {os.cpu_count()} CPU(s), "
          f"{len(tf.config.list_physical_devices('GPU'))} GPU(s)")
    print(f"{'precision':<16}{'corr':>8}{'diff':>9}{'final loss':>12}{'s/iter':>9}")
    base = None
    for precision in a.precisions:
        image, loss, seconds = run(model, features, precision, a.iterations)
        corr = float(metrics.pattern_correlation(image[None], photo[None])[0])
        base = corr if base is None else base
        print(f"{precision:<16}{corr:>8.4f}{corr - base:>+9.4f}{loss:>12.4g}{seconds:>9.3f}",
              flush=True)


if __name__ == "__main__":
    main()
