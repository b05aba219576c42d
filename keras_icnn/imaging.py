"""Image conventions: RGB 0-255 pictures <-> the encoder's Caffe input space.

The published features were computed by Caffe on images in **BGR order, 0-255 scale, minus a
per-channel mean**.  Inside keras-icnn every image tensor the encoder sees is in that space, in
channels-last layout ``[N, H, W, 3]`` (BGR).  Users give and get RGB 0-255 pictures.
"""
from __future__ import annotations

import numpy as np

#: Keras' ``preprocess_input(mode='caffe')`` mean, BGR order (the default here).
KERAS_MEAN_BGR = (103.939, 116.779, 123.68)
#: The original iCNN library's fallback mean, BGR order.
ICNN_MEAN_BGR = (104.0, 117.0, 123.0)
#: The ILSVRC-2012 mean image averaged per channel, BGR order (the paper's scripts).
ILSVRC_MEAN_BGR = (104.0, 116.7, 122.7)

DEFAULT_MEAN = KERAS_MEAN_BGR


def as_mean(mean) -> np.ndarray:
    """Validate a per-channel BGR mean and return it as ``float32 [3]``."""
    if mean is None:
        mean = DEFAULT_MEAN
    m = np.asarray(mean, dtype=np.float64)
    if m.ndim == 0:
        m = np.repeat(m, 3)
    if m.shape != (3,):
        raise ValueError(f"mean: expected 3 per-channel values in BGR order, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"mean: expected finite values, got {m.tolist()}")
    return m.astype(np.float32)


def as_images(images, name="images") -> tuple[np.ndarray, bool]:
    """Validate RGB images ``[H, W, 3]`` or ``[N, H, W, 3]`` (real, finite) and return
    ``(float32 [N, H, W, 3], batched)``; ``batched`` is False for a single ``[H, W, 3]``."""
    x = np.asarray(images)
    if x.ndim == 3:
        x, batched = x[None], False
    elif x.ndim == 4:
        batched = True
    else:
        raise ValueError(f"{name}: expected [H, W, 3] or [N, H, W, 3], got shape {x.shape}")
    if x.shape[-1] != 3:
        raise ValueError(f"{name}: expected 3 colour channels last ([..., H, W, 3]), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return x, batched


def rgb_to_caffe(images, mean=None) -> np.ndarray:
    """RGB 0-255 images ``[H,W,3]`` or ``[N,H,W,3]`` -> BGR minus mean, float32, same rank."""
    x, batched = as_images(images)
    out = x[..., ::-1] - as_mean(mean)
    return out if batched else out[0]


def caffe_to_rgb(x, mean=None) -> np.ndarray:
    """Inverse of :func:`rgb_to_caffe`: BGR minus mean -> RGB 0-255 (float32, not clipped)."""
    x, batched = as_images(x, "x")
    out = (x + as_mean(mean))[..., ::-1]
    return np.ascontiguousarray(out if batched else out[0])


def normalise_img(img) -> np.ndarray:
    """The original iCNN display normalisation: min -> 0, max -> 255, then uint8."""
    img = np.asarray(img, dtype=np.float64)
    img = img - img.min()
    if img.max() > 0:
        img = img * (255.0 / img.max())
    return np.uint8(img)


def clip_extreme(img, pct=4.0) -> np.ndarray:
    """Clip ``pct/2`` percent of values at each tail (the paper's figures use pct=4)."""
    if not 0 <= pct <= 100:
        raise ValueError(f"pct: expected a percentage in [0, 100], got {pct}")
    img = np.asarray(img, dtype=np.float64)
    return np.clip(img, np.percentile(img, pct / 2.0), np.percentile(img, 100 - pct / 2.0))


def to_uint8(img) -> np.ndarray:
    """Clip to 0-255 and round to uint8 (no normalisation)."""
    return np.uint8(np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255))
