"""The feature-file job of ``keras-icnn reconstruct`` in its steps, shared by the serial run
(:mod:`keras_icnn.cli.reconstruct`) and the Dask run (:mod:`keras_icnn.distributed`):

* :func:`prepare` checks the settings and inputs (nothing computed or written);
* :func:`plan` reads the targets and says which are done (skipped) and which to do;
* :func:`networks` and :func:`build_job` make the encoder, generator, ``Reconstructor`` and
  the :class:`~keras_icnn.cli.batches.BatchJob` that fits and writes the targets -- from the
  checked settings and their :func:`resources` only, so that a Dask worker given those
  settings (plain JSON) builds the same job as the serial run;
* :func:`start` runs the steps up to the plan, as both runs begin.
"""
from __future__ import annotations

import os
import types

from keras_icnn.cli import build, options, outputs, targets
from keras_icnn.cli.batches import BatchJob
from keras_icnn.cli.common import absolute_if_file, check_positive, load_encoder, \
    load_generator, versions

__all__ = ["require_inputs", "prepare", "resources", "plan", "networks", "start", "build_job",
           "settings_record"]


def require_inputs(args):
    """FEATURES and ``--out`` are given."""
    missing = [n for n, v in (("FEATURES", args.features), ("--out", args.out)) if not v]
    if missing:
        raise ValueError(f"{' and '.join(missing)} required (or --config CONFIG.yaml, a "
                         "brain-decoding cookbook reconstruction config)")


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


def prepare(args, argv):
    """Check the settings and inputs (nothing computed or written); fills in ``args`` (the
    preset's settings, ``--config``'s, the layers) and returns the feature files and the
    :func:`resources` (read here, before any work)."""
    options.apply_config(args, argv)
    preset = build.resolve(args)
    latent = build.optimises_latent(args.reconstructor or preset)
    files = targets.expand_features(args.features)
    args.layers = (targets.parse_layers(args.layers) if args.layers
                   else targets.default_layers(files[0]))
    _check_numbers(args, latent)
    res = resources(args)
    if isinstance(res.upper, str):
        args.latent_upper = res.upper
    outputs.check_locations(args)
    return files, res


def resources(args):
    """What the prepared ``args`` use besides the networks: ``(reference stds or None, latent
    upper bound or None, whether the latent is optimised, whether fc layers are used)``."""
    from keras_icnn import presets
    from keras_icnn.models import VGG19_FC_LAYERS
    from keras_icnn.objective.scaling import load_feature_std
    latent = build.optimises_latent(args.reconstructor or presets.get(args.preset))
    ref_std = load_feature_std(args.std_correction) if args.std_correction else None
    upper = build.parse_latent_upper(args.latent_upper) if latent else None
    fc = any(n in VGG19_FC_LAYERS for n in args.layers)
    return types.SimpleNamespace(ref_std=ref_std, upper=upper, latent=latent, fc=fc)


def _loader(args, encoder, ref_std):
    def load(path):
        return targets.load_target_file(path, args.layers, encoder, args.data_format, ref_std)
    return load


def plan(args, files, encoder, used, res):
    """The targets of ``files`` (read and checked against ``encoder``, scaled with ``res``'s
    reference stds) and those to do; done ones are skipped (said), stale temporary files
    removed; prints the job's summary line.  Returns ``(all targets, pending targets)``."""
    all_targets = targets.collect_targets(files, _loader(args, encoder, res.ref_std))
    names = [t.name for t in all_targets]
    outputs.clean_stale(args.out, names)
    pending, done = outputs.plan_targets(args.out, names, args.overwrite)
    for name in done:
        print(f"skip {name}: {os.path.join(args.out, name)}.png, _loss.json and "
              "_options.json exist", flush=True)
    pending = [t for t in all_targets if t.name in set(pending)]
    method = f"variant {args.variant}" if args.variant else f"preset {args.preset}"
    print(f"keras-icnn reconstruct: {len(all_targets)} target(s) in {len(files)} file(s), "
          f"{len(all_targets) - len(pending)} done already, {len(pending)} to do; {method}, "
          f"VGG19 ({used} weights) at {args.size}x{args.size}, {len(args.layers)} "
          f"layer(s), {args.iterations} iterations", flush=True)
    return all_targets, pending


def networks(args, res):
    """The encoder of the prepared ``args`` (its fc layers when ``res`` uses them) and the
    weights it got: ``(model, used)``."""
    return load_encoder(args.weights, args.size, args.seed, include_top=res.fc)


def start(args, argv):
    """The steps both runs begin with: the inputs given, :func:`prepare`, :func:`networks`,
    :func:`plan`.  Returns ``(resources, encoder, weights used, all targets, pending)``."""
    require_inputs(args)
    files, res = prepare(args, argv)
    encoder, used = networks(args, res)
    return (res, encoder, used) + plan(args, files, encoder, used, res)


def settings_record(args, gen_used):
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
    settings = {**settings_record(args, gen_used), "initial": cfg["initial"]}
    return {**versions(), "command": "reconstruct", **settings,
            "encoder": "vgg19", "weights_used": used, "generator_weights_used": gen_used,
            **build.describe(cfg, args.latent_upper),
            "reference_std": {k: ref_std[k] for k in args.layers} if ref_std else None,
            options.RECONSTRUCTOR: cfg}


def build_job(args, encoder, used, res):
    """The :class:`BatchJob` of the prepared ``args`` and their :func:`resources` ``res``
    around ``encoder`` (the generator, when the preset has one, is made here)."""
    gen, gen_used = load_generator(args.generator_weights, args.seed) if res.latent \
        else (None, None)
    rec = build.reconstructor(args, encoder, gen, used, res.upper)
    return BatchJob(args, rec, targets.BatchLoader(_loader(args, encoder, res.ref_std),
                                                   args.layers),
                    _common_record(args, rec, used, gen_used, res.ref_std))
