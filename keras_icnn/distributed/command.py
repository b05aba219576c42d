"""``keras-icnn reconstruct --dask SPEC``: check and plan (as the serial job, before any
work) while a LocalCluster starts (its workers import TensorFlow meanwhile), or join a
scheduler after; run; close what was started."""
from __future__ import annotations

import concurrent.futures

from keras_icnn.cli.common import EXIT_DONE
from keras_icnn.distributed.cluster import connect, parse_spec, require_distributed
from keras_icnn.distributed.jobs import run_plan
from keras_icnn.distributed.plans import plan_job

__all__ = ["run"]


def _close(client, cluster):
    client.close()
    if cluster is not None:
        cluster.close()


def _discard(starting):
    """Close the cluster being started (planning failed, or nothing to do)."""
    if starting is not None:
        try:
            _close(*starting.result())
        except Exception:  # it did not start: nothing to close
            pass


def run(args, argv):
    """The job on the cluster ``args.dask``; returns the exit status."""
    spec = parse_spec(args.dask)
    require_distributed()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        starting = pool.submit(connect, spec) if spec.kind == "local" else None
        try:
            plan = plan_job(args, argv)
            started = plan.tasks and (starting.result() if starting is not None
                                      else connect(spec))
        except BaseException:  # bad input, Ctrl-C: close the cluster being started
            _discard(starting)
            raise
        if not started:
            _discard(starting)
            return EXIT_DONE
    client, cluster = started
    try:
        return run_plan(client, plan, quiet=args.quiet).exit_status
    finally:
        _close(client, cluster)
