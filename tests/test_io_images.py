import numpy as np
import pytest
from PIL import Image

from keras_icnn import io as kio


def test_load_image_modes_and_resize(tmp_path):
    rgb = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = kio.load_image(tmp_path / "rgb.png")
    assert img.dtype == np.float32 and img.shape == (6, 8, 3)
    np.testing.assert_array_equal(img, rgb)

    gray = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    g = kio.load_image(tmp_path / "g.png")
    assert g.shape == (2, 2, 3)
    np.testing.assert_array_equal(g[..., 0], gray)
    np.testing.assert_array_equal(g[..., 2], gray)

    rgba = np.dstack([rgb, np.full((6, 8), 10, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(kio.load_image(tmp_path / "a.png"), rgb)

    r = kio.load_image(tmp_path / "rgb.png", size=4)
    assert r.shape == (4, 4, 3)
    expected = np.asarray(Image.fromarray(rgb).resize((4, 4), Image.BICUBIC), np.float32)
    np.testing.assert_array_equal(r, expected)
    assert kio.load_image(tmp_path / "rgb.png", size=(3, 5)).shape == (3, 5, 3)


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        kio.load_image(tmp_path / "none.png")
    (tmp_path / "x.png").write_bytes(b"not png")
    with pytest.raises(ValueError, match="x.png"):
        kio.load_image(tmp_path / "x.png")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match="size"):
        kio.load_image(tmp_path / "ok.png", size=0)
    with pytest.raises(ValueError, match="size"):
        kio.load_image(tmp_path / "ok.png", size="big")


def test_save_image_modes(tmp_path):
    img = np.array([[[-10.0, 0.4, 100.6], [300.0, 255.0, 254.5]]])  # [1, 2, 3]
    kio.save_image(tmp_path / "plain.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "plain.png")),
                                  [[[0, 0, 101], [255, 255, 254]]])

    kio.save_image(tmp_path / "mm.png", img, normalize="minmax")
    mm = np.asarray(Image.open(tmp_path / "mm.png"))
    # (x - min) * 255 / (max - min), truncated like the original normalise_img
    np.testing.assert_array_equal(mm, np.uint8((img - img.min()) * 255.0 / (img.max() - img.min())))
    assert mm.min() == 0 and mm.max() == 255

    rng = np.random.default_rng(0)
    big = rng.uniform(0, 100, (10, 10, 3))
    big[0, 0, 0] = 1e6  # an extreme outlier
    kio.save_image(tmp_path / "ce.png", big, normalize="clip_extreme", pct=4)
    ce = np.asarray(Image.open(tmp_path / "ce.png")).astype(float)
    lo, hi = np.percentile(big, 2), np.percentile(big, 98)
    exp = np.uint8((np.clip(big, lo, hi) - lo) * 255.0 / (hi - lo))
    np.testing.assert_array_equal(ce, exp)
    # without clipping the outlier would push everything else to ~0
    kio.save_image(tmp_path / "mm2.png", big, normalize="minmax")
    assert np.asarray(Image.open(tmp_path / "mm2.png")).mean() < 1 < ce.mean()

    kio.save_image(tmp_path / "j.jpg", np.full((8, 8, 3), 128.0))
    with Image.open(tmp_path / "j.jpg") as j:
        assert j.format == "JPEG" and j.size == (8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ce.png", "j.jpg", "mm.png", "mm2.png",
                                                          "plain.png"]


def test_save_image_errors(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        kio.save_image(tmp_path / "a.xyz", np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="shape"):
        kio.save_image(tmp_path / "a.png", np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        kio.save_image(tmp_path / "a.png", np.full((2, 2, 3), np.nan))
    with pytest.raises(ValueError, match="normalize"):
        kio.save_image(tmp_path / "a.png", np.zeros((2, 2, 3)), normalize="zscore")
    with pytest.raises(ValueError, match="pct"):
        kio.save_image(tmp_path / "a.png", np.zeros((2, 2, 3)), normalize="clip_extreme", pct=200)
    assert list(tmp_path.iterdir()) == []


def test_size_and_resize_helpers():
    assert kio.as_size(4) == (4, 4)
    assert kio.as_size((3, 5)) == (3, 5)
    with pytest.raises(ValueError, match="size"):
        kio.as_size(0)
    img = np.random.default_rng(0).uniform(0, 255, (6, 8, 3))
    out = kio.resize_image(img, (3, 4))
    assert out.dtype == np.float32 and out.shape == (3, 4, 3)
    np.testing.assert_array_equal(kio.resize_image(img, (6, 8)), img.astype(np.float32))
