"""What is optimised: the image's pixels, or the input of a generator network."""
from keras_icnn.params.base import Param
from keras_icnn.params.generator import Generator, load_latent_bounds
from keras_icnn.params.pixels import Pixels, valid_pixel_range

__all__ = ["Param", "Pixels", "Generator", "valid_pixel_range", "load_latent_bounds"]
