"""``keras-icnn evaluate RECON_DIR --true-images DIR``: the field's metrics for a study's
reconstruction tree (see :func:`keras_icnn.evaluation.study.evaluate_study`)."""
from __future__ import annotations

from keras_icnn.cli.common import EXIT_STATUS_HELP

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser(
        "evaluate", help="score a reconstruction tree against the true images",
        description="Evaluates reconstructions written the cookbook's way "
        "(<recon_dir>/<subject>/<roi>/recon_image-<label>.tiff, or directly in <recon_dir> for "
        "true-feature reconstructions) against <true_dir>/<label>.<ext>, per subject x ROI: "
        "pixel profile and pattern correlation, pixel RMSE, pairwise identification by "
        "correlation and by Euclidean distance, SSIM, and optional network-feature "
        "identification. Writes quality.csv (one row per image and metric), "
        "quality_summary.csv/.txt (mean and s.e.m.) and quality_figures/; subject x ROI pairs "
        "already evaluated are skipped.", epilog=EXIT_STATUS_HELP)
    p.add_argument("recon_dir", metavar="RECON_DIR", nargs="?",
                   help="the reconstruction tree (or give --config)")
    p.add_argument("--config", metavar="RECON_YAML",
                   help="the cookbook reconstruction config that made the tree: its output "
                   "path, prefix, ext, subjects, ROIs and evaluation.true_image are used")
    p.add_argument("--true-images", metavar="DIR",
                   help="folder of the true images, <label>.<ext> (any size: resized to the "
                   "reconstructions')")
    p.add_argument("--true-ext", help="extension of the true images (default JPEG)")
    p.add_argument("--out", help="where the tables and figures go (default RECON_DIR)")
    p.add_argument("--subjects", help="comma-separated subjects (default: all found)")
    p.add_argument("--rois", help="comma-separated ROIs (default: all found)")
    p.add_argument("--features", help="comma-separated network-feature identifications: "
                   "alexnet2, alexnet5 (with --alexnet-weights), inception, effnet, clip "
                   "(pretrained weights needed: a column whose "
                   "weights cannot be loaded is left out with a message)")
    p.add_argument("--alexnet-weights", metavar="FILE",
                   help="AlexNet's trained weights (bdpy's .pt, or a converted .weights.h5) for "
                   "the alexnet2 / alexnet5 columns")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--redo", action="store_true", help="evaluate again pairs already done")
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that keras-icnn did not write")
    p.set_defaults(func=run)


def _names(text):
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _from_config(args):
    """``evaluate_study`` keywords from ``--config`` (the flags given beside it win)."""
    from keras_icnn.cli.study_config import load_study_config
    cfg = load_study_config(args.config)
    if args.recon_dir is not None:
        raise ValueError("give RECON_DIR or --config, not both")
    return dict(recon_dir=cfg.output_dir, true_dir=args.true_images or cfg.true_image_dir,
                true_ext=args.true_ext or cfg.true_image_ext, recon_ext=cfg.ext,
                recon_prefix=cfg.prefix, subjects=_names(args.subjects) or cfg.subjects,
                rois=_names(args.rois) or cfg.rois)


def _study_arguments(args):
    if args.config is not None:
        kw = _from_config(args)
    elif args.recon_dir is None:
        raise ValueError("expected RECON_DIR or --config RECON_YAML")
    else:
        kw = dict(recon_dir=args.recon_dir, true_dir=args.true_images,
                  true_ext=args.true_ext or "JPEG", subjects=_names(args.subjects),
                  rois=_names(args.rois))
    if kw["true_dir"] is None:
        raise ValueError("--true-images: the folder of the true images is needed (or "
                         "evaluation.true_image.path in the config)")
    return kw


def _feature_models(args):
    """``{name: FeatureNet}`` of the AlexNet columns asked for, from ``--alexnet-weights``."""
    from keras_icnn.evaluation.feature_identification import alexnet_features
    wanted = [n for n in _names(args.features) or [] if n in ("alexnet2", "alexnet5")]
    if not wanted or args.alexnet_weights is None:
        return None
    return {n: alexnet_features(args.alexnet_weights, n) for n in wanted}


def run(args, argv=None):
    from keras_icnn.evaluation.study import evaluate_study
    result = evaluate_study(**_study_arguments(args), output_dir=args.out,
                            features=_names(args.features), models=_feature_models(args),
                            figures=not args.no_figures,
                            redo=args.redo, overwrite=args.overwrite)
    print(f"done: {len(result.evaluated)} subject x ROI pair(s) evaluated, "
          f"{len(result.skipped)} skipped (already in the results)", flush=True)
    return 0
