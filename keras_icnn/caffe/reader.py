"""Reading Caffe ``.prototxt`` and ``.caffemodel`` files without Caffe.

The functions here turn files into :data:`~keras_icnn.caffe.proto.NetParameter`
messages and normalise the two layer encodings Caffe has used over time
(``layer`` / :class:`LayerParameter` with string types, and the legacy
``layers`` / ``V1LayerParameter`` with enum types) into :class:`CaffeLayer`
records.  Weight blobs become NumPy arrays with :func:`blob_to_array`, which
understands both the ``shape`` field and the legacy ``num/channels/height/
width`` fields, and both ``data`` (float) and ``double_data``.

Every failure caused by the *file* raises :class:`CaffeFormatError` (a
``ValueError``) that names the file and, for binary files, the byte offset and
layer where the damage was found (located by :mod:`keras_icnn.caffe.damage`).
Parsing is linear in the file size and never recurses deeper than protobuf's
own limit, so random bytes produce an error, not a hang or a crash.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np
from google.protobuf import text_format

from keras_icnn.caffe import proto
from keras_icnn.caffe.damage import describe_damage
from keras_icnn.errors import CaffeFormatError, UnsupportedLayerError

__all__ = [
    "CaffeFormatError",
    "CaffeLayer",
    "LayerWeights",
    "UnsupportedLayerError",
    "blob_shape",
    "blob_to_array",
    "caffemodel_weights",
    "load_net",
    "net_inputs",
    "net_layers",
    "parse_caffemodel",
    "parse_prototxt",
    "read_caffemodel",
    "read_prototxt",
]


# ---------------------------------------------------------------------------
# Text format (.prototxt)
# ---------------------------------------------------------------------------


def _source_name(path) -> str:
    return os.fspath(path)


def parse_prototxt(text: str | bytes, *, source: str = "<string>"):
    """Parse Caffe network text (protobuf text format) into a NetParameter.

    Fields and extensions that are not part of keras-icnn's schema subset are
    skipped, so training prototxts (``transform_param``, ``data_param``...)
    parse as well.  ``source`` is only used in error messages.

    Raises :class:`CaffeFormatError` with the line and column of a syntax
    error, or when the text describes no layers.
    """
    net = _parse_text(_prototxt_text(text, source), source)
    if len(net.layer) == 0 and len(net.layers) == 0:
        raise CaffeFormatError(
            f"{source}: the prototxt defines no layers (neither 'layer {{}}' "
            "nor legacy 'layers {}' blocks)"
        )
    return net


def _prototxt_text(text, source: str) -> str:
    """``text`` as a str (bytes are decoded as UTF-8)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CaffeFormatError(
                f"{source}: not a text prototxt (invalid UTF-8 at byte "
                f"{exc.start}); binary weights belong in a .caffemodel"
            ) from exc
    if not isinstance(text, str):
        raise ValueError(
            f"parse_prototxt expects str or bytes, got {type(text).__name__}"
        )
    return text


def _parse_text(text: str, source: str):
    net = proto.NetParameter()
    try:
        text_format.Parse(
            text,
            net,
            allow_unknown_extension=True,
            allow_unknown_field=True,
            descriptor_pool=proto.pool,
        )
    except text_format.ParseError as exc:
        where = ""
        if exc.GetLine() is not None:
            where = f", line {exc.GetLine()}, column {exc.GetColumn()}"
        raise CaffeFormatError(
            f"{source}{where}: invalid prototxt: {exc}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure is a file error
        raise CaffeFormatError(f"{source}: invalid prototxt: {exc}") from exc
    return net


def read_prototxt(path: str | os.PathLike):
    """Read a ``.prototxt`` file; see :func:`parse_prototxt`."""
    path = _check_file(path, "prototxt")
    data = _read_bytes(path)
    return parse_prototxt(data, source=_source_name(path))


# ---------------------------------------------------------------------------
# Binary format (.caffemodel)
# ---------------------------------------------------------------------------


def _check_file(path, what: str):
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"{what} must be a path (str or os.PathLike), got "
            f"{type(path).__name__}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {os.fspath(path)}")
    return path


def _read_bytes(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def parse_caffemodel(data: bytes, *, source: str = "<bytes>"):
    """Parse serialized Caffe weights (a binary NetParameter).

    Accepts both ``layer`` (V2) and legacy ``layers`` (V1) encodings, packed
    and unpacked repeated fields.  Raises :class:`CaffeFormatError` naming
    ``source``, and where it can be located, the byte offset and layer at
    which the data is damaged.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(
            f"parse_caffemodel expects bytes, got {type(data).__name__}"
        )
    data = bytes(data)
    if not data:
        raise CaffeFormatError(f"{source}: the file is empty (0 bytes)")
    net = proto.NetParameter()
    try:
        net.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends
        raise CaffeFormatError(describe_damage(data, source, exc)) from exc
    try:
        _validate_parsed(net, source)
    except CaffeFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. invalid UTF-8 in a name
        raise CaffeFormatError(
            f"{source}: not a valid Caffe model ({type(exc).__name__}: {exc})"
        ) from exc
    return net


def read_caffemodel(path: str | os.PathLike):
    """Read a ``.caffemodel`` file; see :func:`parse_caffemodel`."""
    path = _check_file(path, "caffemodel")
    return parse_caffemodel(_read_bytes(path), source=_source_name(path))


def _is_repeated(field) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 6 has no .label
    return repeated if repeated is not None else field.label == field.LABEL_REPEATED


def _non_text_field(message, where: str = "") -> str | None:
    """The path of the first string field of ``message`` that is not valid UTF-8, or None.

    The binary parser keeps such a proto2 string as ``bytes`` instead of failing, so a
    damaged name would otherwise come out of the reader as ``bytes``.
    """
    for field, value in message.ListFields():
        values = value if _is_repeated(field) else [value]
        for i, item in enumerate(values):
            name = f"{where}{field.name}" + (f"[{i}]" if _is_repeated(field) else "")
            if field.type == field.TYPE_STRING and not isinstance(item, str):
                return name
            if field.type == field.TYPE_MESSAGE:
                bad = _non_text_field(item, name + ".")
                if bad is not None:
                    return bad
    return None


def _validate_parsed(net, source: str) -> None:
    n_layers = len(net.layer) + len(net.layers)
    if n_layers == 0:
        raise CaffeFormatError(
            f"{source}: no layers found; this does not look like a Caffe "
            "model (.caffemodel files are binary NetParameter messages)"
        )
    bad = _non_text_field(net)
    if bad is not None:
        raise CaffeFormatError(
            f"{source}: the text field {bad} is not valid UTF-8; the file is "
            "damaged or not a Caffe model"
        )
    for i, layer in enumerate(_raw_layers(net)):
        name = layer.name
        if not name:
            raise CaffeFormatError(
                f"{source}: layer #{i} has no name; the file is damaged or "
                "not a Caffe model"
            )


def load_net(obj, what: str):
    """A NetParameter and its name for error messages, from a path or a net.

    ``obj`` is a file path (read with :func:`read_prototxt` when ``what`` is
    ``"prototxt"``, else with :func:`read_caffemodel`) or an already parsed
    NetParameter (named ``"<what>"``).  Returns ``(net, source)``.
    """
    if isinstance(obj, proto.NetParameter):
        return obj, f"<{what}>"
    if isinstance(obj, (str, os.PathLike)):
        if what == "prototxt":
            return read_prototxt(obj), os.fspath(obj)
        return read_caffemodel(obj), os.fspath(obj)
    raise ValueError(
        f"{what} must be a file path or a parsed NetParameter, got "
        f"{type(obj).__name__}"
    )


# ---------------------------------------------------------------------------
# Normalised layers
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CaffeLayer:
    """One Caffe layer, independent of the V1/V2 encoding.

    ``message`` is the underlying LayerParameter or V1LayerParameter; use
    :meth:`param` to read a ``*_param`` sub-message (None when absent).
    ``type`` is always the V2 type string (e.g. ``"Convolution"``).
    """

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    index: int
    legacy: bool
    message: Any = dataclasses.field(repr=False, compare=False)

    def param(self, field: str):
        """Return the ``field`` sub-message (e.g. "convolution_param") or None."""
        try:
            if self.message.HasField(field):
                return getattr(self.message, field)
        except ValueError:
            return None
        return None

    def param_or_default(self, field: str):
        """Return the ``field`` sub-message, or its default instance."""
        return getattr(self.message, field)

    @property
    def blobs(self):
        return self.message.blobs


def _raw_layers(net):
    return list(net.layer) if len(net.layer) else list(net.layers)


def _v1_type_name(layer) -> str:
    enum = proto.V1LayerParameter.DESCRIPTOR.enum_types_by_name["LayerType"]
    value = enum.values_by_number.get(layer.type)
    if value is None:
        return f"<V1 type {layer.type}>"
    return proto.V1_LAYER_TYPE_NAMES.get(value.name, value.name)


def _rule_met(rule, phase: int) -> bool:
    # Caffe's NetState defaults: level 0, no stages.
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and 0 < rule.min_level:
        return False
    if rule.HasField("max_level") and 0 > rule.max_level:
        return False
    if len(rule.stage):
        return False
    return True


def _included(message, phase: int) -> bool:
    if len(message.include) and len(message.exclude):
        return True  # Caffe rejects this; be lenient and keep the layer
    for rule in message.exclude:
        if _rule_met(rule, phase):
            return False
    if len(message.include):
        return any(_rule_met(rule, phase) for rule in message.include)
    return True


_PHASES = {"TRAIN": 0, "TEST": 1}


def net_layers(net, *, phase: str | None = "TEST") -> list[CaffeLayer]:
    """Return the layers of ``net`` as :class:`CaffeLayer` records.

    V2 ``layer`` entries win when a file has both encodings (Caffe does the
    same after upgrading).  With ``phase="TEST"`` (default) or ``"TRAIN"``,
    layers whose include/exclude rules reject that phase are dropped, as
    Caffe's ``Net::FilterNet`` does; ``phase=None`` keeps all layers.
    """
    if phase is not None and phase not in _PHASES:
        raise ValueError(f"phase must be 'TEST', 'TRAIN' or None, got {phase!r}")
    legacy = len(net.layer) == 0
    out = []
    for i, msg in enumerate(_raw_layers(net)):
        if phase is not None and not _included(msg, _PHASES[phase]):
            continue
        out.append(
            CaffeLayer(
                name=msg.name,
                type=_v1_type_name(msg) if legacy else msg.type,
                bottoms=tuple(msg.bottom),
                tops=tuple(msg.top),
                index=i,
                legacy=legacy,
                message=msg,
            )
        )
    return out


def net_inputs(net, *, source: str = "<net>") -> dict[str, tuple[int, ...]]:
    """Net-level inputs (``input`` + ``input_shape`` / ``input_dim``).

    Returns ``{blob name: Caffe shape}`` (batch axis included).  Input
    *layers* (type "Input") are handled by the model builder.
    """
    names = list(net.input)
    if not names:
        return {}
    shapes: list[tuple[int, ...]]
    if len(net.input_shape):
        shapes = [tuple(int(d) for d in s.dim) for s in net.input_shape]
    elif len(net.input_dim):
        dims = [int(d) for d in net.input_dim]
        if len(dims) != 4 * len(names):
            raise CaffeFormatError(
                f"{source}: {len(names)} net input(s) need {4 * len(names)} "
                f"input_dim values, got {len(dims)}"
            )
        shapes = [tuple(dims[4 * i: 4 * i + 4]) for i in range(len(names))]
    else:
        raise CaffeFormatError(
            f"{source}: net inputs {names} have no input_shape or input_dim"
        )
    if len(shapes) != len(names):
        raise CaffeFormatError(
            f"{source}: {len(names)} net input(s) but {len(shapes)} "
            "input_shape entries"
        )
    return dict(zip(names, shapes))


# ---------------------------------------------------------------------------
# Blobs
# ---------------------------------------------------------------------------


def blob_shape(blob) -> tuple[int, ...]:
    """The shape of a BlobProto as Caffe reads it.

    Legacy ``num/channels/height/width`` win when any of them is set (as in
    Caffe's ``Blob::FromProto``); otherwise ``shape.dim``; a blob with
    neither is treated as a flat vector.
    """
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return (int(blob.num), int(blob.channels), int(blob.height),
                int(blob.width))
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    n = len(blob.double_data) or len(blob.data)
    return (n,)


def blob_to_array(blob, *, context: str = "blob") -> np.ndarray:
    """Convert a BlobProto to a float32 NumPy array of :func:`blob_shape`.

    Uses ``double_data`` when present (cast to float32), else ``data``.
    Raises :class:`CaffeFormatError` (mentioning ``context``) when the
    number of values does not match the shape.
    """
    shape = blob_shape(blob)
    if any(d < 0 for d in shape):
        raise CaffeFormatError(f"{context}: negative dimension in shape {shape}")
    if len(blob.double_data):
        values = np.array(blob.double_data, dtype=np.float64)
    else:
        values = np.array(blob.data, dtype=np.float32)
    expected = math.prod(shape)
    if values.size != expected:
        raise CaffeFormatError(
            f"{context}: shape {shape} needs {expected} values but the blob "
            f"holds {values.size}"
        )
    try:
        return values.astype(np.float32, copy=False).reshape(shape)
    except ValueError as exc:  # e.g. no values, but dimensions numpy cannot index
        raise CaffeFormatError(
            f"{context}: shape {shape} is not a valid array shape ({exc})"
        ) from None


@dataclasses.dataclass
class LayerWeights:
    """The weight blobs of one layer of a ``.caffemodel``."""

    name: str
    type: str
    arrays: list[np.ndarray]
    layer: CaffeLayer = dataclasses.field(repr=False)


def caffemodel_weights(model, *, source: str | None = None) -> dict[str, LayerWeights]:
    """Return ``{layer name: LayerWeights}`` for every layer with blobs.

    ``model`` is a ``.caffemodel`` path or an already parsed NetParameter.
    Phase rules are ignored (weights of every layer are returned).  When a
    name occurs more than once the last occurrence wins, as in Caffe's
    ``CopyTrainedLayersFrom``.
    """
    if isinstance(model, (str, os.PathLike)):
        source = source or os.fspath(model)
        net = read_caffemodel(model)
    else:
        net = model
        source = source or "<caffemodel>"
    out: dict[str, LayerWeights] = {}
    for layer in net_layers(net, phase=None):
        if not len(layer.blobs):
            continue
        arrays = [
            blob_to_array(
                blob,
                context=f"{source}: layer '{layer.name}' blob #{i}",
            )
            for i, blob in enumerate(layer.blobs)
        ]
        out[layer.name] = LayerWeights(layer.name, layer.type, arrays, layer)
    return out
