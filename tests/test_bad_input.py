"""Bad input at the API surface: a clear ValueError naming the argument, never an error from
deep inside NumPy/Keras/TensorFlow/h5py, never a silently wrong image (issue: nothing silent)."""
import keras
import numpy as np
import pytest

import keras_icnn as ki
from keras_icnn import icnn_gd
from keras_icnn.models import extract_features, generators

from conftest import tiny_cnn, tiny_generator

LAYERS = ["c1", "fc"]


@pytest.fixture(scope="module")
def case():
    net = tiny_cnn()
    rgb = np.random.default_rng(5).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    return net, extract_features(net, rgb, LAYERS)


def fit(case, rec_kwargs=None, **fit_kwargs):
    net, feats = case
    feats = fit_kwargs.pop("features", feats)
    rec = ki.Reconstructor(net, **(rec_kwargs or {}))
    return rec.fit(feats, **{"iterations": 1, "verbose": 0, **fit_kwargs})


@pytest.mark.parametrize("rec_kwargs, fit_kwargs, match", [
    (dict(seed="abc"), {}, "seed: expected None or a non-negative integer"),
    (dict(seed=-1), {}, "seed: expected None or a non-negative integer"),
    (dict(seed=1.5), {}, "seed"),
    ({}, dict(callbacks="x"), "callbacks: expected keras.callbacks.Callback"),
    ({}, dict(callbacks=[keras.callbacks.History(), 3]), "callbacks"),
    ({}, dict(iterations=10 ** 20), "iterations: expected at most"),
    ({}, dict(initial=np.full((32, 32, 3), "a")), "initial: expected an array of real numbers"),
    ({}, dict(initial=np.ones((32, 32, 3), complex)), "initial: expected an array of real"),
    (dict(loss=lambda f: f), {}, r"loss: a custom loss must take \(feat, target, mask\)"),
    (dict(loss={"c1": lambda a, b: a}), {}, "custom loss"),
    (dict(mask={"fc": -np.ones(10)}), {}, r"mask\['fc'\]: contains negative values"),
])
def test_clear_errors(case, rec_kwargs, fit_kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(case, rec_kwargs, **fit_kwargs)


def test_a_batch_of_no_targets(case):
    _, feats = case
    with pytest.raises(ValueError, match="a batch of 0 targets"):
        fit(case, features={k: v[:0] for k, v in feats.items()})


def test_an_unbuilt_sequential_encoder():
    with pytest.raises(ValueError, match="encoder: the model 'seq' has no input shape yet"):
        ki.Reconstructor(keras.Sequential([keras.layers.Conv2D(3, 3)], name="seq"))


def test_nan_pixel_bounds_are_refused_up_front():
    with pytest.raises(ValueError, match="NaN"):
        ki.Pixels(bounds=(np.nan, 1.0))


def test_generator_initial_must_be_real(case):
    net, feats = case
    rec = ki.Reconstructor(net, param=ki.Generator(tiny_generator(), lower=0, upper=3))
    with pytest.raises(ValueError, match="initial: expected an array of real numbers"):
        rec.fit(feats, iterations=1, verbose=0, initial=np.full(8, "x"))


def test_a_corrupt_generator_weights_file(tmp_path):
    bad = tmp_path / "gen.weights.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(ValueError, match="could not load .*gen.weights.h5.* generator"):
        generators.deepsim_fc7(weights=str(bad))
    with pytest.raises(FileNotFoundError, match="no such file"):
        generators.deepsim_fc7(weights=str(tmp_path / "missing.weights.h5"))


# -- the original functions keep what was computed ---------------------------------------------


def test_divergence_keeps_the_partial_result(case):
    net, feats = case
    with pytest.raises(ki.NonFiniteLossError) as e:
        icnn_gd.reconstruct_image(feats, net, iter_n=50, lr_start=1e30, lr_end=1e30,
                                  disp_every=0, data_format="channels_last", seed=0)
    img, loss = e.value.result
    assert img.shape == (32, 32, 3) and np.all(np.isfinite(img))
    assert len(loss) == e.value.iteration - 1 and "error.result" in str(e.value)


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_partial_result(case):
    net, feats = case
    with pytest.raises(KeyboardInterrupt) as e:
        icnn_gd.reconstruct_image(feats, net, iter_n=20, disp_every=0, seed=0,
                                  data_format="channels_last", callbacks=[Interrupt()])
    img, loss = e.value.result
    assert img.shape == (32, 32, 3) and loss.shape == (3,)  # iterations 1-3 were done


@pytest.mark.parametrize("make", [
    lambda d: ki.Snapshot(d), lambda d: ki.TensorBoardImages(d),
    lambda d: ki.BackupAndRestore(d)])
def test_output_directories_are_checked_before_any_work(tmp_path, make):
    afile = tmp_path / "a_file"
    afile.write_text("mine")
    with pytest.raises(ValueError, match="is not a directory|is a file"):
        make(str(afile))
    with pytest.raises(ValueError, match="is a file"):
        make(str(afile / "sub"))
    assert afile.read_text() == "mine"


def test_an_unwritable_output_directory(tmp_path, monkeypatch):
    """(Root may write anywhere, so the permission answer is simulated.)"""
    from keras_icnn.io import paths
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match="cannot be written .no permission in"):
        ki.Snapshot(str(tmp_path / "snaps"))
