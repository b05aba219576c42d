"""Feature files -> named targets and their starts (``keras_icnn/cli/targets.py``)."""
import zlib

import numpy as np
import pytest

from keras_icnn import imaging, io
from keras_icnn.cli import targets
from keras_icnn.params import Pixels
from test_cli import feature_dir, true_features  # noqa: F401


def test_expand_features_orders_and_deduplicates(feature_dir):
    files = targets.expand_features([str(feature_dir / "c.h5"), str(feature_dir),
                                     str(feature_dir / "*.mat")])
    assert [f.rsplit("/", 1)[1] for f in files] == ["c.h5", "a.mat", "b.npz"]


def test_collect_targets_names_batch_entries(tmp_path, true_features):
    io.save_features(tmp_path / "one.npz", {k: v[:1] for k, v in true_features.items()})
    io.save_features(tmp_path / "many.npz", {k: v[:3] for k, v in true_features.items()})
    loaded = {str(tmp_path / n): io.load_features(tmp_path / n) for n in ("one.npz", "many.npz")}
    found = targets.collect_targets(list(loaded), loaded.__getitem__)
    assert [(t.name, t.index) for t in found] == [("one", None), ("many_0", 0), ("many_1", 1),
                                                  ("many_2", 2)]
    loader = targets.BatchLoader(loaded.__getitem__, list(true_features))
    batch = loader.batch(found[2:4])
    np.testing.assert_array_equal(batch["conv1_1"], true_features["conv1_1"][1:3])


def test_start_depends_on_the_seed_and_the_name_only():
    param = Pixels()
    param.build((8, 8, 3), None)
    rgb, key = targets.start(param, "random", "photo", 4)
    assert key == [4, zlib.crc32(b"photo")]
    expected = np.random.default_rng(key).integers(0, 256, (8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(rgb, expected)  # the start of keras-icnn 0.1, exactly
    assert not np.array_equal(rgb, targets.start(param, "random", "other", 4)[0])
    mean, _ = targets.start(param, "mean", "photo", 4)
    np.testing.assert_array_equal(imaging.rgb_to_caffe(mean[None], param.mean), 0)


@pytest.mark.parametrize("initial", ["zeros", "normal"])
def test_latent_start(initial):
    from conftest import tiny_generator
    from keras_icnn.params import Generator
    param = Generator(tiny_generator(), lower=0.0, upper=3.0)
    param.build((32, 32, 3), None)
    z, key = targets.start(param, initial, "x", 0)
    assert z.shape == (8,) and np.all((z >= 0) & (z <= 3))
    np.testing.assert_array_equal(z, param.initial(1, initial, key)[0])
    assert (initial == "zeros") == (not np.any(z))
