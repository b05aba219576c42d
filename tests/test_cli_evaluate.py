"""``keras-icnn evaluate``: the study evaluation through the command line."""
import csv

import numpy as np

from keras_icnn.cli import main

from test_evaluation_study import SUBJECTS, ROIS, LABELS, expected_values, read_rows, write_tree


def test_evaluate_writes_the_tables_and_skips_what_is_done(tmp_path, capsys):
    recon, true = write_tree(tmp_path)
    assert main(["evaluate", str(recon), "--true-images", str(true), "--no-figures"]) == 0
    rows = read_rows(recon / "quality.csv")
    assert {(r["subject"], r["roi"]) for r in rows} == {(s, r) for s in SUBJECTS for r in ROIS}
    values, _ = expected_values(recon / "S1" / "V1", true)
    got = [float(r["value"]) for r in rows if (r["subject"], r["roi"], r["metric"]) ==
           ("S1", "V1", "pixel pattern correlation")]
    np.testing.assert_allclose(got, values["pixel pattern correlation"], rtol=1e-9)
    with open(recon / "quality_summary.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) > 0
    assert "4 subject x ROI pair(s) evaluated" in capsys.readouterr().out
    assert main(["evaluate", str(recon), "--true-images", str(true), "--no-figures"]) == 0
    assert "0 subject x ROI pair(s) evaluated, 4 skipped" in capsys.readouterr().out
    assert len(got) == len(LABELS)


def test_evaluate_bad_input_is_one_line(tmp_path, capsys):
    recon, true = write_tree(tmp_path)
    (true / "n01.JPEG").unlink()
    assert main(["evaluate", str(recon), "--true-images", str(true)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-icnn evaluate: error:") and "n01" in err
    assert len(err.splitlines()) == 1
    assert main(["evaluate", str(tmp_path / "nowhere"), "--true-images", str(true)]) == 2


def test_evaluate_with_alexnet_columns(tmp_path, capsys):
    import keras

    from keras_icnn.models import build
    recon, true = write_tree(tmp_path, subjects=["S1"], rois=["V1"])
    keras.utils.set_random_seed(0)
    weights = str(tmp_path / "alexnet.weights.h5")
    build("alexnet", include_top=False).save_weights(weights)
    assert main(["evaluate", str(recon), "--true-images", str(true), "--no-figures",
                 "--features", "alexnet2,alexnet5", "--alexnet-weights", weights]) == 0
    metrics = {r["metric"] for r in read_rows(recon / "quality.csv")}
    assert {"identification accuracy by alexnet2 features",
            "identification accuracy by alexnet5 features"} <= metrics
