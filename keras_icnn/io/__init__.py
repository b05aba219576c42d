"""Files: feature files (.mat v5/v7.3, .npz, .h5), images, and the atomic writer."""
from keras_icnn.io.atomic import atomic_path
from keras_icnn.io.features import (DATA_FORMATS, FEATURE_EXTENSIONS, is_matlab_name,
                                    load_features, save_features, write_arrays)
from keras_icnn.io.images import as_size, load_image, resize_image, save_image
from keras_icnn.io.paths import check_existing_file, check_file_name, file_extension

__all__ = [
    "load_features",
    "save_features",
    "load_image",
    "save_image",
    "FEATURE_EXTENSIONS",
    "DATA_FORMATS",
    "atomic_path",
    "write_arrays",
    "is_matlab_name",
    "as_size",
    "resize_image",
    "check_file_name",
    "check_existing_file",
    "file_extension",
]
