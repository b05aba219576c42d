"""The cookbook's metrics (metrics.profile_correlation, rmse, identification_accuracy,
pairwise_identification with labels, ssim, cookbook_metrics) against the independent NumPy
transcriptions of test_evaluation_reference."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keras_icnn.evaluation import metrics
from test_evaluation_reference import (SSIM_ATOL, ref_identification, ref_pattern_correlation,
                                       ref_similarities,
                                       ref_profile_correlation, ref_rmse, ref_ssim)


def _images(n, h=16, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3)).astype(float)


def test_profile_correlation_and_rmse_match_the_transcriptions():
    true = _images(5)
    recon = np.clip(true + np.random.default_rng(1).normal(0, 40, true.shape), 0, 255)
    recon[:, 0, 0, 0] = 7.0  # a pixel constant across the reconstructions: NaN
    prof = metrics.profile_correlation(recon, true)
    exp = ref_profile_correlation(recon, true)
    assert prof.shape == (16, 16, 3) and np.isnan(prof[0, 0, 0])
    np.testing.assert_allclose(prof, exp, rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(metrics.rmse(recon, true), ref_rmse(recon, true), rtol=1e-12)
    np.testing.assert_allclose(metrics.pattern_correlation(recon, true),
                               ref_pattern_correlation(recon, true), rtol=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.profile_correlation(recon[:1], true[:1])


def test_identification_ties_and_nan_as_bdpy():
    true = _images(4, 4, 4)
    true[3] = true[2]  # two identical candidates: a tie for reconstructions of either
    true_nan = true.copy()
    true_nan[1] = 9.0  # a constant candidate: undefined correlation, left out
    recon = true + np.random.default_rng(2).normal(0, 5, true.shape)
    for t in (true, true_nan):
        for metric in ("correlation", "euclidean"):
            got = metrics.pairwise_identification(recon, t, metric=metric)
            np.testing.assert_array_equal(got, ref_identification(recon, t, metric),
                                          err_msg=metric)
    got = metrics.pairwise_identification(true, true)
    assert got[2] == got[3] == 2 / 3  # the tie counts as a failure
    got = metrics.pairwise_identification(recon, true_nan)
    assert np.isnan(got[1]) and got[0] == 1.0  # 2 of 2 comparable candidates
    # a constant reconstruction: NaN
    assert np.isnan(metrics.identification_accuracy(np.ones((2, 5)), np.eye(2, 5))[0])


def test_identification_with_labels_compares_with_all_candidates():
    true = _images(5, 4, 4, seed=3)
    labels = ["a", "b", "c", "d", "e"]
    recon = true[[3, 1, 1]] + np.random.default_rng(4).normal(0, 60, (3, 4, 4, 3))
    rl = ["d", "b", "b"]  # single-trial style: repeated labels, a subset of the candidates
    for metric in ("correlation", "euclidean"):
        got = metrics.pairwise_identification(recon, true, metric, recon_labels=rl,
                                              true_labels=labels)
        np.testing.assert_array_equal(got, ref_identification(recon, true, metric, rl, labels))
    with pytest.raises(ValueError, match="no true sample for pred label"):
        metrics.pairwise_identification(recon, true, recon_labels=["x", "b", "b"],
                                        true_labels=labels)
    with pytest.raises(ValueError, match="more than once"):
        metrics.pairwise_identification(recon, true, recon_labels=rl, true_labels=["a"] * 5)
    with pytest.raises(ValueError, match="one per sample"):
        metrics.pairwise_identification(recon, true, recon_labels=rl[:2], true_labels=labels)
    with pytest.raises(ValueError, match="both or neither"):
        metrics.identification_accuracy(recon, true, pred_labels=rl)
    with pytest.raises(ValueError, match="same number of samples"):
        metrics.identification_accuracy(recon, true)


_rows = st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=3, max_size=3)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(pool=st.lists(_rows, min_size=2, max_size=4), picks=st.lists(st.integers(0, 4),
       min_size=2, max_size=5), preds=st.lists(_rows, min_size=1, max_size=4),
       metric=st.sampled_from(["correlation", "euclidean"]))
def test_identification_property(pool, picks, preds, metric):
    """Candidates drawn (with repeats: exact ties) from a pool that includes a constant row (NaN
    correlations); any predictions, each with a random own candidate.  Examples where two
    *different* candidates are equally similar mathematically (e.g. r = -0.5 twice) are left
    out: there the last bit of the floating-point computation decides, and np.corrcoef (the
    transcription) and scipy's cdist (bdpy, keras-icnn) may round differently."""
    pool = np.array(pool + [[1.0, 1.0, 1.0]])
    true = pool[[k % len(pool) for k in picks]]
    pred = np.array(preds)
    tl = [str(k) for k in range(len(true))]
    pl = [str(k % len(true)) for k in range(len(pred))]
    sim = ref_similarities(pred, true, metric)
    same = (true[:, None, :] == true[None, :, :]).all(-1)
    for i in range(len(pred)):
        d = np.abs(sim[i][:, None] - sim[i][None, :])
        assume(not np.any((d < 1e-9) & ~same))
    got = metrics.identification_accuracy(pred, true, metric, pl, tl)
    np.testing.assert_array_equal(got, ref_identification(pred, true, metric, pl, tl))


def test_ssim_matches_a_scipy_gaussian_ssim():
    true = _images(3, 24, 20, seed=5)
    recon = np.clip(true + np.random.default_rng(6).normal(0, 30, true.shape), 0, 255)
    smooth = np.cumsum(np.cumsum(_images(1, 24, 20, seed=7), 1), 2)
    smooth = 255 * smooth / smooth.max()
    recon = np.concatenate([recon, smooth + 3])
    true = np.concatenate([true, smooth])
    got = metrics.ssim(recon, true)
    exp = [ref_ssim(recon[i], true[i]) for i in range(4)]
    np.testing.assert_allclose(got, exp, atol=SSIM_ATOL, rtol=0)


def test_cookbook_metrics_table():
    true = _images(4, seed=8)
    recon = np.clip(true[[2, 0]] + np.random.default_rng(9).normal(0, 50, (2, 16, 16, 3)),
                    0, 255)
    labels, rl = ["w", "x", "y", "z"], ["y", "w"]
    res = metrics.cookbook_metrics(recon, true, rl, labels)
    assert tuple(res) == metrics.COOKBOOK_METRICS
    own = true[[2, 0]]
    assert res["pixel profile correlation"].shape == (16, 16, 3)
    np.testing.assert_allclose(res["pixel profile correlation"],
                               ref_profile_correlation(recon, own), rtol=1e-10)
    np.testing.assert_allclose(res["pixel pattern correlation"],
                               ref_pattern_correlation(recon, own), rtol=1e-10)
    np.testing.assert_allclose(res["pixel rmse"], ref_rmse(recon, own), rtol=1e-12)
    np.testing.assert_array_equal(res["identification accuracy by pixel pattern correlation"],
                                  ref_identification(recon, true, "correlation", rl, labels))
    np.testing.assert_array_equal(res["identification accuracy by pixel euclidean distance"],
                                  ref_identification(recon, true, "euclidean", rl, labels))
    np.testing.assert_allclose(res["ssim"], [ref_ssim(recon[i], own[i]) for i in range(2)],
                               atol=SSIM_ATOL)
    # without labels: image i with image i
    res2 = metrics.cookbook_metrics(true[:2], true[:2])
    np.testing.assert_array_equal(res2["pixel rmse"], [0.0, 0.0])


def test_cookbook_metrics_bad_input():
    true = _images(3)
    with pytest.raises(ValueError, match="at least 2 reconstructions"):
        metrics.cookbook_metrics(true[:1], true[:1])
    bad = true.copy()
    bad[1, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="recon: contains NaN"):
        metrics.cookbook_metrics(bad, true)
    with pytest.raises(ValueError, match="true: contains NaN"):
        metrics.pairwise_identification(true, bad)
    with pytest.raises(ValueError, match="at least 2 image pairs"):
        metrics.pairwise_identification(true[:1], true[:1])
    with pytest.raises(ValueError, match="pred: contains NaN"):
        metrics.identification_accuracy(np.full((2, 3), np.nan), np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least 2 candidate"):
        metrics.identification_accuracy(np.ones((1, 3)), np.ones((1, 3)))
