"""``keras-icnn reconstruct``: the batch job (``--config recon.yaml``, a brain-decoding cookbook
config: :mod:`keras_icnn.cli.study`).

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
from keras_icnn.cli.batches import BatchJob
from keras_icnn.cli.common import (EXIT_DONE, EXIT_FAILED, absolute_if_file, check_positive,
                                   load_encoder, load_generator, versions)

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


def _require_inputs(args):
    missing = [n for n, v in (("FEATURES", args.features), ("--out", args.out)) if not v]
    if missing:
        raise ValueError(f"{' and '.join(missing)} required (or --config CONFIG.yaml, a "
                         "brain-decoding cookbook reconstruction config)")


def run(args, argv):
    """The job; returns the exit status.  ``--config`` with a ``.yaml``/``.yml`` file: the
    cookbook's run (:mod:`keras_icnn.cli.study`)."""
    from keras_icnn.cli.study_config import is_yaml_config
    if is_yaml_config(args.config):
        from keras_icnn.cli import study
        return study.run(args, argv)
    _require_inputs(args)
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
