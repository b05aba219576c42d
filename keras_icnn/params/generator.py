"""Optimise the input of a generator network (the deep generator prior, "DGN")."""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import numpy as np

from keras_icnn import config as _config
from keras_icnn.models.precision import Float32Boundary, check_precision, low_precision_twin
from keras_icnn.params.base import Param, real_array

__all__ = ["Generator", "load_latent_bounds"]


def load_latent_bounds(path) -> np.ndarray:
    """Per-unit bounds from a text file of whitespace-separated numbers (the format of the
    paper's ``act_range/3x/fc7.txt``), as float32."""

    path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(path, str):
        raise ValueError(f"latent bounds: expected a file path (str or os.PathLike), got "
                         f"{type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"latent bounds: no such file {path!r}")
    try:
        with open(path) as f:
            values = np.array(f.read().split(), dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"latent bounds file {path!r}: expected whitespace-separated numbers "
                         f"({e})") from None
    with np.errstate(over="ignore"):
        values32 = values.astype(np.float32)
    if values.size == 0 or not np.all(np.isfinite(values32)):
        raise ValueError(f"latent bounds file {path!r}: expected finite numbers (within the "
                         f"float32 range, |x| < 3.4e38), found {values.size} value(s) with "
                         "NaN/Inf/too large values or none")
    return values32


def _crop(crop):
    """``"center"`` or a ``(top, left)`` pair of non-negative integers, as a tuple."""
    if isinstance(crop, str) and crop == "center":
        return crop
    if isinstance(crop, (tuple, list)) and len(crop) == 2 and all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0
            for c in crop):
        return tuple(int(c) for c in crop)
    raise ValueError(f"crop: expected 'center' or (top, left), got {crop!r}")


def _plain_bound(arr):
    """A latent bound for a config: None, a number when every unit has it, else nested lists."""
    if arr is None:
        return None
    bits = arr.view(np.uint32)
    if np.all(bits == bits.flat[0]):  # the same float32, bit for bit (0.0 and -0.0 differ)
        return float(arr.flat[0])
    return arr.tolist()


def _plain_function(fn, what):
    return None if fn is None else _config.serialize_function(fn, f"Generator {what}")


@_config.register
class Generator(Param):
    """Optimise the input of a generator network (the deep generator prior, "DGN").

    Args:
        generator: a Keras model ``latent [N, ...] -> image [N, Hg, Wg, 3]`` whose output is in
            the encoder's input space (e.g. :func:`keras_icnn.generators.deepsim_fc7`), or whose
            ``postprocess`` maps it there.
        lower, upper: latent bounds: a number, a per-unit array, a path to a text file of
            numbers (``act_range_3x_fc7.txt``), or None.  Defaults: 0 and 100 (the original).
        crop: ``"center"`` (the generator's output is centre-cropped to the encoder's input
            size: 256 -> 224 at offset 16) or ``(top, left)``.
        preprocess, postprocess: optional callables on the latent / on the generated image.

    Its config holds ``lower``/``upper`` (None, a number when every unit has the same bound,
    else nested lists of the generator's input shape), ``crop``, ``preprocess``/``postprocess``
    (serialised registered functions, or None) and, under ``"generator"``, the generator
    model's *name*: the model is not in the config, pass it to
    ``Generator.from_config(config, generator=model)``.
    """

    space = "latent"

    def __init__(self, generator, lower=0.0, upper=100.0, crop="center", preprocess=None,
                 postprocess=None):
        import keras
        if not isinstance(generator, keras.Model):
            raise ValueError(f"generator: expected a keras.Model, got {type(generator).__name__}")
        if isinstance(generator.input_shape, list) or None in generator.input_shape[1:]:
            raise ValueError(f"generator: expected one input of fixed shape, got "
                             f"{generator.input_shape}")
        self.generator = generator
        self._latent_shape = tuple(int(s) for s in generator.input_shape[1:])
        self.lower = self._bound(lower, "lower")
        self.upper = self._bound(upper, "upper")
        if self.lower is not None and self.upper is not None and np.any(self.lower > self.upper):
            i = int(np.flatnonzero(np.broadcast_to(self.lower > self.upper,
                                                   self._latent_shape).ravel())[0])
            raise ValueError(f"latent bounds: lower exceeds upper (first at unit {i})")
        crop = _crop(crop)
        for name, fn in (("preprocess", preprocess), ("postprocess", postprocess)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name}: expected a callable or None, got {fn!r}")
        self.crop, self.preprocess, self.postprocess = crop, preprocess, postprocess

    def get_config(self):
        return {"generator": self.generator.name,
                "lower": _plain_bound(self.lower), "upper": _plain_bound(self.upper),
                "crop": self.crop if isinstance(self.crop, str) else list(self.crop),
                "preprocess": _plain_function(self.preprocess, "preprocess"),
                "postprocess": _plain_function(self.postprocess, "postprocess")}

    @classmethod
    def from_config(cls, config, generator=None):
        """Rebuild from :meth:`get_config`'s ``config``; ``generator`` is the generator model
        (a config holds only its name)."""
        if not isinstance(config, Mapping):
            return _config.build(cls, config)  # says what is wrong with it
        name = config.get("generator")
        if not (name is None or isinstance(name, str)):
            raise ValueError(f"Generator config: 'generator' is the generator model's name, "
                             f"got {name!r}")
        if generator is None:
            raise ValueError(f"Generator.from_config: the config holds only the generator "
                             f"model's name ({name!r}); pass the model itself: "
                             "Generator.from_config(config, generator=model)")
        if isinstance(name, str) and getattr(generator, "name", name) != name:
            warnings.warn(f"Generator.from_config: the config was written for the generator "
                          f"{name!r}; given {generator.name!r}", stacklevel=2)
        fns = {k: _config.deserialize_function(config[k], k) for k in ("preprocess", "postprocess")
               if isinstance(config.get(k), Mapping)}
        return _config.build(cls, config, generator=generator, **fns)

    def _bound(self, b, name):
        if b is None:
            return None
        if isinstance(b, (str, os.PathLike)):
            b = load_latent_bounds(b)
        try:
            arr = np.asarray(b, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"latent {name} bound: expected a number, numbers, a path or None, "
                             f"got {b!r}") from None
        if arr.ndim == 0:
            arr = np.full(self._latent_shape, arr, np.float32)
        if arr.shape != self._latent_shape:
            if arr.size == int(np.prod(self._latent_shape)) and len(self._latent_shape) == 1:
                arr = arr.reshape(self._latent_shape)
            elif len(self._latent_shape) > 1:  # reshaping could silently mix up the axes
                raise ValueError(f"latent {name} bound: expected a number or an array of the "
                                 f"generator's input shape {self._latent_shape} (channels-last; "
                                 f"bdpy's [C, H, W] bounds: transpose them), got shape "
                                 f"{arr.shape}")
            else:
                raise ValueError(f"latent {name} bound: expected a number or "
                                 f"{int(np.prod(self._latent_shape))} values (the generator's "
                                 f"input {self._latent_shape}), got {arr.size}")
        if np.any(np.isnan(arr)):
            raise ValueError(f"latent {name} bound: contains NaN")
        return arr

    def build(self, image_shape, mean):
        super().build(image_shape, mean)
        out = tuple(self.generator.output_shape[1:])
        h, w = self.image_shape[:2]
        if len(out) != 3 or out[-1] != 3 or None in out:
            raise ValueError(f"generator: expected an image output [N, H, W, 3], got "
                             f"{self.generator.output_shape}")
        if out[0] < h or out[1] < w:
            raise ValueError(f"generator: its output {out[0]}x{out[1]} is smaller than the "
                             f"encoder's input {h}x{w}")
        if self.crop == "center":
            self.offset = ((out[0] - h) // 2, (out[1] - w) // 2)
        else:
            self.offset = tuple(int(c) for c in self.crop)
            if not (0 <= self.offset[0] <= out[0] - h and 0 <= self.offset[1] <= out[1] - w):
                raise ValueError(f"crop: offset {self.offset} does not fit a {h}x{w} window "
                                 f"in the generator's {out[0]}x{out[1]} output")

    @property
    def shape(self):
        return self._latent_shape

    def generate(self, z):
        """The generator's full output (before cropping)."""
        return self._generate_with(self.generator, z)

    def image(self, z):
        return self._crop_image(self.generate(z))

    def compute_image(self, precision):
        """``z -> image`` with the generator computing in ``precision`` (a twin on the
        generator's own variables, built once per precision; float32 in and out)."""
        if check_precision(precision) == "float32":
            return self.image
        cache = self.__dict__.setdefault("_compute_images", {})
        if precision not in cache:
            boundary = Float32Boundary(low_precision_twin(self.generator, precision), precision)
            cache[precision] = lambda z: self._crop_image(self._generate_with(boundary, z))
        return cache[precision]

    def _generate_with(self, run, z):
        if self.preprocess is not None:
            z = self.preprocess(z)
        img = run(z, training=False)
        return self.postprocess(img) if self.postprocess is not None else img

    def _crop_image(self, img):
        (t, l), (h, w) = self.offset, self.image_shape[:2]
        return img[:, t:t + h, l:l + w, :]

    def bounds(self):
        return self.lower, self.upper

    def initial(self, n, initial=None, seed=None):
        """``None``/``"normal"``: N(0, 1) clipped into the bounds (the original library);
        ``"zeros"``: zeros clipped into the bounds (the paper's scripts); or latents
        ``[...]`` (used for every target) / ``[N, ...]``."""
        shape = (n,) + self._latent_shape
        if initial is None or (isinstance(initial, str) and initial in ("normal", "zeros")):
            z = (np.zeros(shape, np.float32) if isinstance(initial, str) and initial == "zeros"
                 else np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32))
            lo, hi = self.bounds()
            return np.clip(z, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        if isinstance(initial, str):
            raise ValueError(f"initial: expected 'normal', 'zeros' or latent arrays, got "
                             f"{initial!r}")
        z = real_array(initial, "initial")
        if z.shape == self._latent_shape:
            z = np.broadcast_to(z, shape)
        if z.shape != shape:
            raise ValueError(f"initial: expected latents of shape {self._latent_shape} or "
                             f"{shape}, got {np.shape(initial)}")
        if not np.all(np.isfinite(z)):
            raise ValueError("initial: the latent contains NaN or Inf")
        return np.array(z)
