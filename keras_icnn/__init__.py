"""keras-icnn: reconstruct images from CNN features (inverting CNNs) with TensorFlow/Keras."""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from . import (imaging, io, losses, metrics, models, params, plots, priors, scaling,  # noqa: E402
               schedules, targets)
from .callbacks import PrintLoss, ProgressBar, Snapshot, TensorBoardImages  # noqa: E402
from .models import expose_preactivations, feature_extractor, get_cnn_features, vgg19  # noqa: E402
from .lbfgs import LBFGS, ScipyLBFGSB  # noqa: E402
from .optimizers import MomentumGD, NonFiniteLossError, ZeroGradientError  # noqa: E402
from .params import Generator, Pixels  # noqa: E402
from .reconstructor import Reconstructor  # noqa: E402
from .schedules import Constant, Linear  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Reconstructor", "MomentumGD", "LBFGS", "ScipyLBFGSB", "ZeroGradientError",
           "TensorBoardImages", "Pixels", "Generator", "vgg19", "expose_preactivations",
           "feature_extractor", "get_cnn_features", "Linear", "Constant", "ProgressBar",
           "PrintLoss", "Snapshot", "NonFiniteLossError", "imaging", "io", "losses", "metrics",
           "models", "params", "plots", "priors", "scaling", "schedules", "targets"]
