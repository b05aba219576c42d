"""Property-based tests of ``keras_icnn.io.load_image``, ``keras_icnn.params.load_latent_bounds``,
the file-name checks and the argument validators of ``keras_icnn.validation``.

A reader either returns the right result or raises ``ValueError`` / ``FileNotFoundError``
naming the file -- never another exception, never a hang.  ``KERAS_ICNN_FUZZ_EXAMPLES=2000``
runs every test with 2000 examples.
"""
from __future__ import annotations

import fractions
import io
import math
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from fuzz_helpers import fuzz_settings, mutated, outcome, time_limit, truncations  # noqa: E402

from keras_icnn import io as kio  # noqa: E402
from keras_icnn import validation  # noqa: E402
from keras_icnn.params import load_latent_bounds  # noqa: E402


class _Quiet(dict):
    def __repr__(self):
        return f"<{len(self)} entries>"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_files")


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
_IMAGE_FORMATS = {  # name: (extension, mode, save options)
    "png": (".png", "RGB", {}), "png16": (".png", "I;16", {}), "pngp": (".png", "P", {}),
    "jpeg": (".jpg", "RGB", {"quality": 90}), "gif": (".gif", "P", {}), "bmp": (".bmp", "RGB", {}),
    "tiff": (".tif", "RGB", {}), "tiffz": (".tif", "RGB", {"compression": "tiff_deflate"}),
    "tiff_f": (".tif", "F", {}), "tiff_cmyk": (".tif", "CMYK", {}), "webp": (".webp", "RGB", {}),
    "ppm": (".ppm", "RGB", {}),
}


def _image(mode, h=9, w=7, seed=0):
    rng = np.random.default_rng(seed)
    if mode == "F":
        return Image.fromarray(rng.uniform(0, 255, (h, w)).astype(np.float32))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), mode="RGB")
    if mode == "P":
        img = rgb.quantize(16)
        img.info["transparency"] = 3
        return img
    return rgb.convert(mode)


@pytest.fixture(scope="module")
def image_files():
    out = _Quiet()
    for name, (ext, mode, options) in _IMAGE_FORMATS.items():
        buf = io.BytesIO()
        img = _image(mode)
        img.save(buf, format=Image.registered_extensions()[ext], **options)
        out[name] = (ext, buf.getvalue())
    return out


def _check_image(img, path):
    assert isinstance(img, np.ndarray) and img.dtype == np.float32, path
    assert img.ndim == 3 and img.shape[-1] == 3 and min(img.shape[:2]) >= 1, img.shape
    assert np.all(np.isfinite(img)), "NaN/Inf pixels"


def _load_image(path, size=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data", "Truncated File Read"
        img = outcome(kio.load_image, path, names=path, size=size)
    if img is not None:
        _check_image(img, path)
        if size is not None:
            assert img.shape[:2] == kio.as_size(size)
    return img


_MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00",
           b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n", b"\x00\x00\x01\x00"]


@fuzz_settings(200)
@given(ext=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".tif", ".webp", ".ppm", ".ico"]),
       magic=st.sampled_from(_MAGICS), data=st.binary(max_size=2000))
def test_image_random_bytes(workdir, ext, magic, data):
    path = workdir / f"random{ext}"
    path.write_bytes(magic + data)
    _load_image(path)


@fuzz_settings(300)
@given(fmt=st.sampled_from(sorted(_IMAGE_FORMATS)), data=st.data(),
       size=st.one_of(st.none(), st.integers(1, 12),
                      st.tuples(st.integers(1, 9), st.integers(1, 9))))
def test_image_damaged(workdir, image_files, fmt, data, size):
    ext, base = image_files[fmt]
    path = workdir / f"damaged_{fmt}{ext}"
    path.write_bytes(data.draw(st.one_of(truncations(base), mutated(base))))
    _load_image(path, size=size)


@fuzz_settings(120)
@given(mode=st.sampled_from(["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I",
                             "F", "I;16", "LA", "PA", "RGBX", "La", "RGBa"]),
       fmt=st.sampled_from([".tif", ".png", ".webp", ".bmp", ".gif", ".jpg"]),
       h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 2**16),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf, 1e30, -5.0]))
def test_image_modes(workdir, mode, fmt, h, w, seed, special):
    """Images of any mode Pillow can write, with odd float values."""
    img = _image("RGB", h, w, seed)
    if mode == "F":
        arr = np.random.default_rng(seed).uniform(0, 255, (h, w)).astype(np.float32)
        if special is not None:
            arr[0, 0] = special
        img = Image.fromarray(arr)
    elif mode == "I":
        img = Image.fromarray(np.random.default_rng(seed).integers(-2**31, 2**31, (h, w))
                              .astype(np.int32))
    elif mode == "I;16":
        img = _image("I;16", h, w, seed)
    else:
        try:
            img = img.convert(mode)
        except ValueError:
            return  # a conversion Pillow does not have
    path = workdir / f"mode{fmt}"
    try:
        img.save(path)
    except (OSError, ValueError, KeyError, TypeError):
        return  # this format cannot hold this mode
    got = _load_image(path)
    if got is not None:
        assert got.shape == (h, w, 3)
        if mode in ("RGB", "RGBX", "L", "P") and fmt in (".tif", ".png", ".bmp"):
            want = np.asarray(img.convert("RGB"), dtype=np.float32)
            np.testing.assert_array_equal(got, want)
        if mode == "F" and fmt == ".tif" and (special is None or np.isfinite(special)):
            np.testing.assert_array_equal(got[..., 0], np.asarray(img, dtype=np.float32))
    if mode == "F" and fmt == ".tif" and special is not None and not np.isfinite(special):
        assert got is None, "NaN/Inf pixels must be refused"


@fuzz_settings(100)
@given(size=st.one_of(st.none(), st.integers(-3, 20), st.floats(), st.text(max_size=3),
                      st.tuples(st.integers(-2, 9), st.integers(-2, 9)),
                      st.lists(st.one_of(st.integers(0, 9), st.floats(0, 9)), max_size=3),
                      st.booleans(), st.just(np.array([4, 5])), st.just(object())),
       target=st.integers(0, 3))
def test_image_arguments(workdir, image_files, size, target):
    path = workdir / "args.png"
    path.write_bytes(image_files["png"][1])
    where = [path, str(path), workdir, 3.5][target]
    with time_limit():
        try:
            img = kio.load_image(where, size=size)
        except ValueError as exc:
            assert any(w in str(exc) for w in ("size", str(where), "path")), str(exc)
            return
    assert target in (0, 1)
    _check_image(img, path)


# --------------------------------------------------------------------------------------------
# latent bounds (whitespace-separated numbers)
# --------------------------------------------------------------------------------------------
_SEPARATORS = st.sampled_from([" ", "\n", "\t", "\r\n", "  ", " \n", "\x0b", "\x0c"])


@st.composite
def _bounds_text(draw):
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12))
    style = draw(st.sampled_from(["repr", "e", "g", "f", "int"]))
    words = []
    for v in values:
        if style == "int" and math.isfinite(v):
            words.append(str(int(v)))
        elif style == "repr" or not math.isfinite(v):
            words.append(repr(v))
        else:
            words.append(format(v, {"e": ".6e", "g": "g", "f": ".3f"}[style]))
    text = ""
    for word in words:
        text += draw(_SEPARATORS) + word
    return text + draw(st.sampled_from(["", "\n", "  \n\n"]))


@fuzz_settings(200)
@given(text=_bounds_text())
def test_latent_bounds_numbers(workdir, text):
    path = workdir / "bounds.txt"
    path.write_text(text)
    got = outcome(load_latent_bounds, path, names=path)
    want = np.array([float(w) for w in text.split()], dtype=np.float64)
    with np.errstate(over="ignore"):
        want32 = want.astype(np.float32)
    if want.size and np.all(np.isfinite(want32)):
        assert got is not None and got.dtype == np.float32
        np.testing.assert_array_equal(got, want32)
    else:
        assert got is None, f"expected an error for {text!r}, got {got}"


@fuzz_settings(200)
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=60).map(str.encode),
                      st.text(alphabet="0123456789.eE+-_ \n\tinfa", max_size=40).map(str.encode)))
def test_latent_bounds_any_bytes(workdir, data):
    path = workdir / "bounds_any.txt"
    path.write_bytes(data)
    got = outcome(load_latent_bounds, path, names=path)
    if got is not None:
        assert got.dtype == np.float32 and got.ndim == 1 and got.size >= 1
        assert np.all(np.isfinite(got))


@pytest.mark.parametrize("what", [None, 3, 2.5, b"bytes.txt", ["a"], object()])
def test_latent_bounds_non_paths(what):
    with pytest.raises(ValueError, match="path|file"):
        load_latent_bounds(what)


# --------------------------------------------------------------------------------------------
# file names: missing files, directories, FIFOs (opening one would block)
# --------------------------------------------------------------------------------------------
def _readers():
    from keras_icnn.caffe import read_caffemodel, read_prototxt
    from keras_icnn.objective.scaling import load_feature_std
    return [(kio.load_features, ".npz"), (kio.load_features, ".mat"), (kio.load_image, ".png"),
            (load_latent_bounds, ".txt"), (load_feature_std, ".npz"),
            (read_prototxt, ".prototxt"), (read_caffemodel, ".caffemodel")]


@pytest.mark.parametrize("reader,ext", _readers())
def test_readers_refuse_what_is_not_a_file(workdir, reader, ext):
    missing = workdir / f"missing{ext}"
    with pytest.raises(FileNotFoundError, match="missing"):
        reader(missing)
    d = workdir / f"dir{ext}"
    d.mkdir(exist_ok=True)
    with pytest.raises((ValueError, FileNotFoundError), match=f"dir{ext}"):
        reader(d)
    fifo = workdir / f"fifo{ext}"
    if not fifo.exists():
        os.mkfifo(fifo)
    # a reader that opens the FIFO blocks until a writer comes: one comes after 5 s (so that
    # the test ends), and a reader that waited for it fails the test
    timer = threading.Timer(5.0, lambda: open(fifo, "wb").close())
    timer.start()
    start = time.monotonic()
    try:
        with time_limit(10):
            with pytest.raises((ValueError, FileNotFoundError), match=f"fifo{ext}"):
                reader(fifo)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 4, "the reader waited for the FIFO"
    for bad in (None, 3, b"x.npz"):
        with pytest.raises(ValueError):
            reader(bad)


# --------------------------------------------------------------------------------------------
# argument validators
# --------------------------------------------------------------------------------------------
_NUMPY_SCALARS = st.one_of(
    hnp.from_dtype(np.dtype("int8")), hnp.from_dtype(np.dtype("uint64")),
    hnp.from_dtype(np.dtype("int64")), hnp.from_dtype(np.dtype("float16")),
    hnp.from_dtype(np.dtype("float32")), hnp.from_dtype(np.dtype("float64")),
    hnp.from_dtype(np.dtype("complex128")), hnp.from_dtype(np.dtype("bool")),
    hnp.from_dtype(np.dtype("timedelta64[s]")), hnp.from_dtype(np.dtype("datetime64[s]")),
    hnp.from_dtype(np.dtype("U3")))
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-3, 3), st.floats(), st.complex_numbers(),
    st.text(max_size=5), st.binary(max_size=3), st.decimals(), st.fractions(),
    st.lists(st.integers(), max_size=2), st.tuples(st.integers()), _NUMPY_SCALARS,
    st.just(np.array(3)), st.just(np.array([3])), st.just(object()), st.just(float("nan")))


def _exact_number(v):
    """``v`` as an exact Fraction when it is a finite real int/float (not a bool or a numpy
    time), else None."""
    if isinstance(v, (bool, np.bool_, np.timedelta64, np.datetime64)):
        return None
    if isinstance(v, (int, np.integer)):
        return fractions.Fraction(int(v))
    if isinstance(v, (float, np.floating)) and math.isfinite(v):
        return fractions.Fraction(float(v))
    return None


@fuzz_settings(300)
@given(value=_VALUES, name=st.text(min_size=1, max_size=8))
def test_positive_int(value, name):
    exact = _exact_number(value)
    ok = exact is not None and isinstance(value, (int, np.integer)) and exact >= 1
    try:
        got = validation.positive_int(value, name)
    except ValueError as exc:
        assert not ok, f"{value!r} refused: {exc}"
        assert name in str(exc)
        return
    assert ok, f"{value!r} accepted as {got!r}"
    assert type(got) is int and got == exact


@fuzz_settings(300)
@given(value=_VALUES, name=st.text(min_size=1, max_size=8), positive=st.booleans())
def test_finite_number(value, name, positive):
    exact = _exact_number(value)
    try:
        as_float = float(exact) if exact is not None else None
    except OverflowError:  # an int too large for a float
        as_float = None
    ok = as_float is not None and math.isfinite(as_float) and (as_float > 0 if positive
                                                               else as_float >= 0)
    try:
        got = validation.finite_number(value, name, positive=positive)
    except ValueError as exc:
        assert not ok, f"{value!r} refused: {exc}"
        assert name in str(exc)
        return
    assert ok, f"{value!r} accepted as {got!r}"
    assert type(got) is float and got == as_float
