"""Whether a compiled step uses XLA: ``jit_compile="auto"`` means the faster of the two on the
device type TensorFlow places the work on, as measured by ``benchmarks/speed_table.py``."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["XLA_DEFAULT", "device_type", "check", "resolve"]

#: The measured default per device type (``True``: XLA was faster there).  A device type not
#: listed gets ``False`` (TensorFlow's own default).
#: CPU: measured with ``benchmarks/speed_table.py`` on a 2-core AMD EPYC (AVX512-BF16), VGG19
#: 224 px and 64 px, batches 1-8: XLA was slower for float32 and mixed_bfloat16 (1.2-2x per
#: iteration, and seconds of compilation), faster only for mixed_float16 (which CPUs emulate;
#: float32 or bfloat16 is the choice there anyway).
#: GPU: still to be measured (no GPU was available); off, TensorFlow's default, until then.
XLA_DEFAULT = {"CPU": False, "GPU": False}


def device_type():
    """``"GPU"`` when TensorFlow sees a GPU (it places the work there), else ``"CPU"``."""
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def check(jit_compile):
    """``"auto"``, ``True`` or ``False`` (what a config keeps: ``"auto"`` stays portable); a
    ``ValueError`` for anything else."""
    if isinstance(jit_compile, str) and jit_compile == "auto":
        return jit_compile
    return resolve(jit_compile)


def resolve(jit_compile):
    """``True``/``False`` as given; ``"auto"``: :data:`XLA_DEFAULT` for this device type."""
    if isinstance(jit_compile, str):
        if jit_compile != "auto":
            raise ValueError(f"jit_compile: expected True, False or 'auto', got {jit_compile!r}")
        return XLA_DEFAULT.get(device_type(), False)
    if not isinstance(jit_compile, (bool, int, np.bool_)) or jit_compile not in (0, 1):
        raise ValueError(f"jit_compile: expected True, False or 'auto', got {jit_compile!r}")
    return bool(jit_compile)
