"""Reading MATLAB v4/v5 ``.mat`` files safely: each wanted variable's elements are walked and
checked before scipy reads it (scipy's reader can crash the interpreter or allocate without
bound on damaged files); a damaged file raises :class:`~keras_icnn.errors.FileFormatError`."""
from __future__ import annotations

import io
import zlib
from struct import error as _StructError
from struct import unpack_from as _unpack_from

from keras_icnn.errors import FileFormatError

__all__ = ["loadmat"]


# loadmat walks each wanted variable's elements first, and gives scipy each variable in a file
# of its own, where reading past the variable meets the end of the data.
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MI_DATA = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18})  # int8 ... utf32
_MX_CONTAINERS = frozenset({1, 2, 3, 16, 17})  # cell, struct, object, function, opaque
_MX_ELEMENTS = {4: 1, 5: 3, **{c: 1 for c in range(6, 16)}}  # char, sparse, numeric: parts
_MAT_MAX_DEPTH = 64


class _MatDamage(Exception):
    """Where and how a v5 .mat file is damaged (becomes a FileFormatError)."""


def _mat_element(buf, pos, end, bo, padded=True):
    """``(type, data start, data end, next element)`` of the data element at ``pos``."""
    if pos + 8 > end:
        raise _MatDamage(f"the element at byte {pos} runs past the end of its container")
    first, size = _unpack_from(bo + "II", buf, pos)
    if first >> 16:  # a small data element: type and size in 4 bytes, the data in the next 4
        if first >> 16 > 4:
            raise _MatDamage(f"the small data element at byte {pos} declares {first >> 16} "
                             "bytes (at most 4)")
        return first & 0xFFFF, pos + 4, pos + 4 + (first >> 16), pos + 8
    start, stop = pos + 8, pos + 8 + size
    if stop > end:
        raise _MatDamage(f"the element at byte {pos} declares {size} bytes but only "
                         f"{max(end - start, 0)} remain")
    return first, start, stop, (start + -(-size // 8) * 8) if padded else stop


def _mat_matrix_name(buf, start, end, bo):
    """The name in the header (array flags, dimensions, name) of an miMATRIX element."""
    pos = start
    for _ in range(2):
        _, _, _, pos = _mat_element(buf, pos, end, bo)
    _, s, e, _ = _mat_element(buf, pos, end, bo)
    return bytes(buf[s:e]).decode("latin1")


def _check_mat_matrix(buf, start, end, bo, depth=0):
    """Walk the contents of one miMATRIX element: every data element must have a MATLAB data
    type, an array must hold the data parts its class and flags promise (and a cell or struct
    array the arrays its dimensions promise: scipy allocates them all first), and the elements
    of cells, structs and objects are walked in turn."""
    if depth > _MAT_MAX_DEPTH:
        raise _MatDamage(f"arrays nested more than {_MAT_MAX_DEPTH} deep")
    if start == end:
        return  # an empty array
    pos, elements = start, []
    while pos < end:
        tag = pos
        mdtype, s, e, pos = _mat_element(buf, pos, end, bo)
        if not elements:  # the array flags
            if mdtype not in _MI_DATA or e - s < 4:
                raise _MatDamage(f"the array flags at byte {tag} are damaged")
            flags = _unpack_from(bo + "I", buf, s)[0]
        elif mdtype == _MI_MATRIX and flags & 0xFF in _MX_CONTAINERS:
            _check_mat_matrix(buf, s, e, bo, depth + 1)
        elif mdtype not in _MI_DATA:
            raise _MatDamage(f"the element at byte {tag} has type code {mdtype}, which is not "
                             "a MATLAB data type")
        elements.append((mdtype, s, e))
    if len(elements) < 3:
        raise _MatDamage(f"the array at byte {start - 8} has no dimensions or name")
    _check_mat_parts(buf, start, end, bo, flags, elements)


def _check_mat_parts(buf, start, end, bo, flags, elements):
    """The data parts of one array are those its class, flags and dimensions promise."""
    mclass, parts = flags & 0xFF, elements[3:]
    if mclass in _MX_ELEMENTS:  # char, sparse, numeric
        needed = _MX_ELEMENTS[mclass] + (flags >> 11 & 1 if mclass != 4 else 0)  # imaginary
        if len(parts) < needed:
            raise _MatDamage(f"the array at byte {start - 8} holds {len(parts)} data part(s); "
                             f"its class and flags need {needed}")
    elif mclass in (1, 2, 3):  # cell, struct, object
        _, s, e = elements[1]
        size = 1
        for d in _unpack_from(f"{bo}{(e - s) // 4}i", buf, s):
            if d < 0:
                raise _MatDamage(f"the array at byte {start - 8} has a negative dimension")
            size *= d
        fields = 1
        if mclass in (2, 3):  # (field name length, field names[, class name first])
            names = parts[1:3] if mclass == 3 else parts[:2]
            if len(names) < 2 or names[0][2] - names[0][1] < 4 or \
                    _unpack_from(bo + "i", buf, names[0][1])[0] <= 0:
                raise _MatDamage(f"the struct at byte {start - 8} has damaged field names")
            fields = (names[1][2] - names[1][1]) // _unpack_from(bo + "i", buf, names[0][1])[0]
            if fields == 0 and size > end - start:
                raise _MatDamage(f"the struct at byte {start - 8} without fields has {size} "
                                 "elements")
        arrays = sum(1 for p in parts if p[0] == _MI_MATRIX)
        if arrays < size * fields:
            raise _MatDamage(f"the array at byte {start - 8} holds {arrays} arrays; its "
                             f"dimensions need {size * fields}")


def _mat_v5_variables(path, names):
    """``[(name, bytes of a .mat file holding only that variable)]`` for the variables of the v5
    file ``path`` in ``names`` (file order), each checked by :func:`_check_mat_matrix`; None for
    a file that is not v5 (v4: scipy's pure-Python reader)."""
    with open(path, "rb") as fh:
        buf = fh.read()
    if len(buf) < 128 or 0 in buf[:4]:
        return None  # too short for v5 (scipy refuses it), or v4
    bo = "<" if buf[126:128] == b"IM" else ">"
    wanted, pos, out = set(names), 128, []
    while pos < len(buf):
        tag = pos
        mdtype, s, e, pos = _mat_element(buf, pos, len(buf), bo, padded=False)
        if mdtype == _MI_COMPRESSED:
            inflate = zlib.decompressobj()
            data = inflate.decompress(buf[s:e], 65536)
            if len(data) < 8 or _unpack_from(bo + "I", data)[0] != _MI_MATRIX:
                continue  # not a matrix: scipy skips or refuses it
            try:
                name = _mat_matrix_name(data, 8, len(data), bo)
            except _MatDamage:
                name = None  # a header longer than the first 64 KiB, or damaged: read it all
            if name is not None and name not in wanted:
                continue
            data += inflate.decompress(inflate.unconsumed_tail) + inflate.flush()
            _, ds, de, _ = _mat_element(data, 0, len(data), bo)
            name = _mat_matrix_name(data, ds, de, bo)
            if name in wanted:
                _check_mat_matrix(data, ds, de, bo)
                out.append((name, buf[:128] + buf[tag:e]))
        elif mdtype == _MI_MATRIX and _mat_matrix_name(buf, s, e, bo) in wanted:
            _check_mat_matrix(buf, s, e, bo)
            out.append((_mat_matrix_name(buf, s, e, bo), buf[:128] + buf[tag:e]))
    return out


def loadmat(path, names) -> dict:
    """``{name: array}``: the variables ``names`` of a v4 or v5 ``.mat`` file, read with scipy
    after :func:`_mat_v5_variables` checked them (damage raises FileFormatError)."""
    import scipy.io

    try:
        variables = _mat_v5_variables(path, names)
    except (_MatDamage, zlib.error, _StructError) as exc:
        raise FileFormatError(f"{path}: damaged MATLAB .mat file ({exc})") from None
    if variables is None:
        return scipy.io.loadmat(path, variable_names=names)
    out = {}
    for name, data in variables:
        out.update({k: v for k, v in scipy.io.loadmat(io.BytesIO(data)).items()
                    if not k.startswith("__")})
    return out
