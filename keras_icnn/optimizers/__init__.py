"""How the objective is minimised: step objects (momentum GD, any Keras optimiser, L-BFGS),
the step transforms they apply, and schedules."""
from keras_icnn.optimizers import jitter, schedules, transforms
from keras_icnn.optimizers.lbfgs import LBFGS, OPTIMIZERS, ScipyLBFGSB
from keras_icnn.optimizers.momentum_gd import MomentumGD, Optimizer, get, per_image_mean_abs
from keras_icnn.errors import NonFiniteLossError, ZeroGradientError

__all__ = ["Optimizer", "MomentumGD", "LBFGS", "ScipyLBFGSB", "OPTIMIZERS", "get",
           "per_image_mean_abs", "NonFiniteLossError", "ZeroGradientError", "jitter",
           "schedules", "transforms"]
