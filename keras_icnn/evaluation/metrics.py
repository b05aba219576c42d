"""Evaluation of reconstructions against the true images (the lab's cookbook metrics).

All functions take batches of images ``[N, H, W, C]`` (a single ``[H, W, C]`` image counts as
``N = 1``), RGB 0-255 by convention.  Reconstruction ``i`` is compared with true image ``i``
(or, where labels are given, with the true image of the same label).

If the true images have another height/width than the reconstructions, they are resized to
the reconstructions' size first (``resize=True``, the default; :func:`resize_images`, Pillow
bicubic on float data, not rounded).  The cookbook resizes 8-bit images with Pillow's bicubic
``Image.resize`` (rounded to uint8): :mod:`keras_icnn.evaluation.study` loads the files that
way.  Computations are in float64 (SSIM: float32 in TensorFlow).

:func:`cookbook_metrics` gives the cookbook's whole table (``recon_eval_image.py``); the
definitions follow bdpy's ``bdpy/evals/metrics.py`` (see each function).
"""
from __future__ import annotations

import numpy as np

from keras_icnn.validation import numeric_array

from keras_icnn.io.images import as_size, resize_image

__all__ = [
    "resize_images",
    "pattern_correlation",
    "profile_correlation",
    "rmse",
    "identification_accuracy",
    "label_positions",
    "check_images",
    "pairwise_identification",
    "ssim",
    "cookbook_metrics",
    "COOKBOOK_METRICS",
    "evaluate",
]


def check_images(x, name="images") -> np.ndarray:
    """``x`` as float64 images ``[N, H, W, C]`` (one ``[H, W, C]`` image gives ``N = 1``);
    ``ValueError`` naming ``name`` for a non-numeric, empty, wrongly shaped or non-finite
    input."""
    return _as_batch(x, name)


def _as_batch(x, name) -> np.ndarray:
    a = numeric_array(x, name, "an image array")
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
    return r, _match_size(r, t, resize)


def _match_size(r, t, resize):
    """True images ``t`` with the channels and (after resizing, if allowed) the height and width
    of the reconstructions ``r``."""
    if r.shape[-1] != t.shape[-1]:
        raise ValueError(f"recon and true: expected the same number of channels, got "
                         f"{r.shape[-1]} and {t.shape[-1]}")
    if r.shape[1:3] != t.shape[1:3]:
        if not resize:
            raise ValueError(f"recon and true: image sizes differ ({r.shape[1:3]} vs "
                             f"{t.shape[1:3]}) and resize=False")
        t = resize_images(t, r.shape[1:3]).astype(np.float64)
    return t


def pattern_correlation(recon, true, resize=True) -> np.ndarray:
    """Pearson correlation between the flattened pixel pattern of reconstruction ``i`` and true
    image ``i`` (all pixels and channels together; bdpy ``pattern_correlation``, which is
    ``np.corrcoef`` of each pair of rows).  Returns ``float64 [N]``; NaN for an image pair
    where either image is constant (undefined correlation)."""
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


def profile_correlation(recon, true, resize=True) -> np.ndarray:
    """Profile correlation (bdpy ``profile_correlation``): for each pixel and channel, the
    Pearson correlation *across the N images* between the reconstructions' values and the true
    images' values.  Returns ``float64 [H, W, C]`` (bdpy returns the same values with a leading
    axis of 1); NaN where a pixel is constant across the reconstructions or across the true
    images.  Needs ``N >= 2``."""
    r, t = _pair(recon, true, resize)
    if r.shape[0] < 2:
        raise ValueError(f"profile_correlation: needs at least 2 image pairs (a correlation "
                         f"across images), got {r.shape[0]}")
    r = r - r.mean(axis=0)
    t = t - t.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (r * t).sum(axis=0) / np.sqrt((r * r).sum(axis=0) * (t * t).sum(axis=0))
    c[~np.isfinite(c)] = np.nan
    return np.clip(c, -1.0, 1.0)


def rmse(recon, true, resize=True) -> np.ndarray:
    """Root-mean-square pixel error of each reconstruction: ``sqrt(mean((recon_i - true_i)**2))``
    over all pixels and channels, in float64 (the cookbook's ``get_rmse``: scikit-learn's
    ``mean_squared_error(t.T, p.T, multioutput="raw_values", squared=False)``, one output per
    image).  Returns ``float64 [N]`` in the images' units (0-255)."""
    r, t = _pair(recon, true, resize)
    d = (r - t).reshape(r.shape[0], -1)
    return np.sqrt(np.mean(d * d, axis=1))


def label_positions(n_pred, n_true, pred_labels=None, true_labels=None) -> np.ndarray:
    """Index of each of ``n_pred`` predictions' own true sample among ``n_true``: ``i`` without
    labels (then ``n_pred == n_true``), else the position of ``pred_labels[i]`` in
    ``true_labels`` (labels compared as strings; each true label once; every pred label must
    have a true sample).  ``ValueError`` otherwise."""
    if pred_labels is None and true_labels is None:
        if n_pred != n_true:
            raise ValueError(f"pred and true: expected the same number of samples without "
                             f"labels, got {n_pred} and {n_true}; pass pred_labels and "
                             f"true_labels to identify among another candidate set")
        return np.arange(n_pred)
    if pred_labels is None or true_labels is None:
        raise ValueError("pred_labels and true_labels: pass both or neither")
    pred_labels, true_labels = [str(x) for x in pred_labels], [str(x) for x in true_labels]
    if len(pred_labels) != n_pred or len(true_labels) != n_true:
        raise ValueError(f"labels: expected {n_pred} pred_labels and {n_true} true_labels (one "
                         f"per sample), got {len(pred_labels)} and {len(true_labels)}")
    index = {}
    for k, lab in enumerate(true_labels):
        if lab in index:
            raise ValueError(f"true_labels: label {lab!r} appears more than once")
        index[lab] = k
    missing = [lab for lab in pred_labels if lab not in index]
    if missing:
        raise ValueError(f"labels do not match: no true sample for pred label(s) "
                         f"{sorted(set(missing))[:10]}")
    return np.array([index[lab] for lab in pred_labels])


def identification_accuracy(pred, true, metric="correlation", pred_labels=None,
                            true_labels=None) -> np.ndarray:
    """Pairwise identification accuracy of predictions ``[N, ...]`` among candidates
    ``[M, ...]`` (images or features; each sample flattened), as bdpy's
    ``pairwise_identification(..., remove_nan=True, remove_nan_dist=True)``.

    Similarity ``s_ij = 1 - cdist(pred, true, metric)`` (``"correlation"``: Pearson ``r``;
    ``"euclidean"``: ``1 - distance``).  For prediction ``i`` with own candidate ``k(i)``
    (``k(i) = i`` without labels, else the candidate whose label is ``pred_labels[i]``): the
    number of candidates ``j`` with ``s_ij - s_ik < 0`` (strictly less similar: ties count as
    failures), divided by the number of other candidates (``M - 1``; chance level 0.5).
    Candidates with an undefined (NaN) similarity are left out of both counts (bdpy's
    ``remove_nan_dist``); if ``s_ik`` itself is NaN, or no other candidate is left, the
    result is NaN (bdpy would give 0/-1 or 0/0 there).  Needs ``M >= 2``.
    """
    from scipy.spatial.distance import cdist

    if metric not in ("correlation", "euclidean"):
        raise ValueError(f"metric: expected 'correlation' or 'euclidean', got {metric!r}")
    p = _as_samples(pred, "pred")
    t = _as_samples(true, "true")
    own = label_positions(len(p), len(t), pred_labels, true_labels)
    if len(t) < 2:
        raise ValueError(f"pairwise identification: needs at least 2 candidate samples, got "
                         f"{len(t)}")
    if p.shape[1] != t.shape[1]:
        raise ValueError(f"pred and true: expected samples of the same size, got "
                         f"{p.shape[1]} and {t.shape[1]} values")
    with np.errstate(divide="ignore", invalid="ignore"):
        s = 1.0 - cdist(p, t, metric=metric)
        s = s - s[np.arange(len(p)), own][:, None]
        valid = ~np.isnan(s)
        acc = np.sum((s < 0) & valid, axis=1) / (valid.sum(axis=1) - 1.0)
    acc[np.isnan(s[np.arange(len(p)), own]) | ~np.isfinite(acc)] = np.nan
    return acc


def _as_samples(x, name) -> np.ndarray:
    """``x [N, ...]`` as float64 ``[N, D]``; refuses NaN/Inf, empty or non-numeric input."""
    a = numeric_array(x, name, "an array")
    if a.ndim < 2 or a.size == 0:
        raise ValueError(f"{name}: expected samples [N, ...] (N >= 1), got shape {a.shape}")
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return a


def pairwise_identification(recon, true, metric="correlation", resize=True, recon_labels=None,
                            true_labels=None) -> np.ndarray:
    """Pairwise identification accuracy of each reconstruction by its pixels (the cookbook's
    "identification accuracy by pixel pattern correlation / euclidean distance"): see
    :func:`identification_accuracy` for the definition (bdpy's).  Without labels
    reconstruction ``i`` belongs to true image ``i``; with ``recon_labels`` / ``true_labels``
    the ``true`` images are the candidate set (the cookbook compares each reconstruction with
    *all* true images).  Needs at least 2 true images.  Returns ``float64 [N]``.
    """
    if metric not in ("correlation", "euclidean"):
        raise ValueError(f"metric: expected 'correlation' or 'euclidean', got {metric!r}")
    r = _as_batch(recon, "recon")
    t = _as_batch(true, "true")
    if recon_labels is None and true_labels is None:
        r, t = _pair(r, t, resize)
    else:
        t = _match_size(r, t, resize)
    if len(t) < 2:
        raise ValueError(f"pairwise_identification: needs at least 2 image pairs, got {len(t)}")
    return identification_accuracy(r, t, metric, recon_labels, true_labels)


def ssim(recon, true, data_range=255.0, filter_size=11, resize=True) -> np.ndarray:
    """Structural similarity of each reconstruction with its true image (``tf.image.ssim``:
    Gaussian window ``filter_size`` x ``filter_size``, sigma 1.5, k1 0.01, k2 0.03, no Bessel
    correction, over the windows that fit inside the image ("valid"), averaged over the
    positions and the channels).  This is the cookbook's SSIM (torchmetrics
    ``StructuralSimilarityIndexMeasure(data_range=1.0)`` on images / 255: same window and
    constants; torchmetrics pads by reflection and then crops the border away, which leaves the
    same valid windows).  ``data_range`` is the dynamic range of the pixel values (255 for
    0-255 images).  Images must be at least ``filter_size`` pixels high and wide.  Computed in
    float32 (agrees with a float64 computation to about 1e-5).  Values differ from
    scikit-image's defaults (7x7 uniform window).  Returns ``float64 [N]``."""
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


#: The cookbook's metric names (``recon_eval_image.py``), in its column order.
COOKBOOK_METRICS = (
    "pixel profile correlation",
    "pixel pattern correlation",
    "pixel rmse",
    "identification accuracy by pixel pattern correlation",
    "identification accuracy by pixel euclidean distance",
    "ssim",
)


def cookbook_metrics(recon, true, recon_labels=None, true_labels=None, resize=True,
                     data_range=255.0) -> dict:
    """The cookbook's table for one set of reconstructions: ``{name: values}`` for the names in
    :data:`COOKBOOK_METRICS`.

    ``"pixel profile correlation"`` is ``float64 [H, W, C]`` (one value per pixel and channel,
    :func:`profile_correlation`); the other five are ``float64 [N]``, one per reconstruction.
    Without labels, reconstruction ``i`` goes with true image ``i``.  With labels, ``true`` is
    the candidate set (e.g. every true image of the study, each label once): the per-image
    metrics use the true image of each reconstruction's label, and the identification
    accuracies compare each reconstruction with all candidates, as the cookbook does.
    """
    r = _as_batch(recon, "recon")
    t = _match_size(r, _as_batch(true, "true"), resize)
    own = label_positions(len(r), len(t), recon_labels, true_labels)
    if len(r) < 2 or len(t) < 2:
        raise ValueError(f"cookbook_metrics: needs at least 2 reconstructions and 2 true images "
                         f"(profile correlation and pairwise identification), got {len(r)} and "
                         f"{len(t)}")
    mine = t[own]
    out = {"pixel profile correlation": profile_correlation(r, mine),
           "pixel pattern correlation": pattern_correlation(r, mine),
           "pixel rmse": rmse(r, mine)}
    for metric, name in (("correlation", COOKBOOK_METRICS[3]), ("euclidean", COOKBOOK_METRICS[4])):
        out[name] = identification_accuracy(r, t, metric, own, np.arange(len(t)))
    out["ssim"] = ssim(r, mine, data_range=data_range)
    return {k: out[k] for k in COOKBOOK_METRICS}


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
