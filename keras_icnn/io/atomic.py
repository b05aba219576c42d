"""Atomic file writing: a file appears complete or not at all."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile

__all__ = ["atomic_path", "temporary_name_pattern", "stale_temporary_files",
           "remove_stale_temporary_files"]

#: The random part of a temporary name (``tempfile.mkstemp``'s: letters, digits, ``_``).
_RANDOM = r"[a-z0-9_]+"


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
    prefix, end = _affixes(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=end, dir=directory)
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


def _affixes(path, suffix=None):
    """``(prefix, suffix)`` of the temporary names of :func:`atomic_path` ``(path, suffix)``:
    ``.<root>.`` and ``.tmp<ext>`` around a random part."""
    base = os.path.basename(os.fspath(path))
    root, ext = os.path.splitext(base)
    if suffix is not None:
        root, ext = base[:-len(suffix)] or root, suffix
    return f".{root}.", f".tmp{ext}"


def temporary_name_pattern(path, suffix=None):
    """A compiled regular expression matching exactly the file names (not paths) that
    :func:`atomic_path` ``(path, suffix)`` gives its temporary files, e.g.
    ``.a_options.k2j4x_9q.tmp.json`` for ``a_options.json``; names of other files (even those
    of another ``path`` in the same directory) do not match."""
    prefix, end = _affixes(path, suffix)
    return re.compile(re.escape(prefix) + _RANDOM + re.escape(end) + r"\Z")


def stale_temporary_files(path, suffix=None):
    """The temporary files that :func:`atomic_path` ``(path, suffix)`` left next to ``path``
    (a process killed while writing), sorted; ``[]`` when its directory does not exist."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    pattern = temporary_name_pattern(path, suffix)
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(os.path.join(directory, n) for n in names
                  if pattern.match(n) and os.path.isfile(os.path.join(directory, n)))


def remove_stale_temporary_files(path, suffix=None):
    """Delete :func:`stale_temporary_files` ``(path, suffix)``; returns the paths deleted.  Only
    names of :func:`atomic_path`'s own pattern for this ``path`` are touched; call it when no
    other process writes ``path``."""
    removed = []
    for tmp in stale_temporary_files(path, suffix):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
            removed.append(tmp)
    return removed
