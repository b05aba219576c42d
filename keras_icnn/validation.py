"""Argument checks shared by the public entry points (errors name the argument)."""
from __future__ import annotations

import math

import numpy as np


def positive_int(value, name):
    """``value`` as an int >= 1, or a ValueError naming ``name``."""
    # (np.timedelta64 is a numpy integer type)
    if isinstance(value, (bool, np.timedelta64)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def finite_number(value, name, positive=False):
    """``value`` as a finite float >= 0 (> 0 with ``positive``), or a ValueError naming it."""
    x = math.nan
    if not isinstance(value, (bool, np.timedelta64)) and \
            isinstance(value, (int, float, np.integer, np.floating)):
        try:
            x = float(value)
        except OverflowError:  # an int beyond the float range
            x = math.inf
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise ValueError(f"{name}: expected a finite {'positive' if positive else 'non-negative'}"
                         f" number, got {value!r}")
    return x


def numeric_array(value, name, what="an array"):
    """``value`` as a NumPy array of real numbers (bool, integer or float; not converted), or a
    ValueError naming ``name`` (``what``: how the error describes what was expected)."""
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001  (ragged nesting, objects numpy cannot hold)
        raise ValueError(f"{name}: expected {what}, got {type(value).__name__}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr
