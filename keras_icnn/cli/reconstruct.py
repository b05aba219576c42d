"""``keras-icnn reconstruct``: the batch job (``--config recon.yaml``, a brain-decoding cookbook
config: :mod:`keras_icnn.cli.study`; ``--dask SPEC``: on a Dask cluster,
:mod:`keras_icnn.distributed`).

Everything is checked before any work (the settings, the feature files, the output
locations, the files already in ``--out``); then the targets go through one ``Reconstructor``
``--batch-size`` at a time.  Per target it writes ``<name>_options.json`` (the settings, the
Reconstructor's ``get_config()`` and what was used: ``--config`` reruns it), ``<name>_loss.json``
and ``<name>.png``, in that order, each atomically.  The steps are
:mod:`keras_icnn.cli.features_job`'s.
"""
from __future__ import annotations

import sys

from keras_icnn.cli import features_job, options
from keras_icnn.cli.batches import BatchJob
from keras_icnn.cli.common import EXIT_DONE, EXIT_FAILED

__all__ = ["add_parser", "run", "BatchJob"]


def add_parser(sub):
    p = options.add_parser(sub)
    p.set_defaults(func=run)
    return p


def run(args, argv):
    """The job; returns the exit status.  ``--config`` with a ``.yaml``/``.yml`` file: the
    cookbook's run (:mod:`keras_icnn.cli.study`); ``--dask``: the same on a Dask cluster."""
    from keras_icnn.cli.study_config import is_yaml_config
    if getattr(args, "dask", None):
        from keras_icnn.distributed.command import run as run_on_dask
        return run_on_dask(args, argv)
    if is_yaml_config(args.config):
        from keras_icnn.cli import study
        return study.run(args, argv)
    res, encoder, used, _, pending = features_job.start(args, argv)
    if not pending:
        return EXIT_DONE
    failed = features_job.build_job(args, encoder, used, res).run(pending)
    if failed:
        print(f"keras-icnn reconstruct: {len(failed)} target(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"done: {len(pending)} target(s) reconstructed into {args.out}", flush=True)
    return EXIT_DONE
