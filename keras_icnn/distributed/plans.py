"""The client's side of a Dask run, before any work: the serial job's checks and plan
(:mod:`keras_icnn.cli.features_job`, :mod:`keras_icnn.cli.study`), made into a *run spec*
(the checked settings as plain JSON: what a worker builds its job from) and *tasks* (the
serial job's batches, one task each: their targets by name)."""
from __future__ import annotations

import collections
import json
import os

from keras_icnn.cli import features_job, study
from keras_icnn.cli.batches import split_batches

__all__ = ["JobPlan", "plan_job", "args_json"]

#: A planned run: ``spec`` (JSON text), ``tasks`` (one dict per batch, with ``names``: the
#: targets as reported), ``skipped`` (names of the targets done already) and ``out`` (where
#: the outputs go).
JobPlan = collections.namedtuple("JobPlan", "spec tasks skipped out")
#: Attributes of the parsed arguments that are not settings of the job.
NOT_SETTINGS = ("func", "command", "dask")


def args_json(args):
    """The prepared arguments as a JSON object (the ``explicit`` flags as a sorted list)."""
    values = {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS}
    values["explicit"] = sorted(values.get("explicit") or ())
    try:
        json.dumps(values)
    except TypeError as e:  # pragma: no cover - a setting that is not plain JSON
        raise ValueError(f"--dask: a setting is not plain JSON ({e})") from None
    return values


def _spec(kind, **fields):
    return json.dumps({"kind": kind, "cwd": os.getcwd(), **fields}, sort_keys=True)


def _feature_plan(args, argv):
    _, encoder, _, all_targets, pending = features_job.start(args, argv)
    del encoder
    batches = split_batches(pending, args.batch_size)
    tasks = [{"index": b, "of": len(batches), "names": [t.name for t in batch],
              "targets": [list(t) for t in batch]} for b, batch in enumerate(batches, 1)]
    todo = {t.name for t in pending}
    return JobPlan(_spec("features", args=args_json(args)), tasks,
                   [t.name for t in all_targets if t.name not in todo], args.out)


def _study_tasks(todo, batch_size):
    tasks = []
    for sel, labels in todo.items():
        for batch in split_batches(labels, batch_size):
            tasks.append({"selection": list(sel), "labels": [list(label) for label in batch],
                          "names": [study.label_name(sel, label.name) for label in batch]})
    for b, task in enumerate(tasks, 1):
        task.update(index=b, of=len(tasks))
    return tasks


def _study_plan(args, argv):
    run, todo = study.prepare(args, argv)
    if todo:
        study.encoder_for(run, todo)  # the first target checked against it, before any work
    pending = {(sel, label.name) for sel, labels in todo.items() for label in labels}
    skipped = [study.label_name(sel, name) for sel, names in run.labels.items()
               for name in names if (sel, name) not in pending]
    spec = _spec("study", path=run.config.path, tree=run.config.tree, job=vars(run.job))
    return JobPlan(spec, _study_tasks(todo, run.job.batch_size), skipped,
                   run.config.output_dir)


def plan_job(args, argv):
    """Check everything and plan the run of the parsed ``reconstruct`` arguments ``args``
    (``argv``: the command line they came from, for ``--config``): a :data:`JobPlan`."""
    from keras_icnn.cli.study_config import is_yaml_config
    if is_yaml_config(args.config):
        return _study_plan(args, argv)
    return _feature_plan(args, argv)
