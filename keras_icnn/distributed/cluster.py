"""``--dask SPEC``: which cluster to use, and connecting to it.

* ``local:N``: a ``dask.distributed.LocalCluster`` of N worker processes on this machine,
  one thread each, each worker's TensorFlow given ``max(1, cores // N)`` threads;
* ``tcp://HOST:PORT`` (any ``scheme://`` address): an existing scheduler (``dask scheduler``,
  dask-jobqueue's ``SLURMCluster``, ...);
* a path to an existing scheduler file (``dask scheduler --scheduler-file FILE``).
"""
from __future__ import annotations

import collections
import os

__all__ = ["INSTALL_HINT", "Spec", "require_distributed", "parse_spec", "worker_threads",
           "connect", "gpu_resources"]

#: How to get Dask's ``distributed``.
INSTALL_HINT = 'pip install "keras-icnn[dask]"'
#: A parsed ``--dask``: ``kind`` "local" (``value`` N), "address" or "scheduler_file".
Spec = collections.namedtuple("Spec", "kind value")


def require_distributed():
    """Dask's ``distributed`` module, or a ``ValueError`` saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ValueError(f"--dask: Dask's distributed package is not installed; "
                         f"{INSTALL_HINT}") from None
    return distributed


def parse_spec(text):
    """``--dask SPEC`` -> :data:`Spec`; a ``ValueError`` naming the expected forms otherwise."""
    expected = ("expected local:N (N worker processes here), a scheduler address "
                "(tcp://HOST:PORT) or an existing scheduler file")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--dask: {expected}, got {text!r}")
    text = text.strip()
    if text.lower().startswith("local:"):
        n = text.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--dask {text}: N of local:N must be a positive number of "
                             "workers")
        return Spec("local", int(n))
    if "://" in text:
        return Spec("address", text)
    if os.path.isfile(text):
        return Spec("scheduler_file", os.path.abspath(text))
    raise ValueError(f"--dask {text}: {expected}")


def worker_threads(n_workers, cores=None):
    """TensorFlow threads of each of ``n_workers`` local workers: the cores shared out."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // n_workers)


def _local_cluster(n, env=None):
    from distributed import LocalCluster
    t = str(worker_threads(n))
    env = {"OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t, "TF_NUM_INTRAOP_THREADS": t,
           "TF_NUM_INTEROP_THREADS": t, **(env or {})}
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                        dashboard_address=None, env=env,
                        preload=["keras_icnn.distributed.preload"])


def connect(spec, timeout=30, env=None):
    """``(client, cluster)`` for ``spec`` (text or :data:`Spec`); ``cluster`` is the
    LocalCluster started here (close it after the client; ``env``: more environment variables
    of its workers), None when joining one.  An address that cannot be reached within
    ``timeout`` seconds is a ``ValueError``."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    require_distributed()
    from distributed import Client
    if spec.kind == "local":
        cluster = _local_cluster(spec.value, env)
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    where = {"address": spec.value} if spec.kind == "address" else \
        {"scheduler_file": spec.value}
    try:
        return Client(**where, timeout=timeout), None
    except (OSError, TimeoutError, ValueError) as e:
        raise ValueError(f"--dask {spec.value}: cannot reach the Dask scheduler within "
                         f"{timeout} s ({' '.join(str(e).split())})") from None


def gpu_resources(client):
    """``{"GPU": 1}`` when a worker advertises a ``GPU`` resource (``dask worker
    --resources GPU=1``), else None: each batch then holds one GPU of its worker."""
    workers = client.scheduler_info().get("workers", {})
    if any("GPU" in (w.get("resources") or {}) for w in workers.values()):
        return {"GPU": 1}
    return None
