"""keras-icnn's batch jobs on a Dask cluster (``pip install "keras-icnn[dask]"``).

``keras-icnn reconstruct ... --dask local:N`` (N worker processes here) or ``--dask
tcp://HOST:PORT`` / ``--dask SCHEDULER_FILE`` (a cluster already running: ``dask scheduler``
and ``dask worker``, dask-jobqueue's ``SLURMCluster``, dask-cuda's ``LocalCUDACluster``), or
:func:`reconstruct_many` with a ``dask.distributed.Client``.

The client checks and plans as the serial job (:mod:`keras_icnn.cli.features_job`,
:mod:`keras_icnn.cli.study`) and submits one task per batch -- the serial job's batches --
carrying the run's settings as JSON (:mod:`.plans`); each worker builds its networks and
``Reconstructor`` once and reuses them across its tasks, writing each target's outputs
atomically into the shared output directory (:mod:`.tasks`); the client shows progress over
the targets and a summary (:mod:`.jobs`, :mod:`.progress`).  A worker killed mid-task: Dask
runs the task again elsewhere (from its ``--checkpoint-every`` backup when there is one); each
target's start depends only on the seed and its name, so the outputs are the serial run's.
Modules: :mod:`.cluster` (``--dask SPEC``), :mod:`.command` (the command line), :mod:`.api`.
"""
from __future__ import annotations

from keras_icnn.distributed.api import reconstruct_many
from keras_icnn.distributed.jobs import RunReport

__all__ = ["reconstruct_many", "RunReport"]
