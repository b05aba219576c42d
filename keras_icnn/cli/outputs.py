"""The files the command line writes, and the files it must leave alone.

Policy ("nothing lost, nothing silent"):

* Every output location is checked before any work: a path that is an existing file, or a
  directory that cannot be created or written, is a one-line error (exit status 2).
* The command line replaces only files it wrote itself, unless ``--overwrite`` is given.  What
  it wrote is recorded in a *record*, a JSON file with ``"package": "keras-icnn"`` and
  ``"outputs"`` (the names of the files written with it): ``<target>_options.json`` for each
  target of ``reconstruct`` (written first, before ``_loss.json`` and the PNG, so that a job
  killed in between still owns its files), ``summary.json`` for ``demo``.  Any other existing
  file under an output's name (a user's ``photo.png`` beside ``photo.mat``) stops the command
  before any work, naming the file; ``--overwrite`` replaces it.
* Temporary files of :func:`keras_icnn.io.atomic_path` left by a killed run are removed (with
  a note) when the command runs again in the same directory; only the temporary names of this
  command's own outputs are touched.
"""
from __future__ import annotations

import json
import os
import tempfile

from keras_icnn.cli.common import PACKAGE, write_json

__all__ = ["TARGET_SUFFIXES", "CHECKPOINTS", "check_directory", "check_locations",
           "target_paths", "owned_names", "foreign_files", "refuse_foreign", "plan_targets",
           "remove_stale", "clean_stale", "write_claimed", "checkpoint_dir",
           "remove_checkpoint"]

#: The outputs of one target, in the order they are written (the record first, the PNG last:
#: a target is done when all three exist).
TARGET_SUFFIXES = ("_options.json", "_loss.json", ".png")
#: The directory of ``--checkpoint-every``'s backups inside ``--out``.
CHECKPOINTS = ".checkpoints"


# -- output locations ---------------------------------------------------------------------
def check_directory(path, flag, create=True):
    """Before any work: ``path`` is a writable directory (made when ``create``, else only
    checked when it exists); else a one-line ``ValueError`` naming ``flag``."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path}: exists and is not a directory")
    if not create and not os.path.exists(path):
        return
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".keras-icnn-write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot create or write this directory "
                         f"({e.strerror or e})") from None


def check_locations(args):
    """``reconstruct``'s ``--out``, ``--logdir`` and checkpoint directory."""
    check_directory(args.out, "--out")
    if args.logdir:
        check_directory(args.logdir, "--logdir")
    if args.checkpoint_every:
        check_directory(os.path.join(args.out, CHECKPOINTS), "--checkpoint-every: the "
                        "checkpoint directory", create=False)


# -- ownership ----------------------------------------------------------------------------
def _read_record(path):
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) and obj.get("package") == PACKAGE else None


def _is_legacy_options(obj, record):
    """An options file of keras-icnn 0.1's ``reconstruct`` (before records listed their
    outputs): it wrote the three files of its target."""
    return obj.get("command") == "reconstruct" and "outputs" not in obj and \
        os.path.basename(record) == f"{obj.get('target')}{TARGET_SUFFIXES[0]}"


def owned_names(record):
    """The names of the files the record ``record`` says keras-icnn wrote (empty when it is
    not a keras-icnn record listing itself)."""
    obj = _read_record(record)
    if obj is None:
        return set()
    if _is_legacy_options(obj, record):
        return {obj["target"] + s for s in TARGET_SUFFIXES}
    names = obj.get("outputs")
    if not isinstance(names, list) or os.path.basename(record) not in names:
        return set()
    return {n for n in names if isinstance(n, str)}


def foreign_files(paths, record):
    """The existing ``paths`` that the record ``record`` does not claim."""
    owned = owned_names(record)
    return [p for p in paths if os.path.lexists(p) and os.path.basename(p) not in owned]


def refuse_foreign(foreign, command):
    """A one-line ``ValueError`` about the first of ``foreign``."""
    more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
    raise ValueError(f"{foreign[0]} exists and was not written by keras-icnn {command}"
                     f"{more}; use --overwrite to replace it, or another --out")


def target_paths(out, name):
    """``[<name>_options.json, <name>_loss.json, <name>.png]`` in ``out``."""
    return [os.path.join(out, name + s) for s in TARGET_SUFFIXES]


def plan_targets(out, names, overwrite):
    """``(pending, done)`` target names: done = its three files exist and are keras-icnn's.
    Without ``overwrite``, a file keras-icnn did not write under an output's name stops here."""
    pending, done, foreign = [], [], []
    for name in names:
        paths = target_paths(out, name)
        if not overwrite:
            theirs = foreign_files(paths, paths[0])
            if theirs:
                foreign += theirs
                continue
            if all(os.path.exists(p) for p in paths):
                done.append(name)
                continue
        pending.append(name)
    if foreign:
        refuse_foreign(foreign, "reconstruct")
    return pending, done


def _removed_note(removed):
    if removed:
        print(f"note: removed {len(removed)} temporary file(s) left by an interrupted run: "
              f"{', '.join(os.path.basename(t) for t in removed)}", flush=True)


def remove_stale(paths, suffix=None, say=True):
    """Remove the temporary files that a killed run left for ``paths`` (saying so when
    ``say``); returns their paths."""
    from keras_icnn.io.atomic import remove_stale_temporary_files
    removed = [t for p in paths for t in remove_stale_temporary_files(p, suffix)]
    if say:
        _removed_note(removed)
    return removed


def clean_stale(out, names):
    """``reconstruct``: remove the temporary files a killed run left for the outputs of the
    targets ``names`` and for the backups under ``<out>/.checkpoints`` (and the backup
    directories left empty); one note."""
    removed = remove_stale([p for n in names for p in target_paths(out, n)], say=False)
    _removed_note(removed + _clean_checkpoints(out))


def write_claimed(record, obj, paths):
    """Write the record ``record`` (``obj`` plus ``package`` and ``outputs``: the names of
    ``paths``, the record included) before the files it claims."""
    names = [os.path.basename(p) for p in paths]
    write_json(record, {**obj, "package": PACKAGE, "outputs": names})


# -- checkpoints --------------------------------------------------------------------------
def checkpoint_dir(out, batch_name):
    """``<out>/.checkpoints/<batch name>``."""
    return os.path.join(out, CHECKPOINTS, batch_name)


def _clean_checkpoints(out):
    from keras_icnn import BackupAndRestore
    root = os.path.join(out, CHECKPOINTS)
    if not os.path.isdir(root):
        return []
    dirs = [os.path.join(root, d) for d in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, d))]
    removed = remove_stale([BackupAndRestore(d).path for d in dirs], suffix=".npz", say=False)
    for d in dirs + [root]:
        try:
            os.rmdir(d)  # only if empty
        except OSError:
            pass
    return removed


def remove_checkpoint(out, batch_name):
    """Delete a batch's backup (its outputs are written; also one a run without
    ``--checkpoint-every`` left behind) and the directories left empty."""
    from keras_icnn import BackupAndRestore
    directory = checkpoint_dir(out, batch_name)
    if not os.path.isdir(directory):
        return
    path = BackupAndRestore(directory).path
    if os.path.exists(path):
        os.remove(path)
    for d in (directory, os.path.dirname(directory)):
        try:
            os.rmdir(d)  # only if nothing else is in it
        except OSError:
            break
