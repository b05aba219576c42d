"""keras-icnn: reconstruct images from CNN features (inverting CNNs) with TensorFlow/Keras."""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_icnn import config, imaging, io, models, params, presets  # noqa: E402
from keras_icnn.engine import callbacks  # noqa: E402
from keras_icnn.engine.callbacks import (PrintLoss, ProgressBar, Snapshot,  # noqa: E402
                                         TensorBoardImages)
from keras_icnn.engine.checkpoint import BackupAndRestore  # noqa: E402
from keras_icnn.engine.reconstructor import Reconstructor  # noqa: E402
from keras_icnn.errors import NonFiniteLossError, ZeroGradientError  # noqa: E402
from keras_icnn.evaluation import metrics, plots  # noqa: E402
from keras_icnn.models import (expose_preactivations, feature_extractor,  # noqa: E402
                               generators, get_cnn_features, vgg19)
from keras_icnn.objective import losses, priors, scaling, targets  # noqa: E402
from keras_icnn.optimizers import (LBFGS, KerasOptimizer, MomentumGD, ScipyLBFGSB,  # noqa: E402
                                   schedules, transforms)
from keras_icnn.optimizers.jitter import Jitter  # noqa: E402
from keras_icnn.optimizers.schedules import Constant, Linear  # noqa: E402
from keras_icnn.params import Generator, Pixels  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Reconstructor", "BackupAndRestore", "KerasOptimizer", "presets", "MomentumGD", "LBFGS", "ScipyLBFGSB", "ZeroGradientError",
           "TensorBoardImages", "Pixels", "Generator", "Jitter", "vgg19",
           "expose_preactivations", "feature_extractor", "get_cnn_features", "Linear",
           "Constant", "ProgressBar", "PrintLoss", "Snapshot", "NonFiniteLossError",
           "callbacks", "generators", "imaging", "io", "losses", "metrics", "models", "params",
           "plots", "priors", "scaling", "schedules", "targets", "transforms"]
