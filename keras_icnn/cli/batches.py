"""The batch loop of ``keras-icnn reconstruct``: targets ``--batch-size`` at a time through one
``Reconstructor``, each batch backed up with ``--checkpoint-every`` and its outputs written
(``<name>_options.json``, ``<name>_loss.json``, ``<name>.png``); the cookbook-config run
(:mod:`keras_icnn.cli.study`) reuses it with the cookbook's outputs."""
from __future__ import annotations

import os
import sys

from keras_icnn.cli import outputs, targets
from keras_icnn.cli.common import run_name, write_json

__all__ = ["BatchJob", "split_batches"]


def split_batches(pending, size):
    """``pending`` in batches of ``size``, in order: the batches of the serial job (a Dask run
    uses the same ones: a batched forward pass rounds differently from a single one)."""
    return [pending[i:i + size] for i in range(0, len(pending), size)]


class BatchJob:
    """Reconstruct the pending targets ``--batch-size`` at a time and write their outputs."""

    def __init__(self, args, rec, loader, record):
        self.args, self.rec, self.loader, self.record = args, rec, loader, record
        self.last_error = None  #: why the last batch failed (None: it did not)

    def run(self, pending):
        """Returns the names of the targets that failed."""
        batches = split_batches(pending, self.args.batch_size)
        failed = []
        for b, batch in enumerate(batches, 1):
            names = [t.name for t in batch]
            print(f"batch {b}/{len(batches)}: {', '.join(names)}", flush=True)
            if not self.run_batch(b, batch):
                failed += names
        return failed

    def callbacks(self, names):
        """TensorBoard (``--logdir``) and the batch's backup (``--checkpoint-every``)."""
        import keras

        from keras_icnn import BackupAndRestore
        from keras_icnn.engine.callbacks import TensorBoardImages
        args, name, cbs = self.args, run_name(names), []
        if args.logdir:
            logdir = os.path.join(args.logdir, name)
            cbs += [keras.callbacks.TensorBoard(logdir, write_graph=False),
                    TensorBoardImages(logdir, every=max(1, args.iterations // 20))]
        if args.checkpoint_every:
            cbs.append(BackupAndRestore(outputs.checkpoint_dir(args.out, name),
                                        save_freq=args.checkpoint_every,
                                        delete_checkpoint=False))
        return cbs

    def run_batch(self, b, batch):
        """Fit one batch and write its outputs; False when it failed (NaN/Inf)."""
        import numpy as np

        from keras_icnn.errors import NonFiniteLossError, ZeroGradientError
        names = [t.name for t in batch]
        starts = [targets.start(self.rec.param, self.rec.initial, n, self.args.seed)
                  for n in names]
        cbs, self.last_error = self.callbacks(names), None
        try:
            self.rec.fit(self.loader.batch(batch), iterations=self.args.iterations,
                         initial=np.stack([s[0] for s in starts]), callbacks=cbs,
                         verbose=0 if self.args.quiet else 1)
        except (NonFiniteLossError, ZeroGradientError) as e:  # fail this batch, go on
            self.last_error = " ".join(str(e).split())
            print(f"error: batch {b} ({', '.join(names)}): {e}; nothing written for these "
                  "targets", file=sys.stderr, flush=True)
            return False
        self.note_no_iteration(b)
        self.write(batch, [s[1] for s in starts])
        outputs.remove_checkpoint(self.args.out, run_name(names))
        return True

    def note_no_iteration(self, b):
        if self.rec.iterations_run:
            return
        results = getattr(self.rec.optimizer, "results_", None)
        why = (getattr(results[0], "message", None) if isinstance(results, list) and results
               else None)
        print(f"note: batch {b}: the optimiser stopped before its first iteration"
              f"{f' ({why})' if why else ''}; the images are the starting points", flush=True)

    def write(self, batch, keys):
        """Per target: the options file (claiming the three names), the loss, the PNG."""
        from keras_icnn import io
        rec, args, names = self.rec, self.args, [t.name for t in batch]
        initial_losses = getattr(rec.optimizer, "initial_losses_", None)
        images, losses = rec.images, rec.loss_history_
        for i, t in enumerate(batch):
            paths = outputs.target_paths(args.out, t.name)
            outputs.write_claimed(paths[0], {
                **self.record, "target": t.name, "source": os.path.abspath(t.path),
                "index_in_file": t.index, "batch": names, "initial_seed": keys[i],
                "iterations_run": int(rec.iterations_run)}, paths)
            write_json(paths[1], _loss_record(t.name, losses[:, i], initial_losses, i,
                                              rec.iterations_run))
            io.save_image(paths[2], images[i], normalize=False if args.normalize == "none"
                          else args.normalize)  # last: the target is done when this exists
        print(f"wrote {', '.join(n + '.png' for n in names)} (+ _loss.json, _options.json) "
              f"to {args.out}", flush=True)


def _loss_record(name, losses, initial_losses, i, iterations_run):
    loss = [float(v) for v in losses]
    return {"target": name, "loss": loss,
            "initial_loss": None if initial_losses is None else float(initial_losses[i]),
            "iterations_run": int(iterations_run), "final_loss": loss[-1] if loss else None,
            "note": "feature loss of this image per iteration (the weighted sum over layers)"}
