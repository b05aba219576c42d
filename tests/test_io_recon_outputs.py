"""The cookbook's reconstruction outputs (recon_icnn_image_gd.py) written by keras_icnn.io."""
import os

import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings, strategies as st
from PIL import Image

from keras_icnn import io as kio


# ---------------------------------------------- transcription of bdpy.recon.utils (display)
def _clip_extreme_transcribed(x, pct=1):
    if pct < 0:
        pct = 0.
    if pct > 100:
        pct = 100.
    return np.clip(x, np.percentile(x, pct / 2.), np.percentile(x, 100 - pct / 2.))


def _normalize_image_transcribed(img):
    img = img - img.min()
    if img.max() > 0:
        img = img * (255.0 / img.max())
    return np.uint8(img)


def _recon(seed, h=12, w=10):
    rng = np.random.default_rng(seed)
    img = (rng.standard_normal((h, w, 3)) * 50 + 120).astype(np.float32)
    return img, rng.uniform(0, 1e6, 7).astype(np.float32)


@pytest.mark.parametrize("subject,roi", [("sub-01", "VC"), (None, None)])
def test_layout_and_contents(tmp_path, subject, roi):
    img, loss = _recon(0)
    image_file, mat_file = kio.save_recon_outputs(tmp_path, "n01443537_22563", img, loss,
                                                  subject=subject, roi=roi)
    where = tmp_path / subject / roi if subject else tmp_path
    assert image_file == str(where / "recon_image-n01443537_22563.tiff")
    assert mat_file == str(where / "recon_image-n01443537_22563.mat")
    assert sorted(os.listdir(where)) == ["recon_image-n01443537_22563.mat",
                                         "recon_image-n01443537_22563.tiff"]
    mat = scipy.io.loadmat(mat_file)
    assert mat["recon_image"].dtype == np.float32 and mat["recon_image"].shape == (12, 10, 3)
    np.testing.assert_array_equal(mat["recon_image"], img)
    assert mat["loss_history"].dtype == np.float32 and mat["loss_history"].shape == (1, 7)
    np.testing.assert_array_equal(mat["loss_history"][0], loss)
    with Image.open(image_file) as pil:
        assert pil.format == "TIFF" and pil.mode == "RGB"
        tiff = np.asarray(pil)
    want = _normalize_image_transcribed(_clip_extreme_transcribed(mat["recon_image"], pct=4))
    np.testing.assert_array_equal(tiff, want)
    assert kio.recon_outputs_exist(tmp_path, "n01443537_22563", subject, roi)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 16), h=st.integers(1, 20), w=st.integers(1, 20),
       pct=st.sampled_from([0, 1, 4, 10]), f64=st.booleans())
def test_display_image_equals_bdpys_arithmetic_bit_for_bit(seed, h, w, pct, f64):
    img, _ = _recon(seed, h, w)
    if f64:
        img = img.astype(np.float64) * 1.37
    want = _normalize_image_transcribed(_clip_extreme_transcribed(img, pct=pct))
    np.testing.assert_array_equal(kio.display_image(img, pct), want)


def test_constant_image_is_black():
    out = kio.display_image(np.full((3, 4, 3), 7.0, np.float32))
    assert out.dtype == np.uint8 and not out.any()


def test_prefix_and_ext_are_arguments(tmp_path):
    img, loss = _recon(1)
    image_file, mat_file = kio.save_recon_outputs(tmp_path, "a", img[None], list(loss),
                                                  subject="s", roi="r", prefix="", ext=".png")
    assert image_file == str(tmp_path / "s" / "r" / "a.png")
    assert mat_file == str(tmp_path / "s" / "r" / "a.mat")
    with Image.open(image_file) as pil:
        assert pil.format == "PNG"
    assert kio.recon_outputs_exist(tmp_path, "a", "s", "r", prefix="", ext="png")
    assert not kio.recon_outputs_exist(tmp_path, "a", "s", "r")  # default prefix/ext
    assert kio.recon_output_paths("/o", "x") == ("/o/recon_image-x.tiff", "/o/recon_image-x.mat")


def test_no_loss_history_is_stored_empty(tmp_path):
    img, _ = _recon(2)
    _, mat_file = kio.save_recon_outputs(tmp_path, "a", img, None)
    assert scipy.io.loadmat(mat_file)["loss_history"].size == 0


def test_exists_needs_both_files_and_skip_logic(tmp_path):
    img, loss = _recon(3)
    assert not kio.recon_outputs_exist(tmp_path, "a", "s", "r")
    image_file, mat_file = kio.save_recon_outputs(tmp_path, "a", img, loss, "s", "r")
    assert kio.recon_outputs_exist(tmp_path, "a", "s", "r")
    os.remove(image_file)  # interrupted between the two writes
    assert not kio.recon_outputs_exist(tmp_path, "a", "s", "r")
    done = [lb for lb in ["a", "b"] if kio.recon_outputs_exist(tmp_path, lb, "s", "r")]
    assert done == []


def test_no_overwrite_unless_asked(tmp_path):
    img, loss = _recon(4)
    image_file, mat_file = kio.save_recon_outputs(tmp_path, "a", img, loss)
    before = (open(image_file, "rb").read(), open(mat_file, "rb").read())
    img2, loss2 = _recon(5)
    with pytest.raises(FileExistsError, match="recon_image-a.*overwrite=True"):
        kio.save_recon_outputs(tmp_path, "a", img2, loss2)
    assert (open(image_file, "rb").read(), open(mat_file, "rb").read()) == before
    os.remove(image_file)  # a lone .mat is not replaced either
    with pytest.raises(FileExistsError, match=r"recon_image-a\.mat"):
        kio.save_recon_outputs(tmp_path, "a", img2, loss2)
    assert not os.path.exists(image_file)
    kio.save_recon_outputs(tmp_path, "a", img2, loss2, overwrite=True)
    np.testing.assert_array_equal(scipy.io.loadmat(mat_file)["recon_image"], img2)
    assert sorted(os.listdir(tmp_path)) == ["recon_image-a.mat", "recon_image-a.tiff"]  # no temp files


def test_bad_arguments(tmp_path):
    img, loss = _recon(6)
    with pytest.raises(ValueError, match="give both"):
        kio.save_recon_outputs(tmp_path, "a", img, loss, subject="s")
    with pytest.raises(ValueError, match="label"):
        kio.save_recon_outputs(tmp_path, "../a", img, loss)
    with pytest.raises(ValueError, match="label"):
        kio.save_recon_outputs(tmp_path, "", img, loss)
    with pytest.raises(ValueError, match="recon_image: expected a real RGB image"):
        kio.save_recon_outputs(tmp_path, "a", img[..., :2], loss)
    with pytest.raises(ValueError, match="NaN"):
        kio.save_recon_outputs(tmp_path, "a", img * np.nan, loss)
    with pytest.raises(ValueError, match="loss_history"):
        kio.save_recon_outputs(tmp_path, "a", img, np.ones((2, 2)))
    with pytest.raises(ValueError, match="Pillow cannot write '.nope'"):
        kio.save_recon_outputs(tmp_path, "a", img, loss, ext="nope")
    with pytest.raises(ValueError, match="pct"):
        kio.display_image(img, pct=150)
    assert os.listdir(tmp_path) == []  # nothing written by the refused calls
