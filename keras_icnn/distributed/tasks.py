"""The workers' side of a Dask run: one task = one batch of targets.

A worker builds the job of a run spec (:mod:`keras_icnn.distributed.plans`: the checked
settings as JSON) once -- encoder, generator, ``Reconstructor`` -- and keeps it for the next
tasks of the same run, so the compiled step is reused; it fits the batch and writes its
outputs as the serial job does (atomically, into the shared output directory, with
``--checkpoint-every``'s backup), in the client's working directory.  What the job prints is
captured and returned with the result, for the client to show.  One task at a time per
worker process (the job is not thread safe).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import types

__all__ = ["run_batch", "built_job", "FeatureWorkerJob", "StudyWorkerJob"]

_LOCK = threading.Lock()
_CACHE = {}  # run spec (JSON text) -> its built job; one run at a time is kept


class FeatureWorkerJob:
    """A feature-file run's job, built from its prepared arguments."""

    def __init__(self, spec):
        from keras_icnn.cli import features_job
        args = types.SimpleNamespace(**spec["args"])
        args.explicit, args.quiet = set(args.explicit), True
        res = features_job.resources(args)
        encoder, used = features_job.networks(args, res)
        self.job = features_job.build_job(args, encoder, used, res)

    def run(self, task):
        """Fit and write one batch: True when written, False when it failed."""
        from keras_icnn.cli.targets import Target
        batch = [Target(*t) for t in task["targets"]]
        return self.job.run_batch(task["index"], batch), self.job.last_error


class StudyWorkerJob:
    """A cookbook-config run's job: the study (checked again here: it reads the feature
    tree), its encoder and ``Reconstructor``; one :class:`StudyBatchJob` per selection."""

    def __init__(self, spec):
        from keras_icnn.cli import study
        from keras_icnn.cli.study_config import StudyConfig
        config = StudyConfig(spec["path"], spec["tree"])
        self.study = study.Study(config, types.SimpleNamespace(**{**spec["job"],
                                                                   "quiet": True})).check()
        self.encoder = study.load_network("encoder", config.encoder, self.study.include_top)
        self.rec = study.reconstructor(self.study, self.encoder)

    def run(self, task):
        from keras_icnn.cli import study
        sel = tuple(task["selection"])
        job = study.selection_job(self.study, sel, self.encoder, self.rec)
        labels = [study.Label(*label) for label in task["labels"]]
        return job.run_batch(task["index"], labels), job.last_error


def built_job(spec_text):
    """The job of the run spec ``spec_text``, built on first use in this process."""
    job = _CACHE.get(spec_text)
    if job is None:
        _CACHE.clear()  # another run's networks go
        spec = json.loads(spec_text)
        kind = {"features": FeatureWorkerJob, "study": StudyWorkerJob}[spec["kind"]]
        job = _CACHE[spec_text] = kind(spec)
    return job


@contextlib.contextmanager
def _working_directory(path):
    """``contextlib.chdir`` (Python 3.11+) for Python 3.10 too."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"the client's working directory {path} is not on this worker "
                                "(keras-icnn's Dask workers need the client's file system)")
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_batch(spec_text, task):
    """The task: fit and write the batch ``task`` of the run ``spec_text``.  Returns
    ``{"names", "ok", "error", "log", "pid"}`` (``error``: why the batch failed, its loss
    having become NaN/Inf; other errors are raised)."""
    log = io.StringIO()
    cwd = json.loads(spec_text)["cwd"]
    with _LOCK, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
            _working_directory(cwd):
        ok, error = built_job(spec_text).run(task)
    return {"names": task["names"], "ok": bool(ok), "error": error, "log": log.getvalue(),
            "pid": os.getpid()}
