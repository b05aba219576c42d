"""Atomic file writing: a file appears complete or not at all."""
from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["atomic_path"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=None, makedirs=False):
    """Context manager yielding a temporary path next to ``path``; on success it is moved onto
    ``path`` with ``os.replace`` (atomic on POSIX and Windows), on failure it is removed.

    The temporary name keeps ``path``'s extension (or ends with ``suffix``, e.g.
    ``".weights.h5"``, which Keras requires), so libraries that pick a format from the name
    (numpy, scipy, h5py, Pillow, matplotlib, Keras) behave as for ``path``.  ``makedirs``
    creates a missing directory; otherwise a missing directory is an error.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if makedirs:
        os.makedirs(directory, exist_ok=True)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: the directory {directory!r} does not exist")
    root, ext = os.path.splitext(os.path.basename(path))
    if suffix is not None:
        root, ext = os.path.basename(path)[:-len(suffix)] or root, suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{root}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates the file 0600; give the result ordinary permissions.
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o7777
        else:
            mode = 0o666 & ~_current_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
