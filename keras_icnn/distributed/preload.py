"""Imported by each worker of a LocalCluster started by ``--dask local:N`` when it starts
(Dask's ``preload``): TensorFlow and keras-icnn load while the client still checks the
inputs, not in the first task."""
import keras_icnn  # noqa: F401
import keras_icnn.distributed.tasks  # noqa: F401
