"""Independent NumPy/SciPy transcriptions of the cookbook's metrics (bdpy ``evals/metrics.py``
and ``recon_eval_image.py``), written with plain loops, for the other evaluation tests; and
checks of the transcriptions themselves on hand-computed cases.

Written from the definitions, not from keras-icnn's code.
"""
import numpy as np
from PIL import Image
from scipy.signal import correlate2d

#: SSIM: keras-icnn computes in float32 (TensorFlow), these in float64.
SSIM_ATOL = 1e-5


def ref_corr(a, b):
    """Pearson correlation of two flattened arrays (NaN if one is constant), np.corrcoef."""
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.corrcoef(a, b)[0, 1]


def ref_pattern_correlation(recon, true):
    return np.array([ref_corr(recon[i], true[i]) for i in range(len(recon))])


def ref_profile_correlation(recon, true):
    """bdpy: per feature (pixel x channel), the correlation across the samples."""
    x = recon.reshape(len(recon), -1)
    y = true.reshape(len(true), -1)
    return np.array([ref_corr(x[:, j], y[:, j]) for j in range(x.shape[1])]).reshape(
        recon.shape[1:])


def ref_rmse(recon, true):
    return np.array([np.sqrt(np.mean((recon[i].astype(float) - true[i]) ** 2))
                     for i in range(len(recon))])


def ref_similarities(pred, true, metric):
    """``[N, M]``: Pearson r (``"correlation"``) or ``1 - euclidean distance``."""
    p = pred.reshape(len(pred), -1).astype(float)
    t = true.reshape(len(true), -1).astype(float)
    if metric == "correlation":
        return np.array([[ref_corr(a, b) for b in t] for a in p])
    return np.array([[1.0 - np.sqrt(np.sum((a - b) ** 2)) for b in t] for a in p])


def ref_identification(pred, true, metric, pred_labels=None, true_labels=None):
    """bdpy ``pairwise_identification(remove_nan=True, remove_nan_dist=True)``: for each
    prediction, similarity ``1 - distance`` with every candidate; NaN similarities dropped; the
    count of candidates strictly less similar than the own one over (kept candidates - 1).
    Where the own similarity is NaN or no other candidate is kept: NaN (keras-icnn's choice;
    bdpy divides 0 by -1 or 0 there)."""
    sim = ref_similarities(pred, true, metric)
    out = []
    for i in range(len(pred)):
        k = i if pred_labels is None else list(true_labels).index(pred_labels[i])
        sims = sim[i]
        d = sims - sims[k]
        d = d[~np.isnan(d)]
        out.append(np.nan if np.isnan(sims[k]) or len(d) < 2 else np.sum(d < 0) / (len(d) - 1))
    return np.array(out)


def ref_ssim(x, y, data_range=255.0):
    """SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
    population (co)variances, over the windows inside the image, averaged over positions and
    channels; float64, one image pair ``[H, W, C]``."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    w = np.outer(g, g)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    maps = []
    for c in range(x.shape[-1]):
        a, b = x[..., c].astype(float), y[..., c].astype(float)
        f = lambda z: correlate2d(z, w, mode="valid")  # noqa: E731
        ma, mb = f(a), f(b)
        va, vb, cov = f(a * a) - ma ** 2, f(b * b) - mb ** 2, f(a * b) - ma * mb
        maps.append(((2 * ma * mb + c1) * (2 * cov + c2))
                    / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(maps))


def cookbook_load(path, size=None):
    """The cookbook's image reading: ``np.array(Image.open(f).convert("RGB").resize(size))``
    (Pillow's default resampling for ``resize`` is bicubic); ``size`` is (width, height)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            im = im.resize(size, Image.Resampling.BICUBIC)
        return np.array(im).astype(float)


# ---- the transcriptions on cases worked out by hand -------------------------------------------

def test_reference_identification_by_hand():
    true = np.array([[0.0, 1, 2], [2, 1, 0], [0, 2, 1], [0, 2, 1]])
    pred = np.array([[0.0, 1, 2.5], [0, 2, 1], [5, 5, 5]])
    got = ref_identification(pred, true, "correlation")
    # pred 0 is most like true 0: the three others are less similar
    # pred 1 equals true 2 and 3: its own (true 1) is beaten by 0, 2 and 3 -> 0; pred 2 constant
    assert got[0] == 1.0 and got[1] == 0.0 and np.isnan(got[2])
    # a tie (true 2 and 3 identical) counts as a failure: pred 2' = true 2, own true 2
    got = ref_identification(np.array([[0.0, 2, 1]]), true, "correlation", ["c"],
                             ["a", "b", "c", "d"])
    assert got[0] == 2 / 3
    # a NaN candidate (constant) is left out of both counts
    t2 = np.vstack([true[:3], np.ones(3)])
    assert ref_identification(pred[:1], t2, "correlation", [0], [0, 1, 2, 3])[0] == 1.0


def test_reference_ssim_and_profile_by_hand():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 16, 3))
    assert abs(ref_ssim(x, x) - 1.0) < 1e-12
    a = np.arange(12.0).reshape(3, 2, 2)[..., None]
    prof = ref_profile_correlation(a, 2 * a + 1)
    assert prof.shape == (2, 2, 1) and np.allclose(prof, 1.0)
    assert ref_rmse(np.zeros((1, 2, 2, 1)), np.full((1, 2, 2, 1), 3.0))[0] == 3.0
