"""How the objective is minimised: step objects (momentum GD, any Keras optimiser, a
batched L-BFGS in TensorFlow, scipy's L-BFGS-B), the step transforms they apply, jitter, and
schedules."""
from keras_icnn.optimizers import jitter, schedules, transforms
from keras_icnn.optimizers.base import Optimizer, StepReport, per_image_mean_abs
from keras_icnn.optimizers.factory import NAMES, OPTIMIZERS, get
from keras_icnn.optimizers.keras_optimizer import KerasOptimizer
from keras_icnn.optimizers.lbfgs import LBFGS
from keras_icnn.optimizers.lbfgs_b import ScipyLBFGSB
from keras_icnn.optimizers.momentum_gd import MomentumGD

__all__ = ["Optimizer", "StepReport", "MomentumGD", "KerasOptimizer", "LBFGS", "ScipyLBFGSB",
           "NAMES", "OPTIMIZERS", "get", "per_image_mean_abs", "jitter", "schedules", "transforms"]
