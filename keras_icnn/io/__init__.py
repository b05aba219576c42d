"""Files: feature files (.mat v5/v7.3, .npz, .h5), images, and the atomic writer."""
from keras_icnn.io.features import *  # noqa: F401,F403
from keras_icnn.io.features import __all__  # noqa: F401
