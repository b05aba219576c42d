"""Scoring reconstructions against true images, and figures.

``metrics``: the cookbook's pixel metrics on image arrays; ``feature_identification``:
network-feature metrics (two-way identification, correlation distance); ``study``: a whole
reconstruction tree (``<recon_dir>/<subject>/<roi>/recon_image-<label>.tiff``) against a folder
of true images, with result tables and figures; ``plots``: figures.
"""
from keras_icnn.evaluation import feature_identification, metrics, plots, study
from keras_icnn.evaluation.study import evaluate_study

__all__ = ["metrics", "plots", "feature_identification", "study", "evaluate_study"]
