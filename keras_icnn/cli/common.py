"""What the commands share: exit statuses, the networks, JSON files, versions."""
from __future__ import annotations

import contextlib
import json
import os

__all__ = ["EXIT_DONE", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_STATUS_HELP",
           "PACKAGE", "load_encoder", "load_generator", "write_json", "versions",
           "check_positive", "absolute_if_file", "run_name"]

EXIT_DONE = 0  #: every target reconstructed (or done already)
EXIT_FAILED = 1  #: some target failed (its loss became NaN/Inf); the others were written
EXIT_USAGE = 2  #: bad input or usage, found before any work
EXIT_INTERRUPTED = 130  #: Ctrl-C (a rerun of the same command goes on from there)

#: The exit statuses, for the epilog of ``--help``.
EXIT_STATUS_HELP = (
    "exit status: 0 done; 1 some target failed (its loss became NaN/Inf: reported, nothing "
    "written for it, the other targets go on); 2 bad input or usage (a missing or unreadable "
    "file, an unknown option value, an output location that is a file or cannot be written, "
    "an existing file that keras-icnn did not write and --overwrite not given: one line on "
    "stderr, no traceback, before any work); 130 interrupted.")

#: The ``package`` entry of the JSON files the command line writes (see ``outputs``).
PACKAGE = "keras-icnn"


def check_positive(value, flag):
    """``value`` if it is a positive int, else a ``ValueError`` naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{flag}: expected a positive number, got {value}")
    return value


def absolute_if_file(value):
    """A path to an existing file made absolute (so that a rerun elsewhere finds it); other
    values (names such as ``imagenet``) unchanged."""
    if isinstance(value, str) and os.path.isfile(value):
        return os.path.abspath(value)
    return value


def run_name(names):
    """The name of a batch of targets: its only target, or ``first..last``."""
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def _fallback_note(error, what):
    print(f"note: {error}\nnote: continuing with {what}", flush=True)


@contextlib.contextmanager
def seeded(seed):
    """``keras.utils.set_random_seed(seed)`` for building a network, its initial weights drawn
    from ``seed`` alone: Keras draws the seeds of unseeded initializers from Python's global
    ``random``, which other threads of the process may draw from meanwhile (a Dask worker's
    event loop does), so they come from a private ``random.Random(seed)`` here -- the numbers
    the global one gives right after ``random.seed(seed)`` in a process where nothing else
    draws."""
    import random

    import keras
    keras.utils.set_random_seed(seed)
    try:
        from keras.src.random import seed_generator
    except ImportError:  # pragma: no cover - another Keras layout: the global one
        yield
        return
    saved = seed_generator.python_random
    seed_generator.python_random = random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = saved


def load_encoder(weights, size, seed, include_top=None):
    """VGG19 at ``size`` px; ``weights`` 'imagenet' falls back to random weights (with a note)
    when they cannot be downloaded.  Returns ``(model, weights used)``.  ``include_top``:
    default with the fc layers at 224 px only."""
    from keras_icnn.errors import WeightsUnavailableError
    from keras_icnn.models import vgg19
    top = size == 224 if include_top is None else bool(include_top)
    if weights == "random":
        with seeded(seed):
            return vgg19(weights=None, include_top=top, input_shape=(size, size, 3)), "random"
    try:
        with seeded(seed):
            return vgg19(weights=weights, include_top=top, input_shape=(size, size, 3)), weights
    except WeightsUnavailableError as e:
        _fallback_note(e, "random weights (features of a random-weight VGG19 still invert "
                       "well: He, Wang & Hopcroft, NeurIPS 2016).")
        with seeded(seed):
            return vgg19(weights=None, include_top=top, input_shape=(size, size, 3)), "random"


def load_generator(weights, seed):
    """The DeepSim fc7 generator; 'deepsim-fc7' falls back to random weights with a note.
    Returns ``(model, weights used)``."""
    from keras_icnn.errors import WeightsUnavailableError
    from keras_icnn.models.generators import deepsim_fc7
    if weights == "random":
        with seeded(seed):
            return deepsim_fc7(weights=None), "random"
    try:
        with seeded(seed):
            return deepsim_fc7(weights=weights), weights
    except WeightsUnavailableError as e:
        _fallback_note(e, "a random-weight generator (a random DeepSim generator is no image "
                       "prior: expect noise-like images).")
        with seeded(seed):
            return deepsim_fc7(weights=None), "random"


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically."""
    from keras_icnn.io import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)


def _version(package):
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:  # pragma: no cover
        return None


def versions():
    """The ``package``/``version``/``tensorflow``/``keras`` entries of the files written."""
    import keras

    from keras_icnn import __version__
    return {"package": PACKAGE, "version": __version__, "tensorflow": _version("tensorflow"),
            "keras": keras.__version__}
