"""What is minimised: target features, feature losses, image priors, the objective, and the
scaling of decoded features."""
from keras_icnn.objective import losses, priors, scaling, targets
from keras_icnn.objective.objective import Objective

__all__ = ["Objective", "losses", "priors", "scaling", "targets"]
