"""``keras-icnn reconstruct --config recon.yaml``: the brain-decoding cookbook's iCNN
reconstruction (``reconstruction/recon_icnn_image_gd.py``) driven by its YAML config as it is
(:mod:`keras_icnn.cli.study_config` loads and checks it).

For each subject x ROI of ``decoded_features`` (once for true ``features``), every stimulus
label of the feature tree is reconstructed from the encoder's ``layers``: the decoded
features are rescaled by ``icnn.feature_scaling`` (``feature_std``: to the mean of the
reference std of ``encoder.feature_std_file``; ``feature_std_train_mean_center``: the same
around the decoders' training mean ``<decoders.path>/<layer>/<subject>/<roi>/model/
y_mean.mat``; none when not given; true features are not rescaled, as in the cookbook; the
std's ``ddof`` is the one the std file's name states, ``..._dof1.mat``, else 1 as the
cookbook's ``std_ddof``), then inverted with the ``cookbook_dgn_gd`` preset (DGN-GD on the
generator's input from N(0, 1), bounded by 0 .. ``generator.latent_upper_bound_file``,
1/||f||^2 layer weights) for ``icnn.num_iteration`` iterations, in Caffe space with the BGR
mean of ``encoder.image_mean_file``.  Outputs, as the cookbook writes them
(:func:`keras_icnn.io.save_recon_outputs`)::

    <output.path>/<subject>/<roi>/<prefix><label>.mat     recon_image, loss_history
    <output.path>/<subject>/<roi>/<prefix><label>.<ext>   the display image

A label whose two files exist is skipped (a finished label); one with only one of them (a run
killed between the two) is done again.  ``keras_icnn.checkpoint_every`` backs each batch up in
``<subject>/<roi>/.checkpoints/`` so that a killed job resumes inside its batch.  Every input
(networks, mean, bounds, std, decoders' means, the feature tree: every label of every layer)
and every output location is checked before any work: one line and exit status 2 otherwise.
"""
from __future__ import annotations

import collections
import os
import sys
import types

from keras_icnn.cli import build, outputs
from keras_icnn.cli.common import EXIT_DONE, EXIT_FAILED, check_positive
from keras_icnn.cli.batches import BatchJob
from keras_icnn.cli.study_config import DEFAULT_PRESET, load_study_config

__all__ = ["JOB_FLAGS", "run", "prepare", "encoder_for", "reconstructor", "selection_job",
           "batch_args", "label_name", "job_settings", "load_image_mean", "load_latent_upper",
           "load_network", "Study", "SelectionLoader", "StudyBatchJob"]

#: The ``reconstruct`` flags that may be given beside a YAML config (they override the
#: config's ``keras_icnn:`` settings of the same name); the others are the config's.
JOB_FLAGS = ("config", "batch_size", "checkpoint_every", "seed", "overwrite", "quiet", "logdir",
             "dask")
#: The generator names and the architecture each stands for.
GENERATORS = {"relu7generator": "DeepSim fc7 (keras_icnn.models.generators.deepsim_fc7)"}
#: One label to reconstruct; ``replace``: its outputs may be replaced (``overwrite``, or a
#: label a killed run left with one of its two files).
Label = collections.namedtuple("Label", "name replace")


# -- settings ---------------------------------------------------------------------------------
def _check_flags(explicit, config):
    other = sorted(explicit - set(JOB_FLAGS))
    if other:
        names = ", ".join("FEATURES" if k == "features" else "--" + k.replace("_", "-")
                          for k in other)
        raise ValueError(f"{names}: not with a cookbook config (--config {config}): its "
                         "settings are the config's (keras-icnn's own under keras_icnn:); "
                         "only --batch-size, --checkpoint-every, --seed, --overwrite, "
                         "--logdir, --quiet and --dask may be given beside it")


def _preset(options):
    from keras_icnn import presets
    if options["preset"] and options["variant"]:
        raise ValueError("keras_icnn: give preset or variant, not both")
    name = (build.VARIANTS[options["variant"]] if options["variant"]
            else options["preset"] or DEFAULT_PRESET)
    if not build.optimises_latent(presets.get(name)):
        raise ValueError(f"keras_icnn.preset: {name} optimises pixels; the config's generator "
                         "needs a preset that optimises its input (cookbook_dgn_gd, "
                         "paper_dgn_gd, icnn_dgn_gd, ...)")
    return name


def job_settings(args, study):
    """The run's settings: the config's ``keras_icnn:`` section (its defaults where not
    given), with the :data:`JOB_FLAGS` given on the command line over it."""
    options = dict(study.options)
    for key in ("batch_size", "checkpoint_every", "seed", "overwrite"):
        if key in args.explicit:
            options[key] = getattr(args, key)
    check_positive(options["batch_size"], "batch size")
    if options["checkpoint_every"] is not None:
        check_positive(options["checkpoint_every"], "checkpoint_every")
    if options["seed"] < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {options['seed']}")
    return types.SimpleNamespace(
        preset=_preset(options), iterations=study.num_iteration,
        batch_size=options["batch_size"], checkpoint_every=options["checkpoint_every"],
        seed=options["seed"], overwrite=bool(options["overwrite"]),
        lbfgs_impl=options["lbfgs_impl"], quiet=args.quiet, logdir=args.logdir)


# -- networks and their files -------------------------------------------------------------------
def load_image_mean(path):
    """The BGR mean of ``encoder.image_mean_file`` as the cookbook computes it: a ``.npy`` of
    Caffe's ``[3, H, W]`` mean image (or ``[3]``), averaged per channel -> float32 ``[3]``.

    (The cookbook's script computes it and then leaves its ``image_preprocess`` default,
    ``[104, 117, 123]``, in use: less than 0.4 apart per channel for ``ilsvrc_2012_mean.npy``;
    keras-icnn uses the file's.)"""
    import numpy as np

    from keras_icnn.io import check_existing_file
    check_existing_file(path, "encoder.image_mean_file")
    try:
        mean = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"encoder.image_mean_file {path}: not a readable .npy file "
                         f"({e})") from None
    if mean.dtype.kind not in "biuf" or mean.ndim not in (1, 3) or mean.shape[0] != 3 or \
            not np.all(np.isfinite(mean)):
        raise ValueError(f"encoder.image_mean_file {path}: expected Caffe's BGR mean, [3, H, W] "
                         f"or [3], got shape {mean.shape}, dtype {mean.dtype}")
    return np.float32(mean.reshape(3, -1).mean(axis=1))


def load_latent_upper(generator):
    """``generator.latent_upper_bound_file`` (whitespace-separated numbers) reshaped to
    ``latent_upper_bound_shape`` (when given), checked against ``latent_shape``."""
    import numpy as np

    from keras_icnn.params import load_latent_bounds
    path = generator["latent_upper_bound_file"]
    upper = load_latent_bounds(path)
    shape = generator.get("latent_upper_bound_shape") or generator.get("latent_shape") \
        or [upper.size]
    if upper.size != int(np.prod(shape)) or np.any(upper <= 0):
        raise ValueError(f"generator.latent_upper_bound_file {path}: expected "
                         f"{int(np.prod(shape))} positive numbers (shape {shape}), got "
                         f"{upper.size}" + (" with values <= 0" if np.any(upper <= 0) else ""))
    upper = upper.reshape(shape)
    # bdpy's image-shaped latents are [C, H, W]; the Keras generators take [H, W, C]
    return np.moveaxis(upper, 0, -1) if upper.ndim == 3 else upper


def _weights_kind(path, key):
    """``"torch"`` (``.pt``/``.pth``), ``"caffe"`` or ``"keras"``, after checking the file."""
    from keras_icnn.io import check_existing_file
    check_existing_file(path, key)
    lower = path.lower()
    if lower.endswith((".pt", ".pth")):
        return "torch"
    if lower.endswith(".caffemodel"):
        return "caffe"
    if lower.endswith((".weights.h5", ".h5")):
        return "keras"
    raise ValueError(f"{key} {path}: expected a .weights.h5, .caffemodel or .pt file")


def _known(kind, name):
    return name == "vgg19" if kind == "encoder" else name in GENERATORS


def _check_architecture(kind, name):
    from keras_icnn.models import ENCODER_NAMES, GENERATOR_NAMES
    known = ENCODER_NAMES if kind == "encoder" else GENERATOR_NAMES
    if name not in known:
        raise ValueError(f"{kind}.name: {name!r} is not supported (supported: "
                         f"{', '.join(known)})")


def _network(kind, cfg, include_top, weights=None):
    """The model ``cfg['name']`` stands for, with ``weights`` (None: random) when it is one of
    keras-icnn's (their own loaders read ``.weights.h5`` and ``.caffemodel`` files)."""
    from keras_icnn import models
    if kind == "encoder" and cfg["name"] == "vgg19":
        return models.vgg19(weights=weights, include_top=include_top,
                            input_shape=tuple(cfg["input_image_shape"]))
    if kind == "generator" and cfg["name"] in GENERATORS:
        return models.generators.deepsim_fc7(weights=weights)
    extra = {"input_shape": tuple(cfg["input_image_shape"])} if kind == "encoder" else {}
    return models.build(cfg["name"], **extra)


def _load_into(model, path, kind, name):
    from keras_icnn import models
    if kind == "caffe":
        from keras_icnn.caffe import load_caffe_weights
        load_caffe_weights(model, path)
    else:  # a .weights.h5 or a PyTorch .pt: a clear error for a damaged file either way
        models.load_weights(model, path, name)
    return model


def load_network(kind, cfg, include_top=False):
    """The ``encoder`` or ``generator`` of the config with its ``parameters_file`` loaded: a
    Keras ``.weights.h5`` or a ``.caffemodel`` (keras-icnn's loaders), or a PyTorch ``.pt``
    (converted and cached by ``keras_icnn.models.load_weights``); bdpy's other names are built
    by ``keras_icnn.models.build(name)``."""
    path, key = cfg["parameters_file"], f"{kind}.parameters_file"
    weights = _weights_kind(path, key)
    try:
        if _known(kind, cfg["name"]) and weights != "torch":
            return _network(kind, cfg, include_top, path)
        return _load_into(_network(kind, cfg, include_top), path, weights, cfg["name"])
    except Exception as e:  # the loaders' errors: one line naming the file
        raise ValueError(f"{key} {path}: cannot load it into the {cfg['name']} {kind} "
                         f"({' '.join(str(e).split())})") from None


def _check_encoder(encoder, generator):
    """The encoder's input shape and layers (VGG19's: fc layers at 224 only); returns whether
    the fc layers are used."""
    from keras_icnn.models import VGG19_FC_LAYERS, VGG19_LAYERS
    shape = encoder["input_image_shape"]
    if len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < 32:
        raise ValueError(f"encoder.input_image_shape: expected [H, W, 3] with H, W >= 32, got "
                         f"{shape}")
    h, w = shape[:2]
    if generator["name"] in GENERATORS and max(h, w) > 256:
        raise ValueError(f"encoder.input_image_shape: the {generator['name']} makes 256x256 "
                         f"images; the encoder's input must be at most that, got {[h, w]}")
    if encoder["name"] != "vgg19":
        return False
    unknown = [n for n in encoder["layers"] if n not in VGG19_LAYERS]
    if unknown:
        raise ValueError(f"encoder.layers: unknown VGG19 layer(s) {', '.join(unknown)}")
    fc = [n for n in encoder["layers"] if n in VGG19_FC_LAYERS]
    if fc and (h, w) != (224, 224):
        raise ValueError(f"encoder.layers: {', '.join(fc)} need a 224x224 input; "
                         f"encoder.input_image_shape is {encoder['input_image_shape']}")
    return bool(fc)


# -- the study: data, scaling and outputs, checked ---------------------------------------------
class Study:
    """A config's run, checked before any work: its networks' files, its feature tree and
    labels, the scaling files and every output location (:meth:`check`)."""

    def __init__(self, config, job):
        self.config, self.job = config, job
        self.layers = list(config.encoder["layers"])
        self.mean = self.upper = self.tree = self.ref_std = None
        self.ddof, self.include_top, self.labels = 1, False, {}

    @property
    def scaling(self):
        """The feature scaling applied (None for true features, as in the cookbook)."""
        return self.config.feature_scaling if self.config.decoded else None

    def check(self):
        """Check everything (nothing written); returns ``self``."""
        cfg = self.config
        for kind in ("encoder", "generator"):
            _check_architecture(kind, getattr(cfg, kind)["name"])
            _weights_kind(getattr(cfg, kind)["parameters_file"], f"{kind}.parameters_file")
        self.include_top = _check_encoder(cfg.encoder, cfg.generator)
        self.mean = load_image_mean(cfg.encoder["image_mean_file"])
        self.upper = load_latent_upper(cfg.generator)
        self.check_tree()
        self.check_scaling()
        self.check_outputs()
        return self

    def check_tree(self):
        """The feature tree: the layers, subjects and ROIs, every label in every layer."""
        from keras_icnn.io import DecodedFeatureTree, FeatureTree
        cfg = self.config
        key = "decoded_features.path" if cfg.decoded else "features.path"
        try:
            self.tree = (DecodedFeatureTree if cfg.decoded else FeatureTree)(cfg.features_dir)
            if self.tree.folds:
                raise ValueError(f"{cfg.features_dir}: a tree with folds ({self.tree.folds}) "
                                 "is not supported; give the directory of one fold")
            self.tree.check(self.layers)
            for sel in cfg.selections:
                self.labels[sel] = self.tree.labels_of(self.layers, *sel)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
        empty = [f"{s}/{r}" for (s, r), labels in self.labels.items() if not labels]
        if empty:
            raise ValueError(f"{key} {cfg.features_dir}: no label in every layer for "
                             f"{', '.join(empty)}")

    def check_scaling(self):
        """The reference std (every layer) and the decoders' training means (every layer,
        subject and ROI) that the scaling reads."""
        from keras_icnn.io import (check_existing_file, load_reference_std, std_file_ddof,
                                   train_mean_path)
        cfg = self.config
        if cfg.feature_scaling and not cfg.decoded:
            print(f"note: icnn.feature_scaling {cfg.feature_scaling}: true features are not "
                  "rescaled (as in the cookbook)", flush=True)
        if self.scaling is None:
            return
        path = cfg.encoder["feature_std_file"]
        check_existing_file(path, "encoder.feature_std_file")
        self.ref_std = load_reference_std(path)
        missing = [n for n in self.layers if n not in self.ref_std]
        if missing:
            raise ValueError(f"encoder.feature_std_file {path}: no std of layer(s) "
                             f"{', '.join(missing)}")
        found = std_file_ddof(path)
        self.ddof = 1 if found is None else found
        if self.scaling == "feature_std_train_mean_center":
            for (subject, roi), layer in ((s, n) for s in cfg.selections for n in self.layers):
                check_existing_file(train_mean_path(cfg.decoders_dir, layer, subject, roi),
                                    "decoded_features.decoders.path: training mean y_mean.mat")

    def out_dir(self, sel):
        """``<output.path>/<subject>/<roi>`` (``<output.path>`` for true features)."""
        from keras_icnn.io import recon_output_dir
        return recon_output_dir(self.config.output_dir, *sel)

    def check_outputs(self):
        """The output names (prefix, ext, labels) and directories, the checkpoints'."""
        from PIL import Image

        from keras_icnn.io import recon_output_paths
        from keras_icnn.io.paths import check_output_dir
        cfg, job = self.config, self.job
        fmt = Image.registered_extensions().get("." + cfg.ext.lstrip(".").lower())
        if fmt is None or fmt not in Image.SAVE:
            raise ValueError(f"output.ext: cannot write {cfg.ext!r} images (the cookbook's: "
                             "tiff)")
        for sel, labels in self.labels.items():
            for label in labels:
                recon_output_paths(cfg.output_dir, label, *sel, cfg.prefix, cfg.ext)
            check_output_dir(self.out_dir(sel), "output.path")
            if job.checkpoint_every:
                check_output_dir(os.path.join(self.out_dir(sel), outputs.CHECKPOINTS),
                                 "keras_icnn.checkpoint_every: the checkpoint directory")
        if job.logdir:
            check_output_dir(job.logdir, "--logdir")

    def plan(self, sel):
        """The labels of selection ``sel`` still to do (saying which are done)."""
        from keras_icnn.io import recon_output_paths
        cfg, todo, done = self.config, [], 0
        for label in self.labels[sel]:
            paths = recon_output_paths(cfg.output_dir, label, *sel, cfg.prefix, cfg.ext)
            outputs.remove_stale(paths)
            present = [p for p in paths if os.path.isfile(p)]
            if len(present) == 2 and not self.job.overwrite:
                done += 1
                continue
            if len(present) == 1 and not self.job.overwrite:
                print(f"note: {present[0]}: the other output of {label} is missing (a killed "
                      "run?): doing it again", flush=True)
            todo.append(Label(label, bool(present)))
        if os.path.isdir(self.out_dir(sel)):
            outputs.clean_stale(self.out_dir(sel), [])
        return todo, done


# -- the run --------------------------------------------------------------------------------------
class SelectionLoader:
    """The targets of a batch of labels of one subject x ROI: read from the tree, rescaled
    (Caffe layout, as the cookbook) and checked against the encoder (channels-last)."""

    def __init__(self, study, sel, encoder):
        self.study, self.sel, self.encoder = study, sel, encoder
        self.train_mean = None

    def scaled(self, labels):
        """``{layer: [N, C, H, W] / [N, D]}`` after the cookbook's scaling."""
        from keras_icnn.io import load_train_mean
        from keras_icnn.objective.scaling import apply_cookbook_scaling
        study = self.study
        feats = study.tree.load(labels, study.layers, *self.sel)
        if study.scaling == "feature_std_train_mean_center" and self.train_mean is None:
            self.train_mean = load_train_mean(study.config.decoders_dir, study.layers,
                                              *self.sel)
        return apply_cookbook_scaling(feats, study.scaling, study.ref_std, self.train_mean,
                                      ddof=study.ddof, data_format="channels_first")

    def batch(self, batch):
        """The channels-last targets of ``batch`` (labels), for ``Reconstructor.fit``."""
        from keras_icnn.objective.targets import prepare_targets
        where = "/".join(s for s in self.sel if s) or "features"
        try:
            return prepare_targets(self.scaled([t.name for t in batch]), self.encoder,
                                   "channels_first")[0]
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


class StudyBatchJob(BatchJob):
    """:class:`keras_icnn.cli.batches.BatchJob` writing the cookbook's outputs."""

    def __init__(self, args, rec, loader, study, sel):
        super().__init__(args, rec, loader, record=None)
        self.study, self.sel = study, sel

    def write(self, batch, keys):
        from keras_icnn.io import save_recon_outputs
        cfg, rec = self.study.config, self.rec
        images, losses = rec.images, rec.loss_history_
        for i, label in enumerate(batch):
            try:
                save_recon_outputs(cfg.output_dir, label.name, images[i], losses[:, i],
                                   *self.sel, prefix=cfg.prefix, ext=cfg.ext,
                                   overwrite=label.replace)
            except FileExistsError as e:  # written meanwhile by another job: keep it
                print(f"note: {e}; kept", flush=True)
        print(f"wrote {', '.join(t.name for t in batch)} to {self.args.out}", flush=True)


def batch_args(study, sel):
    """The settings :class:`StudyBatchJob` reads for the selection ``sel``."""
    job = study.job
    logdir = os.path.join(job.logdir, *[s for s in sel if s]) if job.logdir else None
    return types.SimpleNamespace(out=study.out_dir(sel), batch_size=job.batch_size,
                                 iterations=job.iterations, seed=job.seed, quiet=job.quiet,
                                 logdir=logdir, checkpoint_every=job.checkpoint_every)


def reconstructor(study, encoder):
    """The run's ``Reconstructor`` around ``encoder`` (the config's generator loaded here)."""
    generator = load_network("generator", study.config.generator)
    job = study.job
    try:
        rec = build.reconstructor_from_preset(
            job.preset, encoder, generator, study.upper, iterations=job.iterations,
            lbfgs_impl=job.lbfgs_impl, mean=study.mean, seed=job.seed,
            data_format="channels_last")
    except ValueError as e:
        raise ValueError(f"cannot set up the reconstruction: {e}") from None
    return build.check_initial(rec)


def selection_job(study, sel, encoder, rec):
    """The :class:`StudyBatchJob` of the selection ``sel`` (subject, ROI)."""
    return StudyBatchJob(batch_args(study, sel), rec, SelectionLoader(study, sel, encoder),
                         study, sel)


def label_name(sel, name):
    """``subject/roi/label`` (``label`` for true features): how a label is reported."""
    return "/".join([s for s in sel if s] + [name])


def _summary(study, todo, done):
    cfg, job = study.config, study.job
    print(f"keras-icnn reconstruct: {cfg.path}: {len(cfg.selections)} subject x ROI "
          f"selection(s), {sum(map(len, study.labels.values()))} label(s), {done} done "
          f"already, {sum(map(len, todo.values()))} to do; preset {job.preset}, "
          f"{job.iterations} iterations, feature scaling {study.scaling}, "
          f"{len(study.layers)} layer(s); output {cfg.output_dir}", flush=True)


def prepare(args, argv):
    """Check the config and every input, plan the labels (the done ones skipped, stale
    temporary files removed) and say so: ``(study, {selection: [Label, ...] to do})``."""
    from keras_icnn.cli.options import explicit_flags
    args.explicit = explicit_flags(argv)
    _check_flags(args.explicit, args.config)
    config = load_study_config(args.config)
    study = Study(config, job_settings(args, config)).check()
    plans = {sel: study.plan(sel) for sel in config.selections}
    todo = {sel: p[0] for sel, p in plans.items() if p[0]}
    _summary(study, todo, sum(p[1] for p in plans.values()))
    return study, todo


def encoder_for(study, todo):
    """The config's encoder, the first target checked against it (before any work)."""
    encoder = load_network("encoder", study.config.encoder, study.include_top)
    first = next(iter(todo))
    SelectionLoader(study, first, encoder).batch(todo[first][:1])  # shapes, before any work
    return encoder


def run(args, argv):
    """``reconstruct --config <cookbook yaml>``; returns the exit status."""
    study, todo = prepare(args, argv)
    if not todo:
        return EXIT_DONE
    encoder = encoder_for(study, todo)
    rec = reconstructor(study, encoder)
    failed = []
    for sel, labels in todo.items():
        if sel != (None, None):
            print(f"subject {sel[0]}, ROI {sel[1]}: {len(labels)} label(s)", flush=True)
        job = selection_job(study, sel, encoder, rec)
        failed += [label_name(sel, n) for n in job.run(labels)]
    if failed:
        print(f"keras-icnn reconstruct: {len(failed)} label(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"done: {sum(map(len, todo.values()))} label(s) reconstructed into "
          f"{study.config.output_dir}", flush=True)
    return EXIT_DONE
