"""Scoring reconstructions against true images, and figures."""
from keras_icnn.evaluation import metrics, plots

__all__ = ["metrics", "plots"]
