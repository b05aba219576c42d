"""Reading and writing images, and resizing them as float data.

:func:`load_image` gives ``float32 [H, W, 3]`` RGB in 0-255; :func:`save_image` writes uint8
PNG/JPEG (or any format Pillow knows by extension) atomically.
"""
from __future__ import annotations

import os

import numpy as np

from keras_icnn.validation import numeric_array

from keras_icnn import imaging
from keras_icnn.io.atomic import atomic_path
from keras_icnn.io.paths import check_existing_file, check_file_name, file_extension

__all__ = ["load_image", "save_image", "as_size", "resize_image"]

_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _resample(name):
    from PIL import Image

    filters = getattr(Image, "Resampling", Image)
    table = {"nearest": filters.NEAREST, "bilinear": filters.BILINEAR,
             "bicubic": filters.BICUBIC, "lanczos": filters.LANCZOS}
    if name not in table:
        raise ValueError(f"method: expected one of {sorted(table)}, got {name!r}")
    return table[name]


def as_size(size, name="size"):
    """int -> (size, size); (H, W) pair -> (H, W); validated positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    else:
        try:
            hw = tuple(int(s) for s in size)
            ok = len(hw) == 2 and all(float(s) == int(s) for s in size)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ValueError(f"{name}: expected an int or an (height, width) pair, got {size!r}")
    if min(hw) < 1:
        raise ValueError(f"{name}: expected positive sizes, got {size!r}")
    return hw


def resize_image(img, hw, method="bicubic") -> np.ndarray:
    """Resize one ``[H, W, C]`` float image to ``hw = (H', W')`` channel by channel with Pillow
    (mode "F": no rounding, no clipping; bicubic may overshoot slightly)."""
    from PIL import Image

    resample = _resample(method)
    h, w = hw
    if img.shape[:2] == (h, w):
        return img.astype(np.float32, copy=True)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32))
                        .resize((w, h), resample), dtype=np.float32)
             for c in range(img.shape[-1])]
    return np.stack(chans, axis=-1)


def load_image(path, size=None) -> np.ndarray:
    """Load an image as ``float32 [H, W, 3]`` RGB in 0-255.

    Grayscale, palette, CMYK, RGBA, ... images are converted with Pillow's ``convert("RGB")``
    (alpha is dropped, as in the lab's scripts); 16-bit grayscale is scaled to 0-255.  EXIF
    orientation is not applied (the pixels are used as stored).  ``size`` (an int, or an
    ``(height, width)`` pair) resizes the whole image to that size with Pillow's bicubic filter
    (no crop; the aspect ratio is not kept): ``size=224`` gives ``[224, 224, 3]``.
    """
    from PIL import Image, UnidentifiedImageError

    path = check_existing_file(path, "image file")
    hw = None if size is None else as_size(size)
    arr = None
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _HIGH_DEPTH_MODES:
                arr = _high_depth_rgb(im)
            else:
                if im.mode == "P" and "transparency" in im.info:
                    im = im.convert("RGBA")
                rgb = im.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None
    except OSError as exc:
        raise ValueError(f"{path}: could not read the image ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise ValueError, SyntaxError,
        # struct.error, DecompressionBombError, ... on damaged files
        raise ValueError(f"{path}: could not read the image "
                         f"({type(exc).__name__}: {exc})") from None
    if arr is not None:
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{path}: the image holds NaN or Inf pixel values")
        return arr if hw is None else resize_image(arr, hw)
    if hw is not None and (rgb.height, rgb.width) != hw:
        rgb = rgb.resize((hw[1], hw[0]), _resample("bicubic"))
    return np.asarray(rgb, dtype=np.float32)


def _high_depth_rgb(im) -> np.ndarray:
    """A 16-bit, 32-bit integer or float grayscale image as ``float32 [H, W, 3]`` (16-bit
    scaled to 0-255, the others as stored)."""
    arr = np.asarray(im, dtype=np.float32)
    if im.mode.startswith("I;16"):
        arr = arr * (255.0 / 65535.0)
    return np.repeat(arr[..., None], 3, axis=-1)


def _image_uint8(img, normalize, pct, name="img") -> np.ndarray:
    """Validate one image and turn it into uint8 ``[H, W, 3]`` or ``[H, W]``."""
    x = numeric_array(img, name, "an image array")
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)) or x.size == 0:
        raise ValueError(f"{name}: expected an RGB image [H, W, 3] (or grayscale [H, W]), "
                         f"got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return _normalised_uint8(x, normalize, pct)


def _normalised_uint8(x, normalize, pct) -> np.ndarray:
    """``x`` as uint8 after the ``normalize`` scheme of :func:`save_image`."""
    if normalize is True:
        normalize = "minmax"
    if normalize is False or normalize is None:
        return imaging.to_uint8(x)
    if normalize == "minmax":
        return imaging.normalise_img(x)
    if normalize == "clip_extreme":
        if not isinstance(pct, (int, float, np.integer, np.floating)) or not 0 <= pct <= 100:
            raise ValueError(f"pct: expected a percentage in [0, 100], got {pct!r}")
        return imaging.normalise_img(imaging.clip_extreme(x, pct=float(pct)))
    raise ValueError(f"normalize: expected False, 'minmax' or 'clip_extreme', got {normalize!r}")


def save_image(path, img, normalize=False, pct=4) -> None:
    """Save one RGB image (``[H, W, 3]``, ``[1, H, W, 3]`` or grayscale ``[H, W]``) as uint8.

    ``normalize``:

    * ``False`` (default): clip to 0-255 and round (the image is taken as RGB 0-255);
    * ``"minmax"`` (or ``True``): the original iCNN ``normalise_img``: min -> 0, max -> 255
      (truncated to uint8, as the original did);
    * ``"clip_extreme"``: first clip ``pct / 2`` % of the values at each tail (percentiles over
      the whole image, all channels together), then min-max: the paper's figures (``pct=4``).

    The format follows the extension (``.png``, ``.jpg``/``.jpeg``, or any other Pillow knows).
    The file is written atomically.
    """
    from PIL import Image

    check_file_name(path)
    ext = file_extension(path)
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{os.fspath(path)}: unsupported image extension {ext!r}; "
                         "use .png or .jpg (or another extension Pillow can write)")
    u8 = _image_uint8(img, normalize, pct)
    pil = Image.fromarray(u8)
    params = {"quality": 95} if fmt == "JPEG" else {}
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt, **params)
