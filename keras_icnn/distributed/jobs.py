"""A ``reconstruct`` run on a Dask cluster, client side: plan (the serial job's checks),
one task per batch, progress over the targets as the batches finish, the summary."""
from __future__ import annotations

import dataclasses
import sys
import time
import uuid

from keras_icnn.cli.common import EXIT_DONE, EXIT_FAILED
from keras_icnn.distributed import tasks
from keras_icnn.distributed.cluster import gpu_resources
from keras_icnn.distributed.progress import Progress

__all__ = ["RunReport", "run_plan", "submit"]

#: Times a task is run again after an error (a worker killed or lost is Dask's business:
#: its task is rerun elsewhere, up to ``distributed.scheduler.allowed-failures`` times).
RETRIES = 1


@dataclasses.dataclass
class RunReport:
    """What a run did: targets written (``done``), done already (``skipped``), failed (``{name:
    why}``), seconds, workers."""
    done: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 0

    @property
    def exit_status(self):
        """``keras-icnn reconstruct``'s: 1 when a target failed, else 0."""
        return EXIT_FAILED if self.failed else EXIT_DONE

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def submit(client, plan):
    """One future per task of ``plan`` (in order; each runs once: ``pure=False``)."""
    resources, run = gpu_resources(client), uuid.uuid4().hex[:8]
    return {client.submit(tasks.run_batch, plan.spec, task, pure=False, retries=RETRIES,
                          resources=resources,
                          key=f"keras-icnn-batch-{task['index']}-{run}"): task
            for task in plan.tasks}


def _result(future, task):
    """The task's result, or one that says why it failed (a worker lost too often, an error
    of the task)."""
    try:
        return future.result()
    except Exception as e:  # KilledWorker, an OSError on the worker, ...
        why = f"{type(e).__name__}: {' '.join(str(e).split())}"
        return {"names": task["names"], "ok": False, "error": why, "log": ""}


def _record(report, result, progress):
    progress.note(result["log"])
    if result["ok"]:
        report.done += result["names"]
        progress.advance(done=len(result["names"]))
        return
    for name in result["names"]:
        report.failed[name] = result["error"]
    progress.note(f"error: {', '.join(result['names'])}: {result['error']}; nothing written "
                  "for these targets")
    progress.advance(failed=len(result["names"]))


def _gather(client, futures, report, quiet):
    from distributed import as_completed
    progress = Progress(sum(len(t["names"]) for t in futures.values()), quiet=quiet)
    try:
        for future in as_completed(futures):
            _record(report, _result(future, futures[future]), progress)
    except BaseException:  # Ctrl-C: nothing more runs; what is written stays
        client.cancel(list(futures))
        raise
    finally:
        progress.close()


def _summary(report, out):
    where = f"{report.workers} Dask worker(s), {report.seconds:.1f} s"
    if report.failed:
        print(f"keras-icnn reconstruct: {len(report.failed)} target(s) failed: "
              f"{', '.join(report.failed)} ({len(report.done)} written into {out}; {where})",
              file=sys.stderr, flush=True)
    else:
        print(f"done: {len(report.done)} target(s) reconstructed into {out} ({where}; "
              f"{len(report.skipped)} done already)", flush=True)


def run_plan(client, plan, quiet=False):
    """Run the planned job ``plan`` (:func:`keras_icnn.distributed.plans.plan_job`) on
    ``client``'s cluster; returns the :class:`RunReport`."""
    start = time.monotonic()
    report = RunReport(skipped=list(plan.skipped),
                       workers=len(client.scheduler_info().get("workers", {})))
    if not plan.tasks:
        return report
    print(f"keras-icnn reconstruct: {len(plan.tasks)} batch(es) on {report.workers} Dask "
          f"worker(s) ({client.scheduler.address})", flush=True)
    _gather(client, submit(client, plan), report, quiet)
    report.seconds = time.monotonic() - start
    _summary(report, plan.out)
    return report
