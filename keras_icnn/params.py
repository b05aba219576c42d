"""What is optimised: the image's pixels, or the input of a generator network.

A parameterisation maps the optimised tensor ``z`` ``[N, ...]`` to the encoder's input
``[N, H, W, 3]`` (Caffe space: BGR minus mean), says where ``z`` starts and within which bounds
it must stay.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import imaging

__all__ = ["Param", "Pixels", "Generator", "valid_pixel_range", "load_latent_bounds"]


def valid_pixel_range(mean=None):
    """Per-channel ``(lower, upper)`` of valid pixels in Caffe space: ``[-mean, 255 - mean]``
    (BGR order, float32 ``[3]`` each)."""
    m = imaging.as_mean(mean)
    return -m, 255.0 - m


class Param:
    """Base class of parameterisations."""

    #: ``"pixels"`` or ``"latent"``; pixel-space transforms (blur, jitter) need ``"pixels"``.
    space = "pixels"

    def build(self, image_shape, mean):
        """Bind to the encoder's input ``image_shape`` ``(H, W, 3)`` and the Caffe ``mean``."""
        self.image_shape = tuple(int(s) for s in image_shape)
        self.mean = imaging.as_mean(mean)

    @property
    def shape(self):
        """Per-sample shape of ``z``."""
        raise NotImplementedError

    def image(self, z):
        """``z`` -> encoder input (Caffe space, channels-last)."""
        raise NotImplementedError

    def initial(self, n, initial=None, seed=None) -> np.ndarray:
        raise NotImplementedError

    def bounds(self):
        """``(lower, upper)``: arrays broadcastable to ``z``, or ``None`` for no bound."""
        return None, None

    def project_initial(self, z0):
        """Clip a start point into the bounds, saying so once if anything moved."""
        lo, hi = self.bounds()
        if lo is None and hi is None:
            return z0
        clipped = np.clip(z0, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        moved = int(np.sum(clipped != z0))
        if moved:
            warnings.warn(f"initial point: {moved} value(s) were outside the bounds and have "
                          "been clipped into them", stacklevel=3)
        return clipped.astype(np.float32)


class Pixels(Param):
    """Optimise the image itself, in the encoder's input space.

    Args:
        bounds: ``None`` (unbounded, the original momentum GD), ``"valid"`` (each pixel kept in
            ``[-mean_c, 255 - mean_c]``, as the original L-BFGS), or ``(lower, upper)`` in Caffe
            space (numbers or per-channel BGR triples).
    """

    space = "pixels"

    def __init__(self, bounds=None):
        if not (bounds is None or bounds == "valid" or
                (isinstance(bounds, (tuple, list)) and len(bounds) == 2)):
            raise ValueError(f"bounds: expected None, 'valid' or (lower, upper), got {bounds!r}")
        self._bounds = bounds

    @property
    def shape(self):
        return self.image_shape

    def image(self, z):
        return z

    def bounds(self):
        if self._bounds is None:
            return None, None
        if self._bounds == "valid":
            return valid_pixel_range(self.mean)
        lo, hi = (np.broadcast_to(np.asarray(b, np.float32), (3,)) for b in self._bounds)
        if np.any(lo > hi):
            raise ValueError(f"bounds: lower {lo.tolist()} exceeds upper {hi.tolist()}")
        return lo, hi

    def initial(self, n, initial=None, seed=None):
        """``None``/``"random"``: uniform random integers 0-255 per RGB pixel (the original);
        ``"mean"``: the mean pixel (zeros in Caffe space; the paper's L-BFGS scripts); or RGB
        0-255 images ``[H, W, 3]`` (used for every target) / ``[N, H, W, 3]``."""
        h, w, _ = self.image_shape
        if initial is None or (isinstance(initial, str) and initial == "random"):
            rng = np.random.default_rng(seed)
            rgb = rng.integers(0, 256, (n, h, w, 3)).astype(np.float32)
        elif isinstance(initial, str) and initial in ("mean", "zeros"):
            return np.zeros((n, h, w, 3), np.float32)
        elif isinstance(initial, str):
            raise ValueError(f"initial: expected 'random', 'mean' or RGB images, got {initial!r}")
        else:
            rgb = np.asarray(initial, dtype=np.float32)
            if rgb.ndim == 3:
                rgb = np.broadcast_to(rgb, (n,) + rgb.shape)
            if rgb.shape != (n, h, w, 3):
                raise ValueError(f"initial: expected RGB images of shape ({h}, {w}, 3) or "
                                 f"({n}, {h}, {w}, 3), got {np.shape(initial)}")
            if not np.all(np.isfinite(rgb)):
                raise ValueError("initial: the image contains NaN or Inf")
        return imaging.rgb_to_caffe(rgb, self.mean)



def load_latent_bounds(path) -> np.ndarray:
    """Per-unit bounds from a text file of whitespace-separated numbers (the format of the
    paper's ``act_range/3x/fc7.txt``), as float32."""
    import os
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"latent bounds: no such file {path!r}")
    try:
        with open(path) as f:
            values = np.array(f.read().split(), dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"latent bounds file {path!r}: expected whitespace-separated numbers "
                         f"({e})") from None
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"latent bounds file {path!r}: expected finite numbers, found "
                         f"{values.size} value(s) with NaN/Inf or none")
    return values.astype(np.float32)


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
        if not (crop == "center" or (isinstance(crop, (tuple, list)) and len(crop) == 2)):
            raise ValueError(f"crop: expected 'center' or (top, left), got {crop!r}")
        for name, fn in (("preprocess", preprocess), ("postprocess", postprocess)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name}: expected a callable or None, got {fn!r}")
        self.crop, self.preprocess, self.postprocess = crop, preprocess, postprocess

    def _bound(self, b, name):
        import os
        if b is None:
            return None
        if isinstance(b, (str, os.PathLike)):
            b = load_latent_bounds(b)
        arr = np.asarray(b, dtype=np.float32)
        if arr.ndim == 0:
            arr = np.full(self._latent_shape, arr, np.float32)
        if arr.shape != self._latent_shape:
            if arr.size == int(np.prod(self._latent_shape)):
                arr = arr.reshape(self._latent_shape)
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
        if self.preprocess is not None:
            z = self.preprocess(z)
        img = self.generator(z, training=False)
        return self.postprocess(img) if self.postprocess is not None else img

    def image(self, z):
        (t, l), (h, w) = self.offset, self.image_shape[:2]
        return self.generate(z)[:, t:t + h, l:l + w, :]

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
        z = np.asarray(initial, dtype=np.float32)
        if z.shape == self._latent_shape:
            z = np.broadcast_to(z, shape)
        if z.shape != shape:
            raise ValueError(f"initial: expected latents of shape {self._latent_shape} or "
                             f"{shape}, got {np.shape(initial)}")
        if not np.all(np.isfinite(z)):
            raise ValueError("initial: the latent contains NaN or Inf")
        return np.array(z)
