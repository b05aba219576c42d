"""jit_compile="auto" (keras_icnn.optimizers.xla): validation, resolution per device type, and
optimiser configs keeping "auto" (portable) while a run uses the resolved value."""
import pytest

from keras_icnn.optimizers import KerasOptimizer, MomentumGD, ScipyLBFGSB, xla


def test_resolve_values(monkeypatch):
    assert xla.resolve(True) is True and xla.resolve(False) is False
    monkeypatch.setitem(xla.XLA_DEFAULT, xla.device_type(), True)
    assert xla.resolve("auto") is True
    monkeypatch.setitem(xla.XLA_DEFAULT, xla.device_type(), False)
    assert xla.resolve("auto") is False


def test_device_type_is_known():
    assert xla.device_type() in xla.XLA_DEFAULT


@pytest.mark.parametrize("bad", ["yes", "AUTO", 2, None, 0.5, [True]])
def test_bad_values(bad):
    with pytest.raises(ValueError, match="jit_compile: expected True, False or 'auto'"):
        xla.check(bad)
    with pytest.raises(ValueError, match="jit_compile"):
        MomentumGD(jit_compile=bad)


@pytest.mark.parametrize("cls", [MomentumGD, ScipyLBFGSB])
def test_auto_is_the_default_and_round_trips(cls):
    opt = cls()
    assert opt.jit_compile == "auto" and opt.get_config()["jit_compile"] == "auto"
    assert cls.from_config(opt.get_config()).get_config() == opt.get_config()
    fixed = cls(jit_compile=True)
    assert cls.from_config(fixed.get_config()).jit_compile is True


def test_keras_optimizer_auto():
    import keras
    opt = KerasOptimizer(keras.optimizers.Adam())
    assert opt.get_config()["jit_compile"] == "auto"


def test_run_records_the_resolved_value(net, monkeypatch):
    import numpy as np
    from keras_icnn import Reconstructor
    from keras_icnn.models import extract_features
    monkeypatch.setitem(xla.XLA_DEFAULT, xla.device_type(), False)
    feats = extract_features(net, np.full((32, 32, 3), 100.0), ["c1"])
    rec = Reconstructor(net, seed=0)
    rec.fit(feats, iterations=2, verbose=0)
    assert rec.optimizer.jit_compiled_ is False
