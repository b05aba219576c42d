"""Throughput of ``keras-icnn reconstruct`` through Dask vs the serial command, on the same
targets: the serial command, ``--dask local:1`` and ``--dask local:2`` (and more with
``--workers``), each a fresh ``python -m keras_icnn`` process timed from start to exit, as a
user sees it (cluster start-up, TensorFlow import and graph tracing in each worker included).
The runs are interleaved, ``--repeats`` times; the medians are compared.  Also checks that
every run wrote the serial run's files, byte for byte.  Prints the figures; asserts nothing.

    python benchmarks/dask_overhead.py                           # 8 targets, 64 px, 2 layers
    python benchmarks/dask_overhead.py --iterations 400 --repeats 3 --workers 1 2 4

On a machine with C cores, ``local:N`` gives each worker max(1, C // N) TensorFlow threads:
on 2 cores the figure is Dask's overhead, not a speed-up.
"""
import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_targets(directory, n, size, layers):
    import keras
    import numpy as np

    from keras_icnn import io
    from keras_icnn.models import extract_features, vgg19
    keras.utils.set_random_seed(0)
    model = vgg19(weights=None, include_top=False, input_shape=(size, size, 3))
    images = np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    feats = extract_features(model, images, layers)
    for i in range(n):
        io.save_features(os.path.join(directory, f"t{i:02d}.npz"),
                         {k: v[i:i + 1] for k, v in feats.items()}, squeeze_batch=True)


def timed(argv, env):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keras_icnn", *argv], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def same_files(a, b):
    names = sorted(os.listdir(a))
    return names == sorted(os.listdir(b)) and \
        all(filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False) for n in names)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--layers", default="conv1_1,conv2_1,conv3_1")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = p.parse_args()
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    tmp = tempfile.mkdtemp(prefix="dask_overhead.")
    try:
        make_targets(tmp, a.targets, a.size, a.layers.split(","))
        flags = ["reconstruct", tmp, "--weights", "random", "--size", str(a.size),
                 "--layers", a.layers, "--iterations", str(a.iterations),
                 "--batch-size", str(a.batch_size), "--data-format", "channels_first",
                 "--quiet"]
        kinds = [("serial", [])] + [(f"local:{n}", ["--dask", f"local:{n}"])
                                    for n in a.workers]
        times = {k: [] for k, _ in kinds}
        identical = {k: True for k, _ in kinds}
        for r in range(a.repeats):
            for kind, extra in kinds:
                out = os.path.join(tmp, "out", f"{kind.replace(':', '')}-{r}")
                times[kind].append(timed([*flags, "--out", out, *extra], env))
                identical[kind] &= same_files(out, os.path.join(tmp, "out", "serial-0"))
                print(f"  run {r + 1}/{a.repeats} {kind:>8}: {times[kind][-1]:6.1f} s",
                      flush=True)
        print(f"\n{a.targets} targets, {a.size} px, layers {a.layers}, {a.iterations} "
              f"iterations, batch size {a.batch_size}, {os.cpu_count()} cores; wall time from "
              "process start to exit, median of", a.repeats)
        base = statistics.median(times["serial"])
        for kind, _ in kinds:
            t = statistics.median(times[kind])
            print(f"{kind:>8}: {t:6.1f} s  {a.targets / t:6.3f} targets/s  throughput "
                  f"{base / t:5.2f}x serial ({(base / t - 1) * 100:+.0f} %)  outputs "
                  f"{'identical' if identical[kind] else 'DIFFERENT'} to serial")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
