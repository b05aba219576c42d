"""Reconstruction outputs laid out as the lab's cookbook writes them
(``brain-decoding-cookbook`` ``reconstruction/recon_icnn_image_gd.py``).

Per stimulus label, in ``<out>/<subject>/<roi>/`` for decoded features, or directly in
``<out>/`` for true features (no subject/ROI)::

    <prefix><label>.mat     MATLAB v5: recon_image  float32 [H, W, 3], RGB 0-255 scale (raw)
                                       loss_history float32 [1, n_iter]
    <prefix><label>.<ext>   the image for display: 2 % of the values clipped at each tail
                            (clip_extreme, pct=4; percentiles over all pixels and channels),
                            then min -> 0, max -> 255 and truncated to uint8

``prefix`` and ``ext`` are the cookbook config's ``output.prefix`` (``"recon_image-"``) and
``output.ext`` (``"tiff"``).  The ``.mat`` file is written first, then the image, each
atomically, so a present image means a finished label (:func:`recon_outputs_exist`).
"""
from __future__ import annotations

import os

import numpy as np

from keras_icnn.io.features import write_arrays
from keras_icnn.io.images import save_image

__all__ = ["RECON_PREFIX", "RECON_EXT", "recon_output_dir", "recon_output_paths",
           "recon_outputs_exist", "display_image", "save_recon_outputs"]

#: The cookbook's default ``output.prefix`` and ``output.ext``.
RECON_PREFIX = "recon_image-"
RECON_EXT = "tiff"


def _check_name(value, what, empty_ok=False) -> str:
    """A file-name part: a string without path separators (non-empty unless ``empty_ok``)."""
    if not isinstance(value, str) or (not value and not empty_ok):
        raise ValueError(f"{what}: expected a {'string' if empty_ok else 'non-empty string'}, "
                         f"got {value!r}")
    if "/" in value or os.sep in value or value in (".", ".."):
        raise ValueError(f"{what}: {value!r} is not a plain file-name part (no path separators)")
    return value


def recon_output_dir(out_dir, subject=None, roi=None) -> str:
    """``<out_dir>/<subject>/<roi>`` (decoded features) or ``<out_dir>`` (true features:
    both ``None``), as the cookbook's ``save_dir``.  Nothing is created."""
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
        raise ValueError(f"out_dir: expected a directory path, got {out_dir!r}")
    if (subject is None) != (roi is None):
        raise ValueError(f"subject and roi: give both (decoded features) or neither (true "
                         f"features), got subject={subject!r}, roi={roi!r}")
    if subject is None:
        return os.fspath(out_dir)
    return os.path.join(os.fspath(out_dir), _check_name(subject, "subject"),
                        _check_name(roi, "roi"))


def recon_output_paths(out_dir, label, subject=None, roi=None, prefix=RECON_PREFIX,
                       ext=RECON_EXT) -> tuple:
    """``(image file, .mat file)`` of ``label``: ``<dir>/<prefix><label>.<ext>`` and
    ``<dir>/<prefix><label>.mat`` with ``<dir>`` from :func:`recon_output_dir`.  ``ext`` is
    taken with or without its leading dot."""
    directory = recon_output_dir(out_dir, subject, roi)
    stem = _check_name(prefix, "prefix", empty_ok=True) + _check_name(label, "label")
    ext = _check_name(ext[1:] if isinstance(ext, str) and ext.startswith(".") else ext, "ext")
    return os.path.join(directory, f"{stem}.{ext}"), os.path.join(directory, f"{stem}.mat")


def recon_outputs_exist(out_dir, label, subject=None, roi=None, prefix=RECON_PREFIX,
                        ext=RECON_EXT) -> bool:
    """Whether both output files of ``label`` exist (a finished label, to skip)."""
    return all(os.path.isfile(p) for p in
               recon_output_paths(out_dir, label, subject, roi, prefix, ext))


def _check_image_ext(image_path) -> None:
    """Refuse an image extension Pillow cannot write before anything is written."""
    from PIL import Image

    ext = os.path.splitext(image_path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"ext: Pillow cannot write {ext!r} images (the cookbook uses 'tiff')")


def _recon_arrays(recon_image, loss_history) -> dict:
    """The ``.mat`` contents: ``recon_image`` float32 ``[H, W, 3]`` and ``loss_history``
    float32 ``[1, n]``, checked."""
    img = np.asarray(recon_image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dtype.kind not in "biuf" or img.ndim != 3 or img.shape[-1] != 3 or img.size == 0:
        raise ValueError(f"recon_image: expected a real RGB image [H, W, 3] (or [1, H, W, 3]), "
                         f"got shape {img.shape}, dtype {img.dtype}")
    if not np.all(np.isfinite(img)):
        raise ValueError("recon_image: contains NaN or Inf")
    loss = np.asarray([] if loss_history is None else loss_history)
    if loss.dtype.kind not in "biuf" or loss.ndim > 1:
        raise ValueError(f"loss_history: expected a 1-D numeric array (one loss per iteration), "
                         f"got shape {loss.shape}, dtype {loss.dtype}")
    return {"recon_image": img.astype(np.float32),
            "loss_history": loss.astype(np.float32).reshape(1, -1)}


def display_image(recon_image, pct=4) -> np.ndarray:
    """The cookbook's display image, uint8 ``[H, W, 3]``: ``pct / 2`` % of the values clipped
    at each tail (percentiles over all pixels and channels), then min -> 0 and max -> 255,
    truncated to uint8 (bdpy ``normalize_image(clip_extreme(recon_image, pct=4))``).

    Computed in the image's own float dtype, as bdpy does (the cookbook's ``recon_image`` is
    float32): :func:`keras_icnn.imaging.clip_extreme` / ``normalise_img`` compute in float64,
    which moves about 0.5 % of the pixels of a float32 image by one level."""
    img = np.asarray(recon_image)
    if img.dtype.kind != "f":
        img = img.astype(np.float32)
    if isinstance(pct, bool) or not isinstance(pct, (int, float, np.integer, np.floating)) \
            or not 0 <= pct <= 100:
        raise ValueError(f"pct: expected a percentage in [0, 100], got {pct!r}")
    low, high = np.percentile(img, pct / 2.0), np.percentile(img, 100 - pct / 2.0)
    img = np.clip(img, low, high)
    img = img - img.min()
    top = img.max()
    if top > 0:
        img = img * (255.0 / top)
    return np.uint8(img)


def save_recon_outputs(out_dir, label, recon_image, loss_history, subject=None, roi=None,
                       prefix=RECON_PREFIX, ext=RECON_EXT, overwrite=False, pct=4) -> tuple:
    """Write the cookbook's two outputs of one label (see the module docstring) and return
    ``(image file, .mat file)``.

    ``recon_image``: the reconstruction, RGB ``[H, W, 3]`` (or ``[1, H, W, 3]``) on the 0-255
    scale, not clipped (the cookbook's ``recon_image`` after ``image_deprocess``).
    ``loss_history``: the loss per iteration (``None``: stored empty).  The directories are
    created.  An existing output is never replaced unless ``overwrite=True``
    (``FileExistsError`` naming it; nothing is written).  The display image follows the
    cookbook's ``normalize_image(clip_extreme(recon_image, pct=4))`` on the float32
    ``recon_image`` (:func:`display_image`).
    """
    image_path, mat_path = recon_output_paths(out_dir, label, subject, roi, prefix, ext)
    _check_image_ext(image_path)
    arrays = _recon_arrays(recon_image, loss_history)
    if not overwrite:
        for p in (mat_path, image_path):
            if os.path.exists(p):
                raise FileExistsError(f"{p}: already exists; pass overwrite=True to replace it")
    os.makedirs(os.path.dirname(os.path.abspath(mat_path)), exist_ok=True)
    write_arrays(mat_path, arrays)  # MATLAB v5, atomic
    save_image(image_path, display_image(arrays["recon_image"], pct))  # uint8 as is, atomic
    return image_path, mat_path
