"""``keras-icnn reconstruct``: the batch job.

Everything is checked before any work (the settings, the feature files, the output
locations, the files already in ``--out``); then the targets go through one ``Reconstructor``
``--batch-size`` at a time.  Per target it writes ``<name>_options.json`` (the settings, the
Reconstructor's ``get_config()`` and what was used: ``--config`` reruns it), ``<name>_loss.json``
and ``<name>.png``, in that order, each atomically.
"""
from __future__ import annotations

import os
import sys

from keras_icnn.cli import build, options, outputs, targets
from keras_icnn.cli.common import (EXIT_DONE, EXIT_FAILED, absolute_if_file, check_positive,
                                   load_encoder, load_generator, run_name, versions,
                                   write_json)

__all__ = ["add_parser", "run", "BatchJob"]


def add_parser(sub):
    p = options.add_parser(sub)
    p.set_defaults(func=run)
    return p


def _check_numbers(args, latent):
    from keras_icnn.models import VGG19_FC_LAYERS
    check_positive(args.iterations, "--iterations")
    check_positive(args.batch_size, "--batch-size")
    if args.checkpoint_every is not None:
        check_positive(args.checkpoint_every, "--checkpoint-every")
    if args.size < 32:
        raise ValueError(f"--size: VGG19 needs images of at least 32 pixels, got {args.size}")
    if latent and args.size > 256:
        raise ValueError(f"--size: the generator makes 256x256 images; the encoder input "
                         f"must be at most 256, got {args.size}")
    fc = [n for n in args.layers if n in VGG19_FC_LAYERS]
    if fc and args.size != 224:
        raise ValueError(f"--size {args.size}: the fully connected layers ({', '.join(fc)}) "
                         "need 224x224 images; use --size 224 or choose conv layers with "
                         "--layers")
    return bool(fc)


def _prepare(args, argv):
    """Check the settings and inputs (nothing computed or written): returns the feature
    files, the reference stds, the latent upper bound and whether the fc layers are used."""
    from keras_icnn.objective.scaling import load_feature_std
    options.apply_config(args, argv)
    preset = build.resolve(args)
    latent = build.optimises_latent(args.reconstructor or preset)
    files = targets.expand_features(args.features)
    args.layers = (targets.parse_layers(args.layers) if args.layers
                   else targets.default_layers(files[0]))
    fc = _check_numbers(args, latent)
    ref_std = load_feature_std(args.std_correction) if args.std_correction else None
    upper = build.parse_latent_upper(args.latent_upper) if latent else None
    if upper is not None and isinstance(upper, str):
        args.latent_upper = upper
    outputs.check_locations(args)
    return files, ref_std, upper, latent, fc


def _settings(args, gen_used):
    """The settings entries of the options file (:data:`options.SETTINGS`)."""
    values = {k: getattr(args, k) for k in options.SETTINGS}
    values.update(weights=absolute_if_file(args.weights),
                  generator_weights=absolute_if_file(args.generator_weights)
                  if gen_used else None,
                  latent_upper=args.latent_upper if gen_used else None,
                  std_correction=(os.path.abspath(args.std_correction)
                                  if args.std_correction else None))
    return values


def _common_record(args, rec, used, gen_used, ref_std):
    cfg = rec.get_config()
    settings = {**_settings(args, gen_used), "initial": cfg["initial"]}
    return {**versions(), "command": "reconstruct", **settings,
            "encoder": "vgg19", "weights_used": used, "generator_weights_used": gen_used,
            **build.describe(cfg, args.latent_upper),
            "reference_std": {k: ref_std[k] for k in args.layers} if ref_std else None,
            options.RECONSTRUCTOR: cfg}


def _plan(args, all_targets):
    names = [t.name for t in all_targets]
    outputs.clean_stale(args.out, names)
    pending, done = outputs.plan_targets(args.out, names, args.overwrite)
    for name in done:
        print(f"skip {name}: {os.path.join(args.out, name)}.png, _loss.json and "
              "_options.json exist", flush=True)
    return [t for t in all_targets if t.name in set(pending)]


def run(args, argv):
    """The job; returns the exit status."""
    files, ref_std, upper, latent, fc = _prepare(args, argv)
    encoder, used = load_encoder(args.weights, args.size, args.seed, include_top=fc)
    load = _loader(args, encoder, ref_std)
    all_targets = targets.collect_targets(files, load)
    pending = _plan(args, all_targets)
    method = f"variant {args.variant}" if args.variant else f"preset {args.preset}"
    print(f"keras-icnn reconstruct: {len(all_targets)} target(s) in {len(files)} file(s), "
          f"{len(all_targets) - len(pending)} done already, {len(pending)} to do; {method}, "
          f"VGG19 ({used} weights) at {args.size}x{args.size}, {len(args.layers)} "
          f"layer(s), {args.iterations} iterations", flush=True)
    if not pending:
        return EXIT_DONE
    gen, gen_used = load_generator(args.generator_weights, args.seed) if latent else (None,
                                                                                       None)
    rec = build.reconstructor(args, encoder, gen, used, upper)
    job = BatchJob(args, rec, targets.BatchLoader(load, args.layers),
                   _common_record(args, rec, used, gen_used, ref_std))
    failed = job.run(pending)
    if failed:
        print(f"keras-icnn reconstruct: {len(failed)} target(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"done: {len(pending)} target(s) reconstructed into {args.out}", flush=True)
    return EXIT_DONE


def _loader(args, encoder, ref_std):
    def load(path):
        return targets.load_target_file(path, args.layers, encoder, args.data_format, ref_std)
    return load


class BatchJob:
    """Reconstruct the pending targets ``--batch-size`` at a time and write their outputs."""

    def __init__(self, args, rec, loader, record):
        self.args, self.rec, self.loader, self.record = args, rec, loader, record

    def run(self, pending):
        """Returns the names of the targets that failed."""
        size = self.args.batch_size
        batches = [pending[i:i + size] for i in range(0, len(pending), size)]
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
        cbs = self.callbacks(names)
        try:
            self.rec.fit(self.loader.batch(batch), iterations=self.args.iterations,
                         initial=np.stack([s[0] for s in starts]), callbacks=cbs,
                         verbose=0 if self.args.quiet else 1)
        except (NonFiniteLossError, ZeroGradientError) as e:  # fail this batch, go on
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
