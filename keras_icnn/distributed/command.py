"""``keras-icnn reconstruct --dask SPEC``: check and plan (as the serial job, before any
work), start a LocalCluster or join a scheduler, run, close what was started."""
from __future__ import annotations

from keras_icnn.cli.common import EXIT_DONE
from keras_icnn.distributed.cluster import connect, parse_spec, require_distributed
from keras_icnn.distributed.jobs import run_plan
from keras_icnn.distributed.plans import plan_job

__all__ = ["run"]


def run(args, argv):
    """The job on the cluster ``args.dask``; returns the exit status."""
    spec = parse_spec(args.dask)
    require_distributed()
    plan = plan_job(args, argv)
    if not plan.tasks:
        return EXIT_DONE
    client, cluster = connect(spec)
    try:
        return run_plan(client, plan, quiet=args.quiet).exit_status
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
