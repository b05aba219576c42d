"""Evaluation of reconstructions against the true images (the lab's cookbook metrics).

All functions take batches of images ``[N, H, W, C]`` (a single ``[H, W, C]`` image counts as
``N = 1``), RGB 0-255 by convention, and return one value per reconstruction (``[N]``).
Reconstruction ``i`` is compared with true image ``i``.

If the true images have another height/width than the reconstructions, they are resized to
the reconstructions' size first (``resize=True``, the default; :func:`resize_images`, Pillow
bicubic on float data), as the cookbook did.  Computations are in float64 (SSIM: float32 in
TensorFlow).
"""
from __future__ import annotations

import numpy as np

from keras_icnn.io.images import as_size, resize_image

__all__ = [
    "resize_images",
    "pattern_correlation",
    "pairwise_identification",
    "ssim",
    "evaluate",
]


def _as_batch(x, name) -> np.ndarray:
    try:
        a = np.asarray(x)
    except Exception:
        raise ValueError(f"{name}: expected an image array, got {type(x).__name__}") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.size == 0:
        raise ValueError(f"{name}: expected images [N, H, W, C] (or one image [H, W, C]), "
                         f"got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return a


def resize_images(images, size, method="bicubic") -> np.ndarray:
    """Resize images ``[N, H, W, C]`` (or one ``[H, W, C]``) to ``size`` (an int for a square,
    or ``(height, width)``).

    Each channel is resized as float data with Pillow (``method``: "bicubic" (default),
    "bilinear", "lanczos" or "nearest"); values are neither rounded nor clipped (bicubic can
    overshoot 0-255 slightly).  Returns float32 of the same rank as the input.
    """
    x = np.asarray(images)
    single = x.ndim == 3
    x = _as_batch(x, "images")
    hw = as_size(size)
    out = np.stack([resize_image(img, hw, method) for img in x])
    return out[0] if single else out


def _pair(recon, true, resize):
    r = _as_batch(recon, "recon")
    t = _as_batch(true, "true")
    if r.shape[0] != t.shape[0]:
        raise ValueError(f"recon and true: expected the same number of images, got "
                         f"{r.shape[0]} reconstructions and {t.shape[0]} true images")
    if r.shape[-1] != t.shape[-1]:
        raise ValueError(f"recon and true: expected the same number of channels, got "
                         f"{r.shape[-1]} and {t.shape[-1]}")
    if r.shape[1:3] != t.shape[1:3]:
        if not resize:
            raise ValueError(f"recon and true: image sizes differ ({r.shape[1:3]} vs "
                             f"{t.shape[1:3]}) and resize=False")
        t = resize_images(t, r.shape[1:3]).astype(np.float64)
    return r, t


def _correlation_matrix(a, b) -> np.ndarray:
    """``C[i, j]`` = Pearson correlation of flattened ``a[i]`` and ``b[j]`` (NaN where one of
    them is constant)."""
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.sqrt(np.einsum("ij,ij->i", a, a))
    nb = np.sqrt(np.einsum("ij,ij->i", b, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (a @ b.T) / np.outer(na, nb)
    c[~np.isfinite(c)] = np.nan
    return np.clip(c, -1.0, 1.0)


def pattern_correlation(recon, true, resize=True) -> np.ndarray:
    """Pearson correlation between the flattened pixel pattern of reconstruction ``i`` and true
    image ``i`` (all pixels and channels together).  Returns ``float64 [N]``; NaN for an image
    pair where either image is constant (undefined correlation)."""
    r, t = _pair(recon, true, resize)
    r = r.reshape(r.shape[0], -1)
    t = t.reshape(t.shape[0], -1)
    r = r - r.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.einsum("ij,ij->i", r, t) / np.sqrt(np.einsum("ij,ij->i", r, r) *
                                                  np.einsum("ij,ij->i", t, t))
    c[~np.isfinite(c)] = np.nan
    return np.clip(c, -1.0, 1.0)


def pairwise_identification(recon, true, metric="correlation", resize=True) -> np.ndarray:
    """Pairwise identification accuracy of each reconstruction.

    For reconstruction ``i``: the fraction of the *other* true images ``j != i`` that are less
    similar to it than its own true image ``i``.  ``metric="correlation"`` counts
    ``corr(recon_i, true_j) < corr(recon_i, true_i)``; ``metric="euclidean"`` counts
    ``dist(recon_i, true_j) > dist(recon_i, true_i)``.  Ties count as failures; comparisons
    with an undefined (NaN) correlation count as failures, and if ``corr(recon_i, true_i)`` is
    NaN the result for ``i`` is NaN.  Divided by ``N - 1`` (chance level 0.5).  Needs
    ``N >= 2``.  Returns ``float64 [N]``.
    """
    if metric not in ("correlation", "euclidean"):
        raise ValueError(f"metric: expected 'correlation' or 'euclidean', got {metric!r}")
    r, t = _pair(recon, true, resize)
    n = r.shape[0]
    if n < 2:
        raise ValueError(f"pairwise_identification: needs at least 2 image pairs, got {n}")
    if metric == "correlation":
        sim = _correlation_matrix(r, t)
    else:
        a = r.reshape(n, -1)
        b = t.reshape(n, -1)
        d2 = (np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
              - 2.0 * (a @ b.T))
        # exact distances for the diagonal (the expansion above loses precision when small)
        d2[np.arange(n), np.arange(n)] = np.sum((a - b) ** 2, axis=1)
        sim = -np.sqrt(np.maximum(d2, 0.0))
    own = np.diag(sim)[:, None]
    with np.errstate(invalid="ignore"):
        less = sim < own
    np.fill_diagonal(less, False)
    acc = less.sum(axis=1) / (n - 1)
    acc = acc.astype(np.float64)
    acc[np.isnan(own[:, 0])] = np.nan
    return acc


def ssim(recon, true, data_range=255.0, filter_size=11, resize=True) -> np.ndarray:
    """Structural similarity of each reconstruction with its true image (``tf.image.ssim``:
    Gaussian window ``filter_size`` x ``filter_size``, sigma 1.5, k1 0.01, k2 0.03, averaged
    over the image and the channels).  ``data_range`` is the dynamic range of the pixel values
    (255 for 0-255 images).  Images must be at least ``filter_size`` pixels high and wide.
    Values can differ slightly from scikit-image's defaults (7x7 uniform window).  Returns
    ``float64 [N]``."""
    r, t = _pair(recon, true, resize)
    if not np.isscalar(data_range) or not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range: expected a positive number, got {data_range!r}")
    if isinstance(filter_size, bool) or not isinstance(filter_size, (int, np.integer)) or filter_size < 1:
        raise ValueError(f"filter_size: expected a positive int, got {filter_size!r}")
    if min(r.shape[1:3]) < filter_size:
        raise ValueError(f"ssim: images must be at least {filter_size}x{filter_size} pixels "
                         f"(filter_size), got {r.shape[1]}x{r.shape[2]}")
    import tensorflow as tf

    with tf.device("/CPU:0"):
        val = tf.image.ssim(tf.constant(r, tf.float32), tf.constant(t, tf.float32),
                            max_val=float(data_range), filter_size=int(filter_size))
    return np.asarray(val, dtype=np.float64).reshape(-1)


def evaluate(recon, true, data_range=255.0, include_ssim=True, resize=True) -> dict:
    """All metrics at once.

    Returns a dict with per-image arrays ``[N]`` and their means (``np.mean``: a NaN in the
    per-image values makes the mean NaN):

    ``pattern_correlation``, ``identification_correlation``, ``identification_euclidean``,
    ``ssim`` (if ``include_ssim``), each with ``<name>_mean``, plus ``n_images``.  With a
    single image pair the identification accuracies are undefined and set to NaN.
    """
    r, t = _pair(recon, true, resize)
    n = r.shape[0]
    out = {"n_images": n, "pattern_correlation": pattern_correlation(r, t)}
    for metric in ("correlation", "euclidean"):
        key = f"identification_{metric}"
        out[key] = (pairwise_identification(r, t, metric=metric) if n >= 2
                    else np.full(n, np.nan))
    if include_ssim:
        if min(r.shape[1:3]) < 11:
            raise ValueError(f"evaluate: SSIM needs images of at least 11x11 pixels, got "
                             f"{r.shape[1]}x{r.shape[2]}; pass include_ssim=False")
        out["ssim"] = ssim(r, t, data_range=data_range)
    for key in [k for k in out if k != "n_images"]:
        out[f"{key}_mean"] = float(np.mean(out[key]))
    return out
