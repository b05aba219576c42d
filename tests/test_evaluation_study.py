"""Study evaluation (evaluation.study) on a small synthetic reconstruction tree: 2 subjects x
2 ROIs x 3 labels of 32x32 TIFFs, true JPEGs of another size (plus one true image that was not
reconstructed: a candidate of the identification, as in the cookbook)."""
import csv
import os

import numpy as np
import pytest
from PIL import Image

from keras_icnn.evaluation import study
from keras_icnn.evaluation.metrics import COOKBOOK_METRICS
from test_evaluation_reference import (SSIM_ATOL, cookbook_load, ref_identification,
                                       ref_pattern_correlation, ref_profile_correlation,
                                       ref_rmse, ref_ssim)

LABELS = ["n01", "n02", "n03"]
TRUE_LABELS = LABELS + ["n04"]
SUBJECTS, ROIS = ["S1", "S2"], ["V1", "VC"]


def write_tree(root, subjects=SUBJECTS, rois=ROIS, flat=False, seed=0):
    rng = np.random.default_rng(seed)
    true_dir = root / "true"
    true_dir.mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:40, 0:48]
    trues = {}
    for k, lab in enumerate(TRUE_LABELS):
        base = np.stack([np.sin(xx / (3 + k)), np.cos(yy / (4 + k)), np.sin((xx + yy) / 9)], -1)
        img = np.uint8(np.clip(128 + 90 * base + rng.normal(0, 20, base.shape), 0, 255))
        Image.fromarray(img).save(true_dir / f"{lab}.JPEG", quality=90)
        trues[lab] = np.asarray(Image.fromarray(img).resize((32, 32)), dtype=float)
    dirs = [root / "recon"] if flat else [root / "recon" / s / r for s in subjects for r in rois]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for lab in LABELS:
            noisy = trues[lab] + rng.normal(0, 50, trues[lab].shape)
            Image.fromarray(np.uint8(np.clip(noisy, 0, 255))).save(d / f"recon_image-{lab}.tiff")
    return root / "recon", true_dir


def expected_values(recon_dir, true_dir):
    """The cookbook's numbers for one reconstruction folder, computed here from the files."""
    true = np.stack([cookbook_load(true_dir / f"{lab}.JPEG", (32, 32)) for lab in TRUE_LABELS])
    recon = np.stack([cookbook_load(recon_dir / f"recon_image-{lab}.tiff") for lab in LABELS])
    own = true[[TRUE_LABELS.index(lab) for lab in LABELS]]
    return {
        "pixel pattern correlation": ref_pattern_correlation(recon, own),
        "pixel rmse": ref_rmse(recon, own),
        COOKBOOK_METRICS[3]: ref_identification(recon, true, "correlation", LABELS, TRUE_LABELS),
        COOKBOOK_METRICS[4]: ref_identification(recon, true, "euclidean", LABELS, TRUE_LABELS),
        "ssim": np.array([ref_ssim(recon[i], own[i]) for i in range(len(LABELS))]),
    }, ref_profile_correlation(recon, own)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_study_files_and_values(tmp_path):
    recon_dir, true_dir = write_tree(tmp_path)
    logged = []
    res = study.evaluate_study(recon_dir, true_dir, log=logged.append)
    assert res.evaluated == [(s, r) for s in SUBJECTS for r in ROIS] and res.skipped == []
    names = sorted(os.listdir(recon_dir))
    assert names == sorted(SUBJECTS + list(study.OUTPUT_NAMES.values()))
    for s in SUBJECTS:
        assert sorted(os.listdir(recon_dir / "quality_figures" / s)) == ["V1.png", "VC.png"]
        with Image.open(recon_dir / "quality_figures" / s / "V1.png") as im:
            assert im.format == "PNG"
    rows = read_rows(recon_dir / "quality.csv")
    assert list(rows[0]) == list(study.RESULT_COLUMNS) and len(rows) == 2 * 2 * 3 * 5
    with np.load(recon_dir / "quality_profile_correlation.npz") as z:
        keys = [tuple(k) for k in z["keys"]]
        profiles = {k: z[f"profile_{i}"] for i, k in enumerate(keys)}
    for s in SUBJECTS:
        for r in ROIS:
            exp, exp_profile = expected_values(recon_dir / s / r, true_dir)
            for metric, values in exp.items():
                got = {row["label"]: float(row["value"]) for row in rows
                       if (row["subject"], row["roi"], row["metric"]) == (s, r, metric)}
                atol = SSIM_ATOL if metric == "ssim" else 1e-10
                np.testing.assert_allclose([got[lab] for lab in LABELS], values, atol=atol,
                                           rtol=1e-10, err_msg=f"{s} {r} {metric}")
            np.testing.assert_allclose(profiles[(s, r)], exp_profile, rtol=1e-10, atol=1e-12)
    _check_summary(recon_dir, rows, profiles, res, logged)


def _check_summary(out_dir, rows, profiles, res, logged):
    summary = read_rows(out_dir / "quality_summary.csv")
    assert list(summary[0]) == list(study.SUMMARY_COLUMNS) and len(summary) == 4 * 6
    for row in summary:
        key = (row["subject"], row["roi"])
        if row["metric"] == "pixel profile correlation":
            v = profiles[key].ravel()
        else:
            v = np.array([float(x["value"]) for x in rows
                          if (x["subject"], x["roi"], x["metric"]) == (*key, row["metric"])])
        v = v[np.isfinite(v)]
        assert int(row["n"]) == len(v)
        np.testing.assert_allclose(float(row["mean"]), v.mean(), rtol=1e-12)
        np.testing.assert_allclose(float(row["sem"]), v.std(ddof=1) / np.sqrt(len(v)),
                                   rtol=1e-10)
    text = (out_dir / "quality_summary.txt").read_text(encoding="utf-8")
    assert text == res.table and text.startswith("# keras-icnn study evaluation summary")
    first = summary[0]
    assert f"{float(first['mean']):.4f} ± {float(first['sem']):.4f}" in text.splitlines()[4]
    assert logged[0] == "Subject: S1 - ROI: V1" and logged[-1] == text.rstrip("\n")


def test_study_skips_evaluated_pairs_unless_redo(tmp_path):
    recon_dir, true_dir = write_tree(tmp_path)
    study.evaluate_study(recon_dir, true_dir, log=None)
    before = (recon_dir / "quality.csv").read_bytes()
    fig = recon_dir / "quality_figures" / "S2" / "VC.png"
    fig.unlink()
    res = study.evaluate_study(recon_dir, true_dir, log=None)
    assert res.evaluated == [] and len(res.skipped) == 4
    assert (recon_dir / "quality.csv").read_bytes() == before and fig.exists()  # redrawn
    write_tree(tmp_path, subjects=["S1"], rois=["IT"])  # a new ROI: only that one
    res = study.evaluate_study(recon_dir, true_dir, log=None)
    assert res.evaluated == [("S1", "IT")] and len(res.skipped) == 4
    assert len(read_rows(recon_dir / "quality.csv")) == 5 * 15
    res = study.evaluate_study(recon_dir, true_dir, subjects=["S2"], rois=["V1"], redo=True,
                               log=None)
    assert res.evaluated == [("S2", "V1")]
    rows = read_rows(recon_dir / "quality.csv")
    assert len(rows) == 5 * 15 and sum(r["subject"] == "S2" and r["roi"] == "V1"
                                       for r in rows) == 15


def test_true_feature_reconstructions_in_another_output_dir(tmp_path):
    recon_dir, true_dir = write_tree(tmp_path, flat=True)
    out = tmp_path / "eval" / "run1"
    res = study.evaluate_study(recon_dir, true_dir, output_dir=out, figures=True, log=None)
    assert res.evaluated == [("", "")]
    assert (out / "quality_figures" / "reconstructions.png").exists()
    assert not (recon_dir / "quality.csv").exists()
    rows = read_rows(out / "quality.csv")
    assert {(r["subject"], r["roi"]) for r in rows} == {("", "")} and len(rows) == 15
    exp, _ = expected_values(recon_dir, true_dir)
    got = [float(r["value"]) for r in rows if r["metric"] == "pixel rmse"]
    np.testing.assert_allclose(got, exp["pixel rmse"], rtol=1e-10)
    assert "-        -    pixel rmse" in res.table


def test_study_bad_input(tmp_path):
    recon_dir, true_dir = write_tree(tmp_path)
    (true_dir / "n02.JPEG").rename(true_dir / "n02.jpg")
    with pytest.raises(ValueError, match=r"missing true image for label 'n02' .*n02\.JPEG"):
        study.evaluate_study(recon_dir, true_dir, log=None)
    assert not (recon_dir / "quality.csv").exists()  # checked before any work
    (true_dir / "n02.jpg").rename(true_dir / "n02.JPEG")
    with pytest.raises(ValueError, match="recon_dir: no reconstructions found"):
        study.evaluate_study(tmp_path / "true", true_dir, log=None)
    with pytest.raises(ValueError, match="subjects: no folder"):
        study.evaluate_study(recon_dir, true_dir, subjects=["S9"], log=None)
    with pytest.raises(ValueError, match="true_dir: no true images"):
        study.evaluate_study(recon_dir, recon_dir, log=None)
    with pytest.raises(ValueError, match="true_dir: .* is not a directory"):
        study.evaluate_study(recon_dir, tmp_path / "nope", log=None)
    one = tmp_path / "recon" / "S3" / "V1"
    one.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(one / "recon_image-n01.tiff")
    with pytest.raises(ValueError, match="needs at least 2 reconstructions"):
        study.evaluate_study(recon_dir, true_dir, subjects=["S3"], log=None)
    Image.fromarray(np.full((32, 32), np.nan, np.float32)).save(one / "recon_image-n03.tiff")
    with pytest.raises(ValueError, match=r"recon_image-n03\.tiff: the image (contains|holds) NaN"):
        study.evaluate_study(recon_dir, true_dir, subjects=["S3"], output_dir=tmp_path / "o",
                             log=None)


def test_study_never_replaces_files_it_did_not_write(tmp_path):
    recon_dir, true_dir = write_tree(tmp_path, subjects=["S1"], rois=["V1"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "quality.csv").write_text("my,own,table\n1,2,3\n")
    with pytest.raises(ValueError, match="not a keras-icnn results file.*overwrite=True"):
        study.evaluate_study(recon_dir, true_dir, output_dir=out, log=None)
    assert (out / "quality.csv").read_text() == "my,own,table\n1,2,3\n"
    (out / "quality.csv").unlink()
    (out / "quality_summary.txt").write_text("notes\n")
    with pytest.raises(ValueError, match="quality_summary.txt exists but there are no"):
        study.evaluate_study(recon_dir, true_dir, output_dir=out, log=None)
    study.evaluate_study(recon_dir, true_dir, output_dir=out, overwrite=True, log=None)
    assert (out / "quality_summary.txt").read_text().startswith("# keras-icnn")
    (out / "quality_summary.csv").write_text("mine\n")  # ours beside, but this one is not
    with pytest.raises(ValueError, match="quality_summary.csv was not written by keras-icnn"):
        study.evaluate_study(recon_dir, true_dir, output_dir=out, log=None)
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no temporary files left


def test_study_with_network_feature_columns(tmp_path, monkeypatch):
    import keras

    from keras_icnn.evaluation import feature_identification as fi

    def offline(**kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    tiny = keras.Model(inp, keras.layers.Conv2D(3, 5, strides=2, name="conv")(inp))
    recon_dir, true_dir = write_tree(tmp_path, subjects=["S1"], rois=["V1", "VC"])
    logged = []
    with pytest.warns(UserWarning, match="'inception' column is left out"):
        study.evaluate_study(recon_dir, true_dir, features=["alexnet2", "inception"],
                             models={"alexnet2": (tiny, "conv")}, figures=False,
                             log=logged.append)
    assert any("'inception' column is left out" in m for m in logged)
    rows = read_rows(recon_dir / "quality.csv")
    col = "identification accuracy by alexnet2 features"
    assert {r["metric"] for r in rows} == set(COOKBOOK_METRICS[1:]) | {col}
    true = np.stack([cookbook_load(true_dir / f"{lab}.JPEG", (32, 32)) for lab in TRUE_LABELS])
    recon = np.stack([cookbook_load(recon_dir / "S1" / "VC" / f"recon_image-{lab}.tiff")
                      for lab in LABELS])
    exp = fi.feature_identification(recon, true, fi.preset("alexnet2", tiny, "conv"),
                                    recon_labels=LABELS, true_labels=TRUE_LABELS)
    got = [float(r["value"]) for r in rows if r["metric"] == col and r["roi"] == "VC"]
    np.testing.assert_array_equal(got, exp)
    assert col in (recon_dir / "quality_summary.txt").read_text(encoding="utf-8")
