"""``keras_icnn.distributed.reconstruct_many``: the ``reconstruct`` job on a Dask cluster from
Python, with the command line's settings by name."""
from __future__ import annotations

import argparse
import os

from keras_icnn.cli import options
from keras_icnn.distributed.jobs import run_plan
from keras_icnn.distributed.plans import plan_job

__all__ = ["reconstruct_many", "settings_argv"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(f"reconstruct_many: {message}")


def _parser():
    p = _Parser(prog="reconstruct_many", add_help=False)
    return p, options.add_arguments(p)


def _flag(action, value):
    """The command-line form of ``value`` for ``action``'s flag (``[]``: not given)."""
    if action.nargs == 0:  # --overwrite, --quiet
        return [action.option_strings[0]] if value else []
    if isinstance(value, (list, tuple)) and action.dest == "layers":
        value = ",".join(value)
    return [action.option_strings[0], os.fspath(value) if isinstance(value, os.PathLike)
            else str(value)]


def settings_argv(features, out, config, settings):
    """The ``reconstruct`` command line of these arguments (a ``TypeError`` for a name that is
    no setting)."""
    actions = _parser()[1]
    unknown = sorted(k for k in settings if k not in actions or k in ("features", "dask"))
    if unknown:
        known = ", ".join(sorted(k for k in actions if k not in ("features", "dask")))
        raise TypeError(f"reconstruct_many: unknown setting(s) {', '.join(unknown)}; the "
                        f"settings are the command line's: {known}")
    features = [features] if isinstance(features, (str, os.PathLike)) else list(features or [])
    argv = [os.fspath(f) for f in features]
    for dest, value in (("out", out), ("config", config), *settings.items()):
        if value is not None:
            argv += _flag(actions[dest], value)
    return argv


def reconstruct_many(client, features=None, out=None, *, config=None, quiet=True,
                     **settings):
    """Run ``keras-icnn reconstruct`` on the Dask cluster of ``client`` (a
    ``dask.distributed.Client``): the same checks, skipping of done targets, batches and
    outputs as the serial command, bit for bit.

    ``features``: feature files, directories or globs (one or a list); ``out``: the output
    directory; ``config``: a ``<target>_options.json`` to rerun, or a brain-decoding cookbook
    YAML config (then ``features`` and ``out`` are the config's); ``settings``: the command
    line's, by their Python names (``preset``, ``variant``, ``layers`` (a list or
    comma-separated text), ``iterations``, ``size``, ``weights``, ``seed``, ``batch_size``,
    ``checkpoint_every``, ``overwrite``, ...); ``quiet``: no progress bar.

    Returns a :class:`keras_icnn.distributed.jobs.RunReport` (``done``, ``skipped``,
    ``failed`` as ``{target: why}``, ``exit_status``).  Bad input raises ``ValueError`` (or
    ``FileNotFoundError``) before any work; a target whose loss becomes NaN/Inf is in
    ``failed``, the others are written.  The workers need keras-icnn and the files (features,
    networks, ``out``) at the same paths as the client."""
    if not hasattr(client, "submit") or not hasattr(client, "scheduler_info"):
        raise TypeError(f"reconstruct_many: client must be a dask.distributed.Client, got "
                        f"{type(client).__name__}")
    argv = settings_argv(features, out, config, {**settings, "quiet": quiet})
    args = _parser()[0].parse_args(argv)
    args.dask = None
    return run_plan(client, plan_job(args, argv), quiet=quiet)
