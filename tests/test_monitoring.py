"""Monitoring a reconstruction: TensorBoard scalars and images (read back with TensorBoard's own
event reader), EarlyStopping on the loss, atomic snapshots."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from keras_icnn import Reconstructor, Snapshot
from keras_icnn.engine.callbacks import TensorBoardImages
from keras_icnn.imaging import normalise_img, to_uint8
from keras_icnn.models import extract_features

LAYERS = ["c1", "c2", "fc"]


def _accumulator(path):
    acc = EventAccumulator(os.fspath(path),
                           size_guidance={"tensors": 0, "images": 0, "scalars": 0})
    acc.Reload()
    return acc


def _scalar_series(acc, tag):
    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def _decoded(event):
    """The images of one TF2 image summary: string_val = [width, height, png, png, ...]."""
    vals = event.tensor_proto.string_val
    w, h = int(vals[0]), int(vals[1])
    imgs = [tf.io.decode_png(v).numpy() for v in vals[2:]]
    assert all(i.shape == (h, w, 3) for i in imgs)
    return imgs


@pytest.fixture
def batch(net, rgb_image):
    images = np.stack([rgb_image, rgb_image[::-1], rgb_image[:, ::-1]])
    return images, extract_features(net, images, LAYERS)


def test_tensorboard_scalars_and_images(net, batch, tmp_path):
    images, feats = batch
    logdir = tmp_path / "logs"
    rec = Reconstructor(net, seed=0, data_format="channels_last")
    tbi = TensorBoardImages(logdir, every=2, target_images=images, max_images=2)
    hist = rec.fit(feats, iterations=5, verbose=0,
                   callbacks=[keras.callbacks.TensorBoard(logdir), tbi])
    assert sorted(os.listdir(logdir)) == ["images", "train"]
    assert tbi.images_dir == os.path.join(os.fspath(logdir), "images")

    # scalars: Keras' callback, one value per iteration, equal to the History
    train = _accumulator(logdir / "train")
    tags = set(train.Tags()["tensors"])
    expected = {"epoch_loss", "epoch_learning_rate", "epoch_momentum"} | {
        f"epoch_{layer}_loss" for layer in LAYERS}
    assert expected <= tags, tags
    for key in ["loss", "learning_rate"] + [f"{layer}_loss" for layer in LAYERS]:
        series = _scalar_series(train, f"epoch_{key}")
        assert [s for s, _ in series] == [0, 1, 2, 3, 4]
        np.testing.assert_allclose([v for _, v in series], hist.history[key], rtol=1e-6)
    lr = [v for _, v in _scalar_series(train, "epoch_learning_rate")]
    assert lr[0] > lr[-1] > 0  # the schedule 2 -> 1e-10 is visible

    # images: their own run, plugin "images", steps = iterations done, the last always
    run = _accumulator(logdir / "images")
    assert set(run.Tags()["tensors"]) == {"reconstruction", "target"}
    for tag in ("reconstruction", "target"):
        assert run.SummaryMetadata(tag).plugin_data.plugin_name == "images"
    recon = run.Tensors("reconstruction")
    assert [e.step for e in recon] == [0, 2, 4, 5]
    last = _decoded(recon[-1])
    assert len(last) == 2  # max_images of the batch of 3
    for i in range(2):  # PNG is lossless: exactly the min-max normalised reconstruction
        np.testing.assert_array_equal(last[i], normalise_img(rec.images[i]))
    first = _decoded(recon[0])
    assert not np.array_equal(first[0], last[0])
    target = run.Tensors("target")
    assert [e.step for e in target] == [0]
    got = _decoded(target[0])
    assert len(got) == 2
    np.testing.assert_array_equal(got[1], normalise_img(images[1]))


def test_tensorboard_images_clip_and_repeated_fits(net, batch, tmp_path):
    images, feats = batch
    feats = {k: v[:1] for k, v in feats.items()}
    rec = Reconstructor(net, seed=0, data_format="channels_last")
    tbi = TensorBoardImages(tmp_path, every=10, normalize=None)
    rec.fit(feats, iterations=3, verbose=0, callbacks=[tbi])
    run = _accumulator(tmp_path / "images")
    assert run.Tags()["tensors"] == ["reconstruction"]  # no targets given
    events = run.Tensors("reconstruction")
    assert [e.step for e in events] == [0, 3]  # 'every' larger than the run: start and end
    np.testing.assert_array_equal(_decoded(events[-1])[0], to_uint8(rec.images[0]))
    rec.fit(feats, iterations=2, verbose=0, callbacks=[tbi])  # the callback can be reused
    assert [e.step for e in _accumulator(tmp_path / "images").Tensors("reconstruction")] == \
        [0, 3, 0, 2]


@pytest.mark.parametrize("kwargs, match", [
    ({"every": 0}, "every"), ({"every": 1.5}, "every"), ({"max_images": 0}, "max_images"),
    ({"normalize": "percentile"}, "normalize"), ({"target_images": np.zeros((4, 4))}, "target"),
    ({"subdir": ""}, "subdir"),
])
def test_tensorboard_images_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorBoardImages(tmp_path, **kwargs)
    with pytest.raises(ValueError, match="log_dir"):
        TensorBoardImages(None)


def test_early_stopping_on_the_loss(net, batch, tmp_path):
    _, feats = batch
    rec = Reconstructor(net, seed=0, data_format="channels_last")
    # no iteration lowers the loss by 1e30: after the first, 2 without improvement, stop
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e30, patience=2)
    tbi = TensorBoardImages(tmp_path, every=100)
    hist = rec.fit(feats, iterations=40, verbose=0, callbacks=[stop, tbi])
    assert rec.iterations_run == 3 and len(hist.history["loss"]) == 3
    assert stop.stopped_epoch == 2
    assert rec.loss_history_.shape == (3, 3)
    # the image of the iteration it stopped at is in TensorBoard
    steps = [e.step for e in _accumulator(tmp_path / "images").Tensors("reconstruction")]
    assert steps == [0, 3]

    # a layer's loss can be monitored too (Keras needs mode="min" for that name); a run that
    # improves is not stopped
    rec = Reconstructor(net, seed=0, data_format="channels_last")
    stop = keras.callbacks.EarlyStopping(monitor="c1_loss", mode="min", patience=50)
    hist = rec.fit(feats, iterations=6, verbose=0, callbacks=[stop])
    assert rec.iterations_run == 6 and stop.stopped_epoch == 0


def _temp_files(directory):
    return [f for f in os.listdir(directory) if f.startswith(".") or ".tmp" in f]


def test_snapshot_writes_atomically(net, batch, tmp_path, monkeypatch):
    _, feats = batch
    feats = {k: v[:2] for k, v in feats.items()}
    snap = tmp_path / "snap"
    replaced = []
    real_replace = os.replace

    def spy(src, dst, *a, **k):
        replaced.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", spy)
    rec = Reconstructor(net, seed=0, data_format="channels_last")
    rec.fit(feats, iterations=4, verbose=0, callbacks=[Snapshot(snap, every=2)])
    files = sorted(os.listdir(snap))
    assert files == ["00002_0.jpg", "00002_1.jpg", "00004_0.jpg", "00004_1.jpg",
                     "initial_img_0.png", "initial_img_1.png"]
    assert not _temp_files(snap)
    # every file was moved into place from a temporary file in the same directory
    assert sorted(os.path.basename(d) for _, d in replaced) == files
    for src, dst in replaced:
        assert os.path.dirname(src) == os.path.dirname(dst) and src != dst

    # a write that fails half-way leaves neither a partial image nor a temporary file
    before = (snap / "00002_0.jpg").read_bytes()
    from PIL import Image

    def broken_save(self, fp, *a, **k):
        with open(fp, "wb") as f:
            f.write(b"\xff\xd8 half a JPEG")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        rec.fit(feats, iterations=2, verbose=0,
                callbacks=[Snapshot(snap, every=2, save_initial=False)])
    assert sorted(os.listdir(snap)) == files and not _temp_files(snap)
    assert (snap / "00002_0.jpg").read_bytes() == before
