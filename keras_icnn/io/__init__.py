"""Files: feature files (.mat v5/v7.3, .npz, .h5), images, the atomic writer, and the lab's
data trees (bdpy feature trees, the cookbook's reconstruction outputs and scaling files)."""
from keras_icnn.io.atomic import atomic_path
from keras_icnn.io.feature_trees import (DECODED_LAYOUTS, DecodedFeatureTree, FeatureTree,
                                         stored_shape)
from keras_icnn.io.features import (DATA_FORMATS, FEATURE_EXTENSIONS, is_matlab_name,
                                    load_features, save_features, write_arrays)
from keras_icnn.io.images import as_size, load_image, resize_image, save_image
from keras_icnn.io.paths import check_existing_file, check_file_name, file_extension
from keras_icnn.io.recon_outputs import (RECON_EXT, RECON_PREFIX, display_image,
                                         recon_output_dir, recon_output_paths,
                                         recon_outputs_exist, save_recon_outputs)
from keras_icnn.io.scaling_files import (load_reference_std, load_train_mean, std_file_ddof,
                                         train_mean_path)

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
    "FeatureTree",
    "DecodedFeatureTree",
    "DECODED_LAYOUTS",
    "stored_shape",
    "RECON_PREFIX",
    "RECON_EXT",
    "recon_output_dir",
    "recon_output_paths",
    "recon_outputs_exist",
    "display_image",
    "save_recon_outputs",
    "load_reference_std",
    "std_file_ddof",
    "train_mean_path",
    "load_train_mean",
]
