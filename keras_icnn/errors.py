"""The package's exceptions, in one place.

Every error a user can meet is a ``ValueError`` (bad input: it names the argument or file and
what was expected), a ``FloatingPointError`` (a run that diverged) or a ``RuntimeError``
(something outside the user's input, such as weights that cannot be downloaded).  This module
imports nothing, so any part of the package (``caffe/`` included) may raise these.
"""
from __future__ import annotations

__all__ = ["NonFiniteLossError", "ZeroGradientError", "WeightsUnavailableError",
           "FileFormatError", "CaffeFormatError", "UnsupportedLayerError"]


class NonFiniteLossError(FloatingPointError):
    """The loss or the parameter became NaN/Inf; the last finite point is kept."""

    def __init__(self, iteration, what="loss"):
        super().__init__(f"the {what} became NaN or Inf at iteration {iteration}; the run was "
                         "stopped and the last finite image kept (Reconstructor.images; error.result "
                         "for the icnn_* functions). Lower the learning rate, or "
                         "check the targets' scale)")
        self.iteration = iteration


class ZeroGradientError(ValueError):
    """The gradient of the objective is exactly zero at the initial point."""

    def __init__(self, images):
        self.images = list(images)
        which = f"image {self.images[0]}" if len(self.images) == 1 else f"images {self.images}"
        super().__init__(
            f"the gradient at the initial point is zero for {which} while the loss is not: "
            "the optimiser would not move and return the untouched start (L-BFGS reports "
            "convergence after zero iterations). This happens e.g. with an all-zero (mean) "
            "start image in front of ReLUs; start from random noise (initial=None / 'random') "
            "or another image instead")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be fetched (no network, no cached copy)."""


class FileFormatError(ValueError):
    """A data file (features, image, numbers) is damaged, truncated or holds the wrong kind of
    data; the message names the file and says what was expected."""


class CaffeFormatError(ValueError):
    """A Caffe file is malformed, truncated or disagrees with the model."""


class UnsupportedLayerError(CaffeFormatError):
    """A Caffe layer (type or option) that keras-icnn cannot translate."""
