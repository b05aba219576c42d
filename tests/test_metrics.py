import numpy as np
import pytest

from keras_icnn import metrics


def _three_images():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 255, (3, 4, 4, 3))
    recon = rng.uniform(0, 255, (3, 4, 4, 3))
    return recon, true


def test_pattern_correlation_matches_corrcoef():
    recon, true = _three_images()
    got = metrics.pattern_correlation(recon, true)
    exp = [np.corrcoef(recon[i].ravel(), true[i].ravel())[0, 1] for i in range(3)]
    assert got.shape == (3,)
    np.testing.assert_allclose(got, exp, rtol=1e-12)
    # a hand-computed pair: y = 2x + 1 is perfectly correlated, -x anti-correlated
    x = np.arange(12, dtype=float).reshape(1, 2, 2, 3)
    np.testing.assert_allclose(metrics.pattern_correlation(2 * x + 1, x), [1.0])
    np.testing.assert_allclose(metrics.pattern_correlation(-x, x), [-1.0])
    # a single [H, W, C] image counts as N = 1
    assert metrics.pattern_correlation(x[0], x[0]).shape == (1,)


def test_pattern_correlation_constant_image_is_nan():
    x = np.arange(12, dtype=float).reshape(1, 2, 2, 3)
    assert np.isnan(metrics.pattern_correlation(np.zeros_like(x), x)[0])


def test_pairwise_identification_by_hand():
    # 1-pixel, 3-channel "images" so that the similarities are easy to reason about
    true = np.array([[1, 2, 3], [3, 2, 1], [1, 3, 2]], dtype=float).reshape(3, 1, 1, 3)
    recon = np.array([[1, 2, 3.5], [1, 2, 3], [2, 3, 1]], dtype=float).reshape(3, 1, 1, 3)
    c = np.array([[np.corrcoef(recon[i].ravel(), true[j].ravel())[0, 1] for j in range(3)]
                  for i in range(3)])
    exp = np.array([(sum(c[i, j] < c[i, i] for j in range(3) if j != i)) / 2 for i in range(3)])
    got = metrics.pairwise_identification(recon, true, metric="correlation")
    np.testing.assert_allclose(got, exp)
    # recon 0 is close to true 0: both others are less similar; recon 1 equals true 0, so its
    # own true image (true 1, anti-correlated) is beaten by both others
    assert got[0] == 1.0 and got[1] == 0.0

    d = np.array([[np.linalg.norm(recon[i] - true[j]) for j in range(3)] for i in range(3)])
    exp_e = np.array([(sum(d[i, j] > d[i, i] for j in range(3) if j != i)) / 2 for i in range(3)])
    got_e = metrics.pairwise_identification(recon, true, metric="euclidean")
    np.testing.assert_allclose(got_e, exp_e)
    assert got_e[0] == 1.0 and got_e[1] == 0.0


def test_perfect_reconstruction_identification_is_one():
    _, true = _three_images()
    for metric in ("correlation", "euclidean"):
        np.testing.assert_array_equal(metrics.pairwise_identification(true, true, metric=metric),
                                      [1.0, 1.0, 1.0])


def test_identification_needs_two_and_valid_metric():
    x = np.zeros((1, 2, 2, 3))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.pairwise_identification(x, x)
    with pytest.raises(ValueError, match="metric"):
        metrics.pairwise_identification(np.zeros((2, 2, 2, 3)), np.zeros((2, 2, 2, 3)),
                                        metric="cosine")


def test_ssim_identical_is_one_and_lower_for_noise():
    rng = np.random.default_rng(1)
    true = rng.uniform(0, 255, (2, 16, 16, 3))
    np.testing.assert_allclose(metrics.ssim(true, true), [1.0, 1.0], atol=1e-5)
    noisy = np.clip(true + rng.normal(0, 60, true.shape), 0, 255)
    s = metrics.ssim(noisy, true)
    assert s.shape == (2,) and np.all(s < 0.9)
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="data_range"):
        metrics.ssim(true, true, data_range=0)


def test_shape_mismatch_errors():
    a = np.zeros((3, 4, 4, 3))
    with pytest.raises(ValueError, match="same number of images"):
        metrics.pattern_correlation(a, np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="same number of channels"):
        metrics.pattern_correlation(a, np.zeros((3, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"recon: expected images"):
        metrics.pattern_correlation(np.zeros((4, 4)), a)
    with pytest.raises(ValueError, match="resize=False"):
        metrics.pattern_correlation(a, np.zeros((3, 8, 8, 3)), resize=False)
    with pytest.raises(ValueError, match="true: contains NaN"):
        metrics.pattern_correlation(a, np.full((3, 4, 4, 3), np.nan))


def test_resize_images_and_true_resized_to_recon():
    # a linear ramp resized with bilinear stays a ramp
    ramp = np.tile(np.linspace(0, 255, 8)[None, :, None], (8, 1, 3))[None]
    small = metrics.resize_images(ramp, 4, method="bilinear")
    assert small.shape == (1, 4, 4, 3) and small.dtype == np.float32
    assert np.all(np.diff(small[0, 0, :, 0]) > 0)
    assert metrics.resize_images(ramp[0], (2, 6)).shape == (2, 6, 3)
    # a true image twice the size of the reconstruction: compared after resizing
    rng = np.random.default_rng(2)
    recon = rng.uniform(0, 255, (2, 4, 4, 3))
    big_true = np.repeat(np.repeat(recon, 2, axis=1), 2, axis=2)  # nearest-neighbour upscale
    r = metrics.pattern_correlation(recon, big_true)
    exp = metrics.pattern_correlation(recon, metrics.resize_images(big_true, 4))
    np.testing.assert_allclose(r, exp)
    assert np.all(r > 0.8)
    with pytest.raises(ValueError, match="method"):
        metrics.resize_images(ramp, 4, method="area")


def test_evaluate():
    rng = np.random.default_rng(3)
    true = rng.uniform(0, 255, (3, 12, 12, 3))
    recon = true + rng.normal(0, 20, true.shape)
    res = metrics.evaluate(recon, true)
    assert res["n_images"] == 3
    for k in ("pattern_correlation", "identification_correlation", "identification_euclidean",
              "ssim"):
        assert res[k].shape == (3,)
        assert res[f"{k}_mean"] == pytest.approx(float(np.mean(res[k])))
    np.testing.assert_allclose(res["pattern_correlation"], metrics.pattern_correlation(recon, true))
    assert res["identification_correlation_mean"] == 1.0
    assert 0 < res["ssim_mean"] < 1
    one = metrics.evaluate(recon[:1], true[:1], include_ssim=False)
    assert "ssim" not in one and np.isnan(one["identification_euclidean_mean"])
    with pytest.raises(ValueError, match="include_ssim=False"):
        metrics.evaluate(np.zeros((2, 4, 4, 3)), np.ones((2, 4, 4, 3)))
