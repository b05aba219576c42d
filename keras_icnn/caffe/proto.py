"""The subset of Caffe's ``caffe.proto`` schema that keras-icnn reads.

Caffe describes networks (``.prototxt``, protobuf text format) and trained
weights (``.caffemodel``, protobuf binary format) with the messages of
``src/caffe/proto/caffe.proto`` (package ``caffe``).  Depending on Caffe or on
``protoc`` at install time is not an option, so this module declares the
messages we need directly as a ``FileDescriptorProto`` and lets the
``protobuf`` runtime generate the message classes.

Only a subset of the fields is declared, but every declared field uses the
exact field number, type and default of the upstream schema (BVLC/caffe,
``src/caffe/proto/caffe.proto``), so real files parse unchanged:

* Binary parsing keeps undeclared fields as unknown fields (they are simply
  ignored), so any ``.caffemodel`` written by Caffe or one of its forks loads.
* Text parsing (see :mod:`keras_icnn.caffe.reader`) is done with
  ``allow_unknown_field=True`` so that layer parameters we do not model
  (``transform_param``, ``data_param``, ...) are skipped.

Both network encodings are declared: the current ``layer`` field (number 100,
:class:`LayerParameter`, string ``type``) and the legacy ``layers`` field
(number 2, ``V1LayerParameter``, enum ``type``), used e.g. by the Oxford
VGG19 release.

The classes live in a private :class:`~google.protobuf.descriptor_pool.
DescriptorPool`, so they never clash with a real ``caffe_pb2`` module that a
user may have imported in the same interpreter.

Public names: :data:`NetParameter`, :data:`LayerParameter`,
:data:`V1LayerParameter`, :data:`BlobProto`, :data:`BlobShape` and
:func:`message_class` for any other declared message (e.g.
``message_class("ConvolutionParameter")``).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

__all__ = [
    "BlobProto",
    "BlobShape",
    "LayerParameter",
    "NetParameter",
    "V1LayerParameter",
    "V1_LAYER_TYPE_NAMES",
    "message_class",
    "pool",
]

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bool": _F.TYPE_BOOL,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
}

_ENGINE = ("Engine", [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)])

# Legacy V1LayerParameter.LayerType values (caffe.proto, exact numbers).
_V1_LAYER_TYPES = [
    ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2),
    ("CONCAT", 3), ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5),
    ("DECONVOLUTION", 39), ("DROPOUT", 6), ("DUMMY_DATA", 32),
    ("EUCLIDEAN_LOSS", 7), ("ELTWISE", 25), ("EXP", 38), ("FLATTEN", 8),
    ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10), ("HINGE_LOSS", 28), ("IM2COL", 11),
    ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13), ("INNER_PRODUCT", 14),
    ("LRN", 15), ("MEMORY_DATA", 29), ("MULTINOMIAL_LOGISTIC_LOSS", 16),
    ("MVN", 34), ("POOLING", 17), ("POWER", 26), ("RELU", 18),
    ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27), ("SILENCE", 36),
    ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33),
    ("TANH", 23), ("WINDOW_DATA", 24), ("THRESHOLD", 31),
]

#: V1 enum name -> the V2 layer type string Caffe's upgrade code maps it to.
V1_LAYER_TYPE_NAMES = {
    "NONE": "",
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DATA": "Data",
    "DECONVOLUTION": "Deconvolution",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

# (message name, nested enums, fields).  A field is
# (name, number, label, type, default) where type is a scalar name, a message
# name or "enum:<Name>" (nested enum of the same message unless it contains a
# dot, e.g. "enum:.caffe.Phase").
_MESSAGES = [
    ("BlobShape", [], [
        ("dim", 1, _REP, "int64", "packed"),
    ]),
    ("BlobProto", [], [
        ("shape", 7, _OPT, "BlobShape", None),
        ("data", 5, _REP, "float", "packed"),
        ("diff", 6, _REP, "float", "packed"),
        ("double_data", 8, _REP, "double", "packed"),
        ("double_diff", 9, _REP, "double", "packed"),
        ("num", 1, _OPT, "int32", "0"),
        ("channels", 2, _OPT, "int32", "0"),
        ("height", 3, _OPT, "int32", "0"),
        ("width", 4, _OPT, "int32", "0"),
    ]),
    ("FillerParameter", [("VarianceNorm", [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)])], [
        ("type", 1, _OPT, "string", "constant"),
        ("value", 2, _OPT, "float", "0"),
        ("min", 3, _OPT, "float", "0"),
        ("max", 4, _OPT, "float", "1"),
        ("mean", 5, _OPT, "float", "0"),
        ("std", 6, _OPT, "float", "1"),
        ("sparse", 7, _OPT, "int32", "-1"),
        ("variance_norm", 8, _OPT, "enum:VarianceNorm", "FAN_IN"),
    ]),
    ("NetState", [], [
        ("phase", 1, _OPT, "enum:.caffe.Phase", "TEST"),
        ("level", 2, _OPT, "int32", "0"),
        ("stage", 3, _REP, "string", None),
    ]),
    ("NetStateRule", [], [
        ("phase", 1, _OPT, "enum:.caffe.Phase", None),
        ("min_level", 2, _OPT, "int32", None),
        ("max_level", 3, _OPT, "int32", None),
        ("stage", 4, _REP, "string", None),
        ("not_stage", 5, _REP, "string", None),
    ]),
    ("ParamSpec", [("DimCheckMode", [("STRICT", 0), ("PERMISSIVE", 1)])], [
        ("name", 1, _OPT, "string", None),
        ("share_mode", 2, _OPT, "enum:DimCheckMode", None),
        ("lr_mult", 3, _OPT, "float", "1"),
        ("decay_mult", 4, _OPT, "float", "1"),
    ]),
    ("ConcatParameter", [], [
        ("axis", 2, _OPT, "int32", "1"),
        ("concat_dim", 1, _OPT, "uint32", "1"),
    ]),
    ("ConvolutionParameter", [_ENGINE], [
        ("num_output", 1, _OPT, "uint32", None),
        ("bias_term", 2, _OPT, "bool", "true"),
        ("pad", 3, _REP, "uint32", None),
        ("kernel_size", 4, _REP, "uint32", None),
        ("stride", 6, _REP, "uint32", None),
        ("dilation", 18, _REP, "uint32", None),
        ("pad_h", 9, _OPT, "uint32", "0"),
        ("pad_w", 10, _OPT, "uint32", "0"),
        ("kernel_h", 11, _OPT, "uint32", None),
        ("kernel_w", 12, _OPT, "uint32", None),
        ("stride_h", 13, _OPT, "uint32", None),
        ("stride_w", 14, _OPT, "uint32", None),
        ("group", 5, _OPT, "uint32", "1"),
        ("weight_filler", 7, _OPT, "FillerParameter", None),
        ("bias_filler", 8, _OPT, "FillerParameter", None),
        ("engine", 15, _OPT, "enum:Engine", "DEFAULT"),
        ("axis", 16, _OPT, "int32", "1"),
        ("force_nd_im2col", 17, _OPT, "bool", "false"),
    ]),
    ("DropoutParameter", [], [
        ("dropout_ratio", 1, _OPT, "float", "0.5"),
    ]),
    ("EltwiseParameter", [("EltwiseOp", [("PROD", 0), ("SUM", 1), ("MAX", 2)])], [
        ("operation", 1, _OPT, "enum:EltwiseOp", "SUM"),
        ("coeff", 2, _REP, "float", None),
        ("stable_prod_grad", 3, _OPT, "bool", "true"),
    ]),
    ("FlattenParameter", [], [
        ("axis", 1, _OPT, "int32", "1"),
        ("end_axis", 2, _OPT, "int32", "-1"),
    ]),
    ("InnerProductParameter", [], [
        ("num_output", 1, _OPT, "uint32", None),
        ("bias_term", 2, _OPT, "bool", "true"),
        ("weight_filler", 3, _OPT, "FillerParameter", None),
        ("bias_filler", 4, _OPT, "FillerParameter", None),
        ("axis", 5, _OPT, "int32", "1"),
        ("transpose", 6, _OPT, "bool", "false"),
    ]),
    ("InputParameter", [], [
        ("shape", 1, _REP, "BlobShape", None),
    ]),
    ("LRNParameter", [("NormRegion", [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)]), _ENGINE], [
        ("local_size", 1, _OPT, "uint32", "5"),
        ("alpha", 2, _OPT, "float", "1"),
        ("beta", 3, _OPT, "float", "0.75"),
        ("norm_region", 4, _OPT, "enum:NormRegion", "ACROSS_CHANNELS"),
        ("k", 5, _OPT, "float", "1"),
        ("engine", 6, _OPT, "enum:Engine", "DEFAULT"),
    ]),
    ("PoolingParameter", [
        ("PoolMethod", [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)]),
        _ENGINE,
        ("RoundMode", [("CEIL", 0), ("FLOOR", 1)]),
    ], [
        ("pool", 1, _OPT, "enum:PoolMethod", "MAX"),
        ("pad", 4, _OPT, "uint32", "0"),
        ("pad_h", 9, _OPT, "uint32", "0"),
        ("pad_w", 10, _OPT, "uint32", "0"),
        ("kernel_size", 2, _OPT, "uint32", None),
        ("kernel_h", 5, _OPT, "uint32", None),
        ("kernel_w", 6, _OPT, "uint32", None),
        ("stride", 3, _OPT, "uint32", "1"),
        ("stride_h", 7, _OPT, "uint32", None),
        ("stride_w", 8, _OPT, "uint32", None),
        ("engine", 11, _OPT, "enum:Engine", "DEFAULT"),
        ("global_pooling", 12, _OPT, "bool", "false"),
        ("round_mode", 13, _OPT, "enum:RoundMode", "CEIL"),
    ]),
    ("ReLUParameter", [_ENGINE], [
        ("negative_slope", 1, _OPT, "float", "0"),
        ("engine", 2, _OPT, "enum:Engine", "DEFAULT"),
    ]),
    ("ReshapeParameter", [], [
        ("shape", 1, _OPT, "BlobShape", None),
        ("axis", 2, _OPT, "int32", "0"),
        ("num_axes", 3, _OPT, "int32", "-1"),
    ]),
    ("SoftmaxParameter", [_ENGINE], [
        ("engine", 1, _OPT, "enum:Engine", "DEFAULT"),
        ("axis", 2, _OPT, "int32", "1"),
    ]),
    ("LayerParameter", [], [
        ("name", 1, _OPT, "string", None),
        ("type", 2, _OPT, "string", None),
        ("bottom", 3, _REP, "string", None),
        ("top", 4, _REP, "string", None),
        ("phase", 10, _OPT, "enum:.caffe.Phase", None),
        ("loss_weight", 5, _REP, "float", None),
        ("param", 6, _REP, "ParamSpec", None),
        ("blobs", 7, _REP, "BlobProto", None),
        ("propagate_down", 11, _REP, "bool", None),
        ("include", 8, _REP, "NetStateRule", None),
        ("exclude", 9, _REP, "NetStateRule", None),
        ("concat_param", 104, _OPT, "ConcatParameter", None),
        ("convolution_param", 106, _OPT, "ConvolutionParameter", None),
        ("dropout_param", 108, _OPT, "DropoutParameter", None),
        ("eltwise_param", 110, _OPT, "EltwiseParameter", None),
        ("inner_product_param", 117, _OPT, "InnerProductParameter", None),
        ("lrn_param", 118, _OPT, "LRNParameter", None),
        ("pooling_param", 121, _OPT, "PoolingParameter", None),
        ("relu_param", 123, _OPT, "ReLUParameter", None),
        ("softmax_param", 125, _OPT, "SoftmaxParameter", None),
        ("reshape_param", 133, _OPT, "ReshapeParameter", None),
        ("flatten_param", 135, _OPT, "FlattenParameter", None),
        ("input_param", 143, _OPT, "InputParameter", None),
    ]),
    ("V1LayerParameter", [
        ("LayerType", _V1_LAYER_TYPES),
        ("DimCheckMode", [("STRICT", 0), ("PERMISSIVE", 1)]),
    ], [
        ("bottom", 2, _REP, "string", None),
        ("top", 3, _REP, "string", None),
        ("name", 4, _OPT, "string", None),
        ("include", 32, _REP, "NetStateRule", None),
        ("exclude", 33, _REP, "NetStateRule", None),
        ("type", 5, _OPT, "enum:LayerType", None),
        ("blobs", 6, _REP, "BlobProto", None),
        ("param", 1001, _REP, "string", None),
        ("blob_share_mode", 1002, _REP, "enum:DimCheckMode", None),
        ("blobs_lr", 7, _REP, "float", None),
        ("weight_decay", 8, _REP, "float", None),
        ("loss_weight", 35, _REP, "float", None),
        ("concat_param", 9, _OPT, "ConcatParameter", None),
        ("convolution_param", 10, _OPT, "ConvolutionParameter", None),
        ("dropout_param", 12, _OPT, "DropoutParameter", None),
        ("eltwise_param", 24, _OPT, "EltwiseParameter", None),
        ("inner_product_param", 17, _OPT, "InnerProductParameter", None),
        ("lrn_param", 18, _OPT, "LRNParameter", None),
        ("pooling_param", 19, _OPT, "PoolingParameter", None),
        ("relu_param", 30, _OPT, "ReLUParameter", None),
        ("softmax_param", 39, _OPT, "SoftmaxParameter", None),
    ]),
    ("NetParameter", [], [
        ("name", 1, _OPT, "string", None),
        ("input", 3, _REP, "string", None),
        ("input_shape", 8, _REP, "BlobShape", None),
        ("input_dim", 4, _REP, "int32", None),
        ("force_backward", 5, _OPT, "bool", "false"),
        ("state", 6, _OPT, "NetState", None),
        ("debug_info", 7, _OPT, "bool", "false"),
        ("layer", 100, _REP, "LayerParameter", None),
        ("layers", 2, _REP, "V1LayerParameter", None),
    ]),
]

_PACKAGE = "caffe"
_FILE_NAME = "keras_icnn/caffe/caffe_subset.proto"


def _file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name=_FILE_NAME, package=_PACKAGE, syntax="proto2"
    )
    phase = fdp.enum_type.add(name="Phase")
    for value_name, number in (("TRAIN", 0), ("TEST", 1)):
        phase.value.add(name=value_name, number=number)
    for msg_name, enums, fields in _MESSAGES:
        msg = fdp.message_type.add(name=msg_name)
        for enum_name, values in enums:
            enum = msg.enum_type.add(name=enum_name)
            for value_name, number in values:
                enum.value.add(name=value_name, number=number)
        for name, number, label, ftype, extra in fields:
            field = msg.field.add(name=name, number=number, label=label)
            if ftype in _SCALARS:
                field.type = _SCALARS[ftype]
            elif ftype.startswith("enum:"):
                field.type = _F.TYPE_ENUM
                enum_ref = ftype[len("enum:"):]
                field.type_name = (
                    enum_ref if enum_ref.startswith(".")
                    else f".{_PACKAGE}.{msg_name}.{enum_ref}"
                )
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{ftype}"
            if extra == "packed":
                field.options.packed = True
            elif extra is not None:
                field.default_value = extra
    return fdp


pool = descriptor_pool.DescriptorPool()
pool.Add(_file_descriptor_proto())


def message_class(name: str):
    """Return the generated message class for ``caffe.<name>``.

    Raises ``KeyError`` naming the message when it is not part of the subset.
    """
    try:
        descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")
    except KeyError:
        raise KeyError(
            f"caffe message {name!r} is not part of keras_icnn's Caffe schema"
        ) from None
    return message_factory.GetMessageClass(descriptor)


NetParameter = message_class("NetParameter")
LayerParameter = message_class("LayerParameter")
V1LayerParameter = message_class("V1LayerParameter")
BlobProto = message_class("BlobProto")
BlobShape = message_class("BlobShape")
