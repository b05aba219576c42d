"""Argument checks shared by the public entry points (errors name the argument)."""
from __future__ import annotations

import numpy as np


def positive_int(value, name):
    """``value`` as an int >= 1, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def finite_number(value, name, positive=False):
    """``value`` as a finite float >= 0 (> 0 with ``positive``), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name}: expected a finite {'positive' if positive else 'non-negative'}"
                         f" number, got {value!r}")
    return float(value)
