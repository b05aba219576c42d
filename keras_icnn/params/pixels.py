"""Optimise the image's pixels themselves."""
from __future__ import annotations

import numpy as np

from keras_icnn import config as _config
from keras_icnn import imaging
from keras_icnn.params.base import Param, real_array

__all__ = ["Pixels", "valid_pixel_range"]


def valid_pixel_range(mean=None):
    """Per-channel ``(lower, upper)`` of valid pixels in Caffe space: ``[-mean, 255 - mean]``
    (BGR order, float32 ``[3]`` each)."""
    m = imaging.as_mean(mean)
    return -m, 255.0 - m


def _channel_bound(b, name):
    """A pixel bound as a Python number or a list of three (a ValueError naming it else)."""
    try:
        arr = np.asarray(b)
        np.broadcast_to(arr, (3,))
    except (TypeError, ValueError):  # ragged nesting, more than three values
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        raise ValueError(f"bounds: {name} must be a number or three numbers (B, G, R), got "
                         f"{b!r}")
    arr = arr.astype(np.float64)
    if np.any(np.isnan(arr)):
        raise ValueError(f"bounds: {name} contains NaN")
    return arr.tolist()


@_config.register
class Pixels(Param):
    """Optimise the image itself, in the encoder's input space.

    Args:
        bounds: ``None`` (unbounded, the original momentum GD), ``"valid"`` (each pixel kept in
            ``[-mean_c, 255 - mean_c]``, as the original L-BFGS), or ``(lower, upper)`` in Caffe
            space (numbers or per-channel BGR triples).

    Its config: ``{"bounds": None}``, ``{"bounds": "valid"}`` or ``{"bounds": [lower, upper]}``
    (each a number or a list of three).
    """

    space = "pixels"

    def __init__(self, bounds=None):
        if isinstance(bounds, (tuple, list)) and len(bounds) == 2:
            bounds = [_channel_bound(b, name) for b, name in zip(bounds, ("lower", "upper"))]
            lo, hi = (np.broadcast_to(np.asarray(b, np.float32), (3,)) for b in bounds)
            if np.any(lo > hi):
                raise ValueError(f"bounds: lower {lo.tolist()} exceeds upper {hi.tolist()}")
        elif not (bounds is None or (isinstance(bounds, str) and bounds == "valid")):
            raise ValueError(f"bounds: expected None, 'valid' or (lower, upper), got {bounds!r}")
        self._bounds = bounds

    def get_config(self):
        return {"bounds": self._bounds}

    @property
    def shape(self):
        return self.image_shape

    def image(self, z):
        return z

    def bounds(self):
        if self._bounds is None:
            return None, None
        if isinstance(self._bounds, str):
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
            rgb = real_array(initial, "initial")
            if rgb.ndim == 3:
                rgb = np.broadcast_to(rgb, (n,) + rgb.shape)
            if rgb.shape != (n, h, w, 3):
                raise ValueError(f"initial: expected RGB images of shape ({h}, {w}, 3) or "
                                 f"({n}, {h}, {w}, 3), got {np.shape(initial)}")
            if not np.all(np.isfinite(rgb)):
                raise ValueError("initial: the image contains NaN or Inf")
        return imaging.rgb_to_caffe(rgb, self.mean)

