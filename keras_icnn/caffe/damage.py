"""Locating the damage in a binary ``.caffemodel``, for error messages.

When protobuf cannot parse a NetParameter, :func:`describe_damage` walks the
protobuf wire format itself (linearly, without recursion) to say where the
data breaks: the byte offset, the layer record and, inside a layer, the weight
blob that cannot be decoded.  It never raises on arbitrary bytes.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from keras_icnn.caffe import proto

__all__ = ["describe_damage"]


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return any(key in text for key in ("layer", "name:", "input:", "type:"))


class _WireError(Exception):
    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset
        self.message = message


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _WireError(start, "varint runs past the end of the data")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _WireError(start, "varint longer than 10 bytes")


def _scan_fields(buf: bytes, start: int, end: int) -> Iterator[tuple]:
    """Yield (field_number, wire_type, value_start, value_end, tag_offset)."""
    pos = start
    while pos < end:
        tag_pos = pos
        tag, pos = _read_varint(buf, pos, end)
        field_number, wire_type = tag >> 3, tag & 7
        if field_number == 0:
            raise _WireError(tag_pos, "invalid field number 0")
        if wire_type == 0:
            _, new_pos = _read_varint(buf, pos, end)
            value_start, pos = pos, new_pos
        elif wire_type == 1:
            value_start, pos = pos, pos + 8
        elif wire_type == 5:
            value_start, pos = pos, pos + 4
        elif wire_type == 2:
            length, value_start = _read_varint(buf, pos, end)
            pos = value_start + length
            if pos > end:
                raise _WireError(
                    tag_pos,
                    f"field {field_number} declares {length} bytes but only "
                    f"{end - value_start} remain",
                )
        else:
            raise _WireError(
                tag_pos,
                f"field {field_number} uses wire type {wire_type}, which Caffe "
                "files never contain",
            )
        if pos > end:
            raise _WireError(
                tag_pos, f"field {field_number} runs past the end of the data"
            )
        yield field_number, wire_type, value_start, pos, tag_pos


def _layer_name_from_bytes(buf: bytes, start: int, end: int, name_field: int):
    """Best-effort extraction of a layer's name from (possibly damaged) bytes."""
    try:
        for number, wire_type, vstart, vend, _ in _scan_fields(buf, start, end):
            if number == name_field and wire_type == 2:
                return buf[vstart:vend].decode("utf-8", errors="replace")
    except _WireError:
        pass
    return None


_LAYER_FIELDS = {
    100: ("layer", proto.LayerParameter, 1),  # NetParameter.layer: name is field 1
    2: ("layers", proto.V1LayerParameter, 4),  # legacy NetParameter.layers: field 4
}


@dataclasses.dataclass
class _Progress:
    """How far :func:`describe_damage`'s scan of the top-level records got."""

    layer_index: int = 0
    last_good: str | None = None
    pos: int = 0


def describe_damage(data: bytes, source: str, exc: Exception) -> str:
    """Locate where a binary NetParameter is damaged, for the error message.

    ``exc`` is the error protobuf raised while parsing ``data``; it is named
    when the damage cannot be located more precisely.
    """
    base = f"{source}: corrupt or truncated Caffe model ({len(data)} bytes)"
    if _looks_like_text(data):
        base += (
            "; the file looks like text -- a .prototxt network description "
            "rather than binary .caffemodel weights?"
        )
    progress = _Progress()
    try:
        bad_layer = _find_bad_layer(data, base, progress)
    except _WireError as wire:
        return _wire_damage(data, base, wire, progress)
    if bad_layer is not None:
        return bad_layer
    return f"{base}: {type(exc).__name__}: {exc} (ended at byte offset {progress.pos})"


def _find_bad_layer(data: bytes, base: str, progress: _Progress) -> str | None:
    """The message for the first layer record that does not decode, or None.

    Raises :class:`_WireError` when the top-level record structure itself is
    damaged; ``progress`` then tells how far the scan got.
    """
    for number, wire_type, vstart, vend, tag_pos in _scan_fields(data, 0, len(data)):
        progress.pos = vend
        if number not in _LAYER_FIELDS or wire_type != 2:
            continue
        field_name, cls, name_field = _LAYER_FIELDS[number]
        try:
            layer = cls.FromString(data[vstart:vend])
            progress.last_good = layer.name
        except Exception as sub_exc:  # noqa: BLE001
            name = _layer_name_from_bytes(data, vstart, vend, name_field)
            where = _locate_in_layer(data, vstart, vend, number)
            return (
                f"{base}: layer #{progress.layer_index}"
                + (f" '{name}'" if name else "")
                + f" (a '{field_name}' record at byte offset {tag_pos},"
                f" {vend - vstart} bytes) cannot be decoded"
                + (f": {where}" if where else f": {sub_exc}")
            )
        progress.layer_index += 1
    return None


def _wire_damage(data: bytes, base: str, wire: _WireError, progress: _Progress) -> str:
    """The message for damage in the top-level record structure."""
    partial = _partial_layer(data, wire.offset, progress.layer_index)
    hint = (
        f" (last complete layer: '{progress.last_good}')" if progress.last_good else ""
    )
    return (
        f"{base}: damaged at byte offset {wire.offset}{partial}: "
        f"{wire.message}{hint}; the file is probably truncated or is not "
        "a Caffe model"
    )


def _partial_layer(data: bytes, offset: int, layer_index: int) -> str:
    """A truncated final record: try to name the layer it was holding."""
    try:
        tag, after_tag = _read_varint(data, offset, len(data))
        if tag >> 3 in _LAYER_FIELDS and tag & 7 == 2:
            _, payload = _read_varint(data, after_tag, len(data))
            name = _layer_name_from_bytes(
                data, payload, len(data), _LAYER_FIELDS[tag >> 3][2]
            )
            return f" while reading layer #{layer_index}" + (
                f" '{name}'" if name else ""
            )
    except _WireError:
        pass
    return ""


def _locate_in_layer(data: bytes, start: int, end: int, layer_field: int) -> str:
    """Describe the first damaged blob inside a layer record, if any."""
    blobs_field = 7 if layer_field == 100 else 6
    blob_index = 0
    try:
        for number, wire_type, vstart, vend, tag_pos in _scan_fields(
            data, start, end
        ):
            if number == blobs_field and wire_type == 2:
                try:
                    proto.BlobProto.FromString(data[vstart:vend])
                except Exception:  # noqa: BLE001
                    return (
                        f"blob #{blob_index} at byte offset {tag_pos} is "
                        "damaged"
                    )
                blob_index += 1
    except _WireError as wire:
        return f"damaged at byte offset {wire.offset}: {wire.message}"
    return ""
