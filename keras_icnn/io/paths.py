"""File-name arguments: checking them and reading their extension."""
from __future__ import annotations

import os

__all__ = ["check_file_name", "check_existing_file", "file_extension", "check_output_dir"]


def check_file_name(path) -> None:
    """Raise ``ValueError`` unless ``path`` is a file name (``str`` or ``os.PathLike``)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path: expected a file name (str or os.PathLike), got {type(path).__name__}")


def check_existing_file(path, what="file") -> str:
    """``path`` as a ``str`` after checking that it names an existing file (not a directory);
    ``what`` names the kind of file in the errors."""
    check_file_name(path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path}: expected a file ({what}), got a directory")
    if not os.path.isfile(path):  # opening a FIFO would block until a writer comes
        raise ValueError(f"{path}: expected a regular file ({what}), got a device, FIFO or socket")
    return path


def file_extension(path) -> str:
    """The extension of ``path`` in lower case, with its dot (``".mat"``); ``""`` if none."""
    return os.path.splitext(os.fspath(path))[1].lower()


def check_output_dir(path, what="output directory") -> str:
    """``path`` as a ``str`` after checking that it is, or can become, a writable directory:
    not an existing file, and the nearest existing directory above it writable.  Nothing is
    created.  ``what`` names the argument in the errors."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{what}: expected a directory path, got {path!r}")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{what}: {path} exists and is not a directory")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{what}: {path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: {path} cannot be written (no permission in {existing})")
    return path
