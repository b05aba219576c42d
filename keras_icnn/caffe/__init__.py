"""Caffe support for keras-icnn: read prototxt/caffemodel files without Caffe.

* :func:`read_prototxt`, :func:`read_caffemodel` -- parse files (V2 ``layer``
  and legacy V1 ``layers`` networks) into NetParameter messages.
* :func:`build_model` -- a Keras (channels-last) model from a prototxt, with
  Keras layer names equal to the Caffe layer names.
* :func:`load_caffe_weights` -- copy ``.caffemodel`` weights into a Keras
  model by layer name (layout conversion included).
* :func:`convert_caffe` -- prototxt + caffemodel -> ``.weights.h5`` plus a
  JSON manifest (``keras-icnn convert-caffe`` on the command line).
* :func:`fetch_vgg19_caffemodel`, :func:`fetch_deepsim_fc7_caffemodel` --
  download the published Caffe models into the Keras cache.

Errors caused by the files raise :class:`CaffeFormatError` (a ValueError);
unsupported layers raise its subclass :class:`UnsupportedLayerError`.
"""

from keras_icnn.caffe.reader import (
    CaffeFormatError,
    CaffeLayer,
    LayerWeights,
    UnsupportedLayerError,
    blob_shape,
    blob_to_array,
    caffemodel_weights,
    net_inputs,
    net_layers,
    parse_caffemodel,
    parse_prototxt,
    read_caffemodel,
    read_prototxt,
)
from keras_icnn.caffe.builder import SUPPORTED_LAYER_TYPES, build_model
from keras_icnn.caffe.weights import flatten_source_shape, load_caffe_weights
from keras_icnn.caffe.convert import (
    add_convert_parser,
    convert_caffe,
    main_convert,
    manifest_path,
    save_converted_weights,
)
from keras_icnn.caffe.download import (
    DEEPSIM_URL,
    VGG19_CAFFEMODEL_URL,
    fetch_deepsim_fc7_caffemodel,
    fetch_vgg19_caffemodel,
)

__all__ = [
    "CaffeFormatError",
    "CaffeLayer",
    "DEEPSIM_URL",
    "LayerWeights",
    "SUPPORTED_LAYER_TYPES",
    "UnsupportedLayerError",
    "VGG19_CAFFEMODEL_URL",
    "add_convert_parser",
    "blob_shape",
    "blob_to_array",
    "build_model",
    "caffemodel_weights",
    "convert_caffe",
    "fetch_deepsim_fc7_caffemodel",
    "fetch_vgg19_caffemodel",
    "flatten_source_shape",
    "load_caffe_weights",
    "main_convert",
    "manifest_path",
    "net_inputs",
    "net_layers",
    "parse_caffemodel",
    "parse_prototxt",
    "read_caffemodel",
    "read_prototxt",
    "save_converted_weights",
]
